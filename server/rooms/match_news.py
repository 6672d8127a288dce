"""News about a match (a request's state, a player starting it), for the members who see it: every
member of a group room; in a solo room, only those whose own like it is."""

from __future__ import annotations

from typing import Any

from server.protocol import Reply

from .room import Room
from .rules import likers


def tell_about_match(room: Room, media_id: str, reply: Reply, payload: Any) -> None:
    if room.state.room_type != "solo":
        room.send_all(reply, payload)
        return
    for member in likers(room.state.ratings.get(media_id, [])):
        room.send_to(member, reply, payload)


def sees_match(room: Room, member: str, media_id: str) -> bool:
    """Whether this member sees ``media_id`` among their matches."""
    if room.state.room_type != "solo":
        return media_id in room.state.matches
    return member in likers(room.state.ratings.get(media_id, []))
