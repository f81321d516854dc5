"""Replays labelled Sparkov transactions through the running HTTP API.

    python -m fraudline.replay --limit 2000

Transactions go in time order through `POST /v1/analyze/batch`, so each one sees
the history its predecessors wrote. A warm-up share builds that history first and
is left out of the figures. Card numbers never leave this process: customers are
named by a hash of the card.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

logger = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SAMPLE = PROJECT_ROOT / "data" / "sparkov_sample.parquet"


@dataclass
class ReplayFigures:
    transactions: int
    rejected: int
    decisions: dict[str, int]
    frauds: int
    recall: float
    false_positive_rate: float
    block_precision: float
    transactions_per_s: float
    batch_p50_ms: float
    batch_p99_ms: float
    per_transaction_ms: float


def to_request(row: dict[str, Any]) -> dict[str, Any]:
    """One Sparkov row as an `/v1/analyze` request, without the card number."""
    card_hash = hashlib.sha256(str(row["cc_num"]).encode()).hexdigest()[:12]
    moment = row["trans_date_trans_time"]
    return {
        "transaction_id": f"SPK-{row['trans_num'][:24]}",
        "customer_id": f"SPK-{card_hash}",
        "amount": round(float(row["amt"]), 2),
        "merchant": str(row["merchant"]).removeprefix("fraud_")[:200],
        "merchant_category": str(row["category"]),
        "location": f"{row['city']}, {row['state']}",
        "latitude": float(row["merch_lat"]),
        "longitude": float(row["merch_long"]),
        "card_present": not str(row["category"]).endswith("_net"),
        "timestamp": moment.isoformat() + "+00:00",
    }


def load_rows(
    path: Path, first_row: int | None, limit: int, warmup: int
) -> tuple[list[dict[str, Any]], int]:
    """The warm-up rows then the measured rows, in time order; and the warm-up count.

    `first_row` is the first measured row in time order; None measures the last
    `limit` rows.
    """
    import pandas as pd

    frame = pd.read_parquet(path).sort_values("trans_date_trans_time", kind="stable")
    first = len(frame) - limit if first_row is None else first_row
    start = max(0, first - warmup)
    rows = frame.iloc[start : first + limit].to_dict("records")
    return rows, first - start


def replay(
    url: str, rows: list[dict[str, Any]], warmup: int, batch_size: int, timeout_s: float
) -> ReplayFigures:
    """Sends rows in order; the first `warmup` only build history."""
    decisions: Counter[str] = Counter()
    labels: list[tuple[int, str]] = []
    latencies_ms: list[float] = []
    rejected = 0
    measured_s = 0.0

    with httpx.Client(base_url=url, timeout=timeout_s) as client:
        for start in range(0, len(rows), batch_size):
            chunk = rows[start : start + batch_size]
            payload = {"transactions": [to_request(row) for row in chunk]}
            began = time.perf_counter()
            response = client.post("/v1/analyze/batch", json=payload)
            elapsed = time.perf_counter() - began
            response.raise_for_status()
            if start < warmup:
                continue
            measured_s += elapsed
            latencies_ms.append(elapsed * 1000)
            for row, result in zip(chunk, response.json()["results"]):
                if "decision" not in result:
                    rejected += 1
                    continue
                decisions[result["decision"]] += 1
                labels.append((int(row["is_fraud"]), result["decision"]))

    return _figures(labels, decisions, rejected, latencies_ms, measured_s)


def _figures(
    labels: list[tuple[int, str]],
    decisions: Counter[str],
    rejected: int,
    latencies_ms: list[float],
    measured_s: float,
) -> ReplayFigures:
    frauds = sum(label for label, _ in labels)
    legit = len(labels) - frauds
    flagged_frauds = sum(1 for label, d in labels if label and d != "approve")
    flagged_legit = sum(1 for label, d in labels if not label and d != "approve")
    blocks = [label for label, d in labels if d == "block"]
    latencies_ms.sort()
    count = len(labels)
    return ReplayFigures(
        transactions=count,
        rejected=rejected,
        decisions=dict(decisions),
        frauds=frauds,
        recall=round(flagged_frauds / frauds, 4) if frauds else 0.0,
        false_positive_rate=round(flagged_legit / legit, 4) if legit else 0.0,
        block_precision=round(sum(blocks) / len(blocks), 4) if blocks else 0.0,
        transactions_per_s=round(count / measured_s, 1) if measured_s else 0.0,
        batch_p50_ms=round(_percentile(latencies_ms, 50), 1),
        batch_p99_ms=round(_percentile(latencies_ms, 99), 1),
        per_transaction_ms=round(measured_s * 1000 / count, 2) if count else 0.0,
    )


def _percentile(sorted_values: list[float], pct: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, round(pct / 100 * (len(sorted_values) - 1)))
    return sorted_values[index]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Replay labelled Sparkov transactions.")
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--data", type=Path, default=SAMPLE)
    parser.add_argument("--limit", type=int, default=2000, help="transactions measured")
    parser.add_argument(
        "--first-row", type=int, help="first measured row in time order (default: the last)"
    )
    parser.add_argument("--warmup", type=int, default=3000, help="history-building share")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--timeout-s", type=float, default=120.0)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    rows, warmup = load_rows(args.data, args.first_row, args.limit, args.warmup)
    figures = replay(args.url, rows, warmup, args.batch_size, args.timeout_s)
    text = json.dumps(asdict(figures), indent=2)
    sys.stdout.write(text + "\n")
    if args.json:
        args.json.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
