from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from server import __main__ as cli
from server.config import ConfigError, Settings, load_settings

REPO = Path(__file__).resolve().parent.parent
TOKEN = "tok-3f9a1c7e-never-shown"


def write(path: Path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    return str(path)


def settings_with(**env: str) -> Settings:
    return load_settings("/dev/null", env)


def problems_of(config_path: str | None, env: dict[str, str]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_settings(config_path, env)
    return caught.value.problems


def test_defaults_without_file_or_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings(None, {})
    assert (settings.host, settings.port) == ("0.0.0.0", 8000)  # noqa: S104 (the default being checked)
    assert (settings.log_level, settings.log_format) == ("INFO", "text")
    assert (settings.root_path, settings.require_plex_login, settings.auth, settings.tls) == ("", False, None, None)
    assert (settings.servers, settings.catalogue, settings.allowed_origins) == ((), None, ())
    assert settings.storage_url() == "file:data/rooms"
    assert (settings.save_delay, settings.save_max_wait, settings.room_idle_timeout) == (1.0, 5.0, 300.0)
    assert settings.shutdown_timeout == 8.0
    assert (settings.max_message_bytes, settings.rate_limit_per_second, settings.rate_limit_burst) == (65536, 20.0, 40)
    assert (settings.max_room_members, settings.max_name_length) == (50, 100)


def test_default_path_is_read_when_present(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "config.yaml", "port: 9000\n")
    assert load_settings(None, {}).port == 9000


def test_explicit_missing_path_is_an_error(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.yaml")
    assert problems_of(missing, {}) == [f"{missing}: config file not found"]


def test_settings_are_immutable() -> None:
    settings = load_settings("/dev/null", {})
    with pytest.raises(ValueError, match="frozen"):
        settings.port = 1  # type: ignore[misc]


def test_env_wins_over_yaml_and_options_win_over_env(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", "host: 127.0.0.1\nport: 9000\nlog_level: debug\nsave_delay: 2\n")
    settings = load_settings(path, {"PORT": "9100", "LOG_LEVEL": "warn", "SAVE_MAX_WAIT": " 3.5 "})
    assert (settings.host, settings.port, settings.log_level) == ("127.0.0.1", 9100, "WARNING")
    assert (settings.save_delay, settings.save_max_wait) == (2.0, 3.5)
    assert load_settings(path, {"PORT": "9100"}, overrides={"port": 9200}).port == 9200


def test_empty_env_values_count_as_unset(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", "port: 9000\n")
    assert load_settings(path, {"PORT": "", "HOST": "  "}).port == 9000


def test_original_moviematch_keys_load(tmp_path: Path) -> None:
    cert, key = write(tmp_path / "cert.pem", "c"), write(tmp_path / "key.pem", "k")
    path = write(
        tmp_path / "c.yaml",
        f"""
hostname: 127.0.0.1
port: 8080
logLevel: debug
rootPath: /moviematch/
requirePlexTvLogin: true
basicAuth: {{userName: ann, password: pw}}
tlsConfig: {{certFile: {cert}, keyFile: {key}}}
servers:
  - url: http://plex.lan:32400/
    token: {TOKEN}
    libraryTitleFilter: [Films]
    libraryTypeFilter: [movie, show]
    linkType: webExternal
""",
    )
    settings = load_settings(path, {})
    assert (settings.host, settings.port, settings.log_level) == ("127.0.0.1", 8080, "DEBUG")
    assert (settings.root_path, settings.require_plex_login) == ("/moviematch", True)
    assert settings.auth is not None
    assert settings.auth.user == "ann"
    assert settings.auth.password.get_secret_value() == "pw"
    assert settings.tls is not None
    assert (settings.tls.cert, settings.tls.key) == (cert, key)
    (server,) = settings.servers
    assert (server.type, server.url, server.token.get_secret_value()) == ("plex", "http://plex.lan:32400", TOKEN)
    assert (server.library_title_filter, server.library_type_filter) == (("Films",), ("movie", "show"))
    assert (server.link_type, server.verify_tls, server.user_id) == ("webExternal", True, None)


def test_a_key_given_in_both_spellings_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", "host: a\nhostname: b\n")
    assert problems_of(path, {}) == ["host: set twice (as host and hostname)"]


SERVERS_YAML = f"""
servers:
  - url: http://plex.lan:32400
    token: {TOKEN}
    library_title_filter: [Films]
  - type: jellyfin
    url: https://jf.example.com/jellyfin
    token: other
    user_id: abc
"""


def test_env_overrides_the_first_server_field_by_field(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", SERVERS_YAML)
    env = {"PLEX_URL": "https://example.com/plex", "LIBRARY_TYPE_FILTER": " movie, show ,,", "MOVIE_LINK_TYPE": "app"}
    first, second = load_settings(path, env).servers
    assert (first.url, first.token.get_secret_value(), first.library_title_filter) == (
        "https://example.com/plex",
        TOKEN,
        ("Films",),
    )
    assert (first.library_type_filter, first.link_type) == (("movie", "show"), "app")
    assert (second.type, second.url, second.user_id) == ("jellyfin", "https://jf.example.com/jellyfin", "abc")


def test_env_creates_a_plex_server_when_none_is_configured() -> None:
    env = {"PLEX_URL": "http://10.0.0.2:32400", "PLEX_TOKEN": TOKEN, "LIBRARY_TITLE_FILTER": "Films , Kids"}
    (server,) = load_settings("/dev/null", env).servers
    assert (server.type, server.url, server.library_title_filter) == (
        "plex",
        "http://10.0.0.2:32400",
        ("Films", "Kids"),
    )
    assert server.library_type_filter == ("movie",)


def test_env_server_without_token_names_the_variable() -> None:
    assert problems_of("/dev/null", {"PLEX_URL": "http://plex:32400"}) == [
        "servers[0].token: is required (or set PLEX_TOKEN)"
    ]


def test_every_problem_is_reported_once_naming_its_key(tmp_path: Path) -> None:
    path = write(
        tmp_path / "c.yaml",
        "port: abc\nlogLevel: LOUD\nservers:\n  - {url: 'http://p:32400', token: t, linkType: browser}\ncolour: blue\n",
    )
    assert problems_of(path, {}) == [
        "port: must be an integer between 0 and 65535 (got 'abc')",
        "logLevel: must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL (got 'LOUD')",
        "servers[0].linkType: must be one of app, webLocal, webExternal (got 'browser')",
        "colour: unknown key",
    ]


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"PORT": "70000"}, "port (PORT): must be an integer between 0 and 65535 (got '70000')"),
        ({"LOG_FORMAT": "xml"}, "log_format (LOG_FORMAT): must be text or json (got 'xml')"),
        ({"SAVE_DELAY": "0"}, "save_delay (SAVE_DELAY): must be a number of seconds greater than 0 (got '0')"),
        (
            {"ROOT_PATH": "http://x/y"},
            "root_path (ROOT_PATH): must be a URL path such as /moviematch (got 'http://x/y')",
        ),
        ({"CATALOGUE_FILE": "/no/such/file"}, "catalogue (CATALOGUE_FILE): file not found (got '/no/such/file')"),
        (
            {"ALLOWED_ORIGINS": "https://ok.example, https://x.example/path"},
            "allowed_origins[1] (ALLOWED_ORIGINS): must be an origin such as https://movies.example.com"
            " (scheme and host, no path) (got 'https://x.example/path')",
        ),
        (
            {"PLEX_URL": "plex.lan:32400", "PLEX_TOKEN": "t"},
            "servers[0].url (PLEX_URL): must be an http:// or https:// URL with a host,"
            " e.g. http://192.168.1.10:32400 (got 'plex.lan:32400')",
        ),
        (
            {"LIBRARY_TYPE_FILTER": "movie,music", "PLEX_URL": "http://p", "PLEX_TOKEN": "t"},
            "servers[0].library_type_filter[1] (LIBRARY_TYPE_FILTER): must be a non-empty list of: movie, show"
            " (got 'music')",
        ),
    ],
)
def test_env_problems_name_key_and_variable(env: dict[str, str], expected: str) -> None:
    assert problems_of("/dev/null", env) == [expected]


def test_option_problems_name_the_option() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings("/dev/null", {}, overrides={"port": 99999})
    assert caught.value.problems == ["port (--port): must be an integer between 0 and 65535 (got 99999)"]


@pytest.mark.parametrize(
    ("value", "expected"), [("/", ""), ("//", ""), ("mm", "/mm"), ("/mm/", "/mm"), ("/a/b", "/a/b")]
)
def test_root_path_is_normalised(value: str, expected: str) -> None:
    assert settings_with(ROOT_PATH=value).root_path == expected


def test_log_level_is_case_insensitive() -> None:
    assert load_settings("/dev/null", {"LOG_LEVEL": "error"}).log_level == "ERROR"
    assert load_settings("/dev/null", {"LOG_LEVEL": "Warn"}).log_level == "WARNING"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1", True),
        ("TRUE", True),
        ("yes", True),
        ("On", True),
        ("0", False),
        ("false", False),
        ("no", False),
        ("OFF", False),
        ("", False),
    ],
)
def test_require_plex_login_env_values(value: str, expected: bool) -> None:
    assert load_settings("/dev/null", {"REQUIRE_PLEX_LOGIN": value}).require_plex_login is expected


