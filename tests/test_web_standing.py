"""The host's standing rooms (config.yaml's ``rooms``) in the web client, in real Chromium against
real server processes: listed first in the lobby and joined with one tap (a lock, and the password
asked for, where the room has one); their decks following the host's catalogue while members swipe
(new films at the end of everyone's stack in the same order, films taken out gone with their cards
and matches); and a new definition, applied by another process sharing the rooms on Redis, changing
the rule in the room's header and the likes left without a reload.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from playwright.sync_api import Page, expect

from tests import test_web_client as web
from tests.cluster import ROOT, ClusterProcess
from tests.services import ServerProcess, running_server
from tests.test_web_client import (
    LANGUAGES,
    LONG_ROOM,
    LONG_USER,
    PHONE,
    TOP_CARD,
    Pages,
    close_match,
    expect_match,
    fits,
    rated,
    shoot,
    sign_in,
    top_title,
)

# The browser of tests/test_web_client.py's tests.
playwright, browser, pages = web.playwright, web.browser, web.pages

pytestmark = pytest.mark.slow

CLUB = "Friday Film Club"
STAFF = "Staff Room"
PASSWORD = "popcorn"

FILMS: list[dict[str, Any]] = [
    {"id": "metropolis", "title": "Metropolis", "year": 1927, "genres": ["Science Fiction"]},
    {"id": "nosferatu", "title": "Nosferatu", "year": 1922, "genres": ["Horror"]},
    {"id": "general", "title": "The General", "year": 1926, "genres": ["Comedy"]},
    {"id": "safety-last", "title": "Safety Last!", "year": 1923, "genres": ["Comedy"]},
]
NEW_FILMS: list[dict[str, Any]] = [
    {"id": "sherlock-jr", "title": "Sherlock Jr.", "year": 1924, "genres": ["Comedy"]},
    {"id": "nanook", "title": "Nanook of the North", "year": 1922, "genres": ["Documentary"]},
]

# A standing room's change takes the catalogue's next read (2 s after the file changes) and the
# room's next look at its library (STANDING_ROOM_REFRESH): generous, for a busy machine.
CHANGE_TIMEOUT_MS = 60_000


def configure(directory: Path, **settings: Any) -> None:
    """The config.yaml a server started in ``directory`` reads."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.yaml").write_text(yaml.safe_dump(settings), encoding="utf-8")


def write_catalogue(path: Path, films: list[dict[str, Any]]) -> None:
    path.write_text(yaml.safe_dump({"title": "The Host's Films", "films": films}), encoding="utf-8")


def stack(page: Page) -> list[str]:
    """The titles of the cards on the stack, top first (the deck shows its next three)."""
    titles: list[str] = page.locator(".card[data-depth]").evaluate_all(
        """(cards) => cards
            .sort((a, b) => Number(a.dataset.depth) - Number(b.dataset.depth))
            .map((card) => card.querySelector(".card__title").textContent)"""
    )
    return titles


def standing_room(page: Page, name: str) -> Any:
    return page.locator("#standing-list .standing__room", has_text=name)


def enter_standing_room(page: Page, name: str) -> None:
    """One tap in the lobby's list."""
    standing_room(page, name).click()
    expect(page.locator("#room-name")).to_have_text(name)
    expect(page.locator(TOP_CARD)).to_be_visible()


@pytest.fixture
def catalogue(tmp_path: Path) -> Path:
    path = tmp_path / "catalogue.yaml"
    write_catalogue(path, FILMS)
    return path


@pytest.fixture
def server(tmp_path: Path, catalogue: Path) -> Iterator[ServerProcess]:
    """``python -m server`` on the host's catalogue, with three standing rooms (one with a
    password, one whose name is as long as names go), looking at its library twice a second."""
    configure(
        tmp_path,
        rooms=[
            {"name": CLUB},
            {"name": STAFF, "password": PASSWORD, "room_type": "unanimous"},
            {"name": LONG_ROOM, "room_type": "solo"},
        ],
    )
    with running_server(tmp_path / "rooms", CATALOGUE_FILE=str(catalogue), STANDING_ROOM_REFRESH="0.5") as process:
        yield process


