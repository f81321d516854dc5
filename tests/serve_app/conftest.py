"""A local Ray cluster running the whole Fraudline application with the tiny model."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from pathlib import Path

import httpx
import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]
TINY_MODEL_DIR = PROJECT_ROOT / "var" / "models" / "tiny"
MCP_TOKEN = "graph-test-token-0123456789"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Inbox:
    """Messages a real SMTP server on loopback received."""

    messages: list[Message] = field(default_factory=list)

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


@dataclass
class RunningApp:
    url: str
    inbox: Inbox
    database_url: str
    metrics_url: str

    def wait_for_emails(self, *ids: str, timeout_s: float = 30) -> list[Message]:
        """The messages received so far, once one carries each id in its Message-ID."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            messages = list(self.inbox.messages)
            if all(any(i in m["Message-ID"] for m in messages) for i in ids):
                break
            time.sleep(0.1)
        return list(self.inbox.messages)


def tiny_llm_args(model_dir: Path) -> dict:
    return {
        "model_id": "fraudline-tiny",
        "model_source": str(model_dir),
        "accelerator_config": {"kind": "cpu"},
        "engine_kwargs": {
            "dtype": "float32",
            "max_model_len": 4096,
            "enforce_eager": True,
            "structured_outputs_config": {
                "backend": "xgrammar",
                "disable_any_whitespace": True,
            },
        },
        "deployment_config": {
            "ray_actor_options": {"num_cpus": 1},
            "autoscaling_config": {"min_replicas": 1, "max_replicas": 1},
        },
        "runtime_env": {
            "env_vars": {"VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_HOST_IP": "127.0.0.1"}
        },
    }


@dataclass
class ServeCluster:
    """One local Ray with Serve for every Ray test of the session."""

    http_port: int
    metrics_port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"


@pytest.fixture(scope="session")
def serve_cluster() -> Iterator[ServeCluster]:
    """Starts Ray on 127.0.0.1 and Serve on a free loopback port, once.

    Tests deploy their own applications into it under their own names and
    route prefixes; a second `ray.init` in one process is not possible.
    """
    ray = pytest.importorskip("ray")
    from ray import serve

    http_port = free_port()
    metrics_port = free_port()
    # Logical CPUs, not cores: several apps share this cluster, and ray.serve.llm
    # on a 2-core machine only schedules with 4 or more declared.
    # address="local": never join a cluster someone else left running.
    ray.init(
        address="local",
        _node_ip_address="127.0.0.1",
        num_cpus=32,
        include_dashboard=False,
        configure_logging=False,
        runtime_env={"env_vars": {"VLLM_HOST_IP": "127.0.0.1"}},
        _metrics_export_port=metrics_port,
        _system_config={"metrics_report_interval_ms": 1000},
    )
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": http_port})
        yield ServeCluster(http_port=http_port, metrics_port=metrics_port)
    finally:
        serve.shutdown()
        ray.shutdown()


@pytest.fixture(scope="session")
def running_app(
    serve_cluster: ServeCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningApp]:
    """The whole Fraudline graph with the tiny model, at the cluster's root route."""
    from aiosmtpd.controller import Controller
    from ray import serve

    from fraudline.tinymodel import build_tiny_model
    from serve_app.app import build_app

    model_dir = build_tiny_model(TINY_MODEL_DIR)
    database_url = f"sqlite:///{tmp_path_factory.mktemp('app')}/fraudline.db"
    inbox = Inbox()
    smtp = Controller(inbox, hostname="127.0.0.1", port=free_port())
    smtp.start()
    try:
        app = build_app(
            {
                "database_url": database_url,
                "seed_demo": True,
                "alerts": {
                    "smtp_host": "127.0.0.1",
                    "smtp_port": smtp.port,
                    "recipients": ["fraud-team@localhost"],
                    "delivery_interval_s": 1,
                },
                # Generous: CI machines are small and busy.
                "agent": {"model_timeout_s": 120, "tool_timeout_s": 30},
                "mcp": {"token": MCP_TOKEN},
                "console": {"api_url": serve_cluster.url},
                "auth": {"mode": "disabled"},
                "llm": tiny_llm_args(model_dir),
            }
        )
        serve.run(app, name="fraudline", route_prefix="/")
        _wait_healthy(serve_cluster.url)
        yield RunningApp(
            url=serve_cluster.url,
            inbox=inbox,
            database_url=database_url,
            metrics_url=f"http://127.0.0.1:{serve_cluster.metrics_port}/metrics",
        )
    finally:
        serve.delete("fraudline")
        smtp.stop()


def _wait_healthy(url: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{url}/healthz did not answer within {timeout_s} s")
