"""Ensembles of the sweep's candidates, from the out-of-fold outputs their trials kept.

Two ensembles over each candidate's best trial, neither fitting a model a second time:

* **greedy ensemble selection with replacement** (Caruana et al. 2004, as AutoGluon's
  ``EnsembleSelection`` and auto-sklearn do): start empty, add the member whose addition gives the
  best out-of-fold score, ``rounds`` times; keep the best prefix of that trajectory; weights are
  counts over its length. Ties go to a member already in the ensemble, then to the first.
  Hand-written (about forty lines of NumPy) because AutoGluon's needs its whole ``core`` package
  and its own metric objects; this one scores with :mod:`specweave_ray.metrics`.
* **a one-level stack**: logistic regression (probabilities) or ridge (values) on the members'
  out-of-fold outputs.

Both are scored by nested cross-validation on the sweep's own folds: for each fold, the weights
(or the meta-learner) are chosen on the other folds' out-of-fold rows and scored on this fold's,
so neither sees the rows it is scored on. The final weights / meta-learner use every row.
Each pool member is scored on the same folds' rows too, so :func:`decide` compares the ensemble
with the best single candidate fold by fold (a paired difference and its standard error).
"""

from __future__ import annotations

import hashlib
import io
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from specweave_ray._fs import atomic_write_bytes
from specweave_ray.candidates._ensemble import EnsembleModel, stack_features
from specweave_ray.candidates.serialization import save_native
from specweave_ray.metrics import MetricDef
from specweave_ray.search._cache import estimator_path
from specweave_ray.search.coordinator import TrialResult
from specweave_ray.workspace.increment import Increment
from specweave_ray.workspace.records import open_experiment

logger = logging.getLogger(__name__)

ROUNDS = 25  # AutoGluon's default ensemble_size


def _as_scored(metric: MetricDef, out: np.ndarray) -> np.ndarray:
    """What ``metric`` reads from outputs: probabilities as they are, labels as the arg-max."""
    if out.ndim == 2 and metric.needs == "labels":
        return np.argmax(out, axis=1)
    return out


def score(metric: MetricDef, y: np.ndarray, out: np.ndarray) -> float:
    return float(metric(y, _as_scored(metric, out)))


def greedy_selection(outputs: Sequence[np.ndarray], y: np.ndarray, metric: MetricDef, *,
                     rounds: int = ROUNDS) -> np.ndarray:
    """Weights (summing to 1) of greedy ensemble selection with replacement over ``outputs``.

    Example:
        >>> from specweave_ray.metrics import get_metric
        >>> y = np.array([0.0, 1.0, 2.0, 3.0])
        >>> greedy_selection([y + 1.0, y, y - 1.0], y, get_metric("rmse")).tolist()
        [0.0, 1.0, 0.0]
    """
    sign = 1.0 if metric.mode == "max" else -1.0
    counts = np.zeros(len(outputs))
    total = np.zeros_like(np.asarray(outputs[0], dtype=np.float64))
    trajectory: list[tuple[float, np.ndarray]] = []
    for s in range(rounds):
        gains = np.array([sign * score(metric, y, (total + o) / (s + 1)) for o in outputs])
        best = np.flatnonzero(np.isclose(gains, np.nanmax(gains), rtol=1e-12, atol=0.0))
        used = [j for j in best if counts[j] > 0]
        j = int(used[0] if used else best[0])
        counts[j] += 1
        total = total + outputs[j]
        trajectory.append((float(gains[j]), counts.copy()))
        if len(outputs) == 1:
            break
    # the first best point of the trajectory (AutoGluon's use_best): later rounds only add noise
    top = max(g for g, _ in trajectory)
    chosen = next(c for g, c in trajectory if g == top)
    return chosen / chosen.sum()


def _stacker(output: str, seed: int) -> Any:
    from sklearn.linear_model import LogisticRegression, RidgeCV

    if output == "probabilities":
        return LogisticRegression(C=1.0, max_iter=2000, random_state=seed)
    return RidgeCV(alphas=np.logspace(-3, 3, 13))


