"""The gate: every spec target checked against measured metrics — met, not met or not measured.

A target is *met* only when the point estimate meets it; the row also says whether the worse
bound of the 95% confidence interval (low for higher-is-better, high for lower-is-better) meets
it, so a reader sees how firm a pass is. Metrics are read under :attr:`Target.metric_key`, their
CIs under ``<key>_ci_low`` / ``<key>_ci_high``; :func:`lift_metrics` turns a model's metric and
the baselines' into the lift keys that lift targets name.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from specweave_ray.exceptions import RecordError
from specweave_ray.spec._grammar import LOWER_IS_BETTER, Target

__all__ = [
    "MET", "NOT_MEASURED", "NOT_MET", "NO_TARGETS", "GateRow", "check_targets", "gate_json",
    "gate_passed", "gate_verdict", "lift_metrics", "render_gate",
]

MET, NOT_MET, NOT_MEASURED = "met", "not met", "not measured"
NO_TARGETS = "no targets"  # the verdict of a spec without success criteria: checked nothing
_STATUSES = (MET, NOT_MET, NOT_MEASURED)
_ICONS = {MET: "✅ met", NOT_MET: "❌ not met", NOT_MEASURED: "⏳ not measured"}


@dataclass(frozen=True)
class GateRow:
    """One target's verdict.

    Attributes:
        target: The spec target.
        status: ``"met"``, ``"not met"`` or ``"not measured"``.
        value: The measured value in the target's normalised unit; ``None`` when not measured.
        ci_low: Lower bound of the 95% CI, when recorded.
        ci_high: Upper bound of the 95% CI, when recorded.
        worst_bound_met: Whether the CI's worse bound also meets the target; ``None`` without a CI.
        source: Where the value came from, e.g. ``"exp-012-evaluation:precision"``.
    """

    target: Target
    status: str
    value: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    worst_bound_met: bool | None = None
    source: str | None = None

    def __post_init__(self) -> None:
        if self.status not in _STATUSES:
            raise RecordError(f"gate row status must be one of {_STATUSES}, got {self.status!r}")


def check_targets(targets: Sequence[Target], metrics: Mapping[str, Any], *,
                  source: str | None = None) -> list[GateRow]:
    """Check each target against ``metrics`` (a flat ``metrics.json`` plus any lift keys).

    Args:
        targets: The spec's targets.
        metrics: Metric name → number, in the targets' normalised units (``latency_p99_ms``,
            ``throughput_rps``, ``mape`` in percent, lifts from :func:`lift_metrics`).
        source: Name of the record the metrics came from; each row's source is ``source:key``.

    Returns:
        One row per target, in order. A missing or NaN value is ``"not measured"``; a CI is used
        only when both bounds are present and finite.

    Raises:
        RecordError: A target's value or CI bound is not a number, or the CI's low bound
            exceeds its high bound.

    Example:
        >>> from specweave_ray.spec._grammar import parse_targets
        >>> (row,) = check_targets(parse_targets("precision >= 0.9"), {"precision": 0.93})
        >>> row.status, row.value
        ('met', 0.93)
    """
    rows = []
    for target in targets:
        key = target.metric_key
        where = f"{source}:{key}" if source else key
        value = _number(metrics, key, where)
        if value is None:
            rows.append(GateRow(target, NOT_MEASURED))
            continue
        low = _number(metrics, f"{key}_ci_low", where)
        high = _number(metrics, f"{key}_ci_high", where)
        worst = None
        if low is None or high is None or math.isinf(low) or math.isinf(high):
            low = high = None
        elif low > high:
            raise RecordError(f"{where}: CI low bound {low!r} exceeds high bound {high!r}; "
                              f"the record's {key}_ci_low/_ci_high are swapped or corrupt")
        else:
            worst = target.is_met(high if _lower_is_better(target) else low)
        rows.append(GateRow(target, MET if target.is_met(value) else NOT_MET, value, low, high,
                            worst, where))
    return rows


def lift_metrics(metric: str, value: float, baselines: Mapping[str, float], *,
                 lower_is_better: bool, ci: tuple[float, float] | None = None,
                 primary: bool = True,
                 samples: tuple[Any, Mapping[str, Any]] | None = None) -> dict[str, float]:
    """Lifts of a model's ``metric`` over the baselines, under the keys lift targets read.

    Each baseline name gives a reference ``<name>_baseline`` (``"random-uniform"`` →
    ``random_uniform_baseline``) and its family's ``<family>_baseline`` (``random_baseline``,
    best of every ``random-*``); ``best_baseline`` is the best of all baselines. A name ending in
    ``model`` (``"previous-model"``) is its own reference and not a baseline. For each reference
    the keys are ``lift_<ref>_pct`` / ``lift_<ref>_x`` (the primary metric's, when ``primary``)
    and ``<metric>_lift_<ref>_pct`` / ``_x``, matching :attr:`Target.metric_key`.

    ``pct`` is ``100 * gain / |base|`` with the gain taken in the metric's direction; ``x`` is
    ``value / base`` (``base / value`` when lower is better). A key is left out when its base is
    0, for ``x`` also when the ratio has no meaning (non-positive base, or non-positive value when
    lower is better). Non-finite baselines are ignored; a non-finite ``value`` gives ``{}``.

    Args:
        metric: The metric's name, e.g. ``"roc_auc"``.
        value: The model's value of ``metric``.
        baselines: Baseline name → its value of ``metric`` on the same split.
        lower_is_better: The metric's direction.
        ci: The model metric's 95% CI; adds ``<key>_ci_low`` / ``<key>_ci_high`` per lift key,
            the worse bound mapping to the worse lift. Used only where ``samples`` has no pair.
        primary: Whether ``metric`` is the spec's primary metric (adds the unprefixed keys).
        samples: A paired bootstrap (``evaluate._paired.paired_samples``): the model's values
            per resample and each baseline's on the same resamples. A lift's CI is then the 2.5
            and 97.5 percentiles of the per-resample lifts over the baseline its reference
            picks (by its value in ``baselines``, which should be a random baseline's expected
            score, not one draw).

    Raises:
        RecordError: ``metric`` is not a snake-case name, or ``ci`` is not a (low, high) pair.

    Example:
        >>> lift_metrics("accuracy", 0.9, {"random-uniform": 0.5, "majority": 0.6},
        ...              lower_is_better=False)["accuracy_lift_random_baseline_x"]
        1.8
    """
    if not re.fullmatch(r"[a-z][a-z0-9_]*", metric):
        raise RecordError(f"metric name must be lower snake case, got {metric!r}")
    value = _as_float(value, f"{metric} value")
    if ci is not None:
        if len(ci) != 2:
            raise RecordError(f"ci for {metric} must be a (low, high) pair, got {ci!r}")
        ci = (_as_float(ci[0], f"{metric} ci low"), _as_float(ci[1], f"{metric} ci high"))
        if not ci[0] <= ci[1]:
            raise RecordError(f"ci for {metric} must have low <= high, got {ci!r}")
    if not math.isfinite(value):
        return {}
    refs = _references(metric, baselines, pick=min if lower_is_better else max)
    out: dict[str, float] = {}
    for ref, (base, name) in refs.items():
        for suffix in ("pct", "x"):
            lift = _lift(value, base, unit=suffix, lower=lower_is_better)
            if lift is None:
                continue
            bounds = None
            if samples is not None and name in samples[1]:
                bounds = _paired_bounds(samples[0], samples[1][name], unit=suffix, lower=lower_is_better)
            elif ci is not None:
                lo, hi = (_lift(b, base, unit=suffix, lower=lower_is_better) for b in ci)
                if lo is not None and hi is not None and math.isfinite(lo) and math.isfinite(hi):
                    bounds = (min(lo, hi), max(lo, hi))
            key = f"lift_{ref}_{suffix}"
            for out_key in ([key] if primary else []) + [f"{metric}_{key}"]:
                out[out_key] = lift
                if bounds is not None:
                    out[f"{out_key}_ci_low"], out[f"{out_key}_ci_high"] = bounds
    return out


def gate_passed(rows: Sequence[GateRow], *, allow_not_measured: bool = False) -> bool:
    """Whether every target is met; ``allow_not_measured`` skips the unmeasured. No rows (a spec
    without targets) do not pass: :func:`gate_verdict` says ``"no targets"``."""
    allowed = {MET, NOT_MEASURED} if allow_not_measured else {MET}
    return bool(rows) and all(row.status in allowed for row in rows)


def gate_verdict(rows: Sequence[GateRow], *, allow_not_measured: bool = False) -> str:
    """``"passed"``, ``"failed"``, or ``"no targets"`` when the spec names none.

    Example:
        >>> gate_verdict([])
        'no targets'
    """
    if not rows:
        return NO_TARGETS
    return "passed" if gate_passed(rows, allow_not_measured=allow_not_measured) else "failed"


def render_gate(rows: Sequence[GateRow]) -> str:
    """A markdown table of the rows and a one-line summary ``k of n targets met; m not measured``.

    Without rows the text says there were no targets, so nothing was checked (not a pass).

    Example:
        >>> print(render_gate([GateRow(Target("recall", ">=", 0.7), "met", 0.75)]).splitlines()[-1])
        1 of 1 targets met; 0 not measured
    """
    if not rows:
        return ("No targets: the spec's Success Criteria name none, so nothing was checked and the "
                "gate is not passed. Add target lines (e.g. `- precision >= 0.8`) to spec.md.")
    lines = ["| target | measured | 95% CI | status | CI worse bound meets? |",
             "| --- | --- | --- | --- | --- |"]
    for row in rows:
        unit = row.target.unit
        measured = "—" if row.value is None else _with_unit(row.value, unit)
        ci = "—" if row.ci_low is None or row.ci_high is None else (
            f"[{_with_unit(row.ci_low, unit)}, {_with_unit(row.ci_high, unit)}]")
        worst = {True: "yes", False: "no", None: "—"}[row.worst_bound_met]
        lines.append(f"| `{row.target.render()}` | {measured} | {ci} | {_ICONS[row.status]} "
                     f"| {worst} |")
    met = sum(row.status == MET for row in rows)
    missing = sum(row.status == NOT_MEASURED for row in rows)
    return "\n".join([*lines, "", f"{met} of {len(rows)} targets met; {missing} not measured"])


def gate_json(rows: Sequence[GateRow]) -> list[dict[str, Any]]:
    """The rows as JSON-ready dicts; non-finite numbers become ``None``."""
    return [{"target": r.target.render(), "metric": r.target.metric, "op": r.target.op,
             "threshold": r.target.value, "unit": r.target.unit,
             "relative_to": r.target.relative_to, "metric_key": r.target.metric_key,
             "status": r.status, "value": _finite(r.value), "ci_low": _finite(r.ci_low),
             "ci_high": _finite(r.ci_high), "worst_bound_met": r.worst_bound_met,
             "source": r.source} for r in rows]


# --- private helpers -------------------------------------------------------------------------
def _number(metrics: Mapping[str, Any], key: str, where: str) -> float | None:
    raw = metrics.get(key)
    if raw is None:
        return None
    value = _as_float(raw, f"{where}: metric {key!r}")
    return None if math.isnan(value) else value


def _as_float(raw: Any, what: str) -> float:
    if isinstance(raw, bool) or not isinstance(raw, numbers.Real):
        raise RecordError(f"{what} must be a number, got {raw!r}; "
                          f"fix or re-run the record that wrote it")
    return float(raw)


def _lower_is_better(target: Target) -> bool:
    # Lift keys are oriented so that a bigger lift is better, whatever the metric's direction.
    return target.relative_to is None and target.metric in LOWER_IS_BETTER


def _references(metric: str, baselines: Mapping[str, float], *,
                pick: Callable[..., tuple[float, str]]) -> dict[str, tuple[float, str]]:
    """Reference name (``random_baseline``, ``best_baseline`` …) → (the best value it stands
    for, the baseline that has it)."""
    groups: dict[str, list[tuple[float, str]]] = {}
    for name, raw in baselines.items():
        base = None if raw is None else _as_float(raw, f"baseline {name!r} {metric}")
        if base is not None and math.isfinite(base):
            for ref in _refs(name):
                groups.setdefault(ref, []).append((base, name))
    best = lambda pairs: pick(pairs, key=lambda p: p[0])  # noqa: E731 - the first best wins ties
    refs = {ref: best(vals) for ref, vals in groups.items()}
    if bases := [v for ref, vals in groups.items() if ref.endswith("_baseline") for v in vals]:
        refs["best_baseline"] = best(bases)
    return refs


def _paired_bounds(model: Any, base: Any, *, unit: str, lower: bool) -> tuple[float, float] | None:
    """The 95% percentile interval of the lift per paired resample; None when undefined."""
    model, base = np.asarray(model, dtype=float), np.asarray(base, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        if unit == "pct":
            lifts = 100.0 * ((base - model) if lower else (model - base)) / np.abs(base)
        else:
            ok = (base > 0) & ((model > 0) if lower else True)
            lifts = np.where(ok, base / model if lower else model / base, np.nan)
    lifts = lifts[np.isfinite(lifts)]
    if lifts.size == 0:
        return None
    low, high = np.percentile(lifts, [2.5, 97.5])
    return float(low), float(high)


def _refs(name: str) -> list[str]:
    key = re.sub(r"[^a-z0-9]+", "_", str(name).lower()).strip("_")
    if not key:
        raise RecordError(f"baseline name {name!r} has no letters or digits")
    if key == "model" or key.endswith("_model"):
        return [key]
    key = key.removesuffix("_baseline") or key
    family = key.split("_")[0]
    return [f"{key}_baseline"] + ([f"{family}_baseline"] if family != key else [])


def _lift(value: float, base: float, *, unit: str, lower: bool) -> float | None:
    if base == 0:
        return None
    if unit == "pct":
        return 100.0 * ((base - value) if lower else (value - base)) / abs(base)
    if base < 0 or (lower and value <= 0):
        return None  # a ratio of mixed signs (or a zero error) says nothing about "how many times"
    return base / value if lower else value / base


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _fmt(value: float) -> str:
    if not math.isfinite(value):
        return str(value)
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.4g}" if value == 0 or abs(value) >= 1e-4 else f"{value:.2e}"


def _with_unit(value: float, unit: str) -> str:
    if unit == "$":
        return f"-${_fmt(-value)}" if value < 0 else f"${_fmt(value)}"
    return _fmt(value) + (unit if unit in ("", "%", "x") else f" {unit}")
