"""Who is behind a connection."""

from __future__ import annotations

from functools import cached_property
from typing import Any

from pydantic import BaseModel, ConfigDict


class User(BaseModel):
    """A logged-in user; ``plex_id`` and ``identity`` stay on the server."""

    model_config = ConfigDict(frozen=True)
    userName: str
    avatarImage: str | None = None
    permissions: list[str] = []
    plex_id: str | None = None
    # Who this is (``server.identity``); None for a v2 client's login by name alone.
    identity: str | None = None

    @cached_property
    def _public(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True, exclude={"plex_id", "identity"})

    def public(self) -> dict[str, Any]:
        """What other members may see (a copy: callers put it into messages)."""
        return dict(self._public)

    def shown(self) -> User:
        """The user as other members and other processes know it: without what stays on this server."""
        if self.plex_id is None and self.identity is None:
            return self
        return self.model_copy(update={"plex_id": None, "identity": None})
