"""The one registry of Fraudline's tools, for MCP clients and the agent's tool calls."""

from __future__ import annotations

import copy
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from fraudline.records import CaseRecord, CaseSummary
from fraudline.schemas import Action, Evidence, Transaction

_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,63}$"

# Parameter help a model reads before it fills the transaction in; units included.
TRANSACTION_FIELD_HELP: dict[str, str] = {
    "transaction_id": "Unique id of the payment: 1-64 letters, digits and . _ : -.",
    "customer_id": "The card holder's customer id, e.g. C-12345.",
    "amount": (
        "Payment amount in units of `currency` (4500.0 means 4,500.00 USD when "
        "currency is USD); above 0 and at most 10,000,000."
    ),
    "merchant": "Merchant name as it appears on the statement, e.g. Amazon.com.",
    "merchant_category": (
        "Merchant category in words, e.g. E-commerce, Electronics, Travel, Grocery, Cryptocurrency."
    ),
    "location": (
        'Where the payment happens: "City, ST" for the US, "City, Country", '
        'or "lat,lon" in decimal degrees.'
    ),
    "card_present": (
        "True when the physical card was read at a terminal; false for online and phone payments."
    ),
    "device_id": "Id of the device the payment came from, e.g. dev-abc123; null if unknown.",
    "ip_address": "IPv4 or IPv6 address the payment came from; null if unknown.",
    "previous_location": (
        "Where the customer's previous payment happened, in the same format as "
        "location; null if unknown."
    ),
    "time_since_last_transaction": (
        'Time since the customer\'s previous payment, e.g. "30 minutes ago", '
        '"2 hours ago" or ISO 8601 "PT2H"; null if unknown.'
    ),
    "timestamp": (
        "When the payment happened, ISO 8601 with a UTC offset, e.g. "
        "2026-01-31T14:05:00Z; null means now."
    ),
    "currency": "ISO 4217 code of the amount's currency, 3 capital letters; USD if null.",
    "latitude": "Latitude of the payment in decimal degrees (-90 to 90); optional.",
    "longitude": "Longitude of the payment in decimal degrees (-180 to 180); optional.",
}


def _describe_transaction_fields(schema: dict[str, Any]) -> None:
    for name, text in TRANSACTION_FIELD_HELP.items():
        schema["properties"][name]["description"] = text


class TransactionArguments(Transaction):
    """One payment, as an evidence tool takes it; the fields of `Transaction`."""

    model_config = ConfigDict(title="Transaction", json_schema_extra=_describe_transaction_fields)

    def to_transaction(self, now: datetime | None = None) -> Transaction:
        """The plain `Transaction`, its time filled in with `now` when absent."""
        fields = self.model_dump()
        fields["timestamp"] = fields["timestamp"] or now or datetime.now(UTC)
        return Transaction.model_validate(fields)


class NoArguments(BaseModel):
    """A tool that takes no arguments."""

    model_config = ConfigDict(extra="forbid")


class CaseLookup(BaseModel):
    """Which case to read."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    case_id: str = Field(
        pattern=_ID_PATTERN,
        description="Id of the case, e.g. CASE-3F9A1C2B7D10, as the decision's actions name it.",
    )


class CaseQuery(BaseModel):
    """Which recent cases to list."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    limit: int = Field(
        default=20, ge=1, le=100, description="Most cases to return, 1-100; 20 if null."
    )
    decision: Literal["review", "block"] | None = Field(
        default=None, description="Only cases of this decision; null for both."
    )
    customer_id: str | None = Field(
        default=None,
        pattern=_ID_PATTERN,
        description="Only this customer's cases, e.g. C-12345; null for every customer.",
    )


class CaseList(BaseModel):
    """Cases, newest first."""

    cases: list[CaseSummary]
    count: int = Field(description="How many cases are listed.")


class AuditChainReport(BaseModel):
    """The outcome of walking the hash-chained audit trail from start to head."""

    ok: bool = Field(description="True when every entry and the evidence it vouches for agree.")
    entries_checked: int = Field(description="Audit entries read.")
    first_bad_id: int | None = Field(
        default=None, description="Sequence number of the first entry that fails, if any."
    )
    reason: str = Field(default="", description="What is wrong with that entry; empty when ok.")
    head_hash: str = Field(description="SHA-256 hash (hex) of the last entry read.")


