// Create a room: name, password, room type, threshold, order, when it ends, libraries and filters.
// What cannot work is said before the room is made (a warning: the room is still made if asked).

import { byId, clear, h } from "../dom.js";
import { filterRow } from "../filters.js";
import { duration } from "../format.js";
import { t } from "../i18n.js";
import { peoplePicker } from "../people.js";
import { ask, createRoom, setScreen } from "../session.js";
import { on, state } from "../state.js";

// The end conditions offered (none by default): matches, minutes, likes per person.
const MATCH_LIMITS = [1, 2, 3, 5, 10];
const TIME_LIMITS = [15, 30, 45, 60, 90, 120];
const LIKE_CAPS = [3, 5, 10, 20];

const ERRORS = {
  RoomExistsError: "ERROR_ROOM_EXISTS",
  NoMediaError: "ERROR_NO_MEDIA",
  InvalidRoomName: "ERROR_INVALID_ROOM_NAME",
  PlexAuthRequiredError: "ERROR_PLEX_AUTH_REQUIRED",
  NotLoggedInError: "ERROR_NOT_LOGGED_IN",
  NoIdentity: "WATCHLIST_NO_IDENTITY",
  UnknownPerson: "ERROR_UNKNOWN_PERSON",
};

let catalogue = null; // the requestFilters reply
const valueCache = new Map();
const rows = new Set();
let people = null; // the people picker (people.js)

export function initCreate({ back }) {
  const form = byId("create-form");
  form.addEventListener("submit", submit);
  form.addEventListener("change", updateRules);
  byId("create-threshold").addEventListener("input", updateRules);
  byId("create-back").addEventListener("click", back);
  people = peoplePicker(byId("create-libraries"));
  byId("add-filter").addEventListener("click", addFilter);
  byId("create-name").addEventListener("input", () => showError(null));
  on("createError", (error) => {
    setBusy(false);
    showError(ERRORS[error.name] ?? "ERROR_UNKNOWN", { room: byId("create-name").value.trim() });
  });
  on("status", (status) => {
    if (status !== "open") setBusy(false);
    else if (document.body.dataset.screen === "create") loadOptions();
  });
  on("room", () => setBusy(false));
}

/** Show the form afresh (nothing left from an earlier attempt), with the name typed in the lobby. */
export function openCreate(roomName = "") {
  byId("create-form").reset();
  for (const row of rows) row.element.remove();
  rows.clear();
  renderEndOptions();
  updateRules();
  const name = byId("create-name");
  name.value = roomName;
  showError(null);
  setBusy(false);
  setScreen("create");
  loadOptions();
  name.focus();
}

async function loadOptions() {
  if (!catalogue) {
    try {
      catalogue = await ask("requestFilters", undefined, "requestFiltersSuccess", "requestFiltersError");
    } catch {
      catalogue = null;
    }
  }
  byId("add-filter").disabled = !catalogue?.filters?.length;
  people.load();
  try {
    const libraries = await ask("getLibraries", undefined, "getLibrariesSuccess", "getLibrariesError");
    renderLibraries(libraries);
  } catch {
    renderLibraries([]);
  }
}

function renderLibraries(libraries) {
  const fieldset = byId("create-libraries");
  fieldset.hidden = libraries.length < 2;
  const list = clear(byId("create-library-list"));
  for (const library of libraries) {
    const id = `library-${library.key}`;
    list.append(
      h(
        "li",
        { class: "check" },
        h("input", { type: "checkbox", id, name: "library", value: library.key }),
        // (ext) Seerr's popular titles, which the library lacks (docs/protocol.md, "Requests").
        h("label", { for: id }, library.inLibrary === false ? t("POPULAR_NOT_IN_LIBRARY", { title: library.title }) : library.title),
      ),
    );
  }
}

function filterValues(key) {
  if (!valueCache.has(key)) {
    const request = ask(
      "requestFilterValues",
      { key },
      "requestFilterValuesSuccess",
      "requestFilterValuesError",
      (reply) => reply?.request?.key === key,
    ).then((reply) => reply.values ?? []);
    request.catch(() => valueCache.delete(key));
    valueCache.set(key, request);
  }
  return valueCache.get(key);
}

