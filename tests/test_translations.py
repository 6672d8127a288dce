"""The UI strings: six complete languages, and every key the web client uses exists.

The client names its strings by key only: `t("KEY")` and string literals in UPPER_SNAKE_CASE in
static/js, and data-i18n* attributes in static/index.html. So every such literal must be a key, and
every key (but the MovieMatch v2 ones other clients use) must be used somewhere.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from server.i18n import negotiate, translations

REPO = Path(__file__).resolve().parent.parent
FOLDER = REPO / "server" / "translations"
STATIC = REPO / "static"
LANGUAGES = ("en", "de", "fr", "es", "nl", "pl")
# The keys of MovieMatch v2: other v2 clients rely on them, whether or not this client uses them.
V2_KEYS = frozenset(
    {
        "LANG",
        "LOGIN_NAME",
        "LOGIN_ROOM_NAME",
        "LOGIN_SIGN_IN",
        "LOGIN_SIGN_IN_PLEX",
        "CREATE_ROOM",
        "RATE_SECTION_LOADING",
        "RATE_SECTION_EXHAUSTED_CARDS",
        "MATCHES_SECTION_TITLE",
        "MATCHES_SECTION_NO_MATCHES",
        "MATCHES_SECTION_CARD_LIKERS",
        "LIST_CONJUNCTION",
        "BACK",
        "SHARE_ROOM_TITLE",
        "JOIN_ROOM",
        "FIELD_REQUIRED_ERROR",
        "COPY_LINK_SUCCESS",
        "COPY_LINK_FAILURE",
        "LOGOUT",
    }
)
KEY_LITERAL = re.compile(r"""["'`]([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*)["'`]""")
I18N_ATTRIBUTE = re.compile(r"""data-i18n(?:-[a-z]+)?="([^"]+)\"""")
PLACEHOLDER = re.compile(r"\$\{(\w+)\}")


def load(language: str) -> dict[str, str]:
    table: dict[str, str] = json.loads((FOLDER / f"{language}.json").read_text("utf-8"))
    return table


def used_keys() -> dict[str, str]:
    """Each key the client uses, with the file it is used in."""
    used: dict[str, str] = {}
    for path in sorted((STATIC / "js").rglob("*.js")):
        for key in KEY_LITERAL.findall(path.read_text("utf-8")):
            used.setdefault(key, str(path.relative_to(REPO)))
    for key in I18N_ATTRIBUTE.findall((STATIC / "index.html").read_text("utf-8")):
        used.setdefault(key, "static/index.html")
    return used


def test_the_six_languages_are_there_and_nothing_else() -> None:
    assert sorted(path.stem for path in FOLDER.glob("*.json")) == sorted(LANGUAGES)


def test_english_keeps_the_movie_match_v2_keys() -> None:
    assert load("en").keys() >= V2_KEYS


@pytest.mark.parametrize("language", LANGUAGES[1:])
def test_every_language_has_exactly_the_english_keys(language: str) -> None:
    english, other = load("en"), load(language)
    assert sorted(other.keys() - english.keys()) == [], "keys that English does not have"
    assert sorted(english.keys() - other.keys()) == [], "keys still to translate"


@pytest.mark.parametrize("language", LANGUAGES)
def test_strings_are_filled_in_and_keep_their_placeholders(language: str) -> None:
    english, table = load("en"), load(language)
    assert table["LANG"] == language
    for key, text in table.items():
        assert text.strip(), f"{language}: {key} is empty"
        assert sorted(PLACEHOLDER.findall(text)) == sorted(PLACEHOLDER.findall(english[key])), (
            f"{language}: {key} has other placeholders than English"
        )
        assert "$" not in PLACEHOLDER.sub("", text), f"{language}: {key} has a malformed placeholder"


@pytest.mark.parametrize("language", LANGUAGES[1:])
def test_translations_are_translated(language: str) -> None:
    english, table = load("en"), load(language)
    words = {key: PLACEHOLDER.sub("", text) for key, text in english.items()}
    same = [key for key, text in words.items() if len(text) > 12 and table[key] == english[key]]
    assert same == [], f"{language}: left in English"


def test_every_key_the_client_uses_exists() -> None:
    english = load("en")
    missing = {key: where for key, where in used_keys().items() if key not in english}
    assert missing == {}


def test_every_key_is_used_by_the_client_or_kept_for_v2_clients() -> None:
    unused = sorted(set(load("en")) - set(used_keys()) - V2_KEYS)
    assert unused == []


@pytest.mark.parametrize(("requested", "expected"), [("de-AT", "de"), ("fr-CA", "fr"), ("pt-BR", "en"), ("nl", "nl")])
def test_the_browser_language_picks_the_table(requested: str, expected: str) -> None:
    assert negotiate(requested) == expected
    assert translations(requested)["LANG"] == expected