class ReportRequest(BaseModel):
    """Which report to fetch, and in which format."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    report_id: str = Field(
        pattern=_ID_PATTERN,
        description="Id of the report, e.g. RPT-3F9A1C2B7D10, as the decision's actions name it.",
    )
    format: Literal["json", "html"] = Field(
        default="json",
        description="json returns the report's fields; html returns the printable page.",
    )


class ReportDocument(BaseModel):
    """A stored compliance report."""

    report_id: str
    format: Literal["json", "html"]
    media_type: str = Field(description="MIME type of the stored form, e.g. application/json.")
    report: dict[str, Any] | None = Field(
        default=None, description="The report's fields when format is json."
    )
    html: str | None = Field(default=None, description="The HTML page when format is html.")


class AlertQuery(BaseModel):
    """Which alerts to report on."""

    model_config = ConfigDict(extra="forbid")

    alert_ids: list[str] = Field(
        min_length=1,
        max_length=50,
        description="1-50 alert ids, e.g. ALR-3F9A1C2B7D10, as block decisions name them.",
    )


class AlertStatuses(BaseModel):
    """Delivery state of each asked-for alert, in the order asked."""

    alerts: list[Action] = Field(
        description=(
            "One alert action per id: state done (emailed), queued (waiting in the "
            "outbox) or failed (attempts spent, or unknown id)."
        )
    )


class DeliveryQuery(BaseModel):
    """How many due alerts one delivery round may send."""

    model_config = ConfigDict(extra="forbid")

    limit: int = Field(
        default=100, ge=1, le=500, description="Most alerts to send in this round, 1-500."
    )


class DeliveryRound(BaseModel):
    """What one delivery round did."""

    sent: int = Field(description="Alerts emailed in this round.")
    failed: int = Field(description="Send attempts that failed in this round; retried later.")
    pending: int = Field(description="Alerts still waiting in the outbox afterwards.")


MethodCall = Callable[..., Awaitable[Any]]
"""`call(deployment, method, *args)`: runs one method of one tool deployment."""


@dataclass(frozen=True)
class ToolSpec:
    """One tool as a model sees it, and the deployment method behind it.

    Attributes:
        name: Tool name for MCP and function calling; starts with `server`.
        server: The MCP server it belongs to, served at `/mcp/<server>`.
        deployment: The agent's name for the deployment that runs it.
        method: The deployment method called.
        title: A short human title.
        description: What it does and returns, written for a model, with units.
        input_model: Validates the arguments.
        output_model: The structured result.
        method_args: Builds the method's positional arguments from the input.
        shape: Builds the output from the method's return value.
        read_only: False when a call can change state (send queued email).
    """

    name: str
    server: str
    deployment: str
    method: str
    title: str
    description: str
    input_model: type[BaseModel]
    output_model: type[BaseModel]
    method_args: Callable[[Any], tuple[Any, ...]]
    shape: Callable[[Any, Any], BaseModel]
    read_only: bool = True

    def parse_arguments(self, arguments: Mapping[str, Any]) -> BaseModel:
        """Validates a tool call's arguments; a null stands for the field's default.

        Strict function-calling schemas make every field required, so a model
        sends null for the ones it leaves out.

        Raises:
            pydantic.ValidationError: naming each bad field.
        """
        given = {key: value for key, value in arguments.items() if value is not None}
        return self.input_model.model_validate(given)

    async def run(self, call: MethodCall, params: BaseModel) -> BaseModel:
        """Calls the deployment method through `call` and shapes its result."""
        raw = await call(self.deployment, self.method, *self.method_args(params))
        return self.shape(raw, params)


def _one_transaction(params: TransactionArguments) -> tuple[list[Transaction]]:
    return ([params.to_transaction()],)


def _first_evidence(raw: list[Any], _params: Any) -> Evidence:
    return Evidence.model_validate(raw[0])


def _report_document(raw: tuple[bytes, str], params: ReportRequest) -> ReportDocument:
    body, media_type = raw
    text = body.decode("utf-8")
    if params.format == "json":
        return ReportDocument(
            report_id=params.report_id,
            format="json",
            media_type=media_type,
            report=json.loads(text),
        )
    return ReportDocument(
        report_id=params.report_id, format="html", media_type=media_type, html=text
    )


_POINTS_NOTE = (
    "Each signal has a code, a sentence naming the value and its unit, and "
    "`points` it adds to the 0-100 risk score (0 points = context only). "
    "Fraudline approves below 40 total points, reviews from 40 and blocks from 75, "
    "summed over all three evidence tools. Status `unavailable` means the tool "
    "could not judge; its `error` says why. Read-only: nothing is recorded."
)


def _evidence_spec(name: str, deployment: str, title: str, summary: str) -> ToolSpec:
    return ToolSpec(
        name=name,
        server=name,
        deployment=deployment,
        method="evaluate_batch",
        title=title,
        description=f"{summary}\n\n{_POINTS_NOTE}",
        input_model=TransactionArguments,
        output_model=Evidence,
        method_args=_one_transaction,
        shape=_first_evidence,
    )


def _build_specs() -> tuple[ToolSpec, ...]:
    evidence = (
        _evidence_spec(
            "transaction_risk",
            "transaction_risk",
            "Transaction risk",
            "Scores one payment against the customer's last 90 days of payments: "
            "amount versus their usual amounts (ratio to the median, in USD), "
            "high-risk and resale merchant categories, card-not-present, night-time "
            "hours, and a trained risk model's probability (0-1) with its main drivers.",
        ),
        _evidence_spec(
            "identity_verifier",
            "identity",
            "Identity verifier",
            "Checks who is paying: whether the device and IP address were seen for "
            "this customer before, whether the IP's country differs from the "
            "payment's, whether the IP is an anonymising network (e.g. Tor exit), and "
            "whether one device is shared by many customers. details.confidence "
            "(0-1) is how sure it is that the usual card holder is paying.",
        ),
        _evidence_spec(
            "geolocation_checker",
            "geolocation",
            "Geolocation checker",
            "Checks where the payment happens against where the customer paid "
            "before: great-circle distance in km from the previous payment, the "
            "speed in km/h that travel would need in the elapsed time (impossible "
            "above an airliner's speed once boarding time is taken off), and the "
            "distance in km from home and recent places.",
        ),
    )
    actions = (
        ToolSpec(
            name="email_alerts_alert_status",
            server="email_alerts",
            deployment="email_alerts",
            method="deliver_batch",
            title="Alert delivery status",
            description=(
                "Reports whether fraud alerts were emailed to the security team. "
                "Alerts go only to the recipients set in Fraudline's configuration; "
                "an alert that is already due is sent first, exactly once. Returns, "
                "per id in the order given: done (emailed), queued (waiting in the "
                "outbox, with the reason) or failed (attempts spent, or unknown id)."
            ),
            input_model=AlertQuery,
            output_model=AlertStatuses,
            method_args=lambda params: (list(params.alert_ids),),
            shape=lambda raw, _params: AlertStatuses(alerts=list(raw)),
            read_only=False,
        ),
        ToolSpec(
            name="email_alerts_deliver_pending",
            server="email_alerts",
            deployment="email_alerts",
            method="deliver_pending",
            title="Deliver pending alerts",
            description=(
                "Runs one delivery round of the alert outbox: emails up to `limit` "
                "due alerts, oldest first, to the recipients set in Fraudline's "
                "configuration (never to anyone else), and returns how many were "
                "sent, how many attempts failed and how many alerts still wait. "
                "Without an SMTP server configured it sends nothing and only counts."
            ),
            input_model=DeliveryQuery,
            output_model=DeliveryRound,
            method_args=lambda params: (params.limit,),
            shape=lambda raw, _params: DeliveryRound.model_validate(raw, from_attributes=True),
            read_only=False,
        ),
        ToolSpec(
            name="fraud_logger_get_case",
            server="fraud_logger",
            deployment="fraud_logger",
            method="get_case",
            title="Get case",
            description=(
                "Reads one fraud case: the payment, the decision (review or block) "
                "with its 0-100 risk score and reasons, every tool's evidence, the "
                "timeline (UTC times), the alert's state and the report id."
            ),
            input_model=CaseLookup,
            output_model=CaseRecord,
            method_args=lambda params: (params.case_id,),
            shape=lambda raw, _params: CaseRecord.model_validate(raw),
        ),
        ToolSpec(
            name="fraud_logger_recent_cases",
            server="fraud_logger",
            deployment="fraud_logger",
            method="recent_cases",
            title="Recent cases",
            description=(
                "Lists the newest fraud cases first, optionally only reviews or "
                "blocks, or only one customer's: case id, payment id, decision, "
                "0-100 risk score, policy version, status and creation time (UTC)."
            ),
            input_model=CaseQuery,
            output_model=CaseList,
            method_args=lambda params: (params.limit, params.decision, params.customer_id),
            shape=lambda raw, _params: CaseList(cases=list(raw), count=len(raw)),
        ),
        ToolSpec(
            name="fraud_logger_verify_audit_chain",
            server="fraud_logger",
            deployment="fraud_logger",
            method="verify_chain",
            title="Verify audit chain",
            description=(
                "Walks the whole hash-chained audit trail of decisions and reports, "
                "recomputing each SHA-256 hash, and says whether it is intact: the "
                "number of entries checked and, if broken, the first bad entry and why."
            ),
            input_model=NoArguments,
            output_model=AuditChainReport,
            method_args=lambda _params: (),
            shape=lambda raw, _params: AuditChainReport.model_validate(raw, from_attributes=True),
        ),
        ToolSpec(
            name="report_generator_get_report",
            server="report_generator",
            deployment="report_generator",
            method="render",
            title="Get compliance report",
            description=(
                "Fetches a stored compliance report of a case: the payment, each "
                "tool's evidence with values and units, the decision, 0-100 risk "
                "score, policy version, explanation, timeline and the audit chain's "
                "hash when it was written. format json gives the fields, html the page."
            ),
            input_model=ReportRequest,
            output_model=ReportDocument,
            method_args=lambda params: (params.report_id, params.format),
            shape=_report_document,
        ),
    )
    return evidence + actions


TOOLS: tuple[ToolSpec, ...] = _build_specs()
"""Every tool, evidence tools first."""

SERVERS: tuple[str, ...] = tuple(dict.fromkeys(spec.server for spec in TOOLS))
"""The six MCP servers, one per deployment, in the order of `TOOLS`."""


def tool_spec(name: str) -> ToolSpec:
    """The tool called `name`.

    Raises:
        KeyError: no tool has that name; the message lists the names.
    """
    for spec in TOOLS:
        if spec.name == name:
            return spec
    raise KeyError(f"no tool named {name!r}; tools are {', '.join(s.name for s in TOOLS)}")


def server_tools(server: str) -> list[ToolSpec]:
    """The tools one MCP server offers, e.g. `server_tools("fraud_logger")`."""
    return [spec for spec in TOOLS if spec.server == server]


def openai_tools(specs: tuple[ToolSpec, ...] | list[ToolSpec] = TOOLS) -> list[dict[str, Any]]:
    """The tools as OpenAI function-calling definitions with strict JSON schemas.

    Strict mode wants every property required and no others allowed, so fields
    with a default become nullable; `ToolSpec.parse_arguments` reads a null back
    as the default.
    """
    return [
        {
            "type": "function",
            "function": {
                "name": spec.name,
                "description": spec.description,
                "parameters": strict_schema(spec.input_model.model_json_schema()),
                "strict": True,
            },
        }
        for spec in specs
    ]


# Keywords strict function-calling schemas accept; the rest (title, default,
# minLength...) is dropped rather than risk a rejected tool list.
_STRICT_KEYWORDS = frozenset(
    {
        "type",
        "properties",
        "required",
        "additionalProperties",
        "items",
        "enum",
        "const",
        "anyOf",
        "$ref",
        "$defs",
        "description",
        "pattern",
        "format",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "minItems",
        "maxItems",
    }
)


def strict_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A pydantic JSON schema rewritten for strict function calling."""
    return _strict_node(copy.deepcopy(schema))


