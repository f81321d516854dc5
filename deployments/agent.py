"""The agent: gathers evidence, applies the policy, asks the model, then acts.

Everything here works on a micro-batch of transactions, so each tool is called
once per batch however many requests arrived together. The tools and the model
come in as collaborators: Serve deployment handles in production, plain objects
in tests.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from deployments.fraud_logger import hold_action
from deployments.llm import (
    Assessment,
    ExplainMode,
    assessment_messages,
    assessment_schema,
    case_question_messages,
    parse_assessment,
    should_explain,
)
from deployments.notifier import notification_actions
from deployments.registry import TOOLS, openai_tools
from fraudline.errors import StoreUnavailable
from fraudline.policy import (
    ACCOUNT_ON_HOLD,
    PolicyConfig,
    PolicyOutcome,
    apply_model_advice,
    decide,
    in_grey_zone,
)
from fraudline.schemas import (
    Action,
    DecisionResult,
    Evidence,
    Explanation,
    Reason,
    Transaction,
)

logger = logging.getLogger(__name__)

EVIDENCE_TOOLS = ("transaction_risk", "identity", "geolocation")


class Toolbox(Protocol):
    """The six tools, each called once per batch."""

    async def evaluate(self, tool: str, transactions: list[Transaction]) -> list[Evidence]: ...

    async def log(self, items: list[tuple[Transaction, DecisionResult]]) -> list[Any]: ...

    async def deliver_alerts(self, alert_ids: list[str]) -> list[Action]: ...

    async def write_reports(self, case_ids: list[str]) -> list[str]: ...

    async def stored_decisions(
        self, transaction_ids: list[str]
    ) -> list[DecisionResult | None]: ...

    async def active_holds(self, customer_ids: list[str], at: datetime) -> dict[str, Any]: ...

    async def notify_customers(self, notification_ids: list[str]) -> list[Action]: ...


ToolCall = tuple[str, str]
"""A model's function call: (tool name, arguments as JSON text)."""

DeltaSink = Callable[[str, str], None]
"""Receives streamed model text as (kind, text); kind is "reasoning" or "answer"."""


class Explainer(Protocol):
    """A chat model that answers, under a JSON schema when one is given."""

    model_id: str

    async def complete(
        self,
        messages: list[dict[str, str]],
        schema: dict[str, Any] | None,
        max_tokens: int,
        on_delta: DeltaSink | None = None,
    ) -> str | None: ...

    async def choose_tools(
        self,
        messages: list[dict[str, str]],
        tools: list[dict[str, Any]],
        max_tokens: int,
    ) -> list[ToolCall]: ...


class Observer(Protocol):
    """Receives what the agent did, for metrics."""

    def record_decisions(self, results: list[DecisionResult]) -> None: ...

    def tool_failed(self, tool: str, kind: str) -> None: ...


class AgentConfig(BaseModel):
    """How the agent weighs evidence and when it asks the model."""

    model_config = ConfigDict(extra="forbid")

    policy: PolicyConfig = Field(default_factory=PolicyConfig)
    mode: Literal["playbook", "tool_calling"] = Field(
        default="playbook",
        description="playbook: every evidence tool, then the model's assessment. "
        "tool_calling: the model also picks tools to consult before it assesses.",
    )
    max_tool_steps: int = Field(default=3, ge=1, le=6)
    explain_mode: ExplainMode = "grey_zone"
    tool_timeout_s: float = Field(default=5.0, gt=0)
    model_timeout_s: float = Field(default=20.0, gt=0)
    model_max_tokens: int = Field(default=400, gt=0)


