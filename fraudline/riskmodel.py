"""The learned risk model: a LightGBM booster with its features, thresholds and tables."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fraudline.errors import ConfigError
from fraudline.features import DelayedRates

if TYPE_CHECKING:
    import lightgbm
    import pandas as pd

logger = logging.getLogger(__name__)

MODELS_DIR = Path(__file__).resolve().parents[1] / "models"
MODEL_VERSION = "risk-1.0.0"
DEFAULT_MODEL_PATH = MODELS_DIR / MODEL_VERSION


@dataclass(frozen=True)
class Thresholds:
    """Probabilities at which the model's false-positive rate meets its targets.

    Attributes:
        low: Score above which about `low_fpr` of legitimate payments fall.
        high: Score above which about `high_fpr` of legitimate payments fall.
        low_fpr: Target false-positive rate of `low`, e.g. 0.01.
        high_fpr: Target false-positive rate of `high`, e.g. 0.001.
    """

    low: float
    high: float
    low_fpr: float
    high_fpr: float


@dataclass(frozen=True)
class Contribution:
    """How much one feature pushed one prediction, in log-odds."""

    feature: str
    value: float
    log_odds: float


class RiskModel:
    """A trained booster plus what serving it needs, loaded from one folder.

    The folder holds `model.txt` (LightGBM text format) and `meta.json`
    (version, feature names, thresholds, delayed-rate tables, metrics).

    Args:
        booster: The trained LightGBM booster.
        meta: The artifact's metadata, as `meta.json` holds it.
    """

    def __init__(self, booster: lightgbm.Booster, meta: Mapping[str, Any]) -> None:
        self._booster = booster
        self.meta = dict(meta)
        self.version: str = str(meta["version"])
        self.feature_names: list[str] = list(meta["features"])
        t = meta["thresholds"]
        self.thresholds = Thresholds(
            low=float(t["low"]),
            high=float(t["high"]),
            low_fpr=float(t["low_fpr"]),
            high_fpr=float(t["high_fpr"]),
        )
        self.rates: dict[str, DelayedRates] = {
            column: DelayedRates.from_dict(table)
            for column, table in meta.get("rates", {}).items()
        }
        # Serving predicts one small batch at a time: threads cost more than they save.
        self._params = {"num_threads": 1}

    @classmethod
    def load(cls, path: str | Path = DEFAULT_MODEL_PATH) -> RiskModel:
        """Loads an artifact folder written by `RiskModel.save`.

        Raises:
            ConfigError: the folder or one of its files is missing or unreadable.
        """
        import lightgbm

        folder = Path(path)
        model_file, meta_file = folder / "model.txt", folder / "meta.json"
        if not model_file.is_file() or not meta_file.is_file():
            raise ConfigError(
                f"no risk model at {folder}: expected model.txt and meta.json there; "
                "train one with `python -m fraudline.train` or set model_path"
            )
        try:
            meta = json.loads(meta_file.read_text())
            booster = lightgbm.Booster(model_file=str(model_file))
        except (OSError, ValueError, lightgbm.basic.LightGBMError) as exc:
            raise ConfigError(f"cannot read the risk model at {folder}: {exc}") from exc
        logger.info("loaded risk model %s from %s", meta.get("version"), folder)
        return cls(booster, meta)

    @staticmethod
    def save(folder: str | Path, booster: lightgbm.Booster, meta: Mapping[str, Any]) -> Path:
        """Writes `model.txt` and `meta.json` into `folder`, creating it."""
        target = Path(folder)
        target.mkdir(parents=True, exist_ok=True)
        booster.save_model(str(target / "model.txt"))
        (target / "meta.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
        return target

    def matrix(self, features: pd.DataFrame) -> np.ndarray:
        """The model's columns of a feature frame, as a float matrix."""
        return features[self.feature_names].to_numpy(dtype=np.float64)

    def predict(self, features: pd.DataFrame | np.ndarray) -> np.ndarray:
        """Fraud probability per row."""
        data = features if isinstance(features, np.ndarray) else self.matrix(features)
        return np.asarray(self._booster.predict(data, **self._params), dtype=float)

    def contributions(
        self, features: pd.DataFrame | np.ndarray, top: int = 3
    ) -> list[list[Contribution]]:
        """The `top` features that pushed each row's score most, strongest first.

        Contributions are TreeSHAP values in log-odds; positive pushes toward fraud.
        """
        data = features if isinstance(features, np.ndarray) else self.matrix(features)
        shap = np.asarray(self._booster.predict(data, pred_contrib=True, **self._params))
        per_feature = shap[:, :-1]  # the last column is the expected value
        order = np.argsort(-np.abs(per_feature), axis=1)[:, :top]
        return [
            [
                Contribution(
                    feature=self.feature_names[j],
                    value=float(data[i, j]),
                    log_odds=float(per_feature[i, j]),
                )
                for j in order[i]
            ]
            for i in range(len(data))
        ]
