"""Tests of the hold routes over a plain FraudLogger."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi import Depends, FastAPI, HTTPException
from fastapi.testclient import TestClient

from deployments.fraud_logger import FraudLogger
from serve_app.cases_api import LocalHandle, build_cases_router
from serve_app.holds_api import build_holds_router
from tests.deployments.blocked_payments import NOW, Clock, block, high_risk


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def logger_(tmp_db_url: str, clock: Clock) -> FraudLogger:
    return FraudLogger(tmp_db_url, clock=clock)


@pytest.fixture
def client(logger_: FraudLogger, tmp_db_url: str) -> TestClient:
    app = FastAPI()
    handle = LocalHandle(logger_)
    app.include_router(build_holds_router(handle))
    app.include_router(build_cases_router(handle, LocalHandle(object())))
    return TestClient(app)


def test_block_hold_is_read_released_and_gone(
    client: TestClient, logger_: FraudLogger, clock: Clock
) -> None:
    (blocked,) = logger_.log_batch([block(high_risk("TX-HIGH"))])
    clock.advance(minutes=10)

    read = client.get("/v1/customers/C-12345/hold")
    released = client.delete(
        "/v1/customers/C-12345/hold", params={"actor": "ana", "reason": "customer confirmed"}
    )
    after = client.get("/v1/customers/C-12345/hold")
    again = client.delete("/v1/customers/C-12345/hold", params={"actor": "ana"})

    assert read.status_code == 200
    assert (read.json()["hold_id"], read.json()["until"]) == (
        blocked.hold_id,
        "2026-02-01T14:05:00Z",
    )
    assert released.status_code == 200
    body = released.json()
    assert (body["released"], body["hold"]["state"], body["hold"]["released_by"]) == (
        True,
        "released",
        "ana",
    )
    assert after.status_code == 404 and "C-12345" in after.json()["detail"]
    assert again.json() == {"released": False, "hold": None}


def test_post_extends_a_hold_by_hours(
    client: TestClient, logger_: FraudLogger, clock: Clock
) -> None:
    (blocked,) = logger_.log_batch([block(high_risk("TX-HIGH"))])

    response = client.post(
        "/v1/customers/C-12345/hold", json={"hours": 72, "actor": "ana", "reason": "checks"}
    )

    assert response.status_code == 200
    assert (response.json()["hold_id"], response.json()["until"]) == (
        blocked.hold_id,
        "2026-02-03T14:05:00Z",
    )
    assert logger_.active_holds(["C-12345"], NOW + timedelta(hours=71))["C-12345"].until == (
        NOW + timedelta(hours=72)
    )


def test_post_places_a_manual_hold_until_a_moment(client: TestClient) -> None:
    response = client.post(
        "/v1/customers/C-67890/hold",
        json={"until": "2026-02-01T09:00:00-05:00", "actor": "ana"},
    )

    assert response.status_code == 200
    body = response.json()
    assert (body["customer_id"], body["until"], body["case_id"], body["placed_by"]) == (
        "C-67890",
        "2026-02-01T14:00:00Z",
        None,
        "ana",
    )


@pytest.mark.parametrize(
    "body",
    [
        {"actor": "ana"},
        {"hours": 1, "until": "2026-02-01T09:00:00Z", "actor": "ana"},
        {"hours": 0, "actor": "ana"},
        {"until": "2026-02-01T09:00:00", "actor": "ana"},
        {"hours": 1},
        {"hours": 1, "actor": "ana", "extra": True},
    ],
)
def test_unusable_hold_change_is_422(client: TestClient, body: dict[str, object]) -> None:
    assert client.post("/v1/customers/C-12345/hold", json=body).status_code == 422


def test_hold_in_the_past_is_422_naming_the_fix(client: TestClient) -> None:
    response = client.post(
        "/v1/customers/C-12345/hold", json={"until": "2026-01-01T00:00:00Z", "actor": "ana"}
    )

    assert response.status_code == 422
    assert "choose an end after 2026-01-31T14:05:00Z" in response.json()["detail"]


def test_release_without_actor_is_422(client: TestClient) -> None:
    assert client.delete("/v1/customers/C-12345/hold").status_code == 422


def test_legitimate_label_response_offers_the_release(
    client: TestClient, logger_: FraudLogger
) -> None:
    (blocked,) = logger_.log_batch([block(high_risk("TX-HIGH"))])

    labelled = client.post(
        f"/v1/cases/{blocked.case_id}/label", json={"label": "legitimate", "actor": "ana"}
    ).json()

    assert (labelled["hold_release_offered"], labelled["hold_id"]) == (True, blocked.hold_id)


def test_router_dependencies_guard_every_route(logger_: FraudLogger) -> None:
    def refuse() -> None:
        raise HTTPException(status_code=403, detail="analysts only")

    app = FastAPI()
    app.include_router(build_holds_router(LocalHandle(logger_), dependencies=[Depends(refuse)]))
    client = TestClient(app)

    assert client.get("/v1/customers/C-12345/hold").status_code == 403
    assert (
        client.post("/v1/customers/C-12345/hold", json={"hours": 1, "actor": "ana"}).status_code
        == 403
    )
    assert client.delete("/v1/customers/C-12345/hold", params={"actor": "a"}).status_code == 403
