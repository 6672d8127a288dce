"""Choosing a backend: URLs, type + path settings, environment variables and third-party plug-ins."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from server.config import ConfigError, load_settings
from storage import MemoryStorage, SerializedRoom, Storage, StorageError, create_storage, storage_url
from tests.plugin_backend import PluginStorage

PLUGIN = "tests.plugin_backend:PluginStorage"
# Never resolvable, so a backend that connected while being built would fail loudly.
REDIS_URL = "redis://redis.invalid:6379/0"


# The backends are imported only inside the tests: the factory loads them lazily, and so do we.
def file_directory(storage: Storage) -> Path:
    from storage.file import FileStorage

    assert isinstance(storage, FileStorage)
    return storage.directory


def assert_redis(storage: Storage) -> None:
    from storage.redis import RedisStorage

    assert isinstance(storage, RedisStorage)


def same_directory(storage: Storage, expected: Path) -> bool:
    # The backend may keep a relative directory or make it absolute; either names the same place.
    return file_directory(storage).resolve() == expected.resolve()


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run the test from tmp_path, so relative storage paths land there."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize(
    ("url", "storage_type"), [("memory://", None), ("MEMORY://", None), (None, "memory"), (None, " Memory ")]
)
def test_memory(url: str | None, storage_type: str | None) -> None:
    assert type(create_storage(url, storage_type=storage_type)) is MemoryStorage


@pytest.mark.anyio
async def test_memory_size_and_clear() -> None:
    storage = create_storage("memory://")
    assert isinstance(storage, MemoryStorage)
    for name in ["Movie Night", "MOVIE NIGHT", "Friday"]:
        await storage.save_room(SerializedRoom(room_name=name))
    assert storage.size() == 2
    storage.clear()
    assert storage.size() == 0
    assert await storage.list_room_names() == []
    assert not await storage.has_room("Friday")


@pytest.mark.parametrize(
    ("url", "storage_type", "path", "expected"),
    [
        ("file://{tmp}/rooms", None, None, "rooms"),
        ("file://localhost{tmp}/rooms", None, None, "rooms"),
        ("file:{tmp}/rooms", None, None, "rooms"),
        ("file:relative/dir", None, None, "relative/dir"),
        (None, "file", "{tmp}/rooms", "rooms"),
        (None, "file", "relative/dir", "relative/dir"),
        (None, "FILE", "relative/dir", "relative/dir"),
        (None, "file", None, "data/rooms"),
        (None, None, None, "data/rooms"),
    ],
)
def test_file(in_tmp: Path, url: str | None, storage_type: str | None, path: str | None, expected: str) -> None:
    tmp = str(in_tmp)
    storage = create_storage(url and url.format(tmp=tmp), storage_type=storage_type, path=path and path.format(tmp=tmp))
    assert same_directory(storage, in_tmp / expected)
    # Building is not opening: no directory appears until the storage is opened.
    assert list(in_tmp.iterdir()) == []


@pytest.mark.parametrize(
    "name",
    [
        "my rooms",
        "100%",
        "ünï",
        "rooms#1",
        "rooms?x",
    ],
)
def test_file_path_setting_is_taken_literally(tmp_path: Path, name: str) -> None:
    assert same_directory(create_storage(storage_type="file", path=str(tmp_path / name)), tmp_path / name)


def test_a_path_with_two_leading_slashes_is_a_path_not_a_host() -> None:
    from storage.file import FileStorage

    storage = create_storage(storage_type="file", path="//srv/rooms")
    assert isinstance(storage, FileStorage)
    assert str(storage.directory) == "//srv/rooms"


@pytest.mark.parametrize(
    "url",
    [REDIS_URL, "redis://:password@127.0.0.1:6379/2", "rediss://redis.invalid:6380/1", "unix:///run/redis.sock?db=0"],
)
def test_redis_url(url: str) -> None:
    assert_redis(create_storage(url))


def test_redis_type_takes_the_url_as_path() -> None:
    assert_redis(create_storage(storage_type="redis", path=REDIS_URL))


def storage_from_env(env: Mapping[str, str]) -> Storage:
    """The storage the server builds from these variables (and no config file)."""
    return load_settings("/dev/null", env).storage.create()


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"STORAGE_URL": "memory://"}, "memory"),
        ({"STORAGE_URL": "", "STORAGE_TYPE": "memory"}, "memory"),
        ({"STORAGE_TYPE": "memory", "STORAGE_PATH": "ignored"}, "memory"),
        ({"STORAGE_URL": "file:from/url"}, "from/url"),
        ({"STORAGE_TYPE": "file", "STORAGE_PATH": "from/path"}, "from/path"),
        ({"STORAGE_PATH": "from/path"}, "from/path"),
        ({}, "data/rooms"),
        ({"STORAGE_TYPE": "redis", "REDIS_URL": REDIS_URL}, "redis"),
        ({"STORAGE_TYPE": "Redis", "REDIS_URL": REDIS_URL}, "redis"),
        ({"STORAGE_TYPE": "rediss", "REDIS_URL": "rediss://redis.invalid:6380/0"}, "redis"),
        ({"STORAGE_URL": REDIS_URL}, "redis"),
    ],
)
def test_storage_from_the_environment(in_tmp: Path, env: Mapping[str, str], expected: str) -> None:
    storage = storage_from_env(env)
    if expected == "memory":
        assert type(storage) is MemoryStorage
    elif expected == "redis":
        assert_redis(storage)
    else:
        assert same_directory(storage, in_tmp / expected)


@pytest.mark.parametrize(
    ("storage_type", "path", "url"),
    [
        ("memory", "ignored", "memory://"),
        ("file", "data/x", "file:data/x"),
        ("file", "/abs/x", "file:///abs/x"),
        ("file", "//srv/rooms", "file:////srv/rooms"),
        ("file", None, "file:data/rooms"),
        (None, None, "file:data/rooms"),
        ("redis", REDIS_URL, REDIS_URL),
        ("customscheme", "x/y", "customscheme://x/y"),
        ("customscheme", "customscheme://x/y", "customscheme://x/y"),
        ("customscheme", None, "customscheme://"),
    ],
)
def test_storage_url(storage_type: str | None, path: str | None, url: str) -> None:
    assert storage_url(storage_type, path) == url


def test_an_explicit_url_wins_over_type_and_path() -> None:
    assert storage_url("file", "data/x", "memory://") == "memory://"


@pytest.mark.parametrize(
    ("url", "storage_type", "path", "message"),
    [
        ("file://data/rooms", None, None, "file URLs take no host ('data')"),
        ("file:", None, None, "file URL has no path"),
        ("ftp://x", None, None, "unknown storage scheme 'ftp'"),
        (None, "ftp", "x", "unknown storage scheme 'ftp'"),
        ("data/rooms", None, None, "not a storage URL"),
        (None, "nosuchmodule:Cls", None, "cannot load nosuchmodule:Cls"),
        (None, "tests.plugin_backend:NoSuchClass", None, "cannot load tests.plugin_backend:NoSuchClass"),
        (None, "os:path", None, "os:path is not a Storage subclass"),
        (None, "storage:StorageError", None, "storage:StorageError is not a Storage subclass"),
        (None, ":PluginStorage", None, "is not of the form module:Class"),
        (None, "redis", None, "a redis storage needs a URL"),
        (None, "rediss", "", "a redis storage needs a URL"),
    ],
)
def test_bad_urls_and_types_are_storage_errors(
    url: str | None, storage_type: str | None, path: str | None, message: str
) -> None:
    with pytest.raises(StorageError, match=r"^create_storage failed") as caught:
        create_storage(url, storage_type=storage_type, path=path)
    assert message in str(caught.value)


def test_a_redis_type_without_redis_url_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="REDIS_URL"):
        storage_from_env({"STORAGE_TYPE": "redis"})


@pytest.mark.parametrize(
    "build",
    [
        lambda: create_storage(storage_type=PLUGIN, path="whatever://here"),
        lambda: storage_from_env({"STORAGE_TYPE": PLUGIN, "STORAGE_PATH": "whatever://here"}),
    ],
    ids=["argument", "environment"],
)
def test_a_backend_named_as_module_and_class(build: Callable[[], Storage]) -> None:
    storage = build()
    assert isinstance(storage, PluginStorage)
    assert storage.url == "whatever://here"


@pytest.fixture
def plugin_distribution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An installed distribution that registers storage schemes, as ``pip install`` would leave it."""
    dist_info = tmp_path / "moviematch_test_plugin-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: moviematch-test-plugin\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text(
        "[moviematch.storage]\n"
        f"customscheme = {PLUGIN}\n"
        "notastorage = os:path\n"
        # A plug-in must not be able to take over a built-in scheme.
        f"memory = {PLUGIN}\n"
        "\n[some.other.group]\n"
        f"otherscheme = {PLUGIN}\n"
    )
    monkeypatch.syspath_prepend(tmp_path)


