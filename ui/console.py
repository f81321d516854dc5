"""The analysts' console: a Gradio app over the public HTTP API."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import tempfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from fraudline.demo import SCENARIOS
from fraudline.schemas import Transaction
from ui import views
from ui.client import (
    ApiError,
    EndpointMissing,
    FraudlineClient,
    StreamEvent,
    StreamUnavailable,
    Unauthorized,
    Unreachable,
)

if TYPE_CHECKING:
    import gradio
    from fastapi import FastAPI

logger = logging.getLogger(__name__)

CONSOLE_PATH = "/console"
PAGE_SIZES = [10, 25, 50]
CASE_STATUSES = ["open", "investigating", "confirmed_fraud", "false_positive", "closed"]
QUEUE_COLUMNS = ["Case", "Created", "Customer", "Decision", "Risk", "Status", "Label", "Assignee"]
QUALITY_COLUMNS = [
    "Policy", "Cases", "Labelled", "Block precision", "Review precision", "False-positive rate",
]
PERIODS = {"Last 24 hours": (timedelta(hours=24), 24), "Last 7 days": (timedelta(days=7), 7),
           "Last 30 days": (timedelta(days=30), 30)}
SCENARIO_BUTTONS = {
    "low_risk": "Scenario 1: low risk",
    "high_risk": "Scenario 2: high risk",
    "medium_risk": "Scenario 3: medium risk",
}
# Form fields in the order of the Analyse screen; each maps to a Transaction field.
FORM_FIELDS = [
    "transaction_id", "customer_id", "amount", "currency", "merchant", "merchant_category",
    "location", "previous_location", "time_since_last_transaction", "card_present",
    "device_id", "ip_address",
]
_FIELD_LABELS = {
    "transaction_id": "Transaction id",
    "customer_id": "Customer id",
    "amount": "Amount",
    "currency": "Currency (ISO 4217)",
    "merchant": "Merchant",
    "merchant_category": "Merchant category",
    "location": "Location (City, ST or City, Country)",
    "previous_location": "Previous payment's location",
    "time_since_last_transaction": "Time since previous payment",
    "card_present": "Card present",
    "device_id": "Device id",
    "ip_address": "IP address",
}
_SUMMARY_CONCURRENCY = 8


def build_console(api_url: str, *, api_key: str | None = None) -> gradio.Blocks:
    """Builds the console; mount it with `gr.mount_gradio_app(app, blocks, path="/console")`.

    Gradio is imported here, not at module import, so the ingress replica builds
    the app after it is deserialised (a built Blocks cannot be pickled).

    Args:
        api_url: Base URL of the public API, e.g. http://127.0.0.1:8000.
        api_key: A key the console sends when the analyst has not signed in with
            their own, or None.
    """
    import gradio as gr

    client = FraudlineClient(api_url, api_key)
    reports_dir = Path(tempfile.gettempdir()) / "fraudline-console"

    with gr.Blocks(title="Fraudline console", analytics_enabled=False) as console:
        key_state = gr.State("")
        case_state = gr.State("")
        page_state = gr.State(0)

        with gr.Row():
            with gr.Column(scale=3):
                gr.Markdown("## Fraudline console", elem_id="brand")
                connection = gr.Markdown(elem_id="connection")
            analyst = gr.Textbox(
                value="analyst",
                label="Analyst (named in the audit trail)",
                max_length=100,
                scale=2,
            )
            key_box = gr.Textbox(
                label="API key",
                type="password",
                placeholder="Paste your API key, then Enter",
                visible=False,
                scale=2,
            )
            sign_in = gr.Button("Sign in", visible=False, scale=1)

        with gr.Tabs(selected="analyse") as tabs:
            with gr.Tab("Analyse", id="analyse"):
                analyse = _analyse_screen(gr)
            with gr.Tab("Queue", id="queue") as queue_tab:
                queue = _queue_screen(gr)
            with gr.Tab("Case", id="case"):
                case = _case_screen(gr)
            with gr.Tab("Overview", id="overview") as overview_tab:
                overview = _overview_screen(gr)

        # Sign-in: the key lives in this browser session only.
        async def probe(key: str) -> tuple[Any, ...]:
            try:
                await client.with_key(key).list_cases(limit=1)
            except EndpointMissing:
                pass  # An API without a case list still serves the other screens.
            except Unauthorized as error:
                return (
                    gr.Textbox(visible=True),
                    gr.Button(visible=True),
                    f"**Sign in:** the API wants an API key ({error.detail}).",
                )
            except ApiError as error:
                return gr.skip(), gr.skip(), _error_text(error, "connect")
            signed = " as the signed-in key holder" if key else ""
            return gr.skip(), gr.skip(), f"Connected to the API{signed}."

        async def sign_in_with(key: str) -> tuple[Any, ...]:
            key = key.strip()
            shown = await probe(key)
            return (key, *shown)

        console.load(probe, inputs=[key_state], outputs=[key_box, sign_in, connection])
        for trigger in (sign_in.click, key_box.submit):
            trigger(
                sign_in_with,
                inputs=[key_box],
                outputs=[key_state, key_box, sign_in, connection],
            )

        # Analyse.
        analysis_outputs = [
            analyse["progress"],
            analyse["decision"],
            analyse["map"],
            analyse["reasoning"],
            analyse["checks"],
            case_state,
            analyse["open_case"],
        ]

        async def run_form(key: str, *values: Any) -> AsyncIterator[tuple[Any, ...]]:
            payload = _form_payload(values)
            async for shown in _analysis(gr, client.with_key(key), payload):
                yield shown

        async def run_json(key: str, text: str) -> AsyncIterator[tuple[Any, ...]]:
            async for shown in _json_analysis(gr, client.with_key(key), text):
                yield shown

        fields = analyse["fields"]
        analyse["submit"].click(run_form, inputs=[key_state, *fields], outputs=analysis_outputs)
        analyse["json_submit"].click(
            run_json, inputs=[key_state, analyse["json"]], outputs=analysis_outputs
        )
        for name, button in analyse["scenarios"].items():
            button.click(
                _scenario_filler(name), outputs=fields
            ).then(run_form, inputs=[key_state, *fields], outputs=analysis_outputs)

        # Case.
        case_outputs = [
            case["case_id"],
            case["header"],
            case["evidence"],
            case["timeline"],
            case["audit"],
            case["notes"],
            case["pdf"],
            case["html"],
            case["message"],
            case_state,
        ]

        async def open_case(key: str, case_id: str) -> tuple[Any, ...]:
            return await _case_view(gr, client.with_key(key), case_id, reports_dir)

        async def act_on_case(
            key: str, who: str, case_id: str, action: str, note: str = ""
        ) -> tuple[Any, ...]:
            api = client.with_key(key)
            message = await _case_action(api, who, case_id, action, note)
            shown = await _case_view(gr, api, case_id, reports_dir)
            return (*shown[:-2], message, shown[-1])

        def switch_to_case() -> Any:
            return gr.Tabs(selected="case")

        case["open"].click(open_case, inputs=[key_state, case["case_id"]], outputs=case_outputs)
        case["case_id"].submit(
            open_case, inputs=[key_state, case["case_id"]], outputs=case_outputs
        )
        analyse["open_case"].click(
            open_case, inputs=[key_state, case_state], outputs=case_outputs
        ).then(switch_to_case, outputs=tabs)
        for action in ("investigate", "fraud", "legitimate", "note"):
            button = case[action]

            async def act(
                key: str, who: str, case_id: str, note: str, action: str = action
            ) -> tuple[Any, ...]:
                return await act_on_case(key, who, case_id, action, note)

            button.click(
                act, inputs=[key_state, analyst, case_state, case["note_text"]],
                outputs=case_outputs,
            ).then(
                lambda message: "" if message.startswith("Note added") else gr.skip(),
                inputs=[case["message"]], outputs=[case["note_text"]],
            )

        # Queue.
        queue_inputs = [
            key_state, queue["status"], queue["decision"], queue["min_score"],
            queue["max_score"], queue["page_size"],
        ]
        queue_outputs = [queue["table"], queue["page_info"], page_state]

        async def load_page(key: str, *filters: Any, page: int = 0) -> tuple[Any, ...]:
            return await _queue_page(client.with_key(key), filters, page)

        async def first_page(key: str, *filters: Any) -> tuple[Any, ...]:
            return await load_page(key, *filters, page=0)

        async def next_page(key: str, *args: Any) -> tuple[Any, ...]:
            *filters, page = args
            return await load_page(key, *filters, page=page + 1)

        async def previous_page(key: str, *args: Any) -> tuple[Any, ...]:
            *filters, page = args
            return await load_page(key, *filters, page=max(0, page - 1))

        for trigger in (queue["refresh"].click, queue_tab.select):
            trigger(first_page, inputs=queue_inputs, outputs=queue_outputs)
        for control in ("status", "decision", "page_size"):
            queue[control].input(first_page, inputs=queue_inputs, outputs=queue_outputs)
        for control in ("min_score", "max_score"):
            queue[control].submit(first_page, inputs=queue_inputs, outputs=queue_outputs)
        queue["next"].click(next_page, inputs=[*queue_inputs, page_state], outputs=queue_outputs)
        queue["previous"].click(
            previous_page, inputs=[*queue_inputs, page_state], outputs=queue_outputs
        )

        def picked_case(event: Any) -> str:
            row = event.row_value or []
            return str(row[0]) if row else ""

        # Gradio finds the event argument by its annotation, which must be the class.
        picked_case.__annotations__["event"] = gr.SelectData

        queue["table"].select(picked_case, outputs=[case["case_id"]]).then(
            open_case, inputs=[key_state, case["case_id"]], outputs=case_outputs
        ).then(switch_to_case, outputs=tabs)
        for trigger in (queue["open"].click, queue["case_id"].submit):
            trigger(lambda case_id: case_id.strip(), inputs=[queue["case_id"]],
                    outputs=[case["case_id"]]).then(
                open_case, inputs=[key_state, case["case_id"]], outputs=case_outputs
            ).then(switch_to_case, outputs=tabs)

        # Overview.
        async def load_overview(key: str, period: str) -> tuple[Any, ...]:
            return await _overview(client.with_key(key), period)

        overview_outputs = [
            overview["kpis"], overview["plot"], overview["quality"], overview["message"]
        ]
        for trigger in (overview["refresh"].click, overview_tab.select, overview["period"].input):
            trigger(
                load_overview, inputs=[key_state, overview["period"]], outputs=overview_outputs
            )

    return console


def console_theme() -> Any:
    """Gradio's default look with the system's fonts, so browsers fetch no web fonts."""
    import gradio as gr

    return gr.themes.Default(
        font=["system-ui", "DejaVu Sans", "sans-serif"],
        font_mono=["ui-monospace", "DejaVu Sans Mono", "monospace"],
    )


def mount_console(
    app: FastAPI, api_url: str, *, api_key: str | None = None, path: str = CONSOLE_PATH
) -> FastAPI:
    """Builds the console and mounts it on `app` at `path`, with its theme.

    Prefer this to a bare `gr.mount_gradio_app`: Gradio's default theme makes
    every browser load fonts from a third-party host.

    Args:
        app: The API's FastAPI app, built inside the ingress replica.
        api_url: Base URL the console calls, e.g. http://127.0.0.1:8000.
        api_key: A key the console sends when the analyst has not signed in.
        path: Where the console is served.
    """
    import gradio as gr

    return gr.mount_gradio_app(
        app,
        build_console(api_url, api_key=api_key),
        path=path,
        theme=console_theme(),
        footer_links=[],
        run_history=False,
        show_error=True,
    )


def _analyse_screen(gr: Any) -> dict[str, Any]:
    parts: dict[str, Any] = {}
    with gr.Row():
        with gr.Column(scale=5):
            gr.Markdown("**Demo scenarios**: one click fills the form and analyses it.")
            with gr.Row():
                parts["scenarios"] = {
                    name: gr.Button(text, size="sm", elem_id=f"scenario-{name}")
                    for name, text in SCENARIO_BUTTONS.items()
                }
            fields: dict[str, Any] = {}
            pairs = [FORM_FIELDS[i:i + 2] for i in range(0, len(FORM_FIELDS), 2)]
            for pair in pairs:
                with gr.Row():
                    for name in pair:
                        fields[name] = _field(gr, name)
            parts["fields"] = [fields[name] for name in FORM_FIELDS]
            parts["checks"] = gr.Markdown(elem_id="field-checks")
            parts["submit"] = gr.Button("Analyse", variant="primary", elem_id="analyse")
            with gr.Accordion("Paste JSON (one transaction, or a list for a batch)", open=False):
                parts["json"] = gr.Code(
                    language="json",
                    value=json.dumps(SCENARIOS["high_risk"], indent=2),
                    lines=8,
                    label="Transaction JSON",
                )
                parts["json_submit"] = gr.Button("Analyse JSON", elem_id="analyse-json")
            parts["map"] = gr.HTML(elem_id="travel-panel")
        with gr.Column(scale=6):
            parts["progress"] = gr.Markdown(
                "Pick a scenario or fill in the form.", elem_id="progress"
            )
            parts["decision"] = gr.HTML(elem_id="decision-panel")
            parts["open_case"] = gr.Button(
                "Open this case", visible=False, variant="primary", elem_id="open-case"
            )
            parts["reasoning"] = gr.Markdown(elem_id="reasoning")
    return parts


def _field(gr: Any, name: str) -> Any:
    label = _FIELD_LABELS[name]
    if name == "amount":
        return gr.Number(label=label, precision=2, value=None)
    if name == "card_present":
        return gr.Checkbox(label=label)
    if name == "transaction_id":
        return gr.Textbox(label=label, placeholder="blank: a new id is made")
    if name == "currency":
        return gr.Textbox(label=label, value="USD", max_length=3)
    if name == "time_since_last_transaction":
        return gr.Textbox(label=label, placeholder='e.g. "30 minutes ago" or PT2H')
    return gr.Textbox(label=label)


def _queue_screen(gr: Any) -> dict[str, Any]:
    parts: dict[str, Any] = {}
    with gr.Row():
        parts["status"] = gr.Dropdown(
            ["any", *CASE_STATUSES], value="any", label="Status", scale=2
        )
        parts["decision"] = gr.Dropdown(
            ["any", "review", "block"], value="any", label="Decision", scale=1
        )
        parts["min_score"] = gr.Number(label="Risk from", value=0)
        parts["max_score"] = gr.Number(label="Risk to", value=100)
        parts["page_size"] = gr.Dropdown(PAGE_SIZES, value=25, label="Per page", scale=1)
        parts["refresh"] = gr.Button("Refresh", scale=1, elem_id="queue-refresh")
    parts["table"] = gr.Dataframe(
        headers=QUEUE_COLUMNS,
        interactive=False,
        wrap=True,
        label="Cases, newest first (click a row to open it)",
        elem_id="queue-table",
    )
    with gr.Row():
        parts["previous"] = gr.Button("Previous page", size="sm")
        parts["page_info"] = gr.Markdown(elem_id="page-info")
        parts["next"] = gr.Button("Next page", size="sm")
    with gr.Row():
        parts["case_id"] = gr.Textbox(
            label="Case id", placeholder="CASE-…, then Enter", scale=3, elem_id="queue-case-id"
        )
        parts["open"] = gr.Button("Open case", scale=1)
    return parts


def _case_screen(gr: Any) -> dict[str, Any]:
    parts: dict[str, Any] = {}
    with gr.Row():
        parts["case_id"] = gr.Textbox(
            label="Case id", placeholder="CASE-…, then Enter", scale=3, elem_id="case-id"
        )
        parts["open"] = gr.Button("Open", scale=1)
    parts["header"] = gr.HTML("<p>Open a case from the queue or after an analysis.</p>")
    with gr.Row():
        parts["investigate"] = gr.Button("Start investigating", elem_id="investigate")
        parts["fraud"] = gr.Button("Confirm fraud", variant="stop", elem_id="confirm-fraud")
        parts["legitimate"] = gr.Button("Mark legitimate", elem_id="mark-legitimate")
        parts["pdf"] = gr.DownloadButton("Report (PDF)", visible=False, elem_id="report-pdf")
        parts["html"] = gr.DownloadButton("Report (HTML)", visible=False, elem_id="report-html")
    parts["message"] = gr.Markdown(elem_id="case-message")
    with gr.Row():
        with gr.Column(scale=3):
            parts["evidence"] = gr.HTML(elem_id="case-evidence")
        with gr.Column(scale=2):
            parts["audit"] = gr.Markdown(elem_id="audit-status")
            gr.Markdown("#### Timeline")
            parts["timeline"] = gr.Markdown(elem_id="case-timeline")
            gr.Markdown("#### Notes")
            parts["notes"] = gr.Markdown(elem_id="case-notes")
            parts["note_text"] = gr.Textbox(label="New note", lines=2, max_length=5000)
            parts["note"] = gr.Button("Add note")
    return parts


def _overview_screen(gr: Any) -> dict[str, Any]:
    parts: dict[str, Any] = {}
    with gr.Row():
        parts["period"] = gr.Radio(list(PERIODS), value="Last 7 days", label="Period", scale=3)
        parts["refresh"] = gr.Button("Refresh", scale=1, elem_id="overview-refresh")
    parts["message"] = gr.Markdown()
    parts["kpis"] = gr.HTML()
    parts["plot"] = gr.BarPlot(
        x="period",
        y="decisions",
        color="outcome",
        color_map={k: v for k, v in views.DECISION_COLOURS.items()},
        x_title="",
        y_title="Decisions",
        title="Decisions over time by outcome",
        height=260,
        sort=None,
    )
    parts["quality"] = gr.Dataframe(
        headers=QUALITY_COLUMNS, interactive=False, label="Quality by policy version (labels)"
    )
    return parts


def _scenario_filler(name: str) -> Any:
    def fill() -> list[Any]:
        scenario = {"currency": "USD", "card_present": False, **SCENARIOS[name]}
        return [scenario.get(field, "") for field in FORM_FIELDS]

    fill.__name__ = f"fill_{name}"
    return fill


def _form_payload(values: tuple[Any, ...]) -> dict[str, Any]:
    payload: dict[str, Any] = {}
    for name, value in zip(FORM_FIELDS, values, strict=True):
        if isinstance(value, str):
            value = value.strip()
        if value in ("", None) and name != "card_present":
            continue
        payload[name] = value
    payload.setdefault("transaction_id", new_transaction_id())
    return payload


def new_transaction_id() -> str:
    """A fresh id such as TXN-UI-3F9A1C2B for a transaction typed into the form."""
    return f"TXN-UI-{secrets.token_hex(4).upper()}"


def field_problems(payload: dict[str, Any]) -> list[str]:
    """What is wrong with a transaction, one line per field, in the form's words."""
    try:
        Transaction.model_validate(payload)
    except ValidationError as error:
        problems = []
        for item in error.errors(include_url=False, include_input=False):
            name = str(item["loc"][0]) if item["loc"] else "transaction"
            label = _FIELD_LABELS.get(name, name)
            message = item["msg"].removeprefix("Value error, ")
            if item["type"] == "missing":
                message = "is required"
            problems.append(f"{label}: {message}")
        return problems
    return []


