"""Deciding a change to a room in this process, and applying an event to a room's state.

The decisions are the Python twins of the Lua scripts of shared rooms (``server.rooms.shared.scripts``):
each takes a room's state (and who is connected), applies the rules of ``rules.py``, and returns the
event that records the change, or why it was refused. ``apply_event`` is the one place where an
event changes a state: rooms of this process, the replicas of shared rooms and the in-memory stand-in
for Redis all use it.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import MutableMapping

from server.user import User
from storage import Member, RatingValue, SerializedRoom

from .events import Event, Joined, Left, OnlineSeat, Rated, Undone
from .rules import Refusal, completed_by_leave, has_ended, is_group_match, likers, may_join

Online = MutableMapping[str, OnlineSeat]


def token_hash(token: str) -> str:
    # Member tokens are 256-bit random strings, so one SHA-256 is enough (no key stretching needed).
    return hashlib.sha256(token.encode()).hexdigest()


def has_rated(room: SerializedRoom, user_name: str, media_id: str) -> bool:
    return any(user == user_name for user, _, _ in room.ratings.get(media_id, ()))


def decide_join(
    room: SerializedRoom,
    online: Online,
    *,
    user: User,
    seat: OnlineSeat,
    presented_token_hash: str,
    new_token_hash: str,
    joined_at: int,
    max_members: int,
    reseat: bool = False,
) -> Joined | Refusal:
    """Seat ``user`` at ``seat`` with a new member token, or why not. ``reseat`` puts back a seat whose
    place was lost (its process was taken for dead): never a new member, never a changed one."""
    name = user.userName
    member = room.members.get(name)
    if reseat and member is None:
        return Refusal.NO_ROOM
    holder = online.get(name)
    stored_hash = member.token_hash if member is not None else None
    refusal = may_join(
        room.members,
        member,
        max_members,
        holder_elsewhere=holder is not None and holder.seat != seat.seat,
        token_matches=not reseat and stored_hash is not None and hmac.compare_digest(presented_token_hash, stored_hash),
    )
    if refusal is not None:
        return refusal
    if member is None:
        member = Member(joined_at=joined_at, plex_user_id=user.plex_id)
    if not reseat:
        member = member.model_copy(update={"token_hash": new_token_hash, "avatar_image": user.avatarImage})
    return Joined(
        name=name, member=member, online=seat, resumed=holder is not None, progress=room.user_progress.get(name, 0)
    )


def decide_leave(
    room: SerializedRoom, online: Online, *, name: str, seat: str, permanent: bool, now: int
) -> Left | None:
    """A seat leaves (for good: ``leaveRoom``); None when that seat does not hold the name."""
    holder = online.get(name)
    if holder is None or holder.seat != seat:
        return None
    matched = completed_by_leave(room, [member for member in room.members if member != name]) if permanent else []
    return Left(name=name, seat=seat, permanent=permanent, matched=matched, matchedAt=now)


def decide_rate(room: SerializedRoom, *, name: str, media_id: str, rating: RatingValue, now: int) -> Rated | Refusal:
    if has_ended(room, name):
        return Refusal.ROOM_ENDED
    if has_rated(room, name, media_id):
        return Refusal.NOTHING_TO_DO
    matched_at = None
    if rating == "like" and room.room_type != "solo":
        matched_at = room.matches.get(media_id)
        liked_by = [*likers(room.ratings.get(media_id, [])), name]
        if matched_at is None and is_group_match(room.room_type, room.match_threshold, liked_by, room.members):
            matched_at = now
    progress = room.user_progress.get(name, 0) + 1
    return Rated(name=name, mediaId=media_id, rating=rating, at=now, progress=progress, matchedAt=matched_at)


def decide_undo(room: SerializedRoom, *, name: str, media_id: str) -> Undone | Refusal:
    if not has_rated(room, name, media_id):
        return Refusal.NOTHING_TO_DO
    kept = [rating for rating in room.ratings[media_id] if rating[0] != name]
    removed = (
        room.room_type != "solo"
        and media_id in room.matches
        and not is_group_match(room.room_type, room.match_threshold, likers(kept), room.members)
    )
    progress = max(0, room.user_progress.get(name, 0) - 1)
    return Undone(name=name, mediaId=media_id, progress=progress, matchRemoved=removed)


def is_new_match(room: SerializedRoom, event: Rated) -> bool:
    """Whether a rating (decided, not yet applied) makes an item a match."""
    return event.matchedAt is not None and event.mediaId not in room.matches


def apply_event(room: SerializedRoom, online: Online, event: Event) -> OnlineSeat | None:
    """Change the state as the event says; returns the seat the event unseated or replaced, if any."""
    if isinstance(event, Joined):
        previous = online.get(event.name)
        room.members[event.name] = event.member
        room.user_progress[event.name] = event.progress
        online[event.name] = event.online
        return previous
    if isinstance(event, Left):
        held = online.get(event.name)
        unseated = None
        if held is not None and held.seat == event.seat:
            unseated = online.pop(event.name)
        if event.permanent:
            room.members.pop(event.name, None)
        for media_id in event.matched:
            room.matches.setdefault(media_id, event.matchedAt)
        return unseated
    if isinstance(event, Rated):
        room.ratings.setdefault(event.mediaId, []).append((event.name, event.rating, event.at))
        room.user_progress[event.name] = event.progress
        if event.matchedAt is not None and room.room_type != "solo":
            room.matches.setdefault(event.mediaId, event.matchedAt)
        return None
    if isinstance(event, Undone):
        kept = [rating for rating in room.ratings.get(event.mediaId, []) if rating[0] != event.name]
        if kept:
            room.ratings[event.mediaId] = kept
        else:
            room.ratings.pop(event.mediaId, None)
        room.user_progress[event.name] = event.progress
        if event.matchRemoved:
            room.matches.pop(event.mediaId, None)
        return None
    online.clear()  # Deleted
    return None
