"""Which estimator class a config's candidate name means, and the default candidate set.

Names resolve lazily: ``resolve_estimator("xgboost", problem_type="classification")`` imports
XGBoost only then. Search spaces are written as tagged dicts (``{"loguniform": [1e-3, 1.0]}``)
so configs, records and this module stay plain data; ``sweep.py`` turns them into Ray Tune
domains.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from specweave_ray.candidates._common import ProblemFamily, problem_family
from specweave_ray.exceptions import CandidateError, require

__all__ = [
    "ALIASES",
    "SEARCH_SPACE_KINDS",
    "CandidateSpec",
    "check_search_space",
    "default_candidates",
    "resolve_estimator",
]

_MLP = "specweave_ray.candidates.torch_mlp"

ALIASES: dict[ProblemFamily, dict[str, str]] = {
    "classification": {
        "xgboost": "xgboost.XGBClassifier",
        "lightgbm": "lightgbm.LGBMClassifier",
        "logistic": "sklearn.linear_model.LogisticRegression",
        "linear": "sklearn.linear_model.LogisticRegression",
        "ridge": "sklearn.linear_model.RidgeClassifier",
        "random-forest": "sklearn.ensemble.RandomForestClassifier",
        "torch-mlp": f"{_MLP}.TorchMLPClassifier",
        "mlp": f"{_MLP}.TorchMLPClassifier",
        "dummy": "sklearn.dummy.DummyClassifier",
        "rule": "specweave_ray.candidates.baselines.RuleClassifier",
    },
    "regression": {
        "xgboost": "xgboost.XGBRegressor",
        "lightgbm": "lightgbm.LGBMRegressor",
        "linear": "sklearn.linear_model.LinearRegression",
        "ridge": "sklearn.linear_model.Ridge",
        "random-forest": "sklearn.ensemble.RandomForestRegressor",
        "torch-mlp": f"{_MLP}.TorchMLPRegressor",
        "mlp": f"{_MLP}.TorchMLPRegressor",
        "dummy": "sklearn.dummy.DummyRegressor",
    },
}
# Other spellings people write in configs.
_SYNONYMS = {
    "xgb": "xgboost",
    "lgbm": "lightgbm",
    "lgb": "lightgbm",
    "rf": "random-forest",
    "logistic-regression": "logistic",
    "linear-regression": "linear",
}

# Tag → number of arguments (None: any non-empty list).
SEARCH_SPACE_KINDS: dict[str, int | None] = {
    "loguniform": 2,
    "uniform": 2,
    "randint": 2,  # [low, high): high excluded, as tune.randint
    "quniform": 3,
    "choice": None,
}


@dataclass(frozen=True)
class CandidateSpec:
    """A candidate of the sweep: a name, an estimator class and its parameters.

    Attributes:
        name: Record name, e.g. ``"xgboost"``.
        estimator: The estimator class (scikit-learn contract).
        params: Fixed values and search-space entries (tagged dicts, see
            :data:`SEARCH_SPACE_KINDS`).
    """

    name: str
    estimator: type
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise CandidateError(f"a candidate needs a non-empty name, got {self.name!r}")
        check_search_space(self.params, candidate=self.name)


def check_search_space(params: dict[str, Any], *, candidate: str = "candidate") -> None:
    """Check every tagged search-space entry of ``params`` has the right shape.

    A dict value with exactly one key from :data:`SEARCH_SPACE_KINDS` is a search space; any
    other value is a fixed parameter.

    Raises:
        CandidateError: ``params`` is not a dict, or an entry is malformed; names the parameter.

    Example:
        >>> check_search_space({"C": {"loguniform": [1e-3, 10.0]}, "max_iter": 1000})
    """
    if not isinstance(params, dict):
        raise CandidateError(f"{candidate}: params must be a dict, got {type(params).__name__}")
    for key, value in params.items():
        if not (isinstance(value, dict) and len(value) == 1):
            continue
        ((kind, args),) = value.items()
        if kind not in SEARCH_SPACE_KINDS:
            continue
        arity = SEARCH_SPACE_KINDS[kind]
        ok = isinstance(args, (list, tuple)) and len(args) > 0
        if ok and arity is not None:
            ok = len(args) == arity and all(isinstance(a, (int, float)) for a in args)
            ok = ok and args[0] < args[1] and (kind != "loguniform" or args[0] > 0)
        if not ok:
            shape = "a non-empty list" if arity is None else f"[low, high{', q' * (arity == 3)}]"
            raise CandidateError(
                f"{candidate}: search space for {key!r} must be {{{kind!r}: {shape}}} "
                f"with low < high{' and low > 0' * (kind == 'loguniform')}, got {args!r}"
            )


def resolve_estimator(name_or_class: str | type, *, problem_type: str) -> type:
    """The estimator class a candidate name means.

    Args:
        name_or_class: A class, a dotted path (``"sklearn.linear_model.LogisticRegression"``)
            or an alias (``"xgboost"``, ``"lightgbm"``, ``"logistic"``, ``"linear"``,
            ``"ridge"``, ``"random-forest"``, ``"torch-mlp"``, ``"mlp"``).
        problem_type: Picks the classifier or the regressor of an alias.

    Returns:
        A class with ``fit`` and ``get_params``.

    Raises:
        CandidateError: Unknown alias (the message lists the known ones), unknown class, or
            something that is not a scikit-learn-style estimator.
        MissingDependencyError: The library the name needs is not installed.

    Example:
        >>> resolve_estimator("logistic", problem_type="classification").__name__
        'LogisticRegression'
    """
    family = problem_family(problem_type)
    if isinstance(name_or_class, type):
        return _check_estimator_class(name_or_class, str(name_or_class))
    if not isinstance(name_or_class, str) or not name_or_class.strip():
        raise CandidateError(
            f"a candidate estimator is a class, a dotted path or an alias; got {name_or_class!r}"
        )
    text = name_or_class.strip()
    key = text.lower().replace("_", "-")
    key = _SYNONYMS.get(key, key)
    if key in ALIASES[family]:
        return _import_class(ALIASES[family][key], text)
    if "." not in text:
        known = ", ".join(sorted(ALIASES[family]))
        elsewhere = [f for f in ALIASES if f != family and key in ALIASES[f]]
        hint = f" ({text!r} is a {elsewhere[0]} alias)" if elsewhere else ""
        raise CandidateError(
            f"unknown estimator {text!r} for {family}{hint}; use an alias ({known}) "
            f"or a dotted path such as 'sklearn.linear_model.Ridge'"
        )
    return _import_class(text, text)


def default_candidates(problem_type: str) -> list[CandidateSpec]:
    """The candidates a config gets when it names none, with small search spaces.

    The spaces are sized for a laptop with two cores: a few hundred trees at most, 20 epochs.

    Example:
        >>> [c.name for c in default_candidates("regression")]
        ['ridge', 'xgboost', 'lightgbm', 'torch-mlp']
    """
    family = problem_family(problem_type)
    boosting_rate = {"loguniform": [0.01, 0.3]}
    trees = {"randint": [100, 300]}
    xgboost = {
        "n_estimators": trees,
        "max_depth": {"randint": [3, 9]},
        "learning_rate": boosting_rate,
        "subsample": {"uniform": [0.7, 1.0]},
        "tree_method": "hist",
    }
    lightgbm = {
        "num_leaves": {"randint": [15, 64]},
        "learning_rate": boosting_rate,
        "n_estimators": trees,
        "verbose": -1,
    }
    mlp = {
        "hidden_sizes": {"choice": [[64], [64, 32], [128, 64]]},
        "lr": {"loguniform": [1e-4, 1e-2]},
        "epochs": 20,
    }
    if family == "classification":
        linear = ("logistic", {"max_iter": 1000, "C": {"loguniform": [1e-3, 10.0]}})
    else:
        linear = ("ridge", {"alpha": {"loguniform": [1e-3, 100.0]}})
    chosen = [linear, ("xgboost", xgboost), ("lightgbm", lightgbm), ("torch-mlp", mlp)]
    return [
        CandidateSpec(
            name=name, estimator=resolve_estimator(name, problem_type=family), params=params
        )
        for name, params in chosen
    ]


def _import_class(path: str, asked: str) -> type:
    module_name, _, attr = path.rpartition(".")
    top = module_name.split(".")[0]
    require(top, feature=f"the estimator {asked!r}")
    try:
        module = importlib.import_module(module_name)
        cls = getattr(module, attr)
    except (ImportError, AttributeError) as err:
        raise CandidateError(
            f"cannot find estimator class {path!r}: {err}; check the dotted path"
        ) from err
    return _check_estimator_class(cls, asked)


def _check_estimator_class(cls: Any, asked: str) -> type:
    if not isinstance(cls, type) or not all(
        callable(getattr(cls, method, None)) for method in ("fit", "get_params")
    ):
        raise CandidateError(
            f"{asked!r} is not a scikit-learn style estimator class (needs fit and get_params)"
        )
    return cls
