"""Several media sources as one: a room may draw from libraries of different servers."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from .base import Filters, FilterType, FilterValue, Library, Media, MediaProvider, MediaQuery, Poster, ProviderError

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

    def _selection(self, libraries: Sequence[str]) -> dict[str, list[str]]:
        """Which providers a room's libraries name, with their own keys (all providers when none)."""
        if not libraries:
            return {provider_id: [] for provider_id in self.providers}
        chosen: dict[str, list[str]] = {}
        for qualified in libraries:
            provider_id, separator, key = qualified.partition(SEPARATOR)
            if not separator or provider_id not in self.providers:
                raise ProviderError(f"unknown library {qualified!r}", status=400)
            chosen.setdefault(provider_id, []).append(key)
        return chosen

    async def media(self, query: MediaQuery) -> list[Media]:
        chosen = self._selection(query.libraries)
        results = await asyncio.gather(
            *(self.providers[pid].media(MediaQuery(query.filters, keys)) for pid, keys in chosen.items())
        )
        # The same film on two servers is one card: the first provider's copy wins.
        unique: dict[str, Media] = {}
        for items in results:
            for item in items:
                unique.setdefault(item.id, item)
        return list(unique.values())

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

    async def healthy(self) -> bool:
        return all(await asyncio.gather(*(provider.healthy() for provider in self.providers.values())))
