"""The ``config`` message: what the browser needs to know about this server, never a secret."""

from __future__ import annotations

from typing import Any

from server.addresses import current_hosts
from server.context import AppContext


def client_config(context: AppContext) -> dict[str, Any]:
    """The ``config`` message: what the browser needs to know, never a secret."""
    settings = context.settings
    config: dict[str, Any] = {"requiresConfiguration": False, "requirePlexLogin": settings.require_plex_login}
    # Extension: the room form warns of a match threshold no room of this server can reach.
    config["maxRoomMembers"] = settings.max_room_members
    if context.plex_sign_in is not None:  # extension: the browser runs the plex.tv PIN flow itself
        config |= {"plexSignIn": True, "plexTvUrl": settings.plex_tv_url, "plexAppUrl": settings.plex_app_url}
    if context.jellyfin_sign_in is not None and (offered := context.jellyfin_sign_in.offered()):
        config["jellyfinSignIn"] = offered  # extension: the servers a Jellyfin user may sign in with
    # Extension: what share links are built from. The host's own browser may show the app at
    # localhost, which no phone can open; it then puts a LAN address in its place.
    if settings.public_url is not None:
        config["publicUrl"] = settings.public_url
    else:
        config["lanAddresses"] = current_hosts(settings.host)
    return config
