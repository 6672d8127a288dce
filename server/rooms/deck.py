"""A room's deck: the order of its media, fixed at creation and rebuilt exactly on every restore."""

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


def stable_seed(key: str) -> int:
    """The media order seed of a room that has none: the same in every process restoring it."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8]) >> 1
