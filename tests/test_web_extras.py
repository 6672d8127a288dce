"""Save for later, requests and play the winner in a real browser (Chromium at phone size, two
people) against the real server process: the demo library, and a fake Plex with players plus a
fake Overseerr behind it (tests/fake_plex_extras.py, tests/fake_seerr.py). Every control is used by
touch or keyboard; no token or API key is ever in a page, a WebSocket frame or the server's log.
Any JavaScript error, failed request or HTTP error in a page fails the test (tests/test_web_client.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, WebSocket, expect

from tests.fake_plex import PLEX_TOKEN, FakeLibrary
from tests.fake_plex_extras import FakePlayer, FakePlexWithPlayers
from tests.fake_seerr import SEERR_API_KEY, FakeSeerr, FakeTitle, FakeTmdbImages
from tests.fakes import serving
from tests.services import ServerProcess, running_server
from tests.test_web_client import (  # noqa: F401 (fixtures)
    PHONE,
    TOP_CARD,
    Pages,
    browser,
    close_match,
    create_room,
    expect_match,
    pages,
    playwright,
    rated,
    server,
    shoot,
    sign_in,
    top_title,
)

pytestmark = pytest.mark.slow

SECRETS = (PLEX_TOKEN, SEERR_API_KEY)


class Frames:
    """Every WebSocket frame a page sends or receives."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def watch(self, page: Page) -> Page:
        def opened(socket: WebSocket) -> None:
            socket.on("framereceived", lambda payload: self.texts.append(str(payload)))
            socket.on("framesent", lambda payload: self.texts.append(str(payload)))

        page.on("websocket", opened)
        return page

    def clean(self) -> None:
        assert self.texts, "no frame was seen"
        for text in self.texts:
            for secret in SECRETS:
                assert secret not in text


def toast(page: Page, text: str) -> None:
    expect(page.locator(".toast", has_text=text).last).to_be_visible()


# -- save for later ---------------------------------------------------------------------------------


def test_save_for_later_across_rooms_and_a_room_of_the_watchlist(server: ServerProcess, pages: Pages) -> None:  # noqa: F811 (fixtures)
    ann = pages.new("ann (phone)", phone=True)
    bob = pages.new("bob (phone)", phone=True)
    ann.goto(server.http_url + "/")
    sign_in(ann, "Ann")
    expect(ann.locator("#saved")).to_be_hidden()  # nothing saved yet
    create_room(ann, "Friday")

    # B saves the top card; the bookmark shows it; B again takes it off; the button puts it back.
    first = top_title(ann)
    save = ann.locator("#action-save")
    expect(save).to_have_attribute("aria-pressed", "false")
    ann.keyboard.press("b")
    toast(ann, f"“{first}” saved for later.")
    expect(save).to_have_attribute("aria-pressed", "true")
    ann.keyboard.press("b")
    toast(ann, f"“{first}” removed from your watchlist.")
    expect(save).to_have_attribute("aria-pressed", "false")
    save.click()
    expect(save).to_have_attribute("aria-pressed", "true")
    shoot(ann, "extras-1-saved", sizes=(PHONE,))
    # Saving is no rating: the card stays on top until it is rated.
    assert top_title(ann) == first
    second = rated(ann, first, lambda: ann.keyboard.press("ArrowLeft"))
    expect(save).to_have_attribute("aria-pressed", "false")
    # From a film's details too.
    ann.locator(TOP_CARD).click()
    toggle = ann.locator("#details .save-toggle")
    expect(toggle).to_have_attribute("aria-pressed", "false")
    toggle.click()
    expect(toggle).to_have_attribute("aria-pressed", "true")
    ann.keyboard.press("Escape")

    # Bob's list is his own.
    bob.goto(server.http_url + "/?roomName=Friday")
    sign_in(bob, "Bob")
    expect(bob.locator("#room-name")).to_have_text("Friday")
    expect(bob.locator("#action-save")).to_have_attribute("aria-pressed", "false")

    # In the lobby: Ann's two films, newest first; one removed from the list there.
    ann.click(".tab[data-tab=people]")
    ann.click("#room-leave")
    ann.click("#confirm-yes")
    expect(ann.locator("#saved-list .saved-item")).to_have_count(2)
    expect(ann.locator("#saved-list .saved-item strong")).to_have_text([second, first])
    shoot(ann, "extras-2-lobby-saved", sizes=(PHONE,))
    ann.get_by_role("button", name=f"Remove “{second}” from your watchlist").click()
    expect(ann.locator("#saved-list .saved-item")).to_have_count(1)

    # Kept across a reload (and so across rooms): a room of Ann's watchlist holds just that film.
    ann.reload()
    expect(ann.locator("#saved-list .saved-item strong")).to_have_text([first])
    ann.click("#lobby-create")
    ann.fill("#create-name", "Our list")
    ann.check("#create-watchlists")
    ann.click("#create-submit")
    expect(ann.locator("#room-name")).to_have_text("Our list")
    assert top_title(ann) == first
    ann.keyboard.press("ArrowRight")
    expect(ann.locator("#deck-empty")).to_be_visible()


