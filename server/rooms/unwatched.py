"""Rooms "unwatched by all of us": a deck without the films any of the room's people has watched.

The people are picked at creation among the media servers' (``MediaProvider.people``: what
``getPeople`` lists), and, in a room that asks its members, they are also every member signed in
with Plex or Jellyfin as one of them who agrees when joining (``countMyWatched``). What each
watched is read by the media providers with that person's own access and kept for a while (their
caches); it is read again whenever the room is opened (restored from storage, or joined after it
left memory), and what someone watched meanwhile leaves the deck for everyone: a new deck through
``RoomChanges.reshape``, as a standing room's, so every process serving the room deals the same
one. A film that left does not come back; a match, the room's pick and, in a solo room, a film a
member liked stay: they are what the room chose, watched or not.
"""

from __future__ import annotations

from collections.abc import Callable

from server.protocol import CreateRoomRequest, ErrorName, ProtocolError, Reply
from server.providers import Media, MediaProvider, MediaQuery
from server.user import User
from storage import SerializedRoom, Unwatched

from .changes import Change, Reshape
from .redeal import redealt


async def people_of(provider: MediaProvider) -> set[str]:
    """The ids of the media servers' people (a server that cannot be asked now lists none)."""
    return {person.id for person in await provider.people()}


async def requested(request: CreateRoomRequest, user: User, provider: MediaProvider) -> Unwatched | None:
    """The option a createRoom asks for, checked: people are picked by one of them only (as only
    they may list them), and among them only."""
    if not request.unwatchedBy:
        return Unwatched(members=True) if request.unwatchedByMembers else None
    people = await people_of(provider)
    if user.identity not in people:
        raise ProtocolError(
            Reply.CREATE_ROOM_ERROR,
            ErrorName.PLEX_AUTH_REQUIRED,
            "sign in with Plex or Jellyfin as a user of this server to pick whose watched films to leave out",
        )
    unknown = [person for person in request.unwatchedBy if person not in people]
    if unknown:
        raise ProtocolError(
            Reply.CREATE_ROOM_ERROR,
            ErrorName.UNKNOWN_PERSON,
            f"{unknown[0][:100]!r} is none of the media servers' people (getPeople lists them), "
            "or their server cannot be asked right now",
        )
    return Unwatched(people=tuple(dict.fromkeys(request.unwatchedBy)), members=request.unwatchedByMembers)


def unwatched_ids(state: SerializedRoom, watched: set[str]) -> list[str]:
    """The room's deck without the films in ``watched``, but those the room chose."""
    chosen = set(state.matches)
    if state.pick is not None:
        chosen.add(state.pick.media_id)
    if state.room_type == "solo":
        liked = (media_id for media_id, ratings in state.ratings.items() if any(r == "like" for _, r, _ in ratings))
        chosen.update(liked)
    return [media_id for media_id in state.media_ids or [] if media_id not in watched or media_id in chosen]


def leaving_out_watched(provider: MediaProvider, now_ms: Callable[[], int], joining: str | None = None) -> Reshape:
    """The room without what its people watched, read now; with ``joining``, that person (who agreed
    at join, in a room that asks its members) counts from now on, and only their films are read."""

    async def reshape(stored: SerializedRoom) -> Change:
        read = _whose(stored.unwatched, joining)
        if not read:
            return lambda _: None  # nobody's films to leave out (yet)
        items = await provider.media(MediaQuery(stored.filters, stored.libraries))
        watched = await provider.watched(read, refresh=True)
        now = now_ms()

        def change(current: SerializedRoom) -> tuple[SerializedRoom, list[Media]] | None:
            counted = current.unwatched
            if counted is None or current.media_ids is None:
                return None
            made = current.copy_deep()
            if joining is not None and joining not in counted.people:
                made.unwatched = counted.model_copy(update={"people": (*counted.people, joining)})
            dealt = redealt(current, made, unwatched_ids(current, watched), now)
            return None if dealt is None else (dealt, items)

        return change

    return reshape


def _whose(option: Unwatched | None, joining: str | None) -> tuple[str, ...]:
    """Whose watched films to read: the room's people, or one who joins a room that asks its members."""
    if option is None:
        return ()
    if joining is None:
        return option.people
    return (joining,) if option.members else ()
