"""The real server process: restart, crash and shutdown behaviour over loopback."""

from __future__ import annotations

import gc
import signal
import socket
import time
from pathlib import Path

import anyio
import pytest
from websockets.exceptions import ConnectionClosed

from server import collector
from server.__main__ import build_server
from server.addresses import lan_addresses
from server.config import Settings, load_settings
from server.startup import banner, qr_code
from tests.fakes import eventually
from tests.peers import Peer, over_network
from tests.services import ServerProcess, running_server

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


def ids(media: list[dict[str, object]]) -> list[object]:
    return [item["id"] for item in media]


async def close_code(peer: Peer) -> int:
    """Read whatever is still queued, then the close frame."""
    try:
        while True:
            await peer.next()
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd is not None else -1


async def test_rooms_survive_a_restart(tmp_path: Path) -> None:
    rooms = tmp_path / "rooms"
    with running_server(rooms) as server:
        async with over_network(server.ws_url) as connect:
            ann, bob = await connect("ann"), await connect("bob")
            await ann.login("ann")
            await bob.login("bob")
            created = await ann.create("Movie Night")
            deck = ids(created["media"])
            await bob.join("Movie Night")
            for item in deck[:5]:
                await ann.send("rate", {"mediaId": item, "rating": "like"})
            for item in deck[2:4]:
                await bob.send("rate", {"mediaId": item, "rating": "like"})
            await bob.wait_for("match")
            await bob.wait_for("match")
            for _ in range(7):
                await ann.wait_for("userProgress")
            server.signal(signal.SIGTERM)
            assert await close_code(ann) == 1001  # going away
            assert server.wait(timeout=10) in (0, -signal.SIGTERM)
        assert "Traceback" not in server.output()
        server.start()
        async with over_network(server.ws_url) as connect:
            ann, bob = await connect("ann"), await connect("bob")
            await ann.login("ann")
            await bob.login("bob")
            ann_view = await ann.join("movie night")
            bob_view = await bob.join("Movie Night")
    assert ids(ann_view["media"]) == deck[5:]
    assert ids(bob_view["media"]) == deck[:2] + deck[4:]
    matches = [(m["matchedAt"], m["media"]["id"]) for m in bob_view["previousMatches"]]
    assert (sorted(matches), {media_id for _, media_id in matches}) == (matches, set(deck[2:4]))
    assert {u["user"]["userName"]: u["progress"] for u in bob_view["users"]} == {
        "ann": pytest.approx(5 / len(deck)),
        "bob": pytest.approx(2 / len(deck)),
    }


async def test_acknowledged_ratings_survive_sigkill(tmp_path: Path) -> None:
    max_wait = 1.0
    rooms = tmp_path / "rooms"
    acknowledged: list[tuple[float, object]] = []
    with running_server(rooms, SAVE_DELAY="0.3", SAVE_MAX_WAIT=str(max_wait)) as server:
        async with over_network(server.ws_url) as connect:
            ann = await connect("ann")
            await ann.login("ann")
            deck = ids((await ann.create("Storm"))["media"])
            # A steady stream over about four seconds, longer than the maximum save wait.
            for item in deck:
                await ann.send("rate", {"mediaId": item, "rating": "dislike"})
                await ann.expect("userProgress")  # acknowledged
                acknowledged.append((time.monotonic(), item))
                await anyio.sleep(4.0 / len(deck))
            server.signal(signal.SIGKILL)
            killed_at = time.monotonic()
            server.wait(timeout=10)
        server.start()
        async with over_network(server.ws_url) as connect:
            ann = await connect("ann")
            await ann.login("ann")
            remaining = set(ids((await ann.join("Storm"))["media"]))
    must_survive = [item for at, item in acknowledged if at < killed_at - (max_wait + 1.0)]
    assert must_survive, "the storm was too short to test anything"
    assert not remaining & set(must_survive)


async def test_shutdown_is_bounded_when_a_client_stops_reading(tmp_path: Path) -> None:
    with running_server(tmp_path / "rooms") as server:
        async with over_network(server.ws_url) as connect:
            stuck: Peer = await connect("stuck")
            # Each reply is a whole translation table and this client never reads: the server's
            # sender blocks on a full socket while its queue (below the overflow limit) waits.
            for _ in range(450):
                await stuck.send("setLocale", {"language": "en"})
            await anyio.sleep(0.5)
            started = time.monotonic()
            server.signal(signal.SIGTERM)
            code = server.wait(timeout=15)
            assert time.monotonic() - started < 10
    assert code in (0, -signal.SIGTERM)


