"""One server process's share of ratings, for the multi-process Redis tests.

``python -m tests.redis_rating_writer URL ROOM PLAN`` where PLAN is a JSON list of
``[mediaId, userName, rating, atMs]``. Prints ``ready`` once connected and waits for a line on stdin,
so that several writers start together; then records the plan in order with ``add_rating`` and
prints the JSON list of its results.
"""

from __future__ import annotations

import asyncio
import json
import sys

from storage import RatingValue
from storage.redis import RedisStorage

# (mediaId, userName, rating, atMs): one add_rating call.
Plan = list[tuple[str, str, RatingValue, int]]


async def write(url: str, room_name: str, plan: Plan) -> list[bool]:
    async with RedisStorage.from_url(url) as storage:
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        return [await storage.add_rating(room_name, *rating) for rating in plan]


def main(argv: list[str]) -> None:
    url, room_name, plan_json = argv
    plan: Plan = json.loads(plan_json)
    print(json.dumps(asyncio.run(write(url, room_name, plan))), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
