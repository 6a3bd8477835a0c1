"""The client address behind trusted proxies (resilience.md §5): X-Forwarded-For is believed only
when the peer is a configured proxy, walked right to left past other trusted proxies."""
from __future__ import annotations

import functools
import ipaddress
from typing import Iterable

IP = ipaddress.IPv4Address | ipaddress.IPv6Address


@functools.lru_cache(maxsize=8192)  # every request parses its peer; clients repeat, ip objects are immutable
def parse_ip(text: str) -> IP | None:
    t = text.strip()
    if t.startswith("[") and "]" in t:
        t = t[1:t.index("]")]
    elif t.count(":") == 1:  # IPv4 with a port
        t = t.split(":", 1)[0]
    t = t.split("%", 1)[0]
    try:
        ip = ipaddress.ip_address(t)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


@functools.lru_cache(maxsize=8192)
def peer_address(peer: str) -> str:
    """The peer as a normalised address string (mapped IPv4 unwrapped), or as given when unparsable."""
    ip = parse_ip(peer)
    return str(ip) if ip is not None else (peer or "unknown")


class ClientAddress:
    def __init__(self, trusted: Iterable[str]) -> None:
        self.networks = []
        for cidr in trusted:
            try:
                self.networks.append(ipaddress.ip_network(cidr, strict=False))
            except ValueError:
                continue

    def trusted(self, ip: IP) -> bool:
        return any(ip in n for n in self.networks)

    def resolve(self, peer: str | None, headers: Iterable[tuple[bytes, bytes]]) -> str:
        """The client address for a connection from ``peer`` with these request headers."""
        if not self.networks:
            return peer_address(peer or "")
        ip = parse_ip(peer or "")
        if ip is None or not self.trusted(ip):
            return peer_address(peer or "")
        forwarded_for = [v for k, v in headers if k == b"x-forwarded-for"]
        entries = [e.strip() for v in forwarded_for for e in v.decode("latin-1").split(",") if e.strip()]
        client = ip
        for entry in reversed(entries):
            parsed = parse_ip(entry)
            if parsed is None:
                break
            client = parsed
            if not self.trusted(parsed):
                break
        return str(client)


@functools.lru_cache(maxsize=8192)
def bucket_key(address: str, ipv6_prefix: int) -> str:
    """IPv6 clients are keyed by their prefix (one household, one bucket)."""
    ip = parse_ip(address)
    if isinstance(ip, ipaddress.IPv6Address):
        return str(ipaddress.ip_network(f"{ip}/{ipv6_prefix}", strict=False).network_address) + f"/{ipv6_prefix}"
    return address
