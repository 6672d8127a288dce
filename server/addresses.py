"""Where other devices reach this server: the machine's addresses, read from its network interfaces.

The host name is no guide: on a typical Debian or Ubuntu machine it resolves to 127.0.1.1, so a
share link built from it opens on no phone.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable, Iterable
from functools import lru_cache

import ifaddr

# Interfaces of containers, VMs and VPN tunnels: usable, but rarely the network a phone is on.
_VIRTUAL_PREFIXES = ("docker", "br-", "veth", "virbr", "vmnet", "vboxnet", "cni", "flannel", "podman", "lxc", "tun")

# How long a reading of the interfaces is used (they are read for every new connection).
REFRESH_SECONDS = 10

_ALL_IPV4 = "0.0.0.0"  # noqa: S104 (compared with, not bound to)
_ALL = ("0.0.0.0", "::", "")  # noqa: S104


def lan_addresses(*, ipv6: bool = True, adapters: Iterable[ifaddr.Adapter] | None = None) -> list[str]:
    """This machine's addresses other devices can use, best first: loopback and link-local left out,
    addresses in private (LAN) ranges first, IPv4 before IPv6, virtual interfaces (docker0 ...) last."""
    found: list[tuple[tuple[bool, bool, bool], str]] = []
    for adapter in ifaddr.get_adapters() if adapters is None else adapters:
        virtual = adapter.nice_name.startswith(_VIRTUAL_PREFIXES)
        for ip in adapter.ips:
            text = ip.ip if isinstance(ip.ip, str) else ip.ip[0]
            address = ipaddress.ip_address(text)
            if address.is_loopback or address.is_link_local or (address.version == 6 and not ipv6):
                continue
            rank = (virtual, not address.is_private, address.version == 6)
            if all(existing != str(address) for _, existing in found):
                found.append((rank, str(address)))
    return [address for _, address in sorted(found, key=lambda entry: entry[0])]


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address, IPv6 with or without brackets) names this machine only."""
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def reachable_hosts(listen_host: str, adapters: Iterable[ifaddr.Adapter] | None = None) -> list[str]:
    """The hosts other devices can use for a server listening on ``listen_host``, best first; none
    when it listens on loopback only."""
    if listen_host in _ALL:
        # 0.0.0.0 listens on IPv4 only, so only IPv4 addresses are worth offering.
        return lan_addresses(ipv6=listen_host != _ALL_IPV4, adapters=adapters)
    return [] if is_loopback(listen_host) else [listen_host]


def current_hosts(listen_host: str, now: Callable[[], float] = time.monotonic) -> list[str]:
    """``reachable_hosts`` read at most every ``REFRESH_SECONDS`` (a laptop changes networks while
    the server runs, and a burst of connections should not read the interfaces each time)."""
    return list(_hosts_in_window(listen_host, int(now() // REFRESH_SECONDS)))


@lru_cache(maxsize=2)
def _hosts_in_window(listen_host: str, window: int) -> tuple[str, ...]:
    return tuple(reachable_hosts(listen_host))


def url(scheme: str, host: str, port: int, root_path: str) -> str:
    """``http://host:port/root/``, IPv6 addresses in brackets."""
    bracketed = f"[{host}]" if ":" in host else host
    return f"{scheme}://{bracketed}:{port}{root_path}/"


def local_url(scheme: str, listen_host: str, port: int, root_path: str) -> str:
    """The URL to open on this machine itself."""
    host = "localhost" if listen_host in _ALL or is_loopback(listen_host) else listen_host
    return url(scheme, host, port, root_path)