@pytest.mark.usefixtures("plugin_distribution")
@pytest.mark.parametrize(
    ("url", "storage_type", "path", "expected_url"),
    [
        ("customscheme://x", None, None, "customscheme://x"),
        ("customscheme://user@host:1/db?opt=1", None, None, "customscheme://user@host:1/db?opt=1"),
        (None, "customscheme", "x", "customscheme://x"),
    ],
)
def test_a_backend_registered_as_entry_point(
    url: str | None, storage_type: str | None, path: str | None, expected_url: str
) -> None:
    storage = create_storage(url, storage_type=storage_type, path=path)
    assert type(storage) is PluginStorage
    assert storage.url == expected_url


@pytest.mark.usefixtures("plugin_distribution")
def test_entry_points_do_not_shadow_built_in_schemes() -> None:
    assert type(create_storage("memory://")) is MemoryStorage


@pytest.mark.usefixtures("plugin_distribution")
@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("notastorage://x", "entry point 'notastorage'"),
        ("otherscheme://x", "unknown storage scheme 'otherscheme'"),
    ],
)
def test_bad_entry_points_are_storage_errors(url: str, message: str) -> None:
    with pytest.raises(StorageError, match=message):
        create_storage(url)


def test_without_the_distribution_the_scheme_is_unknown() -> None:
    with pytest.raises(StorageError, match="unknown storage scheme 'customscheme'"):
        create_storage("customscheme://x")
