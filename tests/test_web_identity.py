"""Identities in the web client (issue #12), in real Chromium against the real server.

The first sign-in asks for an identity and keeps it; a reload, a second tab and a second device with
the same browser profile are the same person (both tabs seated, both told everything); a token the
server refuses is replaced without a word; our own older stored state (no token) upgrades silently.
A name that looks like a member's is refused with the two ways out: another name, or the seat code
the owner reads out (wrong codes explained). The owner alone sees the owner's tools: everyone in the
room (away or not, and the removed), handing a seat to a new device, removing a member (who lands in
the lobby, told, and stays out until let back in), making another member the owner (the tools move).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests import test_web_client as web
from tests.services import ServerProcess, running_server
from tests.test_web_client import Pages, cards, create_room, over_own_socket, rated, sign_in, top_title

# The browser and the server of tests/test_web_client.py's tests.
playwright, browser, server, pages = web.playwright, web.browser, web.server, web.pages

pytestmark = pytest.mark.slow

TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")


# -- what the page keeps, and what it sends --------------------------------------------------------


def stored(page: Page, key: str) -> Any:
    return page.evaluate("(key) => JSON.parse(localStorage.getItem(key) ?? 'null')", key)


def identity_token(page: Page, name: str) -> str | None:
    tokens = stored(page, "moviematch.identityTokens") or {}
    token: str | None = tokens.get(name.lower())
    return token


# Every login of our web client asks for the deck in windows (static/js/session.js DECK_WINDOW).
WINDOW = 40


def watching(page: Page, message_type: str) -> list[dict[str, Any]]:
    """The payloads of every ``message_type`` the page sends from now on (over any of its sockets)."""
    payloads: list[dict[str, Any]] = []

    def frame(payload: str | bytes) -> None:
        message = json.loads(payload)
        if message.get("type") == message_type:
            payloads.append(message.get("payload"))

    page.on("websocket", lambda socket: socket.on("framesent", frame))
    return payloads


def people(page: Page) -> None:
    """The room's members: their tab on a phone; a column of its own on a desktop."""
    if not page.locator("#panel-people").is_visible():
        page.click(".tab[data-tab=people]")
    expect(page.locator("#members")).to_be_visible()


def member(page: Page, name: str) -> Any:
    return page.locator("#members .member").filter(has=page.locator(".member__name", has_text=re.compile(f"^{name}")))


def progress_bar(page: Page, name: str) -> Any:
    people(page)
    return member(page, name).locator("progress")


def films_in_room(page: Page, rater: str) -> int:
    """How many films the room has, from the progress of someone who rated one."""
    bar = progress_bar(page, rater)
    expect(bar).not_to_have_attribute("value", "0")
    return round(1 / float(bar.get_attribute("value") or "0"))


def expect_ratings(page: Page, name: str, ratings: int, films: int) -> None:
    """The member's bar shows ``ratings`` of ``films`` (the value the server sends: ratings / films)."""
    expect(progress_bar(page, name)).to_have_attribute("value", repr(ratings / films))


def manage(page: Page, name: str) -> None:
    people(page)
    page.get_by_role("button", name=f"Manage {name}", exact=True).click()
    expect(page.locator("#member-dialog")).to_be_visible()
    expect(page.locator("#member-title")).to_have_text(re.compile(f"^{name}"))


def expect_owner_tools(page: Page, *, shown: bool) -> None:
    people(page)
    expect(page.locator("#room-delete")).to_be_visible(visible=shown)
    expect(page.locator(".member__manage").first).to_be_visible(visible=shown)


def join_by_link(page: Page, server: ServerProcess, room: str, name: str) -> None:
    page.goto(f"{server.http_url}/?roomName={room.replace(' ', '+')}")
    sign_in(page, name)


# -- one person: a first sign-in, reloads, tabs, devices ---------------------------------------------