def fit_stack(outputs: Sequence[np.ndarray], y: np.ndarray, *, output: str, seed: int = 0) -> Any:
    """The meta-learner fitted on the members' outputs for rows ``y``."""
    return _stacker(output, seed).fit(stack_features(outputs), y)


def stack_predict(stacker: Any, outputs: Sequence[np.ndarray], *, output: str) -> np.ndarray:
    Z = stack_features(outputs)
    return np.asarray(stacker.predict_proba(Z) if output == "probabilities" else stacker.predict(Z), dtype=np.float64)


@dataclass(frozen=True)
class EnsembleScore:
    """One ensemble's nested-CV fold scores and its final weights or meta-learner."""

    method: str                         # "greedy" | "stack"
    names: tuple[str, ...]              # the members (greedy: weight > 0 only)
    weights: tuple[float, ...]          # greedy: counts / rounds; stack: empty
    folds: tuple[float, ...]
    stacker: Any = field(default=None, compare=False)
    oof: np.ndarray | None = field(default=None, compare=False, repr=False)  # nested-CV outputs per row
    # each pool member's own score on the same folds' rows: what the paired rule compares with
    member_folds: Mapping[str, tuple[float, ...]] = field(default_factory=dict, compare=False, repr=False)

    @property
    def cv_mean(self) -> float:
        return float(np.mean(self.folds))

    @property
    def cv_std(self) -> float:
        return float(np.std(self.folds))

    @property
    def cv_se(self) -> float:
        """Standard error of the mean over folds."""
        return self.cv_std / math.sqrt(len(self.folds))


def build_ensembles(oof: Mapping[str, np.ndarray], y: np.ndarray, folds: Sequence[tuple[np.ndarray, np.ndarray]],
                    metric: MetricDef, *, output: str, rounds: int = ROUNDS, seed: int = 0) -> list[EnsembleScore]:
    """The greedy ensemble and the stack over ``oof`` (candidate → out-of-fold outputs), each scored
    by nested CV on ``folds``. Rows no fold validated (NaN outputs) are left out."""
    names = sorted(oof)
    outs = [np.asarray(oof[n], dtype=np.float64) for n in names]
    y = np.asarray(y)
    ok = np.ones(len(y), dtype=bool)
    for o in outs:
        ok &= np.isfinite(o).reshape(len(y), -1).all(axis=1)
    greedy_folds, stack_folds = [], []
    member_folds: dict[str, list[float]] = {n: [] for n in names}
    greedy_oof = np.full(outs[0].shape, np.nan)
    stack_oof = np.full(outs[0].shape, np.nan)
    for train_idx, valid_idx in folds:
        tr = np.asarray(train_idx)[ok[np.asarray(train_idx)]]
        va = np.asarray(valid_idx)[ok[np.asarray(valid_idx)]]
        if len(tr) == 0 or len(va) == 0:
            continue
        w = greedy_selection([o[tr] for o in outs], y[tr], metric, rounds=rounds)
        greedy_oof[va] = np.sum([wi * o[va] for wi, o in zip(w, outs, strict=True)], axis=0)
        greedy_folds.append(score(metric, y[va], greedy_oof[va]))
        st = fit_stack([o[tr] for o in outs], y[tr], output=output, seed=seed)
        stack_oof[va] = stack_predict(st, [o[va] for o in outs], output=output)
        stack_folds.append(score(metric, y[va], stack_oof[va]))
        for n, o in zip(names, outs, strict=True):
            member_folds[n].append(score(metric, y[va], o[va]))
    rows = np.flatnonzero(ok)
    w = greedy_selection([o[rows] for o in outs], y[rows], metric, rounds=rounds)
    keep = [i for i, wi in enumerate(w) if wi > 0]
    stacker = fit_stack([o[rows] for o in outs], y[rows], output=output, seed=seed)
    singles = {n: tuple(f) for n, f in member_folds.items()}
    return [
        EnsembleScore("greedy", tuple(names[i] for i in keep), tuple(float(w[i]) for i in keep), tuple(greedy_folds),
                      oof=greedy_oof, member_folds=singles),
        EnsembleScore("stack", tuple(names), (), tuple(stack_folds), stacker=stacker, oof=stack_oof,
                      member_folds=singles),
    ]


