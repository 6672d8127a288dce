from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import anyio
import httpx
import pytest
import yaml
from asgi_lifespan import LifespanManager

from server.app import create_app
from server.config import Settings
from server.providers import Media, MediaQuery, Poster, ProviderError, catalogue
from server.providers.catalogue import CatalogueProvider
from storage import Filter, MemoryStorage
from tests.fakes import log_lines, rule

pytestmark = pytest.mark.anyio

LOGGER = "server.providers.catalogue"
ROOT = Path(__file__).resolve().parent.parent
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 600  # several read chunks

OpenProvider = Callable[..., Awaitable[CatalogueProvider]]


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> Callable[[int], list[str]]:
    """The catalogue's log messages at exactly one level."""
    return log_lines(caplog, LOGGER, logging.INFO)


@pytest.fixture
async def opened() -> AsyncIterator[OpenProvider]:
    """Opens providers on a file, and closes them after the test."""
    providers: list[CatalogueProvider] = []

    async def open_provider(
        path: Path, *, provider_id: str = "catalogue", transport: httpx.AsyncBaseTransport | None = None
    ) -> CatalogueProvider:
        provider = CatalogueProvider(path, provider_id=provider_id, transport=transport)
        providers.append(provider)
        await provider.open()
        return provider

    yield open_provider
    for provider in providers:
        await provider.close()


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


async def everything(provider: CatalogueProvider) -> list[Media]:
    return await provider.media(MediaQuery())


async def titles(provider: CatalogueProvider, *filters: Filter) -> list[str]:
    return [film.title for film in await provider.media(MediaQuery(filters=list(filters)))]


async def poster_bytes(poster: Poster) -> bytes:
    return b"".join([chunk async for chunk in poster.body])


