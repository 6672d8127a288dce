"""The people of a Plex server, as plex.tv tells its owner, each with a token of their own for it.

Who they are: the owner (the account of the configured token), the members of the owner's Plex Home
and the users the server is shared with. Their watch state is per person, so each is read with
that person's own access to the server:

- the owner: the configured token;
- a user the server is shared with: the ``accessToken`` plex.tv lists for them in the server's
  ``/api/servers/{machineIdentifier}/shared_servers`` (an XML-only endpoint; python-plexapi reads
  the same field);
- a Home member without such a share: switching to them (``POST /api/v2/home/users/{uuid}/switch``,
  as Plex's own apps do) gives their plex.tv token, and their ``/api/v2/resources`` the server's
  ``accessToken`` for them. A member protected by a PIN cannot be switched to without it: left out.

Avatars come from ``/api/v2/home/users`` and ``/api/users`` (the owner's friends, XML). Tokens go to
plex.tv and the Plex server only, in headers; they are never logged, and never part of a ``Person``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar
from xml.etree import ElementTree

import httpx
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from .base import Person, ProviderError
from .remote import TtlCache

log = logging.getLogger(__name__)

NAME_LENGTH = 100

Answer = TypeVar("Answer")


class _Shape(BaseModel):
    model_config = ConfigDict(extra="ignore", coerce_numbers_to_str=True)


class _Account(_Shape):
    id: str
    uuid: str = ""
    username: str | None = None
    title: str = ""
    thumb: str | None = None
    authToken: str | None = None  # a switch's answer only


class _Member(_Account):
    admin: bool = False
    guest: bool = False
    protected: bool = False


class _Home(_Shape):
    users: list[_Member] = []


class _Resource(_Shape):
    clientIdentifier: str = ""
    accessToken: str | None = None


_ACCOUNT = TypeAdapter(_Account)
_HOME = TypeAdapter(_Home)
_RESOURCES = TypeAdapter(list[_Resource])


@dataclass(frozen=True)
class Viewer:
    """A person and the token that reads their watch state on the server (never shown: repr hides it)."""

    person: Person
    token: str = field(repr=False)


def _person(account_id: str, username: str | None, title: str, thumb: str | None) -> Person:
    name = (username or title or f"Plex user {account_id}").strip()[:NAME_LENGTH]
    return Person(id=f"plex:{account_id}", name=name, avatar=thumb or None)


class PlexHome:
    """The viewers of one Plex server, asked of plex.tv with its owner's token and kept ``ttl`` seconds."""

    def __init__(
        self,
        plex_tv_url: str,
        *,
        owner_token: str,
        headers: Callable[[str], Mapping[str, str]],
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: httpx.Timeout,
        ttl: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``headers(token)``: what Plex wants on a request made with that token."""
        self._owner_token = owner_token
        self._headers = headers
        self._client = httpx.AsyncClient(base_url=plex_tv_url, timeout=timeout, transport=transport)
        self._viewers: TtlCache[str, dict[str, Viewer]] = TtlCache(ttl, clock)
        self._left_out: set[str] = set()  # protected members already logged

    async def close(self) -> None:
        await self._viewers.close()
        await self._client.aclose()

    def forget(self) -> None:
        """Ask plex.tv again next time (someone was invited or left)."""
        self._viewers.clear()

    async def viewers(self, machine_identifier: str) -> dict[str, Viewer]:
        """Everyone who can watch on the server ``machine_identifier``, by person id."""
        return await self._viewers.get(machine_identifier, lambda: self._load(machine_identifier))

    async def _load(self, machine: str) -> dict[str, Viewer]:
        owner = await self._json("GET", "/api/v2/user", self._owner_token, _ACCOUNT)
        found = {
            f"plex:{owner.id}": Viewer(_person(owner.id, owner.username, owner.title, owner.thumb), self._owner_token)
        }
        avatars = await self._friend_avatars()
        for user_id, name, share in await self._shares(machine):
            found.setdefault(f"plex:{user_id}", Viewer(_person(user_id, name, "", avatars.get(user_id)), share))
        members = [
            member
            for member in await self._home()
            if not member.guest and f"plex:{member.id}" not in found  # the owner, or shared with already
        ]
        tokens = await asyncio.gather(*(self._member_token(member, machine) for member in members))
        for member, member_token in zip(members, tokens, strict=True):
            if member_token is not None:
                person = _person(member.id, member.username, member.title, member.thumb)
                found[person.id] = Viewer(person, member_token)
        return found

    async def _shares(self, machine: str) -> list[tuple[str, str, str]]:
        """(user id, user name, access token) of each user the server is shared with."""
        root = await self._xml(f"/api/servers/{machine}/shared_servers")
        shares = []
        for entry in root.iter("SharedServer") if root is not None else ():
            user_id, token = entry.get("userID", ""), entry.get("accessToken", "")
            if user_id and token:
                shares.append((user_id, entry.get("username", ""), token))
        return shares

    async def _friend_avatars(self) -> dict[str, str]:
        root = await self._xml("/api/users")
        return {
            user.get("id", ""): thumb
            for user in (root.iter("User") if root is not None else ())
            if (thumb := user.get("thumb"))
        }

    async def _home(self) -> list[_Member]:
        try:
            return (await self._json("GET", "/api/v2/home/users", self._owner_token, _HOME)).users
        except ProviderError as exc:
            if exc.status != 404:
                raise
            return []  # not in a Plex Home

    async def _member_token(self, member: _Member, machine: str) -> str | None:
        """The server's access token for a Home member: their own token (by switching), then their
        resources. None when they are protected by a PIN or have no access to the server."""
        if member.protected:
            self._leave_out(member, "is protected by a PIN")
            return None
        try:
            switched = await self._json("POST", f"/api/v2/home/users/{member.uuid}/switch", self._owner_token, _ACCOUNT)
            if not switched.authToken:
                raise ProviderError("plex.tv gave no token for a Home user it switched to")
            resources = await self._json(
                "GET", "/api/v2/resources", switched.authToken, _RESOURCES, {"includeHttps": "1"}
            )
        except ProviderError as exc:
            if exc.status not in (401, 403, 404):
                raise
            self._leave_out(member, f"cannot be switched to (status {exc.status})")
            return None
        token = next((r.accessToken for r in resources if r.clientIdentifier == machine and r.accessToken), None)
        if token is None:
            self._leave_out(member, "has no access to this server")
        return token

    def _leave_out(self, member: _Member, why: str) -> None:
        if member.id not in self._left_out:
            self._left_out.add(member.id)
            log.info("Plex Home user %r %s: their watch state cannot be read", member.title, why)

    # -- requests ---------------------------------------------------------------------------------

    async def _send(
        self, method: str, path: str, token: str, params: Mapping[str, str] | None = None, accept: str | None = None
    ) -> httpx.Response:
        headers = dict(self._headers(token))
        if accept is not None:
            headers["Accept"] = accept
        try:
            response = await self._client.request(method, path, params=params, headers=headers)
        except httpx.HTTPError as exc:
            log.warning("plex.tv could not be asked for %s: %s", path, exc or type(exc).__name__)
            raise ProviderError("plex.tv cannot be reached for the users of the Plex server", status=503) from exc
        if response.is_success:
            return response
        if response.status_code in (401, 403, 404):
            raise ProviderError(f"plex.tv refused {path} (status {response.status_code})", status=response.status_code)
        log.warning("plex.tv answered %s with status %d", path, response.status_code)
        raise ProviderError(f"plex.tv answered with status {response.status_code}", status=503)

    async def _json(
        self,
        method: str,
        path: str,
        token: str,
        shape: TypeAdapter[Answer],
        params: Mapping[str, str] | None = None,
    ) -> Answer:
        response = await self._send(method, path, token, params)
        try:
            return shape.validate_json(response.content)
        except ValidationError as exc:
            log.warning("plex.tv sent an unexpected answer to %s", path)
            raise ProviderError("plex.tv sent an unexpected answer", status=503) from exc

    async def _xml(self, path: str) -> ElementTree.Element | None:
        """An XML answer of plex.tv's older API; None when the owner's token may not ask it.

        ElementTree resolves no external entities, and the expat it uses (2.4.1 or later) refuses
        entity expansion attacks; the answer comes from plex.tv over TLS anyway."""
        try:
            response = await self._send("GET", path, self._owner_token, accept="application/xml")
        except ProviderError as exc:
            if exc.status not in (401, 403, 404):
                raise
            log.warning("plex.tv does not tell this server's token %s (status %d)", path, exc.status)
            return None
        try:
            return ElementTree.fromstring(response.content)  # noqa: S314 (see above)
        except ElementTree.ParseError as exc:
            log.warning("plex.tv sent an unexpected answer to %s", path)
            raise ProviderError("plex.tv sent an unexpected answer", status=503) from exc
