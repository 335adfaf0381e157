"""Packaged recommenders: the predictor that answers ``recommend(user_id, k)``, its package
metadata, and the T-007 explanations of sample users' lists.

A recommender package is the fitted model (its pickle, hash-checked before it is read; the id
indexes and the users' histories live in it) and a metadata file; there is no feature pipeline
and no input schema beyond the user id. An unknown user gets the popularity list, flagged as a
fallback in the answer.
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from specweave_ray._fs import atomic_write_json
from specweave_ray.exceptions import BadRequest, DataError
from specweave_ray.workspace.increment import Increment
from specweave_ray.workspace.records import track_experiment

__all__ = ["RecommenderPredictor", "recs_metadata", "write_recs_explainability"]

USER_FIELD = "user"


def _plain(value: Any) -> Any:
    item = getattr(value, "item", None)
    return item() if callable(item) else value


class RecommenderPredictor:
    """A verified recommender package, ready to answer.

    Attributes:
        metadata, version, folder: as :class:`~specweave_ray.deploy.Predictor`.
        model: The fitted :class:`~specweave_ray.candidates.recommenders.Recommender`.
        k: The list length the spec's metric uses (the default of :meth:`recommend`).
    """

    kind = "recommender"
    route = "/recommend"
    classes = None
    input_columns = [USER_FIELD]

    def __init__(self, metadata: Mapping[str, Any], folder: str | os.PathLike[str], *, model: Any) -> None:
        self.metadata = dict(metadata)
        self.folder = Path(folder)
        self.version = int(self.metadata["version"])
        self.problem_type = self.metadata.get("problem_type")
        self.model = model
        self.k = int(self.metadata.get("k") or 10)
        # keys arrive from JSON as strings or numbers; ids are matched through their text too
        self._by_text = {str(u): u for u in model.user_ids_}

    def __repr__(self) -> str:
        return (f"<RecommenderPredictor {self.metadata.get('increment')} model-v{self.version} "
                f"{self.metadata.get('candidate')} ({self.model.n_items} items)>")

    @property
    def explainer_kind(self) -> str:
        return "items-that-drive-the-score"

    def _user(self, raw: Any) -> Hashable:
        if raw is None or isinstance(raw, (bool, dict, list)):
            raise BadRequest(422, f"{USER_FIELD!r} must be a user id (a string or an integer), got {raw!r}")
        return self._by_text.get(str(raw), raw)

    def _k(self, k: Any) -> int:
        k = self.k if k is None else k
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise BadRequest(422, f"k must be a positive integer, got {k!r}")
        if k > self.model.n_items:
            raise BadRequest(422, f"k={k} is larger than the catalogue ({self.model.n_items} items)")
        return int(k)

    def recommend(self, user_id: Any, k: int | None = None, *, exclude_seen: bool = True) -> dict[str, Any]:
        """``{"user", "items", "scores", "fallback"}``: the ``k`` best items for ``user_id``;
        ``fallback`` is True when the user is unknown and the list is the most popular items."""
        return self.recommend_many([user_id], k, exclude_seen=exclude_seen)[0]

    def recommend_many(self, users: Sequence[Any], k: int | None = None, *,
                       exclude_seen: bool = True) -> list[dict[str, Any]]:
        ids = [self._user(u) for u in users]
        recs = self.model.recommend(ids, k=self._k(k), exclude_seen=exclude_seen)
        return [{"user": _plain(u), "items": [_plain(i) for i in items], "scores": [float(s) for s in scores],
                 "fallback": not bool(known)}
                for u, items, scores, known in zip(users, recs.items, recs.scores, recs.known, strict=True)]

    def predict(self, rows: Any) -> Any:
        """A request as rows: ``{"user": id[, "k": n]}`` → one answer; a list of them (or a
        DataFrame with a ``user`` column) → a list of answers."""
        if isinstance(rows, Mapping):
            return self.recommend(rows.get(USER_FIELD), rows.get("k"))
        records = rows.to_dict("records") if isinstance(rows, pd.DataFrame) else list(rows)
        ks = {r.get("k") for r in records}
        if len(ks) == 1:
            return self.recommend_many([r.get(USER_FIELD) for r in records], ks.pop())
        return [self.recommend(r.get(USER_FIELD), r.get("k")) for r in records]

    def explain(self, user_id: Any, k: int | None = None, *, n: int = 3) -> dict[str, Any]:
        """The list for ``user_id`` and, for each item, its ``n`` strongest reasons: the items the
        user interacted with that drive its score (none for a fallback list)."""
        answer = self.recommend(user_id, k)
        reasons = ([] if answer["fallback"] else
                   self.model.reasons(self._user(user_id), answer["items"], n=n))
        answer["explanations"] = [
            {"item": item, "score": score, "because": why if reasons else [],
             "why": ("popular with all users" if answer["fallback"] else
                     ("; ".join(f"you interacted with {r['item']}" for r in why) or "no single item stands out"))}
            for item, score, why in zip(answer["items"], answer["scores"],
                                        reasons or [[]] * len(answer["items"]), strict=True)]
        return answer


def recs_metadata(*, model: Any, k: int) -> dict[str, Any]:
    """The metadata fields a recommender package adds (catalogue and user counts, ``k``)."""
    return {"kind": RecommenderPredictor.kind, "k": int(k), "n_items": int(model.n_items),
            "n_users": int(len(model.user_ids_)),
            "input_schema": {"columns": {USER_FIELD: {"dtype": "id", "nullable": False}}},
            "fast_path": True, "explainer": "items-that-drive-the-score"}


def write_recs_explainability(inc: Increment, predictor: RecommenderPredictor, X: pd.DataFrame, y: pd.Series, *,
                              seed: int = 0, data_fingerprint: str | None = None,
                              n_users: int = 10, n: int = 3) -> str:
    """T-007: the explained top-k lists of ``n_users`` sample test users (each item's ``n``
    strongest reasons), and how many lists could be explained; an ``explainability`` record."""
    users = pd.unique(X.loc[np.asarray(y) > 0, X.columns[0]])
    if not len(users):
        raise DataError("no test user with a relevant interaction to explain")
    rng = np.random.default_rng(seed)
    sample = rng.choice(users, size=min(n_users, len(users)), replace=False)
    answers = [predictor.explain(u, n=n) for u in sample]
    explained = [a for a in answers if not a["fallback"]]
    top3 = [e for a in explained for e in a["explanations"][:3]]
    share = float(np.mean([bool(e["because"]) for e in top3])) if top3 else 0.0
    with track_experiment("explainability", increment=inc, kind="explainability",
                          model=f"model-v{predictor.version}",
                          meta={"data_fingerprint": data_fingerprint, "package": f"model-v{predictor.version}",
                                "explainer": predictor.explainer_kind}) as exp:
        exp.log_params({"explainer": predictor.explainer_kind, "users": len(sample), "reasons_per_item": n,
                        "k": predictor.k})
        exp.log_metrics({"users_explained": len(explained), "fallback_lists": len(answers) - len(explained),
                         "top3_items_with_reasons_share": share})
        atomic_write_json(exp.path / "explanations.json", answers)
        lines = [f"# Explainability — model-v{predictor.version} ({predictor.metadata.get('candidate')})", "",
                 f"For {len(sample)} sample test users: the top-{predictor.k} list and, for each item, the "
                 f"{n} items in the user's history that drive its score ({predictor.explainer_kind}). "
                 f"{share:.0%} of the top-3 items have at least one reason.", ""]
        for a in answers:
            lines.append(f"## User `{a['user']}`" + (" (unknown: popularity fallback)" if a["fallback"] else ""))
            lines.append("")
            lines.append("| rank | item | score | because the user interacted with |")
            lines.append("| --- | --- | --- | --- |")
            for rank, e in enumerate(a["explanations"], 1):
                because = ", ".join(f"`{r['item']}` ({r['weight']:.3g})" for r in e["because"]) or e["why"]
                lines.append(f"| {rank} | `{e['item']}` | {e['score']:.4g} | {because} |")
            lines.append("")
        exp.save_report("explainability.md", "\n".join(lines))
    return exp.id
