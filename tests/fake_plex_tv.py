"""A fake plex.tv for the browser's "Sign in with Plex": the PIN API the page calls (with CORS, as
plex.tv answers browsers), the approval page a person sees, and the user API the server checks
tokens with. Served by uvicorn in a thread on a loopback port.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from tests.services import free_port, wait_for_port

# The approval page plex.tv shows, reduced to one button. It reads the PIN code from the hash, as
# app.plex.tv does: #?clientID=…&code=…&context%5Bdevice%5D%5Bproduct%5D=…
APPROVAL_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Plex sign-in</title></head>
<body>
<h1>Sign in to Plex</h1>
<p id="product"></p>
<button id="approve" type="button">Allow</button>
<p id="done" hidden>Approved. You can close this window.</p>
<script>
const params = new URLSearchParams(location.hash.replace(/^#\\?/, ""));
document.getElementById("product").textContent = params.get("context[device][product]") || "";
document.getElementById("approve").addEventListener("click", async () => {
  await fetch("approve", {
    method: "POST",
    headers: {"Content-Type": "application/json"},
    body: JSON.stringify({code: params.get("code"), clientID: params.get("clientID")}),
  });
  document.getElementById("done").hidden = false;
});
</script>
</body></html>
"""

AVATAR = (
    b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10"><rect width="10" height="10" fill="#e5a00d"/></svg>'
)


@dataclass
class Pin:
    id: int
    code: str
    client_id: str
    product: str
    strong: bool
    auth_token: str | None = None


@dataclass
class FakePlexTv:
    """One plex.tv account, whose token is handed out when a PIN is approved."""

    username: str = "plexfan"
    token: str = "plex-user-token-Wq73Zk"
    account_id: int = 4242
    pins: dict[int, Pin] = field(default_factory=dict)
    user_checks: list[dict[str, str]] = field(default_factory=list)  # headers of /api/v2/user calls
    url: str = ""
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1001))

    def app(self) -> Starlette:
        routes = [
            Route("/api/v2/pins", self.create_pin, methods=["POST"]),
            Route("/api/v2/pins/{pin_id:int}", self.check_pin),
            Route("/auth", self.auth_page),
            Route("/approve", self.approve, methods=["POST"]),
            Route("/api/v2/user", self.user),
            Route("/avatar.svg", self.avatar),
        ]
        cors = Middleware(
            CORSMiddleware,
            allow_origins=["*"],
            allow_methods=["GET", "POST"],
            allow_headers=["*"],
        )
        return Starlette(routes=routes, middleware=[cors])

    async def create_pin(self, request: Request) -> Response:
        pin_id = next(self._ids)
        pin = Pin(
            id=pin_id,
            code=f"code{pin_id}",
            client_id=request.headers.get("x-plex-client-identifier", ""),
            product=request.headers.get("x-plex-product", ""),
            strong=request.query_params.get("strong") == "true",
        )
        self.pins[pin_id] = pin
        return JSONResponse(self._pin(pin), status_code=201)

    async def check_pin(self, request: Request) -> Response:
        pin = self.pins.get(request.path_params["pin_id"])
        if pin is None or request.headers.get("x-plex-client-identifier") != pin.client_id:
            return JSONResponse({"errors": [{"code": 1020, "message": "Code not found or expired"}]}, 404)
        return JSONResponse(self._pin(pin))

    async def auth_page(self, request: Request) -> Response:
        return HTMLResponse(APPROVAL_PAGE)

    async def approve(self, request: Request) -> Response:
        body = await request.json()
        for pin in self.pins.values():
            if pin.code == body.get("code") and pin.client_id == body.get("clientID"):
                pin.auth_token = self.token
                return Response(status_code=204)
        return Response(status_code=404)

    async def user(self, request: Request) -> Response:
        self.user_checks.append(dict(request.headers))
        if request.headers.get("x-plex-token") != self.token:
            return JSONResponse({"errors": [{"code": 1001, "message": "User could not be authenticated"}]}, 401)
        return JSONResponse(
            {
                "id": self.account_id,
                "uuid": "0f1e2d3c4b5a6978",
                "username": self.username,
                "title": self.username,
                "email": f"{self.username}@example.com",
                "thumb": f"{self.url}/avatar.svg",
            }
        )

    async def avatar(self, request: Request) -> Response:
        return Response(AVATAR, media_type="image/svg+xml")

    def _pin(self, pin: Pin) -> dict[str, Any]:
        expires = datetime.now(UTC) + timedelta(minutes=15)
        return {
            "id": pin.id,
            "code": pin.code,
            "product": pin.product,
            "trusted": False,
            "clientIdentifier": pin.client_id,
            "expiresIn": 900,
            "createdAt": datetime.now(UTC).isoformat(),
            "expiresAt": expires.isoformat(),
            "authToken": pin.auth_token,
        }


@contextmanager
def serving_plex_tv(fake: FakePlexTv) -> Iterator[str]:
    """Serve the fake on a free loopback port; yields its base URL."""
    port = free_port()
    fake.url = f"http://127.0.0.1:{port}"
    config = uvicorn.Config(
        fake.app(), host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="off", ws="none"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the fake plex.tv did not start")
            time.sleep(0.01)
        wait_for_port(port)
        yield fake.url
    finally:
        server.should_exit = True
        thread.join(10)