def test_the_hosts_rooms_are_joined_with_a_tap_and_follow_the_catalogue(
    server: ServerProcess, catalogue: Path, pages: Pages
) -> None:
    # Listed first in the lobby, in the host's order, each with what makes a match there; a
    # lock (and its words for screen readers) on the one with a password. In every language,
    # nothing wider than a phone.
    for language in LANGUAGES:
        page = pages.new(f"lobby ({language})", phone=True, locale=language)
        page.goto(server.http_url + "/")
        sign_in(page, LONG_USER)
        expect(page.locator("#standing-list .standing__name")).to_have_text([CLUB, STAFF, LONG_ROOM])
        fits(page, "lobby with the standing rooms")
        if language in ("en", "pl"):
            shoot(page, f"lobby-standing-{language}", sizes=(PHONE,), keep=True)
        page.close()

    ann = pages.new("ann (phone)", phone=True)
    bob = pages.new("bob (desktop)", phone=False)
    ann.goto(server.http_url + "/")
    sign_in(ann, "Ann")
    expect(standing_room(ann, CLUB)).to_contain_text("A film matches when enough people like it.")
    expect(standing_room(ann, STAFF)).to_contain_text("A film matches only when everyone in the room likes it.")
    expect(standing_room(ann, CLUB).locator(".standing__lock")).to_have_count(0)
    expect(standing_room(ann, LONG_ROOM).locator(".standing__lock")).to_have_count(0)
    expect(
        ann.get_by_role(
            "button", name=f"{STAFF} A film matches only when everyone in the room likes it. Password needed"
        )
    ).to_be_visible()

    # The room with a password asks for it, then lets her in.
    standing_room(ann, STAFF).click()
    expect(ann.locator("#join-room")).to_have_value(STAFF)
    expect(ann.locator("#join-password")).to_be_focused()
    expect(ann.locator("#join-error")).to_have_text(f"\u201c{STAFF}\u201d has a password. Enter it to join.")
    ann.fill("#join-password", PASSWORD)
    ann.click("#join-submit")
    expect(ann.locator("#room-name")).to_have_text(STAFF)
    expect(ann.locator("#room-rule")).to_have_text("Everyone must like it \u00b7 1 here")
    ann.click(".tab[data-tab=people]")
    expect(ann.locator("#room-delete")).to_be_hidden()  # the host's: nobody deletes it
    ann.click("#room-leave")
    ann.click("#confirm-yes")

    # The other one with a tap each; the same deck for both.
    enter_standing_room(ann, CLUB)
    bob.goto(server.http_url + "/")
    sign_in(bob, "Bob")
    enter_standing_room(bob, CLUB)
    expect(ann.locator("#room-rule")).to_have_text("2 likes needed \u00b7 2 here")
    first = top_title(ann)
    assert top_title(bob) == first
    second = rated(ann, first, lambda: ann.click("#action-like"))
    rated(bob, first, lambda: bob.click("#action-like"))
    for page in (ann, bob):
        expect_match(page, first)
        close_match(page)
    gone = rated(ann, second, lambda: ann.click("#action-dislike"))
    kept = next(film["title"] for film in FILMS if film["title"] not in {first, second, gone})
    assert stack(ann) == [gone, kept]

    # The host takes the matched film and Ann's next card out of the catalogue, and adds two.
    write_catalogue(catalogue, [film for film in FILMS if film["title"] not in {first, gone}] + NEW_FILMS)
    expect(ann.locator(TOP_CARD).locator(".card__title")).to_have_text(kept, timeout=CHANGE_TIMEOUT_MS)
    expect(ann.locator(".card[data-depth]")).to_have_count(3, timeout=CHANGE_TIMEOUT_MS)
    new = stack(ann)[1:]
    assert sorted(new) == sorted(film["title"] for film in NEW_FILMS), "at the end of her stack"
    assert stack(ann) == [kept, *new]
    # Bob, who has not rated the second film yet, gets the same ones in the same order after it.
    expect(bob.locator(".card[data-depth]")).to_have_count(3, timeout=CHANGE_TIMEOUT_MS)
    expect(bob.locator(".card[data-depth='2'] .card__title")).to_have_text(new[0], timeout=CHANGE_TIMEOUT_MS)
    assert stack(bob) == [second, kept, new[0]]
    rated(bob, second, lambda: bob.click("#action-dislike"))
    assert stack(bob) == [kept, *new]
    # The match went with its film: for both, in the list and the badge.
    expect(bob.locator("#matches-list .match-item")).to_have_count(0)
    expect(bob.locator("#matches-empty")).to_be_visible()
    ann.click(".tab[data-tab=matches]")
    expect(ann.locator("#matches-list .match-item")).to_have_count(0)
    expect(ann.locator("#tab-matches-badge")).to_be_hidden()

    # The new films rate as any other: both like the first of them, a match.
    ann.click(".tab[data-tab=swipe]")
    rated(ann, kept, lambda: ann.click("#action-dislike"))
    rated(bob, kept, lambda: bob.click("#action-dislike"))
    rated(ann, new[0], lambda: ann.click("#action-like"))
    bob.click("#action-like")
    for page in (ann, bob):
        expect_match(page, new[0])


@pytest.mark.redis
def test_a_new_definition_on_another_process_changes_the_rule_in_the_room(
    tmp_path: Path, pages: Pages, redis_url: str
) -> None:
    env = {"PYTHONPATH": str(ROOT), "STORAGE_URL": redis_url}
    configure(tmp_path / "first", rooms=[{"name": CLUB}])
    # A process started later with another definition: three likes to a match, two likes each.
    changed = {"name": CLUB, "match_threshold": 3, "end_conditions": {"likes": 2}}
    configure(tmp_path / "second", rooms=[changed])
    first = ClusterProcess(tmp_path / "first" / "rooms", **env)
    second = ClusterProcess(tmp_path / "second" / "rooms", **env)
    try:
        first.start()
        page = pages.new("ann (phone)", phone=True)
        page.goto(first.http_url + "/")
        sign_in(page, "Ann")
        enter_standing_room(page, CLUB)
        expect(page.locator("#room-rule")).to_have_text("2 likes needed \u00b7 1 here")
        expect(page.locator("#room-limits")).to_be_hidden()
        rated(page, top_title(page), lambda: page.click("#action-like"))

        second.start()
        expect(page.locator("#room-rule")).to_have_text("3 likes needed \u00b7 1 here", timeout=CHANGE_TIMEOUT_MS)
        expect(page.locator("#room-limits")).to_contain_text("Likes left: 1")
        expect(page.locator("#room-name")).to_have_text(CLUB)
        rated(page, top_title(page), lambda: page.click("#action-like"))
        expect(page.locator("#room-limits")).to_contain_text("Likes left: 0")
        expect(page.locator("#action-like")).to_be_disabled()
    finally:
        pages.close()  # before the servers stop: a page then reconnects, which is no error
        for process in (second, first):
            if process.process is not None:
                process.signal(signal.SIGTERM)
                process.wait(timeout=60)