def test_the_first_sign_in_keeps_an_identity_for_reloads_and_tabs(server: ServerProcess, pages: Pages) -> None:
    ann = pages.new("ann (phone)", phone=True)
    logins = watching(ann, "login")
    ann.goto(server.http_url + "/")
    sign_in(ann, "Ann")
    expect(ann.locator("#lobby-user")).to_have_text("Ann")
    assert logins == [{"userName": "Ann", "newIdentity": True, "window": WINDOW}]
    token = identity_token(ann, "Ann")
    assert token is not None
    assert TOKEN.fullmatch(token)

    create_room(ann, "Sofa")
    first = top_title(ann)
    second = rated(ann, first, lambda: ann.click("#action-like"))

    # A reload presents the identity: the same person, the same seat, still the owner.
    ann.reload()
    expect(ann.locator("#room-name")).to_have_text("Sofa")
    assert top_title(ann) == second
    assert logins[-1] == {"userName": "Ann", "identityToken": token, "window": WINDOW}
    assert identity_token(ann, "Ann") == token
    expect_owner_tools(ann, shown=True)

    # A second tab of the same browser: seated too, beside the first, with the same tools.
    tab = ann.context.new_page()
    pages.problems.watch(tab, "ann (second tab)")
    tab.goto(f"{server.http_url}/?roomName=Sofa")
    expect(tab.locator("#room-name")).to_have_text("Sofa")
    assert top_title(tab) == second
    expect_owner_tools(tab, shown=True)
    expect(member(tab, "Ann")).to_have_count(1)

    # Both tabs hear everything: Bob joins, and a film both like is a match in each of Ann's tabs.
    bob = pages.new("bob", phone=False)
    join_by_link(bob, server, "Sofa", "Bob")
    expect(bob.locator("#room-name")).to_have_text("Sofa")
    for page in (ann, tab):
        expect(member(page, "Bob")).to_have_count(1)
    rated(bob, first, lambda: bob.click("#action-like"))
    for page in (ann, tab, bob):
        expect(page.locator("#match-text")).to_contain_text(first)
        page.keyboard.press("Escape")
        expect(page.locator("#matches-list .match-item")).to_have_count(1)

    # Ann leaves from one tab: her other tab leaves with her, quietly.
    tab.click(".tab[data-tab=people]")
    tab.click("#room-leave")
    tab.click("#confirm-yes")
    expect(tab.locator("#join-room")).to_be_visible()
    expect(ann.locator("#join-room")).to_be_visible()
    expect(ann.locator("#join-error")).to_be_empty()
    expect(bob.locator("#members .member")).to_have_count(1)


def with_stored(page: Page, values: dict[str, Any]) -> None:
    """localStorage as another browser left it (set before the app's scripts run, on every load)."""
    page.add_init_script(
        f"if (!sessionStorage.getItem('test.seeded')) {{"
        f" for (const [key, value] of Object.entries({json.dumps(values)}))"
        " localStorage.setItem(key, JSON.stringify(value));"
        " sessionStorage.setItem('test.seeded', '1'); }"
    )


def test_a_second_device_with_the_same_identity_is_the_same_member(server: ServerProcess, pages: Pages) -> None:
    """The same browser profile on a laptop (a synced profile, or a copied one): its identity token
    seats it as the member it is, with its progress and the room's ownership."""
    phone = pages.new("cy (phone)", phone=True)
    phone.goto(server.http_url + "/")
    sign_in(phone, "Cy")
    create_room(phone, "Two Screens")
    first = top_title(phone)
    second = rated(phone, first, lambda: phone.click("#action-dislike"))
    token = identity_token(phone, "Cy")

    laptop = pages.new("cy (laptop)", phone=False)
    logins = watching(laptop, "login")
    with_stored(laptop, {"moviematch.identity": {"userName": "Cy"}, "moviematch.identityTokens": {"cy": token}})
    laptop.goto(f"{server.http_url}/?roomName=Two+Screens")
    expect(laptop.locator("#room-name")).to_have_text("Two Screens")
    assert logins == [{"userName": "Cy", "identityToken": token, "window": WINDOW}]
    assert top_title(laptop) == second
    expect_owner_tools(laptop, shown=True)
    expect(laptop.locator("#members .member")).to_have_count(1)
    films = films_in_room(laptop, "Cy")
    # A rating on the laptop is the member's: the phone sees its own progress move.
    rated(laptop, second, lambda: laptop.click("#action-like"))
    expect_ratings(phone, "Cy", 2, films)


