"""The web client in a real browser (Debian's chromium driven by Playwright) against the real server.

Two people in two browser contexts create, share, join, rate (drag, touch, buttons, keys), match and
undo; a reload and a server restart resume the room; the same flow works through nginx on a
sub-path, with and without the proxy stripping it (the MovieMatch v2 client's posters and links
too); with two processes sharing Redis behind nginx, a page whose process is killed resumes on the
other. The connection's state is put in words (a proxy refusing WebSockets named as such); share
links point where others can open them; the installed app opens offline and never loads an old
client; no screen is wider than a phone, upright or sideways, in any of the six languages; forms
open afresh, the keyboard reaches the card first, a match vibrates. Any JavaScript error, console
error, failed request or HTTP error in a page fails the test. Screenshots of every screen at a phone
and a desktop size go to test-artifacts/screenshots/ for a person to look at; `make screenshots`
renews the kept ones of docs/screenshots/.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlencode

import httpx
import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    FloatRect,
    Page,
    Playwright,
    Request,
    Response,
    ViewportSize,
    expect,
    sync_playwright,
)

from server.addresses import lan_addresses
from tests.fake_plex import PLEX_TOKEN, FakePlex, serving
from tests.fake_plex_tv import FakePlexTv, serving_plex_tv
from tests.services import ServerProcess, free_port, require_tool, running_nginx, running_server
from tests.test_client_files import built_in

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
SCREENSHOTS = REPO / "test-artifacts" / "screenshots"
# `make screenshots` (KEEP_SCREENSHOTS=1) renews the repository's pictures of the new screens.
KEPT_SCREENSHOTS = REPO / "docs" / "screenshots" if os.environ.get("KEEP_SCREENSHOTS") == "1" else None
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PHONE: ViewportSize = {"width": 390, "height": 844}
DESKTOP: ViewportSize = {"width": 1280, "height": 800}
FIRST_LOAD_BUDGET = 150_000  # bytes transferred, posters excluded
TIMEOUT_MS = 10_000

TOP_CARD = '.card[data-depth="0"]'

Rating = Literal["like", "dislike"]


# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    require_tool("chromium")
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    chromium = require_tool("chromium")
    browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
    expect.set_options(timeout=TIMEOUT_MS)
    yield browser
    browser.close()


@dataclass
class PageProblems:
    """Everything that went wrong in the watched pages; `tolerate` names what a test does on purpose."""

    problems: list[str] = field(default_factory=list)
    tolerated: list[re.Pattern[str]] = field(default_factory=list)

    def watch(self, page: Page, who: str) -> Page:
        page.on("pageerror", lambda error: self.add(f"{who}: JavaScript error: {error}"))
        page.on("console", lambda message: self.console(who, message))
        page.on("requestfailed", lambda request: self.failed(who, request))
        page.on("response", lambda response: self.response(who, response))
        return page

    def console(self, who: str, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.add(f"{who}: console: {message.text}")

    def failed(self, who: str, request: Request) -> None:
        failure = request.failure or ""
        # An image still loading when its element goes (a poster whose card is rated away, an icon
        # of a screen left) is cancelled: that is not a failure.
        if "ERR_ABORTED" in failure and request.resource_type == "image":
            return
        self.add(f"{who}: request failed: {request.method} {request.url}: {failure}")

    def response(self, who: str, response: Response) -> None:
        if response.status >= 400:
            self.add(f"{who}: HTTP {response.status}: {response.request.method} {response.url}")

    def add(self, problem: str) -> None:
        if not any(pattern.search(problem) for pattern in self.tolerated):
            self.problems.append(problem)

    @contextmanager
    def tolerate(self, pattern: str) -> Iterator[None]:
        compiled = re.compile(pattern)
        self.tolerated.append(compiled)
        try:
            yield
        finally:
            self.tolerated.remove(compiled)

    def check(self) -> None:
        assert not self.problems, "problems in the page:\n" + "\n".join(self.problems)


class Pages:
    """Browser pages for one test, all watched for problems; closed (and checked) at the end."""

    def __init__(self, browser: Browser) -> None:
        self.browser = browser
        self.problems = PageProblems()
        self.contexts: list[BrowserContext] = []

    def new(
        self,
        who: str,
        *,
        phone: bool,
        reduced_motion: bool = False,
        locale: str = "en-US",
        viewport: ViewportSize | None = None,
    ) -> Page:
        motion: Literal["reduce", "no-preference"] = "reduce" if reduced_motion else "no-preference"
        if phone:
            context = self.browser.new_context(
                viewport=viewport or PHONE,
                device_scale_factor=2,
                is_mobile=True,
                has_touch=True,
                locale=locale,
                reduced_motion=motion,
            )
        else:
            context = self.browser.new_context(viewport=viewport or DESKTOP, locale=locale, reduced_motion=motion)
        context.set_default_timeout(TIMEOUT_MS)
        self.contexts.append(context)
        return self.problems.watch(context.new_page(), who)

    def close(self) -> None:
        """Close every page (before their server stops: a page then reconnects, which is no error)."""
        for context in self.contexts:
            context.close()
        self.contexts.clear()
        self.problems.check()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    with running_server(tmp_path / "rooms") as process:
        yield process


@pytest.fixture
def pages(browser: Browser) -> Iterator[Pages]:
    """Requested after `server`, so its pages close before the server stops."""
    opened = Pages(browser)
    yield opened
    opened.close()


# -- what a person does ----------------------------------------------------------------------------


def shoot(page: Page, name: str, sizes: tuple[ViewportSize, ...] = (PHONE, DESKTOP), *, keep: bool = False) -> None:
    """Screenshots of the current screen at the phone and the desktop size; ``keep``: also in
    docs/screenshots/ with `make screenshots` (the repository's pictures, at CSS pixel size)."""
    kept = KEPT_SCREENSHOTS if keep else None
    for folder in (SCREENSHOTS, kept):
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
    original = page.viewport_size
    for size in sizes:
        page.set_viewport_size(size)
        page.wait_for_timeout(120)  # layout and transitions settle
        file = f"{name}-{size['width']}x{size['height']}.png"
        page.screenshot(path=SCREENSHOTS / file, animations="disabled")
        if kept is not None:
            page.screenshot(path=kept / file, animations="disabled", scale="css")
    if original is not None:
        page.set_viewport_size(original)


def sign_in(page: Page, name: str) -> None:
    expect(page.locator("#signin-name")).to_be_visible()
    page.fill("#signin-name", name)
    page.click("#signin-form button[type=submit]")


def create_room(page: Page, room: str) -> None:
    page.click("#lobby-create")
    expect(page.locator("#create-name")).to_be_visible()
    page.fill("#create-name", room)
    page.click("#create-submit")
    expect(page.locator("#room-name")).to_have_text(room)
    expect(page.locator(TOP_CARD)).to_be_visible()


def cards(page: Page) -> None:
    """Back to the cards: their tab on a phone (on a desktop they are always in view)."""
    tab = page.locator(".tab[data-tab=swipe]")
    if tab.is_visible():
        tab.click()


def top_title(page: Page) -> str:
    title = page.locator(f"{TOP_CARD} .card__title")
    expect(title).to_be_visible()
    return title.inner_text()


def card_center(page: Page) -> tuple[float, float, float]:
    """Where the top card rests: a card that was just undone flies in first, and a busy machine
    may still be moving it."""
    card = page.locator(TOP_CARD)
    card.evaluate("card => Promise.all(card.getAnimations().map((animation) => animation.finished))")
    box = card.bounding_box()
    assert box is not None
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2, box["width"]


def mouse_drag(page: Page, rating: Rating) -> None:
    x, y, width = card_center(page)
    direction = 1 if rating == "like" else -1
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + direction * width * 0.6, y + 20, steps=12)
    page.mouse.up()