function addFilter() {
  if (!catalogue) return;
  const row = filterRow(catalogue, filterValues, (element) => {
    rows.delete(row);
    element.remove();
    byId("add-filter").focus();
  });
  rows.add(row);
  byId("create-filters").append(row.element);
  row.focus();
}

/** The end conditions' choices, in the current language; the first of each (none) is chosen. */
function renderEndOptions() {
  const options = (id, values, label) =>
    byId(id).replaceChildren(
      h("option", { value: "" }, t("END_NEVER")),
      ...values.map((value) => h("option", { value: String(value) }, label(value))),
    );
  options("create-end-matches", MATCH_LIMITS, (count) => (count === 1 ? t("END_FIRST_MATCH") : t("END_MATCHES", { count })));
  options("create-end-minutes", TIME_LIMITS, (minutes) => duration(minutes * 60_000));
  options("create-end-likes", LIKE_CAPS, String);
}

const number = (id) => Number.parseInt(byId(id).value, 10) || 0;

/** Only what makes sense for the room type (a solo room has no threshold, and every like of it is
 * a match: no match limit), and what the choices mean together. */
function updateRules() {
  const type = byId("create-form").elements.roomType.value;
  byId("create-threshold-field").hidden = type !== "standard";
  byId("create-end-matches-field").hidden = type === "solo";
  const threshold = Math.max(2, number("create-threshold"));
  byId("create-threshold-hint").textContent = t("MATCH_THRESHOLD_HINT", { count: threshold, others: threshold - 1 });
  const warning = problem(type, threshold);
  byId("create-warning").hidden = !warning;
  byId("create-warning").textContent = warning ?? "";
}

/** Why the room could never end as asked, or never match at all; null when it can. */
function problem(type, threshold) {
  const most = state.config?.maxRoomMembers;
  if (type === "standard" && most && threshold > most) return t("WARN_THRESHOLD_ABOVE_MEMBERS", { count: threshold, most });
  const matches = type === "solo" ? 0 : number("create-end-matches");
  const likes = number("create-end-likes");
  if (!matches || !likes) return null;
  // A match needs `threshold` likes (everyone's, in a unanimous room: each member likes it), and
  // each member has `likes` of them to give.
  const reachable = type === "unanimous" ? likes : Math.floor(((most ?? Infinity) * likes) / threshold);
  return matches > reachable ? t("WARN_MATCHES_ABOVE_LIKES", { matches, likes }) : null;
}

function submit(event) {
  event.preventDefault();
  const form = byId("create-form");
  const roomName = byId("create-name").value.trim();
  if (!roomName) {
    showError("FIELD_REQUIRED_ERROR");
    byId("create-name").focus();
    return;
  }
  const roomType = form.elements.roomType.value || "standard";
  const request = { roomName, roomType, sortOrder: byId("create-sort").value };
  const password = byId("create-password").value;
  if (password) request.password = password;
  if (roomType === "standard") {
    const threshold = Number.parseInt(byId("create-threshold").value, 10);
    request.matchThreshold = Number.isFinite(threshold) && threshold >= 2 ? threshold : 2;
  }
  const endConditions = {};
  if (roomType !== "solo" && number("create-end-matches")) endConditions.matches = number("create-end-matches");
  if (number("create-end-minutes")) endConditions.minutes = number("create-end-minutes");
  if (number("create-end-likes")) endConditions.likes = number("create-end-likes");
  if (Object.keys(endConditions).length) request.endConditions = endConditions;
  if (byId("create-watchlists").checked) request.source = "watchlists";
  const libraries = [...form.querySelectorAll('input[name="library"]:checked')].map((box) => box.value);
  if (libraries.length) request.libraries = libraries;
  const filters = [...rows].map((row) => row.read()).filter(Boolean);
  if (filters.length) request.filters = filters;
  Object.assign(request, people.read());
  showError(null);
  if (createRoom(request)) setBusy(true);
  else showError("ERROR_OFFLINE");
}

function setBusy(busy) {
  byId("create-submit").disabled = busy;
  byId("create-form").setAttribute("aria-busy", String(busy));
}

function showError(key, values) {
  const error = byId("create-error");
  error.textContent = key ? t(key, values) : "";
  byId("create-name").setAttribute("aria-invalid", String(key === "FIELD_REQUIRED_ERROR" || key === "ERROR_ROOM_EXISTS"));
}