async def _json_analysis(
    gr: Any, api: FraudlineClient, text: str
) -> AsyncIterator[tuple[Any, ...]]:
    try:
        parsed = json.loads(text or "")
    except ValueError as error:
        yield _analysis_view(gr, checks=f"**JSON:** {error}; paste one object or a list.")
        return
    if isinstance(parsed, dict):
        async for shown in _analysis(gr, api, parsed):
            yield shown
        return
    if not isinstance(parsed, list) or not all(isinstance(item, dict) for item in parsed):
        yield _analysis_view(gr, checks="**JSON:** paste one object or a list of objects.")
        return
    yield _analysis_view(gr, progress=f"Sending a batch of {len(parsed)} transactions…")
    try:
        answer = await api.analyze_batch(parsed)
    except ApiError as error:
        yield _analysis_view(gr, progress=_error_text(error, "analyse the batch"))
        return
    yield _analysis_view(gr, progress=_batch_markdown(answer))


async def _analysis(
    gr: Any, api: FraudlineClient, payload: dict[str, Any]
) -> AsyncIterator[tuple[Any, ...]]:
    """Checks the fields, then shows the agent's progress and its decision."""
    problems = field_problems(payload)
    if problems:
        yield _analysis_view(
            gr,
            progress="Fix the fields below, then press Analyse.",
            checks="\n".join(f"- **{problem}**" for problem in problems),
        )
        return
    steps = [f"✓ Fields checked: {payload['transaction_id']}"]
    yield _analysis_view(gr, progress=_steps(steps, "… sending to the agent"))

    result: dict[str, Any] | None = None
    reasoning = ""
    try:
        async for event in api.analyze_stream(payload):
            result, reasoning = _apply_event(event, steps, reasoning, result)
            yield _analysis_view(
                gr, progress=_steps(steps), reasoning=_reasoning(reasoning)
            )
    except StreamUnavailable:
        # This API cannot stream: one call, then the evidence it returns.
        yield _analysis_view(
            gr, progress=_steps(steps, "… tools running: transaction risk, identity, "
                                      "geolocation")
        )
        try:
            result = await api.analyze(payload)
        except ApiError as error:
            yield _analysis_view(gr, progress=_steps(steps, _error_text(error, "analyse")))
            return
        steps += _evidence_steps(result)
        reasoning = str((result.get("explanation") or {}).get("text", ""))
    except ApiError as error:
        yield _analysis_view(gr, progress=_steps(steps, _error_text(error, "analyse")))
        return
    if result is None:
        yield _analysis_view(gr, progress=_steps(steps, "✗ The stream ended with no decision."))
        return

    steps.append(
        f"✓ Decision: **{str(result['decision']).upper()}** at "
        f"{float(result['risk_score']):.0f}/100"
    )
    case_id = next(
        (a.get("id") for a in result.get("actions") or [] if a.get("kind") == "case"), None
    )
    yield _analysis_view(
        gr,
        progress=_steps(steps),
        decision=views.decision_html(result),
        travel=views.travel_map_html((result.get("evidence") or {}).get("geolocation")),
        reasoning=_reasoning(reasoning, result),
        case_id=case_id or "",
        open_case=gr.Button(value=f"Open case {case_id}", visible=True)
        if case_id else gr.Button(visible=False),
    )