def touch_drag(page: Page, rating: Rating) -> None:
    """A finger flick, as touch events (which the browser turns into pointer events of type touch)."""
    x, y, width = card_center(page)
    direction = 1 if rating == "like" else -1
    cdp = page.context.new_cdp_session(page)
    cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": x, "y": y}]})
    for step in range(1, 9):
        point = {"x": x + direction * width * 0.6 * step / 8, "y": y + step * 2}
        cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [point]})
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    cdp.detach()


def rated(page: Page, before: str, action: Callable[[], None]) -> str:
    """Do a rating action and wait for the next card; returns the new top title."""
    action()
    expect(page.locator(f"{TOP_CARD} .card__title")).not_to_have_text(before)
    return top_title(page)


def expect_match(page: Page, title: str) -> None:
    dialog = page.locator("#match-dialog")
    expect(dialog).to_be_visible()
    expect(page.locator("#match-text")).to_contain_text(title)


def close_match(page: Page) -> None:
    page.click("#match-close")
    expect(page.locator("#match-dialog")).to_be_hidden()


def match_titles(page: Page) -> list[str]:
    return page.locator("#matches-list .match-item__title").all_inner_texts()


def transferred(request: Request) -> int:
    sizes = request.sizes()
    return sizes["responseBodySize"] + sizes["responseHeadersSize"]


# -- tests -------------------------------------------------------------------------------------


def test_two_people_create_share_join_rate_match_and_undo(server: ServerProcess, pages: Pages) -> None:
    ann = pages.new("ann (desktop)", phone=False)
    bob = pages.new("bob (phone)", phone=True)

    ann.goto(server.http_url + "/")
    shoot(ann, "1-sign-in")
    sign_in(ann, "Ann")
    expect(ann.locator("#join-room")).to_be_focused()
    shoot(ann, "2-join")

    # Create: a filter with suggestions from the server, then the room.
    ann.click("#lobby-create")
    ann.fill("#create-name", "Friday Films")
    ann.click("#add-filter")
    ann.select_option(".filter select >> nth=0", "genre")
    ann.select_option(".filter select >> nth=1", "!=")
    expect(ann.locator(".filter datalist option[value=Horror]")).to_have_count(1)
    ann.fill(".filter input", "Horror")
    ann.keyboard.press("Enter")
    expect(ann.locator(".filter .chip")).to_have_text("Horror")
    shoot(ann, "3-create")
    ann.click("#create-submit")
    expect(ann.locator("#room-name")).to_have_text("Friday Films")
    expect(ann).to_have_url(re.compile(r"\?roomName=Friday\+Films$"))
    first = top_title(ann)
    shoot(ann, "4-room")

    # Share: a link with the room name, and a QR code the server draws.
    ann.locator("[data-action=share]:visible").first.click()
    expect(ann.locator("#share-dialog")).to_be_visible()
    link = ann.locator("#share-url").input_value()
    assert link == f"{server.http_url}/?roomName=Friday+Films"
    expect(ann.locator("#share-qr")).to_have_js_property("complete", True)
    assert ann.locator("#share-qr").evaluate("img => img.naturalWidth") > 0
    shoot(ann, "5-share")
    ann.keyboard.press("Escape")
    expect(ann.locator("#share-dialog")).to_be_hidden()

    # Bob opens the link on his phone: sign in, then straight into the room, at the same first card.
    bob.goto(link)
    expect(bob.locator("#signin-room-note")).to_contain_text("Friday Films")
    sign_in(bob, "Bob")
    expect(bob.locator("#room-name")).to_have_text("Friday Films")
    assert top_title(bob) == first
    expect(ann.locator("#members")).to_contain_text("Bob")

    # Card 1: Ann drags it right with the mouse, Bob flicks it right with a finger: a match for both.
    second = rated(ann, first, lambda: mouse_drag(ann, "like"))
    assert rated(bob, first, lambda: touch_drag(bob, "like")) == second
    for page in (ann, bob):
        expect_match(page, first)
    shoot(bob, "6-match")
    close_match(ann)
    bob.keyboard.press("Escape")
    expect(bob.locator("#match-dialog")).to_be_hidden()

    # Card 2: Ann likes with the → key, Bob with the like button.
    third = rated(ann, second, lambda: ann.keyboard.press("ArrowRight"))
    rated(bob, second, lambda: bob.click("#action-like"))
    for page in (ann, bob):
        expect_match(page, second)
        close_match(page)

    # Card 3: both dislike (← key, dislike button), no match; then both undo and like it instead.
    fourth = rated(ann, third, lambda: ann.keyboard.press("ArrowLeft"))
    rated(bob, third, lambda: bob.click("#action-dislike"))
    assert rated(ann, fourth, lambda: ann.keyboard.press("Backspace")) == third
    assert rated(bob, fourth, lambda: bob.keyboard.press("Control+z")) == third
    rated(ann, third, lambda: ann.click("#action-like"))
    rated(bob, third, lambda: mouse_drag(bob, "like"))
    for page in (ann, bob):
        expect_match(page, third)
        close_match(page)
    expect(ann.locator("#matches-list .match-item")).to_have_count(3)

    # Bob takes his like back with the undo button: the match goes away for both.
    assert rated(bob, fourth, lambda: bob.click("#action-undo")) == third
    expect(ann.locator("#matches-list .match-item")).to_have_count(2)
    expect(bob.locator("#tab-matches-badge")).to_have_text("2")

    # The matches: the most liked first (here two likes each: the earlier match first), or the
    # newest first; each with who liked it and a link to the item.
    assert match_titles(ann) == [first, second]
    expect(ann.locator("#matches-list .match-item").first).to_contain_text("Ann and Bob")
    expect(ann.locator("#matches-list .match-item a[target=_blank]").first).to_have_attribute(
        "href", re.compile(r"/api/link/")
    )
    ann.select_option("#matches-sort", "recent")
    assert match_titles(ann) == [second, first]
    bob.click(".tab[data-tab=matches]")
    expect(bob.locator("#matches-list .match-item")).to_have_count(2)
    expect(bob.locator("#tab-matches-badge")).to_be_hidden()  # seen now
    shoot(bob, "7-matches")

    # Members with their progress.
    bob.click(".tab[data-tab=people]")
    expect(bob.locator("#members .member")).to_have_count(2)
    expect(bob.locator("#members")).to_contain_text("Bob (you)")
    shoot(bob, "8-members")
    bob.click(".tab[data-tab=swipe]")

    # Details on tap: synopsis, credits and the link to the item; Like in the sheet rates the card.
    ann.locator(TOP_CARD).click()
    details = ann.locator("#details")
    expect(details).to_be_visible()
    expect(details.locator(".details__synopsis")).not_to_be_empty()
    expect(details.locator("a[target=_blank]")).to_have_attribute("href", re.compile(r"/api/link/"))
    shoot(ann, "9-details")
    bob.locator(TOP_CARD).click()
    expect(bob.locator("#details")).to_be_visible()
    shoot(bob, "9-details-sheet")
    bob.keyboard.press("Escape")
    details.get_by_role("button", name="Like", exact=True).click()
    expect(details).to_be_hidden()
    expect(ann.locator(f"{TOP_CARD} .card__title")).not_to_have_text(fourth)


