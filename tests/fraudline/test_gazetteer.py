"""Tests of place resolution and distances."""

from __future__ import annotations

import pytest

from fraudline.errors import ConfigError
from fraudline.gazetteer import Gazetteer, distance_km, fold

BOSTON = (42.3601, -71.0589)
DALLAS = (32.7767, -96.7970)
SEATTLE = (47.6062, -122.3321)


@pytest.fixture(scope="module")
def gazetteer() -> Gazetteer:
    return Gazetteer()


@pytest.mark.parametrize(
    ("text", "name", "country", "admin1", "lat", "lon"),
    [
        ("New York, NY", "New York City", "US", "NY", 40.71427, -74.00597),
        ("New York", "New York City", "US", "NY", 40.71427, -74.00597),
        ("Seattle, WA", "Seattle", "US", "WA", 47.60621, -122.33207),
        ("Los Angeles, CA", "Los Angeles", "US", "CA", 34.05223, -118.24368),
        ("Moscow, Russia", "Moscow", "RU", "48", 55.75204, 37.61781),
        ("Moscow, RU", "Moscow", "RU", "48", 55.75204, 37.61781),
        ("Boston, MA", "Boston", "US", "MA", 42.35843, -71.05977),
        ("São Paulo", "São Paulo", "BR", "27", -23.5475, -46.63611),
        ("Sao Paulo", "São Paulo", "BR", "27", -23.5475, -46.63611),
        ("Saint Petersburg, FL", "St. Petersburg", "US", "FL", 27.77086, -82.67927),
        ("Paris, TX", "Paris", "US", "TX", 33.66094, -95.55551),
        ("Paris, Texas", "Paris", "US", "TX", 33.66094, -95.55551),
        ("Paris, France", "Paris", "FR", "11", 48.85341, 2.3488),
        ("Paris, FR", "Paris", "FR", "11", 48.85341, 2.3488),
        ("Paris, FRA", "Paris", "FR", "11", 48.85341, 2.3488),
        ("Springfield, IL", "Springfield", "US", "IL", 39.80172, -89.64371),
        ("Toronto, ON", "Toronto", "CA", "08", 43.70643, -79.39864),
        ("Tbilisi, Georgia", "Tbilisi", "GE", "51", 41.69143, 44.83412),
        ("Athens, Georgia", "Athens", "US", "GA", 33.96095, -83.37794),
        ("München", "Munich", "DE", "02", 48.13743, 11.57549),
        ("  boston ,  massachusetts , usa ", "Boston", "US", "MA", 42.35843, -71.05977),
    ],
)
def test_resolve_names_the_expected_city(
    gazetteer: Gazetteer,
    text: str,
    name: str,
    country: str,
    admin1: str,
    lat: float,
    lon: float,
) -> None:
    place = gazetteer.resolve(text)

    assert place is not None
    assert (place.name, place.country_code, place.admin1) == (name, country, admin1)
    assert (place.latitude, place.longitude) == pytest.approx((lat, lon))
    assert place.ambiguous is False


def test_saint_petersburg_without_state_is_russia_and_marked_ambiguous(
    gazetteer: Gazetteer,
) -> None:
    place = gazetteer.resolve("St. Petersburg")

    assert place is not None
    assert (place.country_code, place.population) == ("RU", 5351935)
    assert (place.ambiguous, place.resolution) == (True, "population")


def test_bare_springfield_takes_most_populous_without_context(gazetteer: Gazetteer) -> None:
    place = gazetteer.resolve("Springfield")

    assert place is not None
    assert (place.admin1, place.population) == ("MO", 170188)
    assert (place.ambiguous, place.resolution) == (True, "population")


def test_bare_springfield_takes_the_one_nearest_the_customer(gazetteer: Gazetteer) -> None:
    place = gazetteer.resolve("Springfield", hints=[SEATTLE, BOSTON])

    assert place is not None
    assert (place.admin1, place.latitude) == ("MA", pytest.approx(42.10148))
    assert (place.ambiguous, place.resolution) == (True, "context")


def test_bare_paris_near_dallas_is_paris_texas(gazetteer: Gazetteer) -> None:
    place = gazetteer.resolve("Paris", hints=[DALLAS])

    assert place is not None
    assert (place.country_code, place.admin1, place.resolution) == ("US", "TX", "context")


def test_bare_moscow_stays_in_russia_even_near_moscow_idaho(gazetteer: Gazetteer) -> None:
    # Moscow, ID has 25 k people, 0.24% of Moscow, RU: too small to win on nearness.
    place = gazetteer.resolve("Moscow", hints=[SEATTLE])

    assert place is not None
    assert (place.country_code, place.resolution) == ("RU", "population")


@pytest.mark.parametrize(
    "text", ["Xyzzyville", "Springfield, Narnia", "Xq", "Paris, CA", ",", "Online"]
)
def test_unknown_place_is_none(gazetteer: Gazetteer, text: str) -> None:
    assert gazetteer.resolve(text) is None


def test_coordinates_keep_their_value_and_take_the_nearest_city_name(
    gazetteer: Gazetteer,
) -> None:
    place = gazetteer.resolve("40.7128,-74.0060")

    assert place is not None
    assert (place.latitude, place.longitude) == (40.7128, -74.006)
    assert (place.name, place.country_code, place.resolution) == (
        "New York City",
        "US",
        "coordinates",
    )


def test_coordinates_at_sea_have_no_country(gazetteer: Gazetteer) -> None:
    place = gazetteer.resolve("0.0, -30.0")

    assert place is not None
    assert (place.name, place.country_code, place.population) == ("0.0000,-30.0000", None, 0)


def test_coordinates_out_of_range_are_unresolved(gazetteer: Gazetteer) -> None:
    assert gazetteer.resolve("95.0,10.0") is None


def test_label_shows_state_in_the_us_and_country_elsewhere(gazetteer: Gazetteer) -> None:
    seattle = gazetteer.resolve("Seattle, WA")
    moscow = gazetteer.resolve("Moscow, Russia")

    assert seattle is not None and moscow is not None
    assert (seattle.label, moscow.label) == ("Seattle, WA, US", "Moscow, RU")


def test_country_name_reads_iso_codes(gazetteer: Gazetteer) -> None:
    assert gazetteer.country_name("ru") == "Russia"
    assert gazetteer.country_name("ZZ") is None


def test_new_york_to_moscow_is_7510_km() -> None:
    assert distance_km(40.71427, -74.00597, 55.75204, 37.61781) == pytest.approx(7510.4, abs=0.1)


def test_distance_across_the_date_line_takes_the_short_way() -> None:
    # Suva (Fiji, 178.4 E) to Apia (Samoa, 171.8 W): 1,152 km, not 9,800 km.
    assert distance_km(-18.13683, 178.42531, -13.83333, -171.76666) == pytest.approx(
        1152.1, abs=0.1
    )


def test_fold_merges_accents_case_and_saint_abbreviations() -> None:
    assert fold("São Paulo") == fold("SAO PAULO") == "sao paulo"
    assert fold("St. Petersburg") == fold("Saint-Petersburg") == "saint petersburg"


def test_unknown_population_floor_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="min_population=2000"):
        Gazetteer(min_population=2000)


def test_index_is_built_once_per_instance(gazetteer: Gazetteer) -> None:
    cities = gazetteer._cities
    gazetteer.load()

    assert gazetteer._cities is cities
    assert gazetteer.city_count == len(cities) > 30_000
