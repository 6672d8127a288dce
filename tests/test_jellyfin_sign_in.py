"""Sign-in with Jellyfin through the protocol: user name and password, Quick Connect, the session
ticket of later logins, who may create rooms, getPeople; against the fake Jellyfin over real HTTP.
No Jellyfin token of the user or API key ever reaches a frame or a log line."""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from server.app import create_app
from server.config import Settings
from server.identity import jellyfin_identity
from server.providers.jellyfin import JellyfinProvider
from server.providers.jellyfin_sign_in import TICKET_DAYS, JellyfinSignIn
from server.security import RedactSecrets
from storage import MemoryStorage
from tests.fake_jellyfin import ALICE, API_KEY, BOB, CAROL, SERVER_ID, SERVER_NAME, FakeJellyfin
from tests.fake_jellyfin_extras import FakeJellyfinPlus
from tests.fakes import Received, no_secret_logged, serving
from tests.peers import Connect, Peer, in_process_with_http

pytestmark = pytest.mark.anyio

no_secret_in_logs = no_secret_logged(API_KEY, ALICE.password, BOB.password, CAROL.password)


@pytest.fixture
def fake() -> Iterator[tuple[FakeJellyfin, str]]:
    jellyfin = FakeJellyfin()
    with serving(jellyfin) as url:
        yield jellyfin, url


def settings(url: str, **overrides: Any) -> Settings:
    server = {"type": "jellyfin", "url": url, "token": API_KEY, **overrides.pop("server", {})}
    return Settings.model_validate({"servers": [server], **overrides})


async def running(settings: Settings) -> AsyncIterator[tuple[Connect, httpx.AsyncClient]]:
    async with in_process_with_http(create_app(settings, storage=MemoryStorage())) as running_app:
        yield running_app


def frames_clean(fake: FakeJellyfin, *frames: Any) -> None:
    """No API key, password or Jellyfin access token in anything a browser got."""
    text = json.dumps(frames)
    for secret in (API_KEY, ALICE.password, BOB.password, *fake.signed_in, *fake.issued):
        assert secret not in text


def sign_ins(fake: FakeJellyfin) -> list[Received]:
    return fake.requests_to("/Users/AuthenticateByName")


async def password_login(peer: Peer, user: str, password: str, **extra: Any) -> tuple[str, Any]:
    await peer.send("login", {"jellyfinUser": user, "jellyfinPassword": password, **extra})
    return await peer.wait_for_any("loginSuccess", "loginError")


async def test_jellyfin_sign_in_is_announced(fake: tuple[FakeJellyfin, str]) -> None:
    _, url = fake
    async for connect, _ in running(settings(url)):
        peer = await connect()
        [offered] = peer.config["jellyfinSignIn"]
        assert offered == {"id": offered["id"], "name": SERVER_NAME, "quickConnect": True}
        assert offered["id"].startswith("jellyfin-")
    async for connect, _ in running(settings(url, server={"sign_in": False})):
        assert "jellyfinSignIn" not in (await connect()).config


async def test_a_user_signs_in_with_name_and_password(fake: tuple[FakeJellyfin, str]) -> None:
    jellyfin, url = fake
    async for connect, client in running(settings(url)):
        peer = await connect("bob")
        kind, user = await password_login(peer, "BOB", BOB.password)  # names ignore case, as in Jellyfin
        assert kind == "loginSuccess"
        provider_id = peer.config["jellyfinSignIn"][0]["id"]
        ticket = user.pop("jellyfinSession")
        assert user == {
            "userName": "bob",
            "avatarImage": f"api/avatar/{provider_id}/{BOB.id}",  # proxied: Jellyfin's URL may be a LAN one
            "permissions": ["CanCreateRoom"],
        }
        [sent] = sign_ins(jellyfin)
        assert 'Token="' not in sent.headers["authorization"]  # a sign-in carries no API key
        assert 'Client="MovieMatch"' in sent.headers["authorization"]
        # The session Jellyfin opened was ended at once: no token of Bob's lives on.
        assert jellyfin.signed_in == {}
        assert len(jellyfin.requests_to("/Sessions/Logout")) == 1
        avatar = await client.get("/" + user["avatarImage"])
        assert (avatar.status_code, avatar.headers["content-type"]) == (200, "image/png")
        # A room with Bob in it, as anyone else.
        await peer.create("Bob's room")
        frames_clean(jellyfin, user, ticket)
        # A later login (a reload, another process) presents the ticket: no password again.
        again = await connect("bob again")
        await again.send("login", {"jellyfinSession": ticket})
        resumed = await again.expect("loginSuccess")
        assert resumed["userName"] == "bob"
        assert resumed["jellyfinSession"]  # renewed
        assert len(sign_ins(jellyfin)) == 1
        joined = await again.join("Bob's room")
        assert joined["userName"] == "bob"  # the same person: the same seat


