"""Fraudline's own Prometheus series, recorded through `ray.serve.metrics`.

Ray exports them on each node's metrics endpoint with the `ray_` prefix, tagged
with the deployment, replica and application that recorded them, e.g.
`ray_fraudline_decisions_total{decision="block", deployment="Agent", ...}`.
"""

from __future__ import annotations

import logging
from collections import Counter as Tally
from collections.abc import Sequence
from typing import Any, Protocol

from fraudline.policy import MODEL_ESCALATION
from fraudline.schemas import DecisionResult

logger = logging.getLogger(__name__)

# Policy thresholds (40, 75) and the grey zone's edge (25) are bucket edges, so the
# share of scores on either side of each threshold is exact.
RISK_SCORE_BUCKETS = [5.0, 10.0, 20.0, 25.0, 30.0, 40.0, 50.0, 60.0, 75.0, 90.0, 100.0]
# From a warm tool call (a few ms) to a reasoning model's full answer (a minute).
LATENCY_BUCKETS_MS = [
    1.0,
    2.5,
    5.0,
    10.0,
    25.0,
    50.0,
    100.0,
    250.0,
    500.0,
    1000.0,
    2500.0,
    5000.0,
    10000.0,
    30000.0,
    60000.0,
]
# Powers of two up to the batch endpoint's 1,000 items.
BATCH_SIZE_BUCKETS = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1000.0]
STAGES = ("evidence", "policy", "model", "actions", "total")

TOOL_FAILURE_KINDS = ("error", "timeout")


class CounterLike(Protocol):
    def inc(self, value: float = 1.0, tags: dict[str, str] | None = None) -> None: ...


class HistogramLike(Protocol):
    def observe(self, value: float, tags: dict[str, str] | None = None) -> None: ...


class ServeMetrics:
    """The application's counters and histograms, one set per replica.

    Create it inside a replica's constructor, so Serve tags each series with
    that replica. Each method is a handful of in-memory updates; Ray ships them
    to Prometheus in the background.

    Args:
        counter: Factory with `ray.serve.metrics.Counter`'s signature; tests
            pass a fake. Defaults to Ray's.
        histogram: Factory with `ray.serve.metrics.Histogram`'s signature.
    """

    def __init__(self, *, counter: Any = None, histogram: Any = None) -> None:
        if counter is None or histogram is None:
            from ray.serve import metrics

            counter = counter or metrics.Counter
            histogram = histogram or metrics.Histogram

        self.decisions: CounterLike = counter(
            "fraudline_decisions",
            description="Decisions taken, by outcome (approve, review, block).",
            tag_keys=("decision",),
        )
        self.risk_score: HistogramLike = histogram(
            "fraudline_risk_score",
            description="Risk score (0-100) of each decision.",
            boundaries=RISK_SCORE_BUCKETS,
            tag_keys=(),
        )
        self.stage_latency_ms: HistogramLike = histogram(
            "fraudline_stage_latency_ms",
            description="Time spent per decision stage, in milliseconds.",
            boundaries=LATENCY_BUCKETS_MS,
            tag_keys=("stage",),
        )
        self.batch_size: HistogramLike = histogram(
            "fraudline_batch_size",
            description="Transactions per agent batch: one call to each tool carries them.",
            boundaries=BATCH_SIZE_BUCKETS,
            tag_keys=(),
        )
        self.tool_failures: CounterLike = counter(
            "fraudline_tool_failures",
            description="Tool calls that raised (error) or did not answer in time (timeout).",
            tag_keys=("tool", "kind"),
        )
        self.model_calls: CounterLike = counter(
            "fraudline_model_calls",
            description="Requests to the reasoning model, by status.",
            tag_keys=("status",),
        )
        self.model_escalations: CounterLike = counter(
            "fraudline_model_escalations",
            description="Model answers that made the decision stricter than the policy's.",
            tag_keys=(),
        )
        self.model_tokens: CounterLike = counter(
            "fraudline_model_tokens",
            description="Tokens the reasoning model read (prompt) and wrote (completion).",
            tag_keys=("kind",),
        )

    def record_decisions(self, results: Sequence[DecisionResult]) -> None:
        """Counts a batch's outcomes and observes its scores and stage latencies."""
        # One increment per outcome, not per result: a batch is up to a few hundred.
        for decision, count in Tally(result.decision for result in results).items():
            self.decisions.inc(count, tags={"decision": decision})
        escalated = sum(
            1 for result in results
            if any(reason.code == MODEL_ESCALATION for reason in result.reasons)
        )
        if escalated:
            self.model_escalations.inc(escalated)
        for result in results:
            self.risk_score.observe(result.risk_score)
            for stage, elapsed_ms in result.latency_ms.items():
                # A stage that did not run (no model call) is 0 and not a sample.
                if stage in STAGES and elapsed_ms > 0:
                    self.stage_latency_ms.observe(elapsed_ms, tags={"stage": stage})

    def batch_started(self, size: int) -> None:
        """Observes how many single requests one batch gathered."""
        self.batch_size.observe(size)

    def tool_failed(self, tool: str, kind: str) -> None:
        """Counts one failed tool call; `kind` is "error" or "timeout"."""
        if kind not in TOOL_FAILURE_KINDS:
            raise ValueError(f"tool failure kind {kind!r} is not 'error' or 'timeout'")
        self.tool_failures.inc(1, tags={"tool": tool, "kind": kind})

    def model_called(self, status: str, prompt_tokens: int, completion_tokens: int) -> None:
        """Counts one model request and its tokens (escalations come with decisions)."""
        self.model_calls.inc(1, tags={"status": status})
        # Ray's counters reject increments of zero.
        if prompt_tokens > 0:
            self.model_tokens.inc(prompt_tokens, tags={"kind": "prompt"})
        if completion_tokens > 0:
            self.model_tokens.inc(completion_tokens, tags={"kind": "completion"})
