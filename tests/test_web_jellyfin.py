"""The web client in a real browser with Jellyfin: signing in with a user name and password or with
Quick Connect, a reload signing in again without the password, and a film's details that play its
trailer through this server and open it in each server that has it (two fake Jellyfin servers
holding the same films). Any JavaScript error, console error, failed request or HTTP error in a page
fails the test (tests/test_web_client.py's page watch)."""

from __future__ import annotations

import io
import json
import math
import re
import struct
import wave
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.fake_jellyfin import ALICE, API_KEY, BOB, FakeJellyfin
from tests.fakes import serving
from tests.services import ServerProcess, running_server

# The browser fixtures of test_web_client, used here by their names (hence the noqa below).
from tests.test_web_client import TOP_CARD, Pages, browser, pages, playwright, shoot  # noqa: F401

pytestmark = pytest.mark.slow


def tone(seconds: float = 3.0, rate: int = 8000) -> bytes:
    """A real WAV file (a quiet tone): media a video element plays in any browser build."""
    samples = (int(800 * math.sin(n / rate * 2 * math.pi * 440)) for n in range(int(seconds * rate)))
    frames = b"".join(struct.pack("<h", sample) for sample in samples)
    out = io.BytesIO()
    with wave.open(out, "wb") as file:
        file.setnchannels(1)
        file.setsampwidth(2)
        file.setframerate(rate)
        file.writeframes(frames)
    return out.getvalue()


@contextmanager
def with_jellyfin(tmp_path: Path) -> Iterator[tuple[FakeJellyfin, str, ServerProcess]]:
    """MovieMatch on two fake Jellyfin servers with the same films; sign-in through the first."""
    first = FakeJellyfin()
    first.trailer_media = (tone(), "audio/wav")
    second = FakeJellyfin(server_id="0" * 31 + "2", name="Attic")
    with ExitStack() as stack:
        first_url = stack.enter_context(serving(first))
        second_url = stack.enter_context(serving(second))
        films = {"type": "jellyfin", "token": API_KEY, "library_title_filter": ["Movies"]}
        config = tmp_path / "config.yaml"
        config.write_text(
            json.dumps({"servers": [{**films, "url": first_url}, {**films, "url": second_url, "sign_in": False}]})
        )
        server = stack.enter_context(running_server(tmp_path / "rooms", CONFIG_PATH=str(config)))
        yield first, first_url, server


def signed_in_as(page: Page, name: str) -> None:
    expect(page.locator("#lobby-user")).to_have_text(name)
    identity = page.evaluate("localStorage.getItem('moviematch.identity')")
    assert "jellyfinSession" in identity
    for secret in (ALICE.password, BOB.password, API_KEY):
        assert secret not in identity


def test_sign_in_with_jellyfin_and_play_a_trailer(tmp_path: Path, pages: Pages) -> None:  # noqa: F811
    with with_jellyfin(tmp_path) as (jellyfin, _, server):
        page = pages.new("bob", phone=True)
        page.goto(server.http_url + "/")
        expect(page.locator("#signin-jellyfin")).to_be_visible()
        expect(page.locator("#jellyfin-server-field")).to_be_hidden()  # one server offers sign-in
        expect(page.locator("#jellyfin-quick-connect")).to_be_visible()
        shoot(page, "0-sign-in-with-jellyfin")
        page.fill("#jellyfin-user", "bob")
        page.fill("#jellyfin-password", "wrong")
        page.click("#jellyfin-submit")
        expect(page.locator("#signin-error")).to_have_text(
            "Jellyfin did not accept this sign-in. Check the user name and password."
        )
        page.fill("#jellyfin-password", BOB.password)
        page.press("#jellyfin-password", "Enter")
        signed_in_as(page, "bob")
        page.reload()  # the session ticket signs in again: no password
        signed_in_as(page, "bob")
        assert len(jellyfin.requests_to("/Users/AuthenticateByName")) == 2
        assert jellyfin.signed_in == {}

        page.click("#lobby-create")
        page.fill("#create-name", "Trailer night")
        page.select_option("#create-sort", "oldest")  # "Movies 0" first: it has a local trailer
        page.click("#create-submit")
        expect(page.locator(f"{TOP_CARD} .card__title")).to_have_text("Movies 0")
        page.click("#action-info")
        details = page.locator("#details")
        expect(details).to_be_visible()
        # On both servers: a link to each.
        links = details.locator(".details__links a")
        expect(links).to_have_count(2)
        expect(links.nth(0)).to_have_text("Open in Jellyfin · Living Room")
        expect(links.nth(1)).to_have_text("Open in Jellyfin · Attic")
        with page.expect_request(lambda request: "/api/trailer/" in request.url) as asked:
            details.get_by_role("button", name="Play trailer").click()
        video = details.locator("video.details__trailer")
        expect(video).to_be_visible()
        for _ in range(100):  # plays: its time runs (the page's CSP allows no string evaluation)
            if video.evaluate("element => element.currentTime") > 0.3:
                break
            page.wait_for_timeout(100)
        assert video.evaluate("element => element.currentTime") > 0.3
        assert asked.value.all_headers().get("range", "").startswith("bytes=")  # the element seeks by ranges
        shoot(page, "9-details-trailer")
        page.keyboard.press("Escape")
        expect(details).to_be_hidden()
        for _ in range(50):  # the dialog's close event (a task after it hides) stops the trailer
            if video.evaluate("element => element.paused && !element.hasAttribute('src')"):
                break
            page.wait_for_timeout(100)
        assert video.evaluate("element => element.paused && !element.hasAttribute('src')")
        pages.close()


def test_sign_in_with_quick_connect(tmp_path: Path, pages: Pages) -> None:  # noqa: F811
    with with_jellyfin(tmp_path) as (jellyfin, jellyfin_url, server):
        page = pages.new("alice", phone=False)
        page.goto(server.http_url + "/")
        page.click("#jellyfin-quick-connect")
        code = page.locator("#jellyfin-code")
        expect(code).to_have_text(re.compile(r"^[0-9]{6}$"))
        assert code.inner_text() in jellyfin.quick_connects
        shoot(page, "0-jellyfin-quick-connect")
        # Alice enters the code in her Jellyfin app.
        approved = httpx.post(
            f"{jellyfin_url}/QuickConnect/Authorize",
            params={"code": code.inner_text(), "userId": ALICE.id},
            headers={"Authorization": f'MediaBrowser Token="{API_KEY}"'},
        )
        assert approved.status_code == 200
        signed_in_as(page, "alice")
        expect(page.locator("#jellyfin-waiting")).to_be_hidden()
        pages.close()
