"""The increment folder: create, number, locate, paths, and ``tasks.md`` ticking.

An increment is ``<root>/NNNN-slug/`` (see DESIGN.md). The root is, in order of precedence: an
explicit ``root`` argument (the CLI's ``--root``), ``SPECWEAVE_ROOT``, the root a config names,
and ``.specweave/increments`` under the working directory.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from specweave_ray._fs import (
    atomic_write_json,
    atomic_write_text,
    folder_lock,
    make_next_dir,
    read_json,
)
from specweave_ray.exceptions import IncrementError, IncrementNotFoundError
from specweave_ray.spec._grammar import load_spec, render_increment_docs
from specweave_ray.workspace import storage

if TYPE_CHECKING:
    from specweave_ray.spec._grammar import Spec, Target

DEFAULT_ROOT = Path(".specweave") / "increments"
SUBFOLDERS = ("experiments", "data", "models", "notebooks")
METADATA_NAME = "metadata.json"   # {"parent": "<increment id>"} when it follows another
_ID_RE = re.compile(r"^(\d{4})-([a-z0-9]+(?:-[a-z0-9]+)*)$")
_TASK_RE = re.compile(r"^(\s*)- \[( |x|X)\] (T-\d{3})\b(.*)$")
_SKIP_RE = re.compile(r"\bskipped\s*[:(]\s*([^)]+)\)?", re.IGNORECASE)


def slugify(name: str) -> str:
    """Lower-case ``name`` and keep ``[a-z0-9-]`` only (accents folded, runs of others → ``-``).

    >>> slugify("Fraud Detection (v2)!")
    'fraud-detection-v2'
    """
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", "-", folded.lower()).strip("-")[:60].strip("-")


def resolve_root(root: str | os.PathLike[str] | None = None, *, config_root: str | os.PathLike[str] | None = None) -> Path:
    """The increments root: ``root`` > ``$SPECWEAVE_ROOT`` > ``config_root`` > the default.

    A URI (``s3://bucket/prefix``, ``gs://…``, ``hdfs://…``) is mounted (:mod:`.storage`) and its
    local mirror returned; everything written there reaches the URI through ``pyarrow.fs``.
    """
    chosen = root or os.environ.get("SPECWEAVE_ROOT") or config_root or DEFAULT_ROOT
    if storage.is_uri(chosen):
        return storage.mount(str(chosen))
    return Path(storage.local_path(chosen)).expanduser().resolve()


@dataclass(frozen=True)
class Task:
    """One ``- [ ] T-00N: title`` line of ``tasks.md``."""

    id: str
    title: str
    done: bool

    @property
    def skip_reason(self) -> str | None:
        """The reason of an open task written as skipped (``- [ ] T-009: A/B test plan — skipped:
        no live traffic yet``), which ``validate`` accepts in place of a tick."""
        match = _SKIP_RE.search(self.title)
        return match[1].strip() if match and match[1].strip() else None


@dataclass(frozen=True)
class Increment:
    """A handle on one increment folder; every path the other stages need hangs off it."""

    path: Path

    @property
    def id(self) -> str:
        return self.path.name

    @property
    def number(self) -> int:
        return int(self.id[:4])

    @property
    def slug(self) -> str:
        return self.id[5:]

    @property
    def root(self) -> Path:
        return self.path.parent

    spec_path = property(lambda self: self.path / "spec.md")
    tasks_path = property(lambda self: self.path / "tasks.md")
    experiments_dir = property(lambda self: self.path / "experiments")
    data_dir = property(lambda self: self.path / "data")
    models_dir = property(lambda self: self.path / "models")
    notebooks_dir = property(lambda self: self.path / "notebooks")

    # -- creation and lookup -------------------------------------------------------------
    @classmethod
    def create(
        cls,
        title: str,
        *,
        problem_type: str,
        root: str | os.PathLike[str] | None = None,
        exist_ok: bool = False,
        targets: Sequence[Target] | None = None,
        spec_text: str | None = None,
        parent: str | int | None = None,
    ) -> Increment:
        """Create ``<root>/NNNN-<slug>/`` with its documents and empty stage folders.

        Args:
            title: Human name, e.g. ``"Fraud Detection"``; slugified for the folder name.
            problem_type: a registered problem type or alias (``specweave_ray.problems.names()``).
            root: Increments root (see :func:`resolve_root`).
            exist_ok: Return the existing increment with this slug instead of refusing.
            targets: Success criteria to write instead of the template's defaults.
            spec_text: A whole ``spec.md`` to copy in (e.g. a worked example's spec).
            parent: The increment this one follows (its id or number under the same root),
                saved as ``parent`` in ``metadata.json``: its best model is scored on this
                one's test data, its production model is the A/B control.

        Raises:
            IncrementError: the title slugs to nothing, or the slug exists and not ``exist_ok``.
            IncrementNotFoundError: no increment ``parent`` under the root.
        """

        slug = slugify(title)
        if not slug:
            raise IncrementError(
                f"increment name {title!r} has no letters or digits to make a folder name from; "
                "use a name such as 'Fraud Detection'"
            )
        # rendering checks the problem type and targets: nothing is written for a bad one
        docs = render_increment_docs(title, problem_type, increment_id=f"NNNN-{slug}", targets=targets)
        base = resolve_root(root)
        parent_id = cls.open(parent, root=base).id if parent is not None else None  # checked first
        base.mkdir(parents=True, exist_ok=True)
        with folder_lock(base):
            existing = [p for p in base.iterdir() if (m := _ID_RE.match(p.name)) and m.group(2) == slug]
            if existing:
                if exist_ok:
                    return cls(existing[0])
                raise IncrementError(
                    f"increment '{existing[0].name}' already exists under {storage.display(base)}; "
                    "pass --exist-ok to reuse it or choose another name"
                )
            # claimed under the same lock as the check, so two processes creating the same
            # name at once cannot both get past it
            path = make_next_dir(base, pattern=_ID_RE, make_name=lambda n: f"{n:04d}-{slug}")
        inc = cls(path)
        for sub in SUBFOLDERS:
            (path / sub).mkdir(exist_ok=True)
        for name, text in docs.items():
            text = text.replace(f"NNNN-{slug}", inc.id)
            if name == "spec.md" and spec_text is not None:
                text = spec_text
            atomic_write_text(path / name, text)
        if parent_id is not None:
            atomic_write_json(path / METADATA_NAME, {"parent": parent_id})
        return inc

    def parent(self) -> Increment | None:
        """The increment this one follows: ``parent`` of ``metadata.json``; None without one.

        Raises:
            IncrementNotFoundError: the named parent is no longer under the root.
        """
        meta = read_json(self.path / METADATA_NAME) or {}
        ref = meta.get("parent")
        return Increment.open(ref, root=self.root) if ref else None

    @classmethod
    def open(cls, ref: str | int | os.PathLike[str], *, root: str | os.PathLike[str] | None = None) -> Increment:
        """Find an increment by number (``1``/``"0001"``), id, slug or folder path.

        Raises:
            IncrementError: ``ref`` is a path that escapes the root.
            IncrementNotFoundError: nothing matches.
        """
        base = resolve_root(root)
        if isinstance(ref, os.PathLike) or (isinstance(ref, str) and ("/" in ref or os.sep in ref)):
            path = Path(ref).expanduser()
            if path.is_dir() and _ID_RE.match(path.resolve().name):
                return cls(path.resolve())  # an existing increment folder, named explicitly
            # any other path must name a folder directly under the root (relative paths: to it)
            full = (base / path).resolve()
            if full.parent != base:
                _refuse_outside(base, str(ref))
            ref = full.name
        text = str(ref).strip()
        _check_inside(base, text)
        candidates = list_increments(base)
        if text.isdigit():
            hits = [i for i in candidates if i.number == int(text)]
        else:
            hits = [i for i in candidates if text in (i.id, i.slug)] or [
                i for i in candidates if i.slug == slugify(text)
            ]
        if len(hits) == 1:
            storage.pull(hits[0].path)  # a URI root's increment: fetch its results too
            return hits[0]
        known = ", ".join(i.id for i in candidates) or "none"
        where = storage.display(base)
        if not hits:
            raise IncrementNotFoundError(f"no increment '{text}' under {where} (known: {known})")
        raise IncrementNotFoundError(f"'{text}' matches several increments under {where}: {known}")

    # -- documents -----------------------------------------------------------------------
    def spec(self) -> Spec:
        return load_spec(self.spec_path)

    def tasks(self) -> list[Task]:
        """The tasks of ``tasks.md`` in file order."""
        if not self.tasks_path.exists():
            return []
        out = []
        for line in self.tasks_path.read_text(encoding="utf-8").splitlines():
            if m := _TASK_RE.match(line):
                out.append(Task(m.group(3), m.group(4).lstrip(": ").strip(), m.group(2) != " "))
        return out

    def check_inside(self, path: str | os.PathLike[str]) -> Path:
        """``path``, once it is known to resolve inside this increment's folder: a stage folder or
        record planted as a symlink that leads out of it is refused before anything is written."""
        real, home = Path(path).resolve(), self.path.resolve()
        if real != home and home not in real.parents:
            raise IncrementError(f"refusing to write {storage.display(path)}: it resolves to {real}, outside "
                                 f"the increment {self.id} (a symlink planted inside it?)")
        return Path(path)

    def tick(self, task_id: str, *, done: bool = True) -> None:
        """Mark ``task_id`` done (or open again) in ``tasks.md``; atomic, under the folder lock."""
        with folder_lock(self.path):
            lines = self.tasks_path.read_text(encoding="utf-8").splitlines(keepends=True)
            for i, line in enumerate(lines):
                m = _TASK_RE.match(line.rstrip("\n"))
                if m and m.group(3) == task_id:
                    mark = "x" if done else " "
                    lines[i] = f"{m.group(1)}- [{mark}] {m.group(3)}{m.group(4)}" + ("\n" if line.endswith("\n") else "")
                    atomic_write_text(self.tasks_path, "".join(lines))
                    return
        raise IncrementError(f"{storage.display(self.tasks_path)}: no task {task_id}")


def _check_inside(base: Path, ref: str) -> None:
    if os.path.isabs(ref) or ".." in Path(ref).parts:
        _refuse_outside(base, ref)


def _refuse_outside(base: Path, ref: str) -> None:
    raise IncrementError(
        f"increment reference {ref!r} points outside the increments root {storage.display(base)}; "
        "give an id such as 0001, a slug, or a folder inside the root"
    )


def list_increments(root: str | os.PathLike[str] | None = None) -> list[Increment]:
    """Every increment under the root, by number."""
    base = resolve_root(root)
    if not base.is_dir():
        return []
    return sorted((Increment(p) for p in base.iterdir() if p.is_dir() and _ID_RE.match(p.name)), key=lambda i: i.id)
