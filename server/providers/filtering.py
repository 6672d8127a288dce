"""Filtering of films held in memory, shared by the providers that have no media server to ask
(the demo library and catalogue files): the filters they offer, their values, and matching.

Films are anything with the ``Filterable`` attributes; a value a film does not have (no year, no
known runtime) never matches "is", "is at least" or "is at most", and always matches "is not"
(except a rating bound at an end of the scale, which keeps every film: see ``unbounded``). A rule
that cannot be applied is an ``InvalidFilter`` naming it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from storage import Filter

from .base import FilterInfo, Filters, FilterType, FilterValue, InvalidFilter, ProviderError


class Filterable(Protocol):
    """What a film needs for filtering; ``runtime`` is in minutes, ``rating`` out of 10."""

    @property
    def genres(self) -> Sequence[str]: ...
    @property
    def year(self) -> int | None: ...
    @property
    def runtime(self) -> int | None: ...
    @property
    def rating(self) -> float | None: ...
    @property
    def contentRating(self) -> str | None: ...
    @property
    def directors(self) -> Sequence[str]: ...
    @property
    def actors(self) -> Sequence[str]: ...


FieldType = Literal["tag", "string", "integer"]
Predicate = Callable[[Filterable], bool]

_IS = FilterType(key="=", title="is")
_IS_NOT = FilterType(key="!=", title="is not")
# Plex's operator spellings, which MovieMatch v2 clients send. On a string field Plex reads = as
# "contains" and == as "is"; names here are matched whole, so both mean "is" (any of the values).
OPERATORS: dict[FieldType, list[FilterType]] = {
    "tag": [_IS, _IS_NOT],
    "string": [_IS, _IS_NOT, FilterType(key="==", title="is exactly"), FilterType(key="!==", title="is not exactly")],
    "integer": [_IS, _IS_NOT, FilterType(key=">>=", title="is at least"), FilterType(key="<<=", title="is at most")],
}
_NEGATED = frozenset({"!=", "!=="})
# Ratings are out of 10: a bound at either end restricts nothing (the fork's wizard always sends
# both), so it keeps the films nobody rated too.
RATING_SCALE = (0.0, 10.0)


@dataclass(frozen=True)
class _Words:
    """A filter on names a film has (genres, directors, its content rating), matched case-insensitively."""

    title: str
    type: FieldType
    of: Callable[[Filterable], Iterable[str]]

    def predicate(self, key: str, operator: str, values: list[str]) -> Predicate:
        wanted = {value.casefold() for value in values}

        def named(film: Filterable) -> bool:
            return any(name.casefold() in wanted for name in self.of(film))

        return (lambda film: not named(film)) if operator in _NEGATED else named

    def choices(self, films: Iterable[Filterable]) -> list[FilterValue]:
        # Matching ignores case, so "Sci-Fi" and "sci-fi" are one value: the first spelling met.
        names: dict[str, str] = {}
        for film in films:
            for name in self.of(film):
                names.setdefault(name.casefold(), name)
        return [FilterValue(title=name, value=name) for name in sorted(names.values(), key=str.casefold)]


@dataclass(frozen=True)
class _Number:
    """A numeric filter; ``presets`` are offered as values where the data's own values would be noise."""

    title: str
    of: Callable[[Filterable], float | None]
    whole: bool
    label: Callable[[float], str]
    presets: tuple[float, ...] = ()
    type: FieldType = "integer"

    def predicate(self, key: str, operator: str, values: list[str]) -> Predicate:
        numbers = [self._parse(key, value) for value in values]
        if key == "rating" and _at_scale_end(operator, numbers[0]):
            return lambda film: True

        def test(film: Filterable) -> bool:
            number = self.of(film)
            if number is None:
                return operator == "!="
            if operator == ">>=":
                return number >= numbers[0]
            if operator == "<<=":
                return number <= numbers[0]
            return (number in numbers) == (operator == "=")

        return test

    def choices(self, films: Iterable[Filterable]) -> list[FilterValue]:
        known = {number for film in films if (number := self.of(film)) is not None}
        numbers = self.presets or sorted(known, reverse=True)
        return [FilterValue(title=self.label(number), value=f"{number:g}") for number in numbers]

    def _parse(self, key: str, value: str) -> float:
        try:
            number = int(value) if self.whole else float(value)
        except ValueError:
            number = math.nan
        if not math.isfinite(number):
            kind = "a whole number" if self.whole else "a number"
            raise InvalidFilter(f"filter {key!r} needs {kind}, not {shown(value)}")
        return number