def _apply_event(
    event: StreamEvent,
    steps: list[str],
    reasoning: str,
    result: dict[str, Any] | None,
) -> tuple[dict[str, Any] | None, str]:
    kind, data = event.kind.lower(), event.data
    tool = views.tool_name(str(data.get("tool", "")))
    if kind in ("tool_call", "tool_started", "tool_start"):
        steps.append(f"… {tool} running")
    elif kind in ("tool_result", "tool_done", "evidence"):
        found = data.get("evidence") if isinstance(data.get("evidence"), dict) else data
        line = _evidence_line(str(data.get("tool", "")), found)
        running = f"… {tool} running"
        if running in steps:
            steps[steps.index(running)] = line
        else:
            steps.append(line)
    elif kind == "policy":
        steps.append(
            f"✓ Policy: {str(data.get('decision', '?')).upper()} at "
            f"{float(data.get('risk_score', 0)):.0f}/100; waiting for the explanation"
        )
    elif kind in ("reasoning", "answer"):
        if kind == "answer" and "\n\n**Answer:** " not in reasoning:
            reasoning += "\n\n**Answer:** "
        reasoning += str(data.get("text") or "")
    elif kind in ("decision", "result"):
        result = data.get("result") if isinstance(data.get("result"), dict) else data
    elif kind == "error":
        steps.append(f"✗ {data.get('detail') or data.get('text') or 'the agent failed'}")
    return result, reasoning


