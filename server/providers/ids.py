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
from collections.abc import Iterable

# An old Plex agent's guid: com.plexapp.agents.imdb://tt0111161?lang=en
_AGENT_GUID = re.compile(r"com\.plexapp\.agents\.(imdb|themoviedb|thetvdb)://([^?/]+)")
_AGENTS = {"imdb": "imdb", "themoviedb": "tmdb", "thetvdb": "tvdb"}
_LONGEST = 12  # digits of an id


def external_ids(kind: str, imdb: str | None, tmdb: str | None, tvdb: str | None) -> list[str]:
    """The valid ones of these ids, in order of preference for a ``kind`` ("movie" or "show").

    str methods, not regular expressions: this runs for each of the 100,000 films of a listing."""
    found: list[str] = []
    if imdb:
        imdb = imdb.strip()
        number = imdb[2:]
        if imdb[:2] == "tt" and number.isdigit() and number.isascii() and len(number) <= _LONGEST:
            found.append("imdb://" + imdb)
    tmdb = tmdb.strip() if tmdb else None
    tvdb = tvdb.strip() if tvdb else None
    tmdb_ok = tmdb is not None and tmdb.isdigit() and tmdb.isascii() and len(tmdb) <= _LONGEST
    tvdb_ok = tvdb is not None and tvdb.isdigit() and tvdb.isascii() and len(tvdb) <= _LONGEST
    if kind == "movie":
        if tmdb_ok:
            found.append(f"tmdb://{tmdb}")
        if tvdb_ok:
            found.append(f"tvdb://movie/{tvdb}")
    else:
        if tvdb_ok:
            found.append(f"tvdb://{tvdb}")
        if tmdb_ok:
            found.append(f"tmdb://tv/{tmdb}")
    return found


def plex_external_ids(kind: str, guids: Iterable[str], agent_guid: str | None) -> list[str]:
    """The external ids of a Plex item: its ``Guid`` list (``includeGuids=1``), else the ids an old
    agent wrote into its ``guid``."""
    imdb = tmdb = tvdb = None
    for guid in guids:
        if guid.startswith("imdb://"):
            imdb = imdb or guid[7:]
        elif guid.startswith("tmdb://"):
            tmdb = tmdb or guid[7:]
        elif guid.startswith("tvdb://"):
            tvdb = tvdb or guid[7:]
    if imdb is None and tmdb is None and tvdb is None and agent_guid:
        found = _AGENT_GUID.match(agent_guid)
        if found:
            ids = {_AGENTS[found.group(1)]: found.group(2)}
            imdb, tmdb, tvdb = ids.get("imdb"), ids.get("tmdb"), ids.get("tvdb")
    return external_ids(kind, imdb, tmdb, tvdb)


def card_ids(external: list[str], own: str, *, former: bool = True) -> tuple[str, tuple[str, ...]]:
    """The card's id (its best external id, else ``own``) and its aliases: every other id it goes
    by, and ``own`` when ``former`` says earlier versions named the card by it (stored rooms hold
    those ids)."""
    if not external:
        return own, ()
    return external[0], (*external[1:], own) if former else tuple(external[1:])


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
