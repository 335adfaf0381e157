"""Private helpers of :mod:`specweave_ray.candidates.torch_mlp`: data checks, the network,
the training loop and device/thread handling."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from specweave_ray.exceptions import CandidateError


class SeededDropout(nn.Module):
    """Dropout that draws its mask from a given generator, so staged training is repeatable.

    ``nn.Dropout`` uses torch's global random stream, which other code in the process moves.
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p
        self.generator: torch.Generator | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        noise = torch.rand(x.shape, generator=self.generator, device=x.device)
        return x * (noise >= self.p) / (1.0 - self.p)


def build_network(
    n_inputs: int, hidden_sizes: Sequence[int], n_outputs: int, dropout: float
) -> nn.Sequential:
    """Linear → ReLU (→ dropout) per hidden layer, then a linear output layer."""
    if isinstance(hidden_sizes, int):
        hidden_sizes = (hidden_sizes,)
    sizes = [int(size) for size in hidden_sizes]
    if any(size < 1 for size in sizes):
        raise CandidateError(f"hidden_sizes must be positive integers, got {list(hidden_sizes)}")
    if not 0.0 <= float(dropout) < 1.0:
        raise CandidateError(f"dropout must be in [0, 1), got {dropout!r}")
    layers: list[nn.Module] = []
    previous = n_inputs
    for size in sizes:
        layers += [nn.Linear(previous, size), nn.ReLU()]
        if dropout > 0:
            layers.append(SeededDropout(float(dropout)))
        previous = size
    layers.append(nn.Linear(previous, n_outputs))
    return nn.Sequential(*layers)


def resolve_device(device: str) -> tuple[str, str | None]:
    """The torch device to use and a warning when CUDA was asked for but is not usable."""
    name = str(device).strip().lower()
    if name == "auto":
        return ("cuda" if torch.cuda.is_available() else "cpu"), None
    if name == "cpu":
        return "cpu", None
    if name == "cuda" or name.startswith("cuda:"):
        if torch.cuda.is_available():
            return name, None
        return "cpu", (
            f"device={device!r} was asked for but torch sees no usable CUDA device "
            f"(torch {torch.__version__}); the MLP runs on CPU"
        )
    raise CandidateError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}")


@contextlib.contextmanager
def threads(num_threads: int | None) -> Iterator[None]:
    """Use ``num_threads`` torch threads inside the block and restore the previous count."""
    if num_threads is None:
        yield
        return
    if int(num_threads) < 1:
        raise CandidateError(f"num_threads must be a positive integer or None, got {num_threads!r}")
    previous = torch.get_num_threads()
    torch.set_num_threads(int(num_threads))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def validate(
    est: Any, X: Any, y: Any = None, *, reset: bool, regressor: bool = False
) -> tuple[np.ndarray, Any]:
    """scikit-learn's checks of X (and y): 2-D, finite, dense, non-empty, same features as fit.

    Errors keep scikit-learn's messages (its estimator checks match on them) as a
    :class:`CandidateError`, which is also a ``ValueError``.
    """
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import validate_data

    if hasattr(X, "columns") and hasattr(X, "dtypes"):
        bad = [str(c) for c, dtype in X.dtypes.items() if dtype.kind not in "biuf"]
        if bad:
            raise CandidateError(
                f"the torch MLP needs numeric columns; encode these first: {', '.join(bad)}"
            )
    try:
        if y is None and not reset:
            return validate_data(est, X, reset=False, dtype=np.float32), None
        features, target = validate_data(
            est, X, y, reset=reset, dtype=np.float32, multi_output=regressor, y_numeric=regressor
        )
        if not regressor:
            check_classification_targets(target)
    except (TypeError, ValueError) as err:
        raise CandidateError(f"{type(est).__name__}: {err}") from err
    return features, target


