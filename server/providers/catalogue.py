"""Films from a catalogue file the host writes (YAML, JSON or CSV), for groups without a media server.

catalogue.example.yaml at the repository root documents the format. The file is read at start and
again whenever it changes, so a host can edit the list while rooms are open. A film that cannot be
used is skipped with one log line naming its line in the file; a file that cannot be read at all
leaves the films loaded before it in place (none, at start).

Posters are a local image next to the catalogue, a remote image fetched by the server, or a
generated one. Remote images are proxied rather than redirected to: the page's Content-Security-Policy
allows images from this origin only (a redirect elsewhere would be blocked), the guests' browsers
then talk to this server only (their addresses are not sent to image hosts, and hot-link protection
does not break the cards), and what the server fetches is only ever a URL the host wrote into the file.
"""

from __future__ import annotations

import bisect
import csv
import dataclasses
import hashlib
import io
import json
import logging
import math
import re
import time
import unicodedata
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol
from urllib.parse import urlsplit

import anyio
import anyio.to_thread
import httpx
import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.resolver import Resolver

from server import __version__

from . import filtering
from .base import Filters, FilterValue, Library, Media, MediaProvider, MediaQuery, Poster, ProviderError
from .filtering import shown
from .local import card, generated_poster, search_link
from .remote import streamed

log = logging.getLogger(__name__)

LIBRARY_KEY = "catalogue"
LIBRARY_TYPE = "movie"
# media() and libraries() look at the file's modification time at most this often.
RELOAD_CHECK_SECONDS = 2.0
# A host may replace an image or retitle a film under the same id: an hour bounds how stale a card gets.
POSTER_CACHE_CONTROL = "public, max-age=3600"
CHUNK_BYTES = 64 * 1024
REMOTE_POSTER_MAX_BYTES = 10 * 1024 * 1024
REMOTE_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
# Raster images only: an SVG is a document that can carry scripts, and it would run on this origin.
IMAGE_TYPES = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".avif": "image/avif",
}
FIRST_YEAR = 1870
LAST_YEAR = 2100
# Trailers this server streams: the types every current browser's video element plays, or may.
VIDEO_TYPES = {
    ".mp4": "video/mp4",
    ".m4v": "video/mp4",
    ".webm": "video/webm",
    ".ogv": "video/ogg",
    ".mov": "video/quicktime",
}
# Ids go into poster and link URLs as they are.
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._~-]{0,199}")
_LIST_SEPARATOR = re.compile(r"[|;]")


class _YamlLoader(Protocol):
    def get_single_node(self) -> yaml.Node | None: ...
    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any: ...
    def dispose(self) -> None: ...


# PyYAML's composer over libyaml's parser where PyYAML has it: about three times faster than the
# pure-Python loader on large files, without libyaml's own composer, whose recursion on deeply nested
# input overflows a worker thread's stack and kills the process (PyYAML's raises RecursionError).
_yaml_loader: Callable[[str], _YamlLoader] = yaml.SafeLoader
try:
    from yaml._yaml import CParser
except ImportError:  # a PyYAML built without libyaml
    pass
else:

    class _LibyamlLoader(Composer, CParser, SafeConstructor, Resolver):
        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            Composer.__init__(self)
            SafeConstructor.__init__(self)
            Resolver.__init__(self)

    _yaml_loader = _LibyamlLoader


def _canonical(name: str) -> str:
    """A field name as compared: "Runtime (mins)", "runtime_mins" and "RuntimeMins" are one name."""
    return re.sub(r"[^0-9a-z]", "", name.casefold())