async def test_a_wrong_password_is_refused_and_counted(fake: tuple[FakeJellyfin, str]) -> None:
    jellyfin, url = fake
    async for connect, _ in running(settings(url, max_password_attempts=2)):
        peer = await connect()
        for _ in range(2):
            kind, error = await password_login(peer, "bob", "not-bobs-password")
            assert (kind, error["name"]) == ("loginError", "JellyfinAuthInvalid")
        kind, error = await password_login(peer, "bob", BOB.password)
        assert (kind, error["name"]) == ("loginError", "TooManyAttempts")  # not even tried
        assert len(sign_ins(jellyfin)) == 2
        kind, error = await password_login(await connect(), "carol", CAROL.password)
        assert error["name"] in ("JellyfinAuthInvalid", "TooManyAttempts")


async def test_a_disabled_user_cannot_sign_in(fake: tuple[FakeJellyfin, str]) -> None:
    _, url = fake
    async for connect, _ in running(settings(url)):
        kind, error = await password_login(await connect(), "carol", CAROL.password)
        assert (kind, error["name"]) == ("loginError", "JellyfinAuthInvalid")


async def test_quick_connect(fake: tuple[FakeJellyfin, str]) -> None:
    jellyfin, url = fake
    async for connect, _ in running(settings(url)):
        peer = await connect()
        await peer.send("jellyfinQuickConnect")
        started = await peer.expect("jellyfinQuickConnectCode")
        code = started["code"]
        assert code in jellyfin.quick_connects
        assert started["jellyfinServer"] == peer.config["jellyfinSignIn"][0]["id"]
        assert set(started) == {"code", "jellyfinServer"}  # the secret stays on the server
        await peer.send("jellyfinQuickConnectCheck")
        assert await peer.expect("jellyfinQuickConnectPending") == {"code": code}
        # Alice enters the code in her Jellyfin app.
        async with httpx.AsyncClient(base_url=url) as jellyfin_app:
            approved = await jellyfin_app.post(
                "/QuickConnect/Authorize",
                params={"code": code, "userId": ALICE.id},
                headers={"Authorization": f'MediaBrowser Token="{API_KEY}"'},
            )
            assert approved.status_code == 200
        await peer.send("jellyfinQuickConnectCheck")
        user = await peer.expect("loginSuccess")
        assert user["userName"] == "alice"
        assert jellyfin.signed_in == {}  # ended at once
        frames_clean(jellyfin, started, user)
        await peer.send("jellyfinQuickConnectCheck")  # it is over
        assert (await peer.expect("loginError"))["name"] == "QuickConnectUnavailable"


async def test_no_quick_connect_where_the_server_has_it_off_or_none(fake: tuple[FakeJellyfin, str]) -> None:
    jellyfin, url = fake
    jellyfin.quick_connect = False
    async for connect, _ in running(settings(url)):
        peer = await connect()
        assert peer.config["jellyfinSignIn"][0]["quickConnect"] is False
        await peer.send("jellyfinQuickConnect")
        assert (await peer.expect("loginError"))["name"] == "QuickConnectUnavailable"
    emby = FakeJellyfin(quick_connect=None)  # Emby: no Quick Connect at all, passwords work the same
    with serving(emby) as emby_url:
        async for connect, _ in running(settings(emby_url)):
            peer = await connect()
            assert peer.config["jellyfinSignIn"][0]["quickConnect"] is False
            kind, _ = await password_login(peer, "alice", ALICE.password)
            assert kind == "loginSuccess"


async def test_a_ticket_ends_with_the_user_or_the_key(fake: tuple[FakeJellyfin, str]) -> None:
    jellyfin, url = fake
    async for connect, _ in running(settings(url)):
        peer = await connect()
        _, user = await password_login(peer, "bob", BOB.password)
        ticket = user["jellyfinSession"]
        for forged in (ticket[:-3] + "AAA", "not.a-ticket", ticket.replace(".", "")):
            await peer.send("login", {"jellyfinSession": forged})
            assert (await peer.expect("loginError"))["name"] == "JellyfinAuthInvalid"
        await peer.send("login", {"jellyfinSession": ticket})
        assert (await peer.expect("loginSuccess"))["userName"] == "bob"
        jellyfin.users[BOB.id] = dataclasses.replace(BOB, disabled=True)  # disabled in Jellyfin
        await peer.send("login", {"jellyfinSession": ticket})
        assert (await peer.expect("loginError"))["name"] == "JellyfinAuthInvalid"
        jellyfin.users.pop(BOB.id)  # deleted
        await peer.send("login", {"jellyfinSession": ticket})
        assert (await peer.expect("loginError"))["name"] == "JellyfinAuthInvalid"
    # Another API key: every ticket made with the old one is void.
    jellyfin.users[BOB.id] = BOB
    jellyfin.key = "a-new-api-key-71e3"
    async for connect, _ in running(settings(url, server={"token": jellyfin.key})):
        peer = await connect()
        await peer.send("login", {"jellyfinSession": ticket})
        assert (await peer.expect("loginError"))["name"] == "JellyfinAuthInvalid"


