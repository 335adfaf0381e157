"""A record written to a full disk or a read-only file system: a clear error naming the path, earlier
records intact. No secrets in records: credential-like variables dropped, URIs redacted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from specweave_ray.workspace import _lineage
from specweave_ray.workspace.increment import Increment
from specweave_ray.workspace.records import list_records, open_experiment

_FULL = textwrap.dedent("""
    import resource, signal, sys
    from specweave_ray.exceptions import RecordError
    from specweave_ray.workspace.records import open_experiment
    inc = sys.argv[1]
    for i in range(2):
        open_experiment(f"before{i}", increment=inc, mirror=False, metrics={"m": i}).close()
    # the disk fills up: no file may grow past 512 bytes from here on (root is bound by it too)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (512, resource.RLIM_INFINITY))
    try:
        open_experiment("after", increment=inc, mirror=False, metrics={"m": 9})
    except RecordError as err:
        print("ERROR", err)
""")


def test_a_full_disk_is_a_clear_error_and_earlier_records_stay(tmp_path):
    inc = Increment.create("Full", problem_type="classification", root=tmp_path)
    script = tmp_path / "full.py"
    script.write_text(_FULL)
    out = subprocess.run([sys.executable, str(script), str(inc.path)], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "SPECWEAVE_MLFLOW": "0"})
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("ERROR")), None)
    assert line is not None, out.stdout + out.stderr[-2000:]
    assert "cannot write" in line and str(inc.experiments_dir) in line and "meta.json" in line, line
    assert "file size limit" in line or "disk is full" in line
    recs = list_records(inc)
    assert [(r.meta["name"], r.status, r.metrics["m"]) for r in recs] == [("before0", "finished", 0),
                                                                         ("before1", "finished", 1)]
    assert not list(inc.experiments_dir.glob("*/.*.tmp"))  # no temporaries left behind


_READ_ONLY = textwrap.dedent("""
    import subprocess, sys
    from specweave_ray.exceptions import RecordError
    from specweave_ray.workspace.records import open_experiment
    inc, mount = sys.argv[1], sys.argv[2]
    for i in range(2):
        open_experiment(f"before{i}", increment=inc, mirror=False, metrics={"m": i}).close()
    during = open_experiment("during", increment=inc, mirror=False, metrics={"m": 5})
    # the file system under the increment turns read-only (EROFS, which root cannot write either)
    subprocess.run(["mount", "-o", "remount,ro,bind", mount, mount], check=True)
    for what, write in (("log", lambda: during.log_metrics({"m": 6})), ("close", during.close),
                        ("open", lambda: open_experiment("after", increment=inc, mirror=False))):
        try:
            write()
            print("WROTE", what)
        except RecordError as err:
            print("ERROR", what, err)
