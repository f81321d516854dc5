"""A live API with the console mounted, and Debian's Chromium to drive it."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "artifacts" / "screenshots"
VIEWPORT = {"width": 1280, "height": 800}
START_TIMEOUT_S = 60.0
# Bounded waits for the browser: a decision takes well under a second when the CPU is free.
WAIT_MS = 30_000
# Flags that keep Chromium headless, offline and free of first-run work.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]


class LocalRecords:
    """The API's read side over the plain FraudLogger and ReportGenerator."""

    def __init__(self, fraud_logger: Any, reports: Any) -> None:
        self._logger = fraud_logger
        self._reports = reports

    async def case(self, case_id: str) -> dict[str, Any]:
        record = await asyncio.to_thread(self._logger.get_case, case_id)
        return record.model_dump(mode="json")

    async def report(self, report_id: str, fmt: str) -> tuple[bytes, str]:
        return await asyncio.to_thread(self._reports.render, report_id, fmt)

    async def verify_audit(self) -> dict[str, Any]:
        report = await asyncio.to_thread(self._logger.verify_chain)
        return {
            "ok": report.ok,
            "entries_checked": report.entries_checked,
            "first_bad_id": report.first_bad_id,
            "reason": report.reason,
        }


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def build_test_app(database_url: str, api_url: str) -> Any:
    """The public API on the in-process agent, with the console at /console."""
    from deployments.agent import Agent, AgentConfig
    from deployments.toolbox import LocalToolbox
    from fraudline.demo import seed_demo_history
    from serve_app.api import create_api
    from ui.console import mount_console

    seed_demo_history(database_url)
    toolbox = LocalToolbox(database_url)
    agent = Agent(AgentConfig(explain_mode="never"), toolbox)

    async def decide(transaction: Any) -> Any:
        [result] = await agent.decide_batch([transaction])
        return result

    fraud_logger = toolbox.tools["fraud_logger"]
    reports = toolbox.tools["report_generator"]
    async def decide_many(transactions: list[Any], explain: bool = False) -> list[Any]:
        return await agent.decide_batch(transactions, explain)

    api = create_api(
        decide,
        decide_many,
        LocalRecords(fraud_logger, reports),
        lambda: {"status": "ok"},
        stream=agent.decide_stream,
    )
    try:
        from serve_app.cases_api import LocalHandle, build_cases_router
    except ImportError:
        pass  # An API without the case workflow: the console says what is missing.
    else:
        before = len(api.router.routes)
        api.include_router(build_cases_router(LocalHandle(fraud_logger), LocalHandle(reports)))
        # First, so GET /v1/reports/summary is not taken for a report called "summary".
        added = api.router.routes[before:]
        del api.router.routes[before:]
        api.router.routes[0:0] = added
    return mount_console(api, api_url)


@pytest.fixture(scope="session")
def console_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of a running API with the console mounted, on a free loopback port."""
    import uvicorn

    database = tmp_path_factory.mktemp("console") / "fraudline.db"
    port = _free_port()
    api_url = f"http://127.0.0.1:{port}"
    app = build_test_app(f"sqlite:///{database}", api_url)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, name="console-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the test server did not start on port {port}")
        time.sleep(0.05)
    yield api_url
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Debian's Chromium, headless, driven by Playwright (which downloads no browser)."""
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing; scripts/browser.sh installs it"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any, console_url: str) -> Iterator[Any]:
    """A fresh 1280x800 tab on the console that may reach nothing but loopback."""
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(WAIT_MS)
    outside: list[str] = []

    def loopback_only(route: Any) -> None:
        if route.request.url.startswith(("http://127.0.0.1:", "data:", "blob:")):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    context.route("**/*", loopback_only)
    tab = context.new_page()
    tab.goto(f"{console_url}/console/")
    tab.get_by_text("Connected to the API").wait_for()
    yield tab
    context.close()
    assert outside == [], f"the console asked hosts other than loopback: {outside[:3]}"


def screenshot(tab: Any, name: str) -> Path:
    """Writes a full-page PNG of the tab to var/artifacts/screenshots/."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    tab.screenshot(path=str(path), full_page=True)
    return path
