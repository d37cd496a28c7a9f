"""Routes, ETAs and warehouse allocation from the corridor data."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from livecommerce.errors import AppError
from livecommerce.logistics.allocation import Shortage, allocate
from livecommerce.logistics.network import (
    DeliveryNotOffered,
    DestinationNotServed,
    Network,
)


def legs(
    network: Network, warehouse: str, country: str, city: str, delivery: str = "courier"
) -> list[tuple[str, str, str, int]]:
    route = network.route(warehouse, network.destination(country, city, delivery))
    assert route is not None
    return [
        (leg.mode, leg.origin.name("en"), leg.destination.name("en"), leg.days)
        for leg in route.legs
    ]


def test_duisburg_to_tashkent_goes_by_rail_via_khorgos(network: Network) -> None:
    """Duisburg -> Khorgos by rail (15 days), Khorgos -> Almaty -> Tashkent by road."""
    assert legs(network, "DEDUI", "UZ", "Tashkent") == [
        ("rail", "Duisburg", "Khorgos", 15),
        ("road", "Khorgos", "Almaty", 1),
        ("road", "Almaty", "Tashkent", 2),
        ("courier", "Tashkent", "Tashkent", 1),
    ]


def test_cities_are_found_in_any_language(network: Network) -> None:
    """Ташкент, Toshkent and TASHKENT are one place; names come back in the asked language."""
    for spelling in ("Ташкент", "toshkent", " TASHKENT "):
        assert network.destination("UZ", spelling).city.key == "tashkent"
    assert network.destination("KZ", "Алма-Ата").city.name("uz") == "Olmaota"


def test_fastest_route_wins(network: Network) -> None:
    """Duisburg -> Moscow takes the 9-day rail line, not the 22 days through Khorgos."""
    route = network.route("DEDUI", network.destination("RU", "Москва"))
    assert route is not None and route.days == 1 + 9 + 1
    assert route.shipping_cost(1000) == Decimal("9.30")


def test_unlisted_city_leaves_the_network_at_the_country_hub(network: Network) -> None:
    """A city off the network gets a road leg from the country's hub."""
    assert legs(network, "KZALA", "KZ", "Karaganda") == [("road", "Almaty", "Karaganda", 2)]


def test_eta_is_a_date_in_the_destination_time_zone(network: Network) -> None:
    """An order at 20:30 UTC is already the next day in Almaty (UTC+5)."""
    destination = network.destination("KZ", "Almaty")
    route = network.route("KZALA", destination)
    assert route is not None and route.days == 2
    assert route.eta(datetime(2026, 11, 23, 20, 30, tzinfo=UTC), destination) == date(2026, 11, 26)


def test_customs_only_across_a_union_border(network: Network) -> None:
    """Almaty -> Moscow stays inside the EAEU; Duisburg -> Almaty and Almaty -> Tashkent cross."""

    def crosses(warehouse: str, country: str, city: str) -> bool:
        return network.crosses_border(warehouse, network.destination(country, city))

    assert not crosses("KZALA", "RU", "Moscow")
    assert not crosses("KZALA", "KG", "Bishkek")
    assert crosses("DEDUI", "KZ", "Almaty")
    assert crosses("KZALA", "UZ", "Tashkent")


@pytest.mark.parametrize(
    ("warehouse", "country", "city", "days", "border"),
    [
        ("DEDUI", "RU", "Moscow", 10, "moscow"),  # handling 1 + rail 9
        ("DEDUI", "KZ", "Almaty", 16, "khorgos"),  # handling 1 + rail 15 to Khorgos
        ("DEDUI", "KG", "Bishkek", 16, "khorgos"),  # Khorgos is already inside the EAEU
        ("DEDUI", "RU", "Kazan", 10, "moscow"),  # off the network: through the hub
        ("KZALA", "UZ", "Tashkent", 3, "tashkent"),  # handling 1 + road 2
        ("KZALA", "RU", "Moscow", None, None),  # inside the union: no border
    ],
)
def test_border_is_the_first_node_inside_the_union(
    network: Network, warehouse: str, country: str, city: str, days: int | None, border: str | None
) -> None:
    """The border date counts handling and the legs up to the first node in the union."""
    route = network.route(warehouse, network.destination(country, city))
    assert route is not None
    assert (route.border_days, route.border) == (days, border)


