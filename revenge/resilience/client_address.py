"""The client address behind trusted proxies (resilience.md §5): X-Forwarded-For is believed only
when the peer is a configured proxy, walked right to left past other trusted proxies."""
from __future__ import annotations

import ipaddress
from typing import Iterable

IP = ipaddress.IPv4Address | ipaddress.IPv6Address


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

    def resolve(self, peer: str | None, forwarded_for: list[bytes]) -> str:
        ip = parse_ip(peer or "")
        if ip is None:
            return peer or "unknown"
        if not self.networks or not self.trusted(ip):
            return str(ip)
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


def bucket_key(address: str, ipv6_prefix: int) -> str:
    """IPv6 clients are keyed by their prefix (one household, one bucket)."""
    ip = parse_ip(address)
    if isinstance(ip, ipaddress.IPv6Address):
        return str(ipaddress.ip_network(f"{ip}/{ipv6_prefix}", strict=False).network_address) + f"/{ipv6_prefix}"
    return address