@pytest.fixture
def fast_reload(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(catalogue, "RELOAD_CHECK_SECONDS", 0.0)


def bump(path: Path, text: str) -> None:
    """Rewrite ``path`` with a modification time that surely differs from before."""
    before = path.stat().st_mtime_ns
    write(path, text)
    os.utime(path, ns=(before + 5_000_000_000, before + 5_000_000_000))


# -- the three formats ----------------------------------------------------------------------------

YAML_LIST = """\
- title: Alien
  year: 1979
  genres: [Horror, Science Fiction]
  runtime: 117
  synopsis: In space no one can hear you scream.
  directors: [Ridley Scott]
  actors: [Sigourney Weaver, Tom Skerritt]
  content_rating: R
  rating: 8.5
  tagline: The eighth passenger.
- title: Heat
  year: 1995
"""


async def test_a_yaml_list_loads(tmp_path: Path, opened: OpenProvider) -> None:
    provider = await opened(write(tmp_path / "films.yaml", YAML_LIST))
    alien, heat = await everything(provider)
    assert alien.wire() == {
        "id": "catalogue:alien-1979",
        "type": "movie",
        "title": "Alien",
        "description": "In space no one can hear you scream.",
        "tagline": "The eighth passenger.",
        "year": 1979,
        "posterUrl": "/api/poster/catalogue/alien-1979",
        "linkUrl": "api/link/catalogue/alien-1979",
        "genres": ["Horror", "Science Fiction"],
        "duration": 117 * 60_000,
        "rating": 8.5,
        "contentRating": "R",
        "directors": ["Ridley Scott"],
        "actors": ["Sigourney Weaver", "Tom Skerritt"],
    }
    assert alien.added == "1979-01-01"
    assert (heat.id, heat.duration, heat.rating, heat.genres) == ("catalogue:heat-1995", 0, 0.0, [])
    [library] = await provider.libraries()
    assert (library.title, library.key, library.type) == ("films", "catalogue", "movie")
    assert await provider.healthy()


async def test_a_yaml_mapping_names_the_library(tmp_path: Path, opened: OpenProvider) -> None:
    text = "Title: Friday Films\nFilms:\n" + "".join(f"  {line}\n" for line in YAML_LIST.splitlines())
    provider = await opened(write(tmp_path / "list.yml", text))
    assert await titles(provider) == ["Alien", "Heat"]
    [library] = await provider.libraries()
    assert library.title == "Friday Films"


async def test_json_loads_as_a_list_or_a_mapping(tmp_path: Path, opened: OpenProvider) -> None:
    films = [{"title": "Alien", "year": 1979, "genres": ["Horror"]}, {"title": "Heat", "year": "1995"}]
    as_list = await opened(write(tmp_path / "list.json", json.dumps(films)))
    as_mapping = await opened(write(tmp_path / "map.json", json.dumps({"title": "Mine", "movies": films})))
    for provider in (as_list, as_mapping):
        assert [(film.id, film.year, film.genres) for film in await everything(provider)] == [
            ("catalogue:alien-1979", 1979, ["Horror"]),
            ("catalogue:heat-1995", 1995, []),
        ]
    assert [library.title for library in await as_mapping.libraries()] == ["Mine"]


async def test_csv_loads_with_list_fields(tmp_path: Path, opened: OpenProvider) -> None:
    text = (
        "title,year,genres,directors,actors,runtime,rating\n"
        'Alien,1979,Horror|Science Fiction,Ridley Scott,"Sigourney Weaver; Tom Skerritt",117,8.5\n'
        "The Matrix,1999,Action ; Science Fiction,Lana Wachowski|Lilly Wachowski,,136,\n"
    )
    provider = await opened(write(tmp_path / "films.csv", text))
    alien, matrix = await everything(provider)
    assert alien.genres == ["Horror", "Science Fiction"]
    assert alien.actors == ["Sigourney Weaver", "Tom Skerritt"]
    assert (alien.duration, alien.rating) == (117 * 60_000, 8.5)
    assert matrix.genres == ["Action", "Science Fiction"]
    assert matrix.directors == ["Lana Wachowski", "Lilly Wachowski"]
    assert (matrix.actors, matrix.rating) == ([], 0.0)


async def test_csv_from_a_spreadsheet_with_semicolons_and_a_bom(tmp_path: Path, opened: OpenProvider) -> None:
    path = tmp_path / "export.csv"
    path.write_bytes("\ufeffTitle;Year;Genre\r\nAmélie;2001;Comedy|Romance\r\n".encode())
    [film] = await everything(await opened(path))
    assert (film.id, film.title, film.year, film.genres) == (
        "catalogue:amelie-2001",
        "Amélie",
        2001,
        ["Comedy", "Romance"],
    )


async def test_field_names_ignore_case_and_accept_synonyms(
    tmp_path: Path, opened: OpenProvider, logs: Callable[[int], list[str]]
) -> None:
    text = (
        "Name,Release Year,Genre,Runtime (mins),Description,Director,Cast,Certification,IMDb Rating,URL,Your Notes\n"
        "Alien,1979,Horror,117,Scream.,Ridley Scott,Sigourney Weaver,R,8.5,https://example.com/alien,seen twice\n"
    )
    provider = await opened(write(tmp_path / "films.csv", text))
    [film] = await everything(provider)
    assert (film.title, film.year, film.genres, film.duration, film.description) == (
        "Alien",
        1979,
        ["Horror"],
        117 * 60_000,
        "Scream.",
    )
    assert (film.directors, film.actors, film.contentRating, film.rating) == (
        ["Ridley Scott"],
        ["Sigourney Weaver"],
        "R",
        8.5,
    )
    assert await provider.link("alien-1979", "") == "https://example.com/alien"
    assert logs(logging.INFO).count(f"{tmp_path / 'films.csv'}: ignored fields no film has: Your Notes") == 1


async def test_the_example_catalogue_loads_cleanly(opened: OpenProvider, logs: Callable[[int], list[str]]) -> None:
    provider = await opened(ROOT / "catalogue.example.yaml")
    films = await everything(provider)
    assert [film.id for film in films] == [
        "catalogue:the-general-1926",
        "catalogue:nosferatu",
        "catalogue:his-girl-friday-1940",
    ]
    assert all(film.year and film.genres and film.duration for film in films)
    assert not logs(logging.WARNING)
    assert not logs(logging.ERROR)


# -- ids ------------------------------------------------------------------------------------------


async def test_ids_come_from_the_file_or_from_title_and_year(tmp_path: Path, opened: OpenProvider) -> None:
    text = """\
- {title: "Crouching Tiger, Hidden Dragon", year: 2000}
- {title: Untimed}
- {title: 七人の侍, year: 1954}
- {title: Seven Samurai, year: 1954, id: tt0047478}
- {title: Numbered, id: 42}
"""
    path = write(tmp_path / "films.yaml", text)
    ids = [film.id for film in await everything(await opened(path))]
    assert ids[0] == "catalogue:crouching-tiger-hidden-dragon-2000"
    assert ids[1] == "catalogue:untimed"
    assert re.fullmatch(r"catalogue:film-[0-9a-f]{10}-1954", ids[2])
    assert ids[3:] == ["catalogue:tt0047478", "catalogue:42"]
    # Stable across loads and instances: rooms keep these ids.
    assert ids == [film.id for film in await everything(await opened(path))]


async def test_the_provider_id_qualifies_ids_and_urls(tmp_path: Path, opened: OpenProvider) -> None:
    provider = await opened(write(tmp_path / "films.yaml", YAML_LIST), provider_id="club")
    assert provider.id == "club"
    film = (await everything(provider))[0]
    assert (film.id, film.posterUrl, film.linkUrl) == (
        "club:alien-1979",
        "/api/poster/club/alien-1979",
        "api/link/club/alien-1979",
    )


# -- malformed films ------------------------------------------------------------------------------

BAD_YAML = """\
films:
  - title: Good One
    year: 2001
  - year: 1999
  - title: Bad Year
    year: soon
  - title: Negative
    runtime: -5
  - title: Good One
    year: 2001
  - just a title
  - title: Too Good
    rating: 11
  - title: Escape
    poster: ../outside.jpg
  - title: Bad Date
    year: 2020-13-45
  - title: Bad Link
    link: "javascript:alert(1)"
  - title: Twice
    genre: Drama
    genres: Comedy
  - title: Good Two
"""


@pytest.mark.parametrize("pure_python", [False, True], ids=["libyaml parser", "without libyaml"])
async def test_bad_yaml_films_are_logged_with_their_line_and_skipped(
    tmp_path: Path,
    opened: OpenProvider,
    logs: Callable[[int], list[str]],
    monkeypatch: pytest.MonkeyPatch,
    pure_python: bool,
) -> None:
    if pure_python:
        monkeypatch.setattr(catalogue, "_yaml_loader", yaml.SafeLoader)
    path = write(tmp_path / "films.yaml", BAD_YAML)
    provider = await opened(path)
    assert await titles(provider) == ["Good One", "Good Two"]
    assert await provider.healthy()
    assert logs(logging.WARNING) == [
        f"{path} line 4: skipped a film: it has no title",
        f"{path} line 5: skipped a film: 'Bad Year': year 'soon' is not a number",
        f"{path} line 7: skipped a film: 'Negative': runtime -5 is not between 1 and 10000",
        f"{path} line 9: skipped a film: 'Good One': id 'good-one-2001' is already used on line 2",
        f"{path} line 11: skipped a film: it is text, not a mapping of fields",
        f"{path} line 12: skipped a film: 'Too Good': rating 11 is not between 0 and 10",
        f"{path} line 14: skipped a film: 'Escape': poster '../outside.jpg' is outside the catalogue's folder",
        f"{path} line 16: skipped a film: it cannot be read (month must be in 1..12)",
        f"{path} line 18: skipped a film: 'Bad Link': link 'javascript:alert(1)' is not an http(s) URL",
        f"{path} line 20: skipped a film: it has both 'genre' and 'genres'",
    ]
    assert logs(logging.INFO) == [f"catalogue {path}: 2 films"]


async def test_bad_json_films_are_logged_with_their_line_and_skipped(
    tmp_path: Path, opened: OpenProvider, logs: Callable[[int], list[str]]
) -> None:
    text = """{
  "title": "Mine",
  "films": [
    {"title": "Good", "year": 2001},
    {"title": "Bad Year",
     "year": 19.5},
    {"title": "Weird", "genres": [["nested"]]}, 7,
    {
      "title": "Escape", "poster": "/etc/passwd"
    },
    {"title": "Good Two", "runtime": "90"}
  ]
}
"""
    path = write(tmp_path / "films.json", text)
    provider = await opened(path)
    assert await titles(provider) == ["Good", "Good Two"]
    assert logs(logging.WARNING) == [
        f"{path} line 5: skipped a film: 'Bad Year': year 19.5 is not between 1870 and 2100",
        f"{path} line 7: skipped a film: 'Weird': genres must be text, not a list",
        f"{path} line 7: skipped a film: it is a number, not a mapping of fields",
        f"{path} line 8: skipped a film: 'Escape': poster '/etc/passwd' is outside the catalogue's folder",
    ]


async def test_bad_csv_rows_are_logged_with_their_file_line_and_skipped(
    tmp_path: Path, opened: OpenProvider, logs: Callable[[int], list[str]]
) -> None:
    text = (
        "title,year,synopsis\n"
        'Good,2001,"A synopsis\nover two lines"\n'
        ",1999,no title\n"
        "\n"
        "Bad Year,MCMXCIX,\n"
        "Too Many,2001,a,b\n"
        "Good Two,,\n"
    )
    path = write(tmp_path / "films.csv", text)
    provider = await opened(path)
    assert await titles(provider) == ["Good", "Good Two"]
    assert (await everything(provider))[0].description == "A synopsis\nover two lines"
    assert logs(logging.WARNING) == [
        f"{path} line 4: skipped a film: it has no title",
        f"{path} line 6: skipped a film: 'Bad Year': year 'MCMXCIX' is not a number",
        f"{path} line 7: skipped a film: it has 4 values, but the header names 3 columns",
    ]


# -- files that cannot be used --------------------------------------------------------------------

UNPARSEABLE = {
    "yaml syntax": ("films.yaml", "- title: Alien\n  year: [1979\n", "invalid YAML at line 3, column 1"),
    "yaml nested too deeply": ("films.yaml", "[" * 100_000, "invalid YAML: nested too deeply"),
    "yaml scalar": ("films.yaml", "just some text\n", "expected a list of films"),
    "yaml mapping without films": ("films.yaml", "title: Mine\n", "expected a list of films"),
    "json syntax": ("films.json", '[{"title": "Alien"},\n {"title": "Heat"} {}]', "invalid JSON at line 2, column 20"),
    "json trailing comma": ("films.json", '[{"title": "Alien"},]', "invalid JSON at line 1, column 21"),
    "json extra data": ("films.json", '[{"title": "Alien"}] []', "invalid JSON at line 1, column 22: Extra data"),
    "json nested too deeply": ("films.json", "[" * 100_000, "invalid JSON: nested too deeply"),
    "json mapping without films": ("films.json", '{"title": "Mine"}', "expected a list of films"),
    "csv without a title column": ("films.csv", "name of film,year\nAlien,1979\n", "has no title column"),
    "not utf-8": ("films.csv", "title\nAm\xe9lie\n", "not UTF-8 text"),
    "unknown format": ("films.txt", "Alien\n", "unknown format"),
}


@pytest.mark.parametrize("case", UNPARSEABLE.values(), ids=UNPARSEABLE.keys())
async def test_an_unusable_file_gives_an_empty_unhealthy_catalogue(
    tmp_path: Path, opened: OpenProvider, logs: Callable[[int], list[str]], case: tuple[str, str, str]
) -> None:
    name, text, problem = case
    path = tmp_path / name
    path.write_bytes(text.encode("latin-1" if "\xe9" in text else "utf-8"))
    provider = await opened(path)
    assert await everything(provider) == []
    assert not await provider.healthy()
    [error] = logs(logging.ERROR)
    assert error.startswith(f"catalogue {path}: ")
    assert problem in error
    assert error.endswith("; the catalogue has no films")
    [library] = await provider.libraries()
    assert library.title == "films"


async def test_a_missing_file_is_an_error_until_it_appears(
    tmp_path: Path, opened: OpenProvider, logs: Callable[[int], list[str]], fast_reload: None
) -> None:
    path = tmp_path / "later.yaml"
    provider = await opened(path)
    assert await everything(provider) == []
    assert not await provider.healthy()
    await everything(provider)  # looking again does not repeat the error
    assert logs(logging.ERROR) == [f"catalogue {path}: file not found; the catalogue has no films"]
    write(path, YAML_LIST)
    assert await titles(provider) == ["Alien", "Heat"]
    assert await provider.healthy()


async def test_a_file_with_no_usable_films_is_unhealthy(
    tmp_path: Path, opened: OpenProvider, logs: Callable[[int], list[str]]
) -> None:
    path = write(tmp_path / "films.yaml", "films: []\n")
    provider = await opened(path)
    assert not await provider.healthy()
    assert logs(logging.ERROR) == [f"catalogue {path}: no usable films"]


# -- reloading ------------------------------------------------------------------------------------


async def test_an_edited_file_is_reloaded(tmp_path: Path, opened: OpenProvider, fast_reload: None) -> None:
    path = write(tmp_path / "films.yaml", YAML_LIST)
    provider = await opened(path)
    bump(path, "title: Renamed\nfilms:\n  - title: Brazil\n    year: 1985\n    genres: [Comedy]\n")
    assert await titles(provider) == ["Brazil"]
    assert [library.title for library in await provider.libraries()] == ["Renamed"]
    assert [value.value for value in await provider.filter_values("genre")] == ["Comedy"]
    with pytest.raises(ProviderError):
        await provider.link("alien-1979", "")


async def test_the_file_is_looked_at_only_every_few_seconds(
    tmp_path: Path, opened: OpenProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(catalogue, "RELOAD_CHECK_SECONDS", 0.3)
    path = write(tmp_path / "films.yaml", YAML_LIST)
    provider = await opened(path)
    bump(path, "- title: Brazil\n")
    assert await titles(provider) == ["Alien", "Heat"]
    await anyio.sleep(0.35)
    assert await titles(provider) == ["Brazil"]


async def test_a_failed_reload_keeps_the_films_and_logs_once(
    tmp_path: Path, opened: OpenProvider, logs: Callable[[int], list[str]], fast_reload: None
) -> None:
    path = write(tmp_path / "films.yaml", YAML_LIST)
    provider = await opened(path)
    bump(path, "- title: [unclosed\n")
    for _ in range(3):
        assert await titles(provider) == ["Alien", "Heat"]
    assert await provider.healthy()
    [error] = logs(logging.ERROR)
    assert error.startswith(f"catalogue {path}: invalid YAML at line 2")
    assert error.endswith("; keeping the 2 films loaded before")
    path.unlink()
    assert await titles(provider) == ["Alien", "Heat"]
    assert logs(logging.ERROR)[1:] == [f"catalogue {path}: file not found; keeping the 2 films loaded before"]


async def test_concurrent_calls_load_once(
    tmp_path: Path, opened: OpenProvider, logs: Callable[[int], list[str]], fast_reload: None
) -> None:
    path = write(tmp_path / "films.yaml", YAML_LIST)
    provider = await opened(path)
    bump(path, "- title: Brazil\n")
    results: list[list[str]] = []

    async def look() -> None:
        results.append(await titles(provider))

    async with anyio.create_task_group() as group:
        for _ in range(5):
            group.start_soon(look)
    assert results == [["Brazil"]] * 5
    assert logs(logging.INFO).count(f"catalogue {path}: 1 film") == 1


# -- posters --------------------------------------------------------------------------------------


def catalogue_with_poster(folder: Path, poster: str) -> Path:
    return write(folder / "films.yaml", f"- title: Alien\n  year: 1979\n  poster: {poster}\n")


async def test_a_local_poster_is_streamed_with_its_type(tmp_path: Path, opened: OpenProvider) -> None:
    (tmp_path / "posters").mkdir()
    (tmp_path / "posters" / "Alien.PNG").write_bytes(PNG)
    provider = await opened(catalogue_with_poster(tmp_path, "posters/Alien.PNG"))
    poster = await provider.poster("alien-1979", 300)
    assert poster.content_type == "image/png"
    assert "max-age=" in poster.headers["Cache-Control"]
    chunks = [chunk async for chunk in poster.body]
    assert len(chunks) > 1
    assert b"".join(chunks) == PNG


async def test_a_missing_poster_file_is_drawn_until_it_appears(
    tmp_path: Path, opened: OpenProvider, logs: Callable[[int], list[str]]
) -> None:
    path = catalogue_with_poster(tmp_path, "alien.jpg")
    provider = await opened(path)
    assert await titles(provider) == ["Alien"]
    [warning] = logs(logging.WARNING)
    assert warning.startswith(f"{path} line 1: poster file {tmp_path / 'alien.jpg'} of 'Alien' not found")
    drawn = await provider.poster("alien-1979", None)
    assert drawn.content_type == "image/svg+xml"
    (tmp_path / "alien.jpg").write_bytes(b"\xff\xd8\xff")
    found = await provider.poster("alien-1979", None)
    assert (found.content_type, await poster_bytes(found)) == ("image/jpeg", b"\xff\xd8\xff")


@pytest.mark.parametrize("poster", ["../secret.jpg", "/etc/passwd", "posters/../../secret.jpg", "link.jpg"])
async def test_a_poster_outside_the_folder_is_refused(
    tmp_path: Path, opened: OpenProvider, logs: Callable[[int], list[str]], poster: str
) -> None:
    folder = tmp_path / "catalogue"
    folder.mkdir()
    (tmp_path / "secret.jpg").write_bytes(b"secret")
    (folder / "link.jpg").symlink_to(tmp_path / "secret.jpg")
    path = catalogue_with_poster(folder, poster)
    provider = await opened(path)
    assert await everything(provider) == []
    assert logs(logging.WARNING) == [
        f"{path} line 1: skipped a film: 'Alien': poster {poster!r} is outside the catalogue's folder"
    ]


async def test_a_poster_that_later_leads_outside_is_not_served(
    tmp_path: Path, opened: OpenProvider, logs: Callable[[int], list[str]]
) -> None:
    folder = tmp_path / "catalogue"
    folder.mkdir()
    (tmp_path / "secret.jpg").write_bytes(b"secret")
    (folder / "alien.jpg").write_bytes(b"\xff\xd8\xff")
    provider = await opened(catalogue_with_poster(folder, "alien.jpg"))
    (folder / "alien.jpg").unlink()
    (folder / "alien.jpg").symlink_to(tmp_path / "secret.jpg")
    poster = await provider.poster("alien-1979", None)
    assert poster.content_type == "image/svg+xml"
    assert b"secret" not in await poster_bytes(poster)
    [warning] = logs(logging.WARNING)
    assert "leads outside the catalogue's folder" in warning


async def test_a_poster_that_is_not_an_image_is_refused(
    tmp_path: Path, opened: OpenProvider, logs: Callable[[int], list[str]]
) -> None:
    write(tmp_path / "notes.html", "<script>alert(1)</script>")
    path = catalogue_with_poster(tmp_path, "notes.html")
    assert await everything(await opened(path)) == []
    [warning] = logs(logging.WARNING)
    assert "poster 'notes.html' is not a avif/gif/jpeg/jpg/png/webp image" in warning


async def test_a_film_without_a_poster_gets_a_generated_one(tmp_path: Path, opened: OpenProvider) -> None:
    provider = await opened(write(tmp_path / "films.yaml", YAML_LIST))
    poster = await provider.poster("alien-1979", 300)
    assert poster.content_type == "image/svg+xml"
    body = await poster_bytes(poster)
    assert b'width="300"' in body
    assert b"Alien (1979)" in body
    assert body == await poster_bytes(await provider.poster("alien-1979", 300))


async def test_poster_and_link_of_an_unknown_film_are_404(tmp_path: Path, opened: OpenProvider) -> None:
    provider = await opened(write(tmp_path / "films.yaml", YAML_LIST))
    for call in (provider.poster("brazil-1985", None), provider.link("brazil-1985", "")):
        with pytest.raises(ProviderError) as caught:
            await call
        assert caught.value.status == 404


# -- trailers -------------------------------------------------------------------------------------


def catalogue_with_trailer(folder: Path, trailer: str) -> Path:
    return write(folder / "films.yaml", f"- title: Alien\n  year: 1979\n  trailer: {trailer}\n")


async def test_a_trailer_file_is_served_by_this_server(tmp_path: Path, opened: OpenProvider) -> None:
    (tmp_path / "trailers").mkdir()
    video = tmp_path / "trailers" / "alien.mp4"
    video.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(1000))
    provider = await opened(catalogue_with_trailer(tmp_path, "trailers/alien.mp4"))
    [card] = await everything(provider)
    assert (card.trailerUrl, card.trailerLink) == ("/api/trailer/catalogue/alien-1979", None)
    assert await provider.trailer("alien-1979", "bytes=0-10") == video.resolve()


async def test_a_trailer_file_plays_in_ranges_through_the_route(tmp_path: Path) -> None:
    video = bytes(range(256)) * 40
    (tmp_path / "alien.webm").write_bytes(video)
    provider = CatalogueProvider(catalogue_with_trailer(tmp_path, "alien.webm"))
    app = create_app(Settings(), storage=MemoryStorage(), provider=provider)
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(transport=httpx.ASGITransport(manager.app), base_url="http://test") as client,
    ):
        whole = await client.get("/api/trailer/catalogue/alien-1979")
        assert (whole.status_code, whole.headers["content-type"], whole.content) == (200, "video/webm", video)
        part = await client.get("/api/trailer/catalogue/alien-1979", headers={"Range": "bytes=256-511"})
        assert (part.status_code, part.content) == (206, video[256:512])
        assert part.headers["content-range"] == f"bytes 256-511/{len(video)}"
        assert (await client.get("/api/trailer/catalogue/brazil-1985")).status_code == 404


