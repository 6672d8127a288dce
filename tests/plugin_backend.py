"""A stand-in third-party backend, loaded by the factory tests as ``module:Class`` and by entry point."""

from __future__ import annotations

from storage import MemoryStorage


class PluginStorage(MemoryStorage):
    """Keeps its rooms in memory; remembers the URL it was built from so tests can check it."""

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url

    @classmethod
    def from_url(cls, url: str) -> PluginStorage:
        return cls(url)
