"""The evening from "the code is K7F M2Q" to "tonight we watch X" (issue #15), in real Chromium
against the real server, with two and three people on phones (touch) and desktops.

A room is joined by its join code, typed in any case and grouping, and then known by its name (the
URL, reloads, recent rooms); the code is shown large and spelled out to screen readers. The room
form offers the end conditions that fit the room type and warns of what can never happen. A room
that stops at its first match stops for everyone at once, and stays stopped after a reload; a
match count, a time limit and a like cap end it or hold back likes as they say; the header tells
the rule and what is left. The results rank the matches, pick one for everyone (the owner may pick
again) and show the closest calls once a member's deck is done.
"""

from __future__ import annotations

import json
import re
from functools import partial
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests import test_web_client as web
from tests.services import ServerProcess
from tests.test_web_client import (
    TOP_CARD,
    Pages,
    cards,
    close_match,
    create_room,
    expect_match,
    mouse_drag,
    over_own_socket,
    rated,
    sign_in,
    top_title,
    touch_drag,
)

# The browser and the server of tests/test_web_client.py's tests.
playwright, browser, server, pages = web.playwright, web.browser, web.server, web.pages

pytestmark = pytest.mark.slow

# Six characters of the join code alphabet (no 0, 1, I, L, O, U), shown as two groups of three.
CODE = re.compile(r"^[2-9A-HJKMNP-TV-Z]{3} [2-9A-HJKMNP-TV-Z]{3}$")


# -- what the page sends, and how people get in ------------------------------------------------------


def sent(page: Page, message_type: str) -> list[dict[str, Any]]:
    """The payloads of every ``message_type`` the page sends from now on."""
    payloads: list[dict[str, Any]] = []

    def frame(payload: str | bytes) -> None:
        message = json.loads(payload)
        if message.get("type") == message_type:
            payloads.append(message.get("payload"))

    page.on("websocket", lambda socket: socket.on("framesent", frame))
    return payloads


def join_by_link(page: Page, server: ServerProcess, room: str, name: str) -> None:
    page.goto(f"{server.http_url}/?roomName={room.replace(' ', '+')}")
    sign_in(page, name)
    expect(page.locator("#room-name")).to_have_text(room)


def open_create(page: Page, room: str) -> None:
    page.click("#lobby-create")
    expect(page.locator("#create-name")).to_be_visible()
    page.fill("#create-name", room)


def submit_create(page: Page, room: str) -> None:
    page.click("#create-submit")
    expect(page.locator("#room-name")).to_have_text(room)


def western_room(page: Page, room: str) -> None:
    """Create a room of the demo library's four westerns: a deck anyone gets through in a minute."""
    open_create(page, room)
    page.click("#add-filter")
    page.select_option(".filter select >> nth=0", "genre")
    page.select_option(".filter select >> nth=1", "=")
    page.fill(".filter input", "Western")
    page.keyboard.press("Enter")
    expect(page.locator(".filter .chip")).to_have_text("Western")
    submit_create(page, room)


def results(page: Page) -> None:
    """The results: their tab on a phone; a column of their own on a desktop."""
    if not page.locator("#panel-matches").is_visible():
        page.click(".tab[data-tab=matches]")
    expect(page.locator("#panel-matches")).to_be_visible()


def expect_ended(page: Page, words: str) -> None:
    """Rating is over: no card left to swipe (or to draw over), every rating button disabled."""
    expect(page.locator("#deck-empty-text")).to_have_text(words)
    expect(page.locator("#deck-empty")).to_be_visible()
    expect(page.locator(".card[data-depth]")).to_have_count(0)
    for button in ("#action-like", "#action-dislike", "#action-undo"):
        expect(page.locator(button)).to_be_disabled()
    expect(page.locator("#room-rule")).to_contain_text("Rating is over")
    expect(page.locator("#room-limits")).to_be_hidden()


# -- the join code ---------------------------------------------------------------------------------


