"""Tests for ``specweave_ray.workspace.increment``: numbering, slugs, lookup, path safety, tasks."""

from __future__ import annotations

import multiprocessing
import re
import time
from pathlib import Path

import pytest

from specweave_ray import problems
from specweave_ray.exceptions import IncrementError, IncrementNotFoundError, SpecError
from specweave_ray.spec._grammar import TASKS, load_spec
from specweave_ray.workspace.increment import (
    SUBFOLDERS,
    Increment,
    list_increments,
    resolve_root,
    slugify,
)


def test_create_numbers_increments_in_order(root: Path) -> None:
    first = Increment.create("Fraud Detection", problem_type="classification")
    second = Increment.create("Churn", problem_type="classification")
    assert (first.id, second.id) == ("0001-fraud-detection", "0002-churn")
    assert first.path == root / "0001-fraud-detection"
    assert (first.number, first.slug, first.root) == (1, "fraud-detection", root)
    assert [i.id for i in list_increments()] == [first.id, second.id]


def test_numbering_continues_after_the_highest_number(root: Path) -> None:
    (root / "0007-manual").mkdir()
    (root / "notes").mkdir()  # not an increment: ignored
    assert Increment.create("Next", problem_type="regression").id == "0008-next"


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("Fraud Detection", "fraud-detection"),
        ("Fraud Detection (v2)!", "fraud-detection-v2"),
        ("  churn__prediction  ", "churn-prediction"),
        ("Café Crème", "cafe-creme"),
        ("UPPER-lower-123", "upper-lower-123"),
        ("a" * 80, "a" * 60),
        ("---x---", "x"),
    ],
)
def test_slugify(name: str, slug: str) -> None:
    assert slugify(name) == slug
    assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", slug)


@pytest.mark.parametrize("name", ["!!!", "", "   ", "日本語", "--"])
def test_name_without_letters_or_digits_is_refused(root: Path, name: str) -> None:
    with pytest.raises(IncrementError, match="no letters or digits"):
        Increment.create(name, problem_type="classification")
    assert list(root.iterdir()) == []


def test_unknown_problem_type_is_refused(root: Path) -> None:
    with pytest.raises(SpecError, match="unknown problem type 'vision'"):
        Increment.create("Cats", problem_type="vision")
    assert list_increments() == []


def test_duplicate_slug_is_refused_unless_exist_ok(increment: Increment) -> None:
    with pytest.raises(IncrementError, match="'0001-fraud-detection' already exists.*--exist-ok"):
        Increment.create("fraud  detection!", problem_type="classification")
    assert Increment.create("Fraud Detection", problem_type="classification", exist_ok=True) == increment
    assert [i.id for i in list_increments()] == [increment.id]


@pytest.mark.parametrize(
    "ref",
    ["0001", "1", 1, "0001-fraud-detection", "fraud-detection", "Fraud Detection", " 0001 "],
)
def test_open_by_number_id_or_slug(increment: Increment, ref: object) -> None:
    assert Increment.open(ref) == increment


def test_open_by_folder_path(increment: Increment, monkeypatch: pytest.MonkeyPatch) -> None:
    assert Increment.open(increment.path) == increment
    assert Increment.open(str(increment.path)) == increment
    monkeypatch.chdir(increment.root.parent)
    assert Increment.open(f"{increment.root.name}/{increment.id}") == increment


def test_open_picks_the_right_one_among_several(root: Path) -> None:
    incs = [Increment.create(n, problem_type="regression") for n in ("Alpha", "Beta", "Gamma")]
    assert Increment.open(2) == incs[1]
    assert Increment.open("gamma") == incs[2]


def test_open_unknown_lists_what_exists(increment: Increment) -> None:
    with pytest.raises(IncrementNotFoundError, match=r"no increment '9999'.*known: 0001-fraud-detection"):
        Increment.open("9999")
    with pytest.raises(IncrementNotFoundError, match="no increment 'nope'"):
        Increment.open("nope")
    with pytest.raises(IncrementNotFoundError, match="no increment '0009-nope'"):
        Increment.open(increment.root / "0009-nope")


@pytest.mark.parametrize("ref", ["../x", "..", "../0001-fraud-detection", "a/../../x", "/etc", "/tmp/0001-x"])
def test_references_escaping_the_root_are_refused(increment: Increment, ref: str) -> None:
    with pytest.raises(IncrementError, match="outside the increments root"):
        Increment.open(ref)