def test_a_token_the_server_refuses_is_replaced_without_a_word(server: ServerProcess, pages: Pages) -> None:
    page = pages.new("dee", phone=True)
    logins = watching(page, "login")
    with_stored(page, {"moviematch.identity": {"userName": "Dee"}, "moviematch.identityTokens": {"dee": "not-a-token"}})
    page.goto(server.http_url + "/")
    expect(page.locator("#lobby-user")).to_have_text("Dee")
    expect(page.locator("#join-room")).to_be_focused()
    assert logins == [
        {"userName": "Dee", "identityToken": "not-a-token", "window": WINDOW},
        {"userName": "Dee", "newIdentity": True, "window": WINDOW},
    ]
    renewed = identity_token(page, "Dee")
    assert renewed is not None
    assert TOKEN.fullmatch(renewed)
    page.reload()
    expect(page.locator("#lobby-user")).to_have_text("Dee")
    assert logins[-1] == {"userName": "Dee", "identityToken": renewed, "window": WINDOW}


V2_CREATE = over_own_socket(
    "room",
    """
    send("login", { userName: "Old" });
    await reply("loginSuccess");
    send("createRoom", { roomName: room });
    const created = await reply("createRoomSuccess");
    send("rate", { mediaId: created.media[0].id, rating: "like" });
    await reply("userProgress");
    ws.close();
    return created.memberToken;
""",
)

V2_JOIN = """async ({ room, name }) => {
    const ws = new WebSocket(new URL("api/ws", document.baseURI).href.replace(/^http/, "ws"));
    const replies = [];
    const done = new Promise((resolve) => ws.addEventListener("message", (event) => {
        const message = JSON.parse(event.data);
        if (message.type === "loginSuccess") ws.send(JSON.stringify({ type: "joinRoom", payload: { roomName: room } }));
        if (message.type.startsWith("joinRoom")) resolve(message);
    }));
    await new Promise((resolve) => ws.addEventListener("open", resolve, { once: true }));
    ws.send(JSON.stringify({ type: "login", payload: { userName: name } }));
    const reply = await done;
    ws.close();
    return reply.type === "joinRoomError" ? reply.payload.name : reply.type;
}"""


def test_our_older_stored_state_without_a_token_upgrades_silently(server: ServerProcess, pages: Pages) -> None:
    """What this client kept before identities (a name, and the member token of the room it created)
    signs in, takes a token and claims its seat, and with it the room: nothing to do for the user."""
    page = pages.new("old (phone)", phone=True)
    page.goto(server.http_url + "/")  # signed in as nobody yet: only the v2 socket below joins
    member_token = page.evaluate(V2_CREATE, "Legacy Night")
    logins = watching(page, "login")
    with_stored(
        page,
        {
            "moviematch.identity": {"userName": "Old"},
            "moviematch.memberTokens": {"Old\nlegacy night": member_token},
            "moviematch.recentRooms": ["Legacy Night"],
        },
    )
    page.goto(f"{server.http_url}/?roomName=Legacy+Night")
    expect(page.locator("#room-name")).to_have_text("Legacy Night")
    assert logins == [{"userName": "Old", "newIdentity": True, "window": WINDOW}]
    token = identity_token(page, "Old")
    assert token is not None
    expect_owner_tools(page, shown=True)
    expect_ratings(page, "Old", 1, films_in_room(page, "Old"))
    # The seat is the identity's now: a v2 client typing the name no longer takes it, even offline.
    page.reload()
    expect(page.locator("#room-name")).to_have_text("Legacy Night")
    assert page.evaluate(V2_JOIN, {"room": "Legacy Night", "name": "Old"}) == "UserAlreadyJoinedError"
    # A v2 client under its own name still joins, as in v2.
    assert page.evaluate(V2_JOIN, {"room": "Legacy Night", "name": "Newcomer"}) == "joinRoomSuccess"


# -- a name that is someone else's seat --------------------------------------------------------------


