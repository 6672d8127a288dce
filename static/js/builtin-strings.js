// The words for the connection's state, built in: they are needed before the socket works, and the
// server sends every other string over it. A copy of server/translations/*.json for these keys
// (tests/test_client_files.py keeps them equal).

export const BUILT_IN = {
  "en": {
    "CONNECTING": "Connecting to the server…",
    "CONNECTION_LOST": "Connection lost. Reconnecting…",
    "SERVER_UNREACHABLE": "The server does not answer. Still trying…",
    "DEVICE_OFFLINE": "This device is offline. Reconnecting when the network is back…",
    "WEBSOCKET_BLOCKED": "The server answers, but its WebSocket cannot be reached: something in between (a reverse proxy) does not pass WebSocket connections on. See “Behind a reverse proxy” in MovieMatch’s README. Still trying…"
  },
  "de": {
    "CONNECTING": "Verbinde mit dem Server…",
    "CONNECTION_LOST": "Verbindung unterbrochen. Verbinde neu…",
    "SERVER_UNREACHABLE": "Der Server antwortet nicht. Versuche es weiter…",
    "DEVICE_OFFLINE": "Dieses Gerät ist offline. Verbinde neu, sobald das Netz zurück ist…",
    "WEBSOCKET_BLOCKED": "Der Server antwortet, aber sein WebSocket ist nicht erreichbar: Etwas dazwischen (ein Reverse Proxy) leitet WebSocket-Verbindungen nicht weiter. Siehe „Behind a reverse proxy“ in der README von MovieMatch. Versuche es weiter…"
  },
  "fr": {
    "CONNECTING": "Connexion au serveur…",
    "CONNECTION_LOST": "Connexion perdue. Reconnexion…",
    "SERVER_UNREACHABLE": "Le serveur ne répond pas. Nouvel essai…",
    "DEVICE_OFFLINE": "Cet appareil est hors ligne. Reconnexion dès le retour du réseau…",
    "WEBSOCKET_BLOCKED": "Le serveur répond, mais son WebSocket est injoignable : quelque chose entre les deux (un proxy inverse) ne transmet pas les connexions WebSocket. Voir « Behind a reverse proxy » dans le README de MovieMatch. Nouvel essai…"
  },
  "es": {
    "CONNECTING": "Conectando con el servidor…",
    "CONNECTION_LOST": "Se perdió la conexión. Reconectando…",
    "SERVER_UNREACHABLE": "El servidor no responde. Seguimos intentándolo…",
    "DEVICE_OFFLINE": "Este dispositivo no tiene conexión. Se reconectará cuando vuelva la red…",
    "WEBSOCKET_BLOCKED": "El servidor responde, pero no se puede llegar a su WebSocket: algo intermedio (un proxy inverso) no deja pasar las conexiones WebSocket. Consulta «Behind a reverse proxy» en el README de MovieMatch. Seguimos intentándolo…"
  },
  "nl": {
    "CONNECTING": "Verbinden met de server…",
    "CONNECTION_LOST": "Verbinding verbroken. Opnieuw verbinden…",
    "SERVER_UNREACHABLE": "De server antwoordt niet. Blijft proberen…",
    "DEVICE_OFFLINE": "Dit apparaat is offline. Verbindt opnieuw zodra het netwerk terug is…",
    "WEBSOCKET_BLOCKED": "De server antwoordt, maar zijn WebSocket is niet bereikbaar: iets ertussen (een reverse proxy) geeft WebSocket-verbindingen niet door. Zie ‘Behind a reverse proxy’ in de README van MovieMatch. Blijft proberen…"
  },
  "pl": {
    "CONNECTING": "Łączenie z serwerem…",
    "CONNECTION_LOST": "Utracono połączenie. Łączenie ponownie…",
    "SERVER_UNREACHABLE": "Serwer nie odpowiada. Próbuję dalej…",
    "DEVICE_OFFLINE": "To urządzenie jest offline. Połączę ponownie, gdy wróci sieć…",
    "WEBSOCKET_BLOCKED": "Serwer odpowiada, ale jego WebSocket jest nieosiągalny: coś pośrodku (odwrotne proxy) nie przepuszcza połączeń WebSocket. Zobacz „Behind a reverse proxy” w README MovieMatch. Próbuję dalej…"
  }
};
