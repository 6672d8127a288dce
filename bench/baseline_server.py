"""The transport ceiling for bench.load: the protocol subset it uses (login, createRoom, joinRoom,
rate -> userProgress to the room) on Starlette + uvicorn, with rooms in memory and no validation,
persistence or limits, on the server's own WebSocket protocol. Each connection has a queue and a
sender task that writes what was queued meanwhile at once, as the real server does.

    python -m bench.baseline_server --port 8001
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from server import collector
from server.websocket_protocol import WebSocketProtocol

DECK = [{"id": f"film:{number}", "title": f"Film {number}"} for number in range(64)]


class Room:
    def __init__(self) -> None:
        self.members: dict[str, asyncio.Queue[str]] = {}
        self.rated: dict[str, int] = {}

    def broadcast(self, message: dict[str, Any]) -> None:
        frame = json.dumps(message)
        for queue in self.members.values():
            queue.put_nowait(frame)


ROOMS: dict[str, Room] = {}


async def endpoint(websocket: WebSocket) -> None:
    await websocket.accept()
    queue: asyncio.Queue[str] = asyncio.Queue()

    async def sender() -> None:
        while True:  # what was queued meanwhile goes in one write, as the real server sends it
            texts = [await queue.get()]
            while not queue.empty():
                texts.append(queue.get_nowait())
            await websocket.send({"type": "websocket.send", "texts": texts})

    task = asyncio.create_task(sender())
    queue.put_nowait(json.dumps({"type": "config", "payload": {}}))
    name, room = "", None
    try:
        while True:
            message = json.loads(await websocket.receive_text())
            kind, payload = message["type"], message.get("payload") or {}
            if kind == "login":
                name = payload["userName"]
                queue.put_nowait(json.dumps({"type": "loginSuccess", "payload": {"userName": name}}))
            elif kind in ("createRoom", "joinRoom"):
                room = ROOMS.setdefault(payload["roomName"], Room())
                room.members[name] = queue
                reply = "createRoomSuccess" if kind == "createRoom" else "joinRoomSuccess"
                queue.put_nowait(json.dumps({"type": reply, "payload": {"media": DECK, "memberToken": "x"}}))
            elif kind == "rate" and room is not None:
                room.rated[name] = room.rated.get(name, 0) + 1
                progress = room.rated[name] / len(DECK)
                room.broadcast({"type": "userProgress", "payload": {"user": {"userName": name}, "progress": progress}})
    except WebSocketDisconnect:
        pass
    finally:
        task.cancel()
        if room is not None:
            room.members.pop(name, None)


app = Starlette(routes=[WebSocketRoute("/api/ws", endpoint)])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    port = parser.parse_args().port
    # The same transport and collector settings as the real server's (it has nothing to load first).
    collector.settle()
    uvicorn.run(app, host="127.0.0.1", port=port, ws=WebSocketProtocol, log_level="warning", lifespan="off")


if __name__ == "__main__":
    main()
