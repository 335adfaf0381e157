"""Lineage in records and packages: the code that ran (commit, dirty tree), a user class's
source hash, the config hash, the seeds, the environment freeze; ``reproduce`` reruns a record."""

from __future__ import annotations

import hashlib
import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sklearn.linear_model import LogisticRegression

from specweave_ray.workspace import _lineage
from specweave_ray.workspace.records import open_experiment, read_record, run_lineage


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    path.mkdir()
    _git(path, "init", "-q")
    (path / "model.py").write_text("x = 1\n")
    _git(path, "add", "model.py")
    _git(path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "first")
    return path


def test_git_state_names_the_commit_and_flips_dirty(repo: Path, tmp_path: Path) -> None:
    head = _git(repo, "rev-parse", "HEAD").strip()
    assert _lineage.git_state(repo) == {"commit": head, "dirty": False}
    (repo / "model.py").write_text("x = 2\n")
    assert _lineage.git_state(repo) == {"commit": head, "dirty": True}
    _git(repo, "checkout", "--", "model.py")
    (repo / "new.py").write_text("y = 1\n")  # an untracked module may be what ran
    assert _lineage.git_state(repo)["dirty"] is True
    outside = tmp_path / "plain"
    outside.mkdir()
    assert _lineage.git_state(outside) == {"commit": None, "dirty": None}  # never fails


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # inspect finds a class's file through its module
    spec.loader.exec_module(module)
    return module


def test_source_hash_follows_the_user_class_source(tmp_path: Path) -> None:
    src = tmp_path / "user_est.py"
    body = textwrap.dedent("""
        from sklearn.base import BaseEstimator

        class MyModel(BaseEstimator):
            def __init__(self, a=1):
                self.a = a

            def fit(self, X, y):
                return self{}
    """)
    src.write_text(body.format(""))
    first = _lineage.source_hash(_load(src, "user_est_a").MyModel)
    assert first is not None and first.startswith("sha256:")
    assert _lineage.source_hash(_load(src, "user_est_b").MyModel()) == first  # an instance: its class
    src.write_text(body.format("  # changed"))
    assert _lineage.source_hash(_load(src, "user_est_c").MyModel) not in (None, first)
    # a library's class is named by its version in the environment freeze, not hashed
    assert _lineage.source_hash(LogisticRegression) is None
    assert _lineage.source_hash(int) is None


def test_config_hash_ignores_key_order() -> None:
    assert _lineage.config_hash({"a": 1, "b": {"c": 2}}) == _lineage.config_hash({"b": {"c": 2}, "a": 1})
    assert _lineage.config_hash({"a": 1}) != _lineage.config_hash({"a": 2})


def test_every_record_names_its_lineage(increment) -> None:
    git = _lineage.git_state(Path(_lineage.__file__).parent)
    with run_lineage(config_hash="sha256:abc", seed=7):
        exp = open_experiment("eda", increment=increment, mirror=False,
                              meta={"data_fingerprint": "sha256:data"})
        exp.close()
    exp2 = open_experiment("other", increment=increment, mirror=False, meta={"lineage": {"seed": 3}})
    exp2.close()
    lin = read_record(exp.path).meta["lineage"]
    assert lin["git_commit"] == git["commit"] and lin["git_dirty"] == git["dirty"]
    assert lin["config_hash"] == "sha256:abc" and lin["seed"] == 7 and lin["data_fingerprint"] == "sha256:data"
    assert set(lin) >= {"package_version", "estimator_source_sha256", "preprocessor_source_sha256"}
    lin2 = read_record(exp2.path).meta["lineage"]
    assert lin2["seed"] == 3 and lin2["config_hash"] is None  # outside the run's block


def test_environment_freeze_is_saved_once_and_referenced(increment) -> None:
    first = open_experiment("a", increment=increment, mirror=False)
    first.close()
    second = open_experiment("b", increment=increment, mirror=False)
    second.close()
    lin = read_record(first.path).meta["lineage"]
    freeze = increment.path / lin["environment_freeze"]
    assert read_record(second.path).meta["lineage"]["environment_freeze"] == lin["environment_freeze"]
    assert len(list((increment.experiments_dir / _lineage.FREEZE_DIR).iterdir())) == 1  # once per environment
    text = freeze.read_text()
    assert "sha256:" + hashlib.sha256(text.encode()).hexdigest() == lin["environment_sha256"]
    lines = [ln for ln in text.splitlines() if not ln.startswith("#")]
    names = [ln.split("==")[0].lower() for ln in lines]
    assert names == sorted(names) and any(ln.startswith("scikit-learn==") for ln in lines)
