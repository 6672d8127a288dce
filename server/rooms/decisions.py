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
from dataclasses import dataclass
from datetime import UTC, datetime

from server.names import skeleton
from server.user import User
from storage import Member, Pick, RatingValue, SerializedRoom

from .events import (
    Event,
    Joined,
    Left,
    OwnerChanged,
    Picked,
    Presence,
    Rated,
    Readmitted,
    Redealt,
    Removed,
    SeatOffered,
    Undone,
)
from .rules import (
    NAME_OWNER,
    Refusal,
    Seating,
    ban_key,
    completed_by_leave,
    counts_as_present,
    end_reason,
    is_group_match,
    is_owner,
    like_cap_reached,
    likers,
    seating,
)

Online = MutableMapping[str, Presence]

# A seat the owner offers to a new device can be taken with its code for this long.
SEAT_OFFER_MS = 10 * 60 * 1000


def token_hash(token: str) -> str:
    # Member tokens, seat codes: random strings checked for a short while, so one SHA-256 is enough.
    return hashlib.sha256(token.encode()).hexdigest()


def has_rated(room: SerializedRoom, user_name: str, media_id: str) -> bool:
    return any(user == user_name for user, _, _ in room.ratings.get(media_id, ()))


@dataclass(frozen=True)
class Actor:
    """Who asks for a change: their identity (None for a name-only login), the skeleton of their
    name, and the seat of this room their connection holds (if any)."""

    identity: str | None
    skeleton: str
    seated_as: str | None = None


def acts_as_owner(room: SerializedRoom, online: Online, owner: str, actor: Actor) -> bool:
    """``owner`` is the room's owner as ``rules.owner_of`` derives it (legacy rooms store none)."""
    seated = actor.seated_as is not None and actor.seated_as in online
    return is_owner(owner, actor.identity, actor.skeleton, seated=seated)


@dataclass(frozen=True)
class JoinRequest:
    # As the others will see the member (``User.shown``).
    user: User
    name: str
    identity: str | None
    skeleton: str
    seat: str
    process: str
    presented_token_hash: str
    seat_code_hash: str
    new_token_hash: str
    avatar: str | None
    plex_user_id: str | None
    now: int
    max_members: int
    absence_ms: int
    # The owner the room had when this is the member who created it (legacy rooms store none).
    owner: str = ""
    reseat: bool = False


def _member_for(room: SerializedRoom, request: JoinRequest) -> tuple[str, Member, bool] | None:
    """The member a join asks for, and whether it is the one a seat code was offered for: by the
    code, else by the identity, else by the name, else by a name that looks alike (the first in
    name order, so both languages pick the same)."""
    members = sorted(room.members.items())
    if request.seat_code_hash:
        for name, member in members:
            offered = member.offer_hash is not None and member.offer_until >= request.now
            if offered and hmac.compare_digest(member.offer_hash or "", request.seat_code_hash):
                return name, member, True
        return None
    if request.identity is not None:
        for name, member in members:
            if member.identity == request.identity:
                return name, member, False
    if request.name in room.members:
        return request.name, room.members[request.name], False
    for name, member in members:
        if member.skeleton == request.skeleton:
            return name, member, False
    return None


def decide_join(room: SerializedRoom, online: Online, request: JoinRequest) -> Joined | Refusal:
    """Seat a connection as a member (a new one, or one whose seat it may take), or why not.
    ``reseat`` puts back a connection whose place was lost (its process was taken for dead)."""
    if ban_key(request.identity, request.skeleton) in room.removed:
        return Refusal.REMOVED
    found = _member_for(room, request)
    if found is None and request.seat_code_hash:
        return Refusal.NAME_TAKEN  # a code that opens no seat
    if found is None:
        if request.reseat:
            return Refusal.NO_ROOM
        present = sum(
            counts_as_present(name in online, member.seen_at or member.joined_at, request.now, request.absence_ms)
            for name, member in room.members.items()
        )
        if present >= request.max_members:
            return Refusal.ROOM_FULL
        member = Member(
            joined_at=request.now,
            plex_user_id=request.plex_user_id,
            identity=request.identity,
            skeleton=request.skeleton,
            seen_at=request.now,
        )
        return _joined(room, online, request, request.name, member, Seating.BESIDE)
    name, member, offered = found
    presence = online.get(name)
    if request.reseat:
        return _joined(room, online, request, name, member, Seating.BESIDE, reseat=True)
    stored_hash = member.token_hash
    how = seating(
        member.identity,
        request.identity,
        token_matches=stored_hash is not None and hmac.compare_digest(request.presented_token_hash, stored_hash),
        elsewhere=presence is not None and any(seat != request.seat for seat in presence.seats),
        offered=offered,
    )
    if how is None:
        return Refusal.NAME_TAKEN
    return _joined(room, online, request, name, member, how)


