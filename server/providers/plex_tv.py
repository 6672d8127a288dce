"""Sign-in with Plex: the browser gets a token from plex.tv, the server checks it with plex.tv.

The token is the user's key to their Plex account: it is only ever sent to plex.tv, in a header, and
never logged or echoed in a message.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from typing import TypeVar

import httpx
from pydantic import BaseModel, ConfigDict, TypeAdapter

from server.config import Settings
from server.protocol import ErrorName, ProtocolError, Reply, clean_name
from server.user import User

from .plex import TIMEOUT, PlexProvider, plex_headers

logger = logging.getLogger(__name__)

CAN_CREATE_ROOM = "CanCreateRoom"
# A token or client id goes into a header: visible ASCII only, and not absurdly long.
_HEADER_VALUE = re.compile(r"[\x21-\x7e]{1,4096}")

Answer = TypeVar("Answer")


class _Shape(BaseModel):
    model_config = ConfigDict(extra="ignore", coerce_numbers_to_str=True)


class _Account(_Shape):
    id: str
    username: str = ""
    title: str = ""  # the name of a managed Plex Home user, who has no username
    thumb: str | None = None


class _Resource(_Shape):
    provides: str = ""
    clientIdentifier: str = ""


_ACCOUNT = TypeAdapter(_Account)
_RESOURCES = TypeAdapter(list[_Resource])


def _invalid(message: str) -> ProtocolError:
    return ProtocolError(Reply.LOGIN_ERROR, ErrorName.PLEX_AUTH_INVALID, message)


def _unavailable(message: str) -> ProtocolError:
    # Not PlexAuthInvalid: a client may forget a token it is told is invalid, and this one may be fine.
    return ProtocolError(Reply.LOGIN_ERROR, ErrorName.PLEX_UNAVAILABLE, message)


class PlexTvSignIn:
    """Checks a browser's Plex token with plex.tv and says what its user may do here."""

    def __init__(
        self,
        settings: Settings,
        *,
        client_id: str,
        plex_servers: Callable[[], list[PlexProvider]],
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: httpx.Timeout = TIMEOUT,
    ) -> None:
        self._settings = settings
        self._client_id = client_id
        self._plex_servers = plex_servers
        self._transport = transport
        self._timeout = timeout
        self._client: httpx.AsyncClient | None = None

    async def open(self) -> None:
        self._client = httpx.AsyncClient(
            base_url=self._settings.plex_tv_url, timeout=self._timeout, transport=self._transport
        )

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    async def __call__(self, token: str, plex_client_id: str) -> User:
        if not _HEADER_VALUE.fullmatch(token):
            raise _invalid("that is not a Plex token; sign in with Plex again")
        # The browser's own client id, so plex.tv sees the device the user signed in on.
        client_id = plex_client_id if _HEADER_VALUE.fullmatch(plex_client_id) else self._client_id
        headers = plex_headers(token, client_id)
        account = await self._get("/api/v2/user", headers, _ACCOUNT)
        try:
            name = clean_name(account.username or account.title, self._settings.max_name_length)
        except ValueError as exc:
            raise ProtocolError(Reply.LOGIN_ERROR, ErrorName.INVALID_USER_NAME, f"the Plex user name {exc}") from exc
        creators = self._settings.room_creators
        may_create = creators in ("anyone", "plex") or (
            creators == "server-users" and await self._uses_our_server(headers)
        )
        return User(
            userName=name,
            avatarImage=account.thumb or None,
            permissions=[CAN_CREATE_ROOM] if may_create else [],
            plex_id=account.id,
        )

    async def _uses_our_server(self, headers: Mapping[str, str]) -> bool:
        """Whether plex.tv lists one of the configured Plex servers among the user's: owned or shared."""
        ours = {server.machine_identifier for server in self._plex_servers() if server.machine_identifier}
        if not ours:
            logger.warning("no configured Plex server has answered yet, so no Plex user may create rooms for now")
            return False
        resources = await self._get("/api/v2/resources", headers, _RESOURCES, {"includeHttps": "1"})
        return any(
            "server" in resource.provides.split(",") and resource.clientIdentifier in ours for resource in resources
        )

    async def _get(
        self,
        path: str,
        headers: Mapping[str, str],
        shape: TypeAdapter[Answer],
        params: Mapping[str, str] | None = None,
    ) -> Answer:
        if self._client is None:
            raise RuntimeError("PlexTvSignIn.open() was not called")
        try:
            response = await self._client.get(path, params=params, headers=headers)
        except httpx.TimeoutException as exc:
            logger.warning("plex.tv did not answer %s in time", path)
            raise _unavailable("plex.tv did not answer in time; try again") from exc
        except httpx.HTTPError as exc:
            logger.warning("plex.tv is unreachable: %s", exc or type(exc).__name__)
            raise _unavailable("plex.tv cannot be reached from this server; try again later") from exc
        if response.status_code in (401, 422):
            raise _invalid("Plex did not accept this sign-in; sign in with Plex again")
        if not response.is_success:
            logger.warning("plex.tv answered %s with status %d", path, response.status_code)
            raise _unavailable(f"plex.tv answered with status {response.status_code}; try again later")
        try:
            return shape.validate_json(response.content)
        except ValueError as exc:  # not JSON, or not the expected shape (ValidationError is a ValueError)
            logger.warning("plex.tv sent an unexpected answer to %s", path)
            raise _unavailable("plex.tv sent an unexpected answer; try again later") from exc