def test_absolute_path_outside_the_root_is_refused(increment: Increment, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere" / "not-an-increment"
    elsewhere.mkdir(parents=True)
    with pytest.raises(IncrementError, match="outside the increments root"):
        Increment.open(elsewhere)
    with pytest.raises(IncrementError, match="outside the increments root"):
        Increment.open(str(increment.root / ".." / "elsewhere"))


def test_root_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SPECWEAVE_ROOT", raising=False)
    assert resolve_root() == tmp_path / ".specweave" / "increments"
    assert resolve_root(config_root="cfg") == tmp_path / "cfg"
    monkeypatch.setenv("SPECWEAVE_ROOT", str(tmp_path / "env"))
    assert resolve_root(config_root="cfg") == tmp_path / "env"  # env beats config
    assert resolve_root("explicit", config_root="cfg") == tmp_path / "explicit"  # explicit beats env

    inc = Increment.create("Where", problem_type="classification")
    assert inc.path == tmp_path / "env" / "0001-where"
    other = Increment.create("Where", problem_type="classification", root=tmp_path / "explicit")
    assert other.path == tmp_path / "explicit" / "0001-where"


@pytest.mark.parametrize("problem_type", problems.names())
def test_every_problem_type_renders_documents_and_folders(root: Path, problem_type: str) -> None:
    inc = Increment.create(f"My {problem_type} project", problem_type=problem_type)
    for name in ("spec.md", "plan.md", "tasks.md", "tests.md"):
        text = (inc.path / name).read_text(encoding="utf-8")
        assert text.strip(), name
        assert "{{" not in text and "NNNN" not in text, name
    for sub in SUBFOLDERS:
        assert (inc.path / sub).is_dir() and list((inc.path / sub).iterdir()) == []
    spec = load_spec(inc.spec_path)
    assert (spec.title, spec.problem_type) == (f"My {problem_type} project", problem_type)
    assert spec.targets, "the template pre-fills success criteria"
    assert inc.spec() == spec
    assert inc.id in (inc.path / "tasks.md").read_text(encoding="utf-8")


def test_classification_spec_has_the_sections_and_targets(increment: Increment) -> None:
    text = increment.spec_path.read_text(encoding="utf-8")
    assert "## Success Criteria" in text
    metrics = {t.metric for t in increment.spec().targets}
    assert {"precision", "recall", "f1", "roc_auc", "latency_p99", "throughput", "primary"} <= metrics


def test_tasks_lists_the_nine_workflow_tasks(increment: Increment) -> None:
    tasks = increment.tasks()
    assert [t.id for t in tasks] == [f"T-{i:03d}" for i in range(1, 10)]
    assert [t.title for t in tasks] == [title for _, title in TASKS]
    assert not any(t.done for t in tasks)


def test_tick_flips_one_checkbox_and_leaves_the_rest(increment: Increment) -> None:
    before = increment.tasks_path.read_text(encoding="utf-8").splitlines(keepends=True)
    increment.tick("T-003")
    after = increment.tasks_path.read_text(encoding="utf-8").splitlines(keepends=True)
    changed = [i for i, (a, b) in enumerate(zip(before, after, strict=True)) if a != b]
    assert len(changed) == 1
    assert after[changed[0]] == before[changed[0]].replace("- [ ] T-003", "- [x] T-003")
    assert [t.id for t in increment.tasks() if t.done] == ["T-003"]
    increment.tick("T-003", done=False)
    assert increment.tasks_path.read_text(encoding="utf-8").splitlines(keepends=True) == before
    assert not [p for p in increment.path.iterdir() if p.name.endswith(".tmp")]


def test_tick_unknown_task_is_refused(increment: Increment) -> None:
    with pytest.raises(IncrementError, match="no task T-042"):
        increment.tick("T-042")


def _create(args: tuple[str, str, int, float]) -> str:
    root, name, count, start_at = args
    time.sleep(max(0.0, start_at - time.time()))  # start together to widen the race
    made = []
    for i in range(count):
        try:
            made.append(Increment.create(f"{name} {i}", problem_type="classification", root=root).id)
        except IncrementError:
            made.append("refused")
    return ",".join(made)


def test_concurrent_creation_never_duplicates_numbers(root: Path) -> None:
    with multiprocessing.get_context("spawn").Pool(6) as pool:
        start = time.time() + 0.5
        ids = [i for out in pool.map(_create, [(str(root), f"w{w}", 3, start) for w in range(6)])
               for i in out.split(",")]
        assert sorted(int(i[:4]) for i in ids) == list(range(1, 19))
        assert sorted(p.name for p in root.iterdir() if p.is_dir()) == sorted(ids)
        for inc in list_increments():
            assert inc.spec().problem_type == "classification"

        # the same name from every process at once: one creates it, the others are refused
        for round_ in range(3):
            start = time.time() + 0.3
            outs = pool.map(_create, [(str(root), f"same{round_}", 1, start)] * 6)
            assert sorted(outs) == [f"{19 + round_:04d}-same{round_}-0"] + ["refused"] * 5
    assert len(list_increments()) == 21


@pytest.mark.parametrize("problem_type", ["timeseries", "forecasting"])
def test_the_forecasting_type_that_was_planned_creates_its_increment(tmp_path: Path, problem_type: str) -> None:
    inc = Increment.create("Weekly Sales", problem_type=problem_type, root=tmp_path / "root")
    assert inc.spec().problem_type == "timeseries" and inc.spec().primary_metric == "mase"
