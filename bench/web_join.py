"""The first joinRoomSuccess our web client receives in a big room, in a real browser (Debian's
chromium driven by Playwright) against the real server on a fake Plex of that many films on
loopback: the frame as the page reads it (its text in UTF-8 bytes, its cards), deflated (about what
permessage-deflate puts on the wire), and the same after a reload (a resume). Beside it, in the
same run, the join of a MovieMatch v2 client (no window: the whole deck), the baseline. Prints
figures and ratios; asserts nothing.

    python -m bench.web_join                 # 100,000 films
    python -m bench.web_join --films 20000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import tempfile
import zlib
from collections.abc import Sequence
from pathlib import Path

from playwright.async_api import Page, WebSocket, async_playwright

from bench.library import REPLY_TIMEOUT, WINDOW, client, media_server, moviematch, server_settings
from tests.test_web_client import CHROMIUM_ARGS

ROOM = "Big night"


def deflated(text: str) -> int:
    """Bytes of ``text`` deflated as permessage-deflate does (raw deflate, zlib's default level)."""
    packer = zlib.compressobj(wbits=-15)
    return len(packer.compress(text.encode()) + packer.flush(zlib.Z_SYNC_FLUSH))


def figures(label: str, text: str, baseline: str | None = None) -> None:
    size = len(text.encode())
    cards = len(json.loads(text)["payload"]["media"])
    line = f"{label:<28} {size:>11,} bytes ({size / 1024:.1f} KiB) {deflated(text):>10,} deflated {cards:>7} cards"
    if baseline is not None:
        line += f"   {size / len(baseline.encode()):.4f}x v2's"
    print(line, flush=True)


def joins_in_the_page(page: Page) -> asyncio.Queue[str]:
    """The texts of the joinRoomSuccess frames the page receives from now on, as they come."""
    frames: asyncio.Queue[str] = asyncio.Queue()

    def opened(socket: WebSocket) -> None:
        def received(data: str | bytes) -> None:
            text = data if isinstance(data, str) else data.decode()
            if text.startswith('{"type":"joinRoomSuccess"'):
                frames.put_nowait(text)

        socket.on("framereceived", received)

    page.on("websocket", opened)
    return frames


async def run(films: int) -> None:
    chromium = shutil.which("chromium")
    if chromium is None:
        raise SystemExit("bench.web_join needs Debian's chromium")
    with (
        tempfile.TemporaryDirectory() as work,
        media_server("plex", films) as urls,
        moviematch(server_settings("plex", urls), Path(work)) as served,
    ):
        async with client(served, "host", WINDOW) as host:
            await host.create(ROOM)
        async with client(served, "v2 member") as v2:
            whole = (await v2.join(ROOM)).text
        address = served.url.removeprefix("ws://").removesuffix("/api/ws")
        async with async_playwright() as driver:
            browser = await driver.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            page = await browser.new_page()
            frames = joins_in_the_page(page)
            await page.goto(f"http://{address}/?roomName={ROOM.replace(' ', '+')}")
            await page.fill("#signin-name", "Browser member")
            await page.click("#signin-form button[type=submit]")
            first = await asyncio.wait_for(frames.get(), REPLY_TIMEOUT)
            await page.reload()
            resumed = await asyncio.wait_for(frames.get(), REPLY_TIMEOUT)
            await browser.close()
    print(f"\njoinRoomSuccess of a {films:,}-film room (window {WINDOW}), measured on a busy machine:")
    figures("v2 client, whole deck", whole)
    figures("web client, first join", first, whole)
    figures("web client, after a reload", resumed, whole)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--films", type=int, default=100_000, help="films in the room's library")
    asyncio.run(run(parser.parse_args(argv).films))


if __name__ == "__main__":
    main()
