"""The web client's built-in strings (static/js/builtin-strings.js: the connection's state, needed
before the socket brings the translations) are the server's, in all six languages."""

from __future__ import annotations

import json
from pathlib import Path

from server.i18n import available

BUILT_IN = Path(__file__).resolve().parent.parent / "static" / "js" / "builtin-strings.js"


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
