"""QR codes of share links: only links to this server's own page, drawn in a worker, kept.

A share link is what the web client's ``roomLink`` makes: ``<base>?roomName=<name>``, where the
base is ``PUBLIC_URL``, or the page's own address (``<origin><root path>/``) with, when the page
was opened at localhost, one of the server's LAN addresses for its host. Anything else is refused
before any drawing, so the server is no QR service for other sites, and the text, hence the work
per code, stays bounded (a valid room name, a host a browser can name).
"""

from __future__ import annotations

import io
from collections import OrderedDict
from collections.abc import Iterable
from urllib.parse import parse_qsl, urlsplit

import segno

from server.names import clean_name
from server.offload import Offload
from server.security import origin_allowed

# Far below what a QR code holds (2,331 bytes at level M), and above any real share link:
# 100 characters of room name, each up to 12 once percent-encoded, after a host of 253.
TEXT_LIMIT = 1800
CACHE_SIZE = 256


def share_link_problem(
    text: str,
    *,
    hosts: Iterable[str],
    allowed_origins: Iterable[str],
    root_path: str,
    public_url: str | None,
    max_name_length: int,
) -> str | None:
    """Why ``text`` is not a share link of this server, or None when it is one.

    It must be an http(s) URL with a valid ``roomName`` as its only query parameter and nothing
    else, of ``public_url``, or of a page this server serves at ``root_path``: on one of ``hosts``
    (the request's own, a proxy's X-Forwarded-Host, the server's LAN addresses) or of a listed
    allowed origin, the same rule as the WebSocket origin check.
    """
    if not text or len(text) > TEXT_LIMIT:
        return f"text must be a share link of this server, 1-{TEXT_LIMIT} characters"
    try:
        parts = urlsplit(text)
        port_ok = parts.port != 0
    except ValueError:
        return "text must be a URL"
    if parts.scheme not in ("http", "https") or not parts.hostname or not port_ok or "@" in parts.netloc:
        return "text must be an http(s) URL of this server"
    base = f"{parts.scheme}://{parts.netloc}{parts.path}".lower()
    if public_url is None or base != public_url.lower():
        if not origin_allowed(f"{parts.scheme}://{parts.netloc}", hosts, allowed_origins):
            return "text must be a link to this server"
        if parts.path != root_path + "/":
            return f"text must be a link to this server's page ({root_path}/)"
    if parts.fragment:
        return "text must be a room's share link, without a #fragment"
    try:
        query = parse_qsl(parts.query, strict_parsing=True, max_num_fields=1, errors="strict")
    except (ValueError, UnicodeDecodeError):
        query = []
    if len(query) != 1 or query[0][0] != "roomName":
        return "text must be a room's share link (?roomName=...)"
    try:
        clean_name(query[0][1], max_name_length)
    except ValueError as exc:
        return f"the room name {exc}"
    return None


def draw(text: str) -> bytes:
    """The SVG of a QR code (run in a worker process: segno is pure Python)."""
    image = io.BytesIO()
    segno.make(text, error="m").save(image, kind="svg", scale=8, border=2, xmldecl=False, svgns=True)
    return image.getvalue()


class QrCodes:
    """Codes drawn in ``offload``'s worker processes, the most recently asked ``size`` of them kept."""

    def __init__(self, offload: Offload, size: int = CACHE_SIZE) -> None:
        self.offload = offload
        self.size = size
        self._kept: OrderedDict[str, bytes] = OrderedDict()

    async def svg(self, client: str, text: str) -> bytes:
        """The code of ``text`` (a share link, checked by the caller); raises ``offload.Busy``."""
        image = self._kept.get(text)
        if image is None:
            image = await self.offload.run_in_process(client, draw, text)
            self._kept[text] = image
            if len(self._kept) > self.size:
                self._kept.popitem(last=False)
        self._kept.move_to_end(text)
        return image