def _strict_node(node: Any) -> Any:
    if isinstance(node, list):
        return [_strict_node(item) for item in node]
    if not isinstance(node, dict):
        return node
    result = {key: value for key, value in node.items() if key in _STRICT_KEYWORDS}
    if "$defs" in result:
        result["$defs"] = {name: _strict_node(sub) for name, sub in result["$defs"].items()}
    for key in ("items", "anyOf"):
        if key in result:
            result[key] = _strict_node(result[key])
    if "properties" in result:
        required = set(node.get("required", ()))
        properties = {}
        for name, sub in result["properties"].items():
            strict = _strict_node(sub)
            properties[name] = strict if name in required else _nullable(strict)
        result["properties"] = properties
        result["required"] = list(properties)
        result["additionalProperties"] = False
    elif result.get("type") == "object":
        result["properties"] = {}
        result["required"] = []
        result["additionalProperties"] = False
    return result


def _nullable(node: dict[str, Any]) -> dict[str, Any]:
    options = node.get("anyOf")
    if options is not None:
        if not any(option.get("type") == "null" for option in options):
            node["anyOf"] = [*options, {"type": "null"}]
        return node
    description = node.pop("description", None)
    wrapped: dict[str, Any] = {"anyOf": [node, {"type": "null"}]}
    if description is not None:
        wrapped["description"] = description
    return wrapped
