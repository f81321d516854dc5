"""The tool registry: names, deployment methods, strict schemas and result shapes."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from deployments.email_alerts import DeliveryReport, EmailAlerts
from deployments.fraud_logger import FraudLogger
from deployments.geolocation import GeolocationChecker
from deployments.identity import IdentityVerifier
from deployments.registry import (
    SERVERS,
    TOOLS,
    AlertStatuses,
    AuditChainReport,
    DeliveryRound,
    ReportDocument,
    TransactionArguments,
    openai_tools,
    server_tools,
    tool_spec,
)
from deployments.report_generator import ReportGenerator
from deployments.transaction_risk import TransactionRisk
from fraudline.audit import ChainReport
from fraudline.demo import SCENARIOS
from fraudline.schemas import Action, Evidence, Signal, Transaction

# The agent's names for the deployments, as the Serve graph hands them out.
PLAIN_CLASSES = {
    "transaction_risk": TransactionRisk,
    "identity": IdentityVerifier,
    "geolocation": GeolocationChecker,
    "email_alerts": EmailAlerts,
    "fraud_logger": FraudLogger,
    "report_generator": ReportGenerator,
}
NOW = datetime(2026, 1, 31, 14, 5, tzinfo=UTC)


class RecordingCall:
    """Stands in for the deployments: records calls and returns a fixed value."""

    def __init__(self, returns: Any) -> None:
        self.returns = returns
        self.calls: list[tuple[Any, ...]] = []

    async def __call__(self, deployment: str, method: str, *args: Any) -> Any:
        self.calls.append((deployment, method, *args))
        return self.returns


def test_six_servers_one_per_deployment() -> None:
    assert SERVERS == (
        "transaction_risk",
        "identity_verifier",
        "geolocation_checker",
        "email_alerts",
        "fraud_logger",
        "report_generator",
    )
    deployments = {spec.server: spec.deployment for spec in TOOLS}
    assert sorted(deployments.values()) == sorted(PLAIN_CLASSES)


@pytest.mark.parametrize("spec", TOOLS, ids=lambda spec: spec.name)
def test_tool_name_starts_with_its_server_and_method_exists(spec: Any) -> None:
    assert spec.name.startswith(spec.server)
    assert re.fullmatch(r"[a-z_]{1,64}", spec.name)
    assert callable(getattr(PLAIN_CLASSES[spec.deployment], spec.method))


def test_server_tools_of_fraud_logger_are_its_three_reads() -> None:
    assert [spec.name for spec in server_tools("fraud_logger")] == [
        "fraud_logger_get_case",
        "fraud_logger_recent_cases",
        "fraud_logger_verify_audit_chain",
    ]
    assert all(spec.read_only for spec in server_tools("fraud_logger"))


def test_unknown_tool_name_lists_the_known_ones() -> None:
    with pytest.raises(KeyError, match="geolocation_checker"):
        tool_spec("geolocation")


def test_transaction_parameters_describe_units() -> None:
    properties = TransactionArguments.model_json_schema()["properties"]

    assert "currency" in properties["amount"]["description"]
    assert "decimal degrees" in properties["latitude"]["description"]
    assert "minutes ago" in properties["time_since_last_transaction"]["description"]
    assert all(prop.get("description") for prop in properties.values())


def test_evidence_descriptions_name_units_and_thresholds() -> None:
    geolocation = tool_spec("geolocation_checker").description

    assert "km/h" in geolocation and " km " in geolocation
    assert "0-100 risk score" in geolocation and "blocks from 75" in geolocation


def _objects(node: Any) -> list[dict[str, Any]]:
    if isinstance(node, list):
        return [found for item in node for found in _objects(item)]
    if not isinstance(node, dict):
        return []
    found = [node] if node.get("type") == "object" else []
    return found + [inner for value in node.values() for inner in _objects(value)]


@pytest.mark.parametrize("tool", openai_tools(), ids=lambda tool: tool["function"]["name"])
def test_openai_tool_schema_is_strict(tool: dict[str, Any]) -> None:
    function = tool["function"]
    parameters = function["parameters"]

    assert tool["type"] == "function" and function["strict"] is True
    assert function["description"] == tool_spec(function["name"]).description
    for schema in _objects(parameters):
        assert schema["additionalProperties"] is False
        assert schema["required"] == list(schema["properties"])
    text = json.dumps(parameters)
    assert '"default"' not in text and '"title"' not in text


def test_openai_optional_field_becomes_nullable() -> None:
    [risk] = openai_tools([tool_spec("transaction_risk")])
    properties = risk["function"]["parameters"]["properties"]

    assert properties["amount"]["type"] == "number"
    assert {"type": "null"} in properties["device_id"]["anyOf"]
    assert {"type": "null"} in properties["currency"]["anyOf"]


def test_null_arguments_read_back_as_defaults() -> None:
    spec = tool_spec("transaction_risk")
    params = spec.parse_arguments({**SCENARIOS["low_risk"], "currency": None, "timestamp": None})

    assert params.currency == "USD"  # type: ignore[attr-defined]
    assert params.timestamp is None  # type: ignore[attr-defined]


def test_bad_argument_names_the_field() -> None:
    spec = tool_spec("report_generator_get_report")

    with pytest.raises(ValidationError) as raised:
        spec.parse_arguments({"report_id": "RPT-1", "format": "pdf", "extra": 1})

    assert {error["loc"][0] for error in raised.value.errors()} == {"format", "extra"}


def test_transaction_time_is_filled_only_when_absent() -> None:
    given = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
    absent = TransactionArguments(**SCENARIOS["low_risk"])
    present = TransactionArguments(**SCENARIOS["low_risk"], timestamp=given)

    assert absent.to_transaction(NOW).occurred_at() == NOW
    assert present.to_transaction(NOW).occurred_at() == given
    assert type(absent.to_transaction(NOW)) is Transaction


async def test_evidence_tool_sends_one_transaction_and_returns_its_evidence() -> None:
    evidence = Evidence(
        tool="geolocation",
        signals=[Signal(code="impossible_travel", text="t", value=15020.9, unit="km/h", points=40)],
    )
    call = RecordingCall([evidence])
    spec = tool_spec("geolocation_checker")

    result = await spec.run(call, spec.parse_arguments(SCENARIOS["high_risk"]))

    [(deployment, method, batch)] = call.calls
    assert (deployment, method) == ("geolocation", "evaluate_batch")
    assert [tx.transaction_id for tx in batch] == ["TXN-DEMO-002"]
    assert batch[0].timestamp is not None
    assert result == evidence


async def test_report_json_is_parsed_into_fields() -> None:
    call = RecordingCall((b'{"case_id": "CASE-1", "risk_score": 95}', "application/json"))
    spec = tool_spec("report_generator_get_report")

    result = await spec.run(call, spec.parse_arguments({"report_id": "RPT-1"}))

    assert call.calls == [("report_generator", "render", "RPT-1", "json")]
    assert result == ReportDocument(
        report_id="RPT-1",
        format="json",
        media_type="application/json",
        report={"case_id": "CASE-1", "risk_score": 95},
    )


async def test_report_html_comes_back_as_text() -> None:
    call = RecordingCall((b"<h1>CASE-1</h1>", "text/html; charset=utf-8"))
    spec = tool_spec("report_generator_get_report")

    result = await spec.run(call, spec.parse_arguments({"report_id": "RPT-1", "format": "html"}))

    assert isinstance(result, ReportDocument)
    assert (result.html, result.report) == ("<h1>CASE-1</h1>", None)


async def test_audit_chain_report_is_read_from_the_dataclass() -> None:
    chain = ChainReport(ok=False, entries_checked=7, first_bad_id=5, reason="hash", head_hash="ab")
    spec = tool_spec("fraud_logger_verify_audit_chain")

    result = await spec.run(RecordingCall(chain), spec.parse_arguments({}))

    assert result == AuditChainReport(
        ok=False, entries_checked=7, first_bad_id=5, reason="hash", head_hash="ab"
    )


async def test_delivery_round_counts_come_from_the_report() -> None:
    spec = tool_spec("email_alerts_deliver_pending")
    call = RecordingCall(DeliveryReport(sent=2, failed=1, pending=3))

    result = await spec.run(call, spec.parse_arguments({}))

    assert call.calls == [("email_alerts", "deliver_pending", 100)]
    assert result == DeliveryRound(sent=2, failed=1, pending=3)


async def test_alert_status_keeps_the_order_asked() -> None:
    actions = [
        Action(kind="alert", state="done", id="ALR-2"),
        Action(kind="alert", state="queued", id="ALR-1"),
    ]
    spec = tool_spec("email_alerts_alert_status")

    result = await spec.run(
        RecordingCall(actions), spec.parse_arguments({"alert_ids": ["ALR-2", "ALR-1"]})
    )

    assert result == AlertStatuses(alerts=actions)
    assert spec.read_only is False