def test_require_plex_login_rejects_other_words() -> None:
    (problem,) = problems_of("/dev/null", {"REQUIRE_PLEX_LOGIN": "maybe"})
    assert problem.startswith("require_plex_login (REQUIRE_PLEX_LOGIN): must be true or false")
    assert problem.endswith("(got 'maybe')")


def test_basic_auth_needs_both_user_and_password() -> None:
    assert problems_of("/dev/null", {"AUTH_USER": "ann"}) == ["auth.password: is required (or set AUTH_PASS)"]
    assert problems_of("/dev/null", {"AUTH_PASS": "pw"}) == ["auth.user: is required (or set AUTH_USER)"]
    auth = load_settings("/dev/null", {"AUTH_USER": "ann", "AUTH_PASS": "pw"}).auth
    assert auth is not None
    assert (auth.user, auth.password.get_secret_value()) == ("ann", "pw")


def test_tls_files_must_exist(tmp_path: Path) -> None:
    cert, key = write(tmp_path / "cert.pem", "c"), str(tmp_path / "key.pem")
    assert problems_of("/dev/null", {"TLS_CERT": cert, "TLS_KEY": key}) == [
        f"tls.key (TLS_KEY): file not found (got '{key}')"
    ]
    write(tmp_path / "key.pem", "k")
    assert settings_with(TLS_CERT=cert, TLS_KEY=key).tls is not None


