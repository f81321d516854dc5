"""Tests of the analyst routes over plain FraudLogger and ReportGenerator objects."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fastapi import FastAPI, HTTPException
from fastapi.testclient import TestClient

from deployments.fraud_logger import FraudLogger
from deployments.report_generator import ReportGenerator
from fraudline.errors import NotFound
from fraudline.schemas import DecisionResult, Evidence, Explanation, Reason, Signal, Transaction
from serve_app.cases_api import LocalHandle, _call, build_cases_router

NOW = datetime(2026, 1, 31, 14, 5, tzinfo=UTC)


def _pair(transaction_id: str, decision: str, score: float) -> tuple[Transaction, DecisionResult]:
    signal = Signal(code="impossible_travel", text="15,020 km/h", value=15020.0, points=40)
    transaction = Transaction(
        transaction_id=transaction_id,
        customer_id="C-12345",
        amount=4500.0,
        merchant="CRYPTO-EXCHANGE-XX",
        merchant_category="Cryptocurrency",
        location="Moscow, Russia",
        timestamp=NOW,
    )
    result = DecisionResult(
        transaction_id=transaction_id,
        customer_id="C-12345",
        decision=decision,  # type: ignore[arg-type]
        risk_score=score,
        risk_level="high" if decision == "block" else "medium",
        reasons=[Reason(code=signal.code, text=signal.text, tool="geolocation", points=40)],
        evidence={"geolocation": Evidence(tool="geolocation", signals=[signal])},
        explanation=Explanation(text="test"),
        policy_version="policy-2026.01",
        decided_at=NOW,
        latency_ms={"evidence": 8.0, "policy": 1.0, "model": 1.0},
    )
    return transaction, result


@pytest.fixture
def logged(tmp_db_url: str) -> dict[str, str]:
    """Case ids by transaction id: TX-BLOCK (score 95) and TX-REVIEW (score 55)."""
    outcomes = FraudLogger(tmp_db_url, clock=lambda: NOW).log_batch(
        [_pair("TX-BLOCK", "block", 95.0), _pair("TX-REVIEW", "review", 55.0)]
    )
    return {outcome.transaction_id: outcome.case_id for outcome in outcomes if outcome.case_id}


@pytest.fixture
def client(tmp_db_url: str, logged: dict[str, str]) -> TestClient:
    app = FastAPI()
    app.include_router(
        build_cases_router(
            LocalHandle(FraudLogger(tmp_db_url, clock=lambda: NOW)),
            LocalHandle(ReportGenerator(tmp_db_url, clock=lambda: NOW)),
        )
    )
    return TestClient(app)


def test_list_filters_by_decision_and_score(client: TestClient) -> None:
    blocks = client.get("/v1/cases", params={"decision": "block"}).json()
    scored = client.get("/v1/cases", params={"min_score": 50, "max_score": 60}).json()
    page = client.get("/v1/cases", params={"limit": 1, "offset": 1}).json()

    assert [case["transaction_id"] for case in blocks["items"]] == ["TX-BLOCK"]
    assert [case["risk_score"] for case in scored["items"]] == [55.0]
    assert (page["total"], page["limit"], page["offset"], len(page["items"])) == (2, 1, 1, 1)


def test_list_by_date_needs_an_offset_and_filters_on_creation(client: TestClient) -> None:
    inside = client.get(
        "/v1/cases", params={"since": "2026-01-31T14:00:00Z", "until": "2026-01-31T15:00:00Z"}
    )
    after = client.get("/v1/cases", params={"since": "2026-01-31T15:00:00+00:00"})
    naive = client.get("/v1/cases", params={"since": "2026-01-31T14:00:00"})

    assert inside.json()["total"] == 2
    assert after.json()["total"] == 0
    assert naive.status_code == 422
    assert naive.json()["detail"][0]["loc"] == ["query", "since"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "pending"}, "status"),
        ({"decision": "approve"}, "decision"),
        ({"min_score": 101}, "min_score"),
        ({"limit": 0}, "limit"),
    ],
)
def test_list_rejects_bad_filters_with_422_naming_the_field(
    client: TestClient, params: dict[str, object], field: str
) -> None:
    response = client.get("/v1/cases", params=params)

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", field]


def test_score_range_upside_down_is_a_422_from_the_logger(client: TestClient) -> None:
    response = client.get("/v1/cases", params={"min_score": 80, "max_score": 20})

    assert response.status_code == 422
    assert response.json()["detail"] == "min_score 80.0 is above max_score 20.0; swap them"


def test_get_case_returns_evidence_and_unknown_case_is_404(
    client: TestClient, logged: dict[str, str]
) -> None:
    case = client.get(f"/v1/cases/{logged['TX-BLOCK']}").json()
    missing = client.get("/v1/cases/CASE-000000000000")

    assert case["evidence"]["evidence"]["geolocation"]["signals"][0]["value"] == 15020.0
    assert [event["kind"] for event in case["timeline"]] == [
        "opened", "alert_queued", "hold_placed"
    ]
    assert missing.status_code == 404
    assert "CASE-000000000000" in missing.json()["detail"]


def test_patch_moves_the_case_and_assigns_it(client: TestClient, logged: dict[str, str]) -> None:
    case_id = logged["TX-REVIEW"]

    response = client.patch(
        f"/v1/cases/{case_id}",
        json={"status": "investigating", "assignee": "ana", "actor": "lead"},
    )

    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["assignee"]) == ("investigating", "ana")
    assert [event["kind"] for event in body["timeline"]][-2:] == ["status_changed", "assigned"]
    listed = client.get("/v1/cases", params={"status": "investigating"}).json()
    assert [case["case_id"] for case in listed["items"]] == [case_id]


def test_patch_outside_the_workflow_is_422_naming_the_allowed_moves(
    client: TestClient, logged: dict[str, str]
) -> None:
    response = client.patch(
        f"/v1/cases/{logged['TX-REVIEW']}", json={"status": "closed", "actor": "ana"}
    )

    assert response.status_code == 422
    assert "it can move to investigating, not closed" in response.json()["detail"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"status": "investigating"}, "actor"),
        ({"status": "escalated", "actor": "ana"}, "status"),
        ({"status": "investigating", "actor": ""}, "actor"),
        ({"actor": "ana", "priority": "high"}, "priority"),
    ],
)
def test_patch_body_errors_are_422_naming_the_field(
    client: TestClient, logged: dict[str, str], body: dict[str, str], field: str
) -> None:
    response = client.patch(f"/v1/cases/{logged['TX-REVIEW']}", json=body)

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", field]


def test_patch_of_unknown_case_is_404(client: TestClient) -> None:
    response = client.patch(
        "/v1/cases/CASE-000000000000", json={"status": "investigating", "actor": "ana"}
    )

    assert response.status_code == 404


def test_note_is_added_and_returned_with_201(client: TestClient, logged: dict[str, str]) -> None:
    response = client.post(
        f"/v1/cases/{logged['TX-BLOCK']}/notes",
        json={"text": "Card holder denies the payment.", "actor": "ana"},
    )
    empty = client.post(f"/v1/cases/{logged['TX-BLOCK']}/notes", json={"text": "", "actor": "ana"})

    assert response.status_code == 201
    assert [(n["author"], n["text"]) for n in response.json()["notes"]] == [
        ("ana", "Card holder denies the payment.")
    ]
    assert empty.status_code == 422


def test_tags_are_added_and_bad_tags_are_422(client: TestClient, logged: dict[str, str]) -> None:
    ok = client.post(
        f"/v1/cases/{logged['TX-BLOCK']}/tags", json={"tags": ["Crypto", "mule"], "actor": "ana"}
    )
    bad = client.post(
        f"/v1/cases/{logged['TX-BLOCK']}/tags", json={"tags": ["no spaces"], "actor": "ana"}
    )

    assert ok.json()["tags"] == ["crypto", "mule"]
    assert bad.status_code == 422
    assert "tag 'no spaces' is not valid" in bad.json()["detail"]


def test_labels_feed_quality_metrics(client: TestClient, logged: dict[str, str]) -> None:
    fraud = client.post(
        f"/v1/cases/{logged['TX-BLOCK']}/label", json={"label": "fraud", "actor": "ana"}
    )
    legitimate = client.post(
        f"/v1/cases/{logged['TX-REVIEW']}/label", json={"label": "legitimate", "actor": "ana"}
    )
    unknown = client.post(
        f"/v1/cases/{logged['TX-REVIEW']}/label", json={"label": "maybe", "actor": "ana"}
    )

    assert fraud.json()["status"] == "confirmed_fraud"
    assert legitimate.json()["status"] == "false_positive"
    assert unknown.status_code == 422
    (policy,) = client.get("/v1/metrics/quality").json()["policies"]
    assert policy["policy_version"] == "policy-2026.01"
    assert (policy["block_precision"], policy["review_precision"]) == (1.0, 0.0)
    assert (policy["labelled"], policy["false_positive_rate"]) == (2, 0.5)


def test_period_summary_as_json_and_html(client: TestClient) -> None:
    params = {"since": "2026-01-31T00:00:00Z", "until": "2026-02-01T00:00:00Z"}

    summary = client.get("/v1/reports/summary", params=params).json()
    page = client.get("/v1/reports/summary", params=params | {"format": "html"})
    missing = client.get("/v1/reports/summary", params={"since": params["since"]})
    backwards = client.get(
        "/v1/reports/summary", params={"since": params["until"], "until": params["since"]}
    )

    assert summary["decisions"] == {"total": 2, "approve": 0, "review": 1, "block": 1}
    assert summary["latency_ms"]["p50"] == 10.0
    assert summary["top_reasons"] == [{"code": "impossible_travel", "count": 2, "share": 1.0}]
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert "impossible_travel" in page.text
    assert missing.status_code == 422
    assert backwards.status_code == 422
    assert "is not before until" in backwards.json()["detail"]


class _RemoteError(NotFound):
    """Shaped like the error a remote call raises: the original is its `cause`."""

    def __init__(self) -> None:
        super().__init__("Traceback (most recent call last): ... NotFound: case gone")
        self.cause = NotFound("case 'CASE-1' does not exist")


class _FailingMethod:
    async def _raise(self) -> None:
        raise _RemoteError()

    def remote(self) -> object:
        return self._raise()


async def test_remote_error_detail_is_the_original_message_only() -> None:
    with pytest.raises(HTTPException) as caught:
        await _call(_FailingMethod())

    assert (caught.value.status_code, caught.value.detail) == (
        404,
        "case 'CASE-1' does not exist",
    )


def test_local_handle_refuses_private_names(tmp_db_url: str) -> None:
    handle = LocalHandle(FraudLogger(tmp_db_url))

    with pytest.raises(AttributeError):
        handle._sessions  # noqa: B018
