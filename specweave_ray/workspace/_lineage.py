"""Where a record came from: the code that ran (package version, git commit, dirty tree), a hash
of a user-supplied class's source, a hash of the config, and the environment freeze.

Every field degrades to ``None`` instead of failing: no git, a class without source, a package
installed from a wheel — a record is still written, it just names less.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import inspect
import json
import site
import subprocess
import sys
import sysconfig
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from specweave_ray._fs import atomic_write_text

__all__ = ["FREEZE_DIR", "code_git", "config_hash", "freeze", "git_state", "package_version",
           "source_hash", "write_freeze"]

# the specweave_ray package folder: git is asked about the repository of the code that ran,
# not about the user's working directory
_PACKAGE_DIR = Path(__file__).resolve().parents[1]
FREEZE_DIR = "environments"   # <increment>/experiments/environments/<sha256 prefix>.txt


def git_state(path: str | Path) -> dict[str, Any]:
    """``{"commit", "dirty"}`` of the git work tree holding ``path``; both None outside one
    (or without git). ``dirty`` counts untracked files too: an untracked module may be what ran."""
    def git(*args: str) -> str | None:
        with contextlib.suppress(Exception):
            out = subprocess.run(["git", "-C", str(path), *args], capture_output=True, text=True, timeout=5)
            if out.returncode == 0:
                return out.stdout
        return None

    head = git("rev-parse", "HEAD")
    commit = head.strip() or None if head is not None else None
    status = git("status", "--porcelain") if commit else None
    return {"commit": commit, "dirty": bool(status.strip()) if status is not None else None}


@functools.lru_cache(maxsize=1)
def code_git() -> dict[str, Any]:
    """:func:`git_state` of specweave_ray's own repository, read once per process (a run)."""
    return git_state(_PACKAGE_DIR)


def package_version() -> str | None:
    with contextlib.suppress(metadata.PackageNotFoundError):
        return metadata.version("specweave-ray")
    return None


def _library_dirs() -> tuple[str, ...]:
    dirs = {sysconfig.get_paths().get(k) for k in ("purelib", "platlib", "stdlib", "platstdlib")}
    with contextlib.suppress(Exception):
        dirs.update(site.getsitepackages())
    with contextlib.suppress(Exception):
        dirs.add(site.getusersitepackages())
    return tuple(str(Path(d).resolve()) for d in dirs if d)


def source_hash(obj: Any) -> str | None:
    """``sha256:`` of the source text of ``obj``'s class (``obj`` may be the class), when that
    class is the user's: None for a class from an installed library or the standard library
    (its version is in the environment freeze) and when the source can't be read (a class
    typed into a REPL)."""
    return _class_source_hash(obj if isinstance(obj, type) else type(obj))


@functools.lru_cache(maxsize=256)
def _class_source_hash(cls: type) -> str | None:
    try:
        where = inspect.getsourcefile(cls)
        text = inspect.getsource(cls)
    except (OSError, TypeError):
        return None
    if where is None:
        return None
    resolved = str(Path(where).resolve())
    if any(resolved.startswith(d + "/") or resolved.startswith(d + "\\") for d in _library_dirs()):
        return None
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def config_hash(config: Mapping[str, Any]) -> str:
    """``sha256:`` of a config as canonical JSON (sorted keys), so key order does not count."""
    text = json.dumps(config, sort_keys=True, default=str, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


@functools.lru_cache(maxsize=1)
def freeze() -> str:
    """Every installed distribution as ``name==version``, sorted, plus the Python line: the
    environment a run ran in (read once per process)."""
    names = {}
    for dist in metadata.distributions():
        name = dist.metadata.get("Name")
        if name:
            names[name.lower()] = f"{name}=={dist.version}"
    lines = [f"# python {sys.version.split()[0]} on {sys.platform}", *(names[k] for k in sorted(names))]
    return "\n".join(lines) + "\n"


def write_freeze(experiments_dir: Path) -> dict[str, str]:
    """Save the freeze once in the increment (content-addressed: a run in the same environment
    writes nothing) and return what a record references it by."""
    text = freeze()
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    rel = f"{FREEZE_DIR}/{digest[:16]}.txt"
    path = experiments_dir / rel
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, text)
    return {"environment_sha256": f"sha256:{digest}", "environment_freeze": f"experiments/{rel}"}
