"""Media sources behind one interface: the bundled demo library, catalogue files, Plex, Jellyfin."""

from .base import (
    FilterInfo,
    Filters,
    FilterType,
    FilterValue,
    InvalidFilter,
    Library,
    Media,
    MediaProvider,
    MediaQuery,
    Person,
    Poster,
    ProviderError,
    Stream,
)

__all__ = [
    "FilterInfo",
    "FilterType",
    "FilterValue",
    "Filters",
    "InvalidFilter",
    "Library",
    "Media",
    "MediaProvider",
    "MediaQuery",
    "Person",
    "Poster",
    "ProviderError",
    "Stream",
]
