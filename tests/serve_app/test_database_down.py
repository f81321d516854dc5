"""The database going away: clear 503s, nothing half-written, recovery on its own."""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event, func, select

from deployments.fraud_logger import FraudLogger
from deployments.toolbox import LocalToolbox
from fraudline.db import make_engine
from fraudline.records import AuditEntryRow, CaseRow, DecisionRow, OutboxRow
from tests.serve_app.inprocess import build_local_api, say, scenario

_ids = itertools.count(1)


class Outage:
    """Makes every statement on every engine fail, from a chosen point on.

    SQLite has no server to stop, so the fault is injected where a driver
    reports a lost database: the statement raises sqlite3.OperationalError,
    which SQLAlchemy wraps as it would a real disconnect.
    """

    def __init__(self) -> None:
        self.remaining: int | None = None
        self.writing_only = False
        self.injected = 0
        self.writes_seen = 0

    def before_execute(self, _conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        if self.remaining is None:
            return
        is_write = not statement.lstrip().upper().startswith(("SELECT", "PRAGMA"))
        if self.writing_only and not is_write:
            return  # reads pass until the first write of the decision's transaction
        self.writing_only = False
        if self.remaining > 0:
            self.remaining -= 1
            self.writes_seen += 1
            return
        self.injected += 1
        raise sqlite3.OperationalError("unable to open database file")

    @contextmanager
    def down(self, after: int = 0, from_first_write: bool = False) -> Iterator[None]:
        """Fails statements once `after` have passed (counted from the first write)."""
        self.remaining, self.writing_only, self.writes_seen = after, from_first_write, 0
        try:
            yield
        finally:
            self.remaining = None


@pytest.fixture(scope="module")
def outage(request: pytest.FixtureRequest) -> Iterator[Outage]:
    fault = Outage()
    event.listen(Engine, "before_cursor_execute", fault.before_execute)
    yield fault
    event.remove(Engine, "before_cursor_execute", fault.before_execute)
    say(request.config, f"database faults injected: {fault.injected}")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, outage: Outage) -> Iterator[Any]:
    url = f"sqlite:///{tmp_path_factory.mktemp('dbdown') / 'fraudline.db'}"
    # No account holds: one test's block must not hold the next test's payments.
    toolbox = LocalToolbox(url, tools={"fraud_logger": FraudLogger(url, hold_hours=0)})
    app, _, _ = build_local_api(url, toolbox=toolbox)
    engine = make_engine(url)
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.post("/v1/analyze", json=_tx("low_risk")).status_code == 200
        yield client, engine
    engine.dispose()


def _tx(name: str) -> dict[str, Any]:
    return scenario(name, transaction_id=f"TXN-DBDOWN-{next(_ids):03d}")


def _stored(engine: Engine, transaction_id: str) -> dict[str, int]:
    with engine.connect() as connection:
        def count(column: Any, *more: Any) -> int:
            return connection.scalar(
                select(func.count()).where(column == transaction_id, *more)
            )

        return {
            "decisions": count(DecisionRow.transaction_id),
            "cases": count(CaseRow.transaction_id),
            # Reports and alerts add their own entries; the decision has exactly one.
            "audit": count(AuditEntryRow.transaction_id, AuditEntryRow.kind == "decision"),
            "alerts": count(OutboxRow.transaction_id),
        }


NOTHING = {"decisions": 0, "cases": 0, "audit": 0, "alerts": 0}
BLOCKED = {"decisions": 1, "cases": 1, "audit": 1, "alerts": 1}


def test_analyze_answers_503_with_retry_after_while_the_database_is_down(
    served: Any, outage: Outage
) -> None:
    client, engine = served
    body = _tx("high_risk")

    with outage.down():
        response = client.post("/v1/analyze", json=body)

    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert "store unavailable" in response.json()["detail"]
    assert _stored(engine, body["transaction_id"]) == NOTHING


@pytest.mark.parametrize("after", range(8))
def test_an_outage_mid_write_leaves_nothing_half_written(
    served: Any, outage: Outage, after: int
) -> None:
    client, engine = served
    body = _tx("high_risk")

    # The tools read history; the outage starts `after` statements into the write
    # of the decision, its case, alert, audit entry and history row.
    with outage.down(after=after, from_first_write=True):
        response = client.post("/v1/analyze", json=body)

    assert outage.writes_seen == after  # the fault did land inside the write
    assert response.status_code == 503
    assert _stored(engine, body["transaction_id"]) == NOTHING
    assert client.get("/v1/audit/verify").json()["ok"] is True


def test_reads_answer_503_while_the_database_is_down(served: Any, outage: Outage) -> None:
    client, _ = served
    blocked = client.post("/v1/analyze", json=_tx("high_risk")).json()
    case_id = next(a["id"] for a in blocked["actions"] if a["kind"] == "case")

    with outage.down():
        responses = [client.get(f"/v1/cases/{case_id}"), client.get("/v1/audit/verify")]

    assert [r.status_code for r in responses] == [503, 503]
    assert all(r.headers.get("Retry-After") for r in responses)


def test_the_same_request_succeeds_once_the_database_is_back(
    served: Any, outage: Outage
) -> None:
    client, engine = served
    body = _tx("high_risk")
    with outage.down():
        assert client.post("/v1/analyze", json=body).status_code == 503

    retried = client.post("/v1/analyze", json=body)
    again = client.post("/v1/analyze", json=body)

    assert retried.status_code == again.status_code == 200
    assert retried.json()["decision"] == again.json()["decision"] == "block"
    assert _stored(engine, body["transaction_id"]) == BLOCKED
    chain = client.get("/v1/audit/verify").json()
    assert chain["ok"] is True
