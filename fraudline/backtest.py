"""Out-of-time backtests: Sparkov by months, and the Fraud Detection Handbook protocol."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import numpy as np

from fraudline.features import (
    US_PER_DAY,
    DelayedRates,
    compute_features,
    feature_names,
    handbook_events,
    sparkov_events,
)
from fraudline.train import (
    MODEL_FEATURES,
    card_precision_at_k,
    fit_booster,
    load_sparkov,
    metrics,
)

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

DATA_DIR = Path("/work/shared/data")
SPARKOV_TEST_START = "2020-07-01"
HANDBOOK_TRAIN_START = "2018-07-25"
HANDBOOK_DAYS = 7  # training days, delay days and test days alike
# The Handbook's published test figures (AUC ROC, average precision, CP@100).
HANDBOOK_PUBLISHED = {
    "logistic regression": (0.871, 0.606, 0.291),
    "random forest": (0.867, 0.658, 0.287),
    "XGBoost (tuned)": (0.869, 0.687, 0.303),
}
# Customer spending windows and terminal risk, as the Handbook builds them; the
# Handbook set has no coordinates or categories.
HANDBOOK_CUSTOMER_FEATURES = [
    name
    for name in feature_names()
    if not name.startswith(("distance", "speed")) and name != "card_present"
]
HANDBOOK_PARAMS = {"num_leaves": 15, "min_child_samples": 20, "learning_rate": 0.05}
HANDBOOK_ROUNDS = 300


def sparkov_backtest(path: Path, test_start: str, threads: int) -> list[dict[str, object]]:
    """Trains before `test_start`, tests after; with and without category rates."""
    import pandas as pd

    frame = load_sparkov(path)
    events = sparkov_events(frame)
    labels = frame["is_fraud"].to_numpy(dtype=int)
    days = events["time_us"].to_numpy() // US_PER_DAY
    rates = DelayedRates.fit("category", events["category"].to_numpy(), days, labels)
    features = compute_features(events, {"category": rates})
    train_rows = (frame["trans_date_trans_time"] < pd.Timestamp(test_start)).to_numpy()

    results = []
    variants = {
        "shipped features": MODEL_FEATURES,
        "+ delayed category rates (leaky here)": MODEL_FEATURES + rates.columns(),
    }
    for name, columns in variants.items():
        matrix = features[columns].to_numpy(dtype=np.float64)
        booster = fit_booster(matrix[train_rows], labels[train_rows], threads=threads)
        scores = booster.predict(matrix[~train_rows])
        result = metrics(scores, labels[~train_rows])
        result["cp_at_100"] = card_precision_at_k(
            days[~train_rows],
            frame["cc_num"].to_numpy()[~train_rows],
            scores,
            labels[~train_rows],
        )
        results.append({"model": f"LightGBM, {name}", **result})
    return results


def handbook_split(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Training and test rows of the Handbook protocol.

    Train on 7 days, wait 7 days for labels, test on the next 7 days. A test
    day leaves out the customers whose frauds were known by the day before
    its delay ended: those in training, or in the delay days up to then.
    """
    day = frame["TX_TIME_DAYS"].to_numpy()
    start = int(day[(frame["TX_DATETIME"] >= HANDBOOK_TRAIN_START).to_numpy()].min())
    fraud = frame["TX_FRAUD"].to_numpy() == 1
    customers = frame["CUSTOMER_ID"].to_numpy()
    train = (day >= start) & (day < start + HANDBOOK_DAYS)
    test = np.zeros(len(frame), dtype=bool)
    known = set(customers[train & fraud])
    for offset in range(HANDBOOK_DAYS):
        test_day = start + 2 * HANDBOOK_DAYS + offset
        newly_known = (day == start + HANDBOOK_DAYS + offset - 1) & fraud
        known.update(customers[newly_known])
        today = day == test_day
        test |= today & ~np.isin(customers, list(known))
    return train, test