# -- Plex players and Overseerr, behind one server ---------------------------------------------------


@pytest.fixture
def plex() -> FakePlexWithPlayers:
    return FakePlexWithPlayers(
        libraries=[FakeLibrary("1", "Movies", "movie", 3)],
        players=[FakePlayer("tv-livingroom", "Living Room TV"), FakePlayer("kids-tv", "Kids' TV", refuses=True)],
    )


@pytest.fixture
def seerr() -> FakeSeerr:
    return FakeSeerr([FakeTitle(603, "movie", "The Matrix", 1999, genre_ids=(28, 878), poster="/matrix.jpg")])


@pytest.fixture
def media_server(tmp_path: Path, plex: FakePlexWithPlayers, seerr: FakeSeerr) -> Iterator[ServerProcess]:
    with serving(plex) as plex_url, serving(seerr) as seerr_url, serving(FakeTmdbImages()) as images:
        (tmp_path / "config.yaml").write_text(
            "servers:\n"
            f"  - {{url: '{plex_url}', token: '{PLEX_TOKEN}'}}\n"
            f"  - {{type: seerr, url: '{seerr_url.removesuffix('/api/v1')}', token: '{SEERR_API_KEY}'}}\n"
            f"tmdb_image_url: '{images}'\n"
            "request_refresh_interval: 0.5\n"
        )
        with running_server(tmp_path / "rooms") as process:
            yield process
            output = process.output()
    for secret in SECRETS:
        assert secret not in output