def _evidence_steps(result: dict[str, Any]) -> list[str]:
    steps = [
        _evidence_line(tool, found) for tool, found in (result.get("evidence") or {}).items()
    ]
    latency = result.get("latency_ms") or {}
    if latency.get("evidence") is not None:
        steps.append(f"✓ Evidence gathered in {float(latency['evidence']):,.0f} ms")
    return steps


def _evidence_line(tool: str, found: dict[str, Any]) -> str:
    if found.get("status", "ok") != "ok":
        return f"! {views.tool_name(tool)}: unavailable ({found.get('error') or 'no answer'})"
    signals = found.get("signals") or []
    points = sum(float(s.get("points", 0)) for s in signals)
    return (
        f"✓ {views.tool_name(tool)}: {points:+.0f} points from {len(signals)} "
        f"signal{'s' if len(signals) != 1 else ''}"
    )


def _steps(steps: list[str], pending: str | None = None) -> str:
    lines = [*steps, pending] if pending else steps
    return "#### Progress\n" + "\n".join(f"{i}. {line}" for i, line in enumerate(lines, 1))


def _reasoning(text: str, result: dict[str, Any] | None = None) -> str:
    if not text:
        return ""
    source = ""
    if result is not None:
        explanation = result.get("explanation") or {}
        by = explanation.get("model") if explanation.get("source") == "model" else "the policy"
        source = f" (by {by})"
    return f"#### Reasoning{source}\n{text}"


