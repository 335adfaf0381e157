"""The A/B test plan (T-009): power analysis from the measured baseline, rendered as Markdown.

Sample sizes come from statsmodels: for a rate metric, Cohen's *h*
(:func:`statsmodels.stats.proportion.proportion_effectsize`) solved with
:class:`statsmodels.stats.power.NormalIndPower`; for a continuous metric, Cohen's *d* solved with
:class:`statsmodels.stats.power.TTestIndPower`. :func:`render_ab_plan` writes ``ab-test-plan.md``.

Example:
    >>> sample_size_per_arm(0.10, mde_relative=0.10)
    14745
    >>> sample_size_per_arm(0.10, mde_relative=0.20) < sample_size_per_arm(0.10, mde_relative=0.10)
    True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from specweave_ray.exceptions import ConfigError

MIN_DAYS = 7  # a full week covers weekday/weekend seasonality


def _alternative(two_sided: bool) -> str:
    return "two-sided" if two_sided else "larger"


def _check_common(*, mde_relative: float, alpha: float, power: float, ratio: float) -> None:
    if not isinstance(mde_relative, (int, float)) or mde_relative == 0 or not math.isfinite(mde_relative):
        raise ConfigError(f"mde_relative must be a non-zero relative change such as 0.1 (+10%), "
                          f"got {mde_relative!r}")
    if not 0 < alpha < 1:
        raise ConfigError(f"alpha must be in (0, 1), got {alpha!r}")
    if not 0 < power < 1:
        raise ConfigError(f"power must be in (0, 1), got {power!r}")
    if not (isinstance(ratio, (int, float)) and ratio > 0):
        raise ConfigError(f"ratio (candidate arm size / control arm size) must be > 0, got {ratio!r}")


def sample_size_per_arm(
    baseline_rate: float,
    *,
    mde_relative: float,
    alpha: float = 0.05,
    power: float = 0.8,
    two_sided: bool = True,
    ratio: float = 1.0,
) -> int:
    """Users needed in the control arm to detect a relative change of a rate metric.

    The candidate rate is ``baseline_rate * (1 + mde_relative)``; the effect size is Cohen's
    ``h = 2 asin(sqrt(p2)) - 2 asin(sqrt(p1))`` and ``NormalIndPower().solve_power`` gives the size,
    rounded up. With equal arms this is the classic ``((z_{1-a/2} + z_{1-b}) / h)^2 * 2``.

    Args:
        baseline_rate: the control's measured rate, in (0, 1).
        mde_relative: minimum detectable effect relative to the baseline (0.1 = +10 %; negative
            for a decrease).
        alpha: significance level.
        power: probability of detecting an effect of exactly the MDE.
        two_sided: two-sided test (default) or one-sided in the MDE's direction.
        ratio: candidate arm size / control arm size (1 for an even split).

    Returns:
        The control arm's size; the candidate arm needs ``ceil(ratio * n)``.

    Raises:
        ConfigError: a rate outside (0, 1) (the baseline or the rate the MDE implies), a zero
            MDE, or alpha/power/ratio out of range.
    """
    from statsmodels.stats.power import NormalIndPower
    from statsmodels.stats.proportion import proportion_effectsize

    _check_common(mde_relative=mde_relative, alpha=alpha, power=power, ratio=ratio)
    if not (isinstance(baseline_rate, (int, float)) and 0 < baseline_rate < 1):
        raise ConfigError(f"baseline_rate must be a rate in (0, 1), got {baseline_rate!r}")
    target = baseline_rate * (1 + mde_relative)
    if not 0 < target < 1:
        raise ConfigError(f"baseline_rate {baseline_rate:g} with mde_relative {mde_relative:+g} "
                          f"implies a rate of {target:g}, outside (0, 1); choose a smaller MDE")
    effect = abs(float(proportion_effectsize(target, baseline_rate)))
    n = NormalIndPower().solve_power(effect_size=effect, alpha=alpha, power=power, ratio=ratio,
                                     alternative=_alternative(two_sided))
    return int(math.ceil(float(n)))


def sample_size_continuous(
    mean: float,
    std: float,
    *,
    mde_relative: float,
    alpha: float = 0.05,
    power: float = 0.8,
    two_sided: bool = True,
    ratio: float = 1.0,
) -> int:
    """Users needed in the control arm to detect a relative change of a continuous metric's mean.

    Cohen's ``d = |mean * mde_relative| / std`` solved with ``TTestIndPower().solve_power``.

    Args:
        mean: the control's measured mean (non-zero).
        std: the metric's standard deviation per user (> 0).
        mde_relative: minimum detectable change relative to ``mean``.
        alpha: significance level.
        power: probability of detecting an effect of exactly the MDE.
        two_sided: two-sided test (default) or one-sided.
        ratio: candidate arm size / control arm size.

    Returns:
        The control arm's size, rounded up.

    Raises:
        ConfigError: ``mean`` zero or not finite, ``std`` not > 0, or another argument out of range.
    """
    from statsmodels.stats.power import TTestIndPower

    _check_common(mde_relative=mde_relative, alpha=alpha, power=power, ratio=ratio)
    if not (isinstance(mean, (int, float)) and math.isfinite(mean) and mean != 0):
        raise ConfigError(f"mean must be a finite non-zero number, got {mean!r}")
    if not (isinstance(std, (int, float)) and math.isfinite(std) and std > 0):
        raise ConfigError(f"std must be a finite number > 0, got {std!r}")
    effect = abs(mean * mde_relative) / std
    n = TTestIndPower().solve_power(effect_size=effect, alpha=alpha, power=power, ratio=ratio,
                                    alternative=_alternative(two_sided))
    return int(math.ceil(float(n)))


@dataclass(frozen=True)
class _Sizing:
    kind: str  # "rate" | "mean"
    inputs: str
    effect: str
    control: int
    candidate: int


def _sizing(*, baseline_rate: float | None, baseline_mean: float | None, baseline_std: float | None,
            mde_relative: float, alpha: float, power: float, ratio: float) -> _Sizing:
    from statsmodels.stats.proportion import proportion_effectsize

    if baseline_rate is not None:
        n = sample_size_per_arm(baseline_rate, mde_relative=mde_relative, alpha=alpha,
                                power=power, ratio=ratio)
        target = baseline_rate * (1 + mde_relative)
        h = abs(float(proportion_effectsize(target, baseline_rate)))
        return _Sizing(
            "rate", f"baseline rate p1 = {baseline_rate:.4g}, candidate rate p2 = p1 × "
            f"(1 {mde_relative:+.1%}) = {target:.4g}",
            f"Cohen's h = |2·asin(√p2) − 2·asin(√p1)| = {h:.4f}; statsmodels `NormalIndPower`",
            n, math.ceil(ratio * n))
    if baseline_mean is None or baseline_std is None:
        raise ConfigError("an A/B plan needs the measured baseline: baseline_rate for a rate "
                          "metric, or baseline_mean and baseline_std for a continuous one")
    n = sample_size_continuous(baseline_mean, baseline_std, mde_relative=mde_relative,
                               alpha=alpha, power=power, ratio=ratio)
    d = abs(baseline_mean * mde_relative) / baseline_std
    return _Sizing(
        "mean", f"baseline mean = {baseline_mean:.4g}, standard deviation = {baseline_std:.4g}, "
        f"detectable change = {abs(baseline_mean * mde_relative):.4g}",
        f"Cohen's d = |mean × MDE| / std = {d:.4f}; statsmodels `TTestIndPower` (two-sample t-test)",
        n, math.ceil(ratio * n))


def render_ab_plan(
    *,
    increment_id: str,
    problem_type: str,
    control: str,
    candidate: str,
    primary_metric: str,
    baseline_rate: float | None,
    baseline_mean: float | None = None,
    baseline_std: float | None = None,
    mde_relative: float = 0.1,
    daily_traffic: int = 10_000,
    traffic_split: float = 0.5,
    exposure: float = 1.0,
    guardrails: Sequence[str] = (),
    alpha: float = 0.05,
    power: float = 0.8,
    latency_p99_ms_target: float | None = None,
    baseline_note: str | None = None,
) -> str:
    """Render ``ab-test-plan.md`` with the sample size computed from the measured baseline.

    Args:
        increment_id: e.g. ``"0001-fraud-detection"``.
        problem_type: the spec's problem type (shown; the metric kind follows the baseline given).
        control: the model serving today (e.g. ``"model-v1"`` or ``"rules engine"``).
        candidate: the model under test (e.g. ``"model-v2 (XGBoost)"``).
        primary_metric: the business metric the decision rests on (e.g. ``"conversion rate"``).
        baseline_rate: the control's measured rate of the primary metric, or ``None`` for a
            continuous metric.
        baseline_mean: the control's measured mean (continuous metric).
        baseline_std: its standard deviation per user (continuous metric).
        mde_relative: minimum detectable effect, relative to the baseline.
        daily_traffic: users (or requests, the randomisation unit) per day.
        traffic_split: the candidate's share of the experiment's traffic.
        exposure: the share of all traffic that enters the experiment.
        guardrails: guardrail lines, e.g. the spec's targets rendered (``"latency_p99 < 100 ms"``).
        alpha: significance level.
        power: statistical power.
        latency_p99_ms_target: adds a p99 latency guardrail when not already among ``guardrails``.
        baseline_note: how the baseline was measured, shown with the sample-size inputs.

    Returns:
        The Markdown text.

    Raises:
        ConfigError: no usable baseline, or a parameter out of range (named).
    """
    if not (isinstance(daily_traffic, int) and daily_traffic > 0):
        raise ConfigError(f"daily_traffic must be a positive integer, got {daily_traffic!r}")
    if not 0 < traffic_split < 1:
        raise ConfigError(f"traffic_split (candidate share) must be in (0, 1), got {traffic_split!r}")
    if not 0 < exposure <= 1:
        raise ConfigError(f"exposure (share of traffic in the test) must be in (0, 1], got {exposure!r}")
    ratio = traffic_split / (1 - traffic_split)
    size = _sizing(baseline_rate=baseline_rate, baseline_mean=baseline_mean,
                   baseline_std=baseline_std, mde_relative=mde_relative, alpha=alpha,
                   power=power, ratio=ratio)
    total = size.control + size.candidate
    per_day = daily_traffic * exposure
    days = max(math.ceil(size.control / (per_day * (1 - traffic_split))),
               math.ceil(size.candidate / (per_day * traffic_split)))
    planned = max(MIN_DAYS, math.ceil(days / 7) * 7)
    rails = [g.strip() for g in guardrails if g.strip()]
    if latency_p99_ms_target is not None and not any("latency_p99" in g for g in rails):
        rails.append(f"latency_p99 < {latency_p99_ms_target:g} ms")
    direction = "increases" if mde_relative > 0 else "decreases"
    test = ("two-proportion z-test (statsmodels `proportions_ztest`)" if size.kind == "rate"
            else "Welch two-sample t-test (scipy `ttest_ind(equal_var=False)`)")
    baseline = (f"{baseline_rate:.4g}" if size.kind == "rate" else f"{baseline_mean:.4g}")
    rail_lines = [f"- {g} — checked daily on the candidate arm" for g in rails] or [
        "- none from the spec; add at least latency and error rate before starting"]
    lines = [
        f"# A/B test plan — {increment_id}", "",
        f"Problem type: {problem_type}. Control: **{control}**. Candidate: **{candidate}**.", "",
        "## Hypothesis", "",
        f"- H0: the candidate does not change {primary_metric} (baseline {baseline}).",
        f"- H1: the candidate {direction} {primary_metric} by at least {abs(mde_relative):.1%} "
        f"relative (two-sided test at alpha = {alpha:g}).", "",
        "## Metrics", "",
        f"- Primary: **{primary_metric}** ({'rate' if size.kind == 'rate' else 'mean per user'}).",
        "- Guardrails (a breach stops the test):", *[f"  {r}" for r in rail_lines], "",
        "## Sample size (power analysis)", "",
        f"- Inputs: {size.inputs}; alpha = {alpha:g} (two-sided), power = {power:g}, "
        f"minimum detectable effect = {abs(mde_relative):.1%} relative.",
        *([f"- Baseline: {baseline_note}."] if baseline_note else []),
        f"- Effect size: {size.effect}.",
        f"- Allocation ratio candidate/control = {ratio:.4g}.",
        f"- **Required: {size.control:,} users in control, {size.candidate:,} in candidate "
        f"({total:,} in total).**", "",
        "## Traffic split and duration", "",
        f"- Exposure: {exposure:.0%} of {daily_traffic:,} daily users = {per_day:,.0f} per day; "
        f"split {1 - traffic_split:.0%} control / {traffic_split:.0%} candidate, randomised per "
        "user (sticky assignment).",
        f"- Duration: max(ceil({size.control:,} / {per_day * (1 - traffic_split):,.0f}), "
        f"ceil({size.candidate:,} / {per_day * traffic_split:,.0f})) = **{days} day(s)** to reach "
        "the sample size.",
        f"- Planned run: **{planned} day(s)** — whole weeks, at least {MIN_DAYS}, so every weekday "
        "is covered equally.", "",
        "## Stop rules", "",
        f"- Fixed horizon: the primary metric is tested once, after {planned} day(s) and both arms "
        "reach their sample size. No peeking: looking earlier and stopping on significance "
        "inflates the false-positive rate. If interim looks are needed, pre-register an "
        "O'Brien-Fleming alpha-spending plan (Lan-DeMets) with the number of looks, and enlarge "
        "the sample accordingly.",
        "- Stop early (and roll back) on any guardrail breach, on errors or timeouts of the "
        "candidate above the control's, or on a sample ratio mismatch (chi-square test of the "
        "arm counts against the planned split, p < 0.001).", "",
        "## Decision rule", "",
        f"- Analyse with a {test} at alpha = {alpha:g}, reporting the effect with its "
        f"{1 - alpha:.0%} confidence interval.",
        f"- Ship the candidate when p < {alpha:g}, the effect {direction} {primary_metric} (the "
        "intended direction), and no guardrail was breached. Otherwise keep "
        "the control (a non-significant result is not proof of no effect: report the interval).",
        "", "## Rollback", "",
        f"1. Route 100% of traffic back to {control} (set the candidate's traffic share to 0 in the "
        "serving deployment / feature flag); no redeploy of the control is needed.",
        "2. Confirm the guardrail metrics return to their baseline within one hour.",
        "3. Keep the candidate's model package and the experiment logs; record the reason in the "
        "increment (COMPLETION-SUMMARY.md) before any retry.",
    ]
    return "\n".join(lines) + "\n"