def test_reload_and_server_restart_resume_the_room(server: ServerProcess, pages: Pages) -> None:
    page = pages.new("cy", phone=True, reduced_motion=True)
    page.goto(server.http_url + "/")

    # Keyboard only: type a name and Enter, Tab to "Create room", Enter, type a room name and Enter.
    expect(page.locator("#signin-name")).to_be_focused()
    page.keyboard.type("Cy")
    page.keyboard.press("Enter")
    expect(page.locator("#join-room")).to_be_focused()
    for _ in range(20):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "lobby-create":
            break
    page.keyboard.press("Enter")
    expect(page.locator("#create-name")).to_be_focused()
    page.keyboard.type("Night In")
    page.keyboard.press("Enter")
    expect(page.locator("#room-name")).to_have_text("Night In")

    title = top_title(page)
    for key in ("ArrowRight", "ArrowLeft", "ArrowRight"):
        title = rated(page, title, partial(page.keyboard.press, key))

    # A reload rejoins at the same card, and undo still knows the last rating.
    page.reload()
    expect(page.locator("#room-name")).to_have_text("Night In")
    assert top_title(page) == title
    undone = rated(page, title, lambda: page.keyboard.press("Backspace"))
    title = rated(page, undone, lambda: page.click("#action-like"))

    # The server restarts: the page reconnects, logs in and rejoins by itself.
    with pages.problems.tolerate(r"WebSocket connection to .* failed|ERR_CONNECTION_REFUSED"):
        server.signal(signal.SIGTERM)
        assert server.wait(timeout=15) in (0, -signal.SIGTERM)
        expect(page.locator("body")).to_have_class(re.compile(r"\boffline\b"))
        expect(page.locator("#action-like")).to_be_disabled()
        # A few attempts later, the banner says that the server itself does not answer.
        expect(page.locator("#connection")).to_have_text(built_in()["en"]["SERVER_UNREACHABLE"])
        server.start()
        expect(page.locator("body")).not_to_have_class(re.compile(r"\boffline\b"), timeout=20_000)
        expect(page.locator("#action-like")).to_be_enabled()
    expect(page.locator("#connection")).to_be_hidden()
    assert top_title(page) == title
    after = rated(page, title, lambda: page.click("#action-like"))
    page.reload()
    assert top_title(page) == after


def test_first_load_is_small(server: ServerProcess, pages: Pages) -> None:
    page = pages.new("first load", phone=True)
    loaded: list[Request] = []
    page.on("requestfinished", lambda request: loaded.append(request))
    page.goto(server.http_url + "/?roomName=Anything")
    expect(page.locator("#signin-name")).to_be_visible()
    page.wait_for_load_state("networkidle")
    total = sum(transferred(request) for request in loaded if "/api/poster/" not in request.url)
    print(f"first load: {total} bytes in {len(loaded)} requests")
    for request in loaded:
        print(transferred(request), request.url)
    assert total < FIRST_LOAD_BUDGET


def test_reconnect_backoff_is_exponential_capped_and_jittered(server: ServerProcess, pages: Pages) -> None:
    page = pages.new("backoff", phone=False)
    page.goto(server.http_url + "/")
    delays = page.evaluate(
        """async () => {
            const { backoffDelay } = await import("./js/backoff.js");
            const at = (attempt, random) => backoffDelay(attempt, () => random);
            return [...Array(40).keys()].map((attempt) => [at(attempt, 0), at(attempt, 1)]);
        }"""
    )
    lows, highs = [low for low, _ in delays], [high for _, high in delays]
    assert highs[0] <= 500, "the first retry comes quickly"
    assert lows == sorted(lows), "never shorter with more attempts"
    assert highs == sorted(highs), "never shorter with more attempts"
    assert highs[-1] == highs[-2] <= 15_000, "capped"
    assert all(low < high for low, high in delays), "jittered"


def test_root_path_without_trailing_slash_redirects(tmp_path: Path) -> None:
    """Relative URLs (api/ws, js/…) only resolve under the root path when the page URL ends in /."""
    with running_server(tmp_path / "rooms", ROOT_PATH="/moviematch") as server:
        response = httpx.get(f"{server.http_url}/moviematch?roomName=Film+Club", follow_redirects=False)
    assert response.status_code in (301, 302, 307, 308)
    assert response.headers["location"] == "/moviematch/?roomName=Film+Club"


def test_password_room_and_errors(server: ServerProcess, pages: Pages) -> None:
    owner = pages.new("dee", phone=False)
    owner.goto(server.http_url + "/")
    sign_in(owner, "Dee")
    owner.click("#lobby-create")
    owner.fill("#create-name", "Secret")
    owner.fill("#create-password", "popcorn")
    owner.check("#type-unanimous")
    expect(owner.locator("#create-threshold")).to_be_hidden()
    owner.click("#create-submit")
    expect(owner.locator("#room-rule")).to_have_text("Everyone must like it · 1 here")

    guest = pages.new("eve", phone=True)
    guest.goto(f"{server.http_url}/?roomName=Secret")
    sign_in(guest, "Eve")
    expect(guest.locator("#join-error")).to_contain_text("password")
    expect(guest.locator("#join-password")).to_be_focused()
    guest.fill("#join-password", "wrong")
    guest.click("#join-submit")
    expect(guest.locator("#join-error")).to_contain_text("not right")
    guest.fill("#join-password", "popcorn")
    guest.click("#join-submit")
    expect(guest.locator("#room-name")).to_have_text("Secret")
    guest.click(".tab[data-tab=people]")
    expect(guest.locator("#members .member")).to_have_count(2)

    # Only the owner (its creator) may delete the room: nobody else is offered it.
    expect(guest.locator("#room-delete")).to_be_hidden()
    owner.click("#room-delete")
    owner.click("#confirm-yes")
    for page in (owner, guest):
        expect(page.locator("#join-room")).to_be_visible()
        expect(page.locator(".toast").last).to_contain_text("was deleted")

    # Leave and sign out go back where they belong; the name is remembered across a reload.
    guest.fill("#join-room", "No Such Room")
    guest.click("#join-submit")
    expect(guest.locator("#join-error")).to_contain_text("There is no room")
    guest.reload()
    expect(guest.locator("#join-room")).to_be_visible()
    guest.click("#lobby-signout")
    expect(guest.locator("#signin-name")).to_be_visible()
    guest.reload()
    expect(guest.locator("#signin-name")).to_be_visible()


