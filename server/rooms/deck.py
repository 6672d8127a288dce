"""A room's deck: the order of its media, fixed at creation and rebuilt exactly on every restore
(a standing room's grows with its library: ``extended``).

The cards themselves belong to a ``Library`` (one listing of the media source, by id), which every
room on that listing shares: a room holds its order (the ids its state stores anyway) and nothing
per card, so a hundred rooms on a 100,000-film library hold the library once.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Container, Iterator, Sequence
from dataclasses import replace

from server.providers import Media


def order_media(items: Sequence[Media], order: str | None, seed: int) -> list[Media]:
    """The room's fixed order. The provider's own order never matters, so a restore rebuilds it exactly."""
    by_id = sorted(items, key=lambda item: item.id)
    if order == "newest":
        return sorted(by_id, key=lambda item: item.added or f"{item.year or 0:04d}", reverse=True)
    if order == "oldest":
        return sorted(by_id, key=lambda item: item.added or f"{item.year or 9999:04d}")
    if order == "rating":
        return sorted(by_id, key=lambda item: -item.rating)
    random.Random(seed).shuffle(by_id)
    return by_id


def extended(media_ids: list[str], items: list[Media], order: str | None, seed: int) -> list[str]:
    """The deck ``media_ids`` following its library ``items``: the films gone from it left out, the
    new ones added at the end in the room's order among themselves (from its seed, so every process
    that sees the same library makes the same deck)."""
    present = {item.id for item in items}
    known = set(media_ids)
    fresh = order_media([item for item in items if item.id not in known], order, seed)
    return [media_id for media_id in media_ids if media_id in present] + [item.id for item in fresh]


def stable_seed(key: str) -> int:
    """The media order seed of a room that has none: the same in every process restoring it."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8]) >> 1


class Library:
    """The cards of one listing by id, shared by the rooms on it; never changed once made."""

    def __init__(self, items: Sequence[Media]) -> None:
        self.cards: dict[str, Media] = {item.id: item for item in items}
        self._by_alias: dict[str, Media] | None = None

    def holds(self, items: Sequence[Media]) -> bool:
        """Whether ``items`` are exactly these cards (a listing fetched again, unchanged)."""
        cards = self.cards
        return len(items) == len(cards) and all(cards.get(item.id) is item for item in items)

    def by_alias(self) -> dict[str, Media]:
        """The cards by their other names (``Media.aliases``), made when a room first needs them."""
        if self._by_alias is None:
            self._by_alias = {alias: card for card in self.cards.values() for alias in card.aliases}
        return self._by_alias


class Deck:
    """A room's cards in its order: ``ids`` (the state's ``media_ids``, never changed in place)
    looked up in a shared library. Ids the library no longer has are skipped; cards the library
    gained since the room was made (``outside``, usually few) are not the room's.

    A room stored by an earlier version may name a card by an id that is now one of its aliases
    (Plex cards were named by their Plex guid before they were named by their IMDb id): the room
    keeps its own names, so its stored ratings, matches and every process sharing it agree, and
    such a card is the room's under that name (a copy of the library's card, renamed)."""

    def __init__(self, ids: list[str], library: Library) -> None:
        self.ids = ids
        self.library = library
        cards = library.cards
        named = set(ids)
        self._outside = frozenset(cards.keys() - named)
        self._renamed: dict[str, Media] = {}
        unknown = named - cards.keys()
        if unknown:
            by_alias = library.by_alias()
            for old in unknown:
                card = by_alias.get(old)
                if card is not None and card.id not in named:
                    aliases = (card.id, *(alias for alias in card.aliases if alias != old))
                    self._renamed[old] = replace(card, id=old, aliases=aliases)
        self._size = len(cards) - len(self._outside) + len(self._renamed)
        renamed = self._renamed
        self._lookup: Callable[[str], Media | None] = (
            cards.get if not renamed else lambda media_id: renamed.get(media_id) or cards.get(media_id)
        )

    def __len__(self) -> int:
        return self._size

    def __contains__(self, media_id: object) -> bool:
        return media_id in self._renamed or (media_id in self.library.cards and media_id not in self._outside)

    def __getitem__(self, media_id: str) -> Media:
        """The card of an id known to be the room's (``in``)."""
        card = self._lookup(media_id)
        if card is None:
            raise KeyError(media_id)
        return card

    def get(self, media_id: str) -> Media | None:
        return self._lookup(media_id) if media_id not in self._outside else None

    def __iter__(self) -> Iterator[Media]:
        return self.after(0, ())

    def after(self, start: int, rated: Container[str]) -> Iterator[Media]:
        """The cards from position ``start`` of the order on, but those in ``rated``."""
        lookup, ids = self._lookup, self.ids
        for position in range(start, len(ids)):
            media_id = ids[position]
            if media_id not in rated:
                card = lookup(media_id)
                if card is not None:
                    yield card

    def window(self, start: int, count: int, rated: Container[str]) -> tuple[list[Media], int, bool]:
        """Up to ``count`` cards from position ``start`` on, but those in ``rated``; the position
        after the last one (where the next window starts), and whether any card is left after it."""
        lookup, ids = self._lookup, self.ids
        found: list[Media] = []
        position = max(0, start)
        while position < len(ids):
            media_id = ids[position]
            card = lookup(media_id) if media_id not in rated else None
            if card is not None:
                if len(found) == count:
                    return found, position, True
                found.append(card)
            position += 1
        return found, position, False

    def first_unrated(self, start: int, rated: Container[str]) -> int:
        """The position of the first card from ``start`` on that is not in ``rated`` (the end if none)."""
        lookup, ids = self._lookup, self.ids
        position = max(0, start)
        while position < len(ids) and (ids[position] in rated or lookup(ids[position]) is None):
            position += 1
        return position
