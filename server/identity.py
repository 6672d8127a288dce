"""Who a person is, whatever name they type: a Plex account, a Jellyfin user, or a device identity.

A device identity is a long random secret the server issues at a first login; the browser keeps it
and presents it at every later login. The server never stores the secret: the identity is its
SHA-256, so the same secret means the same person on every process, after every restart, in every
storage backend. A login that presents none (the original MovieMatch v2 client) has no identity:
its seats are held by name only, as in v2, and can never take a seat held by an identity.
"""

from __future__ import annotations

import hashlib
import re
import secrets

TOKEN_BYTES = 32
# token_urlsafe(32): 43 characters of the URL-safe base64 alphabet.
_TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")

PLEX = "plex:"
JELLYFIN = "jellyfin:"
DEVICE = "device:"
# The host: the server's own operator (its commands, its standing rooms). No login is ever it.
HOST = "host"


class InvalidIdentity(ValueError):
    """A presented identity token is not one this server could have issued."""


def issue_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def device_identity(token: str) -> str:
    if not _TOKEN.fullmatch(token):
        raise InvalidIdentity("this identity token was not issued by a MovieMatch server")
    return DEVICE + hashlib.sha256(token.encode()).hexdigest()


def plex_identity(plex_id: str) -> str:
    return PLEX + plex_id


def jellyfin_identity(server_id: str, user_id: str) -> str:
    """A user of one Jellyfin (or Emby) server, by the ids the server itself gives (its own id, not
    its URL: the same person whatever address the server is configured by)."""
    return f"{JELLYFIN}{server_id}:{user_id}"