def test_the_banner_counts_from_the_drop_not_from_each_retry(server: ServerProcess, pages: Pages) -> None:
    """The banner shows 1.2 s after the connection dropped, however many retries fail meanwhile
    (its timer used to start again with each one: 4.5 s). Time is the page's fake clock."""
    page = pages.new("gil", phone=True)
    page.clock.install()
    page.goto(server.http_url + "/")
    sign_in(page, "Gil")
    expect(page.locator("#join-room")).to_be_visible()
    page.clock.pause_at(page.evaluate("Date.now()") + 1000)
    sockets: list[object] = []
    page.on("websocket", lambda socket: sockets.append(socket))
    with pages.problems.tolerate(r"WebSocket connection to .* failed|ERR_CONNECTION_REFUSED"):
        server.signal(signal.SIGTERM)
        server.wait(timeout=15)
        expect(page.locator("body")).to_have_class(re.compile(r"\boffline\b"))
        for _ in range(11):  # 1.1 s of the page's time, the failed attempts' events in between
            page.clock.run_for(100)
            page.wait_for_timeout(40)
        assert page.locator("#connection").is_hidden()
        assert len(sockets) >= 2, "retries failed meanwhile"
        page.clock.run_for(150)
        expect(page.locator("#connection")).to_be_visible()
        expect(page.locator("#connection")).to_have_text(re.compile("Connection lost|does not answer"))
        box = page.locator("#connection").bounding_box()
        bar = page.locator("#screen-lobby .topbar").bounding_box()
        assert box is not None
        assert bar is not None
        assert box["y"] >= bar["y"] + bar["height"], "the banner leaves the top bar readable"
        assert box["height"] < 48, "one line"


def test_the_banner_leaves_the_rooms_name_and_rule_readable(server: ServerProcess, pages: Pages) -> None:
    """In Polish, a room's rule with every limit takes three lines on a phone: the banner (and the
    toasts) stand below it, upright and sideways."""
    page = pages.new("ola", phone=True, locale="pl")
    page.goto(server.http_url + "/")
    sign_in(page, "Ola")
    page.click("#lobby-create")
    page.fill("#create-name", "Wieczór filmowy")
    page.select_option("#create-end-matches", "3")
    page.select_option("#create-end-minutes", "90")
    page.select_option("#create-end-likes", "10")
    page.click("#create-submit")
    expect(page.locator("#room-limits")).to_be_visible()
    with pages.problems.tolerate(r"WebSocket connection to .* failed|ERR_CONNECTION_REFUSED"):
        server.signal(signal.SIGTERM)
        server.wait(timeout=15)
        banner = page.locator("#connection")
        expect(banner).to_be_visible()
        for size in (PHONE, LANDSCAPE):
            page.set_viewport_size(size)
            page.wait_for_timeout(150)
            box = banner.bounding_box()
            bar = page.locator(".room__bar").bounding_box()
            assert box is not None
            assert bar is not None
            if size is PHONE:
                assert bar["height"] > 72, "the header takes three lines"
            assert box["y"] >= bar["y"] + bar["height"], size
            assert box["height"] < 48, "one line"


def test_forms_open_afresh_and_the_keyboard_reaches_the_card_first(server: ServerProcess, pages: Pages) -> None:
    page = pages.new("hal", phone=False)
    page.goto(server.http_url + "/")
    sign_in(page, "Hal")
    page.fill("#join-room", "Nowhere")
    page.click("#join-submit")
    expect(page.locator("#join-error")).to_contain_text("There is no room")

    # An attempt abandoned: another room type, end on the first match, a filter.
    page.click("#lobby-create")
    expect(page.locator("#create-name")).to_have_value("Nowhere")  # what was typed in the lobby
    page.check("#type-unanimous")
    page.select_option("#create-end-matches", "1")
    page.click("#add-filter")
    page.select_option(".filter select >> nth=0", "genre")
    page.fill(".filter input", "Horror")
    page.keyboard.press("Enter")
    page.click("#create-back")
    expect(page.locator("#join-error")).to_be_empty()
    expect(page.locator("#join-room")).to_have_value("Nowhere")

    # Opened again, the form is fresh.
    page.click("#lobby-create")
    expect(page.locator("#type-standard")).to_be_checked()
    expect(page.locator("#create-end-matches")).to_have_value("")
    expect(page.locator("#create-filters .filter")).to_have_count(0)
    page.fill("#create-name", "Fresh Start")
    page.click("#create-submit")
    expect(page.locator("#room-name")).to_have_text("Fresh Start")
    expect(page.locator("#room-rule")).to_have_text("2 likes needed · 1 here")

    # From the room's name, Tab reaches the card and its buttons before the room's menu.
    expect(page.locator("#room-name")).to_be_focused()
    stops = []
    for _ in range(5):
        page.keyboard.press("Tab")
        stops.append(page.evaluate("document.activeElement.id || document.activeElement.className"))
    assert stops == ["card", "action-dislike", "action-save", "action-info", "action-like"]  # undo is disabled yet

    # Back in the lobby from a room: nothing of before is left in the join form.
    page.click("#room-leave")
    page.click("#confirm-yes")
    expect(page.locator("#join-room")).to_have_value("")
    expect(page.locator("#join-error")).to_be_empty()


def share_link(page: Page, room: str) -> str:
    """Create ``room`` and open its share dialog; the link in it."""
    sign_in(page, "Host")
    create_room(page, room)
    page.locator("[data-action=share]:visible").first.click()
    expect(page.locator("#share-dialog")).to_be_visible()
    expect(page.locator("#share-qr")).to_have_js_property("complete", True)
    link = page.locator("#share-url").input_value()
    qr_text = page.locator("#share-qr").evaluate("img => new URL(img.src).searchParams.get('text')")
    assert qr_text == link
    return link


def test_share_links_only_this_machine_can_open_come_with_a_warning(server: ServerProcess, pages: Pages) -> None:
    """The test server listens on 127.0.0.1 only: no other device can open its links."""
    page = pages.new("host", phone=True)
    page.goto(server.http_url + "/")
    assert share_link(page, "Local Only") == f"{server.http_url}/?roomName=Local+Only"
    expect(page.locator("#share-local")).to_be_visible()
    expect(page.locator("#share-local")).to_contain_text("HOST=0.0.0.0")
    shoot(page, "share-local-only", sizes=(PHONE,), keep=True)


def test_share_links_from_localhost_use_the_lan_address(tmp_path: Path, pages: Pages) -> None:
    """The host's own browser at 127.0.0.1 shares the machine's LAN address (the server listens on
    every interface), port and path kept; the page never goes there (no traffic leaves loopback)."""
    lan = lan_addresses(ipv6=False)
    with running_server(tmp_path / "rooms", HOST="0.0.0.0") as server:  # noqa: S104 (as make run does)
        page = pages.new("host", phone=True)
        page.goto(f"http://127.0.0.1:{server.port}/")
        host = lan[0] if lan else "127.0.0.1"  # a machine with loopback only keeps it, and the warning
        assert share_link(page, "Lan Party") == f"http://{host}:{server.port}/?roomName=Lan+Party"
        expect(page.locator("#share-local")).to_be_visible(visible=not lan)
        shoot(page, "share-lan", sizes=(PHONE,), keep=True)
        pages.close()


def test_share_links_use_public_url(tmp_path: Path, pages: Pages) -> None:
    with running_server(tmp_path / "rooms", PUBLIC_URL="https://movies.example.com/mm") as server:
        page = pages.new("host", phone=False)
        page.goto(server.http_url + "/")
        assert share_link(page, "Big Screen") == "https://movies.example.com/mm/?roomName=Big+Screen"
        expect(page.locator("#share-local")).to_be_hidden()
        pages.close()


# navigator.vibrate, recorded (the headless browser has nothing to vibrate).
RECORD_VIBRATION = "navigator.vibrate = (pattern) => { (window.vibrations ??= []).push(pattern); return true; };"


