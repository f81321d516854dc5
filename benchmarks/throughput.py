"""Throughput of the fast path, measured side by side in one run.

    .venv/bin/python benchmarks/throughput.py --url http://127.0.0.1:8000

Needs the app running (scripts/demo.sh). The traffic is ordinary payments of
1,000 synthetic customers (benchmarks/traffic.py), so every path is timed on
clear approvals with 90 days of each customer's own history behind them. In order:
1. the agent and the six tools in this one process, on a fresh SQLite store
   (the ceiling): 20 payments per customer in batches, the second half timed;
2. the same payments through `POST /v1/analyze/batch`, which also builds the
   running app's history for the next steps;
3. single requests through the HTTP ingress at fixed offered loads;
4. twice the highest load served in full, to show shedding (503, Retry-After);
5. the memory of each Serve replica.
Prints a table with each path's ratio to the ceiling and writes the figures as
JSON. Every request goes to the URL given, which must be on loopback; every
phase is bounded in requests and time (about four minutes in all).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import re
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import psutil
import traffic

from deployments.agent import Agent, AgentConfig
from deployments.toolbox import LocalToolbox
from fraudline.db import create_schema, make_engine
from fraudline.schemas import Transaction

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
REQUEST_TIMEOUT_S = 10.0


def ceiling(bodies: list[dict[str, Any]], batch_size: int) -> dict[str, float]:
    """The agent and real tools in-process, with a fresh SQLite store."""
    folder = tempfile.mkdtemp(prefix="fraudline-bench-")
    url = f"sqlite:///{folder}/bench.db"
    create_schema(make_engine(url))
    agent = Agent(AgentConfig(explain_mode="never"), LocalToolbox(url))

    async def run() -> float:
        timed_from = len(bodies) // 2
        started = 0.0
        for start in range(0, len(bodies), batch_size):
            if start >= timed_from and not started:
                started = time.perf_counter()
            chunk = [Transaction.model_validate(b) for b in bodies[start : start + batch_size]]
            await agent.decide_batch(chunk)
        return time.perf_counter() - started

    elapsed = asyncio.run(run())
    return {"transactions_per_s": round((len(bodies) - len(bodies) // 2) / elapsed, 1)}


def batch_endpoint(url: str, bodies: list[dict[str, Any]], batch_size: int) -> dict[str, Any]:
    """The batch endpoint on the same payments, the second half timed."""
    timed_from = len(bodies) // 2
    latencies: list[float] = []
    decided = 0
    with httpx.Client(base_url=url, timeout=120) as client:
        for start in range(0, len(bodies), batch_size):
            began = time.perf_counter()
            response = client.post(
                "/v1/analyze/batch",
                json={"transactions": bodies[start : start + batch_size], "explain": False},
            )
            response.raise_for_status()
            if start >= timed_from:
                latencies.append(time.perf_counter() - began)
                decided += response.json()["decided"]
    latencies.sort()
    return {
        "transactions_per_s": round(decided / sum(latencies), 1),
        "batch_size": batch_size,
        "batch_p50_ms": _pct([s * 1000 for s in latencies], 50),
        "batch_p99_ms": _pct([s * 1000 for s in latencies], 99),
    }


async def offered_load(url: str, rate: float, bodies: list[dict[str, Any]]) -> dict[str, Any]:
    """Open-loop load: requests start on schedule whether or not earlier ones ended."""
    served: list[float] = []
    shed: list[float] = []
    codes: dict[int, int] = {}
    retry_after: set[str] = set()
    limits = httpx.Limits(max_connections=2000, max_keepalive_connections=400)

    async with httpx.AsyncClient(
        base_url=url, timeout=REQUEST_TIMEOUT_S, limits=limits
    ) as client:

        async def one(body: dict[str, Any], at: float) -> None:
            await asyncio.sleep(max(0.0, at - time.perf_counter()))
            began = time.perf_counter()
            try:
                # httpx's timeout is per step (pool, connect, read); this bounds the whole.
                response = await asyncio.wait_for(
                    client.post("/v1/analyze", json=body), REQUEST_TIMEOUT_S
                )
                code = response.status_code
            except (httpx.HTTPError, TimeoutError):
                code = 0
            took = (time.perf_counter() - began) * 1000
            if code == 200:
                served.append(took)
            elif code == 503:
                shed.append(took)
                retry_after.add(response.headers.get("retry-after", ""))
            codes[code] = codes.get(code, 0) + 1

        started = time.perf_counter()
        await asyncio.gather(
            *(one(body, started + i / rate) for i, body in enumerate(bodies))
        )
        elapsed = time.perf_counter() - started

    served.sort()
    shed.sort()
    return {
        "offered_per_s": rate,
        "requests": len(bodies),
        "achieved_per_s": round(codes.get(200, 0) / elapsed, 1),
        "p50_ms": _pct(served, 50),
        "p95_ms": _pct(served, 95),
        "p99_ms": _pct(served, 99),
        "errors": sum(n for code, n in codes.items() if code != 200),
        "shed_503": codes.get(503, 0),
        "shed_p99_ms": _pct(shed, 99),
        "retry_after": sorted(retry_after),
        "codes": {str(code): n for code, n in sorted(codes.items())},
    }


def replica_memory_mib() -> dict[str, list[float]]:
    """Resident memory of each Serve replica process, by deployment."""
    found: dict[str, list[float]] = {}
    for process in psutil.process_iter(["cmdline", "memory_info"]):
        title = " ".join(process.info["cmdline"] or [])
        if "ServeReplica:" not in title or process.info["memory_info"] is None:
            continue
        name = title.split("ServeReplica:", 1)[1].split()[0]
        # A busy replica's title ends in the method it runs.
        name = re.sub(r"\.[a-z_]+$", "", name)
        found.setdefault(name, []).append(round(process.info["memory_info"].rss / 2**20))
    return dict(sorted(found.items()))


def sustainable(rows: list[dict[str, Any]]) -> float | None:
    """The highest offered load served in full: no errors, 95 % of it achieved."""
    full = [
        row["offered_per_s"]
        for row in rows
        if row["errors"] == 0 and row["achieved_per_s"] >= 0.95 * row["offered_per_s"]
    ]
    return max(full) if full else None


def _singles(
    people: list[traffic.Customer], rate: float, duration_s: float
) -> list[dict[str, Any]]:
    count = int(rate * duration_s)
    now = datetime.now(UTC)
    per_customer = math.ceil(count / len(people))
    bodies = traffic.payments(people, per_customer, now, now + timedelta(seconds=duration_s))
    return bodies[:count]


def _pct(values: list[float], pct: float) -> float:
    if not values:
        return 0.0
    return round(values[min(len(values) - 1, round(pct / 100 * (len(values) - 1)))], 1)


def _table(results: dict[str, Any]) -> str:
    top = results["ceiling"]["transactions_per_s"]
    lines = [
        f"machine: {results['machine']}",
        f"{'path':<30}{'tx/s':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}"
        f"{'errors':>8}{'503':>6}{'of ceiling':>12}",
        f"{'in-process (ceiling)':<30}{top:>9.1f}{'':>41}{1:>12.0%}",
    ]
    batch = results["batch"]
    lines.append(
        f"{'HTTP batch of ' + str(batch['batch_size']):<30}"
        f"{batch['transactions_per_s']:>9.1f}{batch['batch_p50_ms']:>9.1f}{'':>9}"
        f"{batch['batch_p99_ms']:>9.1f}{'':>14}{batch['transactions_per_s'] / top:>12.1%}"
    )
    rows = [("HTTP single @ ", row) for row in results["single"]]
    if results.get("shedding"):
        rows.append(("shedding @ ", results["shedding"]))
    for label, row in rows:
        lines.append(
            f"{label + str(int(row['offered_per_s'])) + '/s':<30}"
            f"{row['achieved_per_s']:>9.1f}{row['p50_ms']:>9.1f}{row['p95_ms']:>9.1f}"
            f"{row['p99_ms']:>9.1f}{row['errors']:>8}{row['shed_503']:>6}"
            f"{row['achieved_per_s'] / top:>12.1%}"
        )
    shedding = results.get("shedding")
    if shedding and shedding["shed_503"]:
        lines.append(
            f"shed answers: p99 {shedding['shed_p99_ms']:.1f} ms, "
            f"Retry-After {', '.join(shedding['retry_after'])} s"
        )
    lines.append("memory per replica (MiB): " + ", ".join(
        f"{name.split(':', 1)[-1]} {'+'.join(str(mib) for mib in sizes)}"
        for name, sizes in results["memory_mib"].items()))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument("--history", type=int, default=20, help="payments per customer")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--loads", default="50,100,200,400", help="offered requests/s")
    parser.add_argument("--duration-s", type=float, default=10.0)
    parser.add_argument("--json", type=Path, default=Path("var/benchmark.json"))
    args = parser.parse_args(argv)
    if urlparse(args.url).hostname not in LOOPBACK:
        parser.error("the benchmark only targets an app on loopback")

    people = traffic.customers(args.customers)
    now = datetime.now(UTC)
    history = traffic.payments(people, args.history, now - timedelta(days=60), now)
    results: dict[str, Any] = {"machine": _machine()}
    _say(f"ceiling: {len(history)} payments in process")
    results["ceiling"] = ceiling(history, args.batch_size)
    _say("batch endpoint")
    results["batch"] = batch_endpoint(args.url, history, args.batch_size)
    results["single"] = []
    for rate in (float(r) for r in args.loads.split(",")):
        _say(f"single requests at {rate:g}/s for {args.duration_s:g} s")
        bodies = _singles(people, rate, args.duration_s)
        results["single"].append(asyncio.run(offered_load(args.url, rate, bodies)))
    full = sustainable(results["single"])
    if full is not None:
        _say(f"shedding at {2 * full:g}/s, twice the highest load served in full")
        bodies = _singles(people, 2 * full, args.duration_s)
        results["shedding"] = asyncio.run(offered_load(args.url, 2 * full, bodies))
    results["memory_mib"] = replica_memory_mib()

    sys.stdout.write(_table(results))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))
    return 0


def _say(text: str) -> None:
    sys.stderr.write(f"[{time.strftime('%H:%M:%S')}] {text}\n")


def _machine() -> str:
    memory_gib = psutil.virtual_memory().total / 2**30
    return f"{psutil.cpu_count()} CPUs, {memory_gib:.0f} GiB"


if __name__ == "__main__":
    raise SystemExit(main())
