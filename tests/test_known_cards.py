"""The cards a remote provider holds (one object per film, posters served for held cards only) and the
collector pause its listings are built under."""

from __future__ import annotations

import gc

import pytest

from server.providers.base import Media
from server.providers.remote import KnownCards, collector_paused


def card(title: str = "Heat") -> Media:
    return Media(id="imdb://tt0113277", title=title, linkUrl="api/link/plex/1")


def test_a_card_fetched_again_unchanged_is_the_object_already_held() -> None:
    known = KnownCards()
    first = known.kept("1", card())
    assert known.kept("1", card()) is first
    changed = known.kept("1", card("Heat (1995)"))
    assert changed is not first
    assert changed.title == "Heat (1995)"
    assert known.get("1") is changed


def test_a_card_nothing_holds_any_more_is_not_known_and_its_reference_goes() -> None:
    known = KnownCards()
    held = known.kept("1", card())
    dropped = known.kept("2", card("Ronin"))
    del dropped
    gc.collect()
    assert known.get("2") is None
    assert list(known.cards()) == [held]
    assert set(known._refs) == {"1"}
    # A new card for the key of a dropped one is held again.
    again = known.kept("2", card("Ronin"))
    assert known.get("2") is again


def test_the_collector_is_paused_inside_and_back_as_it_was_after() -> None:
    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(ValueError, match="malformed"), collector_paused():
        raise ValueError("a malformed page")
    assert gc.isenabled()
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()  # an embedding program that runs without it keeps it off
    finally:
        gc.enable()
