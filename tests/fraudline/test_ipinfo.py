"""Tests of offline IP facts: scope, registry country, anonymisers."""

from __future__ import annotations

import ipaddress

import pytest

from fraudline.ipinfo import IpLookup, mask, scope_of


@pytest.mark.parametrize(
    ("address", "scope"),
    [
        ("192.168.1.100", "private"),
        ("10.0.0.12", "private"),
        ("172.20.1.1", "private"),
        ("fd00::1", "private"),
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("169.254.10.1", "link_local"),
        ("fe80::1", "link_local"),
        ("224.0.0.1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("100.64.0.1", "reserved"),
        ("240.0.0.1", "reserved"),
        ("2001:db8::1", "reserved"),
        ("172.32.0.1", "public"),
        ("8.8.8.8", "public"),
        ("::ffff:10.1.2.3", "private"),
    ],
)
def test_scope_names_why_an_address_cannot_locate(address: str, scope: str) -> None:
    assert scope_of(ipaddress.ip_address(address)) == scope


def test_countries_come_from_registry_data_for_ipv4_and_ipv6() -> None:
    facts = IpLookup().lookup_many(["8.8.8.8", "2001:4860:4860::8888", "185.220.101.5"])

    assert [f.country_code for f in facts] == ["US", "US", "DE"]
    assert [f.version for f in facts] == [4, 6, 4]


def test_private_address_has_no_country_and_is_not_public() -> None:
    facts = IpLookup().lookup("192.168.1.100")

    assert (facts.scope, facts.country_code, facts.is_public) == ("private", None, False)


def test_tor_exit_block_is_anonymising() -> None:
    facts = IpLookup().lookup("185.220.101.5")

    assert facts.anonymiser == "Tor exit relays"
    assert IpLookup().lookup("185.220.104.5").anonymiser is None


def test_ipv4_mapped_ipv6_is_read_as_its_ipv4_address() -> None:
    facts = IpLookup().lookup("::ffff:185.220.101.5")

    assert (facts.version, facts.anonymiser, facts.masked) == (
        4,
        "Tor exit relays",
        "185.220.101.0/24",
    )


def test_mask_hides_the_host_part() -> None:
    assert mask(ipaddress.ip_address("203.0.113.77")) == "203.0.113.0/24"
    assert mask(ipaddress.ip_address("2001:4860:4860::8888")) == "2001:4860:4860::/48"


def test_batch_asks_for_countries_once_and_only_for_public_addresses() -> None:
    calls: list[list[str]] = []

    def fake_countries(addresses: list[str]) -> list[str | None]:
        calls.append(addresses)
        return ["FR" for _ in addresses]

    lookup = IpLookup(country_lookup=fake_countries)
    facts = lookup.lookup_many(["8.8.8.8", "10.0.0.1", "1.1.1.1"])

    assert calls == [["8.8.8.8", "1.1.1.1"]]
    assert [f.country_code for f in facts] == ["FR", None, "FR"]


def test_custom_anonymising_networks_replace_the_default() -> None:
    lookup = IpLookup(anonymising_networks={"203.0.113.0/24": "test VPN"})

    assert lookup.lookup("203.0.113.9").anonymiser == "test VPN"
    assert lookup.lookup("185.220.101.5").anonymiser is None


def test_invalid_address_raises_value_error() -> None:
    with pytest.raises(ValueError, match="999.1.1.1"):
        IpLookup().lookup("999.1.1.1")