def single_row_latency_ms(model: Any, features: Any, X: Any, *, output: str, n: int = 50,
                          model_calls: int = 200) -> dict[str, float]:
    """p50/p99 of scoring one input row (features + model), over ``n`` calls on the first rows of
    ``X``; and the mean and p99 of the model's call alone on rows already encoded, over
    ``model_calls`` calls (what a served row costs: the package's Predictor encodes a row in
    microseconds, not through the scikit-learn pipeline; more calls, as a p99 gates the choice)."""
    rows = [X.iloc[[i % len(X)]] if hasattr(X, "iloc") else X[i % len(X): i % len(X) + 1] for i in range(min(n, 20))]
    encoded = [features.transform(r) if features is not None else r for r in rows]
    call = model.predict_proba if output == "probabilities" else model.predict
    times, model_times = [], []
    for i in range(n + 5):
        row = rows[i % len(rows)]
        t = time.perf_counter()
        call(features.transform(row) if features is not None else row)
        if i >= 5:  # warm-up calls are not timed
            times.append((time.perf_counter() - t) * 1000.0)
    for i in range(model_calls):
        t = time.perf_counter()
        call(encoded[i % len(rows)])
        model_times.append((time.perf_counter() - t) * 1000.0)
    return {"latency_p50_ms": float(np.percentile(times, 50)), "latency_p99_ms": float(np.percentile(times, 99)),
            "model_latency_mean_ms": float(np.mean(model_times)),
            "model_latency_p99_ms": float(np.percentile(model_times, 99))}


CLOSED_LOOP_TAIL = 2.0  # p99 / mean latency of T-008's closed loop on the local engine (measured: 2.05, 1.98)


def served_p99_ms(single_row_p99_ms: float, clients: int) -> float:
    """The p99 latency ``clients`` concurrent clients of one server process will see, estimated
    from a single row's p99 (the model's call on an encoded row, as served). The server scores one
    request at a time, so under a closed loop of ``clients`` each request waits behind the others:
    by Little's law the mean latency is ``clients / throughput``, i.e. ``clients`` x the time per
    request, which the call's p99 stands for (:func:`served_throughput_rps`); the p99 is
    ``CLOSED_LOOP_TAIL`` times that mean. Measured in two fresh-clone runs of the fraud example
    (16 clients): 712 req/s with a 46.1 ms p99 (mean 22.5 ms, ratio 2.05) and 1,243 req/s with
    25.5 ms (mean 12.9 ms, ratio 1.98); without the factor, the first was estimated at 25.7 ms.
    In process (one client) it is the single row's p99 itself.

    Example:
        >>> served_p99_ms(4.0, 16), served_p99_ms(4.0, 1)
        (128.0, 4.0)
    """
    clients = max(1, int(clients))
    return float(single_row_p99_ms) * (clients * CLOSED_LOOP_TAIL if clients > 1 else 1.0)


def served_throughput_rps(model_p99_ms: float) -> float:
    """The requests per second one server process is estimated to answer when each costs the
    model's call on an encoded row: the server scores one request at a time, so its throughput is
    the inverse of its time per request. That time is the call plus HTTP's own cost (parsing,
    encoding, the Predictor's row checks: 0.4 ms on this machine's local engine), which the sweep
    cannot time; the call's p99 stands for the sum, a lower-side estimate on purpose, as it gates a
    choice. Measured in a fresh-clone run of the fraud example: a stack whose call took 0.96 ms on
    average (1.61 ms p99) was served at 712 req/s, where 1000 / its mean says 1,038 and this says
    621; the XGBoost model beside it (0.46 ms p99) was served at 2,585 req/s, this says 2,174.

    Example:
        >>> served_throughput_rps(0.5), served_throughput_rps(2.0)
        (2000.0, 500.0)
    """
    return 1000.0 / max(float(model_p99_ms), 1e-9)


