"""The shipped risk model artifact, its card, and the training command."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from fraudline.errors import ConfigError
from fraudline.riskmodel import DEFAULT_MODEL_PATH, RiskModel
from fraudline.train import card_precision_at_k, main, recall_at_fpr, threshold_at_fpr

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sparkov_sample.parquet"


@pytest.fixture(scope="module")
def model() -> RiskModel:
    return RiskModel.load()


def test_shipped_artifact_is_small_and_versioned(model: RiskModel) -> None:
    size = sum(f.stat().st_size for f in DEFAULT_MODEL_PATH.iterdir())
    assert size < 2 * 1024 * 1024
    assert model.version == DEFAULT_MODEL_PATH.name == "risk-1.0.0"
    assert "amount_ratio" in model.feature_names
    assert "distance_home_km" not in model.feature_names
    assert 0 < model.thresholds.low < model.thresholds.high < 1
    assert (model.thresholds.low_fpr, model.thresholds.high_fpr) == (0.01, 0.001)


def test_model_card_reports_the_run_figures() -> None:
    meta = json.loads((DEFAULT_MODEL_PATH / "meta.json").read_text())
    card = (DEFAULT_MODEL_PATH / "MODEL_CARD.md").read_text()
    figures = meta["calibration_metrics"]

    assert f"| average precision | {figures['average_precision']:.4f} |" in card
    assert f"| recall at 1 % FPR | {figures['recall_at_1pct_fpr']:.4f} |" in card
    assert f"| low | {meta['thresholds']['low']:.6f} |" in card
    assert meta["data"]["calibration_frauds"] > 100
    assert figures["auc_roc"] > 0.99 and figures["average_precision"] > 0.8


def test_contributions_rank_the_strongest_features_first(model: RiskModel) -> None:
    rows = np.zeros((2, len(model.feature_names)))
    rows[:, model.feature_names.index("amount")] = [20.0, 1_000.0]
    rows[:, model.feature_names.index("hour")] = [14.0, 23.0]

    probabilities = model.predict(rows)
    drivers = model.contributions(rows, top=3)

    assert probabilities[1] > probabilities[0]
    assert len(drivers[1]) == 3
    strengths = [abs(d.log_odds) for d in drivers[1]]
    assert strengths == sorted(strengths, reverse=True)
    assert {d.feature for d in drivers[1]} >= {"amount"}
    assert next(d for d in drivers[1] if d.feature == "amount").value == 1_000.0


def test_missing_artifact_raises_config_error_naming_the_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=str(tmp_path)):
        RiskModel.load(tmp_path)


def test_threshold_flags_at_most_the_target_share_of_legit() -> None:
    legit = np.linspace(0, 1, 1000)
    scores = np.concatenate([legit, [2.0, 0.5]])
    labels = np.concatenate([np.zeros(1000), [1, 1]])

    threshold = threshold_at_fpr(scores, labels, 0.01)

    assert (legit > threshold).sum() == 9
    assert recall_at_fpr(scores, labels, 0.01) == 0.5


def test_card_precision_counts_cards_and_drops_those_caught_before() -> None:
    days = np.array([0, 0, 0, 1, 1])
    cards = np.array(["a", "a", "b", "a", "c"])
    scores = np.array([0.9, 0.1, 0.8, 0.99, 0.5])
    labels = np.array([0, 1, 0, 1, 1])

    # Day 0: top 2 are a (fraud that day) and b: 1/2. Day 1: a was caught, c: 1/2.
    assert card_precision_at_k(days, cards, scores, labels, k=2) == 0.5


def test_training_command_writes_artifact_and_card(tmp_path: Path) -> None:
    code = main(
        [
            "--data", str(SAMPLE), "--out", str(tmp_path), "--version", "risk-test",
            "--calibration-start", "2020-01-01", "--rounds", "20", "--threads", "1",
        ]
    )

    trained = RiskModel.load(tmp_path / "risk-test")
    assert code == 0
    assert trained.version == "risk-test"
    assert trained.meta["data"]["rows"] == 21_951
    assert not math.isnan(trained.meta["calibration_metrics"]["auc_roc"])
    assert "# Model card: risk-test" in (tmp_path / "risk-test" / "MODEL_CARD.md").read_text()
