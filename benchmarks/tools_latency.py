"""Warm per-transaction latency of the geolocation and identity tools, and data memory.

Run: .venv/bin/python benchmarks/tools_latency.py [--rounds 200]
Seeds a throwaway SQLite history like the demo's and prints one line per figure.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from deployments.geolocation import GeolocationChecker  # noqa: E402
from deployments.identity import DeviceDirectory, IdentityVerifier  # noqa: E402
from fraudline.db import create_schema, make_engine, make_sessions  # noqa: E402
from fraudline.gazetteer import Gazetteer  # noqa: E402
from fraudline.history import HistoryStore  # noqa: E402
from fraudline.ipinfo import IpLookup  # noqa: E402
from fraudline.schemas import Transaction  # noqa: E402

NOW = datetime.now(UTC)


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure_memory(label: str, load: Callable[[], Any]) -> Any:
    """Loads twice: once for time and RSS, once under tracemalloc for the heap."""
    gc.collect()
    rss_before = rss_mib()
    started = time.perf_counter()
    loaded = load()
    seconds = time.perf_counter() - started
    gc.collect()
    rss_after = rss_mib()

    tracemalloc.start()
    second = load()
    kept, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del second
    print(
        f"{label}: load {seconds:.2f} s, RSS +{rss_after - rss_before:.1f} MiB, "
        f"python heap kept {kept / 2**20:.1f} MiB, peak {peak / 2**20:.1f} MiB"
    )
    return loaded


def seed(url: str) -> HistoryStore:
    engine = make_engine(url)
    create_schema(engine)
    store = HistoryStore(make_sessions(engine))
    store.upsert_customers(
        [
            dict(
                customer_id="C-12345",
                home_location="New York, NY",
                home_latitude=40.7128,
                home_longitude=-74.0060,
                email="c12345@example.com",
                card_last4="4242",
                created_at=NOW - timedelta(days=730),
            ),
            dict(
                customer_id="C-67890",
                home_location="Los Angeles, CA",
                home_latitude=34.0522,
                home_longitude=-118.2437,
                email=None,
                card_last4=None,
                created_at=NOW - timedelta(days=400),
            ),
        ]
    )
    rows = []
    for i in range(60):
        rows.append(
            dict(
                transaction_id=f"A{i}",
                customer_id="C-12345",
                occurred_at=NOW - timedelta(days=89 - i * 1.45),
                amount=500.0 + (i * 7) % 500,
                currency="USD",
                merchant="Shop",
                merchant_category="E-commerce",
                location=["New York, NY", "Seattle, WA"][i % 2],
                latitude=None,
                longitude=None,
                card_present=False,
                device_id=["dev-abc123", "dev-def456"][i % 2],
                ip_address=["192.168.1.100", "10.0.0.12"][i % 2],
                decision="approve",
            )
        )
    for i in range(40):
        rows.append(
            dict(
                transaction_id=f"B{i}",
                customer_id="C-67890",
                occurred_at=NOW - timedelta(days=88 - i * 2.1),
                amount=10.0 + (i * 3) % 70,
                currency="USD",
                merchant="Shop",
                merchant_category="Grocery",
                location="Los Angeles, CA",
                latitude=None,
                longitude=None,
                card_present=True,
                device_id="dev-xyz789",
                ip_address="192.168.1.50",
                decision="approve",
            )
        )
    store.record(rows)
    return store


def scenarios() -> list[Transaction]:
    common: dict[str, Any] = dict(timestamp=NOW)
    return [
        Transaction(
            transaction_id="S1",
            customer_id="C-12345",
            amount=250.0,
            merchant="Amazon.com",
            merchant_category="E-commerce",
            location="Seattle, WA",
            previous_location="Seattle, WA",
            time_since_last_transaction="2 hours ago",
            device_id="dev-abc123",
            ip_address="192.168.1.100",
            **common,
        ),
        Transaction(
            transaction_id="S2",
            customer_id="C-12345",
            amount=4500.0,
            merchant="CRYPTO-EXCHANGE-XX",
            merchant_category="Cryptocurrency",
            location="Moscow, Russia",
            previous_location="New York, NY",
            time_since_last_transaction="30 minutes ago",
            device_id="dev-unknown",
            ip_address="185.220.101.5",
            **common,
        ),
        Transaction(
            transaction_id="S3",
            customer_id="C-67890",
            amount=1200.0,
            merchant="Best Buy",
            merchant_category="Electronics",
            location="Los Angeles, CA",
            previous_location="Los Angeles, CA",
            time_since_last_transaction="1 day ago",
            card_present=True,
            device_id="dev-xyz789",
            ip_address="192.168.1.50",
            **common,
        ),
    ]


def time_tool(name: str, evaluate: Callable[[list[Transaction]], Any], rounds: int) -> None:
    batch = scenarios()
    evaluate(batch)  # warm: caches, SQLite pages, lazy imports
    for size in (1, 3, 30):
        transactions = (batch * 10)[:size]
        samples = []
        for _ in range(rounds):
            started = time.perf_counter()
            evaluate(transactions)
            samples.append((time.perf_counter() - started) * 1000 / size)
        samples.sort()
        p50 = statistics.median(samples)
        p95 = samples[int(len(samples) * 0.95) - 1]
        print(f"{name} batch={size:>2}: {p50:.2f} ms/tx p50, {p95:.2f} ms/tx p95")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()

    gazetteer = measure_memory("gazetteer (cities15000)", lambda: _loaded(Gazetteer()))
    ip_lookup = measure_memory("iptocc + IpLookup", lambda: _looked_up(IpLookup()))

    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{folder}/bench.db"
        store = seed(url)
        geolocation = GeolocationChecker(history=store, gazetteer=gazetteer)
        identity = IdentityVerifier(
            history=store,
            devices=DeviceDirectory(make_sessions(make_engine(url))),
            gazetteer=gazetteer,
            ip_lookup=ip_lookup,
        )
        for tool, evaluate in (
            ("geolocation", geolocation.evaluate_batch),
            ("identity", identity.evaluate_batch),
        ):
            for evidence in evaluate(scenarios()):
                print(
                    f"{tool} scenario points: {evidence.points:.0f} "
                    f"{[s.code for s in evidence.signals]}"
                )
            time_tool(tool, evaluate, args.rounds)


def _loaded(gazetteer: Gazetteer) -> Gazetteer:
    gazetteer.load()
    return gazetteer


def _looked_up(lookup: IpLookup) -> IpLookup:
    lookup.lookup_many(["8.8.8.8", "2001:4860:4860::8888"])
    return lookup


if __name__ == "__main__":
    main()
