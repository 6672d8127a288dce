"""The README's scale-out deployment, for real: its nginx example, filled in with two real server
processes sharing one redis-server, balances requests and WebSockets over both, and two people who
land on different processes share a room; its sentinel.conf runs on a real Redis Sentinel;
docker-compose.yml says what the README says (its sentinel profile included); and the package
installed as the Dockerfile installs it (``pip install .``, not editable) serves the client.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import yaml

from tests.fakes import eventually
from tests.peers import over_network
from tests.services import (
    SENTINEL_SERVICE,
    RedisServer,
    ServerProcess,
    free_port,
    in_ci,
    require_tool,
    running_nginx,
    running_redis,
    wait_for_port,
)

REPO = Path(__file__).resolve().parent.parent
README_MARKER = "<!-- tests/test_deployment.py runs this block"
SENTINEL_MARKER = "<!-- tests/test_deployment.py runs this block with real sentinels -->"
UPSTREAM_SERVER = re.compile(r"^(\s*server\s+)[\w.-]+:\d+;", re.MULTILINE)
LISTEN = re.compile(r"^(\s*listen\s+)\S+;", re.MULTILINE)


def readme_nginx_example() -> str:
    """The nginx block that follows the marker in the README's scale-out section."""
    readme = (REPO / "README.md").read_text()
    assert README_MARKER in readme, "the README's scale-out nginx example lost its marker comment"
    block = re.search(r"```nginx\n(.*?)```", readme[readme.index(README_MARKER) :], re.DOTALL)
    assert block is not None, "no ```nginx block after the README's marker comment"
    return block.group(1)


def readme_sentinel_conf() -> str:
    """The sentinel.conf block that follows its marker in the README."""
    readme = (REPO / "README.md").read_text()
    assert SENTINEL_MARKER in readme, "the README's sentinel.conf lost its marker comment"
    block = re.search(r"```conf\n(.*?)```", readme[readme.index(SENTINEL_MARKER) :], re.DOTALL)
    assert block is not None, "no ```conf block after the README's sentinel marker"
    return block.group(1)


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    return loaded


def interpolated(value: str) -> str:
    """A compose value as compose reads it with the variable unset: ``${NAME:-default}`` is the default."""
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", value)


def words(text: str) -> list[list[str]]:
    return [line.split() for line in text.splitlines() if line.strip()]


def with_addresses(example: str, upstreams: list[str], listen: str) -> str:
    """The example with its upstream servers replaced, in order, and its listen address."""
    found = UPSTREAM_SERVER.findall(example)
    assert len(found) == len(upstreams), f"the example lists {len(found)} upstream servers, not {len(upstreams)}"
    addresses = iter(upstreams)
    filled = UPSTREAM_SERVER.sub(lambda match: f"{match.group(1)}{next(addresses)};", example)
    filled, listens = LISTEN.subn(lambda match: f"{match.group(1)}{listen};", filled)
    assert listens == 1, f"the example should have one listen directive, not {listens}"
    return filled


# -- nginx in front of two processes ------------------------------------------------------------


@contextmanager
def running_servers(directory: Path, count: int, **env: str) -> Iterator[list[ServerProcess]]:
    servers = [ServerProcess(directory / f"rooms-{number}", **env) for number in range(count)]
    try:
        for server in servers:
            server.start()
        yield servers
    finally:
        for server in servers:
            server.stop()


def upgrades(access_log: Path) -> list[str]:
    """The upstream address of every WebSocket upgrade nginx logged (when each connection ended)."""
    lines = access_log.read_text().splitlines() if access_log.exists() else []
    return [line.split()[0] for line in lines if '"GET /api/ws ' in line and line.endswith(" 101")]


