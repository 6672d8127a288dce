"""The media sources a configuration names, built (not yet opened) in one place."""

from __future__ import annotations

import hashlib
import socket
import uuid
from pathlib import Path

from server.config import MediaServer, Settings

from .base import MediaProvider
from .catalogue import CatalogueProvider
from .combined import CombinedProvider
from .demo import DemoProvider
from .jellyfin import JellyfinProvider
from .plex import PlexProvider
from .seerr import SeerrProvider


def client_id() -> str:
    """A stable identifier for this installation, as Plex and Jellyfin want one per client."""
    return str(uuid.uuid5(uuid.NAMESPACE_DNS, f"moviematch.{socket.gethostname()}"))


def provider_id(server: MediaServer) -> str:
    """Stable while the server's URL is: rooms keep library keys qualified by it."""
    return f"{server.type}-{hashlib.sha256(server.url.encode()).hexdigest()[:8]}"


def media_server(server: MediaServer, settings: Settings) -> MediaProvider:
    if server.type == "plex":
        return PlexProvider(
            server, provider_id=provider_id(server), client_id=client_id(), plex_tv_url=settings.plex_tv_url
        )
    if server.type == "seerr":
        return SeerrProvider(server, provider_id=provider_id(server), image_url=settings.tmdb_image_url)
    return JellyfinProvider(server, provider_id=provider_id(server), client_id=client_id())


def configured_providers(settings: Settings) -> CombinedProvider:
    """The configured servers and catalogue; the bundled demo library when no media is configured
    (Seerr alone lists titles the library lacks: it is no library)."""
    providers = [media_server(server, settings) for server in settings.servers]
    if all(isinstance(provider, SeerrProvider) for provider in providers) and not settings.catalogue:
        providers.append(DemoProvider())
    if settings.catalogue:
        providers.append(CatalogueProvider(Path(settings.catalogue)))
    return CombinedProvider(providers)


def plex_servers(providers: CombinedProvider) -> list[PlexProvider]:
    return [provider for provider in providers.providers.values() if isinstance(provider, PlexProvider)]


def jellyfin_servers(providers: CombinedProvider) -> list[JellyfinProvider]:
    return [provider for provider in providers.providers.values() if isinstance(provider, JellyfinProvider)]
