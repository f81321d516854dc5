"""Killing tool replicas under load: every request answered or retryable, no duplicates."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from fraudline.db import make_engine
from fraudline.demo import SCENARIOS
from fraudline.records import AuditEntryRow, CaseRow, DecisionRow, OutboxRow
from tests.serve_app.inprocess import say

pytestmark = pytest.mark.ray

APP_NAME = "replica-kill"
ROUTE = "/kill"
KILLED = ("TransactionRisk", "FraudLogger")
REQUESTS = 120
RETRYABLE = {503, 504}


@dataclass
class Served:
    url: str
    database_url: str


@pytest.fixture(scope="module")
def served(serve_cluster: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The graph without a model, two replicas of each tool that gets killed."""
    from ray import serve

    from deployments import fraud_logger, transaction_risk
    from serve_app.app import build_app

    database_url = f"sqlite:///{tmp_path_factory.mktemp('kill')}/fraudline.db"
    saved = {m: m.DEPLOYMENT_DEFAULTS for m in (transaction_risk, fraud_logger)}
    try:
        for module in saved:
            module.DEPLOYMENT_DEFAULTS = dict(
                module.DEPLOYMENT_DEFAULTS,
                autoscaling_config={"min_replicas": 2, "max_replicas": 2},
            )
        app = build_app(
            {
                "database_url": database_url,
                "seed_demo": True,
                "agent": {"explain_mode": "never", "tool_timeout_s": 10},
                # No holds: every block here must open its own case.
                "actions": {"hold_hours": 0},
                "console": {"enabled": False},
                "auth": {"mode": "disabled"},
            }
        )
        serve.run(app, name=APP_NAME, route_prefix=ROUTE, blocking=False)
        _wait_until_running(serve, APP_NAME, deadline_s=240)
        yield Served(url=f"{serve_cluster.url}{ROUTE}", database_url=database_url)
    finally:
        for module, defaults in saved.items():
            module.DEPLOYMENT_DEFAULTS = defaults
        serve.delete(APP_NAME)


def _wait_until_running(serve: Any, name: str, deadline_s: float) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        status = serve.status().applications.get(name)
        if status is not None and status.status == "RUNNING":
            return
        time.sleep(1)
    raise AssertionError(f"{name} did not start within {deadline_s} s")


def _replica_actors(app: str, deployment: str) -> list[str]:
    import ray

    names = [
        entry["name"]
        for entry in ray.util.list_named_actors(all_namespaces=True)
        if entry["namespace"] == "serve"
    ]
    return [n for n in names if n.startswith(f"SERVE_REPLICA::{app}#{deployment}#")]


def _post(client: httpx.Client, url: str, body: dict[str, Any]) -> int:
    try:
        return client.post(f"{url}/v1/analyze", json=body, timeout=60).status_code
    except httpx.TransportError:
        return 599  # no answer at all: counted as lost unless a retry succeeds


def _counts(database_url: str, ids: list[str]) -> dict[str, Counter[str]]:
    engine = make_engine(database_url)
    tables = {
        "decisions": (DecisionRow.transaction_id, ()),
        "cases": (CaseRow.transaction_id, ()),
        "audit": (AuditEntryRow.transaction_id, (AuditEntryRow.kind == "decision",)),
        "alerts": (OutboxRow.transaction_id, ()),
    }
    found: dict[str, Counter[str]] = {}
    with engine.connect() as connection:
        for table, (column, more) in tables.items():
            rows = connection.execute(
                select(column, func.count()).where(column.in_(ids), *more).group_by(column)
            )
            found[table] = Counter({tx_id: n for tx_id, n in rows})
    engine.dispose()
    return found


def test_killing_tool_replicas_under_load_loses_no_decision_and_duplicates_nothing(
    served: Served, request: pytest.FixtureRequest
) -> None:
    import ray

    for deployment in KILLED:
        assert len(_replica_actors(APP_NAME, deployment)) == 2
    bodies = [
        # No timestamp: the history build_app seeds is laid out before now.
        dict(SCENARIOS["high_risk" if i % 2 else "low_risk"], transaction_id=f"TXN-KILL-{i:04d}")
        for i in range(REQUESTS)
    ]
    faults = 0

    with httpx.Client() as client, ThreadPoolExecutor(max_workers=12) as pool:
        assert _post(client, served.url, SCENARIOS["low_risk"]) == 200  # warm up
        futures = [pool.submit(_post, client, served.url, body) for body in bodies]
        # Kill one replica of each tool while the load is in flight.
        while sum(f.done() for f in futures) < REQUESTS // 4:
            time.sleep(0.05)
        for deployment in KILLED:
            victim = _replica_actors(APP_NAME, deployment)[0]
            ray.kill(ray.get_actor(victim, namespace="serve"), no_restart=True)
            faults += 1
        statuses = [f.result() for f in futures]

        codes = Counter(statuses)
        assert set(codes) <= {200} | RETRYABLE, codes

        # Retry each refused request with the same transaction id until answered.
        pending = [b for b, s in zip(bodies, statuses) if s != 200]
        deadline = time.monotonic() + 120
        while pending and time.monotonic() < deadline:
            pending = [b for b in pending if _post(client, served.url, b) != 200]
            if pending:
                time.sleep(1)

    ids = [body["transaction_id"] for body in bodies]
    counts = _counts(served.database_url, ids)
    lost = [tx_id for tx_id in ids if counts["decisions"][tx_id] != 1]
    duplicates = sum(n - 1 for table in counts.values() for n in table.values() if n > 1)
    say(
        request.config,
        f"replica kill: {REQUESTS} requests, {faults} replicas killed, answers {dict(codes)}, "
        f"{len(statuses) - codes[200]} retried, decisions lost {len(lost)}, "
        f"duplicates created {duplicates}",
    )
    assert pending == []
    assert lost == []
    assert duplicates == 0
    blocked = [tx_id for i, tx_id in enumerate(ids) if i % 2]
    assert all(counts["cases"][tx_id] == 1 for tx_id in blocked)