_SYNONYMS = {
    "id": ("id", "key", "slug"),
    "title": ("title", "name", "film", "movie"),
    "year": ("year", "release year"),
    "genres": ("genres", "genre", "category", "categories"),
    "runtime": ("runtime", "runtime (mins)", "runtime minutes", "duration", "length", "minutes"),
    "synopsis": ("synopsis", "description", "summary", "plot", "overview"),
    "poster": ("poster", "poster url", "poster path", "image", "cover", "artwork"),
    "tagline": ("tagline",),
    "directors": ("directors", "director", "directed by"),
    "actors": ("actors", "actor", "cast", "starring", "stars"),
    "content_rating": ("content rating", "certification", "certificate", "rated", "mpaa rating", "age rating"),
    "rating": ("rating", "score", "imdb rating", "audience rating"),
    "link": ("link", "url", "website", "homepage"),
    "trailer": ("trailer", "trailer url", "trailer file", "trailer link"),
}
_FIELD_OF = {_canonical(synonym): name for name, synonyms in _SYNONYMS.items() for synonym in synonyms}
# Top-level keys of a YAML or JSON mapping.
_FILM_LIST_KEYS = frozenset({"films", "movies"})
_TITLE_KEY = "title"


class CatalogueError(Exception):
    """The file as a whole cannot be used."""


class _Skip(Exception):
    """One film cannot be used; the message says why."""


# A film as read, before checking: its (name, value) pairs, or why it could not even be read.
_Item = list[tuple[object, object]] | _Skip


@dataclass(frozen=True)
class _Document:
    items: list[tuple[int, _Item]]  # with the line each item starts on
    title: object = None


@dataclass(frozen=True)
class _Film:
    key: str
    line: int
    title: str
    year: int | None
    genres: tuple[str, ...]
    runtime: int | None  # minutes
    synopsis: str
    tagline: str | None
    directors: tuple[str, ...]
    actors: tuple[str, ...]
    contentRating: str | None
    rating: float | None
    poster_url: str | None
    poster_file: Path | None  # as written, joined to the catalogue folder; resolved again on each use
    link: str | None
    trailer_link: str | None  # a page elsewhere, opened as a link
    trailer_file: Path | None  # a video in the folder, streamed (as poster_file)


@dataclass(frozen=True)
class _Listing:
    library: Library
    films: dict[str, _Film]
    cards: dict[str, Media]


# Reading the three formats into items with line numbers.


def _mapping_item(value: object) -> _Item:
    if isinstance(value, dict):
        return list(value.items())
    return _Skip(f"it is {_kind(value)}, not a mapping of fields")


def _read_yaml(text: str) -> _Document:
    # Composing gives nodes that know their line; each film is then built from its own node, so that
    # one the YAML library cannot build (a bad date, an unknown tag) is skipped alone.
    loader = _yaml_loader(text)
    try:
        try:
            root = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            raise CatalogueError(f"invalid YAML{where}: {exc.problem or exc.context}") from None
        except RecursionError:
            raise CatalogueError("invalid YAML: nested too deeply") from None
        if root is None:
            return _Document([])
        films: yaml.Node | None = root
        title: object = None
        if isinstance(root, yaml.MappingNode):
            films = None
            for key, value in root.value:
                name = _canonical(str(key.value)) if isinstance(key, yaml.ScalarNode) else ""
                if name in _FILM_LIST_KEYS:
                    films = value
                elif name == _TITLE_KEY and isinstance(value, yaml.ScalarNode):
                    title = value.value
        if not isinstance(films, yaml.SequenceNode):
            raise CatalogueError("expected a list of films, or a mapping with a 'films' list")
        items: list[tuple[int, _Item]] = []
        for node in films.value:
            try:
                item = _mapping_item(loader.construct_object(node, deep=True))
            except (yaml.YAMLError, ValueError, TypeError, RecursionError) as exc:
                item = _Skip(f"it cannot be read ({exc})")
            items.append((node.start_mark.line + 1, item))
        return _Document(items, title)
    finally:
        loader.dispose()


_JSON_SPACE = re.compile(r"[ \t\n\r]*")


