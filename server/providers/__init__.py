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
    Poster,
    ProviderError,
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
    "Poster",
    "ProviderError",
]
