"""Cases with their audit entries written per second by FraudLogger, batched and single.

Run: .venv/bin/python benchmarks/records_write.py [--cases 2000] [--database-url URL]
Without a URL it writes to a fresh SQLite file in a temporary folder. With a URL
(e.g. the PostgreSQL one `scripts/postgres.sh` prints) it adds to that database:
transaction ids carry a per-run prefix, so runs never replay each other's.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy.engine import make_url  # noqa: E402

from deployments.fraud_logger import FraudLogger  # noqa: E402
from fraudline.schemas import (  # noqa: E402
    DecisionResult,
    Evidence,
    Explanation,
    Reason,
    Signal,
    Transaction,
)

NOW = datetime(2026, 1, 31, 14, 5, tzinfo=UTC)


def _pair(n: int, run: str) -> tuple[Transaction, DecisionResult]:
    transaction_id = f"TX-{run}-{n}"
    decision = "block" if n % 2 else "review"
    signals = [
        Signal(code="impossible_travel", text="15,020 km/h", value=15020.0, unit="km/h", points=40),
        Signal(code="unknown_device", text="new device", value="dev-unknown", points=20),
    ]
    transaction = Transaction(
        transaction_id=transaction_id,
        customer_id=f"C-{n % 500}",
        amount=4500.0,
        merchant="CRYPTO-EXCHANGE-XX",
        merchant_category="Cryptocurrency",
        location="Moscow, Russia",
        device_id="dev-unknown",
        ip_address="185.220.101.5",
        timestamp=NOW,
    )
    result = DecisionResult(
        transaction_id=transaction_id,
        customer_id=transaction.customer_id,
        decision=decision,  # type: ignore[arg-type]
        risk_score=95.0 if decision == "block" else 60.0,
        risk_level="high" if decision == "block" else "medium",
        reasons=[Reason(code=s.code, text=s.text, tool="t", points=s.points) for s in signals],
        evidence={"geolocation": Evidence(tool="geolocation", signals=signals)},
        explanation=Explanation(text="benchmark"),
        policy_version="policy-2026.01",
        decided_at=NOW,
    )
    return transaction, result


def _rate(logger: FraudLogger, cases: int, batch: int, run: str) -> float:
    pairs = [_pair(n, run) for n in range(cases)]
    started = time.perf_counter()
    for start in range(0, cases, batch):
        logger.log_batch(pairs[start : start + batch])
    return cases / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--database-url")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        url = args.database_url or f"sqlite:///{folder}/bench.db"
        logger = FraudLogger(url)
        run = uuid.uuid4().hex[:8]
        logger.log_batch([_pair(0, f"{run}-warm")])
        batched = _rate(logger, args.cases, 100, f"{run}-batch")
        single = _rate(logger, max(args.cases // 4, 1), 1, f"{run}-single")
        started = time.perf_counter()
        report = logger.verify_chain()
        verify_s = time.perf_counter() - started
        _say(f"database: {make_url(url).get_backend_name()}")
        _say(f"batch of 100: {batched:,.0f} cases/s (case + audit entry + history + alert)")
        _say(f"single:       {single:,.0f} cases/s")
        checked = report.entries_checked
        _say(f"verify_chain: {checked:,} entries in {verify_s:.2f} s, ok={report.ok}")



def _say(text: str) -> None:
    sys.stdout.write(text + "\n")


if __name__ == "__main__":
    main()