def test_a_match_vibrates_unless_motion_is_reduced(server: ServerProcess, pages: Pages) -> None:
    moving = pages.new("ivy", phone=True)
    still = pages.new("jon", phone=True, reduced_motion=True)
    for page in (moving, still):
        page.add_init_script(RECORD_VIBRATION)
    moving.goto(server.http_url + "/")
    sign_in(moving, "Ivy")
    create_room(moving, "Buzz")
    still.goto(server.http_url + "/?roomName=Buzz")
    sign_in(still, "Jon")
    expect(still.locator("#room-name")).to_have_text("Buzz")
    first = top_title(moving)
    rated(moving, first, lambda: moving.click("#action-like"))
    rated(still, first, lambda: still.click("#action-like"))
    for page in (moving, still):
        expect_match(page, first)
    assert moving.evaluate("window.vibrations") == [[40, 60, 120]]
    assert still.evaluate("window.vibrations ?? []") == []


# -- every screen, every language, phones upright and sideways --------------------------------------

LANGUAGES = ["en", "de", "fr", "es", "nl", "pl"]
LANDSCAPE: ViewportSize = {"width": 844, "height": 390}
LONG_ROOM = "The Extraordinarily Long Friday Night Film Club of the Neighbourhood Association, Season 2024/2025!!"
assert len(LONG_ROOM) == 100
LONG_USER = "Wiktoria Przybyszewska-Kowalczyk"

# Elements sticking out of the viewport, counting only what their clipping ancestors let show (but
# the body's clip: what it cuts off is lost to the user, as the Like button was at 497 px). The
# width is the phone's: a mobile browser widens its layout viewport to fit wider content.
OUTSIDE_VIEWPORT = """(width) => {
    const clipOf = (el) => {
        for (let up = el.parentElement; up && up !== document.body; up = up.parentElement) {
            if (getComputedStyle(up).overflowX !== "visible") return up.getBoundingClientRect();
        }
        return null;
    };
    const found = [];
    for (const el of document.querySelectorAll("body *")) {
        if (el.closest(".card--leaving, .sprite, [hidden]")) continue;
        const box = el.getBoundingClientRect();
        if (!box.width || !box.height) continue;
        const clip = clipOf(el);
        const left = clip ? Math.max(box.left, clip.left) : box.left;
        const right = clip ? Math.min(box.right, clip.right) : box.right;
        if (right > left && (right > width + 1 || left < -1)) {
            found.push(`${el.tagName.toLowerCase()}#${el.id}.${[...el.classList].join(".")}: ${left}..${right}`);
        }
    }
    if (document.documentElement.scrollWidth > width) found.push(`page: ${document.documentElement.scrollWidth}px`);
    return found;
}"""


# Where a card's panel of facts begins (its fade above it included), and the poster's box.
CARD_PANEL = """(card) => {
    const poster = card.querySelector(".card__poster").getBoundingClientRect();
    const info = card.querySelector(".card__info");
    const panel = info.getBoundingClientRect();
    const fade = Number.parseFloat(getComputedStyle(info, "::before").height) || 0;
    return {
        top: panel.top - fade, left: panel.left,
        posterTop: poster.top, posterHeight: poster.height, posterRight: poster.right,
    };
}"""


def poster_title_uncovered(page: Page) -> None:
    """A demo poster has its title in its upper half: the card's panel of facts, which covers the
    poster's lower part upright, stays below that half; sideways it stands beside the poster."""
    for size in (PHONE, LANDSCAPE):
        page.set_viewport_size(size)
        page.wait_for_timeout(150)
        box = page.locator(TOP_CARD).evaluate(CARD_PANEL)
        if size is PHONE:
            assert box["top"] >= box["posterTop"] + box["posterHeight"] / 2, box
        else:
            assert box["left"] >= box["posterRight"] - 1, box
    page.set_viewport_size(PHONE)


def titles_whole(page: Page, titles: str) -> None:
    """Every title of ``titles`` (a selector) shows whole: none is cut short where it has room."""
    cut = page.locator(titles).evaluate_all(
        """(titles) => titles
            .filter((el) => el.scrollHeight > el.clientHeight + 1 || el.scrollWidth > el.clientWidth + 1)
            .map((el) => el.textContent)"""
    )
    assert cut == [], f"cut short: {cut}"


def fits(page: Page, screen: str) -> None:
    """Upright and sideways: nothing wider than the phone's screen (screenshots of both)."""
    for size in (PHONE, LANDSCAPE):
        page.set_viewport_size(size)
        page.wait_for_timeout(150)  # layout and transitions settle
        outside = page.evaluate(OUTSIDE_VIEWPORT, size["width"])
        assert outside == [], f"{screen} at {size['width']}x{size['height']}: wider than the screen: {outside[:8]}"
    page.set_viewport_size(PHONE)


# The opening of a page script that speaks the protocol over a WebSocket of its own, as the
# MovieMatch v2 client or another member would: `send(type, payload)`, `await reply(type)`, `ws`.
OWN_SOCKET = """
    const ws = new WebSocket(new URL("api/ws", document.baseURI).href.replace(/^http/, "ws"));
    const reply = (type) => new Promise((resolve) => ws.addEventListener("message", function listen(event) {
        const message = JSON.parse(event.data);
        if (message.type !== type) return;
        ws.removeEventListener("message", listen);
        resolve(message.payload);
    }));
    await new Promise((resolve) => ws.addEventListener("open", resolve, { once: true }));
    const send = (type, payload) => ws.send(JSON.stringify({ type, payload }));
"""


def over_own_socket(parameters: str, body: str) -> str:
    """A script for ``page.evaluate`` taking ``parameters`` that runs ``body`` after OWN_SOCKET."""
    return f"async ({parameters}) => {{{OWN_SOCKET}{body}}}"


def another_member_likes(page: Page, user: str, room: str, likes: int) -> None:
    """Someone else joins the room on a socket of their own (opened from the page, and kept open)
    and likes its first ``likes`` cards."""
    page.evaluate(
        over_own_socket(
            "{ user, room, likes }",
            """
            send("login", { userName: user });
            await reply("loginSuccess");
            send("joinRoom", { roomName: room });
            const { media } = await reply("joinRoomSuccess");
            for (const item of media.slice(0, likes)) {
                send("rate", { mediaId: item.id, rating: "like" });
                await reply("userProgress");
            }
            (window.otherMembers ??= []).push(ws);
            """,
        ),
        {"user": user, "room": room, "likes": likes},
    )


def overlaps(a: FloatRect | None, b: FloatRect | None) -> bool:
    assert a is not None
    assert b is not None
    return not (
        a["x"] + a["width"] <= b["x"]
        or b["x"] + b["width"] <= a["x"]
        or a["y"] + a["height"] <= b["y"]
        or b["y"] + b["height"] <= a["y"]
    )


