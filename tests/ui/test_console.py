"""The Analyse screen's flow without a browser: stream, fallback, field checks."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import httpx

from fraudline.demo import SCENARIOS
from ui.client import FraudlineClient
from ui.console import _analysis

# Stands in for gradio: the flow only builds buttons to show or hide.
FAKE_GRADIO = SimpleNamespace(Button=lambda **props: props)
DECISION = {
    "transaction_id": "TXN-DEMO-002", "customer_id": "C-12345", "decision": "block",
    "risk_score": 95.0, "risk_level": "high", "reasons": [], "policy_version": "p1",
    "evidence": {"identity": {"tool": "identity", "status": "ok", "signals": [
        {"code": "unknown_device", "text": "new device", "points": 20}]}},
    "actions": [{"kind": "case", "state": "done", "id": "CASE-1A2B3C4D5E6F"}],
    "explanation": {"text": "Blocked: impossible travel.", "source": "policy"},
    "latency_ms": {"evidence": 12.0, "total": 20.0},
}


async def _run(handler: Any) -> list[tuple[Any, ...]]:
    api = FraudlineClient("http://127.0.0.1:9", transport=httpx.MockTransport(handler))
    return [shown async for shown in _analysis(FAKE_GRADIO, api, dict(SCENARIOS["high_risk"]))]


async def test_without_a_stream_one_call_gives_tools_decision_and_case() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/analyze/stream":
            return httpx.Response(503, json={"detail": "streaming is not configured"})
        return httpx.Response(200, json=DECISION)

    *_, (progress, decision, _map, reasoning, checks, case_id, open_case) = await _run(handler)

    assert "✓ Identity: +20 points from 1 signal" in progress
    assert "✓ Decision: **BLOCK** at 95/100" in progress
    assert ">BLOCK</span>" in decision
    assert reasoning == "#### Reasoning (by the policy)\nBlocked: impossible travel."
    assert (checks, case_id) == ("", "CASE-1A2B3C4D5E6F")
    assert open_case == {"value": "Open case CASE-1A2B3C4D5E6F", "visible": True}


async def test_stream_shows_each_tool_then_the_models_words() -> None:
    events = [
        ("tool_call", {"tool": "identity"}),
        ("tool_result", {"tool": "identity", "evidence": DECISION["evidence"]["identity"]}),
        ("policy", {"decision": "block", "risk_score": 95}),
        ("reasoning", {"text": "New device "}),
        ("reasoning", {"text": "and Tor."}),
        ("decision", {"result": DECISION}),
    ]
    body = "".join(f"event: {k}\ndata: {json.dumps(d)}\n\n" for k, d in events)

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text=body, headers={"content-type": "text/event-stream"})

    shown = await _run(handler)

    progress_after_call = shown[1][0]
    assert "… Identity running" in progress_after_call
    final_progress, _, _, reasoning, *_ = shown[-1]
    assert "… Identity running" not in final_progress
    assert "✓ Policy: BLOCK at 95/100" in final_progress
    assert reasoning.endswith("New device and Tor.")


async def test_bad_fields_stop_before_any_request() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"no request expected, got {request.url}")

    api = FraudlineClient("http://127.0.0.1:9", transport=httpx.MockTransport(handler))
    payload = dict(SCENARIOS["high_risk"], ip_address="300.1.1.1")

    [(progress, *_rest)] = [s async for s in _analysis(FAKE_GRADIO, api, payload)]

    assert progress == "Fix the fields below, then press Analyse."
    assert "**IP address: '300.1.1.1' is not an IPv4 or IPv6 address" in _rest[3]
