"""Throughput of the fast path, measured side by side in one run.

    .venv/bin/python benchmarks/throughput.py --url http://127.0.0.1:8000

Needs the app running (scripts/demo.sh). Measures, in order:
1. the agent and the six tools in this one process (the ceiling);
2. single requests through the HTTP ingress at fixed offered loads;
3. the batch endpoint;
4. the memory of each Serve replica.
Prints a table with each path's ratio to the ceiling and writes the figures as
JSON. Every request goes to the URL given, which must be on loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import psutil

from deployments.agent import Agent, AgentConfig
from deployments.toolbox import LocalToolbox
from fraudline.demo import SCENARIOS, seed_demo_history
from fraudline.schemas import Transaction

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def synthetic(count: int, now: datetime) -> list[dict[str, Any]]:
    """Ordinary payments of the demo customers, each with a fresh id."""
    base = dict(SCENARIOS["low_risk"])
    base.pop("previous_location")
    base.pop("time_since_last_transaction")
    run = uuid.uuid4().hex[:8]
    return [
        dict(
            base,
            transaction_id=f"BENCH-{run}-{i}",
            amount=round(100 + (i % 400), 2),
            timestamp=(now + timedelta(milliseconds=i)).isoformat(),
        )
        for i in range(count)
    ]


async def ceiling(count: int, batch_size: int) -> dict[str, float]:
    """The agent and real tools in-process, with a fresh SQLite store."""
    folder = tempfile.mkdtemp(prefix="fraudline-bench-")
    url = f"sqlite:///{folder}/bench.db"
    now = datetime.now(UTC)
    seed_demo_history(url, now=now - timedelta(hours=4))
    agent = Agent(AgentConfig(explain_mode="never"), LocalToolbox(url))
    items = [Transaction.model_validate(raw) for raw in synthetic(count, now)]
    await agent.decide_batch(items[:batch_size])  # warm caches
    started = time.perf_counter()
    for start in range(batch_size, count, batch_size):
        await agent.decide_batch(items[start : start + batch_size])
    elapsed = time.perf_counter() - started
    return {"transactions_per_s": round((count - batch_size) / elapsed, 1)}


async def offered_load(url: str, rate: float, duration_s: float) -> dict[str, Any]:
    """Open-loop load: requests start on schedule whether or not earlier ones ended."""
    total = int(rate * duration_s)
    bodies = synthetic(total, datetime.now(UTC))
    latencies: list[float] = []
    codes: dict[int, int] = {}
    limits = httpx.Limits(max_connections=1000, max_keepalive_connections=200)

    async with httpx.AsyncClient(base_url=url, timeout=10.0, limits=limits) as client:

        async def one(body: dict[str, Any], at: float) -> None:
            await asyncio.sleep(max(0.0, at - time.perf_counter()))
            began = time.perf_counter()
            try:
                response = await client.post("/v1/analyze", json=body)
                code = response.status_code
            except httpx.HTTPError:
                code = 0
            if code == 200:
                latencies.append((time.perf_counter() - began) * 1000)
            codes[code] = codes.get(code, 0) + 1

        started = time.perf_counter()
        await asyncio.gather(
            *(one(body, started + i / rate) for i, body in enumerate(bodies))
        )
        elapsed = time.perf_counter() - started

    latencies.sort()
    return {
        "offered_per_s": rate,
        "achieved_per_s": round(codes.get(200, 0) / elapsed, 1),
        "p50_ms": _pct(latencies, 50),
        "p95_ms": _pct(latencies, 95),
        "p99_ms": _pct(latencies, 99),
        "errors": sum(n for code, n in codes.items() if code != 200),
        "shed_503": codes.get(503, 0),
    }


def batch_endpoint(url: str, count: int, batch_size: int) -> dict[str, float]:
    bodies = synthetic(count, datetime.now(UTC))
    with httpx.Client(base_url=url, timeout=120) as client:
        client.post("/v1/analyze/batch", json={"transactions": bodies[:batch_size]})
        started = time.perf_counter()
        for start in range(batch_size, count, batch_size):
            response = client.post(
                "/v1/analyze/batch", json={"transactions": bodies[start : start + batch_size]}
            )
            response.raise_for_status()
        elapsed = time.perf_counter() - started
    return {"transactions_per_s": round((count - batch_size) / elapsed, 1)}


def replica_memory_mib() -> dict[str, float]:
    """Resident memory of each Serve replica process, by deployment."""
    found: dict[str, float] = {}
    for process in psutil.process_iter(["cmdline", "memory_info"]):
        title = " ".join(process.info["cmdline"] or [])
        if "ServeReplica:" not in title or process.info["memory_info"] is None:
            continue
        name = title.split("ServeReplica:", 1)[1].split()[0]
        found[name] = round(process.info["memory_info"].rss / 2**20, 1)
    return dict(sorted(found.items()))


def _pct(values: list[float], pct: float) -> float:
    if not values:
        return 0.0
    return round(values[min(len(values) - 1, round(pct / 100 * (len(values) - 1)))], 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--loads", default="50,100,200,400", help="offered requests/s")
    parser.add_argument("--duration-s", type=float, default=10.0)
    parser.add_argument("--ceiling-count", type=int, default=5000)
    parser.add_argument("--batch-count", type=int, default=10000)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--json", type=Path, default=Path("var/benchmark.json"))
    args = parser.parse_args(argv)
    if urlparse(args.url).hostname not in LOOPBACK:
        parser.error("the benchmark only targets an app on loopback")

    results: dict[str, Any] = {"machine": _machine()}
    results["ceiling"] = asyncio.run(ceiling(args.ceiling_count, args.batch_size))
    top = results["ceiling"]["transactions_per_s"]
    results["single"] = [
        asyncio.run(offered_load(args.url, float(rate), args.duration_s))
        for rate in args.loads.split(",")
    ]
    results["batch"] = batch_endpoint(args.url, args.batch_count, args.batch_size)
    results["memory_mib"] = replica_memory_mib()

    lines = [
        f"machine: {results['machine']}",
        f"{'path':<28}{'tx/s':>10}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}"
        f"{'errors':>8}{'503':>6}{'of ceiling':>12}",
        f"{'in-process (ceiling)':<28}{top:>10.1f}{'':>41}{1:>12.0%}",
    ]
    for row in results["single"]:
        lines.append(
            f"{'HTTP single @ ' + str(int(row['offered_per_s'])) + '/s':<28}"
            f"{row['achieved_per_s']:>10.1f}{row['p50_ms']:>9.1f}{row['p95_ms']:>9.1f}"
            f"{row['p99_ms']:>9.1f}{row['errors']:>8}{row['shed_503']:>6}"
            f"{row['achieved_per_s'] / top:>12.1%}"
        )
    batch = results["batch"]["transactions_per_s"]
    lines.append(f"{'HTTP batch of ' + str(args.batch_size):<28}{batch:>10.1f}"
                 f"{'':>41}{batch / top:>12.1%}")
    lines.append("memory per replica (MiB): " + ", ".join(
        f"{name} {mib:g}" for name, mib in results["memory_mib"].items()))
    sys.stdout.write("\n".join(lines) + "\n")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))
    return 0


def _machine() -> str:
    memory_gib = psutil.virtual_memory().total / 2**30
    return f"{psutil.cpu_count()} CPUs, {memory_gib:.0f} GiB"


if __name__ == "__main__":
    raise SystemExit(main())
