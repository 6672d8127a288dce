// URLs relative to the app's own address, so it works under any sub-path and behind any proxy.

/** The app's base address (…/moviematch/), whatever the current query. */
export const appUrl = () => new URL("./", document.baseURI);

/** Whether a host name only ever means the machine it is typed on. */
export function isLoopback(hostname) {
  const host = hostname.replace(/^\[|\]$/g, "").toLowerCase();
  return host === "localhost" || host.endsWith(".localhost") || host === "::1" || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/**
 * The address others open, from the server's `config`: its PUBLIC_URL when set; else this page's
 * address, unless that is loopback (the host's own browser at localhost), which a LAN address of
 * the server replaces.
 */
export function shareBase(config) {
  if (config?.publicUrl) return new URL(config.publicUrl);
  const url = appUrl();
  const lan = config?.lanAddresses?.[0];
  if (lan && isLoopback(url.hostname)) url.hostname = lan.includes(":") ? `[${lan}]` : lan;
  return url;
}

/** The link that opens a room straight away: …/?roomName=… */
export function roomLink(roomName, base = appUrl()) {
  const url = new URL(base);
  url.searchParams.set("roomName", roomName);
  return url.href;
}

export const roomFromUrl = () => new URL(location.href).searchParams.get("roomName");

/** Keep the address bar on the room (a reload rejoins it), or back on the plain app address. */
export function showRoomInUrl(roomName) {
  const url = new URL(location.href);
  if (roomName) url.searchParams.set("roomName", roomName);
  else url.searchParams.delete("roomName");
  if (url.href !== location.href) history.replaceState(history.state, "", url);
}

/**
 * A media URL of the server resolved against the app: a path from the app root (/api/poster/…, as
 * MovieMatch v2 servers sent it) or a relative one (api/link/…) lands under the app's own address,
 * whatever proxy and sub-path are in front; absolute URLs stay as they are.
 */
export const resolve = (url) => new URL(/^\/(?!\/)/.test(url) ? url.slice(1) : url, appUrl()).href;

/** A poster at a given width (the server scales or picks the artwork). */
export function posterUrl(url, width) {
  const poster = new URL(resolve(url));
  if (poster.origin === location.origin) poster.searchParams.set("width", String(width));
  return poster.href;
}

export const qrCodeUrl = (text) => `api/qr?text=${encodeURIComponent(text)}`;
