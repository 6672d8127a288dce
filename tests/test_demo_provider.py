from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import get_args
from urllib.parse import parse_qs, urlsplit

import pytest

from server.providers import Filters, Media, MediaQuery, Poster, ProviderError
from server.providers.demo import DemoProvider, Genre
from server.providers.posters import render_poster
from storage import Filter

pytestmark = pytest.mark.anyio

SVG = "{http://www.w3.org/2000/svg}"
PROTOCOL_KEYS = {
    "id",
    "type",
    "title",
    "description",
    "tagline",
    "year",
    "posterUrl",
    "linkUrl",
    "genres",
    "duration",
    "rating",
    "contentRating",
}


@pytest.fixture
def provider() -> DemoProvider:
    return DemoProvider()


def rule(key: str, operator: str, *values: str) -> Filter:
    return Filter(key=key, operator=operator, value=list(values))


def slug(media: Media) -> str:
    return media.id.removeprefix("demo:")


async def everything(provider: DemoProvider) -> list[Media]:
    return await provider.media(MediaQuery())


async def poster_bytes(poster: Poster) -> bytes:
    return b"".join([chunk async for chunk in poster.body])


def minutes(media: Media) -> float:
    return media.duration / 60_000


# -- the catalogue --------------------------------------------------------------------------------


async def test_the_catalogue_has_enough_complete_films(provider: DemoProvider) -> None:
    films = await everything(provider)
    assert len(films) >= 60
    assert len({film.id for film in films}) == len(films)
    for film in films:
        assert re.fullmatch(r"demo:[a-z0-9]+(-[a-z0-9]+)*", film.id)
        assert film.type == "movie"
        assert film.title.strip()
        assert film.year is not None
        assert 1895 <= film.year <= 2000
        assert film.duration > 0
        assert film.genres
        assert set(film.genres) <= set(get_args(Genre))
        assert film.directors
        assert 0 < len(film.description) <= 400
        assert 0 <= film.rating <= 10
        assert film.rating == round(film.rating, 1)


async def test_ids_are_stable_across_instances(provider: DemoProvider) -> None:
    assert [film.id for film in await everything(provider)] == [film.id for film in await everything(DemoProvider())]


async def test_media_has_the_protocol_shape(provider: DemoProvider) -> None:
    nosferatu = next(film for film in await everything(provider) if film.id == "demo:nosferatu-1922")
    dumped = nosferatu.model_dump()
    assert dumped.keys() >= PROTOCOL_KEYS
    assert "added" not in dumped
    assert nosferatu.added == "1922-01-01"
    assert nosferatu.duration == 94 * 60_000
    assert nosferatu.directors == ["F. W. Murnau"]
    # Relative to the app root, so that the app works under any root path.
    assert nosferatu.posterUrl == "/api/poster/demo/nosferatu-1922"
    assert nosferatu.linkUrl == "api/link/demo/nosferatu-1922"


async def test_there_is_one_library(provider: DemoProvider) -> None:
    [library] = await provider.libraries()
    assert (library.title, library.key, library.type) == ("Public Domain Classics", "demo", "movie")


async def test_it_is_healthy(provider: DemoProvider) -> None:
    assert await provider.healthy()


# -- filtering ------------------------------------------------------------------------------------

