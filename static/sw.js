// The service worker: the installed app opens without the server (and shows that it is
// reconnecting), and nothing old is ever served while the server answers.
//
// - Only the page and the client's own files (FILES) are handled, network first: while the server
//   answers (within NETWORK_WAIT_MS), that answer is used and kept; the kept copy is used only when
//   it does not. So an upgraded server's client is what loads, whatever this worker kept before.
// - The WebSocket, api/ (posters, links, QR codes), health and anything else go to the network
//   alone, never into the cache.
// - Copies are kept per client version (the page registers sw.js?v=<version>): a new version's
//   worker fills a cache of its own, takes over at once and deletes the others.
// - Paths are relative to this worker's own address, which is the app's root under any sub-path.

const VERSION = new URL(self.location.href).searchParams.get("v") || "unversioned";
const CACHE_PREFIX = "moviematch-";
const CACHE = `${CACHE_PREFIX}${VERSION}`;
const NETWORK_WAIT_MS = 4000;
const PAGE = "./";
// Every file of static/ the page loads (tests/test_client_files.py checks the list is complete).
const FILES = [
  "css/app.css",
  "icons/icon.svg",
  "js/backoff.js",
  "js/builtin-strings.js",
  "js/card.js",
  "js/clipboard.js",
  "js/confirm.js",
  "js/connection.js",
  "js/deck.js",
  "js/details.js",
  "js/dialogs.js",
  "js/dom.js",
  "js/filters.js",
  "js/format.js",
  "js/gestures.js",
  "js/i18n.js",
  "js/keys.js",
  "js/links.js",
  "js/main.js",
  "js/match-overlay.js",
  "js/matches.js",
  "js/members.js",
  "js/motion.js",
  "js/owner.js",
  "js/people.js",
  "js/players.js",
  "js/plex.js",
  "js/poster.js",
  "js/requests.js",
  "js/rules.js",
  "js/screens/create.js",
  "js/screens/lobby.js",
  "js/screens/room.js",
  "js/screens/signin.js",
  "js/session.js",
  "js/share.js",
  "js/socket.js",
  "js/state.js",
  "js/storage.js",
  "js/toast.js",
  "js/watchlist.js",
];

const scope = () => new URL(self.registration.scope);

self.addEventListener("install", (event) => {
  event.waitUntil(
    caches
      .open(CACHE)
      .then((cache) => cache.addAll([PAGE, ...FILES]))
      .then(() => self.skipWaiting()),
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((names) => names.filter((name) => name.startsWith(CACHE_PREFIX) && name !== CACHE))
      .then((old) => Promise.all(old.map((name) => caches.delete(name))))
      .then(() => self.clients.claim()),
  );
});

self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET") return;
  const url = new URL(request.url);
  const root = scope();
  if (url.origin !== root.origin || !url.pathname.startsWith(root.pathname)) return;
  const path = url.pathname.slice(root.pathname.length);
  const page = request.mode === "navigate" && (path === "" || path === "index.html");
  if (!page && !FILES.includes(path)) return; // not ours to keep: the network's answer, as it is
  event.respondWith(networkFirst(request, new URL(page ? PAGE : path, root).href));
});

/**
 * The network's answer (kept for later) if it comes in time; else, or when it is a server error (a
 * proxy whose server is down), the kept copy; without one, whatever the network does.
 */
async function networkFirst(request, key) {
  const cache = await caches.open(CACHE);
  const network = fetch(request).then((response) => {
    if (response.ok) cache.put(key, response.clone()).catch(() => {});
    return response;
  });
  network.catch(() => {}); // a failure is handled below; never an unhandled rejection
  let answer = null;
  try {
    answer = await Promise.race([network, timeout(NETWORK_WAIT_MS)]);
    if (answer.status < 500) return answer;
  } catch {
    // No answer (in time): the kept copy, if there is one.
  }
  return (await cache.match(key)) ?? answer ?? network;
}

const timeout = (ms) => new Promise((_, reject) => setTimeout(() => reject(new Error("no answer in time")), ms));