def test_save_max_wait_must_not_be_below_save_delay(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", "save_delay: 2\nsave_max_wait: 1\n")
    assert problems_of(path, {}) == ["save_max_wait: must be at least save_delay (2) (got 1)"]
    # Also against the default save_max_wait (5).
    assert problems_of("/dev/null", {"SAVE_DELAY": "9"}) == ["save_max_wait: must be at least save_delay (9) (got 5.0)"]


def test_storage_choices() -> None:
    assert load_settings("/dev/null", {"STORAGE_URL": "memory://"}).storage_url() == "memory://"
    assert load_settings("/dev/null", {"STORAGE_PATH": "/srv/rooms"}).storage_url() == "file:///srv/rooms"
    redis = {"STORAGE_TYPE": "redis", "REDIS_URL": "redis://:pw@localhost:6379/0", "STORAGE_PATH": "ignored"}
    assert load_settings("/dev/null", redis).storage_url() == "redis://:pw@localhost:6379/0"
    # REDIS_URL is only the path of a redis storage, as the README says.
    assert load_settings("/dev/null", {"REDIS_URL": "redis://localhost"}).storage_url() == "file:data/rooms"


@pytest.mark.parametrize(
    ("env", "start"),
    [
        ({"STORAGE_URL": "file://ann:hunter2@host/rooms"}, "storage (STORAGE_URL): "),
        (
            {"STORAGE_TYPE": "redis", "REDIS_URL": "redis://:hunter2@localhost/0?nope=1"},
            "storage (STORAGE_TYPE, REDIS_URL): ",
        ),
        ({"STORAGE_TYPE": "nosuchscheme"}, "storage (STORAGE_TYPE): "),
        ({"STORAGE_TYPE": "redis"}, "storage (STORAGE_TYPE): "),
        ({"STORAGE_URL": "memory://", "STORAGE_TYPE": "file"}, "storage (STORAGE_URL, STORAGE_TYPE): "),
    ],
)
def test_storage_problems_are_reported_under_storage_with_passwords_masked(env: dict[str, str], start: str) -> None:
    (problem,) = problems_of("/dev/null", env)
    assert problem.startswith(start)
    assert "hunter2" not in problem


def test_secrets_never_show(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", SERVERS_YAML + "auth: {user: ann, password: hunter2}\n")
    settings = load_settings(path, {"STORAGE_TYPE": "redis", "REDIS_URL": "redis://:hunter2@localhost:6379/0"})
    shown = [repr(settings), str(settings), json.dumps(settings.masked())]
    assert all(TOKEN not in text and "hunter2" not in text for text in shown)
    masked = settings.masked()
    assert masked["servers"][0]["token"] == "***"
    assert masked["auth"]["password"] == "***"
    assert masked["storage"]["path"] == "redis://:***@localhost:6379/0"


@pytest.mark.parametrize(
    "yaml_text",
    [
        f"tokn: {TOKEN}\n",
        f"servers: {TOKEN}\n",
        f"servers: [{TOKEN}]\n",
        f"basicAuth: {TOKEN}\n",
        f"auth: {{user: '', password: {TOKEN}}}\n",
        f"servers:\n  - {{url: 'http://p:32400/?X-Plex-Token={TOKEN}', token: [{TOKEN}], linkType: {TOKEN}}}\n",
        f"servers:\n  - {{url: 'plex?X-Plex-Token={TOKEN}', token: t}}\n",
        f"servers:\n  - url: http://p\n    token: {TOKEN}\n   bad: indentation\n",
        f"- {TOKEN}\n",
        f"storage: {{url: 'file://u:{TOKEN}@host/x'}}\n",
    ],
)
def test_secrets_never_appear_in_problems(tmp_path: Path, yaml_text: str) -> None:
    problems = problems_of(write(tmp_path / "c.yaml", yaml_text), {})
    assert problems
    assert not any(TOKEN in problem for problem in problems), problems


def test_yaml_syntax_errors_give_the_position(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", "port: 1\n  host: x\n")
    (problem,) = problems_of(path, {})
    assert problem.startswith(f"{path}: invalid YAML at line 2, column 7: ")


def test_the_yaml_root_must_be_a_mapping(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", "- a\n")
    assert problems_of(path, {}) == [f"{path}: the top level must be a mapping of keys to values, not a list"]


def test_the_example_config_documents_the_defaults() -> None:
    example = REPO / "config.example.yaml"
    assert load_settings(str(example), {}) == load_settings("/dev/null", {})
    documented = {line.split(":")[0].strip().lstrip("# ") for line in example.read_text().splitlines()}
    assert set(Settings.model_fields) <= documented


def test_the_example_servers_are_valid(tmp_path: Path) -> None:
    text = (REPO / "config.example.yaml").read_text()
    block = text[text.index("# servers:") : text.index("catalogue:")]
    path = write(tmp_path / "c.yaml", "\n".join(line.removeprefix("# ") for line in block.splitlines()))
    plex, jellyfin, seerr = load_settings(path, {}).servers
    assert (plex.type, jellyfin.type, seerr.type) == ("plex", "jellyfin", "seerr")


# The command line.


def test_main_reports_problems_and_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path / "c.yaml", "port: abc\n")
    with pytest.raises(SystemExit) as caught:
        cli.main(["--config", path])
    assert caught.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        "moviematch: invalid configuration:",
        "  port: must be an integer between 0 and 65535 (got 'abc')",
    ]


@pytest.mark.slow
def test_python_m_server_with_a_bad_config_exits_2(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.yaml", f"port: abc\nlogLevel: LOUD\nservers: [{{url: x, token: {TOKEN}}}]\nfoo: 1\n")
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(REPO), "AUTH_USER": "ann"}
    done = subprocess.run(
        [sys.executable, "-m", "server", "--config", path],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.splitlines()
    assert lines[0] == "moviematch: invalid configuration:"
    assert [line.split(":")[0].strip() for line in lines[1:]] == [
        "port",
        "logLevel",
        "auth.password",
        "servers[0].url",
        "foo",
    ]
    assert TOKEN not in done.stderr
    assert done.stdout == ""


def test_json_log_lines_carry_extra_fields() -> None:
    record = logging.makeLogRecord({"name": "server.rooms", "levelname": "INFO", "msg": "saved %s", "args": ("x",)})
    record.room = "movie night"
    line = json.loads(cli.JsonFormatter().format(record))
    assert {key: line[key] for key in ("level", "logger", "message", "room")} == {
        "level": "INFO",
        "logger": "server.rooms",
        "message": "saved x",
        "room": "movie night",
    }
    assert line["time"].endswith("+00:00")
