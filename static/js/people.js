// (ext) "Unwatched by all of us" (docs/protocol.md): in the create form, the media servers' people
// whose watched films the room leaves out, and whether it asks its members; in such a room, the
// question to a member who may count theirs too, once per room on this device.

import { confirmAction } from "./confirm.js";
import { h } from "./dom.js";
import { translate } from "./i18n.js";
import { avatar } from "./members.js";
import { ask, joinRoom, socket } from "./session.js";
import { state } from "./state.js";
import { load, roomKey, save } from "./storage.js";

const ANSWERS = "moviematch.unwatchedAnswers";
const ANSWERS_LIMIT = 30;

/**
 * The people fieldset of the create form, placed after `before`: `load()` fills it (the list only for
 * a Plex or Jellyfin sign-in that may see the servers' people; nothing where nobody can sign in with
 * either), `read()` is what createRoom takes.
 */
export function peoplePicker(before) {
  const list = h("ul", { class: "checks people" });
  const listed = h("div", { class: "stack", hidden: true }, h("p", { class: "hint", i18n: "PEOPLE_HINT" }), list);
  const members = h("input", {
    type: "checkbox",
    id: "create-unwatched-members",
    "aria-describedby": "create-unwatched-members-hint",
  });
  const fieldset = h(
    "fieldset",
    { id: "create-people", class: "panel stack" },
    h("legend", { i18n: "PEOPLE_LEGEND" }),
    listed,
    h(
      "div",
      { class: "check" },
      members,
      h(
        "label",
        { for: members.id },
        h("span", { i18n: "PEOPLE_MEMBERS" }),
        h("span", { id: "create-unwatched-members-hint", class: "hint", i18n: "PEOPLE_MEMBERS_HINT" }),
      ),
    ),
  );
  translate(fieldset);
  before.after(fieldset);

  async function load() {
    const config = state.config ?? {};
    fieldset.hidden = !(config.plexSignIn || config.jellyfinSignIn?.length);
    let people = [];
    if (state.identity?.plexToken || state.identity?.jellyfinSession) {
      try {
        people = (await ask("getPeople", undefined, "getPeopleSuccess", "getPeopleError")).people ?? [];
      } catch {
        people = []; // not one of the servers' people (or the servers cannot say): nobody to pick
      }
    }
    list.replaceChildren(...people.map(personRow));
    listed.hidden = people.length === 0;
  }

  function read() {
    const request = {};
    const picked = [...list.querySelectorAll("input:checked")].map((box) => box.value);
    if (picked.length) request.unwatchedBy = picked;
    if (!fieldset.hidden && members.checked) request.unwatchedByMembers = true;
    return request;
  }

  return { load, read };
}

function personRow(person, index) {
  const id = `person-${index}`;
  return h(
    "li",
    { class: "check person" },
    h("input", { type: "checkbox", id, value: person.id }),
    h(
      "label",
      { for: id, class: "person__label" },
      avatar({ userName: person.name, avatarImage: person.avatar }),
      h("span", { class: "person__name", text: person.name }),
    ),
  );
}

// -- the question at join ------------------------------------------------------------------------

const answerKey = (roomName) => `${state.user?.userName ?? ""}\n${roomKey(roomName)}`;

function answered(roomName) {
  return Boolean((load(localStorage, ANSWERS) ?? {})[answerKey(roomName)]);
}

function remember(roomName) {
  const answers = load(localStorage, ANSWERS) ?? {};
  answers[answerKey(roomName)] = true;
  save(localStorage, ANSWERS, Object.fromEntries(Object.entries(answers).slice(-ANSWERS_LIMIT)));
}

/** A room that asks its members (joinRoomSuccess `unwatched.ask`): may the films I watched go too? */
async function offer(payload) {
  const { roomName, unwatched } = payload;
  if (!unwatched?.ask || answered(roomName)) return;
  await Promise.resolve(); // after the room screen is shown (a new screen closes open dialogs)
  const yes = await confirmAction({ message: "UNWATCHED_ASK", confirm: "UNWATCHED_ASK_YES" });
  remember(roomName);
  if (!yes || !state.room || roomKey(state.room.name) !== roomKey(roomName)) return;
  // Joining again resumes the seat; the reply is the deck without my films.
  joinRoom(state.room.name, state.room.password, { auto: true, countMyWatched: true });
}

export function initPeople() {
  socket.on("joinRoomSuccess", offer);
  socket.on("createRoomSuccess", offer);
}
