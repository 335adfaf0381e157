"""The :class:`ProblemType` interface: everything the stages need to know about a kind of problem.

A problem type is a small object of declarations (metrics, default criteria, estimators,
candidates) and a few methods where the behaviour differs (target checks and encoding, the
held-out split, CV folds, baselines, held-out outputs, report sections). Stages ask the
problem type; none of them compares problem-type names. This module imports no stage: only
the shared metric vocabulary, the exceptions and the numerical libraries.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from specweave_ray.exceptions import CandidateError, ConfigError, DataError
from specweave_ray.metrics import MetricDef, get_metric, predict_for

__all__ = ["ProblemType", "sample_groups", "split_target"]


def _names(columns: Any) -> str:
    shown = [str(c) for c in list(columns)[:20]]
    more = len(columns) - len(shown)
    return ", ".join(shown) + (f" … (+{more} more)" if more > 0 else "")


def plain(value: Any) -> Any:
    """A numpy scalar as the Python value, for readable messages."""
    item = getattr(value, "item", None)
    return item() if callable(item) else value


def sample_groups(df: pd.DataFrame, column: str, n: int, *, seed: int = 0) -> pd.DataFrame:
    """Whole groups of ``column`` (users, series) in a seeded random order until ``n`` rows:
    sampled rows would break the per-group histories that folds and metrics read."""
    sizes = df.groupby(column, sort=False).size()
    picked, total = [], 0
    for key in np.random.default_rng(seed).permutation(sizes.index.to_numpy()):
        if total >= n:
            break
        picked.append(key)
        total += int(sizes[key])
    return df[df[column].isin(picked)].copy()


def split_target(df: pd.DataFrame, target: str) -> tuple[pd.DataFrame, pd.Series]:
    """``df`` without ``target``, and ``target``.

    Raises:
        DataError: ``target`` is absent (the message lists the columns), or a feature column is
            entirely missing.
    """
    if target not in df.columns:
        raise DataError(f"target column {target!r} is not in the data: {_names(df.columns)}")
    X = df.drop(columns=[target])
    all_nan = [str(c) for c in X.columns if X[c].isna().all()]
    if all_nan:
        raise DataError(f"feature column(s) {', '.join(map(repr, all_nan))} are entirely missing; drop them")
    return X, df[target]


class ProblemType(abc.ABC):
    """One kind of ML problem, as a plug-in.

    Class attributes (declarations):
        name: Canonical name, as ``spec.md`` and configs write it.
        aliases: Other spellings (``binary``, ``forecasting``); matched case- and space-blind.
        target_kind: ``"label"`` (a class per row) or ``"value"`` (a number per row).
        output: What held-out scoring reads from a model: ``"probabilities"``, ``"values"``,
            ``"rankings"`` (a top-k list per user) or ``"forecasts"`` (the next steps of each series).
        metrics: The scored metrics it reports, in report order (names from
            :data:`specweave_ray.metrics.METRICS`).
        default_metric: The primary metric when a spec names none.
        default_criteria: Success criteria the templates pre-fill, as spec lines.
        estimators: Candidate alias → dotted class path (``xgboost`` → ``xgboost.XGBClassifier``).
        default_candidates: The candidates a config gets when it names none, config-shaped
            (``{"name", "estimator", "params"}``; search spaces as tagged dicts).
        time_ordered: Folds and the held-out split must keep time order.
        uses_features: Models train on the encoded feature matrix (the feature pipeline of
            T-002); False where they read the raw frame (interactions, series).
        skipped_tasks: Pipeline task → why it does not apply to this type yet; the pipeline
            skips it and says so (never a made-up result).
    """

    name: ClassVar[str]
    aliases: ClassVar[tuple[str, ...]] = ()
    summary: ClassVar[str] = ""
    target_kind: ClassVar[str]
    output: ClassVar[str]
    metrics: ClassVar[tuple[str, ...]]
    report_extras: ClassVar[tuple[str, ...]] = ()
    default_metric: ClassVar[str]
    default_criteria: ClassVar[tuple[str, ...]]
    estimators: ClassVar[Mapping[str, str]]
    default_candidates: ClassVar[tuple[Mapping[str, Any], ...]]
    time_ordered: ClassVar[bool] = False
    uses_features: ClassVar[bool] = True
    skipped_tasks: ClassVar[Mapping[str, str]] = {}

    def __repr__(self) -> str:
        return f"<problem type {self.name}>"

    def __str__(self) -> str:  # in messages and reports a type reads as its name
        return self.name

    # -- metrics -----------------------------------------------------------------------------
    def metric(self, name: str) -> MetricDef:
        """The vocabulary's metric ``name``, checked to be one this problem type is scored by.

        Raises:
            ConfigError: unknown metric, or one of another problem type.
        """
        metric = get_metric(name)
        if metric.name not in self.metrics:
            raise ConfigError(f"metric {name!r} does not apply to {self.name}; use one of "
                              f"{', '.join(self.metrics)}")
        return metric

    def with_k(self, metric: str, k: int) -> str:
        """``metric`` at list length ``k``; only ranking metrics have one.

        Raises:
            ConfigError: this type's metrics have no cut-off.
        """
        raise ConfigError(f"k={k} applies to ranking metrics; {self.name}'s {metric!r} has no cut-off")

    def metrics_at(self, k: int) -> tuple[str, ...]:
        """The metrics reported when lists are ``k`` long (types without lists: :attr:`metrics`)."""
        return self.metrics

    def score_model(self, metric: MetricDef, model: Any, X: Any, y: Any) -> float:
        """``metric`` of a fitted ``model`` on a validation part ``(X, y)``."""
        return metric(y, predict_for(metric, model, X))

    def fit_fold(self, estimator: Any, X_train: Any, y_train: Any, X_valid: Any) -> Any:
        """``estimator`` fitted on a fold's training part, for :meth:`score_model` on its
        validation part ``X_valid`` (which a type may hand the fit: forecasting). Default: ``fit``."""
        return estimator.fit(X_train, y_train)

    # -- data --------------------------------------------------------------------------------
    def frame(self, df: pd.DataFrame, *, target: str | None = None,
              columns: Mapping[str, Any] | None = None) -> tuple[pd.DataFrame, pd.Series]:
        """The features ``X`` and the target ``y`` models train on, from a loaded table.

        ``columns`` holds the data config's column roles (types that need more than a target
        read them; here they are ignored).

        Raises:
            ConfigError: no target column was named.
            DataError: ``target`` is absent (the message lists the columns) or a feature column
                is entirely missing.
        """
        if target is None:
            raise ConfigError(f"{self.name} needs a target column (data.target, --target)")
        return split_target(df, target)

    def check_data(self, X: Any, y: Any, *, metric: str, cv: int | None = None) -> None:
        """Checks of the framed data against the run's metric and number of folds ``cv``, before
        anything is written (recommendation: a list length no larger than the catalogue;
        forecasting: series long enough for the backtest). Default: none."""
        return None

    def time_aware(self, X: Any) -> bool:
        """Whether the folds of ``X`` keep time order (some rows then train every fold and are
        never validated, as in scikit-learn's ``TimeSeriesSplit``)."""
        return self.time_ordered

    def split_report(self, X_train: Any, X_test: Any) -> dict[str, Any]:
        """Facts about the held-out split for the T-001 record (cold users, …). Default: none."""
        return {}

    # -- target ------------------------------------------------------------------------------
    @abc.abstractmethod
    def fits(self, y: Any) -> bool:
        """Whether ``y`` looks like this problem's target (used to infer the type from data)."""
        ...

    def check_target(self, y: pd.Series) -> None:
        """Check the target is usable; :class:`DataError` names the column and the value."""
        n_missing = int(y.isna().sum())
        if n_missing:
            raise DataError(f"target column {y.name!r} has {n_missing} missing value(s); "
                            f"drop or fill those rows")
        self._check_values(y)

    @abc.abstractmethod
    def _check_values(self, y: pd.Series) -> None:
        ...

    @abc.abstractmethod
    def encode_target(self, y: Any) -> tuple[np.ndarray | None, np.ndarray]:
        """``(classes, encoded)``: the values models are trained on; ``classes`` is None for
        targets that are not labels."""
        ...

    def stratify(self, y: pd.Series) -> Any:
        """What a random split stratifies on (None: nothing)."""
        return None

    # -- splits ------------------------------------------------------------------------------
    def holdout_split(self, X: pd.DataFrame, y: pd.Series, *, test_size: float = 0.2, seed: int = 0,
                      time_column: str | None = None
                      ) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series, pd.Series]:
        """Hold out a test set: the latest rows by ``time_column`` when given, else random
        (stratified where :meth:`stratify` says).

        Raises:
            DataError: ``test_size`` is not in (0, 1), ``time_column`` is absent (or missing for
                a time-ordered type), a class is too rare to stratify, or a side is empty.
        """
        from sklearn.model_selection import train_test_split

        if not 0.0 < test_size < 1.0:
            raise DataError(f"test_size must be in (0, 1), got {test_size!r}")
        if len(X) != len(y):
            raise DataError(f"X has {len(X)} rows but y has {len(y)}")
        if time_column is None and self.time_ordered:
            raise DataError(f"{self.name} needs a time column (data.time_column) to hold out the "
                            f"latest rows; a random split would train on the future")
        if time_column is not None:
            if time_column not in X.columns:
                raise DataError(f"time column {time_column!r} is not in X: {_names(X.columns)}")
            n_test = math.ceil(test_size * len(X))
            if n_test >= len(X):
                raise DataError(f"a {test_size} time split of {len(X)} rows leaves no training rows")
            order = np.argsort(X[time_column].to_numpy(), kind="stable")
            train, test = order[: len(X) - n_test], order[len(X) - n_test:]
            return X.iloc[train], X.iloc[test], y.iloc[train], y.iloc[test]
        try:
            X_train, X_test, y_train, y_test = train_test_split(
                X, y, test_size=test_size, random_state=seed, stratify=self.stratify(y))
        except ValueError as err:
            raise DataError(f"cannot split {len(X)} rows with test_size={test_size}: {err}") from err
        return X_train, X_test, y_train, y_test

    @abc.abstractmethod
    def splitter(self, n_splits: int, *, seed: int) -> Any:
        """The scikit-learn splitter for ``n_splits`` cross-validation folds."""
        ...

    def folds(self, X: Any, y: np.ndarray, *, cv: int | Any, seed: int) -> tuple[list[Any], str]:
        """``(folds, description)``: train/validation index pairs from a number of folds (this
        type's :meth:`splitter`) or a scikit-learn splitter given by the user.

        Raises:
            ConfigError: fewer than 2 folds, or ``cv`` is neither a number nor a splitter.
        """
        if isinstance(cv, bool) or not (isinstance(cv, int) or hasattr(cv, "split")):
            raise ConfigError(f"cv must be a number of folds or a scikit-learn splitter, got {cv!r}")
        if isinstance(cv, int):
            if cv < 2:
                raise ConfigError(f"cv must be >= 2 folds, got {cv}")
            cv = self.splitter(cv, seed=seed)
        folds = [(np.asarray(tr), np.asarray(va)) for tr, va in cv.split(X, y)]
        return folds, repr(cv)

    def sample(self, df: pd.DataFrame, *, target: str, n: int, seed: int = 0) -> pd.DataFrame:
        """``n`` rows in their original order: uniformly at random, or stratified by
        :meth:`stratify` so that every class keeps at least one row, however rare."""
        if n >= len(df):
            return df.copy()
        rng = np.random.default_rng(seed)
        if self.target_kind != "label":
            return df.iloc[np.sort(rng.choice(len(df), size=n, replace=False))].copy()
        codes, _ = pd.factorize(df[target], use_na_sentinel=False)
        counts = np.bincount(codes)
        quota = np.minimum(np.maximum(1, np.floor(counts * n / len(df))).astype(np.int64), counts)
        # Hand out what rounding left over to the largest classes, or take back what the
        # one-row minimum added.
        order = np.argsort(-counts)
        i = 0
        while quota.sum() != n and i < 10 * len(counts) + n:
            k = order[i % len(order)]
            if quota.sum() < n and quota[k] < counts[k]:
                quota[k] += 1
            elif quota.sum() > n and quota[k] > 1:
                quota[k] -= 1
            i += 1
        picked = [rng.choice(np.flatnonzero(codes == k), size=int(q), replace=False)
                  for k, q in enumerate(quota)]
        return df.iloc[np.sort(np.concatenate(picked))].copy()

    # -- models ------------------------------------------------------------------------------
    @abc.abstractmethod
    def baselines(self, *, rule: str | None = None, seed: int = 0) -> dict[str, tuple[str, dict[str, Any]]]:
        """Baseline name → (dotted estimator class, params). ``rule`` adds a rule baseline where
        the type has one.

        Raises:
            CandidateError: a rule given to a type without rule baselines.
        """
        ...

    def _no_rule(self, rule: str | None) -> None:
        if rule is not None:
            raise CandidateError(f"a rule baseline predicts labels, so it needs a classification "
                                 f"problem; got problem type {self.name!r} with rule {rule!r}")

    def predict(self, model: Any, X: Any) -> np.ndarray:
        """The held-out outputs :attr:`output` names, as float64."""
        if self.output == "probabilities":
            # XGBoost's float32 probabilities miss 1 by ~1e-7, more than log loss allows
            proba = np.asarray(model.predict_proba(X), dtype=np.float64)
            return proba / proba.sum(axis=1, keepdims=True)
        return np.asarray(model.predict(X), dtype=np.float64)

    def adjust_candidates(self, experiments: Sequence[Any], y: Any,
                          estimator_of: Callable[[Any], type]) -> list[Any]:
        """Candidates adapted to this target (e.g. class weights for rare positives); each keeps
        the parameters the user gave. Default: unchanged."""
        return list(experiments)

    def explain_examples(self, y_true: np.ndarray, outputs: np.ndarray, *, n: int) -> tuple[np.ndarray, str]:
        """The held-out rows T-007 explains one by one: ``(indices, why)``, at most ``n`` indices
        into ``outputs`` (:meth:`predict`'s held-out outputs; ``y_true`` the encoded target), most
        telling first, and a phrase for the report saying how they were chosen.

        Raises:
            CandidateError: the type explains no single rows (its T-007 explains something else).
        """
        raise CandidateError(f"{self.name} has no per-row examples to explain")

    # -- reports -----------------------------------------------------------------------------
    def data_profile(self, X: pd.DataFrame, y: Any) -> dict[str, Any]:
        """An extra EDA profile section about the rows as a whole (interactions: users, items,
        density). Default: none."""
        return {}

    def eda_section(self, df: pd.DataFrame, section: dict[str, Any], directory: Any, *,
                    target: str) -> tuple[list[str], list[str]]:
        """The EDA report's extra section for this type: its markdown lines and the names of the
        PNG plots it wrote into ``directory`` (``section`` is what :meth:`data_profile` gave).
        Default: none."""
        return [], []

    @abc.abstractmethod
    def target_profile(self, y: pd.Series) -> dict[str, Any]:
        """The EDA profile's ``target`` section (beyond name and missing count)."""
        ...

    @abc.abstractmethod
    def leakage_score(self, values: np.ndarray, y: pd.Series) -> tuple[float, str]:
        """How well one encoded column alone predicts the target, and the score's name."""
        ...

    @abc.abstractmethod
    def ab_inputs(self, control: Mapping[str, float], *, target: str) -> tuple[dict[str, Any], str, bool]:
        """The A/B plan's baseline (``baseline_rate`` or ``baseline_mean``/``baseline_std``, and
        an optional ``baseline_note``) from the *control's* held-out metrics (a ``metrics.json``
        of an evaluation), the business metric it stands for, and whether lower is better (the
        direction the candidate must move it)."""
        ...
