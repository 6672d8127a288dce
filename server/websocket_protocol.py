"""uvicorn's WebSocket protocol, with fewer system calls per message: the server's and the load
benchmark's baseline's."""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.exceptions import InvalidState
from websockets.http11 import Request

# Messages a connection may have waiting for the app before its socket stops being read: memory
# stays bounded (each message is within the size limit), and a flooding client is held back by TCP.
READ_AHEAD = 4

# An ASGI extension of ours: ``{"type": "websocket.send", "texts": list[str]}`` sends several text
# messages in one write to the socket.
TEXTS_EXTENSION = "moviematch.websocket.texts"


class WebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's WebSocket protocol (websockets, sans-I/O), which stops reading its socket once
    ``READ_AHEAD`` messages wait for the app, not after each one, and writes the messages sent
    together (``TEXTS_EXTENSION``) in one go.

    uvicorn stops reading after every message until the app takes it, then starts again: two system
    calls (the event loop's epoll) for every message received, as much as all else that receiving a
    rating cost; and it writes each message sent on its own, a system call each. A client that sends
    one message at a time (all of ours) is now never stopped."""

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        if self.handshake_initiated and not self.close_sent:
            self.scope["extensions"][TEXTS_EXTENSION] = {}

    def send_receive_event_to_app(self) -> None:
        stopped = self.read_paused
        self.read_paused = True  # uvicorn then leaves reading on after this message
        try:
            super().send_receive_event_to_app()
        finally:
            self.read_paused = stopped
        if not stopped and self.queue.qsize() >= READ_AHEAD:
            self.read_paused = True  # uvicorn's receive starts reading again once the app took them all
            self.transport.pause_reading()

    async def send(self, message: Any) -> None:
        if message["type"] == "websocket.send" and "texts" in message:
            await self._send_texts(message["texts"])
            return
        await super().send(message)

    async def _send_texts(self, texts: list[str]) -> None:
        if not await self.can_send():
            return
        try:
            for text in texts:
                self.conn.send_text(text.encode())
        except InvalidState as exc:
            raise ClientDisconnected() from exc
        self.transport.write(b"".join(self.conn.data_to_send()))

    async def can_send(self) -> bool:
        """Whether a data frame may go now, once the peer has read enough of what was sent (so that
        nothing piles up in memory); after the close frame, nothing goes."""
        await self.writable.wait()
        if self.disconnected:
            raise ClientDisconnected()
        return not self.close_sent
