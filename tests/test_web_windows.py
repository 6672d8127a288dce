"""The web client takes the room's deck a window at a time (docs/protocol.md, "Windows of the deck"),
in a real browser (Debian's chromium driven by Playwright) against the real server on a catalogue
of a few hundred films: every login asks for windows, no frame the page receives carries more than
a window of cards, the next window is asked for (one request at a time, from where the last one
ended) before the stack runs out, every film comes up exactly once, undo and a reload mid-deck
resume at the right card, two members match on a card of a later window, a standing room's new
films come once whether windows are left or not, and "you have rated every film" appears only
after the last card. The page's WebSocket frames are read as they pass (page.on("websocket")).
Any JavaScript error, console error, failed request or HTTP error in a page fails the test
(tests/test_web_client.py's page watch). Nothing here measures time.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from playwright.sync_api import Page, WebSocket, expect

from server.i18n import available
from tests.fake_jellyfin import ALICE, API_KEY, BOB
from tests.services import ServerProcess, running_server
from tests.test_web_client import (  # noqa: F401 (fixtures)
    TOP_CARD,
    Pages,
    browser,
    close_match,
    create_room,
    expect_match,
    pages,
    playwright,
    sign_in,
    top_title,
)
from tests.test_web_identity import with_stored
from tests.test_web_jellyfin import with_jellyfin

pytestmark = pytest.mark.slow

WINDOW = 40  # what the client asks for (static/js/session.js DECK_WINDOW)
LOW_WATER = 10  # the client asks for the next window when this few cards are left
FILMS = 250
DECK_DONE = available()["en"]["RATE_SECTION_EXHAUSTED_CARDS"]
CARDS_REPLIES = ("createRoomSuccess", "joinRoomSuccess", "getCardsSuccess")
KEYS = ("ArrowRight", "ArrowLeft")
BUTTONS = ("#action-like", "#action-dislike")


# -- the server and its films ----------------------------------------------------------------------


def title_of(number: int) -> str:
    return f"Film {number:03d}"


def write_catalogue(path: Path, numbers: range) -> None:
    """A catalogue file of films numbered ``numbers``, years rising with the number (so "oldest" is their order)."""
    films = [{"id": f"film-{n:03d}", "title": title_of(n), "year": 1900 + n // 4, "genres": ["Drama"]} for n in numbers]
    path.write_text(json.dumps({"title": "Archive", "films": films}), encoding="utf-8")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    catalogue = tmp_path / "films.json"
    write_catalogue(catalogue, range(1, FILMS + 1))
    with running_server(tmp_path / "rooms", CATALOGUE_FILE=str(catalogue)) as process:
        yield process


# -- what the page sends and receives --------------------------------------------------------------


@dataclass
class Frame:
    sent: bool
    type: str
    payload: Any


@dataclass
class Frames:
    """Every message a page sends or receives over its WebSockets (all of them, reloads included), in order."""

    log: list[Frame] = field(default_factory=list)

    def watch(self, page: Page) -> Page:
        def opened(socket: WebSocket) -> None:
            socket.on("framesent", lambda data: self.add(data, sent=True))
            socket.on("framereceived", lambda data: self.add(data, sent=False))

        page.on("websocket", opened)
        return page

    def add(self, data: str | bytes, *, sent: bool) -> None:
        message = json.loads(data)
        self.log.append(Frame(sent, message["type"], message.get("payload")))

    def sent(self, message_type: str) -> list[Any]:
        return [frame.payload for frame in self.log if frame.sent and frame.type == message_type]

    def received(self, message_type: str) -> list[Any]:
        return [frame.payload for frame in self.log if not frame.sent and frame.type == message_type]


def wait_until(page: Page, condition: Callable[[], bool], what: str) -> None:
    """Let the page run until ``condition`` holds (frames are recorded while Playwright waits)."""
    for _ in range(600):  # 30 s: only a hang takes that long
        if condition():
            return
        page.wait_for_timeout(50)
    raise AssertionError(f"never happened: {what}")


def check_windows(frames: Frames) -> list[list[str]]:
    """What every page must keep to: each login asks for windows; no frame carries more than a
    window of cards; getCards goes one at a time (one the server dropped as RateLimited is left
    for the join again that follows), from where the last window (or join) ended; no card comes
    twice between two joins. Returns the titles of the cards received, join by join."""
    assert frames.sent("login"), "no login"
    for login in frames.sent("login"):
        assert login["window"] == WINDOW, login
    joins: list[list[str]] = []
    ids: list[list[str]] = []
    after: int | None = None
    asked = False
    for frame in frames.log:
        media = frame.payload.get("media") if isinstance(frame.payload, dict) else None
        if not frame.sent and isinstance(media, list):
            assert len(media) <= WINDOW, f"{frame.type} carries {len(media)} cards"
        if frame.sent and frame.type == "getCards":
            assert not asked, "a second getCards while one is unanswered"
            assert frame.payload == {"after": after}, (frame.payload, after)
            asked = True
        elif not frame.sent and frame.type in CARDS_REPLIES:
            assert isinstance(media, list)
            if frame.type == "getCardsSuccess":
                assert asked, "an answer to no request"
                after = frame.payload["after"]
                joins[-1] += [item["title"] for item in media]
                ids[-1] += [item["id"] for item in media]
            else:
                after = frame.payload["window"]["after"]
                joins.append([item["title"] for item in media])
                ids.append([item["id"] for item in media])
            asked = False
    for cards in ids:
        assert len(set(cards)) == len(cards), "a card came twice"
    return joins


# -- what a person does ----------------------------------------------------------------------------


@dataclass
class Swiper:
    """A person rating card after card, in turn by keys and by buttons, noting each title rated."""

    page: Page
    seen: list[str] = field(default_factory=list)

    def rate(self, *, like: bool | None = None) -> str:
        """Rate the top card (like or dislike, alternating when not said) and return its title."""
        title = top_title(self.page)
        turn = len(self.seen)
        rating = (turn % 2 == 0) if like is None else like
        keys = turn % 4 < 2
        if keys:
            self.page.keyboard.press(KEYS[0] if rating else KEYS[1])
        else:
            self.page.click(BUTTONS[0] if rating else BUTTONS[1])
        self.seen.append(title)
        return title

    def rate_and_wait(self, *, like: bool | None = None) -> str:
        title = self.rate(like=like)
        expect(self.page.locator(f"{TOP_CARD} .card__title")).not_to_have_text(title)
        return title

    def rate_to_the_end(self, films: int) -> None:
        """Rate every card left of ``films``: "you have rated every film" shows after the last one only."""
        empty = self.page.locator("#deck-empty")
        while len(self.seen) < films - 1:
            self.rate_and_wait()
        expect(empty).to_be_hidden()
        self.rate()
        expect(self.page.locator("#deck-empty-text")).to_have_text(DECK_DONE)
        expect(empty).to_be_visible()
        expect(self.page.locator(TOP_CARD)).to_have_count(0)


def never_shows_deck_done(page: Page) -> None:
    """Count, in the page, each time "you have rated every film" is shown (it must not be, mid-deck)."""
    page.evaluate(
        """() => {
            window.deckDoneShown = 0;
            const empty = document.getElementById("deck-empty");
            new MutationObserver(() => { if (!empty.hidden) window.deckDoneShown += 1; })
                .observe(empty, { attributes: true, attributeFilter: ["hidden"] });
        }"""
    )


def deck_done_shown(page: Page) -> int:
    shown: int = page.evaluate("window.deckDoneShown")
    return shown


# -- tests -----------------------------------------------------------------------------------------


def test_one_member_rates_the_whole_deck_a_window_at_a_time(server: ServerProcess, pages: Pages) -> None:  # noqa: F811
    frames = Frames()
    page = frames.watch(pages.new("ann", phone=True, reduced_motion=True))
    page.goto(server.http_url + "/")
    sign_in(page, "Ann")
    page.click("#lobby-create")
    page.fill("#create-name", "Archive night")
    page.select_option("#create-sort", "oldest")
    page.click("#create-submit")
    expect(page.locator("#room-name")).to_have_text("Archive night")
    assert top_title(page) == title_of(1)
    created = frames.received("createRoomSuccess")[0]
    assert len(created["media"]) == WINDOW
    assert created["window"]["more"] is True
    never_shows_deck_done(page)
    ann = Swiper(page)

    # Past the first window: the next one was asked for when 10 cards were left (after the 30th
    # rating), and it came.
    for _ in range(WINDOW + 5):
        ann.rate_and_wait()
    assert len(frames.sent("getCards")) == 1
    assert len(frames.received("getCardsSuccess")) == 1
    asked = [frame.type for frame in frames.log if frame.sent and frame.type in ("rate", "getCards")]
    assert asked.index("getCards") == WINDOW - LOW_WATER

    # Undo brings the last card back on top, wherever the windows are; then it is rated again.
    last = ann.seen[-1]
    page.keyboard.press("Backspace")
    expect(page.locator(f"{TOP_CARD} .card__title")).to_have_text(last)
    ann.seen.pop()
    for _ in range(2 * WINDOW):
        ann.rate_and_wait()
    assert ann.seen == [title_of(n) for n in range(1, len(ann.seen) + 1)]
    assert deck_done_shown(page) == 0

    # A reload mid-deck: a new login asking for windows, a join whose window starts at the first
    # film not rated yet, and the windows go on from there.
    resumes_at = top_title(page)
    rated_before_reload = len(ann.seen)
    page.reload()
    expect(page.locator("#room-name")).to_have_text("Archive night")
    assert top_title(page) == resumes_at == title_of(rated_before_reload + 1)
    wait_until(page, lambda: bool(frames.received("joinRoomSuccess")), "the join")
    rejoined = frames.received("joinRoomSuccess")[-1]
    assert rejoined["media"][0]["title"] == resumes_at
    assert len(rejoined["media"]) == WINDOW
    assert "identityToken" in frames.sent("login")[-1]
    never_shows_deck_done(page)
    ann.rate_to_the_end(FILMS)
    assert deck_done_shown(page) == 1  # the end, once

    # Every film came up once, in the room's order; the page never held the whole deck, and after
    # the reload it was sent what was left, from the first film not rated, a window at a time.
    assert ann.seen == [title_of(n) for n in range(1, FILMS + 1)]
    first, second = check_windows(frames)
    assert first == [title_of(n) for n in range(1, len(first) + 1)]
    assert len(first) < FILMS
    assert second == [title_of(n) for n in range(rated_before_reload + 1, FILMS + 1)]
    assert len(frames.sent("getCards")) >= (FILMS - WINDOW) // WINDOW
    assert frames.received("getCardsSuccess")[-1]["more"] is False

    # Back after the end: nothing to rate, the end is shown at once.
    page.reload()
    wait_until(page, lambda: len(frames.received("joinRoomSuccess")) == 2, "the join after the end")
    assert frames.received("joinRoomSuccess")[-1]["media"] == []
    assert frames.received("joinRoomSuccess")[-1]["window"]["more"] is False
    expect(page.locator("#deck-empty")).to_be_visible()
    expect(page.locator("#deck-empty-text")).to_have_text(DECK_DONE)


def test_two_members_match_on_cards_of_later_windows(server: ServerProcess, pages: Pages) -> None:  # noqa: F811
    ann_frames, bob_frames = Frames(), Frames()
    ann_page = ann_frames.watch(pages.new("ann", phone=False, reduced_motion=True))
    bob_page = bob_frames.watch(pages.new("bob", phone=True, reduced_motion=True))
    ann_page.goto(server.http_url + "/")
    sign_in(ann_page, "Ann")
    ann_page.click("#lobby-create")
    ann_page.fill("#create-name", "Pair night")
    ann_page.select_option("#create-sort", "oldest")
    ann_page.click("#create-submit")
    expect(ann_page.locator("#room-name")).to_have_text("Pair night")
    bob_page.goto(server.http_url + "/?roomName=Pair+night")
    sign_in(bob_page, "Bob")
    expect(bob_page.locator("#room-name")).to_have_text("Pair night")
    ann, bob = Swiper(ann_page), Swiper(bob_page)

    # Both like films of the first, second and third windows: a match for both each time.
    liked = (1, WINDOW + 5, 2 * WINDOW + 10)
    for number in range(1, liked[-1] + 1):
        for swiper in (ann, bob):
            assert swiper.rate_and_wait(like=number in liked) == title_of(number)
        if number in liked:
            for page in (ann_page, bob_page):
                expect_match(page, title_of(number))
                close_match(page)
    for page in (ann_page, bob_page):
        expect(page.locator("#matches-list .match-item")).to_have_count(len(liked))

    # Bob comes back: every match is there (previousMatches are complete), the deck where he was.
    bob_page.reload()
    expect(bob_page.locator("#room-name")).to_have_text("Pair night")
    assert top_title(bob_page) == title_of(liked[-1] + 1)
    wait_until(bob_page, lambda: len(bob_frames.received("joinRoomSuccess")) == 2, "Bob's join after the reload")
    expect(bob_page.locator("#matches-list .match-item")).to_have_count(len(liked))
    assert sorted(
        match_item["media"]["title"] for match_item in bob_frames.received("joinRoomSuccess")[-1]["previousMatches"]
    ) == [title_of(number) for number in liked]
    for frames in (ann_frames, bob_frames):
        check_windows(frames)
        assert len(frames.sent("getCards")) == 2


def test_a_standing_rooms_new_films_come_once_with_windows_left_or_not(tmp_path: Path, pages: Pages) -> None:  # noqa: F811
    """New films join the end of the room's list: while windows are left, a window brings them
    (roomChanged's are not added too); once none is left, roomChanged's go at the end of the stack."""
    catalogue = tmp_path / "films.json"
    write_catalogue(catalogue, range(1, 101))
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump({"catalogue": str(catalogue), "rooms": [{"name": "Club", "sort_order": "oldest"}]})
    )
    with running_server(tmp_path / "rooms", CONFIG_PATH=str(config), STANDING_ROOM_REFRESH="0.5") as server:
        frames = Frames()
        page = frames.watch(pages.new("ann", phone=True, reduced_motion=True))
        page.goto(server.http_url + "/?roomName=Club")
        sign_in(page, "Ann")
        expect(page.locator("#room-name")).to_have_text("Club")
        assert top_title(page) == title_of(1)
        ann = Swiper(page)

        # Five films more while windows are left: told, and brought by the last window.
        write_catalogue(catalogue, range(1, 106))
        wait_until(page, lambda: bool(frames.received("roomChanged")), "the first roomChanged")
        assert [item["title"] for item in frames.received("roomChanged")[0]["added"]] == [
            title_of(n) for n in range(101, 106)
        ]
        while not any(window["more"] is False for window in frames.received("getCardsSuccess")):
            ann.rate_and_wait()
        assert frames.received("getCardsSuccess")[-1]["media"][-1]["title"] == title_of(105)

        # Five more once no window is left: roomChanged's films go at the end of the stack.
        write_catalogue(catalogue, range(1, 111))
        wait_until(page, lambda: len(frames.received("roomChanged")) == 2, "the second roomChanged")
        ann.rate_to_the_end(110)
        assert ann.seen == [title_of(n) for n in range(1, 111)]
        check_windows(frames)


def test_every_sign_in_asks_for_windows(tmp_path: Path, pages: Pages) -> None:  # noqa: F811
    """By name (tested above), with a Jellyfin password, its session after a reload, Quick Connect,
    and with Plex: each login says ``window``, and the rooms of that connection come in windows."""
    with with_jellyfin(tmp_path) as (_, jellyfin_url, server):
        frames = Frames()
        page = frames.watch(pages.new("bob", phone=True))
        page.goto(server.http_url + "/")
        page.fill("#jellyfin-user", "bob")
        page.fill("#jellyfin-password", BOB.password)
        page.click("#jellyfin-submit")
        expect(page.locator("#lobby-user")).to_have_text("bob")
        page.reload()
        expect(page.locator("#lobby-user")).to_have_text("bob")
        logins = frames.sent("login")
        assert [sorted(login) for login in logins] == [
            ["jellyfinPassword", "jellyfinServer", "jellyfinUser", "window"],
            ["jellyfinSession", "window"],
        ]

        page.click("#lobby-signout")
        page.click("#jellyfin-quick-connect")
        code = page.locator("#jellyfin-code")
        expect(code).to_have_text(re.compile(r"^[0-9]{6}$"))
        approved = httpx.post(
            f"{jellyfin_url}/QuickConnect/Authorize",
            params={"code": code.inner_text(), "userId": ALICE.id},
            headers={"Authorization": f'MediaBrowser Token="{API_KEY}"'},
        )
        assert approved.status_code == 200
        expect(page.locator("#lobby-user")).to_have_text("alice")
        assert frames.sent("jellyfinQuickConnect")[0]["window"] == WINDOW
        create_room(page, "Quick night")  # on the connection Quick Connect signed in
        assert "window" in frames.received("createRoomSuccess")[0]
        check_windows(frames)

        # A Plex account signs in with the token it keeps (here one no Plex server knows).
        plex = Frames()
        cy = plex.watch(pages.new("cy", phone=True))
        with_stored(cy, {"moviematch.identity": {"plexToken": "not-a-real-token", "plexClientId": "cy-browser"}})
        cy.goto(server.http_url + "/")
        expect(cy.locator("#signin-error")).not_to_be_empty()
        assert plex.sent("login") == [{"plexToken": "not-a-real-token", "plexClientId": "cy-browser", "window": WINDOW}]
        pages.close()


def test_ratings_and_a_window_the_server_drops_in_a_flood_come_back(tmp_path: Path, pages: Pages) -> None:  # noqa: F811
    """Thirty ratings sent at once (a flood of taps) outrun the connection's allowance: the server
    drops the last ones, getCards among them, answering RateLimited. A moment later the page joins
    the room again on the same connection: the films whose ratings were dropped are back on top and
    out of the undo history, the deck goes on, and in the end every film has its rating (a reload
    finds the deck done)."""
    films = WINDOW + 20
    catalogue = tmp_path / "films.json"
    write_catalogue(catalogue, range(1, films + 1))
    # Room for the flood's first sixteen, and for a person's pace afterwards. The flood's thirty-one
    # messages outrun it even when a busy machine takes almost half a second to read them (16 + 0.5
    # * 30 = 31), and never dig a debt of a whole burst (which would close the connection).
    allowance = {"RATE_LIMIT_BURST": "16", "RATE_LIMIT_PER_SECOND": "30"}
    with running_server(tmp_path / "rooms", CATALOGUE_FILE=str(catalogue), **allowance) as server:
        frames = Frames()
        page = frames.watch(pages.new("ann", phone=False, reduced_motion=True))
        page.goto(server.http_url + "/")
        sign_in(page, "Ann")
        page.click("#lobby-create")
        page.fill("#create-name", "Flood")
        page.select_option("#create-sort", "oldest")
        page.click("#create-submit")
        assert top_title(page) == title_of(1)
        page.wait_for_timeout(1500)  # the allowance fills up again after the sign-in and create
        page.evaluate(
            """(count) => {
                for (let i = 0; i < count; i += 1) {
                    document.dispatchEvent(new KeyboardEvent("keydown", { key: "ArrowLeft", bubbles: true }));
                }
            }""",
            WINDOW - LOW_WATER,
        )
        wait_until(page, lambda: bool(frames.received("joinRoomSuccess")), "the join again after RateLimited")
        assert any(error["name"] == "RateLimited" for error in frames.received("error"))
        assert len(frames.sent("login")) == 1  # the same connection all along
        first_unrated = frames.received("joinRoomSuccess")[0]["media"][0]["title"]
        recorded = int(first_unrated.split()[1]) - 1
        assert 1 <= recorded < WINDOW - LOW_WATER, first_unrated  # some ratings were dropped, and came back
        expect(page.locator(f"{TOP_CARD} .card__title")).to_have_text(first_unrated)
        expect(page.locator("#action-undo")).to_be_enabled()  # the last recorded rating is undone ...
        page.click("#action-undo")
        expect(page.locator(f"{TOP_CARD} .card__title")).to_have_text(title_of(recorded))  # ... not a dropped one

        ann = Swiper(page, seen=[title_of(n) for n in range(1, recorded)])
        ann.rate_to_the_end(films)
        page.reload()
        expect(page.locator("#deck-empty-text")).to_have_text(DECK_DONE)
        expect(page.locator(TOP_CARD)).to_have_count(0)
        check_windows(frames)
        page.close()  # before its server stops: posters still loading would fail


def test_a_held_key_rates_one_card(server: ServerProcess, pages: Pages) -> None:  # noqa: F811
    """Keyboard auto-repeat (about 30 presses a second) must not swipe the deck away past the
    server's rate limit: only the first press of a held key rates."""
    frames = Frames()
    page = frames.watch(pages.new("ann", phone=False, reduced_motion=True))
    page.goto(server.http_url + "/")
    sign_in(page, "Ann")
    create_room(page, "Held keys")
    first = top_title(page)
    page.keyboard.down("ArrowRight")
    page.evaluate(
        """() => { for (let i = 0; i < 30; i += 1) document.dispatchEvent(
            new KeyboardEvent("keydown", { key: "ArrowRight", repeat: true, bubbles: true })); }"""
    )
    page.keyboard.up("ArrowRight")
    expect(page.locator(f"{TOP_CARD} .card__title")).not_to_have_text(first)
    page.wait_for_timeout(500)  # repeats, had they counted, would have been sent by now
    assert len(frames.sent("rate")) == 1