def _joined(
    room: SerializedRoom,
    online: Online,
    request: JoinRequest,
    name: str,
    member: Member,
    how: Seating,
    *,
    reseat: bool = False,
) -> Joined:
    claimed = how is Seating.CLAIMED
    owner = None
    if not reseat:
        update: dict[str, object] = {"token_hash": request.new_token_hash, "avatar_image": request.avatar}
        update["seen_at"] = request.now
        if claimed:
            update |= {"identity": request.identity, "offer_hash": None, "offer_until": 0}
            # The creator's name-only seat claimed by its own member token: the identity owns the room.
            if request.owner == NAME_OWNER + (member.skeleton or request.skeleton) and request.identity is not None:
                owner = request.identity
        if not member.skeleton:
            update["skeleton"] = request.skeleton
        member = member.model_copy(update=update)
    return Joined(
        name=name,
        member=member,
        seat=request.seat,
        process=request.process,
        user=request.user if request.user.userName == name else request.user.model_copy(update={"userName": name}),
        resumed=name in online,
        replaces=how is not Seating.BESIDE,
        progress=room.user_progress.get(name, 0),
        owner=owner,
    )


def decide_leave(
    room: SerializedRoom, online: Online, *, name: str, seat: str, permanent: bool, now: int
) -> Left | None:
    """A connection leaves (for good: ``leaveRoom``); None when that seat does not hold the name."""
    presence = online.get(name)
    if presence is None or seat not in presence.seats:
        return None
    matched = completed_by_leave(room, [member for member in room.members if member != name]) if permanent else []
    return Left(name=name, seat=seat, permanent=permanent, matched=matched, at=now)


def decide_remove(
    room: SerializedRoom, online: Online, *, owner: str, actor: Actor, name: str, now: int
) -> Removed | Refusal:
    if not acts_as_owner(room, online, owner, actor):
        return Refusal.NOT_OWNER
    member = room.members.get(name)
    if member is None:
        return Refusal.NO_SUCH_MEMBER
    matched = completed_by_leave(room, [other for other in room.members if other != name])
    return Removed(name=name, ban=ban_key(member.identity, member.skeleton or skeleton(name)), matched=matched, at=now)


def decide_readmit(
    room: SerializedRoom, online: Online, *, owner: str, actor: Actor, name: str
) -> Readmitted | Refusal:
    if not acts_as_owner(room, online, owner, actor):
        return Refusal.NOT_OWNER
    ban = next((ban for ban, removed in sorted(room.removed.items()) if removed == name), None)
    return Refusal.NO_SUCH_MEMBER if ban is None else Readmitted(ban=ban)


def decide_transfer(
    room: SerializedRoom, online: Online, *, owner: str, actor: Actor, name: str
) -> OwnerChanged | Refusal:
    if not acts_as_owner(room, online, owner, actor):
        return Refusal.NOT_OWNER
    member = room.members.get(name)
    if member is None:
        return Refusal.NO_SUCH_MEMBER
    return OwnerChanged(owner=ban_key(member.identity, member.skeleton or skeleton(name)))


def decide_offer(
    room: SerializedRoom, online: Online, *, owner: str, actor: Actor, name: str, code_hash: str, until: int
) -> SeatOffered | Refusal:
    if not acts_as_owner(room, online, owner, actor):
        return Refusal.NOT_OWNER
    if name not in room.members:
        return Refusal.NO_SUCH_MEMBER
    return SeatOffered(name=name, offer_hash=code_hash, until=until)


