"""Names people and rooms are known by: what a name may contain, and when two names look alike.

A name is shown as typed (trimmed). Two names are *the same* when they are equal after Unicode NFKC
normalisation, case folding and collapsing of spaces (``name_key``), and *look alike* when their
confusable skeletons are equal (``skeleton``: Unicode TR39's idea, with the confusables data of the
``confusable_homoglyphs`` package, so "Alice" spelt with a Cyrillic capital A looks like "Alice").
"""

from __future__ import annotations

import functools
import unicodedata

from confusable_homoglyphs.confusables import confusables_data

NAME_MAX_LENGTH = 100

# Categories of characters that show nothing or steer the text: controls, format characters
# (zero-width spaces and joiners, bidirectional controls, soft hyphens), surrogates, private use,
# unassigned, line and paragraph separators.
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
# Letters and marks that render as nothing: Hangul fillers, the braille blank, the combining
# grapheme joiner, Khmer inherent vowels, variation selectors.
_BLANK = frozenset(
    {"\u115f", "\u1160", "\u3164", "\uffa0", "\u2800", "\u034f", "\u17b4", "\u17b5"}
    | {chr(code) for code in range(0xFE00, 0xFE10)}
    | {chr(code) for code in range(0xE0100, 0xE01F0)}
)


def _hidden(char: str) -> bool:
    return char in _BLANK or unicodedata.category(char) in _HIDDEN_CATEGORIES


def clean_name(value: str, max_length: int = NAME_MAX_LENGTH) -> str:
    """The name as it will be shown: trimmed, 1..max_length characters, every character visible.
    Raises ``ValueError`` saying what is wrong (the reply names the field)."""
    name = value.strip()
    if not name_key(name):
        raise ValueError("must not be blank")
    if len(name) > max_length:
        raise ValueError(f"must be at most {max_length} characters")
    hidden = next((char for char in name if _hidden(char)), None)
    if hidden is not None:
        raise ValueError(f"must not contain invisible or control characters (U+{ord(hidden):04X})")
    return name


def name_key(name: str) -> str:
    """Equal for two spellings of the same name: NFKC, case folded, spaces collapsed."""
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())
    return " ".join(folded.split())


@functools.cache
def _prototypes() -> dict[str, str]:
    """Each character of a confusable class -> the class's prototype (its ASCII member if any,
    else its lowest code point). The data lists, per character, the characters confused with it."""
    parent: dict[str, str] = {}

    def root(char: str) -> str:
        while parent.setdefault(char, char) != char:
            parent[char] = parent[parent[char]]
            char = parent[char]
        return char

    for char, similar in confusables_data.items():
        for entry in similar:
            other = entry["c"]
            if len(char) == 1 and len(other) == 1:
                first, second = root(char), root(other)
                if first != second:
                    parent[max(first, second, key=_rank)] = min(first, second, key=_rank)
    return {char: root(char) for char in parent if root(char) != char}


def _rank(char: str) -> tuple[bool, int]:
    return (not char.isascii(), ord(char))


def skeleton(name: str) -> str:
    """Equal for two names that look alike (and for two spellings of one name)."""
    prototypes = _prototypes()
    decomposed = unicodedata.normalize("NFD", name_key(name))
    mapped = "".join(prototypes.get(char, char) for char in decomposed)
    return unicodedata.normalize("NFD", name_key(mapped))
