"""A small PyTorch multi-layer perceptron behind the scikit-learn estimator contract.

``TorchMLPClassifier`` and ``TorchMLPRegressor`` store their keyword arguments in ``__init__``,
learn everything in ``fit``/``partial_fit`` (attributes ending in ``_``), and so can be cloned,
tuned and trained in stages: ``fit(epochs=a)`` followed by ``partial_fit(epochs=b)`` gives the
same weights as ``fit(epochs=a + b)`` because the optimiser and the random stream (shuffling,
dropout) are carried over between calls.

Importing this module imports torch; ``import specweave_ray.candidates`` does not.
"""

from __future__ import annotations

import abc
from numbers import Integral
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from specweave_ray.candidates import _torch_core as core
from specweave_ray.exceptions import CandidateError

__all__ = ["TorchMLPBase", "TorchMLPClassifier", "TorchMLPRegressor"]


class TorchMLPBase(BaseEstimator, metaclass=abc.ABCMeta):
    """What the classifier and regressor share; not used directly."""

    _kind = "base"

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> TorchMLPBase:
        """Train from scratch for ``epochs`` epochs.

        Args:
            X: Numeric array or DataFrame, one row per sample.
            y: Labels (classifier) or targets (regressor).
            sample_weight: Optional weight per sample in the loss.

        Returns:
            self, fitted.
        """
        self._reset()
        return self.partial_fit(X, y, epochs=self.epochs, sample_weight=sample_weight)

    def partial_fit(
        self, X: Any, y: Any, *, epochs: int = 1, sample_weight: Any = None, classes: Any = None
    ) -> TorchMLPBase:
        """Continue training for ``epochs`` more epochs; the first call initialises the model.

        Args:
            X: Numeric array or DataFrame.
            y: Labels or targets.
            epochs: Epochs to train in this call.
            sample_weight: Optional weight per sample in the loss.
            classes: Classifier only: every label, when the first batch lacks some.

        Returns:
            self, trained ``epochs`` more epochs (see ``n_epochs_trained_``).
        """
        if not isinstance(epochs, (int, np.integer)) or isinstance(epochs, bool) or epochs < 0:
            raise CandidateError(f"epochs must be a non-negative integer, got {epochs!r}")
        first = not hasattr(self, "model_")
        features, y = core.validate(self, X, y, reset=first, regressor=self._kind == "regressor")
        if first:
            self._initialise(features, y, classes)
        elif not hasattr(self, "optimizer_"):  # loaded with from_state: weights, no optimiser
            self._start_optimiser(int(check_random_state(self.random_state).randint(0, 2**31 - 1)))
        target, weight = self._targets(y, len(features), sample_weight)
        with core.threads(self.num_threads):
            losses = core.train_epochs(
                self,
                core.scale(features, self.x_mean_, self.x_scale_),
                target,
                weight,
                epochs=int(epochs),
            )
        self.loss_curve_ = [*getattr(self, "loss_curve_", []), *losses]
        self.n_epochs_trained_ = getattr(self, "n_epochs_trained_", 0) + int(epochs)
        return self

    def to_state(self) -> dict[str, Any]:
        """Everything needed to rebuild the fitted model, for native (non-pickle) saving.

        Returns:
            ``{"state_dict": {name: CPU tensor}, ...}``; every other entry is JSON-able.
        """
        check_is_fitted(self, "model_")
        params = self.get_params()
        params["hidden_sizes"] = [int(size) for size in params["hidden_sizes"]]
        seed = params["random_state"]
        params["random_state"] = int(seed) if isinstance(seed, Integral) else None
        if isinstance(params.get("class_weight"), dict):
            params["class_weight"] = [
                [_plain(label), float(weight)] for label, weight in params["class_weight"].items()
            ]
        state = {
            "kind": self._kind,
            "params": params,
            "state_dict": {k: v.detach().cpu() for k, v in self.model_.state_dict().items()},
            "x_mean": self.x_mean_.tolist(),
            "x_scale": self.x_scale_.tolist(),
            "n_features_in": int(self.n_features_in_),
            "feature_names_in": (
                self.feature_names_in_.tolist() if hasattr(self, "feature_names_in_") else None
            ),
            "n_epochs_trained": int(self.n_epochs_trained_),
        }
        state.update(self._extra_state())
        return state

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> TorchMLPBase:
        """Rebuild a fitted model (on CPU) from :meth:`to_state`'s output.

        Raises:
            CandidateError: The state belongs to the other kind of MLP or is incomplete.
        """
        target = cls if cls is not TorchMLPBase else _KINDS.get(state.get("kind", ""))
        if target is None or state.get("kind") != target._kind:
            raise CandidateError(
                f"state of a torch MLP {state.get('kind')!r} cannot load into {cls.__name__}"
            )
        try:
            params = dict(state["params"])
            if isinstance(params.get("class_weight"), list):
                params["class_weight"] = {k: v for k, v in params["class_weight"]}
            params["hidden_sizes"] = tuple(params["hidden_sizes"])
            est = target(**params)
            est.x_mean_ = np.asarray(state["x_mean"], dtype=np.float32)
            est.x_scale_ = np.asarray(state["x_scale"], dtype=np.float32)
            est.n_features_in_ = int(state["n_features_in"])
            if state.get("feature_names_in") is not None:
                est.feature_names_in_ = np.asarray(state["feature_names_in"], dtype=object)
            est.n_epochs_trained_ = int(state["n_epochs_trained"])
            est._restore_extra(state)
            est.device_, est.device_warning_ = "cpu", None
            est.model_ = core.build_network(
                est.n_features_in_, est.hidden_sizes, est._n_outputs(), est.dropout
            )
            est.model_.load_state_dict(state["state_dict"])
        except (KeyError, TypeError, RuntimeError) as err:
            raise CandidateError(f"incomplete or mismatched torch MLP state: {err}") from err
        return est

    # -- private -------------------------------------------------------------------------
    def _reset(self) -> None:
        for name in [k for k in vars(self) if k.endswith("_") and not k.startswith("_")]:
            delattr(self, name)

    def _initialise(self, features: np.ndarray, y: np.ndarray, classes: Any) -> None:
        # n_features_in_ / feature_names_in_ were set by validate_data
        self.x_mean_ = features.mean(axis=0)
        scale = features.std(axis=0)
        self.x_scale_ = np.where(scale > 0, scale, 1.0).astype(np.float32)
        self._learn_targets(y, classes)
        self.device_, self.device_warning_ = core.resolve_device(self.device)
        seed = int(check_random_state(self.random_state).randint(0, 2**31 - 1))
        with torch.random.fork_rng(devices=[]):  # seed the init without touching global state
            torch.manual_seed(seed)
            network = core.build_network(
                self.n_features_in_, self.hidden_sizes, self._n_outputs(), self.dropout
            )
        self.model_ = network.to(self.device_)
        self._start_optimiser(seed + 1)

    def _start_optimiser(self, seed: int) -> None:
        self.optimizer_ = torch.optim.Adam(
            self.model_.parameters(), lr=self.lr, weight_decay=self.weight_decay
        )
        generator = torch.Generator(device=self.device_)
        generator.manual_seed(seed)
        self.rng_state_ = generator.get_state()

    def _predict_outputs(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "model_")
        features, _ = core.validate(self, X, reset=False)
        with core.threads(self.num_threads):
            return core.forward(self, core.scale(features, self.x_mean_, self.x_scale_))

    @abc.abstractmethod
    def _learn_targets(self, y: Any, classes: Any) -> None:
        """Learn what the targets are (classes or target scaling) from the first fit."""

    @abc.abstractmethod
    def _targets(self, y: Any, n_rows: int, sample_weight: Any) -> tuple[Any, Any]:
        """The training targets as tensors (and per-row weights) in the network's output space."""

    @abc.abstractmethod
    def _n_outputs(self) -> int:
        """Width of the network's output layer."""

    @abc.abstractmethod
    def _extra_state(self) -> dict[str, Any]:
        """Subclass state that the native save must keep (classes or target scaling)."""

    @abc.abstractmethod
    def _restore_extra(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`_extra_state` saved."""


class TorchMLPClassifier(ClassifierMixin, TorchMLPBase):
    """Multi-layer perceptron classifier (softmax over any labels, strings included).

    Args:
        hidden_sizes: Width of each hidden layer.
        dropout: Dropout probability after each hidden layer.
        lr: Adam learning rate.
        weight_decay: Adam weight decay.
        epochs: Epochs ``fit`` trains for (the budget of staged training).
        batch_size: Mini-batch size.
        class_weight: ``None``, ``"balanced"`` or a ``{label: weight}`` dict.
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``. CUDA
            asked for but unusable falls back to CPU and sets ``device_warning_``.
        num_threads: torch threads during fit/predict (restored afterwards); ``None`` leaves them.
        random_state: Seed of initialisation, shuffling and dropout; 0 by default, so a fit is
            repeatable (as XGBoost's and LightGBM's are by default); ``None`` draws a fresh one.

    Attributes:
        classes_, n_features_in_, x_mean_, x_scale_, model_, optimizer_, device_,
        device_warning_, n_epochs_trained_, loss_curve_.

    Example:
        >>> from sklearn.datasets import make_classification
        >>> X, y = make_classification(n_samples=200, random_state=0)
        >>> clf = TorchMLPClassifier(epochs=5, random_state=0, device="cpu").fit(X, y)
        >>> clf.predict_proba(X).shape
        (200, 2)
    """

    _kind = "classifier"

    def __init__(
        self,
        *,
        hidden_sizes: tuple[int, ...] = (64, 32),
        dropout: float = 0.0,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        epochs: int = 20,
        batch_size: int = 256,
        class_weight: str | dict[Any, float] | None = None,
        device: str = "auto",
        num_threads: int | None = None,
        random_state: int | None = 0,
    ) -> None:
        self.hidden_sizes = hidden_sizes
        self.dropout = dropout
        self.lr = lr
        self.weight_decay = weight_decay
        self.epochs = epochs
        self.batch_size = batch_size
        self.class_weight = class_weight
        self.device = device
        self.num_threads = num_threads
        self.random_state = random_state

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, one column per entry of ``classes_``."""
        logits = torch.from_numpy(self._predict_outputs(X))
        return torch.softmax(logits, dim=1).numpy().astype(np.float64)

    def predict(self, X: Any) -> np.ndarray:
        """The most probable label of each row."""
        outputs = self._predict_outputs(X)  # checks fitted before classes_ is read
        return self.classes_[np.argmax(outputs, axis=1)]

    def _learn_targets(self, y: Any, classes: Any) -> None:
        labels = np.asarray(y)
        self.classes_ = core.unique_labels(labels if classes is None else np.asarray(classes))
        self.class_weight_ = core.class_weights(self.class_weight, self.classes_, labels)

    def _targets(self, y: Any, n_rows: int, sample_weight: Any) -> tuple[Any, Any]:
        labels = np.asarray(y)
        codes = core.encode(labels, self.classes_, n_rows)
        weight = core.sample_weights(sample_weight, n_rows) * self.class_weight_[codes]
        return torch.from_numpy(codes), torch.from_numpy(weight)

    def _n_outputs(self) -> int:
        return len(self.classes_)

    def _extra_state(self) -> dict[str, Any]:
        return {"classes": self.classes_.tolist(), "class_weight": self.class_weight_.tolist()}

    def _restore_extra(self, state: dict[str, Any]) -> None:
        self.classes_ = np.asarray(state["classes"])
        self.class_weight_ = np.asarray(state["class_weight"], dtype=np.float32)


class TorchMLPRegressor(RegressorMixin, TorchMLPBase):
    """Multi-layer perceptron regressor; targets are standardised internally.

    Takes the same arguments as :class:`TorchMLPClassifier` except ``class_weight``.

    Example:
        >>> from sklearn.datasets import make_regression
        >>> X, y = make_regression(n_samples=200, n_features=5, random_state=0)
        >>> TorchMLPRegressor(epochs=5, random_state=0).fit(X, y).predict(X).shape
        (200,)
    """

    _kind = "regressor"

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True  # a 2-D y trains one output per column
        return tags

    def __init__(
        self,
        *,
        hidden_sizes: tuple[int, ...] = (64, 32),
        dropout: float = 0.0,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        epochs: int = 20,
        batch_size: int = 256,
        device: str = "auto",
        num_threads: int | None = None,
        random_state: int | None = 0,
    ) -> None:
        self.hidden_sizes = hidden_sizes
        self.dropout = dropout
        self.lr = lr
        self.weight_decay = weight_decay
        self.epochs = epochs
        self.batch_size = batch_size
        self.device = device
        self.num_threads = num_threads
        self.random_state = random_state

    def predict(self, X: Any) -> np.ndarray:
        """Predicted targets, shape ``(n,)`` (or ``(n, k)`` when fitted on ``k`` targets)."""
        outputs = self._predict_outputs(X) * self.y_scale_ + self.y_mean_
        return (
            outputs[:, 0].astype(np.float64)
            if self.n_outputs_ == 1 and self.y_1d_
            else (outputs.astype(np.float64))
        )

    def _learn_targets(self, y: Any, classes: Any) -> None:
        target = core.as_targets(y)
        self.y_1d_ = np.asarray(y).ndim == 1
        self.n_outputs_ = target.shape[1]
        self.y_mean_ = target.mean(axis=0)
        scale = target.std(axis=0)
        self.y_scale_ = np.where(scale > 0, scale, 1.0)

    def _targets(self, y: Any, n_rows: int, sample_weight: Any) -> tuple[Any, Any]:
        target = core.as_targets(y)
        if target.shape != (n_rows, self.n_outputs_):
            raise CandidateError(
                f"y must have shape ({n_rows}, {self.n_outputs_}) or ({n_rows},), got {target.shape}"
            )
        scaled = ((target - self.y_mean_) / self.y_scale_).astype(np.float32)
        return torch.from_numpy(scaled), torch.from_numpy(
            core.sample_weights(sample_weight, n_rows)
        )

    def _n_outputs(self) -> int:
        return int(self.n_outputs_)

    def _extra_state(self) -> dict[str, Any]:
        return {
            "y_mean": self.y_mean_.tolist(),
            "y_scale": self.y_scale_.tolist(),
            "y_1d": bool(self.y_1d_),
        }

    def _restore_extra(self, state: dict[str, Any]) -> None:
        self.y_mean_ = np.asarray(state["y_mean"], dtype=np.float64)
        self.y_scale_ = np.asarray(state["y_scale"], dtype=np.float64)
        self.n_outputs_ = len(self.y_mean_)
        self.y_1d_ = bool(state["y_1d"])


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python value JSON can hold."""
    return value.item() if isinstance(value, np.generic) else value


_KINDS: dict[str, type[TorchMLPBase]] = {
    "classifier": TorchMLPClassifier,
    "regressor": TorchMLPRegressor,
}
