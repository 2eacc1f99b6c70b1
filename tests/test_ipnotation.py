"""VNET_PUBLICIPS and VNET_MACMAP notations."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from euca.core.ipnotation import int_to_ip, ip_to_int, netmask_bits, parse_macmap, parse_public_ips


def ips(text: str) -> list[str]:
    return [int_to_ip(i) for i in parse_public_ips(text)]


def test_the_three_public_ip_notations_mix() -> None:
    assert ips("10.0.0.5 10.1.0.0/30 10.2.0.250-254") == [
        "10.0.0.5", "10.1.0.1", "10.1.0.2", "10.2.0.250", "10.2.0.251", "10.2.0.252", "10.2.0.253", "10.2.0.254"]
    assert ips("10.3.0.1-10.3.0.3") == ["10.3.0.1", "10.3.0.2", "10.3.0.3"]
    assert ips("10.4.0.7/32") == ["10.4.0.7"]


@pytest.mark.parametrize(("text", "needle"), [
    ("10.0.0.1-10.0.2.1", "more than 256"),
    ("10.0.0.9-10.0.0.1", "ends before it starts"),
    ("10.0.0.1-300", "range"),
    ("10.0.0.0/20", "more than 2048"),
    ("127.0.0.5", "loopback"),
    ("10.0.0.0/31 10.0.0.1", "listed twice"),
    ("banana", "not an IPv4 address"),
])
def test_bad_public_ips_are_refused_with_the_token(text: str, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        parse_public_ips(text)


def test_macmap_pairs_keep_order_and_normalise_case() -> None:
    pairs = parse_macmap("AA:DD:11:CE:FF:ED=192.168.1.3 aa:dd:11:ce:ff:ee=192.168.1.4")
    assert pairs == [("aa:dd:11:ce:ff:ed", ip_to_int("192.168.1.3")), ("aa:dd:11:ce:ff:ee", ip_to_int("192.168.1.4"))]
    with pytest.raises(ValueError, match="mapped twice"):
        parse_macmap("AA:DD:11:CE:FF:ED=192.168.1.3 AA:DD:11:CE:FF:ED=192.168.1.4")
    with pytest.raises(ValueError, match="not a MAC=IP pair"):
        parse_macmap("AA:DD:11:CE:FF:ED")


def test_netmask_bits() -> None:
    assert netmask_bits("255.255.0.0") == 16
    assert netmask_bits("255.255.255.255") == 32
    assert netmask_bits("0.0.0.0") == 0


@given(st.integers(0, 2**32 - 1))
def test_conversions_agree_with_ipaddress(value: int) -> None:
    text = int_to_ip(value)
    assert text == str(ipaddress.IPv4Address(value))
    assert ip_to_int(text) == value


def _agrees_with_ipaddress(text: str) -> None:
    try:
        expected: int | None = int(ipaddress.IPv4Address(text.strip()))
    except ValueError:
        expected = None
    try:
        got: int | None = ip_to_int(text)
    except ValueError:
        got = None
    assert got == expected


@given(st.text(max_size=20))
def test_ip_to_int_accepts_exactly_what_ipaddress_accepts(text: str) -> None:
    _agrees_with_ipaddress(text)


@given(st.lists(st.one_of(st.integers(0, 300).map(str), st.sampled_from(["00", "01", "007", "", "x", "1 "])),
                min_size=3, max_size=5))
def test_dotted_lookalikes_agree_with_ipaddress(parts: list[str]) -> None:
    _agrees_with_ipaddress(".".join(parts))
