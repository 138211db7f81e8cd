"""Which network addresses a fetch of a remote source may connect to (the SSRF rules).

Judged on the address actually connected to, after resolution: a name resolving to an
internal address is refused like the address itself, and so is every spelling of one
(127.1, 2130706433, 0x7f000001, [::ffff:127.0.0.1]: the resolver turns each into the
address it means before it is judged).

- loopback (127.0.0.0/8, ::1) and unspecified (0.0.0.0/8, ::, which reach this machine):
  only with SOURCE_HTTP_ALLOW_LOOPBACK;
- private (RFC 1918, fc00::/7, shared 100.64.0.0/10 and other non-global unicast):
  only with SOURCE_HTTP_ALLOW_PRIVATE;
- link-local (169.254.0.0/16, where cloud metadata answers; fe80::/10), multicast,
  broadcast and reserved: never.
IPv6 forms that carry an IPv4 address (mapped ::ffff:a.b.c.d, 6to4, Teredo, NAT64
64:ff9b::/96) are judged by the IPv4 address they carry.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")


@dataclass(frozen=True)
class AddressPolicy:
    allow_loopback: bool = False
    allow_private: bool = False

    def refusal(self, address: str) -> str | None:
        """Why `address` may not be connected to, or None when it may."""
        try:
            ip: IPAddress = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return "not an IP address"
        ip = embedded_ipv4(ip)
        if ip.is_loopback or ip.is_unspecified or ip in _THIS_NETWORK:
            return None if self.allow_loopback else "a loopback address"
        if ip.is_link_local:
            return "a link-local address"
        if ip.is_multicast:
            return "a multicast address"
        if ip.is_reserved or ip == ipaddress.IPv4Address("255.255.255.255"):
            return "a reserved address"
        if ip.is_private or not ip.is_global:
            return None if self.allow_private else "a private address"
        return None


def embedded_ipv4(ip: IPAddress) -> IPAddress:
    """The IPv4 address an IPv6 address carries (mapped, 6to4, Teredo, NAT64), else itself."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip.sixtofour is not None:
            return ip.sixtofour
        if ip.teredo is not None:
            return ip.teredo[1]
        if ip in _NAT64:
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip


def host_allowed(host: str, allowed: list[str]) -> bool:
    """`host` (the URL's parsed host, lower case) against an allow-list of names, where
    "*.example.com" also allows every subdomain. An empty list allows any host."""
    if not allowed:
        return True
    host = host.lower().rstrip(".")
    for entry in allowed:
        if entry.startswith("*."):
            if host == entry[2:] or host.endswith(entry[1:]):
                return True
        elif host == entry:
            return True
    return False
