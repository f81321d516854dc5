"""Warm per-transaction latency of the geolocation and identity tools, and data memory.

Run: .venv/bin/python benchmarks/tools_latency.py [--rounds 200]
Seeds a throwaway SQLite database with the demo history and prints one line per figure.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from deployments.geolocation import GeolocationChecker  # noqa: E402
from deployments.identity import DeviceDirectory, IdentityVerifier  # noqa: E402
from fraudline.db import make_engine, make_sessions  # noqa: E402
from fraudline.demo import SCENARIOS, seed_demo_history  # noqa: E402
from fraudline.gazetteer import Gazetteer  # noqa: E402
from fraudline.history import HistoryStore  # noqa: E402
from fraudline.ipinfo import IpLookup  # noqa: E402
from fraudline.schemas import Transaction  # noqa: E402

NOW = datetime.now(UTC)


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure_memory(label: str, load: Callable[[], Any]) -> Any:
    """Loads twice: once for time and RSS, once under tracemalloc for the heap."""
    gc.collect()
    rss_before = rss_mib()
    started = time.perf_counter()
    loaded = load()
    seconds = time.perf_counter() - started
    gc.collect()
    rss_after = rss_mib()

    tracemalloc.start()
    second = load()
    kept, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del second
    _say(
        f"{label}: load {seconds:.2f} s, RSS +{rss_after - rss_before:.1f} MiB, "
        f"python heap kept {kept / 2**20:.1f} MiB, peak {peak / 2**20:.1f} MiB"
    )
    return loaded


def seed(url: str) -> HistoryStore:
    seed_demo_history(url, NOW)
    return HistoryStore(make_sessions(make_engine(url)))


def scenarios() -> list[Transaction]:
    return [Transaction(**fields, timestamp=NOW) for fields in SCENARIOS.values()]


def time_tool(name: str, evaluate: Callable[[list[Transaction]], Any], rounds: int) -> None:
    batch = scenarios()
    evaluate(batch)  # warm: caches, SQLite pages, lazy imports
    for size in (1, 3, 30):
        transactions = (batch * 10)[:size]
        samples = []
        for _ in range(rounds):
            started = time.perf_counter()
            evaluate(transactions)
            samples.append((time.perf_counter() - started) * 1000 / size)
        samples.sort()
        p50 = statistics.median(samples)
        p95 = samples[int(len(samples) * 0.95) - 1]
        _say(f"{name} batch={size:>2}: {p50:.2f} ms/tx p50, {p95:.2f} ms/tx p95")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()

    gazetteer = measure_memory("gazetteer (cities15000)", lambda: _loaded(Gazetteer()))
    ip_lookup = measure_memory("iptocc + IpLookup", lambda: _looked_up(IpLookup()))

    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{folder}/bench.db"
        store = seed(url)
        geolocation = GeolocationChecker(history=store, gazetteer=gazetteer)
        identity = IdentityVerifier(
            history=store,
            devices=DeviceDirectory(make_sessions(make_engine(url))),
            gazetteer=gazetteer,
            ip_lookup=ip_lookup,
        )
        for tool, evaluate in (
            ("geolocation", geolocation.evaluate_batch),
            ("identity", identity.evaluate_batch),
        ):
            for evidence in evaluate(scenarios()):
                _say(
                    f"{tool} scenario points: {evidence.points:.0f} "
                    f"{[s.code for s in evidence.signals]}"
                )
            time_tool(tool, evaluate, args.rounds)


def _loaded(gazetteer: Gazetteer) -> Gazetteer:
    gazetteer.load()
    return gazetteer


def _looked_up(lookup: IpLookup) -> IpLookup:
    lookup.lookup_many(["8.8.8.8", "2001:4860:4860::8888"])
    return lookup



def _say(text: str) -> None:
    sys.stdout.write(text + "\n")


if __name__ == "__main__":
    main()