def paired_margin(ens_folds: Sequence[float], single_folds: Sequence[float], metric: MetricDef
                  ) -> tuple[float, float]:
    """The paired comparison of an ensemble with a single model scored on the same folds: the mean
    of the per-fold differences (in the metric's direction: > 0 means the ensemble is better) and
    its standard error, ``std(diff, ddof=1) / sqrt(k)``. The folds' own spread (an easy fold, a
    hard one) cancels in the differences, so only how consistently the ensemble wins counts.

    Example:
        >>> from specweave_ray.metrics import get_metric
        >>> m, se = paired_margin([0.91, 0.81, 0.96], [0.90, 0.80, 0.95], get_metric("roc_auc"))
        >>> round(m, 4), round(se, 4)
        (0.01, 0.0)
    """
    diff = (np.asarray(ens_folds, dtype=np.float64) - np.asarray(single_folds, dtype=np.float64))
    diff = diff * (1.0 if metric.mode == "max" else -1.0)
    se = float(np.std(diff, ddof=1) / math.sqrt(len(diff))) if len(diff) > 1 else math.inf
    return float(np.mean(diff)), se


def _single_folds(ens: EnsembleScore, best_single: Any) -> tuple[float, ...] | None:
    """The best single candidate's scores on the ensemble's folds: from its out-of-fold outputs on
    exactly the rows the ensemble was scored on, else its trial record's ``cv_fold_i`` (the sweep's
    folds), else None."""
    if best_single.candidate in ens.member_folds:
        return tuple(ens.member_folds[best_single.candidate])
    metrics = getattr(best_single, "metrics", {}) or {}
    folds = tuple(metrics.get(f"cv_fold_{i + 1}") for i in range(len(ens.folds)))
    if ens.folds and all(f is not None for f in folds) and metrics.get("n_folds", len(folds)) == len(folds):
        return tuple(float(f) for f in folds)
    return None


def decide(ens: EnsembleScore, *, best_single: Any, metric: MetricDef, latency_p99_ms: float | None,
           target_p99_ms: float | None, other: EnsembleScore | None, clients: int = 1,
           model_p99_ms: float | None = None, target_rps: float | None = None) -> tuple[bool, str]:
    """Whether ``ens`` replaces the best single candidate, and why (a sentence for the report).

    The rule is the paired one: per fold, the ensemble's nested-CV score minus the best single's
    score on the same rows; chosen when the mean difference is more than its standard error
    (:func:`paired_margin`). Only when the single's per-fold scores are unknown (a record without
    them) does it fall back to the ensemble's mean against the single's CV mean, with the SE of the
    ensemble's fold scores. ``other``, the other ensemble, refuses ``ens`` when it scored better:
    pass it only when it could be chosen itself (:func:`add_ensembles` does).

    ``latency_p99_ms`` is the single-row p99 in process (features + model); for ``clients``
    concurrent clients the target is held against :func:`served_p99_ms` of ``model_p99_ms`` (the
    model's call on an encoded row, as the served path pays it; default ``latency_p99_ms``).
    ``target_rps`` (the spec's throughput target) is held against :func:`served_throughput_rps` of
    the same p99."""
    single = _single_folds(ens, best_single)
    if single is not None:
        margin, se = paired_margin(ens.folds, single, metric)
        head = (f"{ens.method} ensemble {metric.name} {ens.cv_mean:.4f} (nested CV) vs best single "
                f"{best_single.candidate} {float(np.mean(single)):.4f} on the same {len(single)} folds, "
                f"paired margin {margin:+.4f}, paired SE {se:.4f}: ")
        what = "its paired standard error"
    else:
        margin = (ens.cv_mean - best_single.score) * (1 if metric.mode == "max" else -1)
        se = ens.cv_se
        head = (f"{ens.method} ensemble {metric.name} {ens.cv_mean:.4f} (nested CV, SE {se:.4f}) vs best single "
                f"{best_single.candidate} {best_single.score:.4f} (unpaired: its fold scores are unknown): ")
        what = "its standard error"
    if other is not None and metric.better(other.cv_mean, ens.cv_mean):
        return False, head + f"the {other.method} ensemble scored better ({other.cv_mean:.4f})"
    if len(ens.names) < 2:
        return False, head + f"greedy selection kept one member ({ens.names[0]}), no ensemble to choose"
    if not margin > se:
        return False, head + f"a margin of {margin:+.4f} is not more than {what}"
    costs, broken = _serving_costs(latency_p99_ms, target_p99_ms, clients=clients, model_p99_ms=model_p99_ms,
                                   target_rps=target_rps)
    if broken:
        return False, head + f"better by {margin:+.4f} (> SE), but " + "; and ".join(broken)
    return True, head + f"better by {margin:+.4f}, more than {what}" + "".join(f"; {c}" for c in costs)