def scale(features: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Standardise with the statistics learned in the first fit."""
    return ((features - mean) / std).astype(np.float32)


def unique_labels(labels: np.ndarray) -> np.ndarray:
    try:
        return np.unique(labels)
    except TypeError as err:
        raise CandidateError(f"labels cannot be sorted (mixed types?): {err}") from err


def encode(labels: np.ndarray, classes: np.ndarray, n_rows: int) -> np.ndarray:
    """Label → column index of ``classes``; unseen labels are an error."""
    if len(labels) != n_rows:
        raise CandidateError(f"y has {len(labels)} labels for {n_rows} rows of X")
    codes = np.searchsorted(classes, labels)
    codes = np.clip(codes, 0, len(classes) - 1)
    unseen = classes[codes] != labels
    if unseen.any():
        raise CandidateError(
            f"labels {np.unique(labels[unseen]).tolist()[:5]} were not seen when the model was "
            f"initialised (classes {classes.tolist()}); pass classes= to the first partial_fit"
        )
    return codes.astype(np.int64)


def class_weights(option: Any, classes: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Weight per class: ones, "balanced" (n / (k * count)), or a {label: weight} dict."""
    if option is None:
        return np.ones(len(classes), dtype=np.float32)
    if isinstance(option, str) and option == "balanced":
        counts = np.array([(labels == c).sum() for c in classes], dtype=np.float64)
        weights = len(labels) / (len(classes) * np.maximum(counts, 1.0))
        return weights.astype(np.float32)
    if isinstance(option, dict):
        return np.array([float(option.get(c, 1.0)) for c in classes], dtype=np.float32)
    raise CandidateError(f"class_weight must be None, 'balanced' or a dict, got {option!r}")


def as_targets(y: np.ndarray) -> np.ndarray:
    """Validated regression targets as a 2-D float64 array."""
    target = np.asarray(y, dtype=np.float64)
    return target.reshape(-1, 1) if target.ndim == 1 else target


def sample_weights(sample_weight: Any, n_rows: int) -> np.ndarray:
    if sample_weight is None:
        return np.ones(n_rows, dtype=np.float32)
    weight = np.asarray(sample_weight, dtype=np.float32).reshape(-1)
    if weight.shape != (n_rows,) or (weight < 0).any() or not np.isfinite(weight).all():
        raise CandidateError(f"sample_weight must be {n_rows} finite non-negative numbers")
    if weight.sum() <= 0:
        raise CandidateError("sample_weight sums to zero: there is nothing to learn from")
    return weight


def train_epochs(
    est: Any, features: np.ndarray, target: torch.Tensor, weight: torch.Tensor, *, epochs: int
) -> list[float]:
    """Run ``epochs`` epochs of mini-batch Adam on ``est.model_``; returns the epoch losses."""
    if epochs == 0:
        return []
    if int(est.batch_size) < 1:
        raise CandidateError(f"batch_size must be a positive integer, got {est.batch_size!r}")
    device = est.device_
    x = torch.from_numpy(features).to(device)
    t = target.to(device)
    w = weight.to(device=device, dtype=torch.float32)
    classify = t.dtype == torch.int64
    generator = torch.Generator(device=device)
    generator.set_state(est.rng_state_)
    for module in est.model_.modules():
        if isinstance(module, SeededDropout):
            module.generator = generator
    est.model_.train()
    losses: list[float] = []
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator, device=device)
        total, seen = 0.0, 0.0
        for start in range(0, len(x), int(est.batch_size)):
            index = order[start : start + int(est.batch_size)]
            out = est.model_(x[index])
            if classify:
                per_sample = nn.functional.cross_entropy(out, t[index], reduction="none")
            else:
                per_sample = ((out - t[index]) ** 2).mean(dim=1)
            batch_weight = w[index]
            norm = batch_weight.sum().clamp_min(1e-12)
            loss = (per_sample * batch_weight).sum() / norm
            est.optimizer_.zero_grad()
            loss.backward()
            est.optimizer_.step()
            total += float(loss.detach()) * float(norm)
            seen += float(norm)
        losses.append(total / max(seen, 1e-12))
    for module in est.model_.modules():  # generators are not picklable; keep only the state
        if isinstance(module, SeededDropout):
            module.generator = None
    est.rng_state_ = generator.get_state()
    est.model_.eval()
    return losses


def forward(est: Any, features: np.ndarray, *, batch_size: int = 8192) -> np.ndarray:
    """Raw network outputs for standardised features, computed in batches without grad."""
    model = est.model_
    device = next(model.parameters()).device
    model.eval()
    outputs = []
    with torch.no_grad():
        for start in range(0, len(features), batch_size):
            chunk = torch.from_numpy(features[start : start + batch_size]).to(device)
            outputs.append(model(chunk).cpu().numpy())
    if not outputs:
        return np.zeros((0, model[-1].out_features), dtype=np.float32)
    return np.concatenate(outputs)