Case = tuple[list[Filter], Callable[[Media], bool]]
CASES: dict[str, Case] = {
    "genre is": ([rule("genre", "=", "Horror")], lambda m: "Horror" in m.genres),
    "genre is any of": ([rule("genre", "=", "Western", "War")], lambda m: bool({"Western", "War"} & set(m.genres))),
    "genre ignores case": ([rule("genre", "=", "film noir")], lambda m: "Film Noir" in m.genres),
    "genre is none of": ([rule("genre", "!=", "Comedy", "Drama")], lambda m: not {"Comedy", "Drama"} & set(m.genres)),
    "year is": ([rule("year", "=", "1927")], lambda m: m.year == 1927),
    "year is any of": ([rule("year", "=", "1925", "1963")], lambda m: m.year in (1925, 1963)),
    "year is not": ([rule("year", "!=", "1925", "1927")], lambda m: m.year not in (1925, 1927)),
    "year at least": ([rule("year", ">>=", "1950")], lambda m: (m.year or 0) >= 1950),
    "year at most uses the first value": ([rule("year", "<<=", "1924", "2000")], lambda m: (m.year or 0) <= 1924),
    "decade is": ([rule("decade", "=", "1930")], lambda m: 1930 <= (m.year or 0) < 1940),
    "decade is any of": ([rule("decade", "=", "1940", "1960")], lambda m: (m.year or 0) // 10 in (194, 196)),
    "decade is not": ([rule("decade", "!=", "1920")], lambda m: not 1920 <= (m.year or 0) < 1930),
    "decade at least": ([rule("decade", ">>=", "1950")], lambda m: (m.year or 0) >= 1950),
    "duration at least": ([rule("duration", ">>=", "120")], lambda m: minutes(m) >= 120),
    "duration at most": ([rule("duration", "<<=", "70")], lambda m: minutes(m) <= 70),
    "rating at least": ([rule("rating", ">>=", "8")], lambda m: m.rating >= 8),
    "rating at most, with a decimal": ([rule("rating", "<<=", "6.5")], lambda m: m.rating <= 6.5),
    "content rating is": ([rule("contentRating", "=", "Approved")], lambda m: m.contentRating == "Approved"),
    "content rating is not keeps unrated films": (
        [rule("contentRating", "!=", "Approved")],
        lambda m: m.contentRating != "Approved",
    ),
    "director is": ([rule("director", "=", "Buster Keaton")], lambda m: "Buster Keaton" in m.directors),
    "director is not": (
        [rule("director", "!=", "Buster Keaton", "Charlie Chaplin")],
        lambda m: not {"Buster Keaton", "Charlie Chaplin"} & set(m.directors),
    ),
    "genre any of within a year range": (
        [rule("genre", "=", "Comedy", "Romance"), rule("year", ">>=", "1920"), rule("year", "<<=", "1929")],
        lambda m: bool({"Comedy", "Romance"} & set(m.genres)) and 1920 <= (m.year or 0) <= 1929,
    ),
    "several kinds at once": (
        [rule("decade", "=", "1940", "1950"), rule("genre", "=", "Film Noir"), rule("rating", ">>=", "7.2")],
        lambda m: 1940 <= (m.year or 0) < 1960 and "Film Noir" in m.genres and m.rating >= 7.2,
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
async def test_filters_select_exactly_the_matching_films(provider: DemoProvider, case: Case) -> None:
    filters, wanted = case
    expected = [film.id for film in await everything(provider) if wanted(film)]
    got = [film.id for film in await provider.media(MediaQuery(filters=filters))]
    assert expected  # a case that selects nothing would prove little
    assert got == expected


async def test_is_and_is_not_split_the_catalogue(provider: DemoProvider) -> None:
    total = {film.id for film in await everything(provider)}
    for key, values in (("genre", ["Horror", "Comedy"]), ("year", ["1927"]), ("contentRating", ["Approved"])):
        chosen = {film.id for film in await provider.media(MediaQuery(filters=[rule(key, "=", *values)]))}
        others = {film.id for film in await provider.media(MediaQuery(filters=[rule(key, "!=", *values)]))}
        assert chosen
        assert others
        assert chosen.isdisjoint(others)
        assert chosen | others == total


@pytest.mark.parametrize(
    ("libraries", "everything_matches"),
    [([], True), (["demo"], True), (["elsewhere", "demo"], True), (["elsewhere"], False)],
)
async def test_library_selection(provider: DemoProvider, libraries: list[str], everything_matches: bool) -> None:
    got = await provider.media(MediaQuery(libraries=libraries))
    assert got == (await everything(provider) if everything_matches else [])


INVALID: dict[str, tuple[Filter, str]] = {
    "unknown key": (rule("studio", "=", "Universal"), "studio"),
    "unknown operator": (rule("year", "~", "1927"), "~"),
    "range operator on a tag": (rule("genre", ">>=", "Horror"), ">>="),
    "Plex string operator we do not support": (rule("contentRating", "==", "Approved"), "=="),
    "no value": (rule("genre", "="), "genre"),
    "word for a year": (rule("year", ">>=", "last year"), "last year"),
    "fraction for a year": (rule("year", "=", "1927.5"), "1927.5"),
    "word for a decade": (rule("decade", "=", "twenties"), "twenties"),
    "word for a duration": (rule("duration", "<<=", "short"), "short"),
    "word for a rating": (rule("rating", ">>=", "good"), "good"),
    "not-a-number rating": (rule("rating", ">>=", "nan"), "nan"),
    "infinite rating": (rule("rating", "<<=", "inf"), "inf"),
}


@pytest.mark.parametrize("case", INVALID.values(), ids=INVALID.keys())
async def test_invalid_filters_are_refused_with_400(provider: DemoProvider, case: tuple[Filter, str]) -> None:
    bad, mentioned = case
    with pytest.raises(ProviderError) as caught:
        await provider.media(MediaQuery(filters=[rule("genre", "=", "Horror"), bad]))
    assert caught.value.status == 400
    assert mentioned in str(caught.value)


async def test_invalid_filters_are_refused_even_for_an_unknown_library(provider: DemoProvider) -> None:
    with pytest.raises(ProviderError) as caught:
        await provider.media(MediaQuery(filters=[rule("year", "=", "soon")], libraries=["elsewhere"]))
    assert caught.value.status == 400


async def test_a_huge_value_is_refused_with_a_short_message(provider: DemoProvider) -> None:
    with pytest.raises(ProviderError) as caught:
        await provider.media(MediaQuery(filters=[rule("year", "=", "9" * 100_000)]))
    assert caught.value.status == 400
    assert len(str(caught.value)) < 200


# -- filter metadata ------------------------------------------------------------------------------


async def test_filters_describe_every_filter(provider: DemoProvider) -> None:
    filters = await provider.filters()
    assert isinstance(filters, Filters)
    types = {info.key: info.type for info in filters.filters}
    assert types == {
        "genre": "tag",
        "year": "integer",
        "decade": "integer",
        "duration": "integer",
        "rating": "integer",
        "contentRating": "string",
        "director": "tag",
    }
    assert all(info.title and info.libraryTypes == ["movie"] for info in filters.filters)
    operators = {kind: {(op.key, op.title) for op in ops} for kind, ops in filters.filterTypes.items()}
    assert operators["tag"] == {("=", "is"), ("!=", "is not")}
    assert operators["string"] == {("=", "is"), ("!=", "is not")}
    assert operators["integer"] == {("=", "is"), ("!=", "is not"), (">>=", "is at least"), ("<<=", "is at most")}


async def test_every_offered_filter_and_operator_is_accepted(provider: DemoProvider) -> None:
    filters = await provider.filters()
    for info in filters.filters:
        [first, *_] = await provider.filter_values(info.key)
        for operator in filters.filterTypes[info.type]:
            await provider.media(MediaQuery(filters=[rule(info.key, operator.key, first.value)]))


async def test_genre_values_are_alphabetical(provider: DemoProvider) -> None:
    values = await provider.filter_values("genre")
    genres = {genre for film in await everything(provider) for genre in film.genres}
    assert [value.value for value in values] == sorted(genres)
    assert all(value.title == value.value for value in values)


async def test_year_values_are_newest_first(provider: DemoProvider) -> None:
    values = await provider.filter_values("year")
    years = {film.year or 0 for film in await everything(provider)}
    assert [value.value for value in values] == [str(year) for year in sorted(years, reverse=True)]
    assert [value.title for value in values] == [value.value for value in values]


async def test_decade_values_read_as_decades(provider: DemoProvider) -> None:
    values = await provider.filter_values("decade")
    assert [value.value for value in values] == ["1960", "1950", "1940", "1930", "1920"]
    assert [value.title for value in values] == ["1960s", "1950s", "1940s", "1930s", "1920s"]


async def test_content_rating_and_director_values(provider: DemoProvider) -> None:
    ratings = [value.value for value in await provider.filter_values("contentRating")]
    assert ratings == ["Approved", "Not Rated"]
    directors = [value.value for value in await provider.filter_values("director")]
    assert directors == sorted(directors, key=str.casefold)
    assert len(directors) == len(set(directors))
    assert {"Buster Keaton", "F. W. Murnau", "Fritz Lang"} <= set(directors)


@pytest.mark.parametrize("key", ["duration", "rating"])
async def test_range_values_are_usable_thresholds(provider: DemoProvider, key: str) -> None:
    values = await provider.filter_values(key)
    assert values
    for value in values:
        assert float(value.value) > 0
        assert value.value in value.title
        assert await provider.media(MediaQuery(filters=[rule(key, ">>=", value.value)]))


@pytest.mark.parametrize("key", ["genre", "year", "decade", "contentRating", "director"])
async def test_every_listed_value_selects_something(provider: DemoProvider, key: str) -> None:
    for value in await provider.filter_values(key):
        assert await provider.media(MediaQuery(filters=[rule(key, "=", value.value)])), value


async def test_values_of_an_unknown_filter_are_404(provider: DemoProvider) -> None:
    with pytest.raises(ProviderError) as caught:
        await provider.filter_values("studio")
    assert caught.value.status == 404


# -- posters and links ----------------------------------------------------------------------------


def parse(svg: bytes) -> ET.Element:
    root = ET.fromstring(svg)  # noqa: S314 (our own output, which is what is under test)
    assert root.tag == f"{SVG}svg"
    assert root.get("viewBox") == "0 0 400 600"
    return root


@pytest.mark.parametrize(("asked", "width"), [(None, 600), (300, 300), (1200, 1200), (0, 100), (50, 100), (5000, 1200)])
async def test_poster_size_follows_the_width(provider: DemoProvider, asked: int | None, width: int) -> None:
    poster = await provider.poster("the-general-1926", asked)
    root = parse(await poster_bytes(poster))
    assert (root.get("width"), root.get("height")) == (str(width), str(width * 3 // 2))


async def test_poster_is_a_cacheable_svg(provider: DemoProvider) -> None:
    poster = await provider.poster("metropolis-1927", 400)
    assert poster.content_type == "image/svg+xml"
    assert "max-age=" in poster.headers["Cache-Control"]
    body = await poster_bytes(poster)
    texts = "".join(parse(body).itertext())
    assert "Metropolis" in texts
    assert "1927" in texts
    assert body == await poster_bytes(await provider.poster("metropolis-1927", 400))
    assert body != await poster_bytes(await provider.poster("nosferatu-1922", 400))


async def test_every_poster_is_self_contained(provider: DemoProvider) -> None:
    for film in await everything(provider):
        body = await poster_bytes(await provider.poster(slug(film), None))
        for element in parse(body).iter():
            assert element.tag.removeprefix(SVG) not in {"script", "image", "foreignObject", "style", "a", "use"}
            for name, value in element.attrib.items():
                assert not name.endswith("href")
                assert not name.startswith("on")
                assert "url(" not in value or re.fullmatch(r"url\(#[a-z]+\)", value)


async def test_poster_and_link_of_an_unknown_film_are_404(provider: DemoProvider) -> None:
    for call in (provider.poster("citizen-kane-1941", 300), provider.link("citizen-kane-1941", "")):
        with pytest.raises(ProviderError) as caught:
            await call
        assert caught.value.status == 404


async def test_link_searches_an_encyclopedia(provider: DemoProvider) -> None:
    link = await provider.link("his-girl-friday-1940", "Mozilla/5.0")
    parts = urlsplit(link)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "en.wikipedia.org", "/wiki/Special:Search")
    assert parse_qs(parts.query) == {"search": ["His Girl Friday 1940 film"]}


def test_poster_escapes_every_text() -> None:
    title = "<script>alert(1)</script> & \"Friends\" 'n' <more>"
    svg = render_poster("escape-test", title, year=1999, genres=["<b>Genre</b>", "Drama & Co"])
    assert b"<script" not in svg
    assert b"<b>" not in svg
    texts = " ".join("".join(parse(svg).itertext()).split())
    assert "<script>alert(1)</script>" in texts
    assert "& \"Friends\" 'n'" in texts
    assert "<B>GENRE</B>" in texts


def test_poster_survives_characters_xml_cannot_carry() -> None:
    texts = "".join(parse(render_poster("\ud800", "Bad\x00 \x1b[31m\ud800 Title\ufffe")).itertext())
    assert "Bad [31m Title" in texts


def test_long_titles_wrap_over_a_few_lines() -> None:
    title = "The Extraordinary and Thoroughly Unlikely Adventures of a Very Long Title in the Land of Posters"
    lines = [span.text or "" for span in parse(render_poster("long", title)).iter(f"{SVG}tspan")]
    assert 2 <= len(lines) <= 4
    assert lines[-1].endswith("…")
    assert " ".join(lines).startswith("The Extraordinary and")


def test_short_titles_do_not_split_words() -> None:
    lines = [span.text or "" for span in parse(render_poster("kc", "Kansas City Confidential")).iter(f"{SVG}tspan")]
    assert len(lines) > 1
    assert [word for line in lines for word in line.split()] == ["Kansas", "City", "Confidential"]


def test_an_empty_title_still_renders() -> None:
    assert "Untitled" in "".join(parse(render_poster("empty", "  ")).itertext())


def test_the_title_and_year_stand_in_the_posters_upper_part() -> None:
    """Clients lay the facts over a poster's lower part (the web client's card covers about its
    lowest quarter): the poster's own title stays clear of it, however many lines it takes."""
    for title in ("Our Hospitality", "The Extraordinary and Thoroughly Unlikely Adventures of a Very Long Title"):
        svg = parse(render_poster(title, title, year=1923, genres=["Comedy"]))
        baselines = [float(span.get("y", "0")) for span in svg.iter(f"{SVG}tspan")]
        year = next(text for text in svg.iter(f"{SVG}text") if text.text == "1923")
        assert max([*baselines, float(year.get("y", "0"))]) < 600 / 2