def test_a_room_is_joined_by_its_code_and_then_known_by_its_name(server: ServerProcess, pages: Pages) -> None:
    ann = pages.new("ann (desktop)", phone=False)
    bob = pages.new("bob (phone)", phone=True)
    room = "Saturday Cinema Club"
    ann.goto(server.http_url + "/")
    sign_in(ann, "Ann")
    create_room(ann, room)

    # Large in the room (the desktop's people column) to read out, and one character at a time for
    # screen readers; the same in the share dialog.
    expect(ann.locator("#join-code")).to_have_text(CODE)
    shown = ann.locator("#join-code").inner_text()
    code = shown.replace(" ", "")
    expect(ann.locator("#join-code")).to_have_attribute("aria-hidden", "true")
    expect(ann.locator("#join-code-spoken")).to_have_text(" ".join(code))
    ann.locator("[data-action=share]:visible").first.click()
    expect(ann.locator("#share-code")).to_have_text(shown)
    expect(ann.locator("#share-code-spoken")).to_have_text(" ".join(code))
    expect(ann.locator("#share-qr")).to_have_js_property("complete", True)
    ann.keyboard.press("Escape")

    # Bob types it in the lobby as he heard it: lower case, with a dash.
    joins = sent(bob, "joinRoom")
    bob.goto(server.http_url + "/")
    sign_in(bob, "Bob")
    expect(bob.get_by_label("Room name or code")).to_be_focused()
    bob.fill("#join-room", f"{code[:3].lower()}-{code[3:].lower()}")
    bob.click("#join-submit")
    expect(bob.locator("#room-name")).to_have_text(room)
    expect(ann.locator("#members")).to_contain_text("Bob")

    # From then on the room is its name: in the address, for reloads, among the recent rooms.
    expect(bob).to_have_url(re.compile(r"\?roomName=Saturday\+Cinema\+Club$"))
    expect(bob.locator("#room-code-text")).to_have_text(shown)
    expect(bob.locator("#room-code")).to_have_attribute("aria-label", re.compile(" ".join(code)))
    bob.click("#room-code")
    expect(bob.locator("#share-dialog")).to_be_visible()
    expect(bob.locator("#share-code")).to_have_text(shown)
    expect(bob.locator("#share-qr")).to_have_js_property("complete", True)
    bob.keyboard.press("Escape")
    bob.reload()
    expect(bob.locator("#room-name")).to_have_text(room)
    assert [join["roomName"] for join in joins][-1] == room
    bob.click(".tab[data-tab=people]")
    expect(bob.locator("#join-code")).to_have_text(shown)
    bob.click("#room-leave")
    bob.click("#confirm-yes")
    expect(bob.locator("#recent-list")).to_have_text(room)

    # A code no room has is said to be neither a name nor a code.
    bob.fill("#join-room", "zzz zzz")
    bob.click("#join-submit")
    expect(bob.locator("#join-error")).to_contain_text("nor one with this code")


# -- the room form -----------------------------------------------------------------------------------


