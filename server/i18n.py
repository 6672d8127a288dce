"""The UI strings of each language, chosen from a BCP 47 tag, English filling any gap per key."""

from __future__ import annotations

import json
from functools import cache
from importlib.resources import files

DEFAULT_LANGUAGE = "en"


@cache
def available() -> dict[str, dict[str, str]]:
    folder = files("server").joinpath("translations")
    table: dict[str, dict[str, str]] = {}
    for entry in folder.iterdir():
        if entry.name.endswith(".json"):
            table[entry.name.removesuffix(".json").lower()] = json.loads(entry.read_text("utf-8"))
    return table


def negotiate(language: str) -> str:
    """``de-AT`` -> ``de`` when only German is there; anything unknown -> English."""
    tags = available()
    tag = language.strip().lower().replace("_", "-")
    while tag:
        if tag in tags:
            return tag
        tag = tag.rpartition("-")[0]
    return DEFAULT_LANGUAGE


def translations(language: str) -> dict[str, str]:
    tags = available()
    return {**tags[DEFAULT_LANGUAGE], **tags.get(negotiate(language), {})}
