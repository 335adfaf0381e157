"""Monitoring baseline and drift: a reference profile saved with the model, compared to new data.

:func:`reference_profile` summarises the training features and the model's predictions into a
JSON-serialisable dict (quantile bins and a sorted sample per numeric column, category shares per
categorical column, missing shares). :func:`compare` scores new data against it: the population
stability index (PSI) per feature, and for numeric features the two-sample Kolmogorov-Smirnov test
(:func:`scipy.stats.ks_2samp`) against the stored sample. :func:`drift_command` is what the
``specweave-ray drift`` command runs.

Example:
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> X = pd.DataFrame({"amount": rng.normal(size=500), "country": rng.choice(["fr", "de"], 500)})
    >>> ref = reference_profile(X, rng.uniform(size=500))
    >>> report = compare(ref, X)
    >>> report.passed, report.rows[0].psi
    (True, 0.0)
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from specweave_ray._fs import atomic_write_json, atomic_write_text
from specweave_ray.data import load_table
from specweave_ray.exceptions import ConfigError, DataError

logger = logging.getLogger(__name__)

PROFILE_VERSION = 1
OTHER = "__other__"
PREDICTION = "__prediction__"
SAMPLE_SIZE = 2000
# Empty bins would make PSI infinite; 1e-4 is the customary floor (a share of 0.01 %).
PSI_EPSILON = 1e-4
_KINDS = ("numeric", "categorical")


@dataclass(frozen=True)
class FeatureDrift:
    """How one feature (or the predictions) moved between the reference and new data.

    Attributes:
        feature: the column name (``"__prediction__"`` for the predictions).
        kind: ``"numeric"`` or ``"categorical"``.
        psi: population stability index over the reference bins plus a missing bin.
        ks_stat: Kolmogorov-Smirnov statistic (numeric only, ``None`` otherwise or when either
            side has no values).
        ks_pvalue: its p-value (same conditions).
        missing_ref: share of missing values in the reference.
        missing_new: share of missing values in the new data.
        drifted: whether the thresholds of :func:`compare` flag this feature.
    """

    feature: str
    kind: str
    psi: float
    ks_stat: float | None
    ks_pvalue: float | None
    missing_ref: float
    missing_new: float
    drifted: bool


@dataclass(frozen=True)
class DriftReport:
    """The result of :func:`compare`.

    Attributes:
        rows: one :class:`FeatureDrift` per reference feature, in reference order.
        drifted: names of the drifted features (predictions excluded; see ``prediction``).
        prediction: drift of the predictions, or ``None`` when none were compared.
        psi_threshold: the PSI above which a feature drifts.
        ks_alpha: the KS p-value below which a numeric feature may drift.
        ks_min_stat: the KS statistic it must also exceed.
        skipped: reference columns not scored (datetime), with the reason.
    """

    rows: list[FeatureDrift]
    drifted: list[str]
    prediction: FeatureDrift | None = None
    psi_threshold: float = 0.2
    ks_alpha: float = 0.01
    ks_min_stat: float = 0.1
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """``True`` when no feature and not the predictions drifted."""
        return not self.drifted and not (self.prediction is not None and self.prediction.drifted)

    def to_json(self) -> dict[str, Any]:
        """A JSON-serialisable dict; :meth:`from_json` reads it back to an equal report."""
        return {
            "passed": self.passed,
            "psi_threshold": self.psi_threshold,
            "ks_alpha": self.ks_alpha,
            "ks_min_stat": self.ks_min_stat,
            "drifted": list(self.drifted),
            "rows": [asdict(r) for r in self.rows],
            "prediction": asdict(self.prediction) if self.prediction is not None else None,
            "skipped": dict(self.skipped),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DriftReport:
        """Rebuild a report written by :meth:`to_json`."""
        try:
            pred = data.get("prediction")
            return cls(
                rows=[FeatureDrift(**r) for r in data["rows"]],
                drifted=list(data["drifted"]),
                prediction=FeatureDrift(**pred) if pred else None,
                psi_threshold=float(data["psi_threshold"]),
                ks_alpha=float(data["ks_alpha"]),
                ks_min_stat=float(data["ks_min_stat"]),
                skipped=dict(data.get("skipped") or {}),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise DataError(f"not a drift report written by DriftReport.to_json: {err}") from err

    def to_markdown(self) -> str:
        """The report as Markdown: verdict, thresholds, one table row per feature."""
        verdict = "PASSED — no drift past the thresholds" if self.passed else "DRIFT DETECTED"
        lines = [
            "# Drift report", "", f"**{verdict}**", "",
            f"A feature drifts when PSI > {self.psi_threshold:g}, or (numeric) when the KS "
            f"p-value < {self.ks_alpha:g} and the KS statistic > {self.ks_min_stat:g}.", "",
            "| feature | kind | PSI | KS stat | KS p-value | missing (ref → new) | drifted |",
            "| --- | --- | ---: | ---: | ---: | --- | --- |",
        ]
        rows = [*self.rows, *([self.prediction] if self.prediction is not None else [])]
        for r in rows:
            name = "predictions" if r.feature == PREDICTION else r.feature
            lines.append(
                f"| {name} | {r.kind} | {r.psi:.4f} | {_fmt(r.ks_stat, '.4f')} | "
                f"{_fmt(r.ks_pvalue, '.3g')} | {r.missing_ref:.1%} → {r.missing_new:.1%} | "
                f"{'**yes**' if r.drifted else 'no'} |"
            )
        if self.drifted:
            lines += ["", f"Drifted features: {', '.join(self.drifted)}."]
        if self.prediction is not None and self.prediction.drifted:
            lines += ["", "The prediction distribution drifted."]
        if self.skipped:
            lines += ["", "Not scored: " + ", ".join(f"{k} ({v})" for k, v in self.skipped.items())]
        return "\n".join(lines) + "\n"


# -- the reference profile ------------------------------------------------------------------
def reference_profile(
    X: pd.DataFrame, predictions: np.ndarray | None = None, *, bins: int = 10, max_categories: int = 50
) -> dict[str, Any]:
    """Summarise training features and predictions as the monitoring baseline.

    Numeric columns keep their inner quantile cut points (deduplicated; the outer edges are
    implicitly -inf and +inf, so any new value falls in a bin and the profile stays valid JSON),
    the share of all rows in each bin, the missing share, and a sorted sample of at most 2000
    values (evenly spaced order statistics) for the KS test. String, category and bool columns
    keep the shares of their ``max_categories`` most frequent values, the rest as ``"__other__"``.
    Datetime columns are skipped (new data is later by construction).

    Args:
        X: the reference features (usually the training data).
        predictions: the model's predictions on ``X``: for a classifier the positive-class
            probability, for multi-class the predicted labels (non-numeric labels, or a 2-D
            probability array whose argmax is taken, are profiled as categorical).
        bins: number of quantile bins for numeric columns (fewer when values repeat).
        max_categories: categories kept per categorical column.

    Returns:
        A JSON-serialisable dict to store with the model package and pass to :func:`compare`.

    Raises:
        ConfigError: ``bins`` < 2 or ``max_categories`` < 1.
        DataError: ``X`` is not a non-empty DataFrame, or ``predictions`` has another length.
    """
    if not isinstance(bins, int) or isinstance(bins, bool) or bins < 2:
        raise ConfigError(f"bins must be an integer >= 2, got {bins!r}")
    if not isinstance(max_categories, int) or isinstance(max_categories, bool) or max_categories < 1:
        raise ConfigError(f"max_categories must be an integer >= 1, got {max_categories!r}")
    _check_frame(X, what="reference data")
    features: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    for col in X.columns:
        kind = _kind(X[col])
        if kind == "datetime":
            skipped[str(col)] = "datetime"
            continue
        features[str(col)] = _profile(X[col], kind, bins=bins, max_categories=max_categories)
    profile: dict[str, Any] = {
        "version": PROFILE_VERSION, "n_rows": len(X), "columns": [str(c) for c in X.columns], "bins": bins,
        "max_categories": max_categories, "features": features, "skipped": skipped,
        "prediction": None,
    }
    if predictions is not None:
        pred = _prediction_series(predictions, n_rows=len(X))
        profile["prediction"] = _profile(pred, _kind(pred), bins=bins, max_categories=max_categories)
    return profile


def save_reference(profile: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write a profile from :func:`reference_profile` to ``path`` as JSON, atomically."""

    return atomic_write_json(path, dict(profile))


