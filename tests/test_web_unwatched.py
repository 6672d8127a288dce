"""The web client in a real browser with "unwatched by all of us": the people picker of the create
form (the Jellyfin server's users, with their avatars), the deck without what the picked people
watched, and the question at join, answered yes by the creator and no by a member, who is not
asked again. Any JavaScript error, console error, failed request or HTTP error in a page fails the
test (tests/test_web_client.py's page watch)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.fake_jellyfin import ALICE, API_KEY, BOB, FakeJellyfin, FakeLibrary, FakeUser, guid
from tests.fakes import serving
from tests.services import ServerProcess, running_server

# The browser fixtures of test_web_client, used here by their names (hence the noqa below).
from tests.test_web_client import TOP_CARD, Pages, browser, pages, playwright, shoot  # noqa: F401

pytestmark = pytest.mark.slow

FILMS = 12
DORA = FakeUser(guid(0xD02A), "dora", watched_every=4, password="dora-pass-Qe73")


@contextmanager
def with_people(tmp_path: Path) -> Iterator[tuple[FakeJellyfin, ServerProcess]]:
    """MovieMatch on a Jellyfin server of 12 films whose users are Bob (who watched every second
    one), Alice (every third) and Dora (every fourth)."""
    jellyfin = FakeJellyfin(
        libraries=[FakeLibrary(1, "Movies", "movies", FILMS, imdb_base=1)], users=(BOB, ALICE, DORA)
    )
    with ExitStack() as stack:
        url = stack.enter_context(serving(jellyfin))
        config = tmp_path / "config.yaml"
        config.write_text(json.dumps({"servers": [{"type": "jellyfin", "url": url, "token": API_KEY}]}))
        yield jellyfin, stack.enter_context(running_server(tmp_path / "rooms", CONFIG_PATH=str(config)))


def sign_in(page: Page, user: FakeUser) -> None:
    page.fill("#jellyfin-user", user.name)
    page.fill("#jellyfin-password", user.password)
    page.click("#jellyfin-submit")


def frames_of(page: Page) -> list[str]:
    """Every WebSocket frame the page will receive."""
    frames: list[str] = []
    page.on("websocket", lambda socket: socket.on("framereceived", lambda payload: frames.append(str(payload))))
    return frames


def deck_titles(page: Page) -> set[str]:
    """Every card of the deck, each disliked in turn (the deck is done then)."""
    titles: set[str] = set()
    while page.locator("#deck-empty").is_hidden():
        title = page.locator(f"{TOP_CARD} .card__title")
        expect(title).to_be_visible()
        shown = title.inner_text()
        titles.add(shown)
        # Exactly its title: "Movies 1" is part of "Movies 11", which may well come next.
        on_top = page.locator(f"{TOP_CARD} .card__title").filter(has_text=re.compile(rf"^{re.escape(shown)}$"))
        expect(on_top).to_have_count(1)
        # The button, not a key: a click waits until the client can rate (not while it joins).
        page.click("#action-dislike")
        expect(on_top).to_have_count(0)
    return titles


def films(*indexes: int) -> set[str]:
    return {f"Movies {index}" for index in indexes}


def asked(page: Page) -> None:
    expect(page.locator("#confirm")).to_be_visible()
    expect(page.locator("#confirm-message")).to_have_text(
        "This room leaves out films its people have already watched. Leave out the ones you have watched too? "
        "The others may notice which films go."
    )


def test_pick_the_people_whose_watched_films_stay_out(tmp_path: Path, pages: Pages) -> None:  # noqa: F811
    with with_people(tmp_path) as (jellyfin, server):
        alice = pages.new("alice", phone=True)
        frames = frames_of(alice)
        alice.goto(server.http_url + "/")
        sign_in(alice, ALICE)
        expect(alice.locator("#lobby-user")).to_have_text("alice")
        alice.click("#lobby-create")
        people = alice.locator("#create-people .person")
        expect(people.locator(".person__name")).to_have_text(["bob", "alice", "dora"])
        # Bob's picture, through this server (the page loads it: a failed request would fail the test).
        picture = people.nth(0).locator("img.avatar__image")
        expect(picture).to_have_attribute("src", re.compile(rf"^api/avatar/jellyfin-[0-9a-f]{{8}}/{BOB.id}$"))
        expect(picture).to_have_js_property("complete", True)
        assert picture.evaluate("image => image.naturalWidth") > 0
        alice.fill("#create-name", "Movie Night")
        people.nth(0).get_by_role("checkbox").check()
        alice.locator("#create-unwatched-members").check()
        shoot(alice, "create-people")
        alice.click("#create-submit")
        expect(alice.locator("#room-name")).to_have_text("Movie Night")
        # Alice is one of the server's people: she is asked, and says yes; her deck loses her films.
        asked(alice)
        shoot(alice, "unwatched-question")
        alice.click("#confirm-yes")
        expect(alice.locator("#confirm")).to_be_hidden()
        for _ in range(600):
            if any('"counted":true' in frame for frame in frames):
                break
            alice.wait_for_timeout(100)
        unseen = films(1, 5, 7, 11)  # Bob watched the even ones, Alice every third
        assert deck_titles(alice) == unseen

        # Dora is asked too, and says no: her deck keeps what she watched, and she is not asked again.
        dora = pages.new("dora", phone=False)
        dora.goto(server.http_url + "/?roomName=Movie%20Night")
        sign_in(dora, DORA)
        expect(dora.locator("#room-name")).to_have_text("Movie Night")
        asked(dora)
        dora.click("#confirm-no")
        expect(dora.locator("#confirm")).to_be_hidden()
        assert deck_titles(dora) == unseen
        dora.reload()
        expect(dora.locator("#room-name")).to_have_text("Movie Night")
        expect(dora.locator("#deck-empty")).to_be_visible()
        expect(dora.locator("#confirm")).to_be_hidden()
        pages.close()
        text = "\n".join([*frames, server.output()])
        for secret in (API_KEY, ALICE.password, DORA.password, *jellyfin.issued):
            assert secret not in text