def _read_json(text: str) -> _Document:
    # json.loads gives no positions, so the top level is walked here and each film decoded on its
    # own with raw_decode, which says where it ends.
    decoder = json.JSONDecoder()
    newlines = [match.start() for match in re.finditer("\n", text)]

    def skip_space(pos: int) -> int:
        space = _JSON_SPACE.match(text, pos)
        return space.end() if space else pos

    def expect(pos: int, char: str, message: str) -> int:
        if not text.startswith(char, pos):
            raise json.JSONDecodeError(message, text, pos)
        return skip_space(pos + 1)

    def array(pos: int) -> tuple[list[tuple[int, _Item]], int]:
        items: list[tuple[int, _Item]] = []
        pos = skip_space(pos + 1)
        if text.startswith("]", pos):
            return items, pos + 1
        while True:
            value, end = decoder.raw_decode(text, pos)
            items.append((bisect.bisect(newlines, pos) + 1, _mapping_item(value)))
            pos = skip_space(end)
            if text.startswith("]", pos):
                return items, pos + 1
            pos = expect(pos, ",", "Expecting ',' delimiter")

    def mapping(pos: int) -> tuple[_Document, int]:
        films: list[tuple[int, _Item]] | None = None
        title: object = None
        pos = skip_space(pos + 1)
        closed = text.startswith("}", pos)
        while not closed:
            if not text.startswith('"', pos):
                raise json.JSONDecodeError("Expecting property name enclosed in double quotes", text, pos)
            key, end = decoder.raw_decode(text, pos)
            pos = expect(skip_space(end), ":", "Expecting ':' delimiter")
            name = _canonical(key)
            if name in _FILM_LIST_KEYS and text.startswith("[", pos):
                films, end = array(pos)
            else:
                value, end = decoder.raw_decode(text, pos)
                if name == _TITLE_KEY:
                    title = value
            pos = skip_space(end)
            closed = text.startswith("}", pos)
            if not closed:
                pos = expect(pos, ",", "Expecting ',' delimiter")
        if films is None:
            raise CatalogueError("expected a list of films, or a mapping with a 'films' list")
        return _Document(films, title), pos + 1

    try:
        start = skip_space(0)
        if text.startswith("[", start):
            items, end = array(start)
            document = _Document(items)
        elif text.startswith("{", start):
            document, end = mapping(start)
        else:
            raise CatalogueError("expected a list of films, or a mapping with a 'films' list")
        if skip_space(end) != len(text):
            raise json.JSONDecodeError("Extra data", text, skip_space(end))
    except json.JSONDecodeError as exc:
        raise CatalogueError(f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    except RecursionError:
        raise CatalogueError("invalid JSON: nested too deeply") from None
    return document


def _read_csv(text: str) -> _Document:
    # Spreadsheets set to some languages write ";" or tabs between fields; the header row tells.
    header_line = text.partition("\n")[0]
    delimiter = max(",;\t", key=header_line.count)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    items: list[tuple[int, _Item]] = []
    try:
        names = [name.strip() for name in next(reader, [])]
        if not names:
            return _Document([])
        if "title" not in {_FIELD_OF.get(_canonical(name)) for name in names}:
            raise CatalogueError(f"the header row has no title column (its columns: {', '.join(names)})")
        line = reader.line_num + 1
        for row in reader:
            if any(cell.strip() for cell in row):
                if len(row) > len(names):
                    item: _Item = _Skip(f"it has {len(row)} values, but the header names {len(names)} columns")
                else:
                    item = list(zip(names, row, strict=False))
                items.append((line, item))
            # A quoted value may span lines: the next row starts after the lines this one took.
            line = reader.line_num + 1
    except csv.Error as exc:
        raise CatalogueError(f"invalid CSV at line {reader.line_num}: {exc}") from None
    return _Document(items)


_READERS: dict[str, Callable[[str], _Document]] = {
    ".yaml": _read_yaml,
    ".yml": _read_yaml,
    ".json": _read_json,
    ".csv": _read_csv,
}


# Checking one film's fields.


def _kind(value: object) -> str:
    names = {bool: "true or false", dict: "a mapping", list: "a list", str: "text", int: "a number", float: "a number"}
    return names.get(type(value), f"a {type(value).__name__}")


def _blank(value: object) -> bool:
    return value is None or value == [] or (isinstance(value, str) and not value.strip())


def _fields(item: list[tuple[object, object]], ignored: set[str]) -> dict[str, object]:
    """The item's non-blank values by field name; names no field has go to ``ignored``."""
    fields: dict[str, object] = {}
    written: dict[str, str] = {}
    for raw_name, value in item:
        name = str(raw_name)
        field = _FIELD_OF.get(_canonical(name))
        if field is None:
            if name.strip():
                ignored.add(name)
        elif not _blank(value):
            if field in fields:
                raise _Skip(f"it has both {written[field]!r} and {name!r}")
            fields[field] = value
            written[field] = name
    return fields


def _text(name: str, value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _Skip(f"{name} must be text, not {_kind(value)}")
    return str(value).strip() or None


def _number(name: str, value: object, low: float, high: float) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _Skip(f"{name} must be a number, not {_kind(value)}")
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        raise _Skip(f"{name} {shown(str(value))} is not a number")
    if not low <= number <= high:
        raise _Skip(f"{name} {number:g} is not between {low:g} and {high:g}")
    return number


def _whole(name: str, value: object, low: int, high: int) -> int | None:
    number = _number(name, value, low, high)
    if number is not None and not number.is_integer():
        raise _Skip(f"{name} {number:g} is not a whole number")
    return None if number is None else int(number)


def _names(name: str, value: object) -> tuple[str, ...]:
    """A list of names: a list, or text with the names between "|" or ";"."""
    if value is None:
        return ()
    parts = value if isinstance(value, list) else _LIST_SEPARATOR.split(_text(name, value) or "")
    names: dict[str, str] = {}
    for part in parts:
        text = _text(name, part)
        if text:
            names.setdefault(text.casefold(), text)
    return tuple(names.values())


def _web_url(name: str, value: object) -> str | None:
    url = _text(name, value)
    if url is None:
        return None
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise _Skip(f"{name} {shown(url)} is not an http(s) URL")
    return url


def _inside(folder: Path, path: Path) -> Path | None:
    """``path`` with its links resolved, when that is inside ``folder`` (itself resolved)."""
    try:
        real = path.resolve()
    except (OSError, RuntimeError, ValueError):  # a link loop; a NUL in the name
        return None
    return real if real.is_relative_to(folder) else None


def _url_or_file(
    name: str, value: object, folder: Path, types: dict[str, str], kind: str
) -> tuple[str | None, Path | None]:
    """A poster's or trailer's URL, or its file of one of ``types`` (joined to the catalogue's
    folder, unresolved)."""
    text = _text(name, value)
    if text is None:
        return None, None
    scheme = urlsplit(text).scheme.lower()
    if scheme in ("http", "https"):
        return _web_url(name, text), None
    if len(scheme) > 1:  # file:, data: ... (one letter would be a Windows drive, refused below as outside)
        raise _Skip(f"{name} {shown(text)} is neither an http(s) URL nor a file")
    path = folder / text
    real = _inside(folder, path)
    if real is None:
        raise _Skip(f"{name} {shown(text)} is outside the catalogue's folder")
    if real.suffix.lower() not in types:
        raise _Skip(f"{name} {shown(text)} is not a {'/'.join(sorted({s[1:] for s in types}))} {kind}")
    return None, path


def _slug(text: str) -> str:
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", plain.lower()).strip("-")[:80].strip("-")


def _key(value: object, title: str, year: int | None) -> str:
    """The film's id as written, else one made from its title and year that stays the same across
    loads (rooms keep ids). A title with no Latin letters or digits gets a hash of it."""
    written = _text("id", value)
    if written is not None:
        if not _ID.fullmatch(written):
            raise _Skip(f"id {shown(written)} may only hold letters, digits, '.', '_', '~' and '-'")
        return written
    slug = _slug(title) or "film-" + hashlib.sha256(title.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    return slug if year is None else f"{slug}-{year}"


def _film(line: int, item: _Item, folder: Path, ignored: set[str]) -> _Film:
    if isinstance(item, _Skip):
        raise item
    fields = _fields(item, ignored)
    title = _text("title", fields.get("title"))
    if title is None:
        raise _Skip("it has no title")
    try:
        year = _whole("year", fields.get("year"), FIRST_YEAR, LAST_YEAR)
        poster_url, poster_file = _url_or_file("poster", fields.get("poster"), folder, IMAGE_TYPES, "image")
        trailer_link, trailer_file = _url_or_file("trailer", fields.get("trailer"), folder, VIDEO_TYPES, "video")
        return _Film(
            key=_key(fields.get("id"), title, year),
            line=line,
            title=title,
            year=year,
            genres=_names("genres", fields.get("genres")),
            runtime=_whole("runtime", fields.get("runtime"), 1, 10_000),
            synopsis=_text("synopsis", fields.get("synopsis")) or "",
            tagline=_text("tagline", fields.get("tagline")),
            directors=_names("directors", fields.get("directors")),
            actors=_names("actors", fields.get("actors")),
            contentRating=_text("content_rating", fields.get("content_rating")),
            rating=_number("rating", fields.get("rating"), 0, 10),
            poster_url=poster_url,
            poster_file=poster_file,
            link=_web_url("link", fields.get("link")),
            trailer_link=trailer_link,
            trailer_file=trailer_file,
        )
    except _Skip as skip:
        raise _Skip(f"{shown(title)}: {skip}") from None


def _films(document: _Document, path: Path, folder: Path) -> dict[str, _Film]:
    """The usable films by key; each item that is not is logged with its line and skipped."""
    films: dict[str, _Film] = {}
    ignored: set[str] = set()
    for line, item in document.items:
        try:
            film = _film(line, item, folder, ignored)
            if film.key in films:
                raise _Skip(f"{shown(film.title)}: id {film.key!r} is already used on line {films[film.key].line}")
        except _Skip as skip:
            log.warning("%s line %d: skipped a film: %s", path, line, skip)
            continue
        if film.trailer_file is not None and not film.trailer_file.is_file():
            log.warning(
                "%s line %d: trailer file %s of %s not found; no trailer until it is there",
                path,
                line,
                film.trailer_file,
                shown(film.title),
            )
            film = dataclasses.replace(film, trailer_file=None)
        films[film.key] = film
        if film.poster_file is not None and not film.poster_file.is_file():
            log.warning(
                "%s line %d: poster file %s of %s not found; a generated poster is shown until it is there",
                path,
                line,
                film.poster_file,
                shown(film.title),
            )
    if ignored:
        log.info("%s: ignored fields no film has: %s", path, ", ".join(sorted(ignored, key=str.casefold)))
    return films


def _library(path: Path, title: object = None) -> Library:
    name = title.strip() if isinstance(title, str) and title.strip() else path.stem
    return Library(title=name, key=LIBRARY_KEY, type=LIBRARY_TYPE)


def _load(path: Path, folder: Path, provider_id: str) -> _Listing:
    """Read and check the whole file (blocking: run it in a worker thread)."""
    reader = _READERS.get(path.suffix.lower())
    if reader is None:
        raise CatalogueError(f"unknown format: the name must end in {', '.join(_READERS)}")
    try:
        text = path.read_bytes().decode("utf-8-sig")  # -sig: spreadsheets often start CSV with a BOM
    except FileNotFoundError:
        raise CatalogueError("file not found") from None
    except OSError as exc:
        raise CatalogueError(f"cannot read the file ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        raise CatalogueError(f"not UTF-8 text (byte {exc.start} is {exc.object[exc.start]:#04x})") from None
    document = reader(text)
    films = _films(document, path, folder)
    return _Listing(
        library=_library(path, document.title),
        films=films,
        cards={
            key: card(
                provider_id, key, film, trailer_link=film.trailer_link, trailer_file=film.trailer_file is not None
            )
            for key, film in films.items()
        },
    )


def _signature(path: Path) -> tuple[int, ...]:
    """What tells that the file changed: size and inode too, as some file systems keep mtime coarsely."""
    try:
        stat = path.stat()
    except OSError:
        return ()  # missing or unreadable, itself a state to notice once
    return (stat.st_mtime_ns, stat.st_size, stat.st_ino)


def _checked(path: Path, folder: Path, types: dict[str, str]) -> tuple[Path, str]:
    """The file a poster or trailer path leads to, and its content type. Checked again on every
    request because the file or a link on its way may have changed since the catalogue was read."""
    real = _inside(folder, path)
    if real is None:
        raise PermissionError(f"{path} leads outside the catalogue's folder")
    content_type = types.get(real.suffix.lower())
    if content_type is None:
        raise PermissionError(f"{path} leads to {real.name}, which is not of a type served")
    return real, content_type


def _open_image(path: Path, folder: Path) -> tuple[BinaryIO, str]:
    real, content_type = _checked(path, folder, IMAGE_TYPES)
    return real.open("rb"), content_type


async def _file_chunks(handle: anyio.AsyncFile[bytes]) -> AsyncIterator[bytes]:
    try:
        while chunk := await handle.read(CHUNK_BYTES):
            yield chunk
    finally:
        await handle.aclose()


async def _capped_chunks(response: httpx.Response, url: str) -> AsyncIterator[bytes]:
    """The remote body, ended early (the image then shows broken) when it fails or grows too large."""
    received = 0
    try:
        async for chunk in response.aiter_bytes(CHUNK_BYTES):
            received += len(chunk)
            if received > REMOTE_POSTER_MAX_BYTES:
                log.warning("poster %s is larger than %d bytes; cut off", url, REMOTE_POSTER_MAX_BYTES)
                return
            yield chunk
    except httpx.HTTPError as exc:
        log.warning("poster %s failed while streaming: %s", url, exc)


class CatalogueProvider(MediaProvider):
    def __init__(
        self,
        path: Path,
        *,
        provider_id: str = "catalogue",
        transport: httpx.AsyncBaseTransport | None = None,  # where remote posters come from; for tests
    ) -> None:
        self.id = provider_id
        self._path = path
        # Resolved once: posters are confined to this folder, wherever links inside it lead.
        self._folder = path.parent.resolve()
        self._listing = _Listing(library=_library(path), films={}, cards={})
        self._attempted: tuple[int, ...] | None = None  # the file's signature when last read
        self._next_check = 0.0
        self._reload_lock = anyio.Lock()
        self._poster_problems: set[str] = set()  # keys whose poster failed, to log each only once
        self._client = httpx.AsyncClient(
            transport=transport,
            timeout=REMOTE_TIMEOUT,
            follow_redirects=True,
            max_redirects=5,
            limits=httpx.Limits(max_connections=10),
            headers={"User-Agent": f"MovieMatch/{__version__}", "Accept": "image/*"},
        )

    async def open(self) -> None:
        await self._refresh()

    async def close(self) -> None:
        await self._client.aclose()

    async def healthy(self) -> bool:
        # Healthy while there are films to deal, even if a later edit of the file failed to load.
        return bool(self._listing.films)

    @property
    def name(self) -> str:  # type: ignore[override]  # the file's title, which an edit may change
        return self._listing.library.title

    async def libraries(self) -> list[Library]:
        await self._refresh()
        return [self._listing.library]

    async def media(self, query: MediaQuery) -> list[Media]:
        await self._refresh()
        listing = self._listing
        # Check every filter before looking at libraries, so a bad request fails the same way always.
        wanted = filtering.matcher(query.filters, "the catalogue")
        if query.libraries and LIBRARY_KEY not in query.libraries:
            return []
        return [listing.cards[key] for key, film in listing.films.items() if wanted(film)]

    async def filters(self) -> Filters:
        return filtering.filters(LIBRARY_TYPE)

    async def filter_values(self, key: str) -> list[FilterValue]:
        await self._refresh()
        return filtering.filter_values(key, self._listing.films.values())

    async def poster(self, key: str, width: int | None) -> Poster:
        film = self._film(key)
        image = None
        if film.poster_file is not None:
            image = await self._local_poster(film, film.poster_file)
        elif film.poster_url is not None:
            image = await self._remote_poster(film, film.poster_url)
        return image or generated_poster(
            film.key, film.title, year=film.year, genres=film.genres, width=width, cache_control=POSTER_CACHE_CONTROL
        )

    async def link(self, key: str, user_agent: str) -> str:
        film = self._film(key)
        return film.link or search_link(film.title, film.year)

    async def trailer(self, key: str, byte_range: str | None) -> Path:
        """The trailer file, for the route to serve (with the byte ranges the browser asks for)."""
        film = self._film(key)
        if film.trailer_file is None:
            raise ProviderError(f"no trailer for {shown(film.title)}", status=404)
        try:
            real, _ = await anyio.to_thread.run_sync(_checked, film.trailer_file, self._folder, VIDEO_TYPES)
            if not await anyio.Path(real).is_file():
                raise FileNotFoundError(real)
        except OSError as exc:
            log.warning("trailer of %s (line %d) cannot be served: %s", shown(film.title), film.line, exc)
            raise ProviderError(f"the trailer of {shown(film.title)} is not there", status=404) from exc
        return real

    def _film(self, key: str) -> _Film:
        film = self._listing.films.get(key)
        if film is None:
            raise ProviderError(f"no film {shown(key)} in the catalogue", status=404)
        return film

    async def _local_poster(self, film: _Film, path: Path) -> Poster | None:
        try:
            handle, content_type = await anyio.to_thread.run_sync(_open_image, path, self._folder)
        except OSError as exc:
            self._poster_problem(film, f"cannot be opened ({exc.strerror or exc})")
            return None
        body = _file_chunks(anyio.wrap_file(handle))
        return Poster(content_type=content_type, body=body, headers={"Cache-Control": POSTER_CACHE_CONTROL})

    async def _remote_poster(self, film: _Film, url: str) -> Poster | None:
        try:
            response = await self._client.send(self._client.build_request("GET", url), stream=True)
        except httpx.HTTPError as exc:
            self._poster_problem(film, f"{url} cannot be fetched ({str(exc) or type(exc).__name__})")
            return None
        content_type = response.headers.get("content-type", "").partition(";")[0].strip().lower()
        length = response.headers.get("content-length", "")
        problem = None
        if response.status_code != 200:
            problem = f"{url} answered {response.status_code}"
        elif not content_type.startswith("image/") or content_type == "image/svg+xml":
            # Anything else would be served from this origin: an HTML page or an SVG could run scripts.
            problem = f"{url} is {content_type or 'of no type'}, not a raster image"
        elif length.isdigit() and int(length) > REMOTE_POSTER_MAX_BYTES:
            problem = f"{url} is larger than {REMOTE_POSTER_MAX_BYTES} bytes"
        if problem is not None:
            await response.aclose()
            self._poster_problem(film, problem)
            return None
        # streamed() closes the response, also when the browser drops the poster unread.
        body = await streamed(response, _capped_chunks(response, url))
        return Poster(content_type=content_type, body=body, headers={"Cache-Control": POSTER_CACHE_CONTROL})

    def _poster_problem(self, film: _Film, problem: str) -> None:
        if film.key not in self._poster_problems:
            self._poster_problems.add(film.key)
            log.warning("poster of %s (line %d): %s; a generated one is shown", shown(film.title), film.line, problem)

    async def _refresh(self) -> None:
        """Reload the file when it changed, looking at most every ``RELOAD_CHECK_SECONDS``."""
        if time.monotonic() < self._next_check:
            return
        async with self._reload_lock:
            # A caller that waited for the lock finds the file just looked at.
            if time.monotonic() < self._next_check:
                return
            await self._reload()
            self._next_check = time.monotonic() + RELOAD_CHECK_SECONDS

    async def _reload(self) -> None:
        signature = await anyio.to_thread.run_sync(_signature, self._path)
        if signature == self._attempted:
            return
        # Remembered even when loading fails, so that a broken file is reported once, not every check.
        self._attempted = signature
        try:
            listing = await anyio.to_thread.run_sync(_load, self._path, self._folder, self.id)
        except Exception as exc:  # the file is outside input: nothing in it may stop the server
            kept = len(self._listing.films)
            consequence = f"keeping the {kept} films loaded before" if kept else "the catalogue has no films"
            expected = isinstance(exc, CatalogueError)
            reason = exc if expected else f"cannot be loaded ({type(exc).__name__}: {exc})"
            log.error("catalogue %s: %s; %s", self._path, reason, consequence, exc_info=not expected)
            return
        self._listing = listing
        self._poster_problems.clear()
        if listing.films:
            count = len(listing.films)
            log.info("catalogue %s: %d film%s", self._path, count, "" if count == 1 else "s")
        else:
            log.error("catalogue %s: no usable films", self._path)
