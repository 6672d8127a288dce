// The one WebSocket of this tab: JSON frames {type, payload}, reconnecting by itself.

import { backoffDelay } from "./backoff.js";

const STALE_AFTER_HIDDEN_MS = 60_000;

/** ws(s)://…/api/ws next to the page, so any root path (and any proxy) works. */
export function socketUrl(base = document.baseURI) {
  const url = new URL("api/ws", base);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  return url.href;
}

export class Socket {
  constructor(url) {
    this.url = url;
    this.ws = null;
    this.attempt = 0;
    this.timer = 0;
    this.handlers = new Map();
    this.statusListeners = new Set();
    this.status = "connecting"; // connecting | open | closed
    this.failures = 0; // attempts in a row that never opened
    this.hiddenAt = 0;
    addEventListener("online", () => this.reconnectNow());
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "hidden") {
        this.hiddenAt = Date.now();
        return;
      }
      // A phone that slept may hold a socket that looks open but is long dead: start afresh.
      if (this.status === "open" && this.hiddenAt && Date.now() - this.hiddenAt > STALE_AFTER_HIDDEN_MS) this.restart();
      else this.reconnectNow();
    });
  }

  /** Call `handler(payload, type)` for every message of `type` ("*" for all). */
  on(type, handler) {
    if (!this.handlers.has(type)) this.handlers.set(type, new Set());
    this.handlers.get(type).add(handler);
    return () => this.handlers.get(type).delete(handler);
  }

  onStatus(listener) {
    this.statusListeners.add(listener);
  }

  /** The next message of one of `types` (matching `accept`), or a rejection when the socket drops. */
  waitFor(types, accept = () => true) {
    return new Promise((resolve, reject) => {
      const offs = [];
      const done = () => offs.forEach((off) => off());
      for (const type of types) {
        offs.push(
          this.on(type, (payload) => {
            if (!accept(payload, type)) return;
            done();
            resolve({ type, payload });
          }),
        );
      }
      const onStatus = (status) => {
        if (status !== "open") {
          done();
          reject(new Error("disconnected"));
        }
      };
      this.statusListeners.add(onStatus);
      offs.push(() => this.statusListeners.delete(onStatus));
    });
  }

  connect() {
    clearTimeout(this.timer);
    this.timer = 0;
    const ws = new WebSocket(this.url);
    this.ws = ws;
    this.setStatus("connecting");
    let opened = false;
    ws.addEventListener("open", () => {
      opened = true;
      if (this.ws !== ws) return;
      this.failures = 0;
      this.setStatus("open");
    });
    ws.addEventListener("message", (event) => {
      if (this.ws !== ws || typeof event.data !== "string") return;
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      if (message?.type === "config") this.attempt = 0; // a server that answers: start backoff over
      this.dispatch(message.type, message.payload);
    });
    ws.addEventListener("close", () => {
      if (this.ws !== ws) return;
      if (!opened) this.failures += 1;
      this.ws = null;
      this.setStatus("closed");
      this.schedule();
    });
  }

  schedule() {
    if (this.timer) return;
    const delay = backoffDelay(this.attempt++);
    this.timer = setTimeout(() => this.connect(), delay);
  }

  /** Skip the wait (network back, tab visible again). */
  reconnectNow() {
    if (this.status === "closed") this.connect();
  }

  /** Drop the current socket and connect again at once. */
  restart() {
    const old = this.ws;
    this.ws = null; // its close event is ignored
    old?.close();
    this.setStatus("closed");
    this.connect();
  }

  send(type, payload) {
    if (this.ws?.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(payload === undefined ? { type } : { type, payload }));
    return true;
  }

  dispatch(type, payload) {
    for (const key of [type, "*"]) {
      for (const handler of [...(this.handlers.get(key) ?? [])]) handler(payload, type);
    }
  }

  setStatus(status) {
    if (status === this.status) return;
    this.status = status;
    for (const listener of [...this.statusListeners]) listener(status);
  }
}
