// Create a room: name, password, room type, threshold, order, libraries and filters.

import { byId, clear, h } from "../dom.js";
import { filterRow } from "../filters.js";
import { t } from "../i18n.js";
import { peoplePicker } from "../people.js";
import { ask, createRoom, setScreen } from "../session.js";
import { on } from "../state.js";

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
  form.addEventListener("change", (event) => {
    if (event.target.name === "roomType") updateThreshold();
  });
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
  updateThreshold();
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

function updateThreshold() {
  const type = byId("create-form").elements.roomType.value;
  byId("create-threshold-field").hidden = type !== "standard";
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
  if (byId("create-end-first").checked) request.options = ["EndOnFirstMatch"];
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
