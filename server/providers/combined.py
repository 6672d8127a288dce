"""Several media sources as one: a room may draw from libraries of different servers and types.

A title on several servers is one card: cards that share an id or an alias (an IMDb, TMDB or TVDB
id, a Plex guid) are merged into one, named by the best id of them all (``ids.rank``), with the
first server's details, the first poster and trailer found, and an "open in" link per server.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Collection, Sequence
from pathlib import Path

from .base import (
    Filters,
    FilterType,
    FilterValue,
    Library,
    Media,
    MediaProvider,
    MediaQuery,
    Person,
    Poster,
    ProviderError,
    Stream,
)
from .ids import rank
from .remote import KnownCards

log = logging.getLogger(__name__)

SEPARATOR = ":"


def library_key(provider: MediaProvider, key: str) -> str:
    """Library keys are only unique per provider; rooms store them qualified: ``plex-1:3``."""
    return f"{provider.id}{SEPARATOR}{key}"


class CombinedProvider(MediaProvider):
    id = "all"

    def __init__(self, providers: Sequence[MediaProvider]) -> None:
        if not providers:
            raise ValueError("at least one media provider is needed")
        self.providers = {provider.id: provider for provider in providers}
        self._merged = KnownCards()  # the cards made of several, one object per title

    def provider(self, provider_id: str) -> MediaProvider:
        try:
            return self.providers[provider_id]
        except KeyError:
            raise ProviderError(f"no media provider {provider_id!r}", status=404) from None

    async def open(self) -> None:
        for provider in self.providers.values():
            await provider.open()

    async def close(self) -> None:
        for provider in self.providers.values():
            await provider.close()

    async def libraries(self) -> list[Library]:
        listings = await asyncio.gather(*(provider.libraries() for provider in self.providers.values()))
        return [
            library.model_copy(update={"key": library_key(provider, library.key)})
            for provider, libraries in zip(self.providers.values(), listings, strict=True)
            for library in libraries
        ]

    async def _selection(self, libraries: Sequence[str]) -> dict[str, list[str]]:
        """Which providers a room's libraries name, with their own keys. A room that names none draws
        from every film library (every library, where there are none): shows join a deck only when
        the host picks their libraries."""
        if not libraries:
            every = await self.libraries()
            libraries = [library.key for library in every if library.type == "movie"] or [
                library.key for library in every
            ]
        chosen: dict[str, list[str]] = {}
        for qualified in libraries:
            provider_id, separator, key = qualified.partition(SEPARATOR)
            if not separator or provider_id not in self.providers:
                raise ProviderError(f"unknown library {qualified!r}", status=400)
            chosen.setdefault(provider_id, []).append(key)
        return chosen

    async def media(self, query: MediaQuery) -> list[Media]:
        chosen = await self._selection(query.libraries)
        results = await asyncio.gather(
            *(self.providers[pid].media(MediaQuery(query.filters, keys)) for pid, keys in chosen.items())
        )
        listings = [(pid, items) for pid, items in zip(chosen, results, strict=True) if items]
        if len(listings) == 1:
            return listings[0][1]  # each source gives one card per title already
        return self._merge(listings)

    def _merge(self, listings: list[tuple[str, list[Media]]]) -> list[Media]:
        """One card per title: cards sharing an id or alias, of any sources, are one (union-find)."""
        cards: list[Media] = []
        sources: list[str] = []
        parent: list[int] = []
        first_with: dict[str, int] = {}

        def root(index: int) -> int:
            while parent[index] != index:
                parent[index] = index = parent[parent[index]]
            return index

        for provider_id, items in listings:
            for card in items:
                index = len(cards)
                cards.append(card)
                sources.append(provider_id)
                parent.append(index)
                for name in (card.id, *card.aliases):
                    other = first_with.setdefault(name, index)
                    if other != index:
                        low, high = sorted((root(other), root(index)))
                        parent[high] = low  # the earliest card stays first: the first source's copy
        groups: dict[int, list[int]] = {}
        for index in range(len(cards)):
            groups.setdefault(root(index), []).append(index)
        return [
            cards[members[0]] if len(members) == 1 else self._combined([(sources[i], cards[i]) for i in members])
            for members in groups.values()
        ]

    def _combined(self, copies: list[tuple[str, Media]]) -> Media:
        first = copies[0][1]
        best = min((card for _, card in copies), key=lambda card: rank(card.id)).id
        names = dict.fromkeys(name for _, card in copies for name in (card.id, *card.aliases))
        del names[best]
        links: dict[str, str] = {}
        for provider_id, card in copies:
            links.setdefault(provider_id, card.linkUrl)
        trailer = next((card.trailerUrl for _, card in copies if card.trailerUrl), None)
        merged = dataclasses.replace(
            first,
            id=best,
            posterUrl=next((card.posterUrl for _, card in copies if card.posterUrl), None),
            trailerUrl=trailer,
            trailerLink=None if trailer else next((card.trailerLink for _, card in copies if card.trailerLink), None),
            openIn=[
                {"title": self.providers[provider_id].name or provider_id, "linkUrl": link}
                for provider_id, link in links.items()
            ]
            if len(links) > 1
            else None,
            aliases=tuple(names),
        )
        return self._merged.kept(best, merged)

    async def filters(self) -> Filters:
        every = await asyncio.gather(*(provider.filters() for provider in self.providers.values()))
        seen: dict[str, object] = {}
        types: dict[str, list[FilterType]] = {}
        for filters in every:
            for info in filters.filters:
                seen.setdefault(info.key, info)
            for type_name, operators in filters.filterTypes.items():
                known = types.setdefault(type_name, [])
                known.extend(op for op in operators if op not in known)
        return Filters.model_validate({"filters": list(seen.values()), "filterTypes": types})

    async def filter_values(self, key: str) -> list[FilterValue]:
        """The values every source offers; one source that lacks the filter or is down is skipped."""
        values: dict[str, FilterValue] = {}
        answered = False
        failure: ProviderError | None = None
        for provider in self.providers.values():
            try:
                listed = await provider.filter_values(key)
            except ProviderError as exc:
                if exc.status != 404 and exc.status < 500:
                    raise
                failure = exc if exc.status >= 500 else failure
                continue
            answered = True
            for value in listed:
                values.setdefault(value.value, value)
        if not answered:
            raise failure or ProviderError(f"unknown filter {key!r}", status=404)
        return list(values.values())

    async def poster(self, key: str, width: int | None) -> Poster:
        raise ProviderError("posters are served by each provider", status=404)

    async def link(self, key: str, user_agent: str) -> str:
        raise ProviderError("links are served by each provider", status=404)

    async def trailer(self, key: str, byte_range: str | None) -> Stream | Path:
        raise ProviderError("trailers are served by each provider", status=404)

    # -- people and what they watched -------------------------------------------------------------

    async def people(self) -> list[Person]:
        """Everyone some source knows, once (a Plex account seen by two Plex servers is one person);
        a source that is down is left out, with a log line."""
        found: dict[str, Person] = {}
        for provider in self.providers.values():
            try:
                listed = await provider.people()
            except ProviderError as exc:
                log.warning("the people of %s cannot be listed now: %s", provider.id, exc)
                continue
            for person in listed:
                known = found.get(person.id)
                if known is None or (known.avatar is None and person.avatar is not None):
                    found[person.id] = person
        return list(found.values())

    async def person(self, identity: str | None) -> Person | None:
        """The person behind a signed-in user (``User.identity``), when a source knows them."""
        if not identity:
            return None
        return next((person for person in await self.people() if person.id == identity), None)

    async def watched(self, person_ids: Collection[str], *, refresh: bool = False) -> set[str]:
        found = await asyncio.gather(
            *(provider.watched(person_ids, refresh=refresh) for provider in self.providers.values())
        )
        watched = set().union(*found)
        # A merged card may be named by another source's id than the one a person watched it on.
        for card in self._merged.cards():
            if card.id not in watched and not watched.isdisjoint(card.aliases):
                watched.add(card.id)
        return watched

    async def healthy(self) -> bool:
        return all(await asyncio.gather(*(provider.healthy() for provider in self.providers.values())))
