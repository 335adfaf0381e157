"""Tests for ``specweave_ray.workspace.records`` and its MLflow mirror (real MLflow on a sqlite store)."""

from __future__ import annotations

import hashlib
import itertools
import json
import multiprocessing
import platform
import re
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from specweave_ray import track_experiment, track_model
from specweave_ray.exceptions import RecordError
from specweave_ray.workspace.increment import Increment
from specweave_ray.workspace.records import environment, list_records, open_experiment, read_record

RECORD_FILES = ("meta.json", "params.json", "metrics.json", "notes.md")


@pytest.fixture(scope="module")
def mroot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One increments root (and so one MLflow sqlite store) for the module: creating the store
    costs seconds, so the tests share it and each takes a fresh increment inside it."""
    path = tmp_path_factory.mktemp("records") / "increments"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SPECWEAVE_ROOT", str(path))
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        mp.delenv("SPECWEAVE_MLFLOW", raising=False)
        yield path


_NAMES = itertools.count(1)


@pytest.fixture
def inc(mroot: Path, request: pytest.FixtureRequest) -> Increment:
    name = f"{next(_NAMES)} {request.node.originalname.removeprefix('test_')}"
    return Increment.create(name, problem_type="classification", root=mroot)


def _json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _mlflow_client(root: Path):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")


# -- the record on disk ---------------------------------------------------------------------
def test_track_experiment_writes_the_record_layout(inc: Increment) -> None:
    with track_experiment("exp-eda", increment=inc.id) as exp:
        exp.log_param("dataset_size", 1000)
        exp.log_params({"columns": ["a", "b"], "target": "is_fraud"})
        exp.log_metric("missing_values", 3)
        exp.log_metrics({"class_ratio": 0.25, "roc_auc": 0.5})
        exp.log_note("Classes are imbalanced.")
        assert _json(exp.path / "meta.json")["status"] == "running"
    path = inc.experiments_dir / "exp-001-eda"
    assert exp.path == path and exp.id == "exp-001-eda" and exp.number == 1
    assert {p.name for p in path.iterdir()} >= {*RECORD_FILES, "logs"}
    assert (path / "logs").is_dir()
    assert _json(path / "params.json") == {"dataset_size": 1000, "columns": ["a", "b"], "target": "is_fraud"}
    assert _json(path / "metrics.json") == {"missing_values": 3, "class_ratio": 0.25, "roc_auc": 0.5}
    assert "Classes are imbalanced." in (path / "notes.md").read_text(encoding="utf-8")
    meta = _json(path / "meta.json")
    assert {"status", "kind", "model", "started", "ended", "duration_s", "node", "resources", "trial_id",
            "data_fingerprint", "code_version", "error", "mlflow_run_id", "environment"} <= set(meta)
    assert (meta["status"], meta["kind"], meta["increment"], meta["error"]) == ("finished", "experiment", inc.id, None)
    assert meta["duration_s"] >= 0 and meta["ended"] >= meta["started"]
    assert re.fullmatch(r"[0-9a-f]{32}", meta["mlflow_run_id"])

    with track_experiment("second", increment=inc.number) as exp2:
        pass
    assert exp2.id == "exp-002-second"
    assert [r.id for r in list_records(inc)] == ["exp-001-eda", "exp-002-second"]
    rec = read_record(path)
    assert (rec.status, rec.kind, dict(rec.metrics)["roc_auc"]) == ("finished", "experiment", 0.5)


def test_exception_marks_the_record_failed_and_reraises(inc: Increment) -> None:
    with pytest.raises(ValueError, match="boom"):
        with track_experiment("broken", increment=inc) as exp:
            exp.log_metric("partial", 1.5)
            raise ValueError("boom")
    meta = _json(exp.path / "meta.json")
    assert meta["status"] == "failed"
    assert (meta["error"]["type"], meta["error"]["message"]) == ("ValueError", "boom")
    assert 'raise ValueError("boom")' in meta["error"]["traceback"]
    assert meta["error"]["traceback"].rstrip().endswith("ValueError: boom")
    assert _json(exp.path / "metrics.json") == {"partial": 1.5}
    run = _mlflow_client(inc.root).get_run(meta["mlflow_run_id"])
    assert run.info.status == "FAILED"


def test_set_status(inc: Increment) -> None:
    with track_experiment("manual", increment=inc) as exp:
        exp.set_status("failed")
        assert _json(exp.path / "meta.json")["status"] == "failed"
        with pytest.raises(RecordError, match="status 'done' is not one of running, finished, failed"):
            exp.set_status("done")
    assert _json(exp.path / "meta.json")["status"] == "failed"  # a chosen status survives closing
    with pytest.raises(RecordError, match="is closed"):
        exp.log_metric("late", 1.0)


def test_metrics_with_steps_go_to_the_log_and_mlflow_history(inc: Increment) -> None:
    with track_experiment("curve", increment=inc) as exp:
        for step, loss in enumerate([0.9, 0.5, 0.3], start=1):
            exp.log_metrics({"loss": loss, "acc": 1 - loss}, step=step)
        exp.log_metric("loss", 0.25)  # a final value without a step
    rows = [json.loads(line) for line in (exp.path / "logs" / "metrics.jsonl").read_text().splitlines()]
    assert [(r["name"], r["step"], r["value"]) for r in rows if r["name"] == "loss"] == [
        ("loss", 1, 0.9), ("loss", 2, 0.5), ("loss", 3, 0.3)]
    assert _json(exp.path / "metrics.json") == {"loss": 0.25, "acc": pytest.approx(0.7)}
    client = _mlflow_client(inc.root)
    run_id = exp.meta["mlflow_run_id"]
    history = sorted((m.step, m.value) for m in client.get_metric_history(run_id, "loss"))
    assert history == [(1, 0.9), (2, 0.5), (3, 0.25), (3, 0.3)]  # the final value at the last step
    acc = sorted((m.step, m.value) for m in client.get_metric_history(run_id, "acc"))
    assert acc == [(1, pytest.approx(0.1)), (2, 0.5), (3, pytest.approx(0.7))]  # no stray step-0 copy
    # the run's current value is the record's final value
    assert client.get_run(run_id).data.metrics == _json(exp.path / "metrics.json")


@pytest.mark.parametrize("name", ["Accuracy", "f1-score", "1st", "", "roc auc", "précision"])
def test_bad_metric_names_are_refused(inc: Increment, name: str) -> None:
    with track_experiment("names", increment=inc) as exp:
        with pytest.raises(RecordError, match="must be lower snake case"):
            exp.log_metric(name, 0.5)
    assert _json(exp.path / "metrics.json") == {}


@pytest.mark.parametrize(("value", "message"), [
    (float("nan"), "is nan; only finite"), (float("inf"), "is inf; only finite"),
    (float("-inf"), "is -inf; only finite"), ("high", "must be a number, got 'high'"),
    (None, "must be a number, got None"),
])
def test_bad_metric_values_are_refused(inc: Increment, value: object, message: str) -> None:
    with track_experiment("values", increment=inc) as exp:
        exp.log_metric("ok", 1.0)
        with pytest.raises(RecordError, match=message):
            exp.log_metrics({"f1": 0.5, "bad": value})
    assert _json(exp.path / "metrics.json") == {"ok": 1.0}  # nothing of the bad call was kept


def test_log_artifact_file_and_folder_and_save_report(inc: Increment, tmp_path: Path) -> None:
    table = tmp_path / "table.csv"
    table.write_text("a,b\n1,2\n")
    plots = tmp_path / "plots"
    (plots / "inner").mkdir(parents=True)
    (plots / "roc.txt").write_text("roc")
    (plots / "inner" / "pr.txt").write_text("pr")
    with track_experiment("artifacts", increment=inc) as exp:
        assert exp.log_artifact(table) == exp.path / "table.csv"
        exp.log_artifact(table, name="renamed.csv")
        exp.log_artifact(plots)
        report = exp.save_report("eda-summary.md", "# EDA\n\nAll good.\n")
        with pytest.raises(RecordError, match="does not exist"):
            exp.log_artifact(tmp_path / "missing.csv")
        with pytest.raises(RecordError, match="must be a plain file name"):
            exp.save_report("../escape.md", "x")
        with pytest.raises(RecordError, match="must be a plain file name"):
            exp.log_artifact(table, name="../escape.csv")
        for reserved in ("meta.json", "params.json", "metrics.json"):
            with pytest.raises(RecordError, match="reserved"):
                exp.save_report(reserved, "{}")
            with pytest.raises(RecordError, match="reserved"):
                exp.log_artifact(table, name=reserved)
    assert (exp.path / "table.csv").read_text() == "a,b\n1,2\n"
    assert (exp.path / "renamed.csv").read_text() == "a,b\n1,2\n"
    assert (exp.path / "plots" / "inner" / "pr.txt").read_text() == "pr"
    assert report.read_text() == "# EDA\n\nAll good.\n"
    assert not (inc.experiments_dir / "escape.md").exists() and not (tmp_path / "escape.md").exists()
    assert _json(exp.path / "meta.json")["status"] == "finished"
    names = {a.path for a in _mlflow_client(inc.root).list_artifacts(exp.meta["mlflow_run_id"])}
    assert {"table.csv", "plots", "eda-summary.md", "meta.json"} <= names


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_track_model_saves_native_artifacts_with_hashes(inc: Increment, seed: int) -> None:
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression
    from xgboost import XGBClassifier

    X, y = make_classification(n_samples=120, n_features=5, random_state=seed)
    with track_model("baseline-logreg", increment=inc) as model:
        model.log_metrics({"accuracy": 0.9})
        info = model.save_artifact(LogisticRegression().fit(X, y), "baseline")
    meta = _json(model.path / "meta.json")
    assert (meta["kind"], meta["model"], meta["status"]) == ("model", "baseline-logreg", "finished")
    assert info["format"] == "pickle" and meta["artifacts"]["baseline"] == info
    assert info["files"] == {"baseline.pkl": _sha256(model.path / "baseline.pkl")}

    with track_model("xgb", increment=inc) as model:
        est = XGBClassifier(n_estimators=5, max_depth=2, n_jobs=1, random_state=seed).fit(X, y)
        info = model.save_artifact(est, "xgb model")
        with pytest.raises(RecordError, match="reserved"):
            model.save_artifact(est, "params")
    meta = _json(model.path / "meta.json")
    assert meta["artifacts"]["xgb model"]["format"] == "xgboost-ubj"
    assert set(info["files"]) == {"xgb-model.ubj", "xgb-model.json"}
    for name, digest in info["files"].items():
        assert _sha256(model.path / name) == digest
    assert _json(model.path / "params.json") == {}  # the sidecar never overwrites a record file
    assert [r.id for r in list_records(inc, kind="model")] == ["exp-001-baseline-logreg", "exp-002-xgb"]


def test_environment_is_captured(inc: Increment) -> None:
    with track_experiment("env", increment=inc) as exp:
        pass
    env = _json(exp.path / "meta.json")["environment"]
    assert env == json.loads(json.dumps(environment()))
    assert env["python"] == platform.python_version()
    assert env["hostname"] == socket.gethostname() == exp.meta["node"]
    assert {"specweave-ray", "numpy", "scikit-learn", "mlflow", "ray"} <= set(env["packages"])
    assert "git_commit" in env
    assert env["git_commit"] is None or re.fullmatch(r"[0-9a-f]{40}", env["git_commit"])


def test_bad_names_and_unknown_increment(inc: Increment) -> None:
    with pytest.raises(RecordError, match="no letters or digits"):
        open_experiment("!!!", increment=inc)
    from specweave_ray.exceptions import IncrementNotFoundError

    with pytest.raises(IncrementNotFoundError, match="no increment '9999'"):
        open_experiment("eda", increment=9999)
    with pytest.raises(RecordError, match="no meta.json"):
        read_record(inc.path)


# -- atomic writes ---------------------------------------------------------------------------
_CRASH = textwrap.dedent("""
    import os, sys
    from specweave_ray.workspace.records import open_experiment

    exp = open_experiment("crash", increment=sys.argv[1], mirror=False)
    exp.log_params({"small": 1})
    exp.log_metrics({"acc": 0.5})
    setattr(os, sys.argv[2], lambda *a, **k: os._exit(17))   # die in the middle of the next write
    exp.log_params({f"p{i}": "x" * 200 for i in range(20000)})   # ~4 MB of JSON
    os._exit(0)