def test_the_room_form_offers_what_fits_the_room_type_and_warns_of_what_cannot_happen(
    server: ServerProcess, pages: Pages
) -> None:
    page = pages.new("host (desktop)", phone=False)
    creates = sent(page, "createRoom")
    page.goto(server.http_url + "/")
    sign_in(page, "Host")
    open_create(page, "Never Matches")

    # None by default; a group room says how many people it needs.
    for choice in ("#create-end-matches", "#create-end-minutes", "#create-end-likes"):
        expect(page.locator(choice)).to_have_value("")
    expect(page.locator("#create-warning")).to_be_hidden()
    expect(page.locator("#create-threshold-hint")).to_have_text(
        "A film matches once 2 people like it: invite at least 1 more."
    )
    expect(page.locator("#create-end-matches option")).to_have_text(
        ["No limit", "The first match", "2 matches", "3 matches", "5 matches", "10 matches"]
    )
    expect(page.locator("#create-end-minutes option")).to_have_text(
        ["No limit", "15 min", "30 min", "45 min", "1 h", "1 h 30 min", "2 h"]
    )

    # A solo room has no threshold, and every like is a match there: no match limit either.
    page.check("#type-solo")
    expect(page.locator("#create-threshold-field")).to_be_hidden()
    expect(page.locator("#create-end-matches")).to_be_hidden()
    expect(page.locator("#create-end-minutes")).to_be_visible()
    expect(page.locator("#create-end-likes")).to_be_visible()
    page.check("#type-unanimous")
    expect(page.locator("#create-threshold-field")).to_be_hidden()
    expect(page.locator("#create-end-matches")).to_be_visible()

    # Everyone likes each match, with three likes each: five matches can never happen.
    page.select_option("#create-end-matches", "5")
    page.select_option("#create-end-likes", "3")
    expect(page.locator("#create-warning")).to_have_text(
        "With 3 likes per person, this room can never reach 5 matches: it will not end that way."
    )
    page.select_option("#create-end-likes", "5")
    expect(page.locator("#create-warning")).to_be_hidden()

    # More likes needed than a room of this server holds (MAX_ROOM_MEMBERS, 50): a warning, not a
    # refusal; the room is made as asked.
    page.check("#type-standard")
    page.fill("#create-threshold", "60")
    expect(page.locator("#create-warning")).to_contain_text("at most 50 people")
    expect(page.locator("#create-threshold-hint")).to_contain_text("invite at least 59 more")
    submit_create(page, "Never Matches")
    assert creates[-1]["matchThreshold"] == 60
    assert creates[-1]["endConditions"] == {"matches": 5, "likes": 5}
    expect(page.locator("#room-rule")).to_have_text("60 likes needed · 1 here")
    expect(page.locator("#room-rule .room__warning")).to_have_text("1 here")
    expect(page.locator("#room-limits")).to_contain_text("Matches to go: 5")
    expect(page.locator("#room-limits")).to_contain_text("Likes left: 5")

    # The next room's form is fresh; a solo room sends no match limit even if one was chosen first.
    page.click("#room-leave")
    page.click("#confirm-yes")
    open_create(page, "Just Me")
    expect(page.locator("#create-end-matches")).to_have_value("")
    expect(page.locator("#create-threshold")).to_have_value("2")
    page.select_option("#create-end-matches", "2")
    page.check("#type-solo")
    page.select_option("#create-end-minutes", "30")
    submit_create(page, "Just Me")
    assert creates[-1]["endConditions"] == {"minutes": 30}
    expect(page.locator("#room-rule")).to_have_text("Solo: every like is a match")
    expect(page.locator("#room-limits")).to_contain_text("Time left: 30 min")


# -- the end --------------------------------------------------------------------------------------


def test_stop_at_the_first_match_stops_the_room_for_everyone_and_for_good(server: ServerProcess, pages: Pages) -> None:
    ann = pages.new("ann (desktop)", phone=False)
    bob = pages.new("bob (phone)", phone=True)
    cy = pages.new("cy (phone)", phone=True, reduced_motion=True)
    cy_rates = sent(cy, "rate")
    room = "One And Done"
    ann.goto(server.http_url + "/")
    sign_in(ann, "Ann")
    open_create(ann, room)
    ann.select_option("#create-end-matches", "1")
    submit_create(ann, room)
    expect(ann.locator("#room-limits")).to_contain_text("Matches to go: 1")
    join_by_link(bob, server, room, "Bob")
    join_by_link(cy, server, room, "Cy")
    expect(ann.locator("#room-rule")).to_have_text("2 likes needed · 3 here")

    first = top_title(ann)
    rated(ann, first, lambda: ann.click("#action-like"))
    touch_drag(bob, "like")  # the first match: no card comes next

    # Everyone sees the match, and nobody is told to keep swiping: the way on is the results.
    for page in (ann, bob, cy):
        expect_match(page, first)
        expect(page.locator("#match-close")).to_be_hidden()
        expect(page.locator("#match-see")).to_have_text("See the results")
        expect(page.locator("#match-see")).to_have_class(re.compile(r"\bbutton--primary\b"))
        expect(page.locator("#match-see")).to_be_focused()
        expect(page.locator("#match-ended")).to_have_text("This room has found its match. Rating is over.")
    cy.keyboard.press("Escape")
    expect_ended(cy, "This room has found its match. Rating is over.")
    cy.keyboard.press("ArrowRight")
    cy.wait_for_timeout(300)
    assert cy_rates == [], "nothing to rate once the room has ended"

    bob.click("#match-see")
    expect(bob.locator("#panel-matches")).to_be_visible()
    expect(bob.locator("#matches-list .match-item__title")).to_have_text([first])
    ann.click("#match-see")
    expect(ann.locator("#matches-title")).to_be_focused()

    # After a reload it stays ended.
    for page in (cy, ann):
        page.reload()
        expect(page.locator("#room-name")).to_have_text(room)
        expect_ended(page, "This room has found its match. Rating is over.")


