"""Room identity: the canonical key of a room name, and names derived from it for backends."""

from __future__ import annotations

import hashlib
import re
import unicodedata

_NOT_SLUG = re.compile(r"[^a-z0-9]+")
SLUG_LENGTH = 40
DIGEST_LENGTH = 24


def room_key(room_name: str) -> str:
    """Two names equal after trimming, Unicode NFC and case folding name the same room.

    NFC is applied again after folding because folding can produce sequences that are not NFC.
    """
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", room_name.strip()).casefold())


def key_digest(key: str) -> str:
    """A fixed-length hex digest of a canonical key; distinct keys never share it in practice."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:DIGEST_LENGTH]


def readable_id(key: str) -> str:
    """A lowercase ASCII id that a person can recognise: ``movie-night-<digest>``.

    The digest covers the whole key, so the slug may be lossy (``a b`` and ``a_b`` share a slug but
    not an id) and the result is safe as a file name on any file system (no ``..``, no reserved
    names, bounded length, no case or Unicode-form ambiguity).
    """
    ascii_key = unicodedata.normalize("NFKD", key).encode("ascii", "ignore").decode("ascii")
    slug = _NOT_SLUG.sub("-", ascii_key.lower()).strip("-")[:SLUG_LENGTH].strip("-")
    digest = key_digest(key)
    return f"{slug}-{digest}" if slug else digest