async def test_a_trailer_page_is_a_link(tmp_path: Path, opened: OpenProvider) -> None:
    provider = await opened(catalogue_with_trailer(tmp_path, "https://www.youtube.com/watch?v=LjLamj-b0I8"))
    [card] = await everything(provider)
    assert (card.trailerUrl, card.trailerLink) == (None, "https://www.youtube.com/watch?v=LjLamj-b0I8")
    with pytest.raises(ProviderError) as caught:
        await provider.trailer("alien-1979", None)
    assert caught.value.status == 404


@pytest.mark.parametrize(
    ("trailer", "problem"),
    [
        ("../outside.mp4", "outside the catalogue's folder"),
        ("trailer.avi", "is not a m4v/mov/mp4/ogv/webm video"),
        ("javascript:alert(1)", "neither an http(s) URL nor a file"),
    ],
)
async def test_a_bad_trailer_skips_the_film(
    tmp_path: Path, opened: OpenProvider, logs: Callable[[int], list[str]], trailer: str, problem: str
) -> None:
    provider = await opened(catalogue_with_trailer(tmp_path, trailer))
    assert await everything(provider) == []
    [warning] = logs(logging.WARNING)
    assert problem in warning


async def test_a_missing_trailer_file_is_no_trailer_until_it_appears(
    tmp_path: Path, opened: OpenProvider, logs: Callable[[int], list[str]], fast_reload: None
) -> None:
    path = catalogue_with_trailer(tmp_path, "alien.mp4")
    provider = await opened(path)
    [card] = await everything(provider)
    assert card.trailerUrl is None
    [warning] = logs(logging.WARNING)
    assert "trailer file" in warning
    (tmp_path / "alien.mp4").write_bytes(bytes(100))
    bump(path, path.read_text())
    [card] = await everything(provider)
    assert card.trailerUrl == "/api/trailer/catalogue/alien-1979"