def decide_member_action(
    room: SerializedRoom,
    online: Online,
    owner: str,
    actor: Actor,
    action: str,
    name: str,
    code_hash: str,
    now: int,
) -> Removed | Readmitted | OwnerChanged | SeatOffered | Refusal:
    """The owner's action on a member (``changes.MemberAction``), or why not."""
    if action == "remove":
        return decide_remove(room, online, owner=owner, actor=actor, name=name, now=now)
    if action == "readmit":
        return decide_readmit(room, online, owner=owner, actor=actor, name=name)
    if action == "makeOwner":
        return decide_transfer(room, online, owner=owner, actor=actor, name=name)
    return decide_offer(
        room, online, owner=owner, actor=actor, name=name, code_hash=code_hash, until=now + SEAT_OFFER_MS
    )


def decide_pick(
    room: SerializedRoom, online: Online, *, owner: str, actor: Actor, media_id: str, now: int
) -> Picked | Refusal:
    """A member asks the server to pick one of the room's matches (``media_id``, chosen by the
    caller); picking again once there is a pick is the owner's."""
    if actor.seated_as is None or actor.seated_as not in room.members:
        return Refusal.NO_SUCH_MEMBER
    if media_id not in room.matches:
        return Refusal.NOTHING_TO_DO
    if room.pick is not None and not acts_as_owner(room, online, owner, actor):
        return Refusal.NOT_OWNER
    return Picked(mediaId=media_id, at=now)


def decide_delete(room: SerializedRoom, online: Online, *, owner: str, actor: Actor) -> Refusal | None:
    return None if acts_as_owner(room, online, owner, actor) else Refusal.NOT_OWNER


def decide_rate(room: SerializedRoom, *, name: str, media_id: str, rating: RatingValue, now: int) -> Rated | Refusal:
    if name not in room.members:
        return Refusal.NO_SUCH_MEMBER  # removed meanwhile
    if end_reason(room, name, now) is not None:
        return Refusal.ROOM_ENDED
    if has_rated(room, name, media_id):
        return Refusal.NOTHING_TO_DO
    if rating == "like" and like_cap_reached(room, name):
        return Refusal.LIKE_CAP
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


def apply_event(room: SerializedRoom, online: Online, event: Event) -> Presence | None:
    """Change the state as the event says; returns the presence of the name before, if the event
    changed it (who was connected, for the messages the event causes)."""
    if isinstance(event, Joined):
        previous = online.get(event.name)
        room.members[event.name] = event.member
        room.user_progress[event.name] = event.progress
        seats = {} if previous is None or event.replaces else dict(previous.seats)
        online[event.name] = Presence(user=event.user, seats={**seats, event.seat: event.process})
        if event.owner is not None:
            room.owner = event.owner
        room.opened_at = max(room.opened_at, datetime.fromtimestamp(event.member.seen_at / 1000, UTC))
        return previous
    if isinstance(event, Left | Removed):
        previous = online.get(event.name)
        member = room.members.get(event.name)
        if isinstance(event, Removed):
            online.pop(event.name, None)
            room.members.pop(event.name, None)
            room.removed[event.ban] = event.name
        elif event.permanent:
            online.pop(event.name, None)
            room.members.pop(event.name, None)
        elif previous is not None and event.seat in previous.seats:
            seats = {seat: process for seat, process in previous.seats.items() if seat != event.seat}
            if seats:
                online[event.name] = previous.model_copy(update={"seats": seats})
            else:
                del online[event.name]
                if member is not None:
                    room.members[event.name] = member.model_copy(update={"seen_at": event.at})
        for media_id in event.matched:
            room.matches.setdefault(media_id, event.at)
        return previous
    if isinstance(event, Readmitted):
        room.removed.pop(event.ban, None)
        return None
    if isinstance(event, OwnerChanged):
        room.owner = event.owner
        return None
    if isinstance(event, Picked):
        room.pick = Pick(media_id=event.mediaId, at=event.at)
        return None
    if isinstance(event, SeatOffered):
        member = room.members.get(event.name)
        if member is not None:
            room.members[event.name] = member.model_copy(
                update={"offer_hash": event.offer_hash, "offer_until": event.until}
            )
        return None
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
    if isinstance(event, Redealt):
        return None  # the state is read again
    online.clear()  # Deleted
    return None
