"""ServeMetrics: what each call records, and the series Ray's metrics endpoint exports."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from fraudline.schemas import DecisionResult, Explanation, Reason
from serve_app.metrics import LATENCY_BUCKETS_MS, RISK_SCORE_BUCKETS, ServeMetrics

DASHBOARD = Path(__file__).resolve().parents[2] / "monitoring" / "grafana-dashboard.json"


@dataclass
class FakeMetric:
    name: str
    tag_keys: tuple[str, ...]
    boundaries: list[float] | None = None
    points: list[tuple[float, dict[str, str]]] = field(default_factory=list)

    def inc(self, value: float = 1.0, tags: dict[str, str] | None = None) -> None:
        assert value > 0, "Ray's counters reject increments of zero"
        self._record(value, tags)

    def observe(self, value: float, tags: dict[str, str] | None = None) -> None:
        self._record(value, tags)

    def _record(self, value: float, tags: dict[str, str] | None) -> None:
        assert set(tags or {}) == set(self.tag_keys), (self.name, tags)
        self.points.append((value, tags or {}))


class FakeRegistry:
    def __init__(self) -> None:
        self.metrics: dict[str, FakeMetric] = {}

    def counter(self, name: str, description: str, tag_keys: tuple[str, ...]) -> FakeMetric:
        assert description
        return self.metrics.setdefault(name, FakeMetric(name, tag_keys))

    def histogram(
        self, name: str, description: str, boundaries: list[float], tag_keys: tuple[str, ...]
    ) -> FakeMetric:
        assert description
        return self.metrics.setdefault(name, FakeMetric(name, tag_keys, boundaries))


@pytest.fixture
def registry() -> FakeRegistry:
    return FakeRegistry()


@pytest.fixture
def metrics(registry: FakeRegistry) -> ServeMetrics:
    return ServeMetrics(counter=registry.counter, histogram=registry.histogram)


def result(decision: str, score: float, **latency_ms: float) -> DecisionResult:
    level = {"approve": "low", "review": "medium", "block": "high"}[decision]
    return DecisionResult(
        transaction_id=f"TXN-{decision}-{score:g}",
        customer_id="C-12345",
        decision=decision,  # type: ignore[arg-type]
        risk_score=score,
        risk_level=level,  # type: ignore[arg-type]
        reasons=[],
        evidence={},
        explanation=Explanation(text="test"),
        policy_version="2026.12-1",
        decided_at=datetime(2026, 12, 1, tzinfo=UTC),
        latency_ms=latency_ms,
    )


def test_decisions_are_counted_once_per_outcome_per_batch(
    metrics: ServeMetrics, registry: FakeRegistry
) -> None:
    batch = [result("approve", 8), result("approve", 12), result("block", 95)]

    metrics.record_decisions(batch)

    assert sorted(registry.metrics["fraudline_decisions"].points, key=str) == [
        (1, {"decision": "block"}),
        (2, {"decision": "approve"}),
    ]
    assert [v for v, _ in registry.metrics["fraudline_risk_score"].points] == [8, 12, 95]


def test_stage_latencies_are_observed_except_stages_that_did_not_run(
    metrics: ServeMetrics, registry: FakeRegistry
) -> None:
    metrics.record_decisions(
        [result("review", 52, evidence=3.5, policy=0.2, model=0.0, actions=4.1, total=8.0)]
    )

    observed = {
        tags["stage"]: value
        for value, tags in registry.metrics["fraudline_stage_latency_ms"].points
    }
    assert observed == {"evidence": 3.5, "policy": 0.2, "actions": 4.1, "total": 8.0}


def test_buckets_have_edges_at_the_policy_thresholds(registry: FakeRegistry) -> None:
    ServeMetrics(counter=registry.counter, histogram=registry.histogram)

    assert {25.0, 40.0, 75.0} <= set(registry.metrics["fraudline_risk_score"].boundaries or [])
    assert registry.metrics["fraudline_stage_latency_ms"].boundaries == LATENCY_BUCKETS_MS
    assert RISK_SCORE_BUCKETS[-1] == 100.0


def test_tool_failures_are_counted_by_tool_and_kind(
    metrics: ServeMetrics, registry: FakeRegistry
) -> None:
    metrics.tool_failed("identity", "timeout")
    metrics.tool_failed("geolocation", "error")

    assert registry.metrics["fraudline_tool_failures"].points == [
        (1, {"tool": "identity", "kind": "timeout"}),
        (1, {"tool": "geolocation", "kind": "error"}),
    ]


def test_unknown_tool_failure_kind_is_rejected_naming_it(metrics: ServeMetrics) -> None:
    with pytest.raises(ValueError, match="'crash'"):
        metrics.tool_failed("identity", "crash")


def test_model_call_counts_its_tokens(metrics: ServeMetrics, registry: FakeRegistry) -> None:
    metrics.model_called("ok", prompt_tokens=812, completion_tokens=96)
    metrics.model_called("unavailable", prompt_tokens=0, completion_tokens=0)

    assert registry.metrics["fraudline_model_calls"].points == [
        (1, {"status": "ok"}),
        (1, {"status": "unavailable"}),
    ]
    assert registry.metrics["fraudline_model_tokens"].points == [
        (812, {"kind": "prompt"}),
        (96, {"kind": "completion"}),
    ]


def test_escalations_are_counted_from_the_decisions(
    metrics: ServeMetrics, registry: FakeRegistry
) -> None:
    escalated = result("review", 30, evidence=2.0, total=5.0)
    escalated.reasons.append(
        Reason(code="model_escalation", text="asked for review", tool="model", points=0)
    )

    metrics.record_decisions([escalated, result("approve", 10, evidence=2.0, total=5.0)])

    assert registry.metrics["fraudline_model_escalations"].points == [(1, {})]


def test_ray_metrics_record_outside_a_cluster_without_starting_ray() -> None:
    ray = pytest.importorskip("ray")
    was_running = ray.is_initialized()  # another test's cluster may be up
    real = ServeMetrics()

    real.record_decisions([result("block", 91, evidence=2.0, total=5.0)])
    real.tool_failed("identity", "error")
    real.model_called("ok", 10, 5)

    assert ray.is_initialized() is was_running


def test_grafana_dashboard_charts_every_series(registry: FakeRegistry) -> None:
    ServeMetrics(counter=registry.counter, histogram=registry.histogram)
    panels = json.loads(DASHBOARD.read_text())["panels"]
    queries = " ".join(t["expr"] for panel in panels for t in panel["targets"])

    for name, metric in registry.metrics.items():
        # Ray adds `ray_`; Prometheus adds `_total` to counters, `_bucket` to histograms.
        suffix = "_bucket" if metric.boundaries else "_total"
        assert f"ray_{name}{suffix}" in queries, name


# Series the demo traffic must produce on Ray's Prometheus endpoint. Tool failures and
# escalations appear only once one happens, so the unit tests above cover those.
EXPECTED_SERIES = {
    "approve decisions": r'ray_fraudline_decisions_total\{[^}]*decision="approve"',
    "review decisions": r'ray_fraudline_decisions_total\{[^}]*decision="review"',
    "block decisions": r'ray_fraudline_decisions_total\{[^}]*decision="block"',
    "risk score histogram": r'ray_fraudline_risk_score_bucket\{[^}]*le="40.0"',
    "evidence latency": r'ray_fraudline_stage_latency_ms_bucket\{[^}]*stage="evidence"',
    "policy latency": r'ray_fraudline_stage_latency_ms_bucket\{[^}]*stage="policy"',
    "model latency": r'ray_fraudline_stage_latency_ms_bucket\{[^}]*stage="model"',
    "actions latency": r'ray_fraudline_stage_latency_ms_bucket\{[^}]*stage="actions"',
    "total latency": r'ray_fraudline_stage_latency_ms_count\{[^}]*stage="total"',
    "model calls": r"ray_fraudline_model_calls_total\{",
    "prompt tokens": r'ray_fraudline_model_tokens_total\{[^}]*kind="prompt"',
}


@pytest.mark.ray
def test_metrics_endpoint_exports_each_series_after_requests(running_app: Any) -> None:
    from fraudline.demo import SCENARIOS

    cases = []
    for name, scenario in SCENARIOS.items():
        payload = dict(scenario, transaction_id=f"TXN-METRICS-{name}")
        response = httpx.post(f"{running_app.url}/v1/analyze", json=payload, timeout=120)
        assert response.status_code == 200, response.text
        cases += [a["id"] for a in response.json()["actions"] if a["kind"] == "case"]
    # A question about a case always reaches the model, whatever the scores were.
    asked = httpx.post(
        f"{running_app.url}/v1/cases/{cases[0]}/ask",
        json={"question": "Why was this flagged?"},
        timeout=120,
    )
    assert asked.status_code == 200, asked.text

    # Ray ships replica metrics to the endpoint every few seconds.
    missing = list(EXPECTED_SERIES)
    deadline = time.monotonic() + 60
    while missing and time.monotonic() < deadline:
        text = httpx.get(running_app.metrics_url, timeout=10).text
        missing = [k for k, pattern in EXPECTED_SERIES.items() if not re.search(pattern, text)]
        if missing:
            time.sleep(1)

    assert missing == []