def test_border_date_is_a_day_in_the_destination_time_zone(network: Network) -> None:
    """20 Jun 2026 21:30 UTC is already 21 Jun in Moscow: + 10 days = 1 Jul 2026."""
    moscow = network.destination("RU", "Moscow")
    route = network.route("DEDUI", moscow)
    assert route is not None
    assert route.border_date(datetime(2026, 6, 20, 21, 30, tzinfo=UTC), moscow) == date(2026, 7, 1)
    assert route.border_date(datetime(2026, 6, 20, 20, 30, tzinfo=UTC), moscow) == date(2026, 6, 30)


def test_unserved_country_is_a_clear_error(network: Network) -> None:
    """A destination outside the corridor is a 422 naming the country."""
    with pytest.raises(DestinationNotServed) as caught:
        network.destination("BR", "Rio")
    assert isinstance(caught.value, AppError) and caught.value.status == 422
    assert caught.value.params == {"country": "BR"}


def test_allocation_prefers_one_warehouse_then_splits() -> None:
    """Whole line from the fastest warehouse that can; else split fastest first; else short."""
    ranking = ["KZALA", "DEDUI"]
    stock = {1: {"KZALA": 5, "DEDUI": 50}, 2: {"KZALA": 3, "DEDUI": 2}, 3: {"DEDUI": 4}}
    assert allocate([(1, 5)], stock, ranking) == {1: [("KZALA", 5)]}
    assert allocate([(1, 6)], stock, ranking) == {1: [("DEDUI", 6)]}
    assert allocate([(2, 5)], stock, ranking) == {2: [("KZALA", 3), ("DEDUI", 2)]}
    assert allocate([(1, 1), (3, 4)], stock, ranking) == {1: [("KZALA", 1)], 3: [("DEDUI", 4)]}
    with pytest.raises(Shortage) as short:
        allocate([(2, 6)], stock, ranking)
    assert (short.value.requested, short.value.available) == (6, 5)


def test_postal_delivery_ends_with_the_post(network: Network) -> None:
    """Uzbekistan offers the national post as well as a courier: its last leg takes 3 days
    in a network city (the courier's 1) and 5 from the hub to a city off the network (the
    courier's road leg 2), at EUR 1.00 + 0.15 per kg (the courier's 2.00 + 0.30)."""
    assert network.deliveries("UZ") == ("courier", "postal")
    assert legs(network, "KZALA", "UZ", "Tashkent", "postal") == [
        ("road", "Almaty", "Tashkent", 2),
        ("post", "Tashkent", "Tashkent", 3),
    ]
    assert legs(network, "KZALA", "UZ", "Bukhara", "postal")[-1] == (
        "post",
        "Tashkent",
        "Bukhara",
        5,
    )
    post = network.route("KZALA", network.destination("UZ", "Tashkent", "postal"))
    courier = network.route("KZALA", network.destination("UZ", "Tashkent"))
    assert post is not None and courier is not None
    # 2 kg: road 3.00 + 0.50 x 2 = 4.00, then the post 1.00 + 0.15 x 2 = 1.30 (courier 2.60).
    assert (post.shipping_cost(2000), courier.shipping_cost(2000)) == (
        Decimal("5.30"),
        Decimal("6.60"),
    )
    # The border (entering Uzbekistan at Tashkent) is the same either way.
    assert (
        (post.border, post.border_days) == (courier.border, courier.border_days) == ("tashkent", 3)
    )


def test_postal_delivery_where_there_is_none_is_a_clear_error(network: Network) -> None:
    """Kazakhstan's data has no postal leg: asking for it is a 422 naming the country."""
    assert network.deliveries("KZ") == ("courier",)
    with pytest.raises(DeliveryNotOffered) as caught:
        network.destination("KZ", "Almaty", "postal")
    assert caught.value.status == 422 and caught.value.code == "delivery_not_available"
    assert caught.value.details == {"country": "KZ", "delivery": "postal"}
    assert "courier" in caught.value.localized("en")