async def test_a_trailer_that_later_leads_outside_is_not_served(tmp_path: Path, opened: OpenProvider) -> None:
    outside = tmp_path / "outside.mp4"
    outside.write_bytes(bytes(100))
    folder = tmp_path / "catalogue"
    folder.mkdir()
    (folder / "alien.mp4").write_bytes(bytes(100))
    provider = await opened(catalogue_with_trailer(folder, "alien.mp4"))
    (folder / "alien.mp4").unlink()
    (folder / "alien.mp4").symlink_to(outside)
    with pytest.raises(ProviderError) as caught:
        await provider.trailer("alien-1979", None)
    assert caught.value.status == 404


class RemoteImages:
    """Answers for remote poster URLs, and the URLs asked for."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def transport(self, answers: dict[str, httpx.Response]) -> httpx.MockTransport:
        def handle(request: httpx.Request) -> httpx.Response:
            self.asked.append(str(request.url))
            return answers[str(request.url)]

        return httpx.MockTransport(handle)


@pytest.fixture
def remote() -> RemoteImages:
    return RemoteImages()


async def test_a_remote_poster_is_fetched_by_the_server(
    tmp_path: Path, opened: OpenProvider, remote: RemoteImages
) -> None:
    url = "https://images.example.com/alien.webp"
    transport = remote.transport({url: httpx.Response(200, headers={"Content-Type": "image/webp"}, content=PNG)})
    provider = await opened(catalogue_with_poster(tmp_path, url), transport=transport)
    [film] = await everything(provider)
    assert film.posterUrl == "/api/poster/catalogue/alien-1979"  # the browser stays on this server
    poster = await provider.poster("alien-1979", None)
    assert poster.content_type == "image/webp"
    assert await poster_bytes(poster) == PNG
    assert remote.asked == [url]


async def _endless() -> AsyncIterator[bytes]:
    while True:
        yield b"x" * 1000


REMOTE_FAILURES = {
    "not found": (httpx.Response(404), "answered 404"),
    "a web page": (httpx.Response(200, headers={"Content-Type": "text/html"}, content=b"<script>"), "text/html"),
    "an svg": (httpx.Response(200, headers={"Content-Type": "image/svg+xml"}, content=b"<svg/>"), "image/svg+xml"),
    "too large": (httpx.Response(200, headers={"Content-Type": "image/png", "Content-Length": "999999999"}), "larger"),
}


@pytest.mark.parametrize("case", REMOTE_FAILURES.values(), ids=REMOTE_FAILURES.keys())
async def test_a_remote_poster_that_is_no_image_is_drawn_instead(
    tmp_path: Path,
    opened: OpenProvider,
    remote: RemoteImages,
    logs: Callable[[int], list[str]],
    case: tuple[httpx.Response, str],
) -> None:
    answer, problem = case
    url = "https://images.example.com/alien.jpg"
    provider = await opened(catalogue_with_poster(tmp_path, url), transport=remote.transport({url: answer}))
    for _ in range(2):
        poster = await provider.poster("alien-1979", None)
        assert poster.content_type == "image/svg+xml"
    [warning] = logs(logging.WARNING)  # once, not on every request
    assert warning.startswith("poster of 'Alien' (line 1): https://images.example.com/alien.jpg ")
    assert problem in warning


async def test_an_unreachable_remote_poster_is_drawn_instead(
    tmp_path: Path, opened: OpenProvider, logs: Callable[[int], list[str]]
) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    url = "https://images.example.com/alien.jpg"
    provider = await opened(catalogue_with_poster(tmp_path, url), transport=httpx.MockTransport(refuse))
    assert (await provider.poster("alien-1979", None)).content_type == "image/svg+xml"
    assert "cannot be fetched (connection refused)" in logs(logging.WARNING)[0]


async def test_a_remote_poster_is_cut_off_at_the_size_cap(
    tmp_path: Path, opened: OpenProvider, remote: RemoteImages, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(catalogue, "REMOTE_POSTER_MAX_BYTES", 10_000)
    url = "https://images.example.com/alien.jpg"
    answer = httpx.Response(200, headers={"Content-Type": "image/jpeg"}, content=_endless())
    provider = await opened(catalogue_with_poster(tmp_path, url), transport=remote.transport({url: answer}))
    poster = await provider.poster("alien-1979", None)
    assert poster.content_type == "image/jpeg"
    assert len(await poster_bytes(poster)) <= 10_000


# -- links ----------------------------------------------------------------------------------------


async def test_links_lead_to_the_film_or_a_search(tmp_path: Path, opened: OpenProvider) -> None:
    text = "- {title: Alien, year: 1979, link: 'https://example.com/alien'}\n- {title: Untimed}\n"
    provider = await opened(write(tmp_path / "films.yaml", text))
    assert await provider.link("alien-1979", "Mozilla/5.0") == "https://example.com/alien"
    parts = urlsplit(await provider.link("untimed", "Mozilla/5.0"))
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "en.wikipedia.org", "/wiki/Special:Search")
    assert parse_qs(parts.query) == {"search": ["Untimed film"]}


# -- filters --------------------------------------------------------------------------------------

FILTER_FILMS = """\
- {title: Alien, year: 1979, genres: [Horror, Science Fiction], runtime: 117, rating: 8.5,
   content_rating: R, directors: [Ridley Scott]}