class Agent:
    """Decides on batches of transactions.

    Args:
        config: Policy thresholds, explain mode and timeouts.
        tools: The six tools behind one batch interface.
        explainer: The reasoning model, or None to decide without it.
        observer: Told of every decision and tool failure (metrics), if given.
    """

    def __init__(
        self,
        config: AgentConfig,
        tools: Toolbox,
        explainer: Explainer | None = None,
        observer: Observer | None = None,
    ) -> None:
        self._config = config
        self._tools = tools
        self._explainer = explainer
        self._observer = observer

    async def decide_batch(
        self, transactions: Sequence[Transaction], explain: bool = True
    ) -> list[DecisionResult]:
        """Decides each transaction and acts on it; one result per input, in order.

        With `explain` False the model is left out whatever the explain mode: bulk
        scoring keeps to the fast path.
        """
        batch = [_with_timestamp(tx) for tx in transactions]
        if not batch:
            return []
        started = time.perf_counter()

        holds = await self._holds(batch)
        if holds:
            return await self._decide_with_holds(batch, holds, explain, started)
        return await self._decide_fresh(batch, explain, started)

    async def _decide_fresh(
        self, batch: list[Transaction], explain: bool, started: float
    ) -> list[DecisionResult]:
        evidence = await self._gather_evidence(batch)
        evidence_ms = _ms_since(started)

        policy_started = time.perf_counter()
        outcomes = [decide(found, self._config.policy) for found in evidence]
        policy_ms = _ms_since(policy_started)

        retried = await self._retries_bound_for_model(batch, outcomes, explain)
        explained = await asyncio.gather(
            *(self._explain(tx, outcome, found, explain and tx.transaction_id not in retried)
              for tx, outcome, found in zip(batch, outcomes, evidence))
        )

        results = [
            self._result(tx, found, outcome, explanation,
                         {"evidence": evidence_ms, "policy": policy_ms, "model": model_ms})
            for tx, found, (outcome, explanation, model_ms) in zip(batch, evidence, explained)
        ]
        return await self._finish(batch, results, started)

    def _wants_model(self, outcome: PolicyOutcome) -> bool:
        return self._explainer is not None and should_explain(
            self._config.explain_mode, in_grey_zone(outcome.risk_score, self._config.policy)
        )

    async def _retries_bound_for_model(
        self, batch: list[Transaction], outcomes: list[PolicyOutcome], explain: bool
    ) -> set[str]:
        """Ids of retried transactions the model would otherwise weigh again.

        A retry is answered with the decision stored the first time, so asking the
        model about it only costs the wait. One read, and only for a batch that
        would wait for the model; when the read fails the model is asked as usual.
        """
        if not explain:
            return set()
        ids = [tx.transaction_id for tx, o in zip(batch, outcomes) if self._wants_model(o)]
        if not ids:
            return set()
        try:
            stored = await asyncio.wait_for(
                self._tools.stored_decisions(ids), self._config.tool_timeout_s
            )
        except Exception:
            logger.warning("looking up stored decisions failed; the model is asked")
            return set()
        return {tid for tid, before in zip(ids, stored, strict=True) if before is not None}

    async def _holds(self, batch: list[Transaction]) -> dict[str, Any]:
        customers = sorted({tx.customer_id for tx in batch})
        try:
            return await asyncio.wait_for(
                self._tools.active_holds(customers, datetime.now(UTC)),
                self._config.tool_timeout_s,
            )
        except Exception as exc:
            # Without knowing the holds, no decision is safe to give out.
            logger.exception("reading account holds failed")
            raise StoreUnavailable("account holds could not be read") from exc

    async def _decide_with_holds(
        self,
        batch: list[Transaction],
        holds: dict[str, Any],
        explain: bool,
        started: float,
    ) -> list[DecisionResult]:
        """Blocks held customers' payments at once; the rest are decided as usual."""
        free = [tx for tx in batch if tx.customer_id not in holds]
        decided = iter(await self._decide_fresh(free, explain, started) if free else [])
        held = [tx for tx in batch if tx.customer_id in holds]
        on_hold = iter(await self._finish(
            held, [self._on_hold(tx, holds[tx.customer_id]) for tx in held], started
        ))
        return [
            next(on_hold) if tx.customer_id in holds else next(decided) for tx in batch
        ]

    def _on_hold(self, tx: Transaction, hold: Any) -> DecisionResult:
        until = hold.until.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
        reason = Reason(
            code=ACCOUNT_ON_HOLD,
            text=f"Account on hold until {until} after case {hold.case_id}.",
            tool="policy",
            points=0.0,
        )
        outcome = PolicyOutcome("block", 100.0, (reason,))
        return self._result(
            tx, {}, outcome,
            Explanation(text=f"Blocked: account on hold until {until}."),
            {"evidence": 0.0, "policy": 0.0, "model": 0.0},
        )

    async def decide_stream(self, transaction: Transaction) -> AsyncIterator[dict[str, Any]]:
        """Decides one transaction, telling each step as it happens.

        Yields events: `tool_call` and `tool_result` per evidence tool, `policy`,
        `reasoning` and `answer` text as the model writes it, then `decision` with
        the same result `decide_batch` would give.
        """
        tx = _with_timestamp(transaction)
        started = time.perf_counter()
        holds = await self._holds([tx])
        if holds:
            [result] = await self._decide_with_holds([tx], holds, True, started)
            yield {"event": "decision", "result": result.model_dump(mode="json")}
            return
        for tool in EVIDENCE_TOOLS:
            yield {"event": "tool_call", "tool": tool}
        pending = {
            asyncio.ensure_future(self._evaluate(tool, [tx])): tool for tool in EVIDENCE_TOOLS
        }
        found: dict[str, Evidence] = {}
        while pending:
            done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                tool = pending.pop(task)
                found[tool] = task.result()[0]
                yield {"event": "tool_result", "tool": tool,
                       "evidence": found[tool].model_dump(mode="json")}
        found = {tool: found[tool] for tool in EVIDENCE_TOOLS}
        evidence_ms = _ms_since(started)

        outcome = decide(found, self._config.policy)
        yield {"event": "policy", "decision": outcome.decision,
               "risk_score": outcome.risk_score}

        deltas: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        explaining = asyncio.ensure_future(
            self._explain(tx, outcome, found, True, lambda k, t: deltas.put_nowait((k, t)))
        )
        while not (explaining.done() and deltas.empty()):
            getter = asyncio.ensure_future(deltas.get())
            await asyncio.wait({getter, explaining}, return_when=asyncio.FIRST_COMPLETED)
            if getter.done():
                kind, text = getter.result()
                yield {"event": kind, "text": text}
            else:
                getter.cancel()
        outcome, explanation, model_ms = explaining.result()

        result = self._result(tx, found, outcome, explanation,
                              {"evidence": evidence_ms, "policy": 0.0, "model": model_ms})
        [result] = await self._finish([tx], [result], started)
        yield {"event": "decision", "result": result.model_dump(mode="json")}

    async def ask(self, case: dict[str, Any], question: str) -> str | None:
        """Answers an analyst's question about a case, from the case's evidence."""
        if self._explainer is None:
            return None
        messages = case_question_messages(case, question)
        try:
            return await asyncio.wait_for(
                self._explainer.complete(messages, None, self._config.model_max_tokens),
                self._config.model_timeout_s,
            )
        except TimeoutError:
            logger.warning("model timed out answering a question")
            return None

    def _result(
        self,
        tx: Transaction,
        found: dict[str, Evidence],
        outcome: PolicyOutcome,
        explanation: Explanation,
        latency_ms: dict[str, float],
    ) -> DecisionResult:
        return DecisionResult(
            transaction_id=tx.transaction_id,
            customer_id=tx.customer_id,
            decision=outcome.decision,
            risk_score=outcome.risk_score,
            risk_level=outcome.risk_level,
            reasons=list(outcome.reasons),
            evidence=found,
            explanation=explanation,
            policy_version=self._config.policy.version,
            decided_at=datetime.now(UTC),
            latency_ms=latency_ms,
        )

    async def _finish(
        self, batch: list[Transaction], results: list[DecisionResult], started: float
    ) -> list[DecisionResult]:
        actions_started = time.perf_counter()
        results = await self._act(batch, results)
        actions_ms = _ms_since(actions_started)
        total_ms = _ms_since(started)
        for result in results:
            result.latency_ms["actions"] = actions_ms
            result.latency_ms["total"] = total_ms
        if self._observer is not None:
            self._observer.record_decisions(results)
        return results

    async def _gather_evidence(self, batch: list[Transaction]) -> list[dict[str, Evidence]]:
        answers = await asyncio.gather(
            *(self._evaluate(tool, batch) for tool in EVIDENCE_TOOLS)
        )
        return [
            {tool: answers[t][i] for t, tool in enumerate(EVIDENCE_TOOLS)}
            for i in range(len(batch))
        ]

    async def _evaluate(self, tool: str, batch: list[Transaction]) -> list[Evidence]:
        try:
            found = await asyncio.wait_for(
                self._tools.evaluate(tool, batch), self._config.tool_timeout_s
            )
            if len(found) != len(batch):
                raise ValueError(f"{tool} answered {len(found)} of {len(batch)}")
            return found
        except TimeoutError:
            logger.warning("tool %s timed out on a batch of %d", tool, len(batch))
            error, kind = f"no answer within {self._config.tool_timeout_s:g} s", "timeout"
        except Exception as exc:  # a failing tool must not fail the decision
            logger.exception("tool %s failed on a batch of %d", tool, len(batch))
            error, kind = type(exc).__name__, "error"
        if self._observer is not None:
            self._observer.tool_failed(tool, kind)
        return [Evidence.unavailable(tool, error) for _ in batch]

    async def _explain(
        self,
        tx: Transaction,
        outcome: PolicyOutcome,
        evidence: dict[str, Evidence],
        allowed: bool,
        on_delta: DeltaSink | None = None,
    ) -> tuple[PolicyOutcome, Explanation, float]:
        policy_text = _policy_explanation(outcome)
        if not (allowed and self._wants_model(outcome)) or self._explainer is None:
            return outcome, Explanation(text=policy_text), 0.0

        started = time.perf_counter()
        assessment = await self._ask_model(tx, outcome, evidence, on_delta)
        model_ms = _ms_since(started)
        if assessment is None:
            text = f"{policy_text} The reasoning model was unavailable; the decision stands."
            return outcome, Explanation(text=text, model_status="unavailable",
                                        model=self._explainer.model_id), model_ms

        advised = apply_model_advice(outcome, assessment.recommended_action,
                                     assessment.summary)
        return advised, Explanation(
            text=assessment.summary or policy_text,
            source="model",
            model_status="ok",
            model=self._explainer.model_id,
            key_factors=assessment.key_factors,
            recommended_action=assessment.recommended_action,
            confidence={"low": 0.25, "medium": 0.5, "high": 0.75}[assessment.confidence],
        ), model_ms

    async def _ask_model(
        self,
        tx: Transaction,
        outcome: PolicyOutcome,
        evidence: dict[str, Evidence],
        on_delta: DeltaSink | None = None,
    ) -> Assessment | None:
        assert self._explainer is not None
        messages = assessment_messages(tx, outcome, evidence)
        if self._config.mode == "tool_calling":
            messages = await self._consult_tools(messages, evidence)
        try:
            text = await asyncio.wait_for(
                self._explainer.complete(
                    messages, assessment_schema(), self._config.model_max_tokens, on_delta
                ),
                self._config.model_timeout_s,
            )
        except TimeoutError:
            logger.warning("model timed out for %s", tx.transaction_id)
            return None
        except Exception:
            logger.exception("model failed for %s", tx.transaction_id)
            return None
        return parse_assessment(text)

    async def _consult_tools(
        self, messages: list[dict[str, Any]], evidence: dict[str, Evidence]
    ) -> list[dict[str, Any]]:
        """Lets the model call evidence tools by name before it assesses.

        The answers are the evidence the policy already used, whatever arguments
        the model wrote: the model chooses what to read, never what is true, so
        text in a payment cannot change the decision, the tools the policy ran or
        who is alerted. Arguments that break the tool's schema get a tool error.
        """
        assert self._explainer is not None
        specs = [spec for spec in TOOLS if spec.deployment in EVIDENCE_TOOLS]
        by_name = {spec.name: spec for spec in specs}
        offered = openai_tools(specs)
        transcript = list(messages)
        for step in range(self._config.max_tool_steps):
            try:
                calls = await asyncio.wait_for(
                    self._explainer.choose_tools(
                        transcript, offered, self._config.model_max_tokens
                    ),
                    self._config.model_timeout_s,
                )
            except Exception:
                logger.exception("tool choice failed at step %d", step)
                break
            if not calls:
                break
            for index, (name, arguments) in enumerate(calls):
                call_id = f"call_{step}_{index}"
                transcript.append({
                    "role": "assistant",
                    "content": "",
                    "tool_calls": [{"id": call_id, "type": "function",
                                    "function": {"name": name, "arguments": arguments}}],
                })
                transcript.append({
                    "role": "tool", "tool_call_id": call_id,
                    "content": _tool_answer(by_name.get(name), arguments, evidence),
                })
        return transcript

    async def _act(
        self, batch: list[Transaction], results: list[DecisionResult]
    ) -> list[DecisionResult]:
        logged = await self._log(batch, results)
        results = await self._answer_retries_as_before(results, logged)

        alert_ids = [outcome.alert_id for outcome in logged if outcome.alert_id]
        case_ids = [outcome.case_id for outcome in logged if outcome.case_id]
        notice_ids = [i for outcome in logged for i in outcome.notification_ids]
        alert_actions, report_ids, notice_actions = await asyncio.gather(
            self._safely(self._tools.deliver_alerts(alert_ids), []),
            self._safely(self._tools.write_reports(case_ids), [None] * len(case_ids)),
            self._safely(self._tools.notify_customers(notice_ids), []),
        )
        alert_action = {action.id: action for action in alert_actions}
        notice_action = {action.id: action for action in notice_actions}
        report_for_case = dict(zip(case_ids, report_ids))

        for result, outcome in zip(results, logged):
            if result.decision == "block":
                result.actions.append(Action(kind="transaction_blocked", state="done"))
            hold = hold_action(outcome)
            if hold is not None:
                result.actions.append(hold)
            if outcome.alert_id:
                result.actions.append(
                    alert_action.get(outcome.alert_id)
                    or Action(kind="alert", id=outcome.alert_id, state="queued")
                )
            if outcome.case_id:
                result.actions.append(
                    Action(kind="case", id=outcome.case_id, state="done",
                           detail=None if outcome.created else "existing case")
                )
                report_id = report_for_case.get(outcome.case_id)
                result.actions.append(
                    Action(kind="report", id=report_id, state="done" if report_id else "failed")
                )
            result.actions.extend(notification_actions(outcome, notice_action))
        return results

    async def _log(self, batch: list[Transaction], results: list[DecisionResult]) -> list[Any]:
        # A decision that is not on record has no audit entry and no case, so it is
        # not given out: the client gets a retryable error instead.
        try:
            return await asyncio.wait_for(
                self._tools.log(list(zip(batch, results))), self._config.tool_timeout_s
            )
        except TimeoutError:
            logger.warning("logging a batch of %d timed out", len(batch))
            if self._observer is not None:
                self._observer.tool_failed("fraud_logger", "timeout")
            raise StoreUnavailable("the decision could not be recorded in time") from None
        except Exception as exc:
            logger.exception("logging a batch of %d failed", len(batch))
            if self._observer is not None:
                self._observer.tool_failed("fraud_logger", "error")
            raise StoreUnavailable("the decision could not be recorded") from exc

    async def _answer_retries_as_before(
        self, results: list[DecisionResult], logged: list[Any]
    ) -> list[DecisionResult]:
        # A retried transaction id gets the decision taken the first time, so a
        # client retry can never turn a block into an approval.
        retried = [index for index, outcome in enumerate(logged) if not outcome.created]
        if not retried:
            return results
        stored = await self._tools.stored_decisions([logged[i].transaction_id for i in retried])
        answered = list(results)
        for index, before in zip(retried, stored, strict=True):
            if before is not None:
                answered[index] = before.model_copy(
                    update={"actions": [], "latency_ms": results[index].latency_ms}
                )
        return answered

    async def _safely(self, call: Any, fallback: list[Any]) -> list[Any]:
        # Alerts wait in the outbox and reports can be rebuilt from stored
        # evidence, so their failure must not undo a decision already logged.
        try:
            return await asyncio.wait_for(call, self._config.tool_timeout_s)
        except Exception:
            logger.exception("follow-up action failed")
            return fallback


def _tool_answer(spec: Any, arguments: str, evidence: dict[str, Evidence]) -> str:
    if spec is None:
        return json.dumps({"error": "no such tool; use one of the tools offered"})
    try:
        spec.parse_arguments(json.loads(arguments or "{}"))
    except (ValueError, TypeError) as error:
        return json.dumps({"error": f"invalid arguments: {str(error)[:300]}"})
    found = evidence[spec.deployment]
    return json.dumps({
        "status": found.status,
        "signals": [
            {"code": s.code, "text": s.text, "value": s.value, "unit": s.unit,
             "points": s.points}
            for s in found.signals
        ],
    }, default=str)


def _with_timestamp(tx: Transaction) -> Transaction:
    if tx.timestamp is not None:
        return tx
    return tx.model_copy(update={"timestamp": datetime.now(UTC)})


def _policy_explanation(outcome: PolicyOutcome) -> str:
    verb = {"approve": "Approved", "review": "Sent for review", "block": "Blocked"}
    top = [reason.text for reason in outcome.reasons[:3]]
    because = " ".join(top) if top else "No risk signal was found."
    return f"{verb[outcome.decision]} with risk score {outcome.risk_score:g}/100. {because}"


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
