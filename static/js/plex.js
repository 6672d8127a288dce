// "Sign in with Plex": the plex.tv PIN flow, run by the browser. The server only ever sees the
// resulting token, which it verifies with plex.tv.

const POLL_MS = 1000;
const GIVE_UP_MS = 10 * 60_000;

function headers(clientId) {
  return {
    Accept: "application/json",
    "X-Plex-Product": "MovieMatch",
    "X-Plex-Client-Identifier": clientId,
  };
}

function authUrl(appUrl, clientId, code) {
  const params = `clientID=${encodeURIComponent(clientId)}&code=${encodeURIComponent(code)}`;
  return `${appUrl}/auth#?${params}&context%5Bdevice%5D%5Bproduct%5D=MovieMatch`;
}

/**
 * Ask plex.tv for a PIN, let the user approve it in a new window, and wait for the token.
 * `popup` is a window opened synchronously in the click handler (or null if it was blocked);
 * onUrl(url) is told the approval address, for a link the user can open by hand.
 * Resolves with the token; rejects when cancelled (signal), expired or on network errors.
 */
export async function plexSignIn({ tvUrl, appUrl, clientId, popup, onUrl, signal }) {
  const response = await fetch(`${tvUrl}/api/v2/pins?strong=true`, {
    method: "post",
    headers: headers(clientId),
    signal,
  });
  if (!response.ok) throw new Error(`plex.tv answered ${response.status}`);
  const pin = await response.json();
  const url = authUrl(appUrl, clientId, pin.code);
  onUrl(url);
  if (popup && !popup.closed) popup.location.href = url;
  const deadline = Math.min(Date.parse(pin.expiresAt) || Infinity, Date.now() + GIVE_UP_MS);
  try {
    while (Date.now() < deadline) {
      await sleep(POLL_MS, signal);
      const check = await fetch(`${tvUrl}/api/v2/pins/${encodeURIComponent(pin.id)}`, {
        headers: headers(clientId),
        signal,
      });
      if (!check.ok) continue;
      const state = await check.json();
      if (state.authToken) return state.authToken;
    }
    throw new Error("the Plex PIN expired");
  } finally {
    if (popup && !popup.closed) popup.close();
  }
}

function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener(
      "abort",
      () => {
        clearTimeout(timer);
        reject(signal.reason);
      },
      { once: true },
    );
  });
}
