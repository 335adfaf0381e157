"""The values the evaluation modules pass each other: validated inputs and a threshold choice."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

__all__ = ["Prepared", "ThresholdChoice"]


@dataclass(frozen=True)
class Prepared:
    """Validated inputs: ``kind`` is binary, multiclass or continuous."""

    kind: str
    y: np.ndarray
    proba: np.ndarray | None = None
    labels: np.ndarray | None = None
    pred: np.ndarray | None = None
    classes: np.ndarray | None = None  # the labels macro averages run over


@dataclass(frozen=True)
class ThresholdChoice:
    """The chosen binary decision threshold (predict positive when ``proba >= threshold``).

    Attributes:
        threshold, precision, recall, f1: the choice and its metrics on the tuning data.
        met: whether the threshold targets are met on the tuning data (True when there are none).
        reason: one sentence on how it was chosen, naming an unreachable target.
        curve: every candidate threshold, columns threshold, precision, recall, f1,
            flagged_rate (share of rows predicted positive) and, with several threshold
            targets, min_slack (the smallest relative slack over them).
        slack: the smallest relative slack over the threshold targets at the chosen threshold
            (``0.1``: every target met with 10% to spare); None with fewer than two.
    """

    threshold: float
    precision: float
    recall: float
    f1: float
    met: bool
    reason: str
    curve: pd.DataFrame = field(repr=False, compare=False)
    slack: float | None = None