def test_a_match_count_ends_the_room_and_a_like_cap_holds_back_likes(server: ServerProcess, pages: Pages) -> None:
    ann = pages.new("ann (phone)", phone=True)
    bob = pages.new("bob (desktop)", phone=False)
    room = "Three Likes Each"
    ann.goto(server.http_url + "/")
    sign_in(ann, "Ann")
    open_create(ann, room)
    ann.select_option("#create-end-matches", "2")
    ann.select_option("#create-end-likes", "3")
    submit_create(ann, room)
    join_by_link(bob, server, room, "Bob")
    for page in (ann, bob):
        expect(page.locator("#room-limits")).to_contain_text("Matches to go: 2")
        expect(page.locator("#room-limits")).to_contain_text("Likes left: 3")

    card = top_title(ann)
    card = rated(ann, card, lambda: ann.click("#action-like"))
    rated(bob, top_title(bob), lambda: bob.click("#action-like"))
    for page in (ann, bob):
        close_match(page)
        expect(page.locator("#room-limits")).to_contain_text("Matches to go: 1")
        expect(page.locator("#room-limits")).to_contain_text("Likes left: 2")
    rated(bob, top_title(bob), lambda: bob.keyboard.press("ArrowLeft"))
    card = rated(ann, card, lambda: ann.click("#action-like"))
    third = card
    card = rated(ann, card, lambda: touch_drag(ann, "like"))

    # The last like is spent: said once, the Like button is off, a swipe to the right comes back.
    expect(ann.locator(".toast").last).to_have_text("You have used all 3 of your likes. You can still dislike films.")
    expect(ann.locator("#room-limits .room__warning")).to_contain_text("Likes left: 0")
    expect(ann.locator("#action-like")).to_be_disabled()
    expect(ann.locator("#action-dislike")).to_be_enabled()
    touch_drag(ann, "like")
    ann.wait_for_timeout(600)
    assert top_title(ann) == card
    rated(ann, card, lambda: ann.click("#action-dislike"))  # dislikes stay free

    # Undo gives a like back; liking the film again spends it.
    rated(ann, top_title(ann), lambda: ann.click("#action-undo"))
    assert rated(ann, card, lambda: ann.click("#action-undo")) == third
    expect(ann.locator("#room-limits")).to_contain_text("Likes left: 1")
    expect(ann.locator("#action-like")).to_be_enabled()
    rated(ann, third, lambda: ann.click("#action-like"))
    expect(ann.locator("#action-like")).to_be_disabled()

    # Bob's like of that film is the second match: the room ends for both.
    assert top_title(bob) == third
    bob.click("#action-like")
    for page in (ann, bob):
        expect_match(page, third)
        page.keyboard.press("Escape")
        expect_ended(page, "This room has found its 2 matches. Rating is over.")


# Someone creates a room over a socket of their own: with a time limit shorter than any the form offers.
CREATE_OVER_A_SOCKET = over_own_socket(
    "{ room, request }",
    """
    send("login", { userName: "Host" });
    await reply("loginSuccess");
    send("createRoom", { roomName: room, ...request });
    await reply("createRoomSuccess");
    (window.otherMembers ??= []).push(ws);
""",
)


def test_a_time_limit_counts_down_and_ends_the_room(server: ServerProcess, pages: Pages) -> None:
    page = pages.new("dot (phone)", phone=True)
    room = "Quick Pick"
    page.goto(server.http_url + "/")
    page.evaluate(CREATE_OVER_A_SOCKET, {"room": room, "request": {"endConditions": {"minutes": 0.25}}})
    sign_in(page, "Dot")
    page.fill("#join-room", room)
    page.click("#join-submit")
    expect(page.locator("#room-name")).to_have_text(room)
    expect(page.locator("#room-rule")).to_have_text("2 likes needed · 2 here")
    expect(page.locator("#room-limits")).to_contain_text("Less than a minute left")
    expect(page.locator("#room-limits .room__limit")).to_contain_text("<1 min")
    rated(page, top_title(page), lambda: page.click("#action-dislike"))
    # 15 s after its creation:
    expect(page.locator("#deck-empty-text")).to_have_text("Time is up. Rating is over.", timeout=60_000)
    expect_ended(page, "Time is up. Rating is over.")


# -- the results -------------------------------------------------------------------------------------


