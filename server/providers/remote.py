"""What the providers that talk to a media server over HTTP (Plex, Jellyfin) and fetch remote posters
(the catalogue) share: a cache whose concurrent callers share one load, the cards handed out so far,
streamed response bodies, operator-readable transport errors and server URLs that are safe to show."""

from __future__ import annotations

import asyncio
import gc
import os
import socket
import ssl
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Iterator, Sequence
from contextlib import contextmanager
from typing import Generic, Protocol, TypeVar
from urllib.parse import urlsplit, urlunsplit

import httpx

from .base import Media, Poster, ProviderError, Stream

Key = TypeVar("Key", bound=Hashable)
Value = TypeVar("Value")


class _Keyed(Protocol):
    @property
    def key(self) -> str: ...


Keyed = TypeVar("Keyed", bound=_Keyed)


class TtlCache(Generic[Key, Value]):
    """Values kept ``ttl`` seconds; concurrent misses of one key share one load (single flight).

    A failed load is not kept: the next caller tries again.
    """

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl
        self._clock = clock
        self._values: dict[Key, tuple[float, Value]] = {}
        self._loads: dict[Key, asyncio.Task[Value]] = {}

    async def get(self, key: Key, load: Callable[[], Awaitable[Value]]) -> Value:
        kept = self._values.get(key)
        if kept is not None and self._clock() < kept[0]:
            return kept[1]
        task = self._loads.get(key)
        if task is None:
            task = self._loads[key] = asyncio.create_task(self._load(key, load))
            # Read here so that a load whose callers all gave up does not log "exception never retrieved".
            task.add_done_callback(lambda done: done.cancelled() or done.exception())
        try:
            # Shielded: one impatient caller going away must not cancel the load the others wait for.
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if task.cancelled() and (current is None or not current.cancelling()):
                # clear() or close() ended the load, not this caller's own cancellation, which a
                # CancelledError would look like to the code above it.
                raise ProviderError("the request was cut short: its source was closed or reset", status=503) from None
            raise

    async def _load(self, key: Key, load: Callable[[], Awaitable[Value]]) -> Value:
        me = asyncio.current_task()
        try:
            value = await load()
        finally:
            if self._loads.get(key) is me:
                del self._loads[key]
            else:  # cleared meanwhile: what it loaded belongs to before
                me = None
        if me is not None:
            now = self._clock()
            # Rooms ask with ever new filter combinations: expired listings must not pile up.
            self._values = {other: kept for other, kept in self._values.items() if kept[0] > now}
            self._values[key] = (now + self._ttl, value)
        return value

    def forget(self, key: Key) -> None:
        """Load this key again when next asked (a load under way still ends, for those waiting on it)."""
        self._values.pop(key, None)
        self._loads.pop(key, None)

    def clear(self) -> None:
        """Forget every value and cancel the loads under way."""
        for task in self._loads.values():
            task.cancel()
        self._loads.clear()
        self._values.clear()

    async def close(self) -> None:
        """``clear()``, and wait for the cancelled loads to end."""
        loads = list(self._loads.values())
        self.clear()
        await asyncio.gather(*loads, return_exceptions=True)


class KnownCards:
    """The cards a provider has handed out and still in use (by a listing or a room), by the item key
    their poster and link URLs carry.

    Posters and links are served for these keys only, so a made-up URL never reaches the media
    server; and a card fetched again unchanged (another room's filters, an expired listing) is the
    object already held, so one film is one object however many listings and rooms hold it.
    """

    def __init__(self) -> None:
        # Plain weak references, without a callback: a WeakValueDictionary (or KeyedRef, a Python
        # class) costs a third of building a 100,000-card listing. A dead reference stays until its
        # key is listed again or cards() passes it, so there is at most one per key the server has.
        self._refs: dict[str, weakref.ref[Media]] = {}

    def kept(self, key: str, card: Media) -> Media:
        """The card already held for ``key`` if it equals ``card``, else ``card``, held from now on."""
        known = self.get(key)
        if known is not None and known == card:
            return known
        self._refs[key] = weakref.ref(card)
        return card

    def get(self, key: str) -> Media | None:
        ref = self._refs.get(key)
        return None if ref is None else ref()

    def cards(self) -> Iterator[Media]:
        """Every card still held (the references of the others are dropped on the way)."""
        for key, ref in list(self._refs.items()):
            card = ref()
            if card is not None:
                yield card
            elif self._refs.get(key) is ref:
                del self._refs[key]

    def clear(self) -> None:
        self._refs.clear()


@contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off while a page of a listing is decoded and made into cards
    (synchronous code: no other task runs meanwhile).

    Each page makes thousands of objects that all live on, and the collector, counting allocations,
    would walk the ever growing heap again and again: about half the time of a 100,000-film listing.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


async def _closing(response: httpx.Response, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    try:
        yield b""  # taken by streamed()
        async for chunk in chunks:
            yield chunk
    finally:
        await response.aclose()


async def streamed(response: httpx.Response, chunks: AsyncIterator[bytes] | None = None) -> AsyncIterator[bytes]:
    """The body of ``response`` (or ``chunks``, read from it), which is closed at its end or when the
    iterator is dropped unread.

    The iterator is started here because asyncio closes the generators it collects only once they
    have started; a browser that gives up on a poster before its body is read would otherwise leave
    the response, and its pooled connection, open for good.
    """
    body = _closing(response, response.aiter_bytes() if chunks is None else chunks)
    await anext(body)
    return body


async def proxied_poster(response: httpx.Response, cache_control: str) -> Poster:
    """A media server's image answer as a poster for the browser, streamed through."""
    return Poster(
        content_type=response.headers.get("content-type", "image/jpeg"),
        body=await streamed(response),
        headers={"Cache-Control": cache_control},
    )


# What a browser's video element needs to seek in a trailer, passed on from the media server's answer.
_VIDEO_HEADERS = ("content-length", "content-range", "accept-ranges", "content-encoding", "last-modified", "etag")
VIDEO_CACHE_CONTROL = "private, max-age=3600"


async def proxied_video(response: httpx.Response) -> Stream:
    """A media server's video answer (all of it, or the part a Range asked for) for the browser,
    streamed through as it came (its raw bytes: Content-Length must stay true)."""
    headers = {name: response.headers[name] for name in _VIDEO_HEADERS if name in response.headers}
    return Stream(
        content_type=response.headers.get("content-type", "video/mp4"),
        body=await streamed(response, response.aiter_raw()),
        headers={**headers, "cache-control": VIDEO_CACHE_CONTROL},
        status=response.status_code,
    )


def transport_problem(
    exc: httpx.RequestError, *, certificate_hint: str = "for a self-signed certificate set verify_tls: false"
) -> str:
    """Why a request found no server to answer it, in words an operator can act on (httpx's own
    texts name no URL, and often only "All connection attempts failed")."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"its TLS certificate is not trusted ({cause.verify_message}); {certificate_hint}"
        if isinstance(cause, ssl.SSLError):
            return f"the TLS handshake failed ({cause.reason or cause})"
        if isinstance(cause, socket.gaierror):
            return f"its host name does not resolve ({cause.strerror})"
        if isinstance(cause, OSError) and cause.errno:
            failed = "cannot connect" if isinstance(exc, httpx.ConnectError) else "the connection failed"
            return f"{failed} ({os.strerror(cause.errno)})"
        cause = cause.__cause__ or cause.__context__
    # A transport that raised without chaining the cause leaves only the text to go by.
    text = str(exc) or type(exc).__name__
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return f"its TLS certificate is not trusted ({text}); {certificate_hint}"
    if "SSL" in text:
        return f"the TLS handshake failed ({text})"
    if isinstance(exc, httpx.TimeoutException):
        return "the connection timed out"
    if isinstance(exc, httpx.ConnectError):
        return f"cannot connect ({text})"
    return text


def public_url(url: str) -> str:
    """``url`` without user:password@, query, fragment or trailing slash: for requests, log lines and links.

    A URL pasted with ``?X-Plex-Token=`` or ``?api_key=`` must not put the secret on the wire (httpx
    logs request URLs) or into a link.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", "")).rstrip("/")


def chosen(available: list[Keyed], keys: Sequence[str], unknown: Callable[[str], str]) -> list[Keyed]:
    """The libraries a room chose by key, in its order and each once; all of them when it chose none.

    A key not among ``available`` is a 400 whose message ``unknown(key)`` words.
    """
    if not keys:
        return available
    by_key = {library.key: library for library in available}
    for key in keys:
        if key not in by_key:
            raise ProviderError(unknown(key), status=400)
    return [by_key[key] for key in dict.fromkeys(keys)]
