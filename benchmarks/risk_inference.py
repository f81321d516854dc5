"""Risk model and TransactionRisk latency and throughput on one core."""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta

import numpy as np

from deployments.transaction_risk import TransactionRisk
from fraudline.db import create_schema, make_engine, make_sessions
from fraudline.history import HistoryStore
from fraudline.riskmodel import RiskModel
from fraudline.schemas import Transaction


def _store(url: str, customers: int, per_customer: int, now: datetime) -> HistoryStore:
    engine = make_engine(url)
    create_schema(engine)
    store = HistoryStore(make_sessions(engine))
    rng = np.random.default_rng(7)
    store.upsert_customers([
        {"customer_id": f"C-{c}", "home_latitude": 40.7, "home_longitude": -74.0,
         "created_at": now - timedelta(days=700)}
        for c in range(customers)
    ])
    rows = []
    for c in range(customers):
        for i in range(per_customer):
            rows.append({
                "transaction_id": f"T-{c}-{i}", "customer_id": f"C-{c}",
                "occurred_at": now - timedelta(hours=float(rng.uniform(1, 24 * 89))),
                "amount": float(rng.gamma(2.0, 30.0)), "merchant": "M",
                "merchant_category": "Grocery", "location": "New York, NY",
                "latitude": 40.7, "longitude": -74.0, "card_present": True,
            })
    store.record(rows)
    return store


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})

    model = RiskModel.load()
    rng = np.random.default_rng(1)
    matrix = rng.normal(size=(args.rows, len(model.feature_names))) * 50 + 50

    model.predict(matrix[:1])
    single = []
    for i in range(2000):
        started = time.perf_counter()
        model.predict(matrix[i : i + 1])
        single.append(time.perf_counter() - started)
    started = time.perf_counter()
    model.predict(matrix)
    batch_rate = args.rows / (time.perf_counter() - started)
    started = time.perf_counter()
    model.contributions(matrix[:5000])
    contrib_rate = 5000 / (time.perf_counter() - started)

    now = datetime(2026, 1, 15, 15, 0, tzinfo=UTC)
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{folder}/bench.db"
        store = _store(url, customers=200, per_customer=60, now=now)
        tool = TransactionRisk(url, store=store, model=model)
        batch = [
            Transaction(transaction_id=f"N-{i}", customer_id=f"C-{i % 200}",
                        amount=float(20 + i % 300), merchant="Shop",
                        merchant_category="Electronics", location="New York, NY",
                        timestamp=now)
            for i in range(args.batch)
        ]
        tool.evaluate_batch(batch)
        runs = []
        for _ in range(20):
            started = time.perf_counter()
            tool.evaluate_batch(batch)
            runs.append(time.perf_counter() - started)
        one = []
        for i in range(50):
            started = time.perf_counter()
            tool.evaluate_batch(batch[i % len(batch) : i % len(batch) + 1])
            one.append(time.perf_counter() - started)

    out = sys.stdout
    out.write(f"model {model.version}, {len(model.feature_names)} features, one core\n")
    out.write(f"predict, one transaction: median {statistics.median(single) * 1e3:.3f} ms, "
              f"p99 {np.percentile(single, 99) * 1e3:.3f} ms\n")
    out.write(f"predict, batch of {args.rows:,}: {batch_rate:,.0f} transactions/s\n")
    out.write(f"contributions (TreeSHAP): {contrib_rate:,.0f} transactions/s\n")
    per_tx = statistics.median(runs) / args.batch
    out.write(f"evaluate_batch, batch of {args.batch} with 60-payment histories (SQLite): "
              f"{per_tx * 1e3:.3f} ms per transaction\n")
    out.write(f"evaluate_batch, one transaction: median {statistics.median(one) * 1e3:.2f} ms\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