def _analysis_view(
    gr: Any,
    *,
    progress: str = "",
    decision: str = "",
    travel: str = "",
    reasoning: str = "",
    checks: str = "",
    case_id: str = "",
    open_case: Any = None,
) -> tuple[Any, ...]:
    return (
        progress,
        decision,
        travel,
        reasoning,
        checks,
        case_id,
        open_case if open_case is not None else gr.Button(visible=False),
    )


def _batch_markdown(answer: dict[str, Any]) -> str:
    rows = []
    for item in answer.get("results") or []:
        if "decision" in item:
            rows.append(
                f"| {item['transaction_id']} | **{item['decision'].upper()}** | "
                f"{float(item['risk_score']):.0f} |"
            )
        else:
            errors = "; ".join(
                f"{'.'.join(map(str, e.get('loc', [])))}: {e.get('msg')}"
                for e in item.get("errors") or []
            )
            rows.append(f"| {item.get('transaction_id') or '#' + str(item.get('index'))} | "
                        f"rejected | {errors} |")
    return (
        f"#### Batch: {answer.get('decided', 0)} decided, {answer.get('rejected', 0)} rejected\n"
        "| Transaction | Decision | Risk / problem |\n|---|---|---|\n" + "\n".join(rows)
    )


async def _case_view(
    gr: Any, api: FraudlineClient, case_id: str, reports_dir: Path
) -> tuple[Any, ...]:
    case_id = (case_id or "").strip()
    hidden = gr.DownloadButton(visible=False)
    if not case_id:
        return (gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip(), hidden,
                hidden, "Type a case id, or open one from the queue.", "")
    try:
        case = await api.case(case_id)
    except ApiError as error:
        return (case_id, "", "", "", "", "", hidden, hidden,
                _error_text(error, f"open case {case_id}"), "")
    audit, pdf, html = await asyncio.gather(
        _audit_line(api), _report_file(gr, api, case, "pdf", reports_dir),
        _report_file(gr, api, case, "html", reports_dir),
    )
    return (
        case_id,
        views.case_header_html(case),
        views.evidence_html((case.get("evidence") or {}).get("evidence") or {}),
        views.timeline_markdown(case),
        audit,
        views.notes_markdown(case),
        pdf,
        html,
        "",
        case_id,
    )


