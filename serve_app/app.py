"""Builds the Fraudline Serve application: six tools, the model and the agent."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from ray import serve
from ray.serve import Application
from ray.serve.handle import DeploymentHandle
from sqlalchemy.engine import make_url

from deployments import (
    email_alerts,
    fraud_logger,
    geolocation,
    identity,
    report_generator,
    transaction_risk,
)
from deployments.agent import Agent
from deployments.notifier import CustomerNotifier, configured_channels
from fraudline.migrations import upgrade_to_head
from fraudline.pii import install_log_redaction
from fraudline.schemas import Action, DecisionResult, Evidence, Transaction
from serve_app.api import create_api
from serve_app.auth import AuthConfig, Authenticator, protect
from serve_app.batching import MicroBatcher
from serve_app.cases_api import build_cases_router
from serve_app.config import AppConfig
from serve_app.holds_api import build_holds_router
from serve_app.llm import HandleChat, HandleExplainer, build_llm_app
from serve_app.mcp import build_mcp
from serve_app.metrics import ServeMetrics

logger = logging.getLogger(__name__)

# Deployment name -> (plain class, its module's defaults, the agent's name for it).
EVIDENCE_DEPLOYMENTS = {
    "TransactionRisk": (transaction_risk.TransactionRisk, transaction_risk, "transaction_risk"),
    "IdentityVerifier": (identity.IdentityVerifier, identity, "identity"),
    "GeolocationChecker": (geolocation.GeolocationChecker, geolocation, "geolocation"),
}


def _replica_class(cls: type) -> type:
    """The tool class as a replica runs it: logs redacted, data loaded at start.

    Loading the gazetteer and IP ranges at start spares the first request; the
    redaction keeps card numbers, emails and IPs out of the replica's logs.
    """

    class Warmed(cls):  # type: ignore[valid-type, misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            install_log_redaction()
            super().__init__(*args, **kwargs)
            warm_up = getattr(self, "warm_up", None)
            if warm_up is not None:
                warm_up()

    Warmed.__name__ = cls.__name__
    Warmed.__qualname__ = cls.__qualname__
    return Warmed


class EmailAlertsReplica(email_alerts.EmailAlerts):
    """EmailAlerts that also sends customers' notices, draining both in the background.

    Args:
        notices: `CustomerNotifier` keyword arguments (SMTP, SMS provider).
        delivery_interval_s: How often waiting alerts and notices are retried.
    """

    def __init__(
        self,
        *args: Any,
        notices: dict[str, Any],
        delivery_interval_s: float = 5.0,
        **kwargs: Any,
    ) -> None:
        install_log_redaction()
        super().__init__(*args, **kwargs)
        self._notifier = CustomerNotifier(args[0], **notices)
        loop = asyncio.get_event_loop()
        self._deliveries = [
            loop.create_task(self.run_periodically(delivery_interval_s)),
            loop.create_task(self._notifier.run_periodically(delivery_interval_s)),
        ]

    def notify_customers(self, notification_ids: list[str]) -> list[Action]:
        return self._notifier.deliver_batch(notification_ids)


class HandleToolbox:
    """The agent's tools, reached through Serve deployment handles.

    Holds are read straight from the store: a handle round trip costs more than
    the indexed query, and every payment waits for this read.
    """

    def __init__(self, handles: dict[str, DeploymentHandle], database_url: str) -> None:
        self._handles = handles
        self._holds = fraud_logger.FraudLogger(database_url, create_tables=False)

    async def evaluate(self, tool: str, transactions: list[Transaction]) -> list[Evidence]:
        return await self._handles[tool].evaluate_batch.remote(transactions)

    async def log(self, items: list[tuple[Transaction, DecisionResult]]) -> list[Any]:
        return await self._handles["fraud_logger"].log_batch.remote(items)

    async def deliver_alerts(self, alert_ids: list[str]) -> list[Action]:
        if not alert_ids:
            return []
        return await self._handles["email_alerts"].deliver_batch.remote(alert_ids)

    async def write_reports(self, case_ids: list[str]) -> list[str]:
        if not case_ids:
            return []
        return await self._handles["report_generator"].generate_batch.remote(case_ids)

    async def stored_decisions(self, transaction_ids: list[str]) -> list[DecisionResult | None]:
        return await self._handles["fraud_logger"].latest_decisions.remote(transaction_ids)

    async def active_holds(self, customer_ids: list[str], at: datetime) -> dict[str, Any]:
        return await asyncio.to_thread(self._holds.active_holds, customer_ids, at)

    async def notify_customers(self, notification_ids: list[str]) -> list[Action]:
        if not notification_ids:
            return []
        return await self._handles["email_alerts"].notify_customers.remote(notification_ids)


class HandleRecords:
    """Read access to cases, reports and the audit chain for the HTTP API."""

    def __init__(self, logger_handle: DeploymentHandle, reports: DeploymentHandle) -> None:
        self._logger = logger_handle
        self._reports = reports

    async def case(self, case_id: str) -> dict[str, Any]:
        record = await self._logger.get_case.remote(case_id)
        return _plain(record)

    async def report(self, report_id: str, fmt: str) -> tuple[bytes, str]:
        return await self._reports.render.remote(report_id, fmt)

    async def verify_audit(self) -> dict[str, Any]:
        return _plain(await self._logger.verify_chain.remote())


@serve.deployment(
    name="Agent",
    ray_actor_options={"num_cpus": 0.5},
    autoscaling_config={"min_replicas": 1, "max_replicas": 4, "target_ongoing_requests": 32},
    # A replica on 2 cores finishes about 100 single requests a second: 96 in
    # hand and 32 queued keep an admitted request's wait near a second. Past
    # that, 503 with Retry-After at once rather than let every request time out.
    max_ongoing_requests=96,
    max_queued_requests=32,
    backpressure_config={"status_code": 503, "retry_after_s": 1},
)
@serve.ingress()
class AgentIngress:
    """The ingress: HTTP API in front of the agent, batching concurrent requests.

    Args:
        config: The validated application config, as a dict.
        tools: Handles by the agent's tool name.
        llm: Handle of the LLM deployment, or None to decide without a model.
    """

    def __init__(
        self,
        config: dict[str, Any],
        tools: dict[str, DeploymentHandle],
        llm: DeploymentHandle | None = None,
    ) -> None:
        install_log_redaction()
        self._config = AppConfig.model_validate(config)
        self._tools = tools
        self._metrics = ServeMetrics()
        explainer = None
        self._chat = None
        if llm is not None and self._config.llm is not None:
            explainer = HandleExplainer(llm, self._config.llm.model_id, self._model_called)
            self._chat = HandleChat(llm, self._config.llm.model_id)
        self._agent = Agent(
            self._config.agent,
            HandleToolbox(tools, self._config.database_url),
            explainer,
            observer=self._metrics,
        )
        self._records = HandleRecords(tools["fraud_logger"], tools["report_generator"])
        batching = self._config.batching
        self._batcher: MicroBatcher[Transaction, DecisionResult] = MicroBatcher(
            self._agent.decide_batch,
            max_batch_size=batching.max_batch_size,
            wait_s=batching.batch_wait_ms / 1000,
            max_concurrent=batching.max_concurrent_batches,
            on_batch=self._metrics.batch_started,
        )

    def __serve_build_asgi_app__(self) -> Any:
        mcp = build_mcp(
            self._tools,
            token=self._config.mcp.token,
            allowed_hosts=self._config.mcp.allowed_hosts,
        )

        @asynccontextmanager
        async def lifespan(_app: Any) -> AsyncIterator[None]:
            # Mounted apps' lifespans are not run: the MCP session managers
            # start with the ingress app's own.
            async with mcp.lifespan():
                yield

        api = create_api(
            decide=self._batcher.submit,
            decide_many=self._agent.decide_batch,
            records=self._records,
            health=self._health,
            stream=self._agent.decide_stream,
            ask=self._agent.ask,
            model_id=self._config.llm.model_id if self._config.llm else None,
            chat=self._chat,
            lifespan=lifespan,
            routers=[
                build_cases_router(self._tools["fraud_logger"], self._tools["report_generator"]),
                build_holds_router(self._tools["fraud_logger"]),
            ],
        )
        api.router.routes.extend(mcp.routes)
        if self._config.console.enabled:
            # Built here, inside the replica: a Gradio app cannot be pickled.
            from ui.console import mount_console

            console = self._config.console
            mount_console(api, console.api_url, api_key=console.api_key)
        # In front of routing, so MCP and the console are covered too.
        return protect(api, Authenticator(AuthConfig.from_args(self._config.auth)))

    def _model_called(self, status: str, prompt_tokens: int, completion_tokens: int) -> None:
        self._metrics.model_called(status, prompt_tokens, completion_tokens)

    def _health(self) -> dict[str, Any]:
        return {
            "status": "ok",
            "policy_version": self._config.agent.policy.version,
            "explain_mode": self._config.agent.explain_mode,
            "model": self._config.llm.model_id if self._config.llm else None,
        }


def build_app(args: dict[str, Any]) -> Application:
    """Binds the whole graph from the YAML `args` (or a dict in tests).

    Each deployment starts from the defaults next to its class; the serve config's
    `deployments:` section overrides them by name.
    """
    config = _with_absolute_paths(AppConfig.from_args(args))
    AuthConfig.from_args(config.auth)  # fail at deploy time, not in every replica
    url = config.database_url
    # The schema is brought to the newest revision once, before any replica starts.
    upgrade_to_head(url)

    tools: dict[str, Any] = {}
    for name, (cls, module, key) in EVIDENCE_DEPLOYMENTS.items():
        options = dict(module.DEPLOYMENT_DEFAULTS)
        tools[key] = serve.deployment(_replica_class(cls), name=name, **options).bind(
            url, **config.tools.get(name, {})
        )

    alerts = config.alerts.model_dump()
    actions = config.actions
    notices = {
        key: alerts[key]
        for key in ("smtp_host", "smtp_port", "smtp_username", "smtp_password",
                    "smtp_starttls", "sender")
    } | {"sms_url": actions.sms_url, "sms_token": actions.sms_token}
    tools["email_alerts"] = serve.deployment(
        EmailAlertsReplica, name="EmailAlerts", **email_alerts.DEPLOYMENT_DEFAULTS
    ).bind(url, **alerts, notices=notices, **config.tools.get("EmailAlerts", {}))
    tools["fraud_logger"] = serve.deployment(
        _replica_class(fraud_logger.FraudLogger),
        name="FraudLogger",
        **fraud_logger.DEPLOYMENT_DEFAULTS,
    ).bind(
        url,
        hold_hours=actions.hold_hours,
        notify_on_review=actions.notify_on_review,
        notify_channels=configured_channels(alerts["smtp_host"], actions.sms_url),
        **config.tools.get("FraudLogger", {}),
    )
    tools["report_generator"] = serve.deployment(
        _replica_class(report_generator.ReportGenerator),
        name="ReportGenerator",
        **report_generator.DEPLOYMENT_DEFAULTS,
    ).bind(url, **config.tools.get("ReportGenerator", {}))

    llm = build_llm_app(config.llm) if config.llm is not None else None
    if config.seed_demo:
        from fraudline.demo import seed_demo_history

        seed_demo_history(url)
    return AgentIngress.bind(config.model_dump(mode="json"), tools, llm)


def _with_absolute_paths(config: AppConfig) -> AppConfig:
    """Anchors relative paths at the project root, where every replica finds them.

    Replicas do not share the shell's working directory, so `var/fraudline.db`
    in a config means the project's `var/`, wherever `serve run` was typed.
    """
    root = Path(__file__).resolve().parent.parent
    url = make_url(config.database_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        if not Path(url.database).is_absolute():
            config.database_url = str(url.set(database=str(root / url.database)))
    if config.llm is not None and not Path(config.llm.model_source).is_absolute():
        local = root / config.llm.model_source
        if local.exists():
            config.llm.model_source = str(local)
    return config


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _plain(dataclasses.asdict(value))
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value