@pytest.mark.anyio
@pytest.mark.slow
async def test_the_readme_nginx_example_shares_rooms_across_two_processes(tmp_path: Path, redis_url: str) -> None:
    listen = free_port()
    with running_servers(tmp_path, 2, STORAGE_URL=redis_url) as servers:
        addresses = [f"127.0.0.1:{server.port}" for server in servers]
        http_block = with_addresses(readme_nginx_example(), addresses, f"127.0.0.1:{listen}")
        with running_nginx(tmp_path / "nginx", http_block, listen) as access_log:
            origin = f"http://127.0.0.1:{listen}"
            async with httpx.AsyncClient() as client:
                for _ in servers:  # round-robin: one request to each process
                    health = await client.get(f"{origin}/health")
                    assert health.status_code == 200, health.text
                    assert health.json()["storage"] == "ok"

            # A browser sends the page's origin; the proxy must pass Host on for the origin check.
            async with over_network(f"ws://127.0.0.1:{listen}/api/ws", origin=origin) as connect:
                ann, bob = await connect("ann"), await connect("bob")
                await ann.login("ann")
                await bob.login("bob")
                deck = [item["id"] for item in (await ann.create("Scale Out"))["media"]]
                joined = await bob.join("Scale Out")
                assert [entry["user"]["userName"] for entry in joined["users"]] == ["ann", "bob"]
                assert (await ann.wait_for("userJoinedRoom"))["user"]["userName"] == "bob"
                for peer in (ann, bob):
                    await peer.send("rate", {"mediaId": deck[0], "rating": "like"})
                for peer in (ann, bob):
                    match = await peer.wait_for("match")
                    assert (match["media"]["id"], sorted(match["users"])) == (deck[0], ["ann", "bob"])

            await eventually(lambda: len(upgrades(access_log)) == 2)
            assert sorted(upgrades(access_log)) == sorted(addresses), "the two people were not on two processes"
    for server in servers:
        assert "Traceback" not in server.output()


# -- docker-compose.yml -------------------------------------------------------------------------


def test_the_compose_file_runs_the_readme_setup() -> None:
    spec = compose()
    services = spec["services"]
    assert "--appendonly" in services["redis"]["command"]
    assert services["redis"]["command"][services["redis"]["command"].index("--appendonly") + 1] == "yes"
    assert any(volume.endswith(":/data") for volume in services["redis"]["volumes"])

    # Its nginx configuration is the README's example, with the compose services as upstreams,
    # each of which is a MovieMatch process built from the Dockerfile on the shared Redis.
    nginx = spec["configs"]["nginx-moviematch"]["content"].replace("$$", "$")  # compose's escape
    upstreams = [match.group(0).split()[1].rstrip(";") for match in UPSTREAM_SERVER.finditer(nginx)]
    expected = with_addresses(readme_nginx_example(), upstreams, "80")
    assert words(nginx) == words(expected)
    assert len(upstreams) >= 2
    for upstream in upstreams:
        host, port = upstream.split(":")
        assert port == "8000"
        assert services[host]["build"] == "."
        assert interpolated(services[host]["environment"]["STORAGE_URL"]) == "redis://redis:6379/0"
        assert interpolated(services[host]["environment"]["REDIS_MIN_REPLICAS"]) == "0"
    assert spec["services"]["nginx"]["configs"][0]["source"] == "nginx-moviematch"
    hosts = [upstream.split(":")[0] for upstream in upstreams]
    assert not any("profiles" in services[name] for name in ("redis", "nginx", *hosts))  # no profile needed


def test_the_compose_sentinel_profile_runs_the_readme_failover_setup() -> None:
    spec = compose()
    services = spec["services"]
    profiled = {name: service for name, service in services.items() if service.get("profiles") == ["sentinel"]}
    sentinels = sorted(name for name, service in profiled.items() if "--sentinel" in " ".join(service["command"]))
    replicas = sorted(set(profiled) - set(sentinels))
    # Its sentinel.conf is the README's; the primary it monitors is the plain setup's redis.
    conf = spec["configs"]["sentinel"]["content"]
    assert words(conf) == words(readme_sentinel_conf())
    [monitor] = [line for line in words(conf) if line[:2] == ["sentinel", "monitor"]]
    service_name, host, port, quorum = monitor[2:]
    assert (host, port) == ("redis", "6379")
    assert len(sentinels) >= 3
    assert int(quorum) == len(sentinels) // 2 + 1
    for name in sentinels:
        assert profiled[name]["configs"][0]["source"] == "sentinel"
        assert any(volume.endswith(":/data") for volume in profiled[name]["volumes"])  # it rewrites its file
    # Replicas of redis, persisted, known to the sentinels by name.
    assert len(replicas) >= 2
    for name in replicas:
        command = " ".join(profiled[name]["command"])
        assert "--appendonly yes" in command
        assert "--replicaof redis 6379" in command
        assert f"--replica-announce-ip {name}" in command
    # The URL the README and the compose file give the processes names these sentinels and service.
    readme = (REPO / "README.md").read_text()
    urls = set(re.findall(r"STORAGE_URL=(redis\+sentinel://[\w,-]+/\w+)", readme))
    urls |= set(re.findall(r"STORAGE_URL=(redis\+sentinel://[\w,-]+/\w+)", (REPO / "docker-compose.yml").read_text()))
    assert urls == {f"redis+sentinel://{','.join(sentinels)}/{service_name}"}
    for process in ("moviematch-1", "moviematch-2"):
        depends = services[process]["depends_on"]
        assert all(depends[name] == {"condition": "service_started", "required": False} for name in sentinels)


