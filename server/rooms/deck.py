"""A room's deck: the order of its media, fixed at creation and rebuilt exactly on every restore
(a standing room's grows with its library: ``extended``)."""

from __future__ import annotations

import hashlib
import random

from server.providers import Media


def order_media(items: list[Media], order: str | None, seed: int) -> list[Media]:
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
