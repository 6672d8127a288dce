"""Choosing a backend: one URL is the canonical form; type + path settings map onto it.

Built-in schemes: ``memory://``, ``file:///abs/dir`` or ``file:relative/dir``, ``redis://``,
``rediss://``, ``unix://``, ``redis+sentinel://``. A third-party backend registers a scheme in the
entry-point group ``moviematch.storage`` (``postgres = "moviematch_pg:PostgresStorage"``), or is
named directly as ``module:Class``. Either way the class is built with ``Class.from_url(url)``.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from .base import Storage
from .errors import StorageError

ENTRY_POINT_GROUP = "moviematch.storage"
DEFAULT_URL = "file:data/rooms"

# Imported on first use, so a backend's dependencies load only when it is chosen.
_BUILTIN = {
    "memory": "storage.memory:MemoryStorage",
    "file": "storage.file:FileStorage",
    "redis": "storage.redis:RedisStorage",
    "rediss": "storage.redis:RedisStorage",
    "unix": "storage.redis:RedisStorage",
    "redis+sentinel": "storage.redis:RedisStorage",
}


def _import_class(target: str, source: str) -> type[Storage]:
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise StorageError("create_storage", source, f"{target!r} is not of the form module:Class")
    try:
        module = importlib.import_module(module_name)
        cls = getattr(module, attr)
    except (ImportError, AttributeError) as exc:
        raise StorageError("create_storage", source, f"cannot load {target}: {exc}") from exc
    if not (isinstance(cls, type) and issubclass(cls, Storage)):
        raise StorageError("create_storage", source, f"{target} is not a Storage subclass")
    return cls


def backend_class(scheme: str) -> type[Storage]:
    if scheme in _BUILTIN:
        return _import_class(_BUILTIN[scheme], f"{scheme}://")
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        if entry.name == scheme:
            return _import_class(entry.value, f"entry point {scheme!r}")
    known = ", ".join(sorted(_BUILTIN))
    raise StorageError("create_storage", f"{scheme}://", f"unknown storage scheme {scheme!r} (built in: {known})")


def storage_url(storage_type: str | None = None, path: str | None = None, url: str | None = None) -> str:
    """The URL for ``type`` + ``path`` settings (or ``url`` itself when given)."""
    if url:
        return url
    kind = (storage_type or "file").strip().lower()
    if kind == "memory":
        return "memory://"
    if kind == "file":
        if not path:
            return DEFAULT_URL
        # An absolute path gets an empty host ("file:///srv/rooms"): "file://srv/rooms" would read
        # "srv" as a host, and a path starting with "//" would otherwise become one.
        return f"file://{quote(path)}" if path.startswith("/") else f"file:{quote(path)}"
    if kind in ("redis", "rediss"):
        if not path:
            raise StorageError("create_storage", kind, "a redis storage needs a URL (REDIS_URL or storage.url)")
        return path
    # A plug-in scheme: the path is its URL, or what follows the scheme.
    if path and urlsplit(path).scheme == kind:
        return path
    return f"{kind}://{path or ''}"


def create_storage(url: str | None = None, *, storage_type: str | None = None, path: str | None = None) -> Storage:
    """Build (not yet open) the backend a URL names; a bad URL or type is a ``StorageError``.

    ``storage_type`` may also be ``module:Class``; the class is then built from ``path``.
    """
    if storage_type and ":" in storage_type:
        return _import_class(storage_type, storage_type).from_url(path or "")
    url = storage_url(storage_type, path, url)
    scheme = urlsplit(url).scheme.lower()
    if not scheme:
        raise StorageError("create_storage", url, "not a storage URL (expected memory://, file:..., redis://...)")
    return backend_class(scheme).from_url(url)


def file_path_from_url(url: str) -> Path:
    """The directory of a ``file:`` URL; ``file://host/...`` is refused, it would silently drop the host."""
    parts = urlsplit(url)
    if parts.scheme != "file":
        raise StorageError("create_storage", url, "not a file: URL")
    if parts.netloc not in ("", "localhost"):
        raise StorageError(
            "create_storage", url, f"file URLs take no host ({parts.netloc!r}); use file:///abs/dir or file:rel/dir"
        )
    if not parts.path:
        raise StorageError("create_storage", url, "file URL has no path")
    return Path(unquote(parts.path))