def _at_scale_end(operator: str, bound: float) -> bool:
    low, high = RATING_SCALE
    return (operator == ">>=" and bound <= low) or (operator == "<<=" and bound >= high)


def unbounded(rule: Filter) -> bool:
    """Whether a rule is a rating bound at an end of the scale, which keeps every film (providers
    that pass rules on to their server leave such a rule out: the server would drop unrated films)."""
    if rule.key != "rating" or len(rule.value) != 1:
        return False
    try:
        return _at_scale_end(rule.operator, float(rule.value[0]))
    except ValueError:
        return False


def _decade(film: Filterable) -> int | None:
    return None if film.year is None else film.year // 10 * 10


FIELDS: dict[str, _Words | _Number] = {
    "genre": _Words("Genre", "tag", lambda film: film.genres),
    "year": _Number("Year", lambda film: film.year, whole=True, label=lambda year: f"{year:g}"),
    "decade": _Number("Decade", _decade, whole=True, label=lambda decade: f"{decade:g}s"),
    "duration": _Number(
        "Duration (minutes)",
        lambda film: film.runtime,
        whole=True,
        label=lambda minutes: f"{minutes:g} min",
        presets=(60, 75, 90, 105, 120, 150),
    ),
    "rating": _Number(
        "Rating",
        lambda film: film.rating,
        whole=False,
        label=lambda rating: f"{rating:g} / 10",
        presets=(5, 6, 6.5, 7, 7.5, 8),
    ),
    "contentRating": _Words(
        "Content Rating", "string", lambda film: () if film.contentRating is None else (film.contentRating,)
    ),
    "director": _Words("Director", "tag", lambda film: film.directors),
    "actor": _Words("Actor", "tag", lambda film: film.actors),
}


def shown(value: str) -> str:
    """A value quoted for an error message, cut short because it goes back to the client."""
    return repr(value if len(value) <= 40 else value[:40] + "…")


def filters(library_type: str) -> Filters:
    """Every filter, for libraries of this type."""
    return Filters(
        filters=[
            FilterInfo(title=field.title, key=key, type=field.type, libraryTypes=[library_type])
            for key, field in FIELDS.items()
        ],
        filterTypes=dict(OPERATORS),
    )


def filter_values(key: str, films: Iterable[Filterable]) -> list[FilterValue]:
    """The values filter ``key`` can take among ``films``; an unknown key is a 404."""
    field = FIELDS.get(key)
    if field is None:
        raise ProviderError(f"unknown filter {shown(key)}", status=404)
    return field.choices(films)


def matcher(rules: Sequence[Filter], source: str) -> Predicate:
    """Whether a film passes every rule; a rule that cannot be applied is a 400 naming ``source``
    (e.g. "the demo library") and what it filters by. Every rule is checked before any film is."""
    tests = [_predicate(rule, source) for rule in rules]
    return lambda film: all(test(film) for test in tests)


def _predicate(rule: Filter, source: str) -> Predicate:
    field = FIELDS.get(rule.key)
    if field is None:
        known = ", ".join(FIELDS)
        raise InvalidFilter(f"unknown filter {shown(rule.key)}; {source} filters by {known}")
    operators = [operator.key for operator in OPERATORS[field.type]]
    if rule.operator not in operators:
        wanted = ", ".join(operators)
        raise InvalidFilter(f"filter {rule.key!r} does not take operator {shown(rule.operator)}; use one of {wanted}")
    if not rule.value:
        raise InvalidFilter(f"filter {rule.key!r} needs a value")
    return field.predicate(rule.key, rule.operator, rule.value)