def expect_seat_taken(page: Page, name: str, room: str) -> None:
    """The lobby says the name is someone else's seat, and offers the two ways in."""
    title = page.locator("#taken-title")
    explained = "\u201c{}\u201d is already someone\u2019s seat in \u201c{}\u201d (or a name that looks just like it)."
    expect(title).to_have_text(explained.format(name, room))
    expect(title).to_be_focused()
    expect(title).to_be_in_viewport()
    expect(page.get_by_label("Another name")).to_be_visible()
    expect(page.get_by_label("Seat code")).to_be_visible()


def test_a_look_alike_name_is_refused_with_the_two_ways_in(server: ServerProcess, pages: Pages) -> None:
    alice = pages.new("alice", phone=False)
    alice.goto(server.http_url + "/")
    sign_in(alice, "Alice")
    create_room(alice, "Look Alike")

    # "\u0410lice", its A a Cyrillic one: another person, who looks the same to everyone.
    impostor = pages.new("impostor (phone)", phone=True)
    join_by_link(impostor, server, "Look Alike", "\u0410lice")
    expect_seat_taken(impostor, "\u0410lice", "Look Alike")
    web.fits(impostor, "seat taken")

    # A wrong seat code is explained beside its field; the form is keyboard-usable all along.
    code = impostor.get_by_label("Seat code")
    code.fill("12")
    code.press("Enter")
    expect(impostor.locator("#seat-code-error")).to_contain_text("6 letters and digits")
    expect(code).to_be_focused()
    code.fill("abc 234")
    code.press("Enter")
    expect(impostor.locator("#seat-code-error")).to_contain_text("wrong, used already or expired")
    expect(code).to_have_attribute("aria-invalid", "true")
    expect(impostor.locator("#taken")).to_be_visible()

    # The other way: under another name, in the room at once.
    impostor.get_by_label("Another name").fill("Alicia")
    impostor.get_by_role("button", name="Join with this name").click()
    expect(impostor.locator("#room-name")).to_have_text("Look Alike")
    people(impostor)
    expect(impostor.locator("#members")).to_contain_text("Alicia (you)")
    expect(member(alice, "Alicia")).to_have_count(1)
    assert identity_token(impostor, "Alicia") is not None


def test_too_many_wrong_seat_codes_are_explained(tmp_path: Path, pages: Pages) -> None:
    """Wrong seat codes count as wrong passwords (MAX_PASSWORD_ATTEMPTS a minute)."""
    with running_server(tmp_path / "rooms", MAX_PASSWORD_ATTEMPTS="2") as strict:
        owner = pages.new("owner", phone=False)
        owner.goto(strict.http_url + "/")
        sign_in(owner, "Owner")
        create_room(owner, "Guarded")
        guesser = pages.new("guesser", phone=True)
        join_by_link(guesser, strict, "Guarded", "Owner")
        expect_seat_taken(guesser, "Owner", "Guarded")
        code = guesser.get_by_label("Seat code")
        for attempt in ("AAAAAA", "BBBBBB"):
            code.fill(attempt)
            code.press("Enter")
            expect(guesser.locator("#seat-code-error")).to_contain_text("wrong, used already or expired")
        code.fill("CCCCCC")
        code.press("Enter")
        expect(guesser.locator("#seat-code-error")).to_have_text(
            "Too many wrong passwords or seat codes. Wait a minute, then try again."
        )
        pages.close()


# -- the owner's tools -------------------------------------------------------------------------------

SEAT_CODE = re.compile(r"[A-HJ-KM-NP-Z2-9]{3} [A-HJ-KM-NP-Z2-9]{3}")


def offer_seat(owner: Page, name: str) -> str:
    """The owner hands ``name``'s seat to a new device: the code as the dialog shows it ("K7Q 2MX")."""
    manage(owner, name)
    owner.get_by_role("button", name="Hand this seat to a new device").click()
    shown = owner.locator("#seat-code")
    expect(shown).to_have_text(SEAT_CODE)
    return shown.inner_text()


