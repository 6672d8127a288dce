// URLs relative to the app's own address, so it works under any sub-path and behind any proxy.

/** The app's base address (…/moviematch/), whatever the current query. */
export const appUrl = () => new URL("./", document.baseURI);

/** The link that opens a room straight away: …/?roomName=… */
export function roomLink(roomName) {
  const url = appUrl();
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

/** A server-relative media URL (api/poster/…) resolved against the app; absolute URLs unchanged. */
export const resolve = (url) => new URL(url, document.baseURI).href;

/** A poster at a given width (the server scales or picks the artwork). */
export function posterUrl(url, width) {
  const poster = new URL(url, document.baseURI);
  if (poster.origin === location.origin) poster.searchParams.set("width", String(width));
  return poster.href;
}

export const qrCodeUrl = (text) => `api/qr?text=${encodeURIComponent(text)}`;
