"""T-006 for ranked lists: every ranking metric at k per test user, with bootstrap CIs over users.

The chosen model (the sweep's best, refitted on all training interactions) and every baseline
(refitted here on the same interactions) recommend ``k`` items to each test user with a relevant
held-out interaction, items the user already interacted with excluded. Per user: precision,
recall, NDCG, MAP and hit rate at ``k``; the CI of each mean resamples users (the unit a ranking
metric averages over). Beside them: catalogue coverage (the share of training items that appear
in any list), popularity bias (the mean training popularity of what is recommended, over the
mean popularity of what users really engaged with in the test split), and cold users (test
users with no training history, answered with the popularity list).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from specweave_ray._fs import atomic_write_json
from specweave_ray.evaluate.gate import check_targets, gate_json, lift_metrics, render_gate
from specweave_ray.exceptions import RecordError
from specweave_ray.metrics import AT_K, get_metric, per_user
from specweave_ray.problems import ProblemType
from specweave_ray.problems.recommendation import ITEM, USER, relevant_sets
from specweave_ray.workspace.increment import Increment
from specweave_ray.workspace.records import read_record, track_experiment

__all__ = ["evaluate_rankings", "ranking_metrics"]


def _import(path: str) -> type:
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def ranking_metrics(model: Any, users: np.ndarray, truth: Sequence[set[Any]], *, k: int,
                    train: pd.DataFrame, test_items: Sequence[Any], n_boot: int = 1000,
                    seed: int = 0) -> tuple[dict[str, float], dict[str, np.ndarray], np.ndarray]:
    """``(metrics, per-user values, lists)`` of ``model`` on ``users``; metrics hold each mean,
    its ``_ci_low``/``_ci_high`` (percentile bootstrap over users), coverage and popularity bias."""
    recs = model.recommend(users, k=min(k, model.n_items))
    lists = recs.items
    values = {f"{m}_at_{k}": per_user(f"{m}_at_{k}", truth, lists) for m in AT_K}
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(users), size=(n_boot, len(users))) if len(users) else None
    out: dict[str, float] = {}
    for name, vals in values.items():
        out[name] = float(vals.mean()) if len(vals) else float("nan")
        if draws is not None:
            means = vals[draws].mean(axis=1)
            out[f"{name}_ci_low"], out[f"{name}_ci_high"] = (float(q) for q in np.quantile(means, [0.025, 0.975]))
    popularity = train[ITEM].value_counts()
    recommended = pd.Series(lists.ravel())
    out["catalog_coverage"] = float(recommended.nunique() / max(1, model.n_items))
    engaged = popularity.reindex(pd.Series(list(test_items))).fillna(0.0).mean()
    shown = popularity.reindex(recommended).fillna(0.0).mean()
    out["popularity_bias"] = float(shown / engaged) if engaged > 0 else float("nan")
    out["mean_recommended_popularity"] = float(shown)
    out["known_users_share"] = float(np.mean(recs.known)) if len(users) else float("nan")
    return out, values, lists


def evaluate_rankings(inc: Increment, spec: Any, comp: Mapping[str, Any], *, problem: ProblemType,
                      model: Any, best: Any, X_train: pd.DataFrame, y_train: pd.Series,
                      X_test: pd.DataFrame, y_test: pd.Series, seed: int = 0,
                      data_fingerprint: str | None = None, n_boot: int = 1000) -> tuple[dict[str, Any], list[Any]]:
    """Score the chosen recommender and the baselines on each user's held-out interactions.

    Returns:
        ``(summary, gate_rows)`` as :func:`~specweave_ray.evaluate.evaluate_holdout`.

    Raises:
        RecordError: no test user has a relevant held-out interaction.
    """
    primary = comp["metric"]
    k = int(primary.rsplit("_", 1)[1])
    users, truth = relevant_sets(X_test, y_test)
    if not len(users):
        raise RecordError(f"{inc.id}: no test user has a relevant held-out interaction to rank")
    train_pos = X_train[np.asarray(y_train) > 0]
    test_items = X_test.loc[np.asarray(y_test) > 0, ITEM].tolist()
    known_train = set(X_train[USER])
    cold = int(sum(u not in known_train for u in users))
    metrics, values, lists = ranking_metrics(model, users, truth, k=k, train=train_pos, test_items=test_items,
                                             n_boot=n_boot, seed=seed)
    metrics.update({"test_users": float(len(users)), "cold_users": float(cold)})

    baselines: dict[str, dict[str, float]] = {}
    for row in comp["rows"]:
        if row["kind"] != "baseline":
            continue
        rec = read_record(inc.experiments_dir / row["record"])
        base = _import(rec.meta["model"])(**rec.params).fit(X_train, np.asarray(y_train))
        scores, _, _ = ranking_metrics(base, users, truth, k=k, train=train_pos, test_items=test_items,
                                       n_boot=200, seed=seed)
        scores["test_users"] = float(len(users))
        with track_experiment(f"evaluation-baseline-{row['candidate']}", increment=inc, kind="baseline-evaluation",
                              model=rec.meta["model"], meta={"data_fingerprint": data_fingerprint or "",
                                                             "candidate": row["candidate"], "trial_record": rec.id}) as exp:
            exp.log_params({**rec.params, "split": "held-out test", "k": k})
            exp.log_metrics({n: v for n, v in scores.items() if np.isfinite(v)})
        baselines[row["candidate"]] = scores

    metric_def = get_metric(primary)
    ci = (metrics.get(f"{primary}_ci_low"), metrics.get(f"{primary}_ci_high"))
    lifts = lift_metrics(primary, metrics[primary], {n: m[primary] for n, m in baselines.items()},
                         lower_is_better=metric_def.mode == "min", ci=ci if None not in ci else None)
    gate = check_targets(spec.targets, {**metrics, **lifts}, source=None)
    with track_experiment("evaluation", increment=inc, kind="evaluation", model=best.meta.get("model"),
                          meta={"data_fingerprint": data_fingerprint, "candidate": best.meta.get("candidate"),
                                "trial_record": best.id, "k": k}) as exp:
        exp.log_params({"candidate": best.meta.get("candidate"), "trial_record": best.id, "k": k,
                        "split": "held-out test (each user's latest interactions)",
                        **{f"model.{p}": v for p, v in best.params.items()}})
        exp.log_metrics({n: v for n, v in {**metrics, **lifts}.items() if np.isfinite(v)})
        per_user_frame = pd.DataFrame({"user": users, **values,
                                       "relevant": [len(t) for t in truth],
                                       "recommended": [" ".join(map(str, row)) for row in lists]})
        per_user_frame.to_csv(exp.path / "per_user.csv", index=False)
        plot = _at_k_plot(exp.path, model, baselines_models=None, users=users, truth=truth, k=k)
        report = _render(metrics, baselines, k=k, primary=primary, candidate=best.meta.get("candidate"),
                         plots=[plot] if plot else [])
        gate_md = render_gate(gate)
        exp.save_report("evaluation.md", report + "\n## Gate: spec targets\n\n" + gate_md)
        exp.save_report("gate.md", gate_md)
        atomic_write_json(exp.path / "gate.json", gate_json(gate))
    summary = {"record": exp.id, "candidate": best.meta.get("candidate"), "trial_record": best.id,
               "threshold": None, "metrics": {**metrics, **lifts}, "baselines": baselines, "previous": None}
    return summary, gate


def _at_k_plot(folder: Path, model: Any, *, baselines_models: Any, users: np.ndarray,
               truth: Sequence[set[Any]], k: int) -> str | None:
    """Recall and NDCG of the chosen model at every cut-off up to ``max(k, 20)``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    top = min(max(k, 20), model.n_items)
    lists = model.recommend(users, k=top).items
    cuts = np.arange(1, top + 1)
    fig, ax = plt.subplots(figsize=(6, 4))
    for base in ("recall", "ndcg", "precision"):
        ax.plot(cuts, [per_user(f"{base}_at_{c}", truth, lists).mean() for c in cuts], label=f"{base}@k")
    ax.axvline(k, color="grey", linestyle=":", label=f"k = {k}")
    ax.set_xlabel("k (list length)")
    ax.set_ylabel("mean over test users")
    ax.legend()
    ax.set_title("Ranking quality by list length")
    fig.tight_layout()
    path = folder / "ranking-at-k.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path.name


