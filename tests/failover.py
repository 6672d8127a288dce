"""A rating storm over a cluster while something happens to its Redis (the primary killed): who
was told their rating is recorded, when each process served again, and which of those ratings the
store lost. Used by tests/test_failover.py and bench/failover.py."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio

from storage import SerializedRoom
from tests.cluster import Cluster
from tests.peers import Peer, over_network

STORM_ROOM = "Storm"
STORM_FILMS = 600
# Fast enough for the storm (4 raters, 20 ratings a second each).
STORM_ENV = {"CLUSTER_FILMS": str(STORM_FILMS), "RATE_LIMIT_PER_SECOND": "1000", "RATE_LIMIT_BURST": "1000"}
PACE = 0.05  # seconds between one rater's answer and its next rating
WARM_UP = 1.0  # seconds of storm before the incident
SERVED = 10  # ratings acknowledged on every process after the incident: the storm is over


@dataclass
class Rater:
    peer: Peer
    process: int  # index of its process in the cluster
    sent: dict[str, float] = field(default_factory=dict)  # mediaId -> when its rating was sent
    # mediaId -> when its own userProgress came: acknowledged, unless a rateError for it ever came.
    answered: dict[str, float] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)  # mediaId -> rateError name

    def acknowledged(self) -> dict[str, float]:
        return {media_id: at for media_id, at in self.answered.items() if media_id not in self.refused}


@dataclass
class Outcome:
    raters: list[Rater]
    incident_at: float
    deck: list[str]

    def acknowledged(self) -> list[tuple[str, str]]:
        return [(rater.peer.name, media_id) for rater in self.raters for media_id in rater.acknowledged()]

    def served_after(self) -> dict[int, float]:
        """Seconds from the incident to the first acknowledgement of a rating sent after it, per process."""
        firsts: dict[int, float] = {}
        for rater in self.raters:
            for media_id, at in rater.acknowledged().items():
                if rater.sent[media_id] > self.incident_at:
                    firsts[rater.process] = min(firsts.get(rater.process, at), at)
        return {process: at - self.incident_at for process, at in firsts.items()}

    def refusals(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for rater in self.raters:
            for name in rater.refused.values():
                counts[name] = counts.get(name, 0) + 1
        return counts

    def lost(self, room: SerializedRoom) -> list[tuple[str, str]]:
        """The acknowledged ratings the stored room does not hold."""
        return [(user, media_id) for user, media_id in self.acknowledged() if user not in raters_of(room, media_id)]


def raters_of(room: SerializedRoom, media_id: str) -> set[str]:
    return {user for user, _, _ in room.ratings.get(media_id, [])}


class Storm:
    """``per_process`` members on each process of ``cluster`` dislike the films of one room one after
    the other; ``incident`` runs after a warm-up (the time it returns is the incident's), and the
    storm goes on until every process acknowledged ``SERVED`` ratings sent after it (or the deck is
    done)."""

    def __init__(self, cluster: Cluster, per_process: int = 2) -> None:
        self.cluster = cluster
        self.per_process = per_process
        self._incident_at = 0.0
        self._stop = anyio.Event()

    async def run(self, incident: Callable[[], object]) -> Outcome:
        size = len(self.cluster.processes)
        async with over_network(self.cluster.ws_urls) as connect:
            raters = []
            for number in range(size * self.per_process):  # in turn over the processes
                peer = await connect(f"rater{number}")
                await peer.login(peer.name)
                raters.append(Rater(peer, number % size))
            created = await raters[0].peer.create(STORM_ROOM)
            deck = [item["id"] for item in created["media"]]
            for rater in raters[1:]:
                await rater.peer.join(STORM_ROOM)
            async with anyio.create_task_group() as tasks:
                for rater in raters:
                    tasks.start_soon(self._rate, rater, deck, raters)
                await anyio.sleep(WARM_UP)
                await anyio.to_thread.run_sync(incident)
                self._incident_at = time.monotonic()
            for rater in raters:  # late refusals of ratings answered by a userProgress meanwhile
                await _drain(rater)
        return Outcome(raters, self._incident_at, deck)

    async def _rate(self, rater: Rater, deck: list[str], everyone: list[Rater]) -> None:
        for media_id in deck:
            if self._stop.is_set():
                return
            rater.sent[media_id] = time.monotonic()
            await rater.peer.send("rate", {"mediaId": media_id, "rating": "dislike"})
            while True:
                try:
                    message = await rater.peer.next()
                except TimeoutError:
                    break  # no answer in seconds: not counted as acknowledged
                if _refusal(rater, message) == media_id:
                    break
                if message["type"] == "userProgress" and message["payload"]["user"]["userName"] == rater.peer.name:
                    # One rating in flight at a time: the rater's own progress answers it.
                    rater.answered[media_id] = time.monotonic()
                    break
            if self._incident_at and self._served(everyone):
                self._stop.set()
            await anyio.sleep(PACE)

    def _served(self, raters: list[Rater]) -> bool:
        after: dict[int, int] = {}
        for rater in raters:
            count = sum(1 for media_id in rater.acknowledged() if rater.sent[media_id] > self._incident_at)
            after[rater.process] = after.get(rater.process, 0) + count
        return len(after) == len(self.cluster.processes) and min(after.values()) >= SERVED


def _refusal(rater: Rater, message: dict[str, Any]) -> str | None:
    """The mediaId a rateError refuses (recorded as refused), if ``message`` is one."""
    if message["type"] != "rateError":
        return None
    payload: Any = message["payload"]
    rater.refused[payload["mediaId"]] = payload["name"]
    return str(payload["mediaId"])


async def _drain(rater: Rater, quiet: float = 1.0) -> None:
    with anyio.move_on_after(quiet):
        while True:
            try:
                _refusal(rater, await rater.peer.next())
            except TimeoutError:
                return