def test_the_owner_hands_a_seat_to_a_new_device(server: ServerProcess, pages: Pages) -> None:
    owner = pages.new("olga (phone)", phone=True)
    owner.context.grant_permissions(["clipboard-read", "clipboard-write"])
    owner.goto(server.http_url + "/")
    sign_in(owner, "Olga")
    create_room(owner, "Hand Over")

    old_phone = pages.new("carol (old phone)", phone=True)
    join_by_link(old_phone, server, "Hand Over", "Carol")
    first = top_title(old_phone)
    second = rated(old_phone, first, lambda: old_phone.click("#action-like"))
    films = films_in_room(owner, "Carol")
    third = rated(old_phone, second, lambda: old_phone.click("#action-dislike"))
    expect_ratings(owner, "Carol", 2, films)

    # Carol's new phone knows nothing of the old one: her name is someone else's seat to it.
    new_phone = pages.new("carol (new phone)", phone=True)
    join_by_link(new_phone, server, "Hand Over", "Carol")
    expect_seat_taken(new_phone, "Carol", "Hand Over")
    web.shoot(new_phone, "seat-taken")

    # The owner hands the seat over: a code, large, to read out, valid for a while, copyable.
    code = offer_seat(owner, "Carol")
    expect(owner.locator("#seat-code-for")).to_have_text("Seat code for Carol")
    expect(owner.locator("#seat-code-spoken")).to_have_text(" ".join(code.replace(" ", "")))
    expect(owner.locator("#seat-code-valid")).to_have_text(re.compile(r"^Works once, for 10 minutes \(until .+\)\.$"))
    expect(owner.locator("#seat-code-copy")).to_be_focused()
    box = owner.locator("#seat-code").bounding_box()
    assert box is not None
    assert box["height"] >= 36, "large enough to read out"
    web.fits(owner, "seat code")
    web.shoot(owner, "seat-code")
    owner.keyboard.press("Enter")  # the copy button
    expect(owner.locator(".toast").last).to_have_text("Code copied")
    assert owner.evaluate("navigator.clipboard.readText()") == code.replace(" ", "")

    # Typed as heard (small letters, a space): the new phone takes the seat, with its ratings.
    new_phone.get_by_label("Seat code").fill(code.lower())
    new_phone.get_by_role("button", name="Take my seat").click()
    expect(new_phone.locator("#room-name")).to_have_text("Hand Over")
    assert top_title(new_phone) == third
    expect_ratings(new_phone, "Carol", 2, films)
    expect(new_phone.locator("#members")).to_contain_text("Carol (you)")
    cards(new_phone)
    rated(new_phone, third, lambda: new_phone.click("#action-like"))
    owner.keyboard.press("Escape")
    expect(owner.locator("#member-dialog")).to_be_hidden()
    expect_ratings(owner, "Carol", 3, films)
    expect(owner.locator("#members .member")).to_have_count(2)

    # The old phone no longer holds the seat: when it tries, it is told whose seat it is now.
    old_phone.click("#action-like")
    expect_seat_taken(old_phone, "Carol", "Hand Over")


