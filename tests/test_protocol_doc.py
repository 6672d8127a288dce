"""docs/protocol.md is the contract: everything the server can send or understand is written there."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from server.connection import MESSAGES
from server.protocol import ErrorName, Reply

DOC = (Path(__file__).resolve().parents[1] / "docs" / "protocol.md").read_text("utf-8")
# Every word the page spells as code: `name`, `name {...}`, `error {name:"X"}`, ...
NAMED = {word for span in re.findall(r"`([^`]+)`", DOC) for word in re.findall(r"[A-Za-z_]+", span)}


@pytest.mark.parametrize("reply", list(Reply))
def test_every_message_type_the_server_sends_is_documented(reply: Reply) -> None:
    assert reply.value in NAMED


@pytest.mark.parametrize("name", list(ErrorName))
def test_every_error_name_the_server_sends_is_documented(name: ErrorName) -> None:
    assert name.value in NAMED


@pytest.mark.parametrize("message_type", sorted(MESSAGES))
def test_every_message_type_the_server_understands_is_documented(message_type: str) -> None:
    assert message_type in NAMED
