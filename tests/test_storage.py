"""URI roots (storage.py) against a real S3-compatible server on loopback (moto): what a driver
writes reaches the bucket through pyarrow.fs, and a second machine (a fresh mirror) reads it back."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from s3_helpers import BUCKET, s3_server

from specweave_ray.exceptions import IncrementError, IncrementNotFoundError, StorageError
from specweave_ray.workspace import storage
from specweave_ray.workspace.increment import Increment, list_increments, resolve_root
from specweave_ray.workspace.records import (
    Experiment,
    list_records,
    resolve_increment,
    track_experiment,
)


@pytest.fixture(scope="module")
def s3():
    with s3_server() as server:
        yield server


@pytest.fixture
def machine(tmp_path, monkeypatch):
    """A driver machine of its own: an empty staging folder and no mounts."""
    def new(name: str) -> Path:
        storage.unmount()
        staging = tmp_path / f"staging-{name}"
        monkeypatch.setenv("SPECWEAVE_STAGING", str(staging))
        return staging
    monkeypatch.delenv("SPECWEAVE_ROOT", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("SPECWEAVE_MLFLOW", "0")
    new("a")
    yield new
    storage.unmount()


def test_uri_detection():
    assert storage.is_uri("s3://bucket/x") and storage.is_uri("gs://b/p") and storage.is_uri("hdfs://nn:8020/p")
    assert not storage.is_uri("file:///tmp/x") and not storage.is_uri("/tmp/x") and not storage.is_uri(Path("s3:"))
    assert storage.local_path("file:///tmp/a%20b") == "/tmp/a b"
    assert storage.redact("s3://b/p?access_key=AK&secret_key=SK&scheme=http") == "s3://b/p?scheme=http"


def test_file_uri_is_a_local_root(tmp_path):
    assert resolve_root(f"file://{tmp_path}/incs") == tmp_path / "incs"


def test_increment_and_records_reach_the_bucket_and_a_second_machine_reads_them(s3, machine):
    uri = s3.uri("team/a")
    inc = Increment.create("Fraud Detection", problem_type="classification", root=uri)
    assert inc.id == "0001-fraud-detection" and storage.display(inc.path) == f"s3://{BUCKET}/team/a/0001-fraud-detection"
    with track_experiment("xgb-1", increment=inc, params={"max_depth": 4}) as exp:
        exp.log_metrics({"pr_auc": 0.5}, step=1)
        exp.log_metrics({"pr_auc": 0.61}, step=2)
        exp.log_note("deeper trees")
    inc.tick("T-001")
    storage.flush()

    keys = s3.keys("team/a")
    rec = "0001-fraud-detection/experiments/exp-001-xgb-1"
    assert {"0001-fraud-detection/spec.md", "0001-fraud-detection/tasks.md", f"{rec}/meta.json",
            f"{rec}/params.json", f"{rec}/metrics.json", f"{rec}/notes.md", f"{rec}/logs/metrics.jsonl"} <= keys
    assert not [k for k in keys if k.endswith((".lock", ".tmp"))]
    assert json.loads(s3.read(f"team/a/{rec}/meta.json"))["status"] == "finished"
    assert "- [x] T-001" in s3.read("team/a/0001-fraud-detection/tasks.md").decode()
    assert len(s3.read(f"team/a/{rec}/logs/metrics.jsonl").splitlines()) == 2

    staging_b = machine("b")  # another machine: nothing local
    assert [i.id for i in list_increments(uri)] == ["0001-fraud-detection"]
    again = Increment.open("fraud-detection", root=uri)
    assert staging_b in again.path.parents
    assert [t.id for t in again.tasks() if t.done] == ["T-001"]
    (got,) = list_records(again)
    assert got.metrics == {"pr_auc": 0.61} and got.params == {"max_depth": 4} and got.status == "finished"
    # numbering continues from what the bucket holds, not from the empty mirror
    assert Increment.create("Churn", problem_type="classification", root=uri).id == "0002-churn"
    storage.flush()
    assert "0002-churn/spec.md" in s3.keys("team/a")


def test_changes_on_the_root_reach_a_mirror_and_unchanged_files_are_not_uploaded_again(s3, machine):
    uri = s3.uri("team/sync")
    inc = Increment.create("Sync", problem_type="regression", root=uri)
    storage.flush()
    m = storage.mount_of(inc.path)
    assert m.changed(inc.path) == []  # everything written is at the root already
    (inc.path / "data" / "extra.txt").write_text("written by a library, not atomically")
    assert m.changed(inc.path) == [inc.path / "data" / "extra.txt"]
    storage.push_now(inc.path)
    assert "0001-sync/data/extra.txt" in s3.keys("team/sync") and m.changed(inc.path) == []

    machine("b")
    other = Increment.open(1, root=uri)
    other.tick("T-002")
    storage.flush()
    machine("a")  # back on the first machine, whose mirror still holds the old tasks.md
    first = Increment.open(1, root=uri)
    assert first.path == inc.path
    assert [t.id for t in first.tasks() if t.done] == ["T-002"]


def test_a_missing_bucket_is_a_clear_error(s3, machine):
    with pytest.raises(StorageError, match="no-such-bucket"):
        resolve_root(s3.uri("x").replace(BUCKET, "no-such-bucket"))


def test_cli_names_the_root_it_cannot_open_and_exits_2(s3, machine):
    proc = subprocess.run([sys.executable, "-m", "specweave_ray.cli", "--root", "s3://no-such-bucket/x?endpoint_override="
                           f"{s3.endpoint}&scheme=http", "status"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "no-such-bucket" in proc.stderr and "Traceback" not in proc.stderr


def test_an_upload_that_fails_is_reported_and_the_file_stays_in_the_mirror(machine, tmp_path):
    with s3_server() as server:
        uri = server.uri("gone")
        inc = Increment.create("Lost", problem_type="classification", root=uri)
        storage.flush()
    # the server is gone: the next write cannot be uploaded
    inc.tick("T-001")
    with pytest.raises(StorageError, match="tasks.md"):
        storage.flush()
    assert "- [x] T-001" in inc.tasks_path.read_text()


def test_a_refresh_keeps_local_changes_not_yet_uploaded_and_uploads_meta_last(s3, machine):
    uri = s3.uri("team/pending")
    inc = Increment.create("Pending", problem_type="classification", root=uri)
    storage.flush()
    rec = inc.experiments_dir / "exp-001-x"
    (rec / "logs").mkdir(parents=True)
    for name in ("meta.json", "notes.md", "logs/metrics.jsonl", "params.json"):
        (rec / name).write_text(name)
    m = storage.mount_of(inc.path)
    assert [p.name for p in m.changed(rec) if p.parent == rec] == ["notes.md", "params.json", "meta.json"]

    inc.tasks_path.write_text(inc.tasks_path.read_text() + "\n<!-- edited here, not uploaded yet -->\n")
    s3.client.put_object(Bucket=BUCKET, Key="team/pending/0001-pending/tasks.md", Body=b"someone else's")
    Increment.open(1, root=uri)  # fetches what changed at the root ...
    assert "edited here" in inc.tasks_path.read_text()  # ... but not over a pending local change


def test_a_change_at_the_root_in_the_second_of_our_upload_is_fetched(s3, machine):
    uri = s3.uri("team/second")
    time.sleep(1.02 - time.time() % 1)  # the upload and the other machine's write share one second
    inc = Increment.create("Second", problem_type="classification", root=uri)
    storage.flush()
    key = "team/second/0001-second/tasks.md"
    ticked = s3.read(key).replace(b"- [ ] T-001", b"- [x] T-001", 1)  # same size: only the mtime tells
    s3.client.put_object(Bucket=BUCKET, Key=key, Body=ticked)
    assert [t.id for t in Increment.open(1, root=uri).tasks() if t.done] == ["T-001"]
    assert inc.tasks_path.read_bytes() == ticked


def test_a_later_process_keeps_local_changes_the_root_never_got(s3, machine):
    uri = s3.uri("team/crash")
    inc = Increment.create("Crash", problem_type="classification", root=uri)
    storage.flush()
    # ticked a few seconds later by a process that died (or lost the network) before uploading it
    text = inc.tasks_path.read_text().replace("- [ ] T-001", "- [x] T-001") + "\n<!-- before the crash -->\n"
    inc.tasks_path.write_text(text)
    later = time.time_ns() + 5_000_000_000
    os.utime(inc.tasks_path, ns=(later, later))
    storage.unmount()  # the next process: same mirror, nothing known about it
    again = Increment.open(1, root=uri)
    assert again.tasks_path.read_text() == text
    storage.push_now(again.path)
    assert s3.read("team/crash/0001-crash/tasks.md").decode() == text


def test_a_record_reaches_the_root_before_its_final_meta_json(s3, machine, monkeypatch):
    uri = s3.uri("team/order")
    inc = Increment.create("Order", problem_type="classification", root=uri)
    storage.flush()
    at_root: list[tuple[str, bool]] = []  # after each upload of meta.json: its status, whether the rest is there
    real = storage.Mount.upload

    def spy(self, path, **kwargs):
        before = self._synced.get(path)
        real(self, path, **kwargs)
        # only what went up: an upload skipped (a newer version is queued) leaves nothing to read
        if path.name == "meta.json" and self._synced.get(path) != before:
            prefix = f"team/order/{path.parent.relative_to(self.local).as_posix()}"
            status = json.loads(s3.read(f"{prefix}/meta.json"))["status"]
            at_root.append((status, {"logs/metrics.jsonl", "notes.md"} <= s3.keys(prefix)))

    monkeypatch.setattr(storage.Mount, "upload", spy)
    real_mirror = Experiment.mirror_to_mlflow

    def slow_mirror(self, **kwargs):  # the close mirrors to MLflow after writing its final meta.json
        time.sleep(0.5)
        return real_mirror(self, **kwargs)

    monkeypatch.setattr(Experiment, "mirror_to_mlflow", slow_mirror)
    with track_experiment("x", increment=inc) as exp:
        exp.log_metrics({"loss": 0.5}, step=1)  # logs/metrics.jsonl: appended, not an atomic write
        exp.log_note("a note")
    storage.flush()
    assert ("finished", True) in at_root and ("finished", False) not in at_root, at_root

    rec2 = inc.experiments_dir / "exp-002-y"
    (rec2 / "logs").mkdir(parents=True)
    for name in ("meta.json", "logs/metrics.jsonl", "model.ubj"):
        (rec2 / name).write_text(name)
    assert storage.mount_of(rec2).changed(rec2)[-1] == rec2 / "meta.json"  # after its subfolders' files too


def test_credentials_in_the_uri_stay_out_of_messages(s3, machine):
    uri = s3.uri("team/creds").replace("s3://", "s3://AKIDSPECWEAVE:SECRETSPECWEAVE@")
    assert storage.redact(uri).startswith(f"s3://{BUCKET}/team/creds")
    inc = Increment.create("Creds", problem_type="classification", root=uri)
    assert storage.display(inc.path) == f"s3://{BUCKET}/team/creds/0001-creds"
    with pytest.raises(IncrementNotFoundError) as err:
        Increment.open("nope", root=uri)
    assert "SECRETSPECWEAVE" not in str(err.value) and f"s3://{BUCKET}/team/creds" in str(err.value)


def test_errors_name_the_uri_not_the_local_mirror(s3, machine):
    uri = s3.uri("team/errors")
    inc = Increment.create("Errors", problem_type="classification", root=uri)
    where = f"s3://{BUCKET}/team/errors"
    with pytest.raises(IncrementError, match=f"outside the increments root {where}"):
        Increment.open("../elsewhere", root=uri)
    with pytest.raises(IncrementError, match=f"{where}/0001-errors/tasks.md: no task T-999"):
        inc.tick("T-999")
    with pytest.raises(StorageError, match="x//y"):  # pyarrow's ArrowInvalid, named as the root
        resolve_root(s3.uri("x//y"))


def test_records_of_an_increment_listed_on_another_machine_are_fetched(s3, machine):
    uri = s3.uri("team/listed")
    inc = Increment.create("Listed", problem_type="classification", root=uri)
    with track_experiment("x", increment=inc, params={"depth": 3}):
        pass
    (inc.data_dir / "sample.csv").write_text("a\n1\n")
    storage.push_now(inc.path)
    machine("b")
    (listed,) = list_increments(uri)  # documents only, so far
    assert [r.params for r in list_records(listed)] == [{"depth": 3}]
    assert not (listed.data_dir / "sample.csv").exists()  # the records' summaries only
    assert resolve_increment(listed) == listed and (listed.data_dir / "sample.csv").exists()  # packages, bench…


def test_a_same_size_copy_that_keeps_an_older_mtime_is_uploaded(s3, machine, tmp_path):
    uri = s3.uri("team/copy2")
    inc = Increment.create("Copy", problem_type="classification", root=uri)
    dest = inc.data_dir / "lookup.csv"
    dest.write_text("a,1\n")
    storage.push_now(dest.parent)
    src = tmp_path / "lookup.csv"
    src.write_text("a,2\n")
    os.utime(src, ns=(1_600_000_000_000_000_000,) * 2)  # an old source file
    shutil.copy2(src, dest)  # keeps the source's mtime (as log_artifact's copytree does)
    storage.push_now(dest.parent)
    assert s3.read("team/copy2/0001-copy/data/lookup.csv") == b"a,2\n"


def test_a_file_removed_while_its_folder_is_compared_does_not_stop_the_uploads(s3, machine, monkeypatch):
    uri = s3.uri("team/vanish")
    inc = Increment.create("Vanish", problem_type="classification", root=uri)
    storage.flush()
    (inc.data_dir / "a.txt").write_text("a")
    (inc.data_dir / "b.txt").write_text("b")
    real = storage.Mount._infos

    def cleanup_meanwhile(self, path, *, recursive):
        (inc.data_dir / "b.txt").unlink(missing_ok=True)  # a library removes its scratch file meanwhile
        return real(self, path, recursive=recursive)

    monkeypatch.setattr(storage.Mount, "_infos", cleanup_meanwhile)
    storage.push(inc.data_dir)
    storage.flush()
    assert "0001-vanish/data/a.txt" in s3.keys("team/vanish")
    monkeypatch.setattr(storage.Mount, "_infos", real)
    inc.tick("T-001")  # the upload thread lives on
    waiter = threading.Thread(target=storage.flush, daemon=True)
    waiter.start()
    waiter.join(20)
    assert not waiter.is_alive(), "flush() waits forever: the upload thread died"
    assert b"- [x] T-001" in s3.read("team/vanish/0001-vanish/tasks.md")


def test_leftovers_of_an_earlier_run_are_uploaded_when_every_task_is_skipped(s3, machine):
    from specweave_ray.pipeline._tasks import TASK_ORDER, run_pipeline
    from specweave_ray.spec.config import parse_config

    uri = s3.uri("team/leftover")
    inc = Increment.create("Fraud Small", problem_type="classification", root=uri)
    for task in TASK_ORDER:
        inc.tick(task)
    storage.flush()
    left = inc.experiments_dir / "exp-001-x" / "notes.md"  # its upload failed in the run that wrote it
    left.parent.mkdir(parents=True)
    left.write_text("not at the root yet\n")
    storage.unmount()
    cfg = parse_config({"increment": "Fraud Small", "problem_type": "classification",
                        "data": {"generate": "fraud", "rows": 400, "target": "is_fraud",
                                 "params": {"positive_rate": 0.1}}}, source="test")
    result = run_pipeline(cfg, root=uri)
    assert result.skipped == list(TASK_ORDER)
    assert "0001-fraud-small/experiments/exp-001-x/notes.md" in s3.keys("team/leftover")


def test_cli_inc_prints_the_uri_not_the_mirror(s3, machine, capsys):
    from specweave_ray.cli import main

    assert main(["inc", "Churn Model", "--type", "classification", "--root", s3.uri("team/cli")]) == 0
    assert capsys.readouterr().out.splitlines()[0] == f"created s3://{BUCKET}/team/cli/0001-churn-model"
    assert "0001-churn-model/spec.md" in s3.keys("team/cli")  # the command waited for its uploads