@pytest.mark.parametrize("language", LANGUAGES)
def test_no_screen_is_wider_than_a_phone(server: ServerProcess, pages: Pages, language: str) -> None:
    """A 100-character room name, in every language, upright (390x844) and sideways (844x390)."""
    page = pages.new(f"phone ({language})", phone=True, locale=language)
    page.goto(server.http_url + "/")
    expect(page.locator("#signin-name")).to_be_visible()
    fits(page, "sign in")
    sign_in(page, LONG_USER)
    expect(page.locator("#lobby-user")).to_have_text(LONG_USER)
    fits(page, "lobby")
    # The header: the name shrinks (cut short) between the brand and the sign-out button, on one line.
    brand = page.locator("#screen-lobby .topbar__brand").bounding_box()
    user = page.locator("#lobby-user").bounding_box()
    signout = page.locator("#lobby-signout").bounding_box()
    assert brand is not None
    assert user is not None
    assert signout is not None
    assert brand["x"] + brand["width"] <= user["x"] <= user["x"] + user["width"] <= signout["x"]
    assert signout["height"] <= 44, "the sign-out button is one line"
    if language in ("en", "pl"):
        shoot(page, f"lobby-{language}", sizes=(PHONE,), keep=True)

    page.click("#lobby-create")
    page.fill("#create-name", LONG_ROOM)
    fits(page, "create")
    # Every end condition, and a threshold no room can reach: the warning.
    page.select_option("#create-end-matches", "2")
    page.select_option("#create-end-minutes", "120")
    page.select_option("#create-end-likes", "5")
    page.fill("#create-threshold", "60")
    expect(page.locator("#create-warning")).to_be_visible()
    fits(page, "create, with end conditions and a warning")
    if language in ("en", "pl"):
        page.locator("#create-ends").scroll_into_view_if_needed()
        shoot(page, f"create-ends-{language}", sizes=(PHONE,), keep=True)
    page.fill("#create-threshold", "2")
    page.click("#create-submit")
    expect(page.locator("#room-name")).to_have_text(LONG_ROOM)
    expect(page.locator(f"{TOP_CARD} .card__poster")).to_have_js_property("complete", True)
    fits(page, "room")
    page.set_viewport_size(LANDSCAPE)
    poster = page.locator(f"{TOP_CARD} .card__poster").bounding_box()
    assert poster is not None
    assert poster["width"] >= 120, "sideways, the poster still shows"
    poster_title_uncovered(page)
    if language in ("en", "pl"):
        shoot(page, f"room-{language}", sizes=(PHONE, LANDSCAPE), keep=True)
    page.set_viewport_size(PHONE)

    # Someone joins: the toast stays clear of the buttons, and of the room's name and rule (which
    # take three lines in some languages). (Zoë likes the first three films.)
    another_member_likes(page, "Zoë", LONG_ROOM, likes=3)
    toast = page.locator(".toast").last
    expect(toast).to_be_visible()
    for size in (PHONE, LANDSCAPE):
        page.set_viewport_size(size)
        page.wait_for_timeout(150)
        for control in ("#action-like", "#action-dislike", ".tabs", ".room__bar"):
            assert not overlaps(toast.bounding_box(), page.locator(control).bounding_box()), (control, size)
    page.set_viewport_size(PHONE)

    page.click("#action-like")
    expect(page.locator("#match-dialog")).to_be_visible()
    fits(page, "match")
    if language == "en":
        shoot(page, "match-en", sizes=(PHONE, LANDSCAPE), keep=True)
    page.click("#match-close")

    for tab in ("matches", "people"):
        page.click(f".tab[data-tab={tab}]")
        fits(page, tab)

    # The owner's tools: a member's, the seat code, the list of those removed (Yann, just joined).
    another_member_likes(page, "Yann", LONG_ROOM, likes=0)
    tools = page.locator("#members .member__manage")
    expect(tools).to_have_count(3)
    page.locator("#members .member", has_text="Zoë").locator(".member__manage").click()
    expect(page.locator("#member-dialog")).to_be_visible()
    fits(page, "member tools")
    page.click("#member-offer")
    expect(page.locator("#seat-code")).to_have_text(re.compile(r"^\w{3} \w{3}$"))
    fits(page, "seat code")
    if language in ("en", "pl"):
        shoot(page, f"seat-code-{language}", sizes=(PHONE, LANDSCAPE), keep=True)
    page.keyboard.press("Escape")
    page.locator("#members .member", has_text="Yann").locator(".member__manage").click()
    page.click("#member-remove")
    page.click("#confirm-yes")
    expect(page.locator("#removed-list li")).to_have_count(1)
    fits(page, "members, one removed")
    if language in ("en", "pl"):
        expect(page.locator(".toast")).to_have_count(0)  # the picture shows the list, not the toast
        page.mouse.move(0, 0)  # nor a button under the pointer
        shoot(page, f"owner-tools-{language}", sizes=(PHONE,), keep=True)

    # Someone else signs in with the owner's name: refused, with the two ways in.
    other = pages.new(f"another phone ({language})", phone=True, locale=language)
    other.goto(f"{server.http_url}/?{urlencode({'roomName': LONG_ROOM})}")
    sign_in(other, LONG_USER)
    expect(other.locator("#taken")).to_be_visible()
    fits(other, "seat taken")
    if language in ("en", "pl"):
        shoot(other, f"seat-taken-{language}", sizes=(PHONE,), keep=True)
    other.close()

    page.locator("[data-action=share]:visible").first.click()
    expect(page.locator("#share-dialog")).to_be_visible()
    fits(page, "share")
    page.keyboard.press("Escape")
    page.click(".tab[data-tab=swipe]")
    page.locator(TOP_CARD).click()
    expect(page.locator("#details")).to_be_visible()
    fits(page, "details")
    page.keyboard.press("Escape")

    # The results: a pick for everyone, then the second match ends the room (the closest call:
    # the third film, which Zoë alone liked).
    page.click(".tab[data-tab=matches]")
    page.click("#pick-button")
    expect(page.locator("#match-link")).to_be_focused()
    fits(page, "the pick")
    if language in ("en", "pl"):
        shoot(page, f"pick-{language}", sizes=(PHONE, LANDSCAPE), keep=True)
    page.keyboard.press("Escape")
    expect(page.locator("#pick-title")).to_be_visible()
    fits(page, "results with the pick")
    page.click(".tab[data-tab=swipe]")
    page.click("#action-like")
    expect(page.locator("#match-ended")).to_be_visible()
    fits(page, "the last match")
    if language in ("en", "pl"):
        shoot(page, f"match-ended-{language}", sizes=(PHONE,), keep=True)
    page.keyboard.press("Escape")
    expect(page.locator("#deck-empty")).to_be_visible()
    fits(page, "ended")
    if language in ("en", "pl"):
        shoot(page, f"room-ended-{language}", sizes=(PHONE, LANDSCAPE), keep=True)
    page.click("#deck-see-matches")
    expect(page.locator("#closest-list .match-item")).to_have_count(1)
    fits(page, "results")
    titles_whole(page, ".match-item__title, .pick__title")
    if language in ("en", "pl"):
        page.mouse.move(0, 0)
        shoot(page, f"results-{language}", sizes=(PHONE, LANDSCAPE), keep=True)


# -- behind nginx on a sub-path -----------------------------------------------------------------


def sub_path_site(listen: int, upstream: int, *, strip: bool) -> str:
    """nginx's ``server`` block publishing the app under /moviematch/ (``strip``: without the prefix)."""
    proxy = f"http://127.0.0.1:{upstream}/" if strip else f"http://127.0.0.1:{upstream}"
    prefix_header = "proxy_set_header X-Forwarded-Prefix /moviematch;" if strip else ""
    return f"""
    server {{
        listen 127.0.0.1:{listen};
        location /moviematch/ {{
            proxy_pass {proxy};
            {prefix_header}
            proxy_http_version 1.1;
            # The server refuses WebSocket upgrades whose Origin is not the Host it sees.
            proxy_set_header Host $http_host;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";
            proxy_read_timeout 1h;
        }}
    }}
"""


