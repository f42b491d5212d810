"""Which addresses an outbound delivery may connect to, decided once per delivery.

A host name is resolved once and every address it resolves to is checked; the connection then goes to a
checked address (shared/outbound/pinned.py), so a name that answers a public address to the check and a
private one to the connection (DNS rebinding) cannot redirect a signed request into the network.

IPv6 forms that carry an IPv4 address are judged by that IPv4 address: IPv4-mapped (`::ffff:a.b.c.d`),
IPv4-compatible (`::a.b.c.d`), NAT64 (`64:ff9b::/96`, RFC 6052) and 6to4 (`2002::/16`, RFC 3056). The
local-use NAT64 prefix `64:ff9b:1::/48` (RFC 8215) translates into a private network and is refused.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from shared.settings import is_loopback_host

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Sequence[str]]

_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")


class DestinationRefused(Exception):
    """The destination is not acceptable. The message is safe to show to the job's submitter."""


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for, when it is one of the translation forms."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _IPV4_COMPATIBLE or address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


def is_public(address: Address) -> bool:
    """True for a globally routable unicast address, judging IPv4-in-IPv6 forms by their IPv4 address."""
    if isinstance(address, ipaddress.IPv6Address):
        if address in _NAT64_LOCAL:
            return False
        inner = embedded_ipv4(address)
        if inner is not None:
            return is_public(inner)
    return address.is_global and not address.is_multicast


def parse_address(text: str) -> Address:
    """An address from getaddrinfo or a URL host (drops an IPv6 zone id and brackets)."""
    return ipaddress.ip_address(text.strip("[]").split("%", 1)[0])


def system_resolver(host: str, port: int) -> list[str]:
    """The host's addresses from the system resolver, in its order (empty when it does not resolve)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return []
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True)
class Destination:
    """A URL and the address its connection must use (every address of the host passed the check)."""

    url: str
    host: str
    port: int
    address: str


def checked_destination(
    url: str, *, public_only: bool, allow_loopback: bool, resolve: Resolver | None = None
) -> Destination:
    """Resolve the URL's host once and check every address; raise `DestinationRefused` otherwise.

    `public_only=False` (an operator-configured receiver) still pins the connection but accepts private
    addresses; loopback needs `allow_loopback` and a loopback host name in both modes.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or 443
    if parts.scheme != "https" or not host:
        raise DestinationRefused("the destination must be an https URL")
    texts = (resolve or system_resolver)(host, port)
    if not texts:
        raise DestinationRefused("the destination host does not resolve")
    for text in texts:
        try:
            address = parse_address(text)
        except ValueError:
            raise DestinationRefused("the destination host resolves to an unusable address") from None
        if address.is_loopback:
            if allow_loopback and is_loopback_host(host):
                continue
            raise DestinationRefused("the destination host resolves to a loopback address")
        if public_only and not is_public(address):
            raise DestinationRefused(
                "the destination host resolves to a private, loopback or reserved address"
            )
        if address.is_unspecified or address.is_multicast:
            raise DestinationRefused("the destination host resolves to a reserved address")
    return Destination(url=url, host=host, port=port, address=parse_address(texts[0]).compressed)
