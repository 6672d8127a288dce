"""Sign-in with Jellyfin (and Emby) through a Jellyfin server this one is configured with.

A user signs in with their user name and password, sent through this server to
``POST /Users/AuthenticateByName`` (``{Username, Pw}``, which Emby answers too), or with Quick Connect
where the server has it on (Jellyfin 10.8+): this server asks ``POST /QuickConnect/Initiate`` for a
code, the user enters it in a Jellyfin app where they are signed in, and ``GET /QuickConnect/Connect``
says when they did; ``POST /Users/AuthenticateWithQuickConnect`` then signs them in. Either way
Jellyfin answers with the user (name, id, picture) and an access token; this server only needs the
user, so it ends that session at once (``POST /Sessions/Logout``): no Jellyfin token of the user is
kept, logged or sent anywhere.

The browser gets a session ticket instead, which it presents at later logins: the server's and the
user's ids and the time, signed with a key derived from the server's API key (HMAC-SHA256). So every
MovieMatch process sharing the configuration accepts it, across restarts, with nothing stored; a
ticket lasts ``TICKET_DAYS`` and is renewed at each login with it; a user disabled or deleted in
Jellyfin, or a new API key, ends it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
from pydantic import Field, ValidationError

from server.config import Settings
from server.identity import jellyfin_identity
from server.protocol import ErrorName, ProtocolError, Reply, clean_name
from server.user import User

from .base import ProviderError
from .jellyfin import Dto, JellyfinProvider, UserDto, authorization
from .plex_tv import CAN_CREATE_ROOM
from .remote import transport_problem

log = logging.getLogger(__name__)

TICKET_DAYS = 30
QUICK_CONNECT_SECONDS = 600.0  # Jellyfin forgets a Quick Connect request after ten minutes
TIMEOUT = httpx.Timeout(10.0, connect=5.0)
_TICKET_PURPOSE = b"moviematch jellyfin sign-in ticket"

Answer = TypeVar("Answer", bound=Dto)


class _Authenticated(Dto):
    """An AuthenticationResult."""

    user: UserDto
    access_token: str = Field(min_length=1)
    server_id: str = ""


class _QuickConnect(Dto):
    """A QuickConnectResult."""

    secret: str = Field(min_length=1)
    code: str = ""
    authenticated: bool = False


def _invalid(message: str) -> ProtocolError:
    return ProtocolError(Reply.LOGIN_ERROR, ErrorName.JELLYFIN_AUTH_INVALID, message)


def _unavailable(message: str) -> ProtocolError:
    # Not JellyfinAuthInvalid: the browser keeps its session ticket and tries again later.
    return ProtocolError(Reply.LOGIN_ERROR, ErrorName.JELLYFIN_UNAVAILABLE, message)


def _no_quick_connect(message: str) -> ProtocolError:
    return ProtocolError(Reply.LOGIN_ERROR, ErrorName.QUICK_CONNECT_UNAVAILABLE, message)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class PendingQuickConnect:
    """A Quick Connect sign-in under way on one connection: the code to show, and the secret that
    stays here (whoever holds it once the code is approved may sign in as that user)."""

    server: str  # provider id
    code: str
    secret: str = field(repr=False)
    started: float


class JellyfinSignIn:
    """Signs users of the configured Jellyfin servers in, and says what they may do here."""

    def __init__(
        self,
        settings: Settings,
        servers: Sequence[JellyfinProvider],
        *,
        client_id: str,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: httpx.Timeout = TIMEOUT,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._servers = {server.id: server for server in servers if server.config.sign_in}
        self._device_id = f"moviematch-{client_id}"
        self._transport = transport
        self._timeout = timeout
        self._clock = clock
        self._clients: dict[str, httpx.AsyncClient] = {}
        self._quick_connect: dict[str, bool] = {}

    async def open(self) -> None:
        for server in self._servers.values():
            self._clients[server.id] = httpx.AsyncClient(
                base_url=server.base_url,
                headers={"Accept": "application/json"},
                timeout=self._timeout,
                verify=server.config.verify_tls,
                transport=self._transport,
            )
        await asyncio.gather(*(self._check_quick_connect(server_id) for server_id in self._servers))

    async def close(self) -> None:
        clients, self._clients = self._clients, {}
        for client in clients.values():
            await client.aclose()

    def offered(self) -> list[dict[str, Any]]:
        """The servers a browser may sign in with (``config``): id, name, and whether Quick Connect is on."""
        return [
            {"id": server.id, "name": server.name, "quickConnect": self._quick_connect.get(server.id, False)}
            for server in self._servers.values()
        ]

    # -- the ways in ------------------------------------------------------------------------------

    async def password(self, server: str | None, user_name: str, password: str) -> tuple[User, str]:
        provider = self._provider(server)
        body = {"Username": user_name, "Pw": password}
        response = await self._post(provider, "Users/AuthenticateByName", body)
        if response.status_code == 401:
            raise _invalid("Jellyfin did not accept this user name and password")
        return await self._signed_in(provider, response)

    async def start_quick_connect(self, server: str | None) -> PendingQuickConnect:
        provider = self._provider(server)
        response = await self._post(provider, "QuickConnect/Initiate", None)
        if response.status_code == 405:  # Jellyfin 10.8 initiated with a GET
            response = await self._request(provider, "GET", "QuickConnect/Initiate")
        if response.status_code in (401, 403, 404):
            self._quick_connect[provider.id] = False
            raise _no_quick_connect("Quick Connect is not on for this Jellyfin server")
        started = self._answer(provider, response, _QuickConnect)
        self._quick_connect[provider.id] = True
        return PendingQuickConnect(provider.id, started.code, started.secret, self._clock())

    async def check_quick_connect(self, pending: PendingQuickConnect) -> tuple[User, str] | None:
        """The user once the code has been approved in a Jellyfin app; None while it waits."""
        provider = self._provider(pending.server)
        if self._clock() - pending.started > QUICK_CONNECT_SECONDS:
            raise _no_quick_connect("the Quick Connect code expired; ask for a new one")
        response = await self._request(provider, "GET", "QuickConnect/Connect", params={"Secret": pending.secret})
        if response.status_code in (401, 404):
            raise _no_quick_connect("the Quick Connect code expired; ask for a new one")
        if not self._answer(provider, response, _QuickConnect).authenticated:
            return None
        response = await self._post(provider, "Users/AuthenticateWithQuickConnect", {"Secret": pending.secret})
        if response.status_code in (401, 404):
            raise _no_quick_connect("the Quick Connect code expired; ask for a new one")
        return await self._signed_in(provider, response)

    async def resume(self, ticket: str) -> tuple[User, str]:
        """A later login with the ticket of an earlier one: the same user, if Jellyfin still has them."""
        provider, user_id = self._ticket_holder(ticket)
        try:
            user = await provider.user(user_id)
        except ProviderError as exc:
            raise _unavailable("the Jellyfin server cannot be reached right now; try again") from exc
        if user is None:
            raise _invalid("this Jellyfin user can no longer sign in here; sign in again")
        return self._user(provider, user), self._issue(provider, user.id)

    # -- what a sign-in gives ---------------------------------------------------------------------

    async def _signed_in(self, provider: JellyfinProvider, response: httpx.Response) -> tuple[User, str]:
        if response.status_code == 403:
            raise _invalid("Jellyfin does not let this user sign in from here")
        result = self._answer(provider, response, _Authenticated)
        # The session Jellyfin opened is not needed: only who signed in is.
        with contextlib.suppress(ProtocolError):
            await self._post(provider, "Sessions/Logout", None, token=result.access_token)
        if provider.server_id and result.server_id and result.server_id != provider.server_id:
            raise _unavailable("the Jellyfin server answered as another server; check its URL")
        if result.user.policy.is_disabled:
            raise _invalid("this Jellyfin user is disabled")
        return self._user(provider, result.user), self._issue(provider, result.user.id)

    def _user(self, provider: JellyfinProvider, user: UserDto) -> User:
        try:
            name = clean_name(user.name, self._settings.max_name_length)
        except ValueError as exc:
            raise ProtocolError(
                Reply.LOGIN_ERROR, ErrorName.INVALID_USER_NAME, f"the Jellyfin user name {exc}"
            ) from exc
        creators = self._settings.room_creators
        return User(
            userName=name,
            avatarImage=provider.person(user).avatar,
            permissions=[CAN_CREATE_ROOM] if creators in ("anyone", "jellyfin", "server-users") else [],
            identity=jellyfin_identity(provider.server_id or "", user.id),
        )

    def account_of(self, user: User) -> tuple[JellyfinProvider, str] | None:
        """The server and user id of a user this signed in (from their identity)."""
        identity = user.identity or ""
        for provider in self._servers.values():
            prefix = provider.identity("")
            if provider.server_id and identity.startswith(prefix):
                return provider, identity.removeprefix(prefix)
        return None

    # -- tickets ----------------------------------------------------------------------------------

    @staticmethod
    def _key(provider: JellyfinProvider) -> bytes:
        return hmac.new(provider.config.token.get_secret_value().encode(), _TICKET_PURPOSE, hashlib.sha256).digest()

    def _issue(self, provider: JellyfinProvider, user_id: str) -> str:
        body = _b64(json.dumps([provider.server_id, user_id, int(self._clock())]).encode())
        return f"{body}.{_b64(hmac.new(self._key(provider), body.encode(), hashlib.sha256).digest())}"

    def _ticket_holder(self, ticket: str) -> tuple[JellyfinProvider, str]:
        body, _, signature = ticket.partition(".")
        try:
            server_id, user_id, issued = json.loads(_unb64(body))
            mac = _unb64(signature)
        except (ValueError, binascii.Error, TypeError):
            raise _invalid("that is not a Jellyfin sign-in of this server; sign in again") from None
        provider = next((p for p in self._servers.values() if p.server_id and p.server_id == server_id), None)
        if provider is None:
            if any(p.server_id is None for p in self._servers.values()):
                raise _unavailable("the Jellyfin server has not answered yet; try again")
            raise _invalid("that Jellyfin server offers no sign-in here; sign in again")
        expected = hmac.new(self._key(provider), body.encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(mac, expected) or not isinstance(user_id, str) or not isinstance(issued, int):
            raise _invalid("that is not a Jellyfin sign-in of this server; sign in again")
        if self._clock() - issued > TICKET_DAYS * 86_400:
            raise _invalid("the Jellyfin sign-in expired; sign in again")
        return provider, user_id

    # -- requests ---------------------------------------------------------------------------------

    def _provider(self, server: str | None) -> JellyfinProvider:
        if server is None and self._servers:
            return next(iter(self._servers.values()))
        provider = self._servers.get(server or "")
        if provider is None:
            raise _invalid("that Jellyfin server offers no sign-in here")
        return provider

    async def _check_quick_connect(self, server_id: str) -> None:
        """Whether Quick Connect is on (``GET /QuickConnect/Enabled``; servers without it answer 404)."""
        provider = self._servers[server_id]
        try:
            response = await self._request(provider, "GET", "QuickConnect/Enabled")
        except ProtocolError:
            return  # asked again at the first Quick Connect sign-in
        self._quick_connect[server_id] = response.is_success and response.content.strip() == b"true"

    async def _post(
        self, provider: JellyfinProvider, path: str, body: dict[str, str] | None, *, token: str | None = None
    ) -> httpx.Response:
        return await self._request(provider, "POST", path, json_body=body, token=token)

    async def _request(
        self,
        provider: JellyfinProvider,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        json_body: dict[str, str] | None = None,
        token: str | None = None,
    ) -> httpx.Response:
        client = self._clients.get(provider.id)
        if client is None:
            raise RuntimeError("JellyfinSignIn.open() was not called")
        headers = {"Authorization": authorization(self._device_id, token)}
        try:
            return await client.request(method, path, params=params, json=json_body, headers=headers)
        except httpx.HTTPError as exc:
            problem = transport_problem(exc) if isinstance(exc, httpx.RequestError) else str(exc)
            log.warning("Jellyfin sign-in: the server at %s %s", provider.base_url, problem)
            raise _unavailable("the Jellyfin server cannot be reached right now; try again") from exc

    def _answer(self, provider: JellyfinProvider, response: httpx.Response, shape: type[Answer]) -> Answer:
        if not response.is_success:
            log.warning(
                "Jellyfin sign-in: %s answered %s with HTTP %d",
                provider.base_url,
                response.url.path,
                response.status_code,
            )
            raise _unavailable(f"the Jellyfin server answered with status {response.status_code}; try again later")
        try:
            return shape.model_validate_json(response.content)
        except ValidationError:
            # The details would quote the answer, which holds a token.
            log.warning("Jellyfin sign-in: %s sent an unexpected answer to %s", provider.base_url, response.url.path)
            raise _unavailable("the Jellyfin server sent an unexpected answer; try again later") from None
