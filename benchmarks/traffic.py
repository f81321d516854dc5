"""Synthetic card traffic for benchmarks: many customers, each with a history.

Every customer pays near home from one device, with amounts around their own
mean, so most payments are clear approvals and the fast path is what is timed.
The history is sent first (or stored directly), so the payments being timed are
scored against 90 days of each customer's own payments, as in production.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

# (location as clients send it, latitude, longitude)
CITIES = (
    ("Seattle, WA", 47.6062, -122.3321),
    ("Portland, OR", 45.5152, -122.6784),
    ("Denver, CO", 39.7392, -104.9903),
    ("Austin, TX", 30.2672, -97.7431),
    ("Chicago, IL", 41.8781, -87.6298),
    ("Atlanta, GA", 33.7490, -84.3880),
    ("Boston, MA", 42.3601, -71.0589),
    ("New York, NY", 40.7128, -74.0060),
    ("Phoenix, AZ", 33.4484, -112.0740),
    ("Miami, FL", 25.7617, -80.1918),
)
CATEGORIES = ("grocery_pos", "gas_transport", "shopping_net", "food_dining", "home",
              "health_fitness", "entertainment", "personal_care")


@dataclass(frozen=True)
class Customer:
    customer_id: str
    city: tuple[str, float, float]
    device_id: str
    ip_address: str
    mean_amount: float


def customers(count: int, seed: int = 11) -> list[Customer]:
    """`count` customers with a home city, a device and a usual amount."""
    rng = random.Random(seed)
    run = uuid.uuid4().hex[:6]
    return [
        Customer(
            customer_id=f"BENCH-{run}-{index}",
            city=rng.choice(CITIES),
            device_id=f"dev-{run}-{index}",
            ip_address=f"10.{index // 65536 % 256}.{index // 256 % 256}.{index % 256}",
            mean_amount=round(rng.uniform(20, 150), 2),
        )
        for index in range(count)
    ]


def payments(
    people: list[Customer],
    per_customer: int,
    start: datetime,
    end: datetime,
    seed: int = 13,
) -> list[dict[str, Any]]:
    """`per_customer` ordinary payments of each customer between two moments, in time order."""
    rng = random.Random(seed)
    span_s = (end - start).total_seconds()
    run = uuid.uuid4().hex[:8]
    found = []
    for person in people:
        for _ in range(per_customer):
            moment = start + timedelta(seconds=rng.uniform(0, span_s))
            found.append(_payment(person, moment, rng))
    found.sort(key=lambda body: body["timestamp"])
    for index, body in enumerate(found):
        body["transaction_id"] = f"BENCH-{run}-{index}"
    return found


def _payment(person: Customer, moment: datetime, rng: random.Random) -> dict[str, Any]:
    location, latitude, longitude = person.city
    category = rng.choice(CATEGORIES)
    return {
        "customer_id": person.customer_id,
        "amount": round(max(1.0, rng.gauss(person.mean_amount, person.mean_amount / 4)), 2),
        "merchant": f"Merchant {rng.randint(1, 400)}",
        "merchant_category": category,
        "location": location,
        "latitude": round(latitude + rng.uniform(-0.05, 0.05), 4),
        "longitude": round(longitude + rng.uniform(-0.05, 0.05), 4),
        "card_present": not category.endswith("_net"),
        "device_id": person.device_id,
        "ip_address": person.ip_address,
        "timestamp": moment.isoformat(),
    }


def history_rows(bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Payments as approved rows of the history store, to seed it directly."""
    rows = []
    for body in bodies:
        row = dict(body, occurred_at=datetime.fromisoformat(body["timestamp"]),
                   currency="USD", decision="approve", risk_score=5.0)
        del row["timestamp"]
        rows.append(row)
    return rows
