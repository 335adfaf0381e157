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
import os
import re
import site
import subprocess
import sys
import sysconfig
import urllib.parse
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from specweave_ray._fs import atomic_write_text

__all__ = ["FREEZE_DIR", "captured_environ", "code_dirty_state", "code_git", "config_hash", "dirty_state", "freeze", "git_state", "is_secret_name",
           "package_version", "redact_text", "redact_uri", "safe_environ", "source_hash", "write_freeze"]

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


def dirty_state(path: str | Path) -> str | None:
    """None in a clean tree (or outside git); in a dirty one, ``sha256:`` of the uncommitted edits
    under ``path`` (``git diff HEAD`` and the untracked files' contents), so two runs with
    different edits on the same commit are told apart."""
    if not git_state(path).get("dirty"):
        return None
    base = Path(path)
    h = hashlib.sha256()
    with contextlib.suppress(Exception):
        diff = subprocess.run(["git", "-C", str(base), "diff", "HEAD", "--binary", "--", "."],
                              capture_output=True, timeout=10)
        h.update(diff.stdout)
        new = subprocess.run(["git", "-C", str(base), "ls-files", "--others", "--exclude-standard", "-z", "--", "."],
                             capture_output=True, timeout=10)
        for rel in filter(None, new.stdout.decode("utf-8", "replace").split("\0")):
            h.update(rel.encode())
            with contextlib.suppress(OSError):
                h.update((base / rel).read_bytes())
    return "sha256:" + h.hexdigest()


@functools.lru_cache(maxsize=1)
def code_dirty_state() -> str | None:
    """:func:`dirty_state` of specweave_ray's own package folder, read once per process."""
    return dirty_state(_PACKAGE_DIR)


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


# -- secrets: nothing that looks like a credential reaches a record ------------------------------
_SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH", re.IGNORECASE)
_SECRET_QUERY = re.compile(r"(sig|signature|token|key|secret|password|credential|auth)", re.IGNORECASE)
_URI_IN_TEXT = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]+")
# what a record keeps of the environment: the variables that change how a run behaves
_CAPTURED_PREFIXES = ("SPECWEAVE_", "RAY_", "MLFLOW_", "CUDA_", "OMP_", "TUNE_", "AWS_", "PYTHONHASHSEED")


def is_secret_name(name: str) -> bool:
    """A variable name that looks like a credential (``*KEY*``, ``*TOKEN*``, ``*SECRET*``,
    ``*PASSWORD*``, case-blind; also ``*CREDENTIAL*`` and ``*AUTH*``)."""
    return bool(_SECRET_NAME.search(name))


def redact_uri(uri: str) -> str:
    """``https://user:pass@host/x`` → ``https://***@host/x``; credential-like query parameters
    (``?token=…``, ``X-Amz-Signature=…``) → ``***``. Anything that is not a URI is returned as is."""
    if "://" not in uri:
        return uri
    try:
        parts = urllib.parse.urlsplit(uri)
    except ValueError:
        return uri
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    query = parts.query
    if query:
        query = "&".join(f"{k}=***" if _SECRET_QUERY.search(k) else (f"{k}={v}" if v or "=" in item else k)
                         for item in query.split("&") for k, _, v in [item.partition("=")])
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc, query=query))


def redact_text(text: str) -> str:
    """Every URI inside ``text`` (an error message, a command line) through :func:`redact_uri`."""
    return _URI_IN_TEXT.sub(lambda m: redact_uri(m.group(0)), text)


def safe_environ(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` without credential-like names, and with credentials inside URI values redacted."""
    return {k: redact_text(v) for k, v in env.items() if not is_secret_name(k)}


def captured_environ() -> dict[str, str]:
    """The variables a record keeps (Ray, MLflow, CUDA, Tune, specweave settings), secrets dropped."""
    return safe_environ({k: v for k, v in sorted(os.environ.items()) if k.startswith(_CAPTURED_PREFIXES)})
