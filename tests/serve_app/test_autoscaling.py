"""Serve's autoscaler adds a tool replica under load, as the configs' autoscaling_config asks."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest

pytestmark = pytest.mark.ray

MIN_REPLICAS, MAX_REPLICAS = 1, 2
# A stand-in tool call that holds its replica as a slow database query would.
TOOL_CALL_S = 0.5
IN_FLIGHT = 8


@pytest.fixture(scope="module")
def serve_instance(serve_cluster: Any) -> Iterator[Any]:
    """Serve in the session's local Ray, with no model."""
    from ray import serve

    yield serve
    serve.delete("scaling")


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