async def _audit_line(api: FraudlineClient) -> str:
    try:
        return views.audit_markdown(await api.verify_audit())
    except ApiError as error:
        return _error_text(error, "check the audit chain")


async def _report_file(
    gr: Any, api: FraudlineClient, case: dict[str, Any], fmt: str, reports_dir: Path
) -> Any:
    report_id = case.get("report_id")
    if not report_id:
        return gr.DownloadButton(visible=False)
    try:
        body = await api.report(str(report_id), fmt)
    except ApiError:
        logger.exception("report %s as %s could not be fetched", report_id, fmt)
        return gr.DownloadButton(visible=False)
    reports_dir.mkdir(parents=True, exist_ok=True)
    path = reports_dir / f"{report_id}.{fmt}"
    await asyncio.to_thread(path.write_bytes, body)
    return gr.DownloadButton(value=str(path), visible=True)


async def _case_action(
    api: FraudlineClient, actor: str, case_id: str, action: str, note: str
) -> str:
    actor = (actor or "").strip()
    if not case_id:
        return "Open a case first."
    if not actor:
        return "Type your name in **Analyst** first: the audit trail names who acted."
    try:
        if action == "investigate":
            await api.update_case(case_id, actor, status="investigating")
            return f"Case {case_id} is now being investigated by {actor}."
        if action == "note":
            if not note.strip():
                return "Type a note first."
            await api.add_note(case_id, note.strip(), actor)
            return f"Note added to {case_id}."
        await api.label(case_id, action, actor)
    except EndpointMissing:
        return f"This API cannot do that yet (no route for '{action}' on cases)."
    except ApiError as error:
        return _error_text(error, f"update case {case_id}")
    verdict = "confirmed as fraud" if action == "fraud" else "marked legitimate"
    return f"Case {case_id} {verdict} by {actor}."


