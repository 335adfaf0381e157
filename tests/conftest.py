"""Shared fixtures: a deterministic seed and a throw-away increments root."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest


def pytest_configure(config: pytest.Config) -> None:
    """Packages are signed (deploy/_signing.py): the suite's key lives in a throw-away folder, not
    in the user's ~/.config, and Ray workers inherit the variable from this process."""
    if not os.environ.get("SPECWEAVE_SIGNING_KEY"):
        os.environ["SPECWEAVE_SIGNING_KEY_FILE"] = str(Path(tempfile.mkdtemp(prefix="specweave-key-")) / "signing.key")


@pytest.fixture
def seed() -> int:
    """Deterministic by default; SPECWEAVE_TEST_SEED=N reruns the suite with another seed."""
    return int(os.environ.get("SPECWEAVE_TEST_SEED", "0"))


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty increments root, named by ``SPECWEAVE_ROOT``; MLflow falls back to its sqlite store."""
    path = tmp_path / "increments"
    path.mkdir()
    monkeypatch.setenv("SPECWEAVE_ROOT", str(path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("SPECWEAVE_MLFLOW", raising=False)
    return path


@pytest.fixture
def increment(root: Path):
    """One classification increment, ``0001-fraud-detection``, under :func:`root`."""
    from specweave_ray.workspace.increment import Increment

    return Increment.create("Fraud Detection", problem_type="classification", root=root)
