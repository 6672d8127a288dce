"""Where other devices reach the server: the machine's addresses from its interfaces, the URLs and QR
code printed at startup, PUBLIC_URL, and what the browser is told in ``config``."""

from __future__ import annotations

import fcntl
import ipaddress
import socket
import struct

import ifaddr
import pytest

from server.addresses import is_loopback, lan_addresses, local_url, reachable_hosts
from server.app import create_app
from server.config import ConfigError, Settings, load_settings
from server.startup import banner, qr_code
from tests.peers import in_process

pytestmark = pytest.mark.anyio

ALL_IPV4 = "0.0.0.0"  # noqa: S104 (listened on by default)


def adapter(name: str, *addresses: str) -> ifaddr.Adapter:
    """An interface as ifaddr reports it (IPv6 addresses as (address, flowinfo, scope_id))."""
    ips = [
        ifaddr.IP(address if ":" not in address else (address, 0, 0), 24 if ":" not in address else 64, name)
        for address in addresses
    ]
    return ifaddr.Adapter(name, name, ips)


# A laptop on Wi-Fi running Docker, with a VPN and a public address on its cable.
LAPTOP = [
    adapter("lo", "127.0.0.1", "::1"),
    adapter("docker0", "172.17.0.1"),
    adapter("wlp2s0", "fd12:3456::5", "fe80::1", "192.168.1.23"),
    adapter("tun0", "10.8.0.2"),
    adapter("enp3s0", "81.2.69.160"),
]


def test_lan_addresses_come_from_the_interfaces_best_first() -> None:
    assert lan_addresses(adapters=LAPTOP) == [
        "192.168.1.23",  # a private address on a real interface
        "fd12:3456::5",
        "81.2.69.160",  # public: reachable from this network too, but rarely what a phone here uses
        "172.17.0.1",  # docker0 and the VPN last
        "10.8.0.2",
    ]
    assert lan_addresses(ipv6=False, adapters=LAPTOP) == ["192.168.1.23", "81.2.69.160", "172.17.0.1", "10.8.0.2"]


def test_a_machine_with_only_loopback_has_no_lan_address() -> None:
    assert lan_addresses(adapters=[adapter("lo", "127.0.0.1", "::1")]) == []


def test_reachable_hosts_follow_the_listening_address() -> None:
    assert reachable_hosts(ALL_IPV4, LAPTOP)[0] == "192.168.1.23"
    assert "fd12:3456::5" not in reachable_hosts(ALL_IPV4, LAPTOP)  # 0.0.0.0 is IPv4 only
    assert "fd12:3456::5" in reachable_hosts("::", LAPTOP)
    assert reachable_hosts("127.0.0.1", LAPTOP) == []
    assert reachable_hosts("localhost", LAPTOP) == []
    assert reachable_hosts("192.168.1.23", LAPTOP) == ["192.168.1.23"]
    assert reachable_hosts("movies.lan", LAPTOP) == ["movies.lan"]


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        *[("localhost", True), ("app.localhost", True), ("127.0.1.1", True), ("[::1]", True), ("::1", True)],
        *[("192.168.1.23", False), ("movies.lan", False), ("[2001:db8::5]", False)],
    ],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def primary_ipv4_addresses() -> set[str]:
    """Each interface's IPv4 address as the kernel's older interface (ioctl SIOCGIFADDR) gives it:
    a check on ifaddr's getifaddrs() that needs no tool and sends nothing."""
    found = set()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        for _, name in socket.if_nameindex():
            try:
                answer = fcntl.ioctl(probe.fileno(), SIOCGIFADDR, struct.pack("256s", name.encode()[:15]))
            except OSError:  # no IPv4 address on this interface
                continue
            found.add(socket.inet_ntoa(answer[20:24]))
    return {address for address in found if not ipaddress.ip_address(address).is_loopback}


SIOCGIFADDR = 0x8915


def test_the_real_interfaces_are_read() -> None:
    assert primary_ipv4_addresses() <= set(lan_addresses(ipv6=False))
    assert all(not ipaddress.ip_address(address).is_loopback for address in lan_addresses())


def settings(**env: str) -> Settings:
    return load_settings("/dev/null", env)


def test_the_banner_shows_this_computer_the_lan_and_a_qr_code_of_the_lan_url() -> None:
    text = banner(settings(ROOT_PATH="/mm"), 8000, LAPTOP)
    lines = text.splitlines()
    assert lines[1] == "  On this computer:   http://localhost:8000/mm/"
    assert lines[2] == "  On your network:    http://192.168.1.23:8000/mm/"
    assert "Scan with a phone to open http://192.168.1.23:8000/mm/" in lines
    assert text.endswith(qr_code("http://192.168.1.23:8000/mm/"))


def test_the_banner_shares_public_url_when_set() -> None:
    text = banner(settings(PUBLIC_URL="https://movies.example.com/mm"), 8000, LAPTOP)
    assert "  Public address:     https://movies.example.com/mm/" in text.splitlines()
    assert text.endswith(qr_code("https://movies.example.com/mm/"))


def test_the_banner_says_when_only_this_computer_can_open_it() -> None:
    text = banner(settings(HOST="127.0.0.1"), 8000, LAPTOP)
    assert "http://localhost:8000/" in text
    assert "Only this computer can open it (HOST=127.0.0.1)" in text
    assert "█" not in text  # no QR code of an address nobody else can open


def test_an_ipv6_listening_address_is_bracketed() -> None:
    assert local_url("https", "2001:db8::5", 8443, "") == "https://[2001:db8::5]:8443/"


@pytest.mark.parametrize(
    ("value", "expected"),
    [("https://movies.example.com", "https://movies.example.com/"), ("http://host:8080/mm/", "http://host:8080/mm/")],
)
def test_public_url_is_the_apps_address_ending_in_a_slash(value: str, expected: str) -> None:
    assert settings(PUBLIC_URL=value).public_url == expected


@pytest.mark.parametrize("value", ["movies.example.com", "ftp://movies.example.com", "https://m.example.com/?a=1"])
def test_a_bad_public_url_names_the_setting(value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        settings(PUBLIC_URL=value)
    assert caught.value.problems[0].startswith("public_url (PUBLIC_URL): must be")


async def test_the_browser_is_told_public_url_else_the_lan_addresses() -> None:
    async with in_process(create_app(settings(PUBLIC_URL="https://movies.example.com/"))) as connect:
        config = (await connect()).config
    assert config["publicUrl"] == "https://movies.example.com/"
    assert "lanAddresses" not in config  # not needed: nothing about the inside of the network leaves it
    async with in_process(create_app(settings(HOST="127.0.0.1"))) as connect:
        assert (await connect()).config["lanAddresses"] == []
