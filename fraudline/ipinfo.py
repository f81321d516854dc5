"""What an IP address says offline: its scope, registry country and known networks."""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

logger = logging.getLogger(__name__)

Scope = Literal[
    "public", "private", "loopback", "link_local", "multicast", "reserved", "unspecified"
]
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Networks known to anonymise their users, with what they are. Kept small and
# sourced on purpose: a false "anonymising" costs a good customer points.
# 185.220.100.0/22 is a block whose addresses run Tor exit relays, as the Tor
# Project's public list of exit addresses shows. This is a snapshot, not a live
# feed; a refreshed exit list can be passed to IpLookup instead.
KNOWN_ANONYMISING_NETWORKS: Mapping[str, str] = {
    "185.220.100.0/22": "Tor exit relays",
}

# RFC 1918 and unique local IPv6 (RFC 4193): addresses inside someone's network.
_PRIVATE_NETWORKS: Mapping[int, tuple[IpNetwork, ...]] = {
    4: tuple(
        ipaddress.IPv4Network(cidr) for cidr in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")
    ),
    6: (ipaddress.IPv6Network("fc00::/7"),),
}


@dataclass(frozen=True)
class IpFacts:
    """What is known about one address without asking anyone.

    Attributes:
        version: 4 or 6.
        scope: "public", or why the address cannot locate anyone (private,
            loopback, link_local, multicast, reserved, unspecified).
        country_code: ISO alpha-2 of the registry allocation; None when not public
            or not allocated.
        anonymiser: what anonymising network the address belongs to, if any.
        masked: the address with its host part hidden, safe to log and show.
    """

    version: int
    scope: Scope
    country_code: str | None
    anonymiser: str | None
    masked: str

    @property
    def is_public(self) -> bool:
        return self.scope == "public"


def mask(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """The /24 (IPv4) or /48 (IPv6) an address is in: locates without identifying."""
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


def scope_of(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> Scope:
    """Why an address is not an ordinary public one, or "public"."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return scope_of(address.ipv4_mapped)
    # Order matters: loopback and link-local are also "private" to ipaddress.
    if address.is_unspecified:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link_local"
    if address.is_multicast:
        return "multicast"
    if any(address in network for network in _PRIVATE_NETWORKS[address.version]):
        return "private"
    # The rest of what is not global: documentation, benchmarking, shared
    # carrier NAT (100.64.0.0/10), the old class E block and the like.
    if address.is_reserved or not address.is_global:
        return "reserved"
    return "public"


class IpLookup:
    """Scope, country (RIR allocation, from `iptocc`) and anonymiser of addresses.

    Args:
        anonymising_networks: CIDR -> what it is; defaults to
            KNOWN_ANONYMISING_NETWORKS.
        country_lookup: maps addresses to ISO codes in one call; defaults to
            `iptocc.country_code`, imported on first use.
    """

    def __init__(
        self,
        anonymising_networks: Mapping[str, str] | None = None,
        country_lookup: Callable[[list[str]], Sequence[str | None]] | None = None,
    ) -> None:
        networks = (
            KNOWN_ANONYMISING_NETWORKS if anonymising_networks is None else anonymising_networks
        )
        self._anonymisers: list[tuple[IpNetwork, str]] = [
            (ipaddress.ip_network(cidr), label) for cidr, label in networks.items()
        ]
        self._country_lookup = country_lookup

    def lookup(self, address: str) -> IpFacts:
        return self.lookup_many([address])[0]

    def lookup_many(self, addresses: Iterable[str]) -> list[IpFacts]:
        """Facts for each address, in order; one country lookup for the whole batch.

        Raises:
            ValueError: an address is not IPv4 or IPv6.
        """
        parsed = [ipaddress.ip_address(text) for text in addresses]
        public = [str(_unmapped(a)) for a in parsed if scope_of(a) == "public"]
        countries = iter(self._countries(public) if public else [])
        facts = []
        for original in parsed:
            address = _unmapped(original)
            scope = scope_of(address)
            facts.append(
                IpFacts(
                    version=address.version,
                    scope=scope,
                    country_code=next(countries) if scope == "public" else None,
                    anonymiser=self._anonymiser(address),
                    masked=mask(address),
                )
            )
        return facts

    def _countries(self, addresses: list[str]) -> Sequence[str | None]:
        if self._country_lookup is None:
            from iptocc import country_code

            self._country_lookup = country_code
        return self._country_lookup(addresses)

    def _anonymiser(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
        for network, label in self._anonymisers:
            if address.version == network.version and address in network:
                return label
        return None


def _unmapped(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address
