// Who owns the room this tab is in: what only the owner does (request a title, start a match on a
// player) is offered to the owner alone.

import { socket } from "./session.js";
import { emit, state } from "./state.js";

let owner = null; // the owning member's name
let seat = null; // the name this tab is seated as

function entered(payload) {
  owner = payload.roomOwner ?? null;
  seat = payload.userName ?? state.user?.userName ?? null;
  emit("matches");
}

socket.on("joinRoomSuccess", entered);
socket.on("createRoomSuccess", entered);
socket.on("ownerChanged", ({ userName }) => {
  owner = userName;
  emit("matches");
});

export const isOwner = () => Boolean(state.room?.joined && owner !== null && owner === seat);
