"""Sign-in with a Plex token, checked against a fake plex.tv over real HTTP (tests/fake_plex.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import httpx
import pytest

from server.config import MediaServer, Settings
from server.protocol import ProtocolError
from server.providers.plex import TIMEOUT, PlexProvider
from server.providers.plex_tv import PlexTvSignIn
from tests import fakes
from tests.fake_plex import MACHINE_IDENTIFIER, PLEX_TOKEN, FakePlex, FakePlexTv, PlexAccount
from tests.fakes import Fault, bound_socket, no_secret_logged, serving, socket_url

pytestmark = pytest.mark.anyio

ALICE = "alice-token-Ux83Lq"  # may use the configured server
BOB = "bob-token-Pe51Wd"  # has a server of his own only
KID = "kid-token-Hm27Zr"  # a managed Plex Home user: no username, a title
STRANGER = "stranger-token-Ty64Nb"  # not a plex.tv account
SECRETS = (ALICE, BOB, KID, STRANGER, PLEX_TOKEN)
BROWSER_CLIENT = "browser-client-id-30-characters"
OUR_CLIENT = "moviematch-client"
AVATAR = "https://plex.tv/users/5e1f/avatar?c=1700000000"


no_token_logged = no_secret_logged(*SECRETS)
assert_clean = partial(fakes.assert_clean, SECRETS)


@pytest.fixture
def plex_tv() -> FakePlexTv:
    return FakePlexTv(
        accounts={
            ALICE: PlexAccount(1001, "alice", "Alice", AVATAR, servers=["f" * 32, MACHINE_IDENTIFIER]),
            BOB: PlexAccount(1002, "bob", "Bob", None, servers=["e" * 32]),
            KID: PlexAccount(1003, "", "Kid", None, servers=[MACHINE_IDENTIFIER]),
        }
    )


@pytest.fixture
def plex_tv_url(plex_tv: FakePlexTv) -> Iterator[str]:
    with serving(plex_tv) as url:
        yield url


@pytest.fixture
async def plex_server() -> AsyncIterator[PlexProvider]:
    """A configured Plex server that has answered, so its machine identifier is known."""
    with serving(FakePlex()) as url:
        server = MediaServer.model_validate({"url": url, "token": PLEX_TOKEN})
        provider = PlexProvider(server, provider_id="plex-test", client_id=OUR_CLIENT)
        await provider.open()
        try:
            yield provider
        finally:
            await provider.close()


@asynccontextmanager
async def signing_in(
    plex_tv_url: str, servers: list[PlexProvider] | None = None, *, timeouts: httpx.Timeout = TIMEOUT, **settings: Any
) -> AsyncIterator[PlexTvSignIn]:
    sign_in = PlexTvSignIn(
        Settings.model_validate({"plex_tv_url": plex_tv_url, **settings}),
        client_id=OUR_CLIENT,
        plex_servers=lambda: servers or [],
        timeout=timeouts,
    )
    await sign_in.open()
    try:
        yield sign_in
    finally:
        await sign_in.close()


async def refused(sign_in: PlexTvSignIn, token: str) -> ProtocolError:
    with pytest.raises(ProtocolError) as caught:
        await sign_in(token, BROWSER_CLIENT)
    error = caught.value
    assert error.reply_type == "loginError"
    assert_clean(error, error.payload())
    return error


async def test_a_valid_token_signs_in(plex_tv: FakePlexTv, plex_tv_url: str) -> None:
    async with signing_in(plex_tv_url) as sign_in:
        user = await sign_in(ALICE, BROWSER_CLIENT)
    assert user.userName == "alice"
    assert user.avatarImage == AVATAR
    assert user.plex_id == "1001"
    assert user.permissions == ["CanCreateRoom"]
    assert_clean(user.model_dump_json(), user.public())
    [seen] = plex_tv.received
    assert seen.path == "/api/v2/user"
    assert seen.headers["x-plex-token"] == ALICE
    assert seen.headers["x-plex-client-identifier"] == BROWSER_CLIENT
    assert seen.headers["accept"] == "application/json"
    assert seen.headers["x-plex-product"] == "MovieMatch"
    assert ALICE not in seen.query


async def test_our_client_id_stands_in_for_a_missing_one(plex_tv: FakePlexTv, plex_tv_url: str) -> None:
    async with signing_in(plex_tv_url) as sign_in:
        await sign_in(ALICE, "")
        await sign_in(ALICE, "not a header\nvalue")
    assert [seen.headers["x-plex-client-identifier"] for seen in plex_tv.received] == [OUR_CLIENT, OUR_CLIENT]


async def test_a_home_user_without_a_username_goes_by_their_title(plex_tv_url: str) -> None:
    async with signing_in(plex_tv_url) as sign_in:
        user = await sign_in(KID, BROWSER_CLIENT)
    assert (user.userName, user.avatarImage, user.plex_id) == ("Kid", None, "1003")


@pytest.mark.parametrize("room_creators", ["anyone", "plex"])
async def test_every_plex_user_may_create_rooms_unless_limited(
    plex_tv: FakePlexTv, plex_tv_url: str, room_creators: str
) -> None:
    async with signing_in(plex_tv_url, room_creators=room_creators) as sign_in:
        assert (await sign_in(BOB, BROWSER_CLIENT)).permissions == ["CanCreateRoom"]
    assert not plex_tv.requests_to("/api/v2/resources")


async def test_plex_users_may_not_create_rooms_where_only_jellyfin_users_may(
    plex_tv: FakePlexTv, plex_tv_url: str
) -> None:
    async with signing_in(plex_tv_url, room_creators="jellyfin") as sign_in:
        assert (await sign_in(ALICE, BROWSER_CLIENT)).permissions == []
    assert not plex_tv.requests_to("/api/v2/resources")


async def test_server_users_are_those_plex_tv_lists_our_server_for(
    plex_tv: FakePlexTv, plex_tv_url: str, plex_server: PlexProvider
) -> None:
    async with signing_in(plex_tv_url, [plex_server], room_creators="server-users") as sign_in:
        alice, bob, kid = [await sign_in(token, BROWSER_CLIENT) for token in (ALICE, BOB, KID)]
    assert alice.permissions == ["CanCreateRoom"]
    assert kid.permissions == ["CanCreateRoom"]
    assert bob.permissions == []  # signed in, but may only join rooms
    lookups = plex_tv.requests_to("/api/v2/resources")
    assert [seen.headers["x-plex-token"] for seen in lookups] == [ALICE, BOB, KID]  # each user's own token
    assert {seen.param("includeHttps") for seen in lookups} == {"1"}


async def test_server_users_cannot_be_told_before_the_server_answers(
    plex_tv: FakePlexTv, plex_tv_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    sock = bound_socket()
    unreachable = PlexProvider(
        MediaServer.model_validate({"url": socket_url(sock), "token": PLEX_TOKEN}), provider_id="p", client_id="c"
    )
    async with signing_in(plex_tv_url, [unreachable], room_creators="server-users") as sign_in:
        assert (await sign_in(ALICE, BROWSER_CLIENT)).permissions == []
    sock.close()
    assert not plex_tv.requests_to("/api/v2/resources")
    assert any("no configured Plex server has answered" in record.getMessage() for record in caplog.records)


async def test_a_rejected_token_is_plex_auth_invalid(plex_tv_url: str) -> None:
    async with signing_in(plex_tv_url) as sign_in:
        error = await refused(sign_in, STRANGER)
    assert error.name == "PlexAuthInvalid"


async def test_a_token_that_cannot_be_a_header_is_refused_unsent(plex_tv: FakePlexTv, plex_tv_url: str) -> None:
    async with signing_in(plex_tv_url) as sign_in:
        for token in ("", "two words", "line\nbreak", "é" * 10, "x" * 5000):
            assert (await refused(sign_in, token)).name == "PlexAuthInvalid"
    assert not plex_tv.received


async def test_an_unreachable_plex_tv_is_plex_unavailable() -> None:
    sock = bound_socket()
    async with signing_in(socket_url(sock)) as sign_in:
        error = await refused(sign_in, ALICE)
    sock.close()
    assert error.name == "PlexUnavailable"
    assert "cannot be reached" in error.message
    assert isinstance(error.__cause__, httpx.ConnectError)


@pytest.mark.parametrize(
    ("fault", "words"),
    [
        (Fault("slow", "/api/v2/user", seconds=1.0), "in time"),
        (Fault("malformed", "/api/v2/user"), "unexpected answer"),
        (Fault("status", "/api/v2/user", status=503), "status 503"),
        (Fault("malformed", "/api/v2/resources"), "unexpected answer"),
    ],
)
async def test_a_failing_plex_tv_is_plex_unavailable(
    plex_tv: FakePlexTv, plex_tv_url: str, plex_server: PlexProvider, fault: Fault, words: str
) -> None:
    plex_tv.fault = fault
    async with signing_in(
        plex_tv_url, [plex_server], room_creators="server-users", timeouts=httpx.Timeout(0.3)
    ) as sign_in:
        error = await refused(sign_in, ALICE)
    assert error.name == "PlexUnavailable"
    assert words in error.message