async def _queue_page(
    api: FraudlineClient, filters: tuple[Any, ...] | list[Any], page: int
) -> tuple[Any, ...]:
    status, decision, min_score, max_score, page_size = filters
    size = int(page_size or PAGE_SIZES[1])
    try:
        answer = await api.list_cases(
            status=None if status in (None, "any") else status,
            decision=None if decision in (None, "any") else decision,
            min_score=min_score if min_score not in (None, 0) else None,
            max_score=max_score if max_score not in (None, 100) else None,
            limit=size,
            offset=page * size,
        )
    except EndpointMissing:
        return [], "The API has no case list yet (GET /v1/cases).", 0
    except ApiError as error:
        return [], _error_text(error, "list the cases"), page
    total = int(answer.get("total", 0))
    pages = max(1, -(-total // size))
    if page >= pages and total:
        return await _queue_page(api, filters, pages - 1)
    rows = [
        [
            item.get("case_id"),
            views.short_time(item.get("created_at"), seconds=True),
            item.get("customer_id"),
            str(item.get("decision", "")).upper(),
            round(float(item.get("risk_score", 0))),
            views.STATUS_NAMES.get(item.get("status", ""), item.get("status")),
            item.get("label") or "",
            item.get("assignee") or "",
        ]
        for item in answer.get("items") or []
    ]
    return rows, f"Page {page + 1} of {pages} · {total:,} cases", page


async def _overview(api: FraudlineClient, period: str) -> tuple[Any, ...]:
    import pandas as pd

    span, buckets = PERIODS.get(period, PERIODS["Last 7 days"])
    until = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    if buckets != 24:
        until = until.replace(hour=0) + timedelta(days=1)
    since = until - span
    step = span / buckets
    limit = asyncio.Semaphore(_SUMMARY_CONCURRENCY)

    async def summary(start: datetime, end: datetime) -> dict[str, Any]:
        async with limit:
            return await api.summary(start, end)

    empty = pd.DataFrame({"period": [], "decisions": [], "outcome": []})
    try:
        overall = await summary(since, until)
        slices = await asyncio.gather(
            *(summary(since + i * step, since + (i + 1) * step) for i in range(buckets))
        )
    except EndpointMissing:
        return "", empty, [], "The API has no period summary yet (GET /v1/reports/summary)."
    except ApiError as error:
        return "", empty, [], _error_text(error, "load the overview")
    try:
        quality: dict[str, Any] | None = await api.quality()
    except ApiError:
        quality = None
    fmt = "%H:00" if buckets == 24 else "%m-%d"
    frame = pd.DataFrame(
        [
            {
                "period": (since + i * step).strftime(fmt),
                "decisions": int((part.get("decisions") or {}).get(outcome, 0)),
                "outcome": outcome,
            }
            for i, part in enumerate(slices)
            for outcome in ("approve", "review", "block")
        ]
    )
    note = "" if quality is not None else "Label quality is not available from this API yet."
    rows = views.quality_rows(quality) if quality is not None else []
    return views.kpi_html(overall, quality), frame, rows, note


def _error_text(error: ApiError, doing: str) -> str:
    if isinstance(error, Unauthorized) and error.status == 403:
        return f"✗ Could not {doing}: your key's role may not ({error.detail})."
    if isinstance(error, Unauthorized):
        return f"✗ Could not {doing}: the API wants an API key. Sign in at the top."
    if isinstance(error, Unreachable):
        return f"✗ Could not {doing}: {error.detail}"
    return f"✗ Could not {doing}: {error.detail} (HTTP {error.status})"