def test_the_owner_removes_a_member_who_stays_out_until_let_back_in(server: ServerProcess, pages: Pages) -> None:
    owner = pages.new("olga (desktop)", phone=False)
    owner.goto(server.http_url + "/")
    sign_in(owner, "Olga")
    create_room(owner, "House Rules")
    troll = pages.new("troll (phone)", phone=True)
    join_by_link(troll, server, "House Rules", "Troll")
    expect(troll.locator("#room-name")).to_have_text("House Rules")
    second_tab = troll.context.new_page()
    pages.problems.watch(second_tab, "troll (second tab)")
    second_tab.goto(f"{server.http_url}/?roomName=House+Rules")
    expect(second_tab.locator("#room-name")).to_have_text("House Rules")
    expect_owner_tools(troll, shown=False)  # nothing of the owner's for anyone else, Delete included

    # Asked first, then done: both of the member's tabs go back to the lobby, told why.
    # An action on someone who left meanwhile is refused, and the dialog says why.
    web.another_member_likes(owner, "Ivy", "House Rules", likes=0)
    manage(owner, "Ivy")
    owner.evaluate("window.otherMembers.at(-1).send(JSON.stringify({ type: 'leaveRoom' }))")
    expect(member(owner, "Ivy")).to_have_count(0)
    owner.get_by_role("button", name="Make owner").click()
    owner.click("#confirm-yes")
    expect(owner.locator("#member-error")).to_have_text("Ivy is no longer a member of this room.")
    owner.keyboard.press("Escape")

    manage(owner, "Troll")
    owner.get_by_role("button", name="Remove from the room").click()
    expect(owner.locator("#confirm-message")).to_have_text(
        "Remove Troll from this room? Their seat is freed, and they cannot come back unless you let them back in."
    )
    owner.click("#confirm-no")
    expect(owner.locator("#member-dialog")).to_be_visible()
    owner.get_by_role("button", name="Remove from the room").click()
    owner.click("#confirm-yes")
    expect(owner.locator("#member-dialog")).to_be_hidden()
    removed = "The owner of “House Rules” removed you from this room. You can join again once they let you back in."
    for page in (troll, second_tab):
        expect(page.locator("#join-room")).to_be_visible()
        expect(page.locator("#join-error")).to_have_text(removed)
    expect(member(owner, "Troll")).to_have_count(0)
    expect(owner.locator("#removed")).to_be_visible()

    # Trying again (the recent room, a reload) changes nothing until the owner lets them back in.
    troll.get_by_role("button", name="House Rules").click()
    expect(troll.locator("#join-error")).to_have_text(removed)
    owner.get_by_role("button", name="Let Troll back in").click()
    expect(owner.locator(".toast").last).to_have_text("Troll may join again")
    expect(owner.locator("#removed")).to_be_hidden()
    troll.get_by_role("button", name="House Rules").click()
    expect(troll.locator("#room-name")).to_have_text("House Rules")
    expect(member(owner, "Troll")).to_have_count(1)


def test_the_owner_makes_another_member_owner_and_the_tools_move(server: ServerProcess, pages: Pages) -> None:
    owner = pages.new("olga (phone)", phone=True)
    owner.goto(server.http_url + "/")
    sign_in(owner, "Olga")
    create_room(owner, "New Boss")
    heir = pages.new("hal (desktop)", phone=False)
    join_by_link(heir, server, "New Boss", "Hal")
    expect(heir.locator("#room-name")).to_have_text("New Boss")
    expect_owner_tools(heir, shown=False)

    # By keyboard: the member's button keeps the focus while the list is redrawn (Hal rates a film).
    people(owner)
    tools = owner.get_by_role("button", name="Manage Hal", exact=True)
    tools.focus()
    rated(heir, top_title(heir), lambda: heir.click("#action-like"))
    expect_ratings(owner, "Hal", 1, films_in_room(owner, "Hal"))
    expect(tools).to_be_focused()
    owner.keyboard.press("Enter")
    expect(owner.get_by_role("button", name="Hand this seat to a new device")).to_be_focused()
    owner.keyboard.press("Tab")
    expect(owner.get_by_role("button", name="Make owner")).to_be_focused()
    owner.keyboard.press("Enter")
    expect(owner.locator("#confirm-message")).to_contain_text("Make Hal the owner of this room?")
    expect(owner.locator("#confirm-no")).to_be_focused()
    owner.keyboard.press("Tab")
    owner.keyboard.press("Enter")
    expect(owner.locator(".toast").last).to_have_text("Hal is now the owner of this room")
    expect_owner_tools(owner, shown=False)
    expect(member(owner, "Hal").locator(".member__owner")).to_have_text("owner")
    expect(heir.locator(".toast").last).to_have_text("You are now the owner of this room")
    expect_owner_tools(heir, shown=True)
    expect(heir.locator("#members .member__manage")).to_have_count(2)

    # The new owner's tools work (the list is everyone's, the away included); Delete ends the room.
    owner.close()
    expect(member(heir, "Olga")).to_contain_text("last seen a moment ago")
    heir.click("#room-delete")
    heir.click("#confirm-yes")
    expect(heir.locator("#join-room")).to_be_visible()