- {title: Blade Runner, year: 1982, genres: [science fiction], runtime: 117, rating: 8.1,
   content_rating: R, directors: [Ridley Scott]}
- {title: Heat, year: 1995, genres: [Crime], runtime: 170, rating: 8.3, directors: [Michael Mann]}
- {title: Unknown Film}
"""

FILTER_CASES: dict[str, tuple[Filter, list[str]]] = {
    "genre ignores case": (rule("genre", "=", "Science Fiction"), ["Alien", "Blade Runner"]),
    "genre is not keeps films without genres": (
        rule("genre", "!=", "horror"),
        ["Blade Runner", "Heat", "Unknown Film"],
    ),
    "year is": (rule("year", "=", "1979", "1995"), ["Alien", "Heat"]),
    "year is not keeps films without a year": (rule("year", "!=", "1979"), ["Blade Runner", "Heat", "Unknown Film"]),
    "year at least skips films without one": (rule("year", ">>=", "1980"), ["Blade Runner", "Heat"]),
    "decade": (rule("decade", "=", "1970", "1990"), ["Alien", "Heat"]),
    "duration at most": (rule("duration", "<<=", "120"), ["Alien", "Blade Runner"]),
    "rating at least": (rule("rating", ">>=", "8.3"), ["Alien", "Heat"]),
    "a rating bound at an end of the scale keeps unrated films": (
        rule("rating", ">>=", "0"),
        ["Alien", "Blade Runner", "Heat", "Unknown Film"],
    ),
    "so does the other end": (rule("rating", "<<=", "10"), ["Alien", "Blade Runner", "Heat", "Unknown Film"]),
    "a bound inside the scale does not": (rule("rating", "<<=", "9.9"), ["Alien", "Blade Runner", "Heat"]),
    "content rating": (rule("contentRating", "=", "r"), ["Alien", "Blade Runner"]),
    "director is not": (rule("director", "!=", "Ridley Scott"), ["Heat", "Unknown Film"]),
}


@pytest.mark.parametrize("case", FILTER_CASES.values(), ids=FILTER_CASES.keys())
async def test_filters_select_the_matching_films(
    tmp_path: Path, opened: OpenProvider, case: tuple[Filter, list[str]]
) -> None:
    provider = await opened(write(tmp_path / "films.yaml", FILTER_FILMS))
    chosen, expected = case
    assert await titles(provider, chosen) == expected


async def test_filter_values_come_from_the_films(tmp_path: Path, opened: OpenProvider) -> None:
    provider = await opened(write(tmp_path / "films.yaml", FILTER_FILMS))
    assert {info.key for info in (await provider.filters()).filters} == {
        "genre",
        "year",
        "decade",
        "duration",
        "rating",
        "contentRating",
        "director",
        "actor",
    }

    async def values(key: str) -> list[str]:
        return [value.value for value in await provider.filter_values(key)]

    assert await values("genre") == ["Crime", "Horror", "Science Fiction"]
    assert await values("year") == ["1995", "1982", "1979"]
    assert await values("decade") == ["1990", "1980", "1970"]
    assert await values("contentRating") == ["R"]
    assert await values("director") == ["Michael Mann", "Ridley Scott"]
    with pytest.raises(ProviderError) as caught:
        await provider.filter_values("studio")
    assert caught.value.status == 404


async def test_a_bad_filter_is_refused_naming_the_catalogue(tmp_path: Path, opened: OpenProvider) -> None:
    provider = await opened(write(tmp_path / "films.yaml", FILTER_FILMS))
    with pytest.raises(ProviderError) as caught:
        await provider.media(MediaQuery(filters=[rule("studio", "=", "Universal")], libraries=["elsewhere"]))
    assert caught.value.status == 400
    assert "the catalogue filters by genre" in str(caught.value)


@pytest.mark.parametrize(("libraries", "count"), [([], 4), (["catalogue"], 4), (["elsewhere"], 0)])
async def test_library_selection(tmp_path: Path, opened: OpenProvider, libraries: list[str], count: int) -> None:
    provider = await opened(write(tmp_path / "films.yaml", FILTER_FILMS))
    assert len(await provider.media(MediaQuery(libraries=libraries))) == count