def handbook_backtest(path: Path, threads: int) -> dict[str, object]:
    """LightGBM on the Handbook's features and protocol."""
    import pandas as pd

    frame = pd.read_parquet(path).sort_values("TRANSACTION_ID").reset_index(drop=True)
    events = handbook_events(frame)
    days = events["time_us"].to_numpy() // US_PER_DAY
    labels = frame["TX_FRAUD"].to_numpy(dtype=int)
    rates = DelayedRates.fit(
        "terminal",
        events["terminal"].to_numpy(),
        days,
        labels,
        delay_days=HANDBOOK_DAYS,
        windows_days=(1, 7, 30),
    )
    features = compute_features(events, {"terminal": rates})
    columns = HANDBOOK_CUSTOMER_FEATURES + rates.columns()
    train, test = handbook_split(frame)

    matrix = features[columns].to_numpy(dtype=np.float64)
    booster = fit_booster(
        matrix[train], labels[train], rounds=HANDBOOK_ROUNDS, params=HANDBOOK_PARAMS,
        threads=threads,
    )
    scores = booster.predict(matrix[test])
    result = metrics(scores, labels[test])
    result["cp_at_100"] = card_precision_at_k(
        frame["TX_TIME_DAYS"].to_numpy()[test],
        frame["CUSTOMER_ID"].to_numpy()[test],
        scores,
        labels[test],
    )
    return {
        "model": "LightGBM, customer windows + delayed terminal risk",
        "train_rows": int(train.sum()),
        "train_frauds": int(labels[train].sum()),
        "test_rows": int(test.sum()),
        "test_frauds": int(labels[test].sum()),
        **result,
    }


def report(
    sparkov: list[dict[str, object]] | None,
    handbook: dict[str, object] | None,
    out: TextIO,
) -> None:
    if sparkov is not None:
        out.write(f"\nSparkov: train before {SPARKOV_TEST_START}, test from it\n")
        out.write(
            f"{'model':58} {'AUC':>6} {'AP':>6} {'R@1%':>6} {'R@0.1%':>6} {'CP@100':>7}\n"
        )
        for row in sparkov:
            out.write(
                f"{row['model']:58} {row['auc_roc']:6.3f} {row['average_precision']:6.3f} "
                f"{row['recall_at_1pct_fpr']:6.3f} {row['recall_at_0.1pct_fpr']:6.3f} "
                f"{row['cp_at_100']:7.3f}\n"
            )
        out.write("(CP@100 is bounded by the ~1 compromised card a day among 250 cards)\n")
    if handbook is not None:
        out.write(
            f"\nHandbook protocol: train {HANDBOOK_TRAIN_START} + 7 days, 7-day delay, "
            f"test 7 days: {handbook['test_rows']:,} transactions, "
            f"{handbook['test_frauds']} frauds\n"
        )
        out.write(f"{'model':58} {'AUC':>6} {'AP':>6} {'CP@100':>7}\n")
        for name, (auc, ap, cp) in HANDBOOK_PUBLISHED.items():
            out.write(f"{name + ' (published)':58} {auc:6.3f} {ap:6.3f} {cp:7.3f}\n")
        out.write(
            f"{handbook['model']:58} {handbook['auc_roc']:6.3f} "
            f"{handbook['average_precision']:6.3f} {handbook['cp_at_100']:7.3f}\n"
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fraudline.backtest", description=__doc__)
    parser.add_argument("--sparkov", type=Path, default=DATA_DIR / "sparkov_dev.parquet")
    parser.add_argument(
        "--handbook", type=Path, default=DATA_DIR / "handbook_simulated.parquet"
    )
    parser.add_argument("--only", choices=["sparkov", "handbook"])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    sparkov = handbook = None
    started = time.perf_counter()
    if args.only != "handbook":
        if not args.sparkov.is_file():
            parser.error(f"no Sparkov data at {args.sparkov}; pass --sparkov PATH")
        sparkov = sparkov_backtest(args.sparkov, SPARKOV_TEST_START, args.threads)
    if args.only != "sparkov":
        if not args.handbook.is_file():
            parser.error(f"no Handbook data at {args.handbook}; pass --handbook PATH")
        handbook = handbook_backtest(args.handbook, args.threads)
    report(sparkov, handbook, sys.stdout)
    sys.stdout.write(f"\n({time.perf_counter() - started:.0f} s)\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