async def test_tickets_expire(fake: tuple[FakeJellyfin, str]) -> None:
    _, url = fake
    now = [1_700_000_000.0]
    provider = JellyfinProvider(settings(url).servers[0], provider_id="jellyfin-1", client_id="c")
    await provider.open()
    sign_in = JellyfinSignIn(settings(url), [provider], client_id="c", clock=lambda: now[0])
    await sign_in.open()
    try:
        user, ticket = await sign_in.password(None, "alice", ALICE.password)
        assert user.identity == jellyfin_identity(SERVER_ID, ALICE.id)
        now[0] += TICKET_DAYS * 86_400 - 60
        _, renewed = await sign_in.resume(ticket)
        now[0] += 120
        with pytest.raises(Exception, match="expired"):
            await sign_in.resume(ticket)
        await sign_in.resume(renewed)
    finally:
        await sign_in.close()
        await provider.close()


@pytest.mark.parametrize(("creators", "allowed"), [("jellyfin", True), ("plex", False), ("server-users", True)])
async def test_who_may_create_rooms(fake: tuple[FakeJellyfin, str], creators: str, allowed: bool) -> None:
    _, url = fake
    async for connect, _ in running(settings(url, room_creators=creators)):
        peer = await connect()
        _, user = await password_login(peer, "alice", ALICE.password)
        assert ("CanCreateRoom" in user["permissions"]) is allowed
        await peer.send("createRoom", {"roomName": "Alice's"})
        kind, reply = await peer.wait_for_any("createRoomSuccess", "createRoomError")
        assert (kind == "createRoomSuccess") is allowed
        if not allowed:
            assert reply["name"] == "PlexAuthRequiredError"
        guest = await connect()
        await guest.login("guest")
        await guest.send("createRoom", {"roomName": "Guest's"})
        assert (await guest.wait_for("createRoomError"))["name"] == "PlexAuthRequiredError"


async def test_get_people_for_users_of_the_server(fake: tuple[FakeJellyfin, str]) -> None:
    jellyfin, url = fake
    async for connect, _ in running(settings(url)):
        guest = await connect()
        await guest.login("guest")
        await guest.send("getPeople")
        assert (await guest.expect("getPeopleError"))["name"] == "PlexAuthRequiredError"
        peer = await connect()
        await password_login(peer, "alice", ALICE.password)
        await peer.send("getPeople")
        people = (await peer.expect("getPeopleSuccess"))["people"]
        provider_id = peer.config["jellyfinSignIn"][0]["id"]
        assert people == [
            {"id": jellyfin_identity(SERVER_ID, BOB.id), "name": "bob", "avatar": f"api/avatar/{provider_id}/{BOB.id}"},
            {"id": jellyfin_identity(SERVER_ID, ALICE.id), "name": "alice"},
        ]
        frames_clean(jellyfin, people)


async def test_nothing_of_a_sign_in_is_logged(fake: tuple[FakeJellyfin, str], caplog: pytest.LogCaptureFixture) -> None:
    """Through the server's own log filter (``__main__``): Jellyfin takes the Quick Connect secret in
    the query, and httpx logs every request URL."""
    jellyfin, url = fake
    caplog.set_level(logging.DEBUG)
    config = settings(url)
    async for connect, _ in running(config):
        peer = await connect()
        _, user = await password_login(peer, "alice", ALICE.password)
        await password_login(peer, "alice", "wrong")
        await peer.send("jellyfinQuickConnect")
        await peer.expect("jellyfinQuickConnectCode")
        await peer.send("jellyfinQuickConnectCheck")
        await peer.expect("jellyfinQuickConnectPending")
    redact = RedactSecrets(config.secrets())
    lines = []
    for record in caplog.records:
        redact.filter(record)
        lines.append(logging.Formatter().format(record))
    text = "\n".join(lines)
    secrets = [
        user["jellyfinSession"],
        *jellyfin.issued,
        *(entry["Secret"] for entry in jellyfin.quick_connects.values()),
    ]
    assert len(secrets) == 3
    for secret in secrets:
        assert secret not in text
    assert "QuickConnect/Connect?Secret=***" in text  # the request is logged, its secret not


async def test_a_jellyfin_sign_ins_saved_cards_go_to_its_favourites() -> None:
    """Bob's own Jellyfin token was let go at sign-in: his favourites are changed with the API key,
    which may act for every user of that server."""
    jellyfin = FakeJellyfinPlus()
    with serving(jellyfin) as url:
        async for connect, _ in running(settings(url)):
            peer = await connect("bob")
            kind, _ = await password_login(peer, "bob", BOB.password)
            assert kind == "loginSuccess"
            created = await peer.create("Bob's room")
            card = created["media"][0]
            await peer.send("addToWatchlist", {"mediaId": card["id"]})
            saved = await peer.expect("addToWatchlistSuccess")
            assert saved["account"] == {"service": "jellyfin", "updated": True}
            assert jellyfin.favourites[BOB.id] == [card["linkUrl"].rsplit("/", 1)[-1]]
            await peer.send("removeFromWatchlist", {"mediaId": card["id"]})
            await peer.expect("removeFromWatchlistSuccess")
            assert jellyfin.favourites[BOB.id] == []