@pytest.mark.parametrize("strip", [True, False], ids=["proxy-strips-prefix", "proxy-keeps-prefix"])
def test_behind_nginx_on_a_sub_path(tmp_path: Path, pages: Pages, strip: bool) -> None:
    env = {} if strip else {"ROOT_PATH": "/moviematch"}
    listen = free_port()
    origin = f"http://127.0.0.1:{listen}"
    with (
        running_server(tmp_path / "rooms", **env) as server,
        running_nginx(tmp_path / "nginx", sub_path_site(listen, server.port, strip=strip), listen),
    ):
        base = f"{origin}/moviematch/"
        bare = httpx.get(f"{origin}/moviematch", follow_redirects=False)
        assert bare.status_code in (301, 302, 307, 308)
        assert bare.headers["location"].endswith("/moviematch/")
        manifest = httpx.get(base + "manifest.webmanifest").json()
        assert manifest["start_url"] == "/moviematch/"

        fay = pages.new("fay", phone=False)
        fay.goto(base)
        sign_in(fay, "Fay")
        create_room(fay, "Proxy Party")
        expect(fay).to_have_url(f"{base}?roomName=Proxy+Party")
        poster = fay.locator(f"{TOP_CARD} img")
        expect(poster).to_have_js_property("complete", True)
        assert poster.evaluate("img => img.naturalWidth") > 0
        fay.locator("[data-action=share]:visible").first.click()
        link = fay.locator("#share-url").input_value()
        assert link == f"{base}?roomName=Proxy+Party"
        expect(fay.locator("#share-qr")).to_have_js_property("complete", True)
        fay.keyboard.press("Escape")

        gus = pages.new("gus", phone=True)
        gus.goto(link)
        sign_in(gus, "Gus")
        expect(gus.locator("#room-name")).to_have_text("Proxy Party")
        first = top_title(fay)
        assert top_title(gus) == first
        rated(fay, first, lambda: fay.click("#action-like"))
        rated(gus, first, lambda: touch_drag(gus, "like"))
        for page in (fay, gus):
            expect_match(page, first)

        # The original MovieMatch v2 client puts its root path before posterUrl, and uses linkUrl as
        # the href it is: both lead to this server under the sub-path.
        v2 = v2_poster_and_link(gus, "Proxy Party")
        assert v2["src"].startswith(f"{base}api/poster/")
        assert v2["naturalWidth"] > 0
        assert v2["link"].startswith(f"{base}api/link/")
        redirect = httpx.get(v2["link"], follow_redirects=False)
        assert redirect.status_code == 302
        assert redirect.headers["location"].startswith("https://")

        # A dropped connection through the proxy comes back too: offline while the server is down
        # (it cannot be anything else then), online again once it is back. Reloaded meanwhile, the
        # app opens from its service worker's copy (nginx answers 502) and says it is reconnecting.
        wait_for_service_worker(gus)
        with pages.problems.tolerate(
            r"WebSocket connection to .* failed|ERR_CONNECTION_REFUSED|HTTP 502|status of 502"
        ):
            server.signal(signal.SIGTERM)
            server.wait(timeout=15)
            expect(gus.locator("body")).to_have_class(re.compile(r"\boffline\b"))
            reloaded = gus.reload()
            assert reloaded is not None
            assert reloaded.from_service_worker
            expect(gus.locator("#boot-status")).not_to_be_empty()
            server.start()
            for page in (gus, fay):
                expect(page.locator("body")).not_to_have_class(re.compile(r"\boffline\b"), timeout=20_000)
        expect(gus.locator("#room-name")).to_have_text("Proxy Party")
        expect(gus.locator("#matches-list .match-item")).to_have_count(1)
        pages.close()


def wait_for_service_worker(page: Page) -> None:
    """Until the service worker has kept its copies and serves the page."""
    page.wait_for_function("navigator.serviceWorker.controller !== null")


KEPT_BY_THE_SERVICE_WORKER = """async () => {
    const urls = [];
    for (const name of await caches.keys()) {
        for (const request of await (await caches.open(name)).keys()) urls.push(request.url);
    }
    return urls;
}"""


def test_the_installed_app_opens_offline_and_never_serves_an_old_client(tmp_path: Path, pages: Pages) -> None:
    """The service worker keeps the page and its files, and only those; without the server the app
    opens from them and shows it is reconnecting; after an upgrade the new client is what loads
    (network first), even under the same version number."""
    app = tmp_path / "app"  # a copy of the server and its client, to upgrade
    for part in ("server", "static"):
        shutil.copytree(REPO / part, app / part, ignore=shutil.ignore_patterns("__pycache__"))
    server = ServerProcess(tmp_path / "rooms", PYTHONPATH=str(app))
    server.start()
    try:
        page = pages.new("kim", phone=True)
        page.goto(server.http_url + "/")
        sign_in(page, "Kim")
        create_room(page, "Offline Night")
        wait_for_service_worker(page)
        kept = {url.removeprefix(server.http_url + "/") for url in page.evaluate(KEPT_BY_THE_SERVICE_WORKER)}
        assert {"", "css/app.css", "js/main.js", "js/screens/create.js"} <= kept
        assert not [url for url in kept if url.startswith(("api/", "health", "manifest"))], kept

        with pages.problems.tolerate(r"WebSocket connection to .* failed|ERR_CONNECTION_REFUSED"):
            server.signal(signal.SIGTERM)
            server.wait(timeout=15)
            reloaded = page.reload()
            assert reloaded is not None
            assert reloaded.from_service_worker
            expect(page.locator("#boot-status")).to_have_text(built_in()["en"]["SERVER_UNREACHABLE"])
            shoot(page, "offline-start", sizes=(PHONE,), keep=True)

            # The upgrade: a changed client, the version number left as it was.
            main = app / "static" / "js" / "main.js"
            main.write_text(main.read_text("utf-8") + '\ndocument.body.dataset.upgraded = "yes";\n', "utf-8")
            server.start()
            expect(page.locator("#room-name")).to_have_text("Offline Night", timeout=20_000)
        page.reload()
        expect(page.locator("body")).to_have_attribute("data-upgraded", "yes")
        expect(page.locator("#room-name")).to_have_text("Offline Night")
        pages.close()
    finally:
        server.stop()


def v2_poster_and_link(page: Page, room: str) -> dict[str, Any]:
    """What the MovieMatch v2 web client does with a card: joins over its own socket, shows
    `${rootPath}${posterUrl}` (root path from the page's data-root-path) and links to linkUrl."""
    found: dict[str, Any] = page.evaluate(
        over_own_socket(
            "room",
            """
            send("login", { userName: "v2 client" });
            await reply("loginSuccess");
            send("joinRoom", { roomName: room });
            const [media] = (await reply("joinRoomSuccess")).media;
            ws.close();
            const img = new Image();
            img.src = `${document.body.dataset.rootPath}${media.posterUrl}?width=300`;
            await img.decode();
            const link = Object.assign(document.createElement("a"), { href: media.linkUrl }).href;
            return { src: img.src, naturalWidth: img.naturalWidth, link };
            """,
        ),
        room,
    )
    return found


