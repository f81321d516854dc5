"""The six tools in one process, behind the agent's batch interface.

Serve wires the tools through deployment handles; this toolbox calls the same
plain classes directly. Tests use it to run the agent without a cluster, and the
benchmark uses it to measure the scoring ceiling.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from deployments.email_alerts import EmailAlerts
from deployments.fraud_logger import FraudLogger, LogOutcome
from deployments.geolocation import GeolocationChecker
from deployments.identity import IdentityVerifier
from deployments.notifier import CustomerNotifier
from deployments.report_generator import ReportGenerator
from deployments.transaction_risk import TransactionRisk
from fraudline.schemas import Action, DecisionResult, Evidence, Transaction


class LocalToolbox:
    """Plain tool objects called in worker threads.

    Args:
        database_url: The store every tool shares.
        alerts: Keyword arguments for `EmailAlerts` (SMTP settings, recipients).
        tools: Already built tools by agent name, replacing the defaults (tests).
        notices: Keyword arguments for `CustomerNotifier` (SMTP, SMS provider).
    """

    def __init__(
        self,
        database_url: str,
        alerts: dict[str, Any] | None = None,
        tools: dict[str, Any] | None = None,
        notices: dict[str, Any] | None = None,
    ) -> None:
        built = dict(tools or {})
        self.tools: dict[str, Any] = {
            "transaction_risk": built.get("transaction_risk") or TransactionRisk(database_url),
            "identity": built.get("identity") or IdentityVerifier(database_url),
            "geolocation": built.get("geolocation") or GeolocationChecker(database_url),
            "fraud_logger": built.get("fraud_logger") or FraudLogger(database_url),
            "email_alerts": built.get("email_alerts")
            or EmailAlerts(database_url, **(alerts or {})),
            "report_generator": built.get("report_generator")
            or ReportGenerator(database_url),
            "customer_notifier": built.get("customer_notifier")
            or CustomerNotifier(database_url, **(notices or {})),
        }

    async def evaluate(self, tool: str, transactions: list[Transaction]) -> list[Evidence]:
        return await asyncio.to_thread(self.tools[tool].evaluate_batch, transactions)

    async def log(self, items: list[tuple[Transaction, DecisionResult]]) -> list[LogOutcome]:
        return await asyncio.to_thread(self.tools["fraud_logger"].log_batch, items)

    async def deliver_alerts(self, alert_ids: list[str]) -> list[Action]:
        if not alert_ids:
            return []
        return await asyncio.to_thread(self.tools["email_alerts"].deliver_batch, alert_ids)

    async def write_reports(self, case_ids: list[str]) -> list[str]:
        if not case_ids:
            return []
        return await asyncio.to_thread(self.tools["report_generator"].generate_batch, case_ids)

    async def stored_decisions(self, transaction_ids: list[str]) -> list[DecisionResult | None]:
        return await asyncio.to_thread(
            self.tools["fraud_logger"].latest_decisions, transaction_ids
        )

    async def active_holds(self, customer_ids: list[str], at: datetime) -> dict[str, Any]:
        return await asyncio.to_thread(
            self.tools["fraud_logger"].active_holds, customer_ids, at
        )

    async def notify_customers(self, notification_ids: list[str]) -> list[Action]:
        if not notification_ids:
            return []
        return await asyncio.to_thread(
            self.tools["customer_notifier"].deliver_batch, notification_ids
        )
