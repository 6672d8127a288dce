"""Where a card came from: its provider and the item's key there.

Every provider gives its cards the link ``api/link/{providerId}/{key}`` (protocol.md), so the card
itself says which server holds the item and under which key, also for a card stored long ago (a
watchlist entry) or shared by two servers (the first one's copy is the card).
"""

from __future__ import annotations

from dataclasses import dataclass

_PREFIX = "api/link/"


@dataclass(frozen=True)
class Origin:
    provider_id: str
    key: str


def origin(link_url: str) -> Origin | None:
    """The provider and key of a card's ``linkUrl``; None for a link of another form."""
    if not link_url.startswith(_PREFIX):
        return None
    provider_id, separator, key = link_url.removeprefix(_PREFIX).partition("/")
    return Origin(provider_id, key) if separator and provider_id and key else None