def decide_each(scores: Sequence[EnsembleScore],
                verdict: Callable[[EnsembleScore, EnsembleScore | None], tuple[bool, str]]) -> list[tuple[bool, str]]:
    """:func:`decide` for each of two ensembles (``verdict(ens, other)``), the other one held against
    it only when it could be chosen on its own: a stack that scores better but breaks the spec's
    latency or throughput target must not keep out a greedy ensemble that meets it."""
    alone = [verdict(ens, None)[0] for ens in scores]
    out = []
    for i, ens in enumerate(scores):
        rivals = [o for j, o in enumerate(scores) if j != i and alone[j]]
        out.append(verdict(ens, rivals[0] if rivals else None))
    return out


def _serving_costs(latency_p99_ms: float | None, target_p99_ms: float | None, *, clients: int,
                   model_p99_ms: float | None, target_rps: float | None) -> tuple[list[str], list[str]]:
    """What serving the ensemble costs, as phrases for :func:`decide`'s sentence, and the phrases
    of the spec's targets it breaks (latency at ``clients`` concurrent clients, throughput)."""
    costs, broken = [], []
    if latency_p99_ms is None:
        return costs, broken
    basis = model_p99_ms if model_p99_ms is not None else latency_p99_ms
    call = f"{'model call' if model_p99_ms is not None else 'single-row'} p99 {basis:.2f} ms"
    held = latency_p99_ms
    if clients <= 1:
        lat = f"its single-row p99 latency {latency_p99_ms:.1f} ms"
    else:
        held = served_p99_ms(basis, clients)
        lat = (f"its p99 latency at {clients} concurrent clients, estimated {held:.1f} ms "
               f"({CLOSED_LOOP_TAIL:g} x {clients} x its {call})")
    if target_p99_ms is not None and held >= target_p99_ms:
        broken.append(f"{lat} breaks the spec's latency_p99 < {target_p99_ms:g} ms")
    else:
        costs.append(lat)
    if target_rps is not None:
        rps = served_throughput_rps(basis)
        tput = f"its throughput, estimated {rps:,.0f} req/s (1000 / its {call})"
        (broken if rps < target_rps else costs).append(
            tput + (f" breaks the spec's throughput target of {target_rps:g} req/s" if rps < target_rps else ""))
    return costs, broken


def serving_budget_ms(target_p99_ms: float | None, *, clients: int, target_rps: float | None) -> float | None:
    """The most a model call on an encoded row (its p99) may cost for :func:`decide` to let the
    spec's targets stand: under ``target_p99_ms / (2 x clients)`` (:func:`served_p99_ms`) and
    ``1000 / target_rps`` (:func:`served_throughput_rps`); None when the spec sets neither.

    Example:
        >>> serving_budget_ms(100.0, clients=16, target_rps=1000.0), serving_budget_ms(64.0, clients=16, target_rps=None)
        (1.0, 2.0)
    """
    limits = [target_p99_ms / served_p99_ms(1.0, clients)] if target_p99_ms is not None else []
    limits += [1000.0 / target_rps] if target_rps is not None else []
    return min(limits) if limits else None