@pytest.mark.redis
@pytest.mark.slow
def test_the_readme_sentinel_conf_runs_on_a_real_sentinel(tmp_path: Path) -> None:
    """The block as written (its host and ports made local) starts a sentinel that watches the primary
    as the README says, and finds its replica."""
    (tmp_path / "primary").mkdir()
    (tmp_path / "replica").mkdir()
    (tmp_path / "sentinel").mkdir()
    with running_redis(tmp_path / "primary") as primary:
        replica = RedisServer(tmp_path / "replica", args=["--replicaof", "127.0.0.1", str(primary.port)])
        replica.start()
        port = free_port()
        conf = readme_sentinel_conf().replace("redis 6379", f"localhost {primary.port}")
        conf = conf.replace("port 26379", f"port {port}\nbind 127.0.0.1\ndir {tmp_path / 'sentinel'}")
        (tmp_path / "sentinel" / "sentinel.conf").write_text(conf)
        sentinel = subprocess.Popen(
            [require_tool("redis-server"), str(tmp_path / "sentinel" / "sentinel.conf"), "--sentinel"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for_port(port)
            with redis.Redis(port=port, decode_responses=True) as client:
                state = client.sentinel_master(SENTINEL_SERVICE)
                assert (state["port"], state["quorum"]) == (primary.port, 2)
                assert (state["down-after-milliseconds"], state["failover-timeout"]) == (5000, 60000)

                deadline = time.monotonic() + 60  # a hang; sentinels ask the primary every 10 s
                while [found["port"] for found in client.sentinel_slaves(SENTINEL_SERVICE)] != [replica.port]:
                    assert time.monotonic() < deadline, "the sentinel never found the replica"
                    time.sleep(0.2)
        finally:
            sentinel.terminate()
            output = sentinel.communicate(timeout=10)[0].decode(errors="replace")
            replica.stop()
        assert "FATAL" not in output, output


# -- the package as the Dockerfile installs it ---------------------------------------------------


@pytest.mark.slow
def test_the_installed_package_serves_the_web_client(tmp_path: Path) -> None:
    """``pip install .`` copies what the wheel holds to site-packages, away from this checkout:
    the server must find its web client, translations and demo library there too."""
    if importlib.util.find_spec("hatchling") is None:
        message = "hatchling (the build backend) is not installed in this environment"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    target = tmp_path / "site-packages"
    offline = ["--no-deps", "--no-build-isolation", "--no-index"]  # this checkout, nothing from the network
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", *offline, "--target", str(target), str(REPO)],
        check=True,
        capture_output=True,
    )
    env = {"PYTHONPATH": str(target), "STORAGE_URL": "memory://"}
    located = subprocess.run(
        [sys.executable, "-c", "import server; print(server.__file__)"],
        env={**os.environ, **env},
        cwd=tmp_path,
        check=True,
        capture_output=True,
        text=True,
    )
    assert Path(located.stdout.strip()).is_relative_to(target)
    server = ServerProcess(tmp_path / "rooms", **env)
    try:
        try:
            server.start(timeout=15)
        except TimeoutError:
            pytest.fail(f"the installed server did not start:\n{server.output()}")
        page = httpx.get(server.http_url + "/")
        assert page.status_code == 200, server.output()
        assert "<html" in page.text
        assert httpx.get(server.http_url + "/health").status_code == 200
    finally:
        server.stop()