def load_reference(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a profile written by :func:`save_reference`.

    Raises:
        DataError: the file is missing, is not JSON, or is not a reference profile.
    """
    try:
        with open(path, encoding="utf-8") as fh:
            profile = json.load(fh)
    except FileNotFoundError as err:
        raise DataError(f"reference profile not found: {path}") from err
    except (OSError, ValueError) as err:
        raise DataError(f"cannot read reference profile {path}: {err}") from err
    _check_profile(profile)
    return profile


# -- comparison -----------------------------------------------------------------------------
def compare(
    reference: Mapping[str, Any],
    X: pd.DataFrame,
    predictions: np.ndarray | None = None,
    *,
    psi_threshold: float = 0.2,
    ks_alpha: float = 0.01,
    ks_min_stat: float = 0.1,
) -> DriftReport:
    """Score new data (and optionally new predictions) against a reference profile.

    A feature drifts when its PSI exceeds ``psi_threshold``, or — numeric features only — when
    the KS p-value is below ``ks_alpha`` *and* the KS statistic exceeds ``ks_min_stat`` (on large
    data, tiny harmless shifts are significant; the statistic guards against those). Unseen
    categories count as ``"__other__"``; missing values are a bin of their own. Columns of ``X``
    that the reference does not know are ignored.

    Args:
        reference: a profile from :func:`reference_profile` (or :func:`load_reference`).
        X: the new features.
        predictions: the model's predictions on ``X``, in the form used for the reference.
        psi_threshold: PSI above which a feature drifts (0.1 notable, 0.2 customary alarm).
        ks_alpha: KS significance level.
        ks_min_stat: the KS statistic a significant shift must also exceed.

    Returns:
        A :class:`DriftReport`.

    Raises:
        ConfigError: a threshold is out of range.
        DataError: ``reference`` is not a profile; ``X`` is empty or lacks reference columns
            (all named); a numeric reference column holds text; predictions are given but the
            reference has none, or their length differs from ``X``.
    """
    if not (isinstance(psi_threshold, (int, float)) and psi_threshold > 0):
        raise ConfigError(f"psi_threshold must be a number > 0, got {psi_threshold!r}")
    if not (isinstance(ks_alpha, (int, float)) and 0 < ks_alpha < 1):
        raise ConfigError(f"ks_alpha must be in (0, 1), got {ks_alpha!r}")
    if not (isinstance(ks_min_stat, (int, float)) and 0 <= ks_min_stat < 1):
        raise ConfigError(f"ks_min_stat must be in [0, 1), got {ks_min_stat!r}")
    _check_profile(reference)
    _check_frame(X, what="new data")
    features = reference["features"]
    by_name = {str(c): c for c in X.columns}
    missing = [name for name in features if name not in by_name]
    if missing:
        raise DataError(
            f"new data lacks {len(missing)} column(s) of the reference profile: "
            f"{', '.join(map(repr, missing))}; columns present: {', '.join(map(str, X.columns))}"
        )
    limits = (float(psi_threshold), float(ks_alpha), float(ks_min_stat))
    rows = [_score(name, ref, X[by_name[name]], limits) for name, ref in features.items()]
    pred_row = None
    if predictions is not None:
        if reference.get("prediction") is None:
            raise DataError("predictions were given but the reference profile has none; "
                            "rebuild it with reference_profile(X, predictions)")
        pred = _prediction_series(predictions, n_rows=len(X))
        pred_row = _score(PREDICTION, reference["prediction"], pred, limits)
    return DriftReport(
        rows=rows, drifted=[r.feature for r in rows if r.drifted], prediction=pred_row,
        psi_threshold=limits[0], ks_alpha=limits[1], ks_min_stat=limits[2],
        skipped=dict(reference.get("skipped") or {}),
    )


def drift_command(
    reference: Mapping[str, Any] | str | os.PathLike[str],
    data: pd.DataFrame | str | os.PathLike[str],
    *,
    predict: Callable[[pd.DataFrame], np.ndarray] | None = None,
    out_dir: str | os.PathLike[str] | None = None,
    psi_threshold: float = 0.2,
    ks_alpha: float = 0.01,
    ks_min_stat: float = 0.1,
) -> tuple[DriftReport, int]:
    """What ``specweave-ray drift ID --data new.parquet`` runs, minus locating the package.

    Args:
        reference: the profile, or the path of its JSON file.
        data: the new data, or a CSV/Parquet path (read with :func:`specweave_ray.data._load.load_table`).
        predict: called on the reference columns of the data to get predictions in the
            reference's form (e.g. a ``Predictor``'s positive-class probability); ``None`` skips
            prediction drift.
        out_dir: when given, ``drift-report.md`` and ``drift-report.json`` are written there.
        psi_threshold: see :func:`compare`.
        ks_alpha: see :func:`compare`.
        ks_min_stat: see :func:`compare`.

    Returns:
        The report and the exit status: 0 when it passed, 1 when anything drifted.
    """
    profile = load_reference(reference) if isinstance(reference, (str, os.PathLike)) else reference
    if isinstance(data, (str, os.PathLike)):

        data = load_table(data)
    predictions = None
    if predict is not None:
        _check_profile(profile)
        by_name = {str(c): c for c in data.columns}
        cols = profile.get("columns") or list(profile["features"])
        absent = [c for c in cols if c not in by_name]
        if absent:
            raise DataError(f"new data lacks {len(absent)} column(s) the model was trained on: "
                            f"{', '.join(map(repr, absent))}")
        predictions = predict(data[[by_name[c] for c in cols]])
    report = compare(profile, data, predictions, psi_threshold=psi_threshold,
                     ks_alpha=ks_alpha, ks_min_stat=ks_min_stat)
    if out_dir is not None:

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "drift-report.md", report.to_markdown())
        atomic_write_json(out / "drift-report.json", report.to_json())
    if not report.passed:
        logger.warning("drift detected in %s", ", ".join(
            report.drifted + (["predictions"] if report.prediction and report.prediction.drifted else [])))
    return report, 0 if report.passed else 1


# -- helpers --------------------------------------------------------------------------------
def _check_frame(X: Any, *, what: str) -> None:
    if not isinstance(X, pd.DataFrame):
        raise DataError(f"{what} must be a pandas DataFrame, got {type(X).__name__}")
    if len(X) == 0 or X.shape[1] == 0:
        raise DataError(f"{what} has {len(X)} row(s) and {X.shape[1]} column(s); need at least one of each")


def _check_profile(profile: Any) -> None:
    ok = (isinstance(profile, Mapping) and profile.get("version") == PROFILE_VERSION
          and isinstance(profile.get("features"), Mapping)
          and all(isinstance(f, Mapping) and f.get("kind") in _KINDS
                  for f in profile["features"].values()))
    if not ok:
        got = profile.get("version") if isinstance(profile, Mapping) else type(profile).__name__
        raise DataError(f"not a reference profile of version {PROFILE_VERSION} (got {got!r}); "
                        "build one with specweave_ray.deploy.drift.reference_profile")


def _kind(s: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(s.dtype):
        return "categorical"
    if pd.api.types.is_numeric_dtype(s.dtype):
        return "numeric"
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        return "datetime"
    return "categorical"


def _prediction_series(predictions: Any, *, n_rows: int) -> pd.Series:
    arr = np.asarray(predictions)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    elif arr.ndim == 2 and arr.shape[1] == 2:  # binary probabilities: keep the positive class
        arr = arr[:, 1]
    elif arr.ndim == 2:  # multi-class probabilities: the predicted label
        arr = arr.argmax(axis=1).astype(str)
    if arr.ndim != 1:
        raise DataError(f"predictions must be 1-D or (n, k) probabilities, got shape {arr.shape}")
    if len(arr) != n_rows:
        raise DataError(f"predictions have {len(arr)} value(s) but the data has {n_rows} row(s)")
    return pd.Series(arr, name=PREDICTION)


def _as_float(s: pd.Series) -> np.ndarray:
    try:
        return pd.to_numeric(s, errors="raise").to_numpy(dtype="float64", na_value=np.nan)
    except (TypeError, ValueError) as err:
        raise DataError(f"column {s.name!r} is numeric in the reference profile but holds "
                        f"non-numeric values ({err}); check the data's types") from err


def _as_labels(s: pd.Series) -> pd.Series:
    obj = s.astype("object")
    return obj[obj.notna()].map(str)


def _bin_counts(cuts: np.ndarray, values: np.ndarray) -> np.ndarray:
    # right-closed bins (-inf, c1], (c1, c2], ..., (ck, +inf): a value equal to a cut point
    # (ties are common in quantiles of discrete data) lands in the lower bin, as in the reference
    return np.bincount(np.searchsorted(cuts, values, side="left"), minlength=len(cuts) + 1)


def _profile(s: pd.Series, kind: str, *, bins: int, max_categories: int) -> dict[str, Any]:
    n = len(s)
    if kind == "numeric":
        values = _as_float(s)
        present = values[~np.isnan(values)]
        finite = np.sort(present[np.isfinite(present)])
        quantiles = np.quantile(finite, np.linspace(0, 1, bins + 1)[1:-1]) if finite.size else []
        cuts = np.unique(quantiles)
        counts = _bin_counts(cuts, present)
        take = np.unique(np.linspace(0, finite.size - 1, min(SAMPLE_SIZE, finite.size)).round().astype(int))
        return {
            "kind": "numeric", "cuts": cuts.tolist(), "proportions": (counts / n).tolist(),
            "missing": float(1 - present.size / n), "sample": finite[take].tolist(),
        }
    labels = _as_labels(s)
    counts = labels.value_counts()
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    kept = {str(k): int(v) / n for k, v in ranked[:max_categories] if k != OTHER}
    kept[OTHER] = sum(int(v) for k, v in ranked if k not in kept) / n
    return {"kind": "categorical", "categories": kept, "missing": float(1 - len(labels) / n)}


def _score(name: str, ref: Mapping[str, Any], s: pd.Series,
           limits: tuple[float, float, float]) -> FeatureDrift:
    from scipy import special, stats

    n = len(s)
    ks_stat = ks_p = None
    if ref["kind"] == "numeric":
        values = _as_float(s)
        present = values[~np.isnan(values)]
        cuts = np.asarray(ref["cuts"], dtype="float64")
        counts = _bin_counts(cuts, present)
        expected = np.asarray(ref["proportions"], dtype="float64")
        actual = counts / n
        sample, finite = np.asarray(ref["sample"], dtype="float64"), present[np.isfinite(present)]
        if sample.size and finite.size:
            result = stats.ks_2samp(sample, finite)
            ks_stat, ks_p = float(result.statistic), float(result.pvalue)
    else:
        labels = _as_labels(s)
        cats = ref["categories"]
        mapped = labels.where(labels.isin([c for c in cats if c != OTHER]), OTHER)
        counts = mapped.value_counts()
        expected = np.asarray(list(cats.values()), dtype="float64")
        actual = np.asarray([counts.get(c, 0) / n for c in cats], dtype="float64")
        present = labels
    missing_new = 1 - len(present) / n
    expected = np.clip(np.append(expected, ref["missing"]), PSI_EPSILON, None)
    actual = np.clip(np.append(actual, missing_new), PSI_EPSILON, None)
    # PSI = sum((a - e) ln(a / e)) = KL(a || e) + KL(e || a)
    psi = float(np.sum(special.rel_entr(actual, expected) + special.rel_entr(expected, actual)))
    psi_limit, alpha, min_stat = limits
    drifted = psi > psi_limit or (ks_p is not None and ks_p < alpha and ks_stat > min_stat)
    return FeatureDrift(
        feature=name, kind=ref["kind"], psi=psi, ks_stat=ks_stat, ks_pvalue=ks_p,
        missing_ref=float(ref["missing"]), missing_new=float(missing_new), drifted=bool(drifted),
    )


def _fmt(value: float | None, spec: str) -> str:
    return "—" if value is None or not math.isfinite(value) else format(value, spec)