async def test_messages_sent_at_once_are_each_answered_in_order(tmp_path: Path) -> None:
    """A client's messages beyond what the server reads ahead wait in the socket and are read later;
    the frames a connection is sent meanwhile go out together. Nothing is lost or reordered."""
    limits = {"RATE_LIMIT_PER_SECOND": "100000", "RATE_LIMIT_BURST": "100000"}
    with running_server(tmp_path / "rooms", **limits) as server:
        async with over_network(server.ws_url) as connect:
            ann, bob = await connect("ann"), await connect("bob")
            await ann.login("ann")
            await bob.login("bob")
            deck = ids((await ann.create("Movie Night"))["media"])
            await bob.join("Movie Night")
            for item in deck:
                await ann.send("rate", {"mediaId": item, "rating": "dislike"})
            expected = [pytest.approx(count / len(deck)) for count in range(1, len(deck) + 1)]
            with anyio.fail_after(60):
                for peer in (ann, bob):
                    assert [await peer.progress_of("ann") for _ in deck] == expected


async def test_connections_send_small_frames_at_once(tmp_path: Path) -> None:
    """TCP_NODELAY on every connection: with Nagle's algorithm the small frames of each rating wait
    for the peer's ACK, and closed-loop clients drift apart (found by the load benchmark)."""
    settings = Settings.model_validate({"host": "127.0.0.1", "port": 0, "storage": {"url": "memory://"}})
    server = build_server(settings)
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(server.serve)
        await eventually(lambda: server.started)
        port = server.servers[0].sockets[0].getsockname()[1]
        async with await anyio.connect_tcp("127.0.0.1", port) as client:
            await client.send(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
            assert (await client.receive()).startswith(b"HTTP/1.1 200")
            [connection] = server.server_state.connections
            accepted = connection.transport.get_extra_info("socket")
            assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        server.should_exit = True


# -- what the terminal says at startup -------------------------------------------------------------


def failed_start(server: ServerProcess) -> tuple[int, list[str]]:
    """Start a server that must not start: its exit status, and the lines saying why."""
    server.launch()
    code = server.wait(timeout=30)
    output = server.output()
    assert "Traceback" not in output
    assert [line for line in output.splitlines() if " ERROR " in line] == [], "no other complaint than the line"
    return code, [line for line in output.splitlines() if line.startswith("moviematch:")]


def test_a_second_server_on_the_same_rooms_says_so_in_one_line(tmp_path: Path) -> None:
    rooms = tmp_path / "rooms"
    with running_server(rooms):
        holder = (rooms / ".lock").read_text().strip()  # the first server's pid
        code, lines = failed_start(ServerProcess(rooms))
    assert code != 0
    assert lines == [
        f"moviematch: cannot start: {rooms} is in use by another MovieMatch process (pid {holder}). "
        "Stop that process, or give this one another directory with STORAGE_URL (storage: url: in config.yaml)."
    ]


def test_a_taken_port_says_so_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = ServerProcess(tmp_path / "rooms", PORT=str(port))
        code, lines = failed_start(server)
    assert code != 0
    assert lines == [
        f"moviematch: cannot start: port {port} is already in use on 127.0.0.1 (is MovieMatch running already?). "
        "Stop that program, or choose another port with PORT (port: in config.yaml, or --port)."
    ]
    assert not (tmp_path / "rooms" / ".lock").exists(), "the storage was not even opened"


def test_startup_prints_the_lan_address_and_its_qr_code(tmp_path: Path) -> None:
    env = {"HOST": "0.0.0.0"}  # noqa: S104 (what `make run` listens on)
    with running_server(tmp_path / "rooms", **env) as server:
        settings = load_settings(None, {**env, "PORT": str(server.port)})
        expected = banner(settings, server.port)  # read from this machine's interfaces, as the server did
        for _ in range(100):
            if expected in server.output():
                break
            time.sleep(0.05)
        assert expected in server.output()
    lan = lan_addresses(ipv6=False)
    if lan:
        assert f"  On your network:    http://{lan[0]}:{server.port}/" in expected
        assert expected.endswith(qr_code(f"http://{lan[0]}:{server.port}/"))


def test_the_collector_settles_once_the_server_started() -> None:
    """What startup made is left out of collections, and the youngest generation is collected less
    often (bench/load.py: a rating's objects otherwise reach the oldest generation)."""
    threshold = gc.get_threshold()
    try:
        collector.settle()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == (collector.YOUNGEST_THRESHOLD, *threshold[1:])
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)
