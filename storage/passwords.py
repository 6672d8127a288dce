"""Room passwords, stored only as salted scrypt hashes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

# scrypt parameters (RFC 7914 interactive-login cost): about 16 MiB and a few tens of ms per check.
_N, _R, _P = 2**14, 8, 1
_PREFIX = "scrypt"


def _derive(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode("utf-8", "surrogatepass"), salt=salt, n=n, r=r, p=p, maxmem=64 * 1024**2)


def hash_password(password: str) -> str:
    """``scrypt$N$r$p$salt$hash``, self-describing so the cost can rise without breaking old rooms."""
    salt = secrets.token_bytes(16)
    digest = _derive(password, salt, _N, _R, _P)
    encode = base64.b64encode
    return f"{_PREFIX}${_N}${_R}${_P}${encode(salt).decode()}${encode(digest).decode()}"


def is_password_hash(value: str) -> bool:
    return value.startswith(_PREFIX + "$") and value.count("$") == 5


def verify_password(password: str, stored_hash: str) -> bool:
    try:
        prefix, n, r, p, salt, digest = stored_hash.split("$")
        if prefix != _PREFIX:
            return False
        expected = base64.b64decode(digest)
        actual = _derive(password, base64.b64decode(salt), int(n), int(r), int(p))
    except (ValueError, TypeError, OverflowError):  # a damaged hash, never a crash
        return False
    return hmac.compare_digest(actual, expected)
