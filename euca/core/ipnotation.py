"""The address notations of ``eucalyptus.conf``: dotted quads, netmasks, VNET_PUBLICIPS and VNET_MACMAP.

Addresses are handled as ints (host byte order) because that is what the allocators in
``pyx.netalloc`` count in. Every parser raises ``ValueError`` with a message that names the bad
token; the config loader adds the variable and the line.
"""

from __future__ import annotations

import functools
import ipaddress
import re

_MAC = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")
# Eucalyptus caps a VNET_PUBLICIPS range ("a-b") at 256 addresses and the whole pool at 2048 (2.0+).
MAX_RANGE = 256
MAX_PUBLIC_IPS = 2048


def ip_to_int(text: str) -> int:
    """A dotted quad as an int; anything else is a ValueError naming it.

    Written out by hand because the cluster converts an address per instance start and stop, and
    ``ipaddress.IPv4Address`` costs ten times as much.
    """
    parts = text.strip().split(".")
    if len(parts) == 4:
        value = 0
        for part in parts:
            # Decimal digits only, no leading zeros (which some tools read as octal), at most 255.
            if not (part.isdigit() and part.isascii()) or (len(part) > 1 and part[0] == "0") or len(part) > 3:
                break
            octet = int(part)
            if octet > 255:
                break
            value = (value << 8) | octet
        else:
            return value
    raise ValueError(f"{text!r} is not an IPv4 address")


@functools.lru_cache(maxsize=65536)
def int_to_ip(value: int) -> str:
    """An int as a dotted quad (cached: describes convert the same addresses again and again)."""
    if not 0 <= value <= 0xFFFFFFFF:
        raise ValueError(f"{value} is not an IPv4 address")
    return f"{value >> 24}.{(value >> 16) & 255}.{(value >> 8) & 255}.{value & 255}"


def netmask_bits(text: str) -> int:
    """The prefix length of a dotted netmask ("255.255.0.0" -> 16); non-contiguous masks are refused."""
    mask = ip_to_int(text)
    inverted = (~mask) & 0xFFFFFFFF
    if inverted & (inverted + 1):
        raise ValueError(f"{text!r} is not a contiguous netmask")
    return 32 - inverted.bit_length()


def parse_public_ips(text: str) -> list[int]:
    """Expand VNET_PUBLICIPS: space-separated single IPs, ``a.b.c.d/N`` (every host of the block) and
    ``a-b`` ranges (at most 256 addresses each; the end may be a full address or its last octet).

    Loopback, duplicates and pools larger than 2048 addresses are refused.
    """
    out: list[int] = []
    seen: set[int] = set()
    for token in text.split():
        if "/" in token:
            try:
                net = ipaddress.IPv4Network(token, strict=False)
            except ValueError:
                raise ValueError(f"{token!r} is not an a.b.c.d/N block") from None
            hosts = [int(h) for h in net.hosts()] if net.prefixlen < 31 else [int(a) for a in net]
            if len(hosts) > MAX_PUBLIC_IPS:
                raise ValueError(f"{token!r} holds {len(hosts)} addresses, more than {MAX_PUBLIC_IPS}")
        elif "-" in token:
            start_text, _, end_text = token.partition("-")
            start = ip_to_int(start_text)
            end = ip_to_int(end_text) if "." in end_text else _last_octet(start, end_text, token)
            if end < start:
                raise ValueError(f"{token!r}: the range ends before it starts")
            if end - start + 1 > MAX_RANGE:
                raise ValueError(f"{token!r} spans {end - start + 1} addresses, more than {MAX_RANGE}")
            hosts = list(range(start, end + 1))
        else:
            hosts = [ip_to_int(token)]
        for ip in hosts:
            if ipaddress.IPv4Address(ip).is_loopback:
                raise ValueError(f"{token!r} includes the loopback address {int_to_ip(ip)}")
            if ip in seen:
                raise ValueError(f"{int_to_ip(ip)} is listed twice")
            seen.add(ip)
            out.append(ip)
    if len(out) > MAX_PUBLIC_IPS:
        raise ValueError(f"{len(out)} public addresses, more than {MAX_PUBLIC_IPS}")
    return out


def _last_octet(start: int, text: str, token: str) -> int:
    if not text.isdigit() or int(text) > 255:
        raise ValueError(f"{token!r} is not an a.b.c.d-e or a.b.c.d-a.b.c.e range")
    return (start & 0xFFFFFF00) | int(text)


def normalise_mac(text: str) -> str:
    """``AA:DD:11:CE:FF:ED`` -> ``aa:dd:11:ce:ff:ed``; anything but six hex pairs is refused."""
    if not _MAC.match(text):
        raise ValueError(f"{text!r} is not a MAC address (six hex pairs separated by ':')")
    return text.lower()


def parse_macmap(text: str) -> list[tuple[str, int]]:
    """STATIC mode's VNET_MACMAP: ``MAC=IP`` pairs separated by spaces, in the order given."""
    pairs: list[tuple[str, int]] = []
    macs: set[str] = set()
    ips: set[int] = set()
    for token in text.split():
        mac_text, sep, ip_text = token.partition("=")
        if not sep:
            raise ValueError(f"{token!r} is not a MAC=IP pair")
        mac, ip = normalise_mac(mac_text), ip_to_int(ip_text)
        if mac in macs:
            raise ValueError(f"MAC {mac} is mapped twice")
        if ip in ips:
            raise ValueError(f"IP {int_to_ip(ip)} is mapped twice")
        macs.add(mac)
        ips.add(ip)
        pairs.append((mac, ip))
    return pairs
