"""Serve's autoscaler adds a tool replica under load, as the configs' autoscaling_config asks."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

pytestmark = pytest.mark.ray

MIN_REPLICAS, MAX_REPLICAS = 1, 2
# A stand-in tool call that holds its replica as a slow database query would.
TOOL_CALL_S = 0.5
IN_FLIGHT = 8


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def serve_instance() -> Iterator[Any]:
    """A private Ray on 127.0.0.1 with Serve, and no model."""
    ray = pytest.importorskip("ray")
    from ray import serve

    # Without this Ray swaps 127.0.0.1 for the machine's reachable address.
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    ray.init(
        address="local",
        _node_ip_address="127.0.0.1",
        num_cpus=4,
        include_dashboard=False,
        configure_logging=False,
        _metrics_export_port=free_port(),
    )
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": free_port()})
        yield serve
    finally:
        serve.shutdown()
        ray.shutdown()


def running_replicas(serve: Any, app: str, deployment: str) -> int:
    status = serve.status().applications[app].deployments[deployment]
    return sum(n for state, n in status.replica_states.items() if str(state).endswith("RUNNING"))


def test_tool_deployment_adds_a_replica_under_load(serve_instance: Any) -> None:
    serve = serve_instance

    @serve.deployment(
        name="SlowTool",
        ray_actor_options={"num_cpus": 0.25},
        max_ongoing_requests=8,
        autoscaling_config={
            "min_replicas": MIN_REPLICAS,
            "max_replicas": MAX_REPLICAS,
            "target_ongoing_requests": 1,
            "upscale_delay_s": 0.5,
            "downscale_delay_s": 600,
            "look_back_period_s": 2,
        },
    )
    class SlowTool:
        async def evaluate_batch(self, size: int) -> int:
            await asyncio.sleep(TOOL_CALL_S)
            return size

    handle = serve.run(SlowTool.bind(), name="scaling", route_prefix=None)
    assert running_replicas(serve, "scaling", "SlowTool") == MIN_REPLICAS

    # Keep IN_FLIGHT calls outstanding (8 per 1 target) until a second replica runs.
    deadline = time.monotonic() + 90
    pending: list[Any] = []
    sent = 0
    replicas = MIN_REPLICAS
    while replicas < MAX_REPLICAS and time.monotonic() < deadline:
        pending = [response for response in pending if not _done(response)]
        while len(pending) < IN_FLIGHT:
            pending.append(handle.evaluate_batch.remote(sent))
            sent += 1
        replicas = running_replicas(serve, "scaling", "SlowTool")
        time.sleep(0.2)
    answers = [response.result(timeout_s=30) for response in pending]

    assert replicas == MAX_REPLICAS, f"still {replicas} replica(s) after {sent} calls"
    assert len(answers) == len(pending)


def _done(response: Any) -> bool:
    try:
        response.result(timeout_s=0)
    except TimeoutError:
        return False
    return True