def test_results_rank_matches_pick_one_for_everyone_and_show_the_closest_calls(
    server: ServerProcess, pages: Pages
) -> None:
    ann = pages.new("ann (desktop)", phone=False)
    bob = pages.new("bob (phone)", phone=True)
    cy = pages.new("cy (phone)", phone=True)
    room = "Western Night"
    ann.goto(server.http_url + "/")
    sign_in(ann, "Ann")
    western_room(ann, room)
    join_by_link(bob, server, room, "Bob")
    join_by_link(cy, server, room, "Cy")
    everyone = (ann, bob, cy)
    films = [top_title(ann)]

    # Film 1: Ann and Bob make it a match, Cy joins in (three likes). Film 2: Ann and Bob (two).
    for cys in ("#action-like", "#action-dislike"):
        film = films[-1]
        films.append(rated(ann, film, partial(ann.click, "#action-like")))
        rated(bob, film, partial(bob.click, "#action-like"))
        for page in everyone:
            expect_match(page, film)
            close_match(page)
        rated(cy, film, partial(cy.click, cys))
    # Film 3: Cy alone likes it (a closest call); film 4: nobody.
    films.append(rated(ann, films[2], lambda: mouse_drag(ann, "dislike")))
    rated(cy, films[2], lambda: touch_drag(cy, "like"))
    for page in (ann, cy):
        page.click("#action-dislike")
        expect(page.locator("#deck-empty")).to_be_visible()

    # Bob's results: the matches ranked by likes; the closest calls wait until his deck is done.
    results(bob)
    expect(bob.locator("#matches-list .match-item__title")).to_have_text(films[:2])
    expect(bob.locator("#matches-list .likes")).to_have_text(["3", "2"])
    expect(bob.locator("#matches-list .match-item").first).to_contain_text(re.compile("Ann, Bob,? and Cy"))
    expect(bob.locator("#matches-list a[target=_blank]").first).to_have_attribute("href", re.compile(r"/api/link/"))
    expect(bob.locator("#closest-later")).to_be_visible()
    expect(bob.locator("#closest")).to_be_hidden()
    for page in (ann, cy):  # done with the deck: theirs are shown
        results(page)
        expect(page.locator("#closest-list .match-item__title")).to_have_text([films[2]])
    expect(ann.locator("#closest-list .match-item")).to_contain_text("Liked by Cy")
    expect(ann.locator("#closest-list a[target=_blank]")).to_have_attribute("href", re.compile(r"/api/link/"))
    cards(bob)
    rated(bob, films[2], lambda: bob.click("#action-dislike"))
    bob.click("#action-dislike")
    expect(bob.locator("#deck-empty-text")).to_have_text("You have rated every film in this room.")
    bob.click("#deck-see-matches")
    expect(bob.locator("#closest-list .match-item__title")).to_have_text([films[2]])
    expect(bob.locator("#closest-list .likes")).to_have_text(["1"])
    expect(bob.locator("#closest-later")).to_be_hidden()

    # Bob asks for a pick: the server's, the same on every screen; only the owner may pick again.
    bob.click("#pick-button")
    for page in everyone:
        expect(page.locator("#match-dialog")).to_be_visible()
        expect(page.locator("#match-title")).to_have_text("Tonight\u2019s pick")
    picked = bob.locator("#match-text").inner_text().removeprefix("Picked for everyone from your matches: ")[:-1]
    assert picked in films[:2]
    for page in everyone:
        expect(page.locator("#match-text")).to_contain_text(picked)
        expect(page.locator("#match-link")).to_have_attribute("href", re.compile(r"/api/link/"))
        expect(page.locator("#match-link")).to_be_focused()
        page.keyboard.press("Escape")
        results(page)
        expect(page.locator("#pick-title")).to_have_text(picked)
        expect(page.locator("#pick-link")).to_have_attribute("href", re.compile(r"/api/link/"))
        expect(page.locator(".match-item--picked .match-item__title")).to_have_text(picked)
    for page in (bob, cy):
        expect(page.locator("#pick-again")).to_have_count(0)
    ann.click("#pick-again")
    other = films[1] if picked == films[0] else films[0]
    for page in everyone:
        expect(page.locator("#match-text")).to_contain_text(other)
        page.keyboard.press("Escape")
        expect(page.locator("#pick-title")).to_have_text(other)
    bob.reload()
    results(bob)
    expect(bob.locator("#pick-title")).to_have_text(other)
    expect(bob.locator(TOP_CARD)).to_have_count(0)