""")


@pytest.mark.parametrize("die_in", ["fsync", "replace"])
def test_a_writer_killed_mid_write_leaves_no_half_written_json(inc: Increment, die_in: str) -> None:
    proc = subprocess.run([sys.executable, "-c", _CRASH, str(inc.path), die_in],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 17, proc.stderr
    path = inc.experiments_dir / "exp-001-crash"
    assert list(path.glob(".params.json.*.tmp")), "the write was interrupted after the temp file"
    for file in inc.path.rglob("*.json"):
        json.loads(file.read_text(encoding="utf-8"))  # every JSON parses
    assert _json(path / "params.json") == {"small": 1}  # the old content, not half the new one
    [rec] = list_records(inc)
    assert (rec.id, rec.status, dict(rec.metrics)) == ("exp-001-crash", "running", {"acc": 0.5})
    with track_experiment("after", increment=inc, mirror=False) as exp:
        pass
    assert exp.id == "exp-002-after"


def test_record_files_get_the_usual_permissions(inc: Increment) -> None:
    import os

    umask = os.umask(0o022)
    os.umask(umask)
    with track_experiment("modes", increment=inc, mirror=False) as exp:
        exp.log_metric("acc", 0.5)
    for name in RECORD_FILES:
        assert (exp.path / name).stat().st_mode & 0o777 == 0o666 & ~umask, name


# -- concurrency ------------------------------------------------------------------------------
def _writer(args: tuple[str, int, int, float, bool]) -> list[str]:
    import os

    inc_path, worker, count, start_at, mirror = args
    os.environ["SPECWEAVE_MLFLOW"] = "1" if mirror else "0"
    time.sleep(max(0.0, start_at - time.time()))  # start together to widen the race
    ids = []
    for i in range(count):
        with track_experiment(f"w{worker}-{i}", increment=inc_path) as exp:
            exp.log_params({"worker": worker, "i": i})
            exp.log_metric("value", worker + i / 10)
        ids.append(exp.id)
    return ids


def _run_writers(inc: Increment, workers: int, count: int, *, mirror: bool) -> list[str]:
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(workers) as pool:
        pool.map(abs, range(workers))  # let every process finish importing before the race
        start = time.time() + 0.5
        jobs = [(str(inc.path), w, count, start, mirror) for w in range(workers)]
        return [i for ids in pool.map(_writer, jobs) for i in ids]


def _assert_complete(inc: Increment, ids: list[str], workers: int, count: int) -> None:
    assert sorted(int(i.split("-")[1]) for i in ids) == list(range(1, workers * count + 1))
    records = list_records(inc)
    assert sorted(r.id for r in records) == sorted(ids)
    for rec in records:
        assert {p.name for p in rec.path.iterdir()} >= {*RECORD_FILES, "logs"}
        worker, i = map(int, re.fullmatch(r"exp-\d+-w(\d+)-(\d+)", rec.id).groups())
        assert dict(rec.params) == {"worker": worker, "i": i}
        assert dict(rec.metrics) == {"value": worker + i / 10}
        assert rec.status == "finished"


def test_concurrent_writers_never_share_a_number(root: Path, increment: Increment) -> None:
    ids = _run_writers(increment, 4, 8, mirror=False)  # 4 processes race as hard as 8 on 2 cores
    _assert_complete(increment, ids, 4, 8)
    assert not (root / "mlflow.db").exists()  # SPECWEAVE_MLFLOW=0 switches the mirror off
    assert all(r.meta["mlflow_run_id"] is None for r in list_records(increment))


def test_numbering_sees_folders_made_behind_its_back(inc: Increment) -> None:
    """The next number comes from the last claim's note in the lock file only while the folder is
    unchanged since: a folder made by hand (no lock) in between, or a record removed, is seen."""
    first = open_experiment("a", increment=inc, mirror=False)
    (inc.experiments_dir / "exp-002-by-hand").mkdir()
    assert open_experiment("b", increment=inc, mirror=False).id == "exp-003-b"
    assert open_experiment("c", increment=inc, mirror=False).id == "exp-004-c"  # from the note
    (inc.experiments_dir / "exp-007-copied").mkdir()
    assert open_experiment("d", increment=inc, mirror=False).id == "exp-008-d"
    shutil.rmtree(inc.experiments_dir / "exp-007-copied")
    shutil.rmtree(inc.experiments_dir / "exp-008-d")
    assert open_experiment("e", increment=inc, mirror=False).id == "exp-005-e"  # listed again: max + 1
    (inc.experiments_dir / ".lock").write_text("garbage")
    assert open_experiment("f", increment=inc, mirror=False).id == "exp-006-f"
    assert first.id == "exp-001-a"


def test_concurrent_writers_all_reach_mlflow(root: Path, increment: Increment) -> None:
    # a fresh root: the processes also race to create the sqlite store itself
    ids = _run_writers(increment, 4, 2, mirror=True)  # fewer: each process imports MLflow (~2 s CPU)
    _assert_complete(increment, ids, 4, 2)
    client = _mlflow_client(root)
    for rec in list_records(increment):
        assert "mlflow_error" not in rec.meta
        assert client.get_run(rec.meta["mlflow_run_id"]).data.metrics == dict(rec.metrics)


# -- the MLflow mirror ------------------------------------------------------------------------
_SEARCH = textwrap.dedent("""
    import json, sys
    import mlflow

    mlflow.set_tracking_uri(sys.argv[1])
    runs = mlflow.search_runs(experiment_names=[sys.argv[2]], output_format="list")
    print(json.dumps({r.info.run_id: {"name": r.info.run_name, "status": r.info.status,
                                      "metrics": r.data.metrics, "params": r.data.params,
                                      "record": r.data.tags.get("specweave.record")}
                      for r in runs}))
