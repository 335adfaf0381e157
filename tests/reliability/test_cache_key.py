"""The cache key holds the code that really ran: the dirty tree's edits, a user estimator's and
preprocessor's source, and the staged-fitting settings (each edit reruns the trials)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from specweave_ray.search._cache import cache_key
from specweave_ray.workspace import _lineage


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # inspect.getsource reads the class through its module
    spec.loader.exec_module(mod)
    return mod


_BASE = {"candidate": "c", "fingerprint": "sha256:data", "params": {"C": 1.0}, "cv": "KFold(3)",
         "version": "1.0+gabc", "metric": "roc_auc"}


def test_dirty_state_tells_edits_apart(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "m.py").write_text("x = 1\n")
    _git(repo, "add", "m.py")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "first")
    assert _lineage.dirty_state(repo) is None  # clean: the commit says it all
    (repo / "m.py").write_text("x = 2\n")
    one = _lineage.dirty_state(repo)
    (repo / "m.py").write_text("x = 3\n")
    two = _lineage.dirty_state(repo)
    (repo / "new.py").write_text("y = 1\n")  # an untracked module may be what ran
    three = _lineage.dirty_state(repo)
    assert len({one, two, three}) == 3 and all(s.startswith("sha256:") for s in (one, two, three))
    assert _lineage.dirty_state(tmp_path / "nowhere") is None
    keys = {cache_key(estimator=LogisticRegression, code_dirty=s, **_BASE) for s in (None, one, two, three)}
    assert len(keys) == 4


def test_user_estimator_and_preprocessor_sources_and_stages_change_the_key(tmp_path):
    src = tmp_path / "user_model_v1.py"
    src.write_text("class Est:\n    pass\n\nclass Pre:\n    pass\n")
    v1 = _load(src, "user_model_v1")
    src2 = tmp_path / "user_model_v2.py"
    src2.write_text("class Est:\n    alpha = 2\n\nclass Pre:\n    scale = 2\n")
    v2 = _load(src2, "user_model_v2")
    base = cache_key(estimator=v1.Est, preprocessor=v1.Pre(), **_BASE)
    assert cache_key(estimator=v2.Est, preprocessor=v1.Pre(), **_BASE) != base   # estimator edited
    assert cache_key(estimator=v1.Est, preprocessor=v2.Pre(), **_BASE) != base   # preprocessor edited
    assert cache_key(estimator=v1.Est, preprocessor=v1.Pre(), stages=4, **_BASE) != base  # staged fitting
    assert cache_key(estimator=v1.Est, preprocessor=v1.Pre(), stages=4, **_BASE) != \
        cache_key(estimator=v1.Est, preprocessor=v1.Pre(), stages=2, **_BASE)
    assert cache_key(estimator=v1.Est, preprocessor=v1.Pre(), **_BASE) == base    # deterministic


def test_library_classes_keep_their_keys():
    # an installed library's class has no source hash (its version is in the freeze), and an
    # unstaged trial of a clean tree keys as before these fields existed
    plain = cache_key(estimator=LogisticRegression, **_BASE)
    assert cache_key(estimator=LogisticRegression, preprocessor=StandardScaler(), stages=1, **_BASE) == plain