def prune_to_budget(pool: Sequence[str], *, oof: Mapping[str, np.ndarray], y: np.ndarray, fitted: Mapping[str, Any],
                    features: Any, X: Any, metric: MetricDef, output: str, budget_ms: float, rounds: int = ROUNDS,
                    seed: int = 0) -> tuple[list[str], list[dict[str, Any]]]:
    """The pool with its members dropped, one at a time, until a stack over all of them (the costlier
    ensemble: it calls every member, then its meta-learner) answers an encoded row within
    ``budget_ms`` at p99, or two members are left; as AutoGluon's ``infer_limit`` prunes the models
    an ensemble may use. Each time the member dropped is, of those whose own call's p99 is enough to
    bring the pool within the budget (less its share of the pool's mean time), the one whose absence costs the greedy selection's score over
    every out-of-fold row least; when no one member is enough, the one whose absence costs least
    per millisecond of its own call (a member greedy selection gives no weight costs nothing). The
    pool's cost is measured, not summed: on the fraud example four members of 0.10-0.44 ms p99
    each made a stack of 1.48 ms p99, not 0.99.

    Returns:
        The pool kept, and per member dropped: its name, its own call's p99, the pool's p99 before,
        the greedy score without it.
    """
    pool = sorted(pool)
    y = np.asarray(y)
    ok = np.ones(len(y), dtype=bool)
    for n in pool:
        ok &= np.isfinite(np.asarray(oof[n], dtype=np.float64)).reshape(len(y), -1).all(axis=1)
    outs = {n: np.asarray(oof[n], dtype=np.float64)[ok] for n in pool}
    dropped: list[dict[str, Any]] = []
    sign = 1.0 if metric.mode == "max" else -1.0
    own = {n: single_row_latency_ms(fitted[n], features, X, output=output, n=5) for n in pool}
    while True:
        stacker = fit_stack([outs[n] for n in pool], y[ok], output=output, seed=seed)
        model = EnsembleModel.from_fitted([fitted[n] for n in pool], names=list(pool), output=output, stacker=stacker)
        timed = single_row_latency_ms(model, features, X, output=output, n=5)
        cost = timed["model_latency_p99_ms"]
        if cost <= budget_ms or len(pool) <= 2:
            return list(pool), dropped
        full = _greedy_score([outs[n] for n in pool], y[ok], metric, rounds=rounds)
        kept = {m: _greedy_score([outs[n] for n in pool if n != m], y[ok], metric, rounds=rounds) for m in pool}
        loss = {m: max(0.0, sign * (full - kept[m])) for m in pool}
        # what the pool's p99 would be without a member: less that member's share of the pool's mean
        # time (means, not p99s, for the share: a single slow call does not make a member look cheap)
        share = {n: min(1.0, own[n]["model_latency_mean_ms"] / max(timed["model_latency_mean_ms"], 1e-9)) for n in pool}
        slow = {n: own[n]["model_latency_mean_ms"] for n in pool}
        enough = [n for n in pool if cost * (1.0 - share[n]) <= budget_ms]
        if enough:  # the least missed of those; a tie drops the slower
            m = min(enough, key=lambda n: (loss[n], -slow[n], n))
        else:  # the least missed per millisecond it saves
            m = min(pool, key=lambda n: (loss[n] / max(slow[n], 1e-6), -slow[n], n))
        dropped.append({"candidate": m, "model_latency_p99_ms": own[m]["model_latency_p99_ms"],
                        "pool_model_latency_p99_ms": cost,
                        f"greedy_{metric.name}_without": kept[m]})
        pool = [n for n in pool if n != m]


def _greedy_score(outputs: Sequence[np.ndarray], y: np.ndarray, metric: MetricDef, *, rounds: int) -> float:
    """The score of greedy selection's weighted outputs on the rows it chose them on."""
    w = greedy_selection(outputs, y, metric, rounds=rounds)
    return score(metric, y, np.sum([wi * o for wi, o in zip(w, outputs, strict=True)], axis=0))


def ensemble_model(ens: EnsembleScore, fitted: Mapping[str, Any], *, output: str) -> EnsembleModel:
    """The deployable model: the members' refits (already fitted) and the weights / meta-learner."""
    return EnsembleModel.from_fitted([fitted[n] for n in ens.names], weights=ens.weights or None,
                                     names=list(ens.names), output=output, stacker=ens.stacker)


