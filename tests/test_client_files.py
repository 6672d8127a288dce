"""What the web client keeps of its own: the built-in strings (static/js/builtin-strings.js: the
connection's state, needed before the socket brings the translations) are the server's, in all six
languages; the service worker's list of files to keep is the client's files."""

from __future__ import annotations

import json
from pathlib import Path

from server.i18n import available

STATIC = Path(__file__).resolve().parent.parent / "static"
BUILT_IN = STATIC / "js" / "builtin-strings.js"


def built_in() -> dict[str, dict[str, str]]:
    text = BUILT_IN.read_text("utf-8")
    # The module is one `export const BUILT_IN = {JSON};`, so that this test can read it.
    table: dict[str, dict[str, str]] = json.loads(text[text.index("{") : text.rindex("}") + 1])
    return table


def test_every_language_has_the_connection_strings_the_server_has() -> None:
    table = built_in()
    assert sorted(table) == sorted(available())
    for language, strings in table.items():
        assert strings == {key: available()[language][key] for key in table["en"]}, language


def test_every_connection_state_has_words() -> None:
    expected = {"CONNECTING", "CONNECTION_LOST", "SERVER_UNREACHABLE", "DEVICE_OFFLINE", "WEBSOCKET_BLOCKED"}
    assert set(built_in()["en"]) == expected


def test_the_service_worker_keeps_every_file_of_the_client() -> None:
    """static/sw.js lists the files it keeps for an offline start: all of the client's scripts and
    styles (a module left out would break the app offline), and nothing that is not there."""
    text = (STATIC / "sw.js").read_text("utf-8")
    listed = json.loads(
        text[text.index("const FILES = [") + len("const FILES = ") : text.index("];") + 1].replace(",\n]", "\n]")
    )
    present = {str(path.relative_to(STATIC)) for path in STATIC.rglob("*") if path.suffix in (".js", ".css")}
    present.discard("sw.js")
    assert set(listed) >= present
    assert all((STATIC / name).is_file() for name in listed)