def no_websocket_site(listen: int, upstream: int) -> str:
    """nginx publishing the app on a sub-path without passing WebSocket upgrades on (no Upgrade and
    Connection headers, HTTP/1.0 upstream): the usual mistake in a proxy's configuration."""
    return f"""
    server {{
        listen 127.0.0.1:{listen};
        location /moviematch/ {{
            proxy_pass http://127.0.0.1:{upstream}/;
            proxy_set_header X-Forwarded-Prefix /moviematch;
            proxy_set_header Host $http_host;
        }}
    }}
"""


@pytest.mark.parametrize("language", ["en", "de"])
def test_a_proxy_that_refuses_websockets_is_named(tmp_path: Path, pages: Pages, language: str) -> None:
    """No endless spinner: the page says, in the browser's language, that the server answers but its
    WebSocket cannot be reached, and points to the README's proxy section."""
    listen = free_port()
    with (
        running_server(tmp_path / "rooms") as server,
        running_nginx(tmp_path / "nginx", no_websocket_site(listen, server.port), listen),
        pages.problems.tolerate(r"WebSocket connection to .* failed|HTTP 404: GET .*/api/ws"),
    ):
        page = pages.new("behind a bad proxy", phone=True, locale=language)
        page.goto(f"http://127.0.0.1:{listen}/moviematch/")
        expect(page.locator("#boot-status")).to_have_text(built_in()[language]["WEBSOCKET_BLOCKED"])
        expect(page.locator("#boot-status")).to_contain_text("Behind a reverse proxy")
        expect(page.locator("#boot-spinner")).to_be_hidden()
        shoot(page, f"websocket-blocked-{language}", sizes=(PHONE,), keep=language == "en")
        pages.close()


# -- Sign in with Plex ----------------------------------------------------------------------------


def test_sign_in_with_plex(tmp_path: Path, pages: Pages) -> None:
    """The plex.tv PIN flow against a fake plex.tv; the server checks the token there."""
    plex_tv = FakePlexTv()
    with (
        serving(FakePlex()) as plex_url,
        serving_plex_tv(plex_tv) as plex_tv_url,
        running_server(
            tmp_path / "rooms",
            PLEX_URL=plex_url,
            PLEX_TOKEN=PLEX_TOKEN,
            PLEX_TV_URL=plex_tv_url,
            PLEX_APP_URL=plex_tv_url,
        ) as server,
    ):
        page = pages.new("plexfan", phone=True)
        page.goto(server.http_url + "/")
        expect(page.locator("#signin-plex-button")).to_be_visible()
        shoot(page, "0-sign-in-with-plex")
        with page.context.expect_page() as opened:
            page.click("#signin-plex-button")
        approval = opened.value
        approval.wait_for_url(re.compile(r"/auth#\?"))
        pin = next(iter(plex_tv.pins.values()))
        assert (pin.product, pin.strong) == ("MovieMatch", True)
        assert len(pin.client_id) >= 20
        assert approval.url == (
            f"{plex_tv_url}/auth#?clientID={pin.client_id}&code={pin.code}&context%5Bdevice%5D%5Bproduct%5D=MovieMatch"
        )
        expect(page.locator("#plex-waiting")).to_be_visible()
        approval.click("#approve")

        # The page gets the token, closes the approval window, and the server checks the token.
        expect(page.locator("#lobby-user")).to_have_text(plex_tv.username)
        for _ in range(100):
            if approval.is_closed():
                break
            page.wait_for_timeout(50)
        assert approval.is_closed()
        checked = plex_tv.user_checks[-1]
        assert (checked["x-plex-token"], checked["x-plex-client-identifier"]) == (plex_tv.token, pin.client_id)

        # A Plex account is an identity already: no device identity asked for or kept.
        assert page.evaluate("localStorage.getItem('moviematch.identityTokens')") is None

        # Remembered on this device: a reload signs in with the token, without plex.tv's page.
        page.reload()
        expect(page.locator("#lobby-user")).to_have_text(plex_tv.username)
        assert len(plex_tv.pins) == 1
        create_room(page, "Plex Night")
        page.click(".tab[data-tab=people]")
        expect(page.locator("#members .avatar__image")).to_have_js_property("complete", True)
        expect(page.locator("#members")).to_contain_text(plex_tv.username)
        expect(page.locator("#room-delete")).to_be_visible()  # the Plex account owns the room it made

        # Signing out forgets the token.
        page.click("#room-signout")
        expect(page.locator("#signin-plex-button")).to_be_visible()
        page.reload()
        expect(page.locator("#signin-plex-button")).to_be_visible()
        pages.close()


# -- several processes behind nginx --------------------------------------------------------------


def balanced_site(listen: int, upstreams: list[int]) -> str:
    """nginx spreading requests over several server processes (as the README's example does)."""
    servers = "".join(f"server 127.0.0.1:{port};" for port in upstreams)
    return f"""
    upstream moviematch {{ {servers} }}
    server {{
        listen 127.0.0.1:{listen};
        location / {{
            proxy_pass http://moviematch;
            proxy_http_version 1.1;
            proxy_set_header Host $http_host;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";
            proxy_read_timeout 1h;
        }}
    }}
"""


def open_sockets(server: ServerProcess) -> int:
    metrics = httpx.get(server.http_url + "/metrics").text
    return int(re.search(r"^moviematch_connections (\d+)$", metrics, re.MULTILINE)[1])  # type: ignore[index]


def test_a_killed_process_loses_nobody(tmp_path: Path, pages: Pages, redis_url: str) -> None:
    """Two processes share rooms behind nginx; the one serving Ann is killed. Her page reconnects
    through nginx to the other, resumes her seat (the dead process still holds it) and the room goes on."""
    env = {"STORAGE_URL": f"{redis_url}?prefix=web-{free_port()}"}
    listen = free_port()
    origin = f"http://127.0.0.1:{listen}"
    with (
        running_server(tmp_path / "rooms-1", **env) as first,
        running_server(tmp_path / "rooms-2", **env) as second,
        running_nginx(tmp_path / "nginx", balanced_site(listen, [first.port, second.port]), listen),
    ):
        ann = pages.new("ann", phone=False)
        ann.goto(origin + "/")
        sign_in(ann, "Ann")
        create_room(ann, "Two Hosts")
        anns_host = first if open_sockets(first) else second
        bob = pages.new("bob", phone=True)
        bob.goto(origin + "/?roomName=Two+Hosts")
        sign_in(bob, "Bob")
        expect(bob.locator("#room-name")).to_have_text("Two Hosts")
        expect(ann.locator("#members")).to_contain_text("Bob")
        card = top_title(ann)
        after = rated(ann, card, lambda: ann.click("#action-dislike"))

        with pages.problems.tolerate(r"WebSocket connection to .* failed|ERR_CONNECTION_REFUSED|502"):
            anns_host.signal(signal.SIGKILL)
            anns_host.wait(timeout=10)
            expect(ann.locator("body")).not_to_have_class(re.compile(r"\boffline\b"), timeout=60_000)
            expect(ann.locator("#action-like")).to_be_enabled(timeout=60_000)
        assert top_title(ann) == after
        expect(bob.locator("#members")).to_contain_text("Ann")

        # The room goes on across the surviving process: a like from each is a match for both.
        assert top_title(bob) == card
        rated(bob, card, lambda: bob.click("#action-dislike"))
        rated(ann, after, lambda: ann.click("#action-like"))
        rated(bob, after, lambda: bob.click("#action-like"))
        for page in (ann, bob):
            expect_match(page, after)
