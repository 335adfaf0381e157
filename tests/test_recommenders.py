"""Every recommender family on the same contract, with the real libraries (implicit, LightGBM):
seen items excluded, unknown users on the popularity list, pickles that answer the same, reasons
drawn from the user's own history, and collaborative filters ahead of popularity."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from specweave_ray import data, problems
from specweave_ray.candidates import (
    ALSRecommender,
    BPRRecommender,
    EASERecommender,
    ItemKNNRecommender,
    RerankRecommender,
)
from specweave_ray.candidates.recommenders import PopularityRecommender
from specweave_ray.exceptions import CandidateError

REC = problems.get("recommendation")
FAMILIES = {
    "item-knn": lambda: ItemKNNRecommender(K=50),
    "als": lambda: ALSRecommender(factors=16, iterations=8, n_jobs=1),
    "bpr": lambda: BPRRecommender(factors=16, iterations=30, n_jobs=1),
    "ease": lambda: EASERecommender(l2=100.0),
    "rerank": lambda: RerankRecommender(n_estimators=30, max_train_users=300, n_jobs=1),
}


@pytest.fixture(scope="module")
def split():
    df = data.generate("interactions", seed=3, n_interactions=6000, n_users=400, n_items=200)
    X, y = REC.frame(df, target="rating", columns={"user_column": "user_id", "item_column": "item_id",
                                                  "time_column": "timestamp", "relevance_threshold": 3})
    return REC.holdout_split(X, y, test_size=0.2)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_a_family_keeps_the_contract(family: str, split) -> None:
    X_tr, _, y_tr, _ = split
    model = FAMILIES[family]().fit(X_tr, y_tr)
    user = X_tr["user"].iloc[0]
    seen = set(X_tr.loc[(X_tr["user"] == user) & (y_tr > 0), "item"])
    recs = model.recommend([user, "nobody"], k=10)
    assert recs.items.shape == (2, 10) and recs.known.tolist() == [True, False]
    assert not seen & set(recs.items[0]), "seen items are excluded"
    assert np.all(np.diff(recs.scores[0]) <= 1e-9), "best first"
    assert recs.items[1].tolist() == PopularityRecommender().fit(X_tr, y_tr).recommend(["nobody"], k=10).items[0].tolist()
    again = pickle.loads(pickle.dumps(model)).recommend([user], k=10)
    assert again.items.tolist() == recs.items[:1].tolist()
    reasons = model.reasons(user, recs.items[0][:3], n=3)
    assert len(reasons) == 3 and all(len(r) <= 3 for r in reasons)
    assert {r["item"] for why in reasons for r in why} <= seen | set(X_tr.loc[X_tr["user"] == user, "item"])
    with pytest.raises(CandidateError, match="larger than the catalogue"):
        model.recommend([user], k=model.n_items + 1)


def test_collaborative_filters_beat_popularity_on_held_out_users(split) -> None:
    X_tr, X_te, y_tr, y_te = split
    metric = REC.metric("ndcg@10")
    pop = REC.score_model(metric, PopularityRecommender().fit(X_tr, y_tr), X_te, y_te)
    for family in ("item-knn", "ease", "als"):
        score = REC.score_model(metric, FAMILIES[family]().fit(X_tr, y_tr), X_te, y_te)
        assert score > 1.3 * pop, f"{family}: ndcg@10 {score:.4f} vs popularity {pop:.4f}"