def test_the_owner_plays_the_winner_and_requests_a_missing_match(
    media_server: ServerProcess,
    pages: Pages,  # noqa: F811 (the fixture of tests/test_web_client.py)
    plex: FakePlexWithPlayers,
    seerr: FakeSeerr,
) -> None:
    frames = Frames()
    ann = frames.watch(pages.new("ann (phone)", phone=True))
    bob = frames.watch(pages.new("bob (phone)", phone=True))
    ann.goto(media_server.http_url + "/")
    sign_in(ann, "Ann")
    ann.click("#lobby-create")
    ann.fill("#create-name", "Movie Night")
    for library in ("Movies", "Popular movies (not in the library: to request)"):
        ann.get_by_label(library, exact=True).check()
    ann.click("#create-submit")
    expect(ann.locator("#room-name")).to_have_text("Movie Night")
    bob.goto(media_server.http_url + "/?roomName=Movie+Night")
    sign_in(bob, "Bob")
    expect(bob.locator("#room-name")).to_have_text("Movie Night")

    # Four cards: three films of the library and one it lacks, marked so, its poster from this server.
    missing = None
    for _ in range(4):
        title = top_title(ann)
        card = ann.locator(TOP_CARD)
        if title == "The Matrix":
            missing = title
            expect(card.locator(".badge--missing")).to_have_text("Not in the library")
            poster = card.locator(".card__poster")
            expect(poster).to_have_js_property("complete", True)
            assert poster.evaluate("img => img.naturalWidth") > 0
            source = poster.evaluate("img => img.currentSrc")
            assert source.startswith(f"{media_server.http_url}/api/poster/seerr-"), source
            shoot(ann, "extras-3-not-in-library", sizes=(PHONE,))
        else:
            expect(card.locator(".badge--missing")).to_have_count(0)
        assert top_title(bob) == title
        bob.click("#action-like")
        ann.click("#action-like")
        for page in (ann, bob):
            expect_match(page, title)
        if title == "The Matrix":
            # In the match itself: its state for everyone, the Request button for the owner only.
            expect(ann.locator("#match-extras .request__state")).to_have_text("Not requested yet")
            expect(ann.locator("#match-extras .request__button")).to_be_visible()
            expect(ann.locator("#match-extras .play-on")).to_have_count(0)
        else:
            expect(ann.locator("#match-extras .play-on")).to_be_visible()
        close_match(ann)
        close_match(bob)
    assert missing == "The Matrix"

    # Bob, not the owner, sees the states and no buttons.
    bob.click(".tab[data-tab=matches]")
    expect(bob.locator("#matches-list .match-item")).to_have_count(4)
    expect(bob.locator("#matches-list .play-on")).to_have_count(0)
    expect(bob.locator("#matches-list .request__button")).to_have_count(0)
    expect(bob.locator("#matches-list .request__state")).to_have_text("Not requested yet")

    # The owner requests the missing match with one tap; both see its state, and its changes.
    ann.click(".tab[data-tab=matches]")
    ann.get_by_role("button", name="Request “The Matrix”").click()
    for page in (ann, bob):
        expect(page.locator("#matches-list .request__state")).to_have_text("Requested, waiting for approval")
    expect(ann.locator("#matches-list .request__button")).to_have_count(0)
    [made] = seerr.requests_to("/request")
    assert made.headers["x-api-key"] == SEERR_API_KEY
    seerr.title("movie", 603).requests[0].status = 2
    seerr.title("movie", 603).media_status = 3
    for page in (ann, bob):
        expect(page.locator("#matches-list .request__state")).to_have_text("Approved, on its way")
    toast(bob, "“The Matrix”: Approved, on its way.")
    shoot(bob, "extras-4-request-state", sizes=(PHONE,))

    # Play the winner: by keyboard, from the list of matches, on the Plex server's players.
    play = ann.locator("#matches-list .play-on").first
    play.focus()
    ann.keyboard.press("Enter")
    dialog = ann.locator("#players-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.locator(".player")).to_have_count(2)
    expect(dialog.locator(".player").first).to_be_focused()
    shoot(ann, "extras-5-players", sizes=(PHONE,))
    # A player that refuses: said in the dialog, which stays open to pick another.
    dialog.locator(".player", has_text="Kids' TV").click()
    expect(ann.locator("#players-error")).to_have_text("That player refused: this server may not start films on it.")
    # The one that takes it: the dialog closes, everyone hears where it plays.
    dialog.locator(".player", has_text="Living Room TV").click()
    expect(dialog).to_be_hidden()
    for page in (ann, bob):
        toast(page, "is playing on Living Room TV.")
    [command] = plex.players["tv-livingroom"].played
    assert re.fullmatch(r"/library/metadata/\d+", command["key"])

    # A player gone since it was listed: said plainly.
    play.click()
    expect(dialog.locator(".player")).to_have_count(2)
    plex.players["tv-livingroom"].reachable = False
    dialog.locator(".player", has_text="Living Room TV").click()
    expect(ann.locator("#players-error")).to_contain_text("That player is gone")
    ann.keyboard.press("Escape")
    expect(dialog).to_be_hidden()

    for page in (ann, bob):
        text = page.content()
        for secret in SECRETS:
            assert secret not in text
    frames.clean()