def add_ensembles(inc: Increment, *, oof: Mapping[str, np.ndarray], best: Mapping[str, TrialResult],
                  fitted: Mapping[str, tuple[Any, Any]], y: np.ndarray, folds: Sequence[tuple[np.ndarray, np.ndarray]],
                  metric: MetricDef, output: str, X: Any, meta: Mapping[str, Any], classes: Any = None,
                  rounds: int = ROUNDS, target_p99_ms: float | None = None, clients: int = 1,
                  target_rps: float | None = None, seed: int = 0) -> tuple[list[TrialResult], dict[str, Any]]:
    """Build, score, record and save the greedy ensemble and the stack over the candidates that
    have out-of-fold outputs and a refit model.

    Args:
        oof: Candidate → its best trial's out-of-fold outputs.
        best: Candidate → its best trial.
        fitted: Candidate → ``(refit model, fitted feature pipeline or None)``.
        meta: Fields every record of the sweep gets (the coordinator's).
        target_p99_ms: The spec's ``latency_p99`` target: an ensemble slower than it is not chosen.
        clients: The concurrent clients that target is for (:func:`served_p99_ms`); 1: in process.
        target_rps: The spec's throughput target (req/s): an ensemble whose
            :func:`served_throughput_rps` is below it is not chosen.

    Returns:
        The ensembles as :class:`TrialResult` (kind ``ensemble``), and the comparison's
        ``ensemble`` block: what was built, what was chosen and why.
    """
    pool = sorted(n for n in oof if n in fitted and n in best and best[n].kind == "candidate")
    left_out = sorted(n for n, t in best.items() if t.kind == "candidate" and n not in pool)
    sign = -1.0 if metric.mode == "max" else 1.0  # best first; a tie goes to the first name, not to dict order
    singles = sorted((best[n] for n in best if best[n].kind == "candidate"), key=lambda t: (sign * t.score, t.candidate))
    info: dict[str, Any] = {"built": False, "chosen": None, "pool": pool, "left_out": left_out}
    if len(pool) < 2 or not singles:
        info["reason"] = (f"no ensemble: {len(pool)} candidate(s) with out-of-fold outputs and a refit model "
                          f"(an ensemble needs two)" + (f"; left out: {', '.join(left_out)}" if left_out else ""))
        return [], info
    t0 = time.perf_counter()
    features = fitted[pool[0]][1]  # one feature pipeline, fitted on the same rows for every member
    budget_ms = serving_budget_ms(target_p99_ms, clients=clients, target_rps=target_rps)
    if budget_ms is not None and len(pool) > 2:
        pool, pruned = prune_to_budget(pool, oof=oof, y=y, fitted={n: fitted[n][0] for n in pool},
                                       features=features, X=X, metric=metric, output=output,
                                       budget_ms=budget_ms, rounds=rounds, seed=seed)
        info.update(pool=pool, serving_budget_ms=budget_ms, pruned=pruned)
    scores = build_ensembles({n: oof[n] for n in pool}, y, folds, metric, output=output, rounds=rounds, seed=seed)
    build_s = time.perf_counter() - t0
    top = singles[0]
    single_latency = single_row_latency_ms(fitted[top.candidate][0], fitted[top.candidate][1], X, output=output)
    models, latencies = {}, {}
    for ens in scores:
        models[ens.method] = ensemble_model(ens, {n: fitted[n][0] for n in ens.names}, output=output)
        latencies[ens.method] = latency = single_row_latency_ms(models[ens.method], features, X, output=output)
        if clients > 1:  # what the decision holds against the target, in the record beside the measured
            latency["served_latency_p99_ms_estimate"] = served_p99_ms(latency["model_latency_p99_ms"], clients)
        latency["served_throughput_rps_estimate"] = served_throughput_rps(latency["model_latency_p99_ms"])

    def verdict(ens: EnsembleScore, other: EnsembleScore | None) -> tuple[bool, str]:
        lat = latencies[ens.method]
        return decide(ens, best_single=top, metric=metric, latency_p99_ms=lat["latency_p99_ms"],
                      target_p99_ms=target_p99_ms, other=other, clients=clients,
                      model_p99_ms=lat["model_latency_p99_ms"], target_rps=target_rps)

    results, entries = [], []
    for ens, (chosen, reason) in zip(scores, decide_each(scores, verdict), strict=True):
        tr, entry = _record(inc, ens, models[ens.method], features, best=best, metric=metric, meta=meta,
                            classes=classes, latency=latencies[ens.method], chosen=chosen, reason=reason,
                            rounds=rounds, build_s=build_s)
        single_folds = _single_folds(ens, top)
        if single_folds is not None:  # the paired rule's numbers, beside its sentence
            entry["paired_margin"], entry["paired_se"] = paired_margin(ens.folds, single_folds, metric)
        results.append(tr)
        entries.append(entry)
    chosen = [e for e in entries if e["chosen"]]
    info.update(built=True, chosen=chosen[0]["record"] if chosen else None, ensembles=entries,
                best_single={"candidate": top.candidate, "record": top.record_id, "cv_mean": top.score,
                             **{f"single_{k}": v for k, v in single_latency.items()},
                             "single_served_throughput_rps_estimate":
                                 served_throughput_rps(single_latency["model_latency_p99_ms"])},
                target_latency_p99_ms=target_p99_ms, latency_clients=clients, target_throughput_rps=target_rps,
                reason=chosen[0]["reason"] if chosen else "; ".join(e["reason"] for e in entries))
    return results, info