def _fmt(value: Any) -> str:
    return "—" if value is None or not np.isfinite(value) else f"{value:.4f}"


def _render(metrics: Mapping[str, float], baselines: Mapping[str, Mapping[str, float]], *, k: int,
            primary: str, candidate: Any, plots: Sequence[str]) -> str:
    lines = [f"# Evaluation (held-out test): {candidate}", "",
             f"Each test user's latest interactions were held out; lists of {k} exclude items the user "
             f"already interacted with. {int(metrics['test_users'])} test users "
             f"({int(metrics['cold_users'])} cold: no training history, served the popularity list). "
             f"Primary metric: `{primary}`. 95% CIs resample users.", "",
             "| metric | value | 95% CI | " + " | ".join(baselines) + " |",
             "| --- | --- | --- | " + " | ".join("---" for _ in baselines) + " |"]
    for m in AT_K:
        name = f"{m}_at_{k}"
        ci = f"[{_fmt(metrics.get(f'{name}_ci_low'))}, {_fmt(metrics.get(f'{name}_ci_high'))}]"
        lines.append(f"| {m}@{k} | {_fmt(metrics[name])} | {ci} | "
                     + " | ".join(_fmt(b.get(name)) for b in baselines.values()) + " |")
    for extra in ("catalog_coverage", "popularity_bias"):
        lines.append(f"| {extra} | {_fmt(metrics[extra])} | | "
                     + " | ".join(_fmt(b.get(extra)) for b in baselines.values()) + " |")
    lines += ["", "- catalogue coverage: share of training items that appear in any test user's list",
              "- popularity bias: mean training popularity of recommended items / that of the items "
              "users engaged with in the test split (1 = as popular as real engagement)", ""]
    lines += [f"![{p}]({p})" for p in plots]
    return "\n".join(lines) + "\n"