""")


def test_mlflow_round_trip_from_another_process(inc: Increment) -> None:
    with track_experiment("eda", increment=inc) as exp:
        exp.log_params({"rows": 1000, "source": "csv"})
        exp.log_metrics({"missing_values": 3, "class_ratio": 0.125})
    with track_model("baseline-random", increment=inc) as model:
        model.log_metrics({"precision": 0.5, "recall": 0.25, "roc_auc": 0.5})
    with track_experiment("staged", increment=inc) as exp:
        for step in range(3):
            exp.log_metric("val_loss", 1.0 / (step + 1), step=step)
        exp.log_metric("val_loss", 0.2)
    with pytest.raises(RuntimeError, match="diverged"):
        with track_experiment("diverged", increment=inc) as exp:
            exp.log_metric("val_loss", 9.0)
            raise RuntimeError("diverged")

    uri = f"sqlite:///{inc.root / 'mlflow.db'}"
    out = subprocess.run([sys.executable, "-c", _SEARCH, uri, inc.id], capture_output=True, text=True,
                         timeout=120, check=True).stdout
    runs = json.loads(out.strip().splitlines()[-1])
    records = list_records(inc)
    assert len(records) == 4
    assert {r.meta["mlflow_run_id"] for r in records} == set(runs)
    for rec in records:
        run = runs[rec.meta["mlflow_run_id"]]
        assert (run["name"], run["record"]) == (rec.id, rec.id)
        assert run["metrics"] == dict(rec.metrics)
        assert run["params"] == {k: str(v) for k, v in rec.params.items()}
        assert run["status"] == ("FAILED" if rec.status == "failed" else "FINISHED")


def test_mlflow_tracking_uri_wins(inc: Increment, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with track_experiment("warm", increment=inc):  # make sure the default store exists
        pass
    other = tmp_path / "other.db"
    shutil.copy(inc.root / "mlflow.db", other)  # an initialised store: no schema migration to wait for
    monkeypatch.chdir(tmp_path)  # a sqlite tracking URI keeps artifacts under ./mlruns
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{other}")
    with track_experiment("elsewhere", increment=inc) as exp:
        exp.log_metric("score", 0.75)
    run_id = exp.meta["mlflow_run_id"]
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    assert MlflowClient(f"sqlite:///{other}").get_run(run_id).data.metrics == {"score": 0.75}
    with pytest.raises(MlflowException, match=run_id):
        _mlflow_client(inc.root).get_run(run_id)


def test_mlflow_mirror_can_be_switched_off(root: Path, increment: Increment,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPECWEAVE_MLFLOW", "0")
    with track_experiment("offline", increment=increment) as exp:
        exp.log_metric("score", 1.0)
    meta = _json(exp.path / "meta.json")
    assert meta["status"] == "finished" and meta["mlflow_run_id"] is None
    assert not (root / "mlflow.db").exists() and not (root / "mlartifacts").exists()


def test_a_symlink_planted_inside_the_increment_never_leads_a_write_out(increment: Increment, tmp_path: Path) -> None:
    from specweave_ray.exceptions import IncrementError

    outside = tmp_path / "outside"
    outside.mkdir()
    # a record's artifact name planted as a link to a folder outside
    with track_experiment("links", increment=increment) as exp:
        (exp.path / "plots").symlink_to(outside, target_is_directory=True)
        src = tmp_path / "src"
        src.mkdir()
        (src / "roc.txt").write_text("roc")
        with pytest.raises(IncrementError, match=r"refusing to write .*plots: it resolves to .*outside the increment"):
            exp.log_artifact(src, name="plots")
    # the experiments folder itself replaced by a link out
    shutil.rmtree(increment.experiments_dir)
    increment.experiments_dir.symlink_to(outside, target_is_directory=True)
    with pytest.raises(IncrementError, match=r"refusing to write .*experiments: it resolves to .*outside"):
        with track_experiment("escape", increment=increment):
            pass
    assert not any(outside.iterdir())


def test_a_new_store_is_a_copy_of_the_machine_template_at_mlflow_s_schema(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    import sqlite3

    import mlflow

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    template = tmp_path / "cache" / "specweave-ray" / f"mlflow-{mlflow.__version__}.db"
    incs = []
    for name in ("first", "second"):
        root = tmp_path / name
        inc = Increment.create("Template Store", problem_type="classification", root=root)
        with track_experiment("eda", increment=inc) as exp:
            exp.log_metric("rows", 10.0)
        incs.append((inc, exp))
        if name == "first":
            assert template.is_file()  # built once, by the first new store
            built = template.stat().st_mtime_ns
    assert template.stat().st_mtime_ns == built  # the second store was copied, not built again

    def schema(db: Path) -> tuple[str, list[tuple[str, list[tuple[str, str]]]]]:
        with sqlite3.connect(db) as con:
            version = con.execute("SELECT version_num FROM alembic_version").fetchone()[0]
            names = [n for (n,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                                "AND name NOT LIKE 'sqlite_%' ORDER BY name")]
            # columns, not the CREATE text: MLflow's batch migrations order CHECK constraints
            # differently from one build to the next
            tables = [(n, sorted((c[1], c[2]) for c in con.execute(f"PRAGMA table_info('{n}')"))) for n in names]
        return version, tables

    # a store MLflow builds itself has the same schema as the copy
    from mlflow.tracking import MlflowClient

    MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'built.db'}").search_experiments(max_results=1)
    for inc, exp in incs:
        db = inc.root / "mlflow.db"
        assert schema(db) == schema(tmp_path / "built.db")
        run = _mlflow_client(inc.root).get_run(exp.meta["mlflow_run_id"])
        assert run.data.metrics == {"rows": 10.0}
        default = _mlflow_client(inc.root).get_experiment("0")
        assert default.artifact_location == str(inc.root.resolve() / "mlruns" / "0")
        assert not list(inc.root.glob(".mlflow.db.part"))


def test_without_a_writable_cache_mlflow_builds_the_store_itself(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the cache folder would be")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    inc = Increment.create("No Template", problem_type="classification", root=tmp_path / "root")
    with track_experiment("eda", increment=inc) as exp:
        exp.log_metric("rows", 3.0)
    assert _mlflow_client(inc.root).get_run(exp.meta["mlflow_run_id"]).data.metrics == {"rows": 3.0}