""")


def _mount_namespace() -> list[str] | None:
    """``unshare`` arguments for a private mount namespace where a bind mount is allowed (as
    root, or as a user mapped to root in a user namespace), or None where neither is."""
    for args in (["unshare", "-m"], ["unshare", "-rm"]):
        try:
            ok = subprocess.run([*args, "mount", "--bind", "/", "/mnt"], capture_output=True, timeout=30).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            ok = False
        if ok:
            return args
    return None


def test_a_read_only_file_system_is_a_clear_error_and_earlier_records_stay(tmp_path):
    """A real read-only mount (not a chmod, which root ignores): the increment's folder is bind-
    mounted onto itself in a private mount namespace and remounted read-only mid-run."""
    unshare = _mount_namespace()
    if unshare is None:
        pytest.skip("no mount namespace here (unshare -m / -rm refused): cannot make a read-only mount")
    inc = Increment.create("RO", problem_type="classification", root=tmp_path / "root")
    script = tmp_path / "ro.py"
    script.write_text(_READ_ONLY)
    mount = str(inc.path.parent)
    shell = 'mount --bind "$1" "$1" && exec "$2" "$3" "$4" "$1"'
    out = subprocess.run([*unshare, "sh", "-c", shell, "sh", mount, sys.executable, str(script), str(inc.path)],
                         capture_output=True, text=True, timeout=120, env={**os.environ, "SPECWEAVE_MLFLOW": "0"})
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith(("ERROR", "WROTE"))]
    assert [ln.split()[:2] for ln in lines] == [["ERROR", "log"], ["ERROR", "close"], ["ERROR", "open"]], \
        out.stdout + out.stderr[-2000:]
    for line in lines:
        assert "cannot write the record" in line and "Read-only file system" in line, line
        assert str(inc.experiments_dir) in line, line
    # outside the namespace nothing was remounted: what was written before is intact, the record
    # open when the disk turned read-only still holds its last complete state, no temporaries
    recs = {r.meta["name"]: r for r in list_records(inc)}
    assert sorted(recs) == ["before0", "before1", "during"]
    assert [(recs[n].status, recs[n].metrics["m"]) for n in ("before0", "before1")] == [("finished", 0), ("finished", 1)]
    assert (recs["during"].status, recs["during"].metrics["m"]) == ("running", 5)
    assert not list(inc.experiments_dir.glob("*/.*.tmp")) and not list(inc.experiments_dir.glob(".*.tmp"))


def test_credential_names_and_uri_credentials_are_dropped():
    for name in ("AWS_SECRET_ACCESS_KEY", "my_api_key", "GITHUB_TOKEN", "db_password", "ClientSecret"):
        assert _lineage.is_secret_name(name), name
    assert not _lineage.is_secret_name("RAY_ADDRESS")
    assert _lineage.redact_uri("https://user:pass@host:5000/x?a=1") == "https://***@host:5000/x?a=1"
    assert _lineage.redact_uri("s3://AKIA:SECRET@bucket/p?X-Amz-Signature=abc&region=eu") == \
        "s3://***@bucket/p?X-Amz-Signature=***&region=eu"
    assert _lineage.redact_uri("/plain/path") == "/plain/path"
    assert _lineage.redact_text("failed at https://u:p@h/api (retry)") == "failed at https://***@h/api (retry)"
    env = {"API_KEY": "k", "Token": "t", "MLFLOW_TRACKING_URI": "https://u:pw@m", "RAY_ADDRESS": "auto"}
    assert _lineage.safe_environ(env) == {"MLFLOW_TRACKING_URI": "https://***@m", "RAY_ADDRESS": "auto"}


def test_a_record_holds_no_secret_from_the_environment(tmp_path, monkeypatch):
    secrets = {"SPECWEAVE_API_KEY": "sk-live-1", "RAY_AUTH_TOKEN": "tok-2", "MLFLOW_TRACKING_PASSWORD": "pw-3",
               "AWS_SECRET_ACCESS_KEY": "aws-4", "MLFLOW_TRACKING_TOKEN": "tok-5"}
    for k, v in secrets.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "https://alice:pw-6@mlflow.example:5000")
    monkeypatch.setenv("SPECWEAVE_ROOT", "s3://AKIA7:aws-7@bucket/increments")
    monkeypatch.setenv("SPECWEAVE_SOMETHING", "kept")
    inc = Increment.create("Secrets", problem_type="classification", root=tmp_path)
    exp = open_experiment("e", increment=inc, mirror=False)
    exp.close()
    text = (exp.path / "meta.json").read_text()
    for value in [*secrets.values(), "pw-6", "aws-7", "AKIA7", "alice"]:
        assert value not in text, value
    lineage = json.loads(text)["lineage"]
    assert lineage["mlflow_tracking_uri"] == "https://***@mlflow.example:5000"
    assert lineage["environ"]["SPECWEAVE_ROOT"] == "s3://***@bucket/increments"
    assert lineage["environ"]["SPECWEAVE_SOMETHING"] == "kept"
    assert not set(secrets) & set(lineage["environ"])