def _record(inc: Increment, ens: EnsembleScore, model: EnsembleModel, features: Any, *,
            best: Mapping[str, TrialResult], metric: MetricDef, meta: Mapping[str, Any], classes: Any,
            latency: Mapping[str, float], chosen: bool, reason: str, rounds: int,
            build_s: float) -> tuple[TrialResult, dict[str, Any]]:
    name = f"ensemble-{ens.method}"
    params: dict[str, Any] = {
        "method": ens.method, "members": list(ens.names),
        "member_trials": [best[n].trial_id for n in ens.names],
        "member_records": [best[n].record_id for n in ens.names],
    }
    if ens.method == "greedy":
        params.update(weights=list(ens.weights), rounds=rounds)
    else:
        params.update(meta_learner=estimator_path(ens.stacker))
    metrics = {metric.name: ens.cv_mean, "cv_mean": ens.cv_mean, "cv_std": ens.cv_std, "cv_se": ens.cv_se,
               **{f"cv_fold_{i + 1}": v for i, v in enumerate(ens.folds)}, "n_folds": len(ens.folds),
               "fit_time_s": build_s, **latency}
    exp = open_experiment(name, increment=inc, kind="ensemble", model=estimator_path(EnsembleModel),
                          meta={**meta, "candidate": name, "candidate_kind": "ensemble", "chosen": chosen,
                                "decision": reason},
                          mirror=True, params=params, metrics=metrics,
                          notes=f"{'Chosen' if chosen else 'Not chosen'}: {reason}.")
    art: dict[str, Any] = {"model": save_native(model, exp.path, name="model")}
    if features is not None:
        art["features"] = save_native(features, exp.path, name="features")
    if classes is not None:
        art["classes"] = np.asarray(classes).tolist()
    if ens.oof is not None:  # T-006 tunes a threshold on these; nothing is refitted for it
        buf = io.BytesIO()
        np.save(buf, ens.oof.astype(np.float32), allow_pickle=False)
        atomic_write_bytes(exp.path / "oof.npy", buf.getvalue())
        art["oof"] = {"file": "oof.npy", "sha256": hashlib.sha256(buf.getvalue()).hexdigest(),
                      "shape": list(ens.oof.shape)}
    exp.update_meta(artifacts=art)
    exp.close()
    tr = TrialResult(candidate=name, kind="ensemble", trial_id=exp.id, record_id=exp.id, status="finished",
                     params=params, metrics=metrics)
    entry = {"candidate": name, "record": exp.id, "method": ens.method, "members": list(ens.names),
             "weights": list(ens.weights) or None, "cv_mean": ens.cv_mean, "cv_se": ens.cv_se,
             "latency_p99_ms": latency["latency_p99_ms"],
             "served_latency_p99_ms_estimate": latency.get("served_latency_p99_ms_estimate"),
             "served_throughput_rps_estimate": latency.get("served_throughput_rps_estimate"),
             "chosen": chosen, "reason": reason}
    return tr, entry
