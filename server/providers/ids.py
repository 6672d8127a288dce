"""The ids a film or show goes by on every server: its IMDb, TMDB and TVDB ids.

Plex (its ``Guid`` list, or an old agent's ``guid``) and Jellyfin (``ProviderIds``) name the same
title by the same external ids, so a card's id is the first of them in order of preference, written
as Plex writes its guids (``imdb://tt0111161``), and only without any is it the source's own id.
TMDB and TVDB number films and shows separately, so the kind that is not the usual one for a
database is spelled out (``tmdb://tv/1399``, ``tvdb://movie/146``) and a film never takes a show's
id. Shows prefer TVDB, films TMDB: the ids Jellyfin cards had before these rules, which rooms keep.
"""

from __future__ import annotations

import re

_IMDB = re.compile(r"tt\d{1,12}")
_NUMBER = re.compile(r"\d{1,12}")
# An old Plex agent's guid: com.plexapp.agents.imdb://tt0111161?lang=en
_AGENT_GUID = re.compile(r"com\.plexapp\.agents\.(imdb|themoviedb|thetvdb)://([^?/]+)")
_AGENTS = {"imdb": "imdb", "themoviedb": "tmdb", "thetvdb": "tvdb"}


def external_ids(kind: str, imdb: str | None, tmdb: str | None, tvdb: str | None) -> list[str]:
    """The valid ones of these ids, in order of preference for a ``kind`` ("movie" or "show")."""
    found: list[str] = []
    if imdb and _IMDB.fullmatch(imdb := imdb.strip()):
        found.append(f"imdb://{imdb}")
    tmdb = tmdb.strip() if tmdb else None
    tvdb = tvdb.strip() if tvdb else None
    tmdb_id = f"tmdb://{tmdb}" if kind == "movie" else f"tmdb://tv/{tmdb}"
    tvdb_id = f"tvdb://movie/{tvdb}" if kind == "movie" else f"tvdb://{tvdb}"
    databases = ((tmdb, tmdb_id), (tvdb, tvdb_id)) if kind == "movie" else ((tvdb, tvdb_id), (tmdb, tmdb_id))
    found += [spelled for value, spelled in databases if value and _NUMBER.fullmatch(value)]
    return found


def plex_external_ids(kind: str, guids: list[str], agent_guid: str | None) -> list[str]:
    """The external ids of a Plex item: its ``Guid`` list (``includeGuids=1``), else the ids an old
    agent wrote into its ``guid``."""
    ids: dict[str, str] = {}
    for guid in guids:
        scheme, separator, value = guid.partition("://")
        if separator:
            ids.setdefault(scheme, value)
    if not ids and agent_guid:
        found = _AGENT_GUID.match(agent_guid)
        if found:
            ids[_AGENTS[found.group(1)]] = found.group(2)
    return external_ids(kind, ids.get("imdb"), ids.get("tmdb"), ids.get("tvdb"))


def card_ids(external: list[str], own: str) -> tuple[str, tuple[str, ...]]:
    """The card's id (its best external id, else ``own``) and its aliases (every other id it goes
    by, ``own`` included: the id earlier versions gave the cards of some sources, which stored rooms
    hold)."""
    if not external:
        return own, ()
    return external[0], (*external[1:], own)


def rank(card_id: str) -> int:
    """How well an id names a title across servers (lower is better): an IMDb id, then the usual
    database of its kind, then the other one, then a server's own id."""
    if card_id.startswith("imdb://"):
        return 0
    if card_id.startswith(("tmdb://tv/", "tvdb://movie/")):
        return 2
    if card_id.startswith(("tmdb://", "tvdb://")):
        return 1
    return 3
