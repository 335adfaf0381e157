"""``cluster/``: the launcher config, KubeRay manifests and runtime env (fast checks), and one real
``ray job submit`` against a local head with Ray 2.60 token authentication on (slow)."""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CLUSTER = ROOT / "cluster"
SEMVER = r"\d+\.\d+\.\d+"


def _pyproject() -> tuple[str, str]:
    """(package version, pinned ray version) from pyproject.toml."""
    text = (ROOT / "pyproject.toml").read_text()
    version = re.search(r'^version\s*=\s*"([^"]+)"', text, re.M).group(1)
    ray = re.search(rf'"ray\[[^\]]*\]==({SEMVER})"', text).group(1)
    return version, ray


PKG_VERSION, RAY_VERSION = _pyproject()


def _docs(name: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((CLUSTER / name).read_text()) if d is not None]


def _by_kind(name: str, kind: str) -> dict:
    (doc,) = [d for d in _docs(name) if d.get("kind") == kind]
    return doc


def _ray_containers(cluster_spec: dict) -> list[tuple[str, dict, dict]]:
    """(group, rayStartParams, container) for the head and every worker group."""
    out = []
    for group, spec in [("head", cluster_spec["headGroupSpec"])] + [
            (g["groupName"], g) for g in cluster_spec["workerGroupSpecs"]]:
        for c in spec["template"]["spec"]["containers"]:
            out.append((group, spec.get("rayStartParams", {}), c))
    return out


def _assert_token_from_secret(container: dict, where: str) -> None:
    env = {e["name"]: e for e in container.get("env", [])}
    assert env.get("RAY_AUTH_MODE", {}).get("value") == "token", where
    ref = env.get("RAY_AUTH_TOKEN", {}).get("valueFrom", {}).get("secretKeyRef", {})
    assert ref.get("name") and ref.get("key"), f"{where}: RAY_AUTH_TOKEN must come from a Secret"
    assert "value" not in env["RAY_AUTH_TOKEN"], f"{where}: the token must not be written in the manifest"


# -- fast: the files ----------------------------------------------------------------------
CLUSTER_YAMLS = sorted(p.name for p in CLUSTER.glob("*.yaml"))


def test_cluster_folder_has_the_expected_files():
    assert {"cluster.yaml", "kuberay-raycluster.yaml", "kuberay-rayjob.yaml", "runtime_env.yaml"} <= set(CLUSTER_YAMLS)
    assert (CLUSTER / "README.md").is_file()


@pytest.mark.parametrize("name", CLUSTER_YAMLS)
def test_every_yaml_parses(name):
    docs = _docs(name)
    assert docs and all(isinstance(d, dict) for d in docs)


@pytest.mark.parametrize("name", CLUSTER_YAMLS)
def test_ray_and_package_pins_match_pyproject(name):
    text = (CLUSTER / name).read_text()
    ray_pins = (re.findall(rf"rayproject/ray:({SEMVER})", text) + re.findall(rf"ray\[[^\]]*\]==({SEMVER})", text)
                + re.findall(rf"rayVersion:\s*['\"]?({SEMVER})", text))
    pkg_pins = re.findall(r"specweave-ray==([0-9][0-9A-Za-z.+-]*[0-9A-Za-z])", text)
    assert ray_pins or pkg_pins, f"{name} pins nothing"
    assert set(ray_pins) <= {RAY_VERSION}, (name, ray_pins)
    assert set(pkg_pins) <= {PKG_VERSION}, (name, pkg_pins)
    if name != "kuberay-raycluster.yaml":  # the RayCluster gets the package from the job's runtime env
        assert pkg_pins, f"{name} does not pin specweave-ray=={PKG_VERSION}"


def test_cluster_launcher_config_is_valid_for_ray_and_has_head_cpu_gpu_nodes():
    from ray.autoscaler._private.util import validate_config

    cfg = _docs("cluster.yaml")[0]
    validate_config(cfg)  # Ray's own ray-schema.json plus its min/max and head-type checks
    types = cfg["available_node_types"]
    assert cfg["head_node_type"] == "head" and {"head", "cpu_worker", "gpu_worker"} <= set(types)
    assert types["gpu_worker"]["resources"].get("GPU", 0) >= 1
    assert types["cpu_worker"]["resources"].get("CPU", 0) >= 1
    for name in ("cpu_worker", "gpu_worker"):
        t = types[name]
        assert 0 <= t["min_workers"] <= t["max_workers"] <= cfg["max_workers"]
    assert any("torch==2.13.0" in c and "whl/cpu" in c for c in cfg["setup_commands"])
    gpu_setup = types["gpu_worker"]["worker_setup_commands"]
    assert any("torch==2.13.0" in c and "whl/cpu" not in c for c in gpu_setup)  # the CUDA build
    for commands in (cfg["setup_commands"], gpu_setup, types["cpu_worker"]["worker_setup_commands"]):
        torch_at = next(i for i, c in enumerate(commands) if "torch==" in c)
        pkg_at = next(i for i, c in enumerate(commands) if f"specweave-ray=={PKG_VERSION}" in c)
        assert torch_at < pkg_at  # torch first, or pip resolves torch itself
    assert "rayproject/ray" in types["gpu_worker"]["docker"]["worker_image"]
    assert types["gpu_worker"]["docker"]["worker_image"].endswith("-gpu")
    # token auth on every node, with the token mounted from the submitting machine
    for cmd in cfg["head_start_ray_commands"][-1:] + cfg["worker_start_ray_commands"][-1:]:
        assert "RAY_AUTH_MODE=token" in cmd and "ray start" in cmd
    assert "~/.ray/auth_token" in cfg["file_mounts"]
    assert "disabled" not in yaml.safe_dump(cfg)


def test_kuberay_raycluster_has_cpu_and_gpu_groups_with_token_auth():
    rc = _by_kind("kuberay-raycluster.yaml", "RayCluster")
    assert rc["apiVersion"] == "ray.io/v1"
    spec = rc["spec"]
    assert spec["rayVersion"] == RAY_VERSION
    containers = _ray_containers(spec)
    assert {g for g, _, _ in containers} >= {"head", "cpu-workers", "gpu-workers"}
    for group, params, c in containers:
        _assert_token_from_secret(c, f"RayCluster {group}")
        assert all(isinstance(v, str) for v in params.values()), "rayStartParams values are strings"
    gpu = [(p, c) for g, p, c in containers if g == "gpu-workers"]
    for params, c in gpu:
        limit = c["resources"]["limits"]["nvidia.com/gpu"]
        assert float(params["num-gpus"]) == float(limit) >= 1
    for group in spec["workerGroupSpecs"]:
        assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]


def test_kuberay_rayjob_runs_a_repo_config_into_a_shared_root_with_token_auth():
    job = _by_kind("kuberay-rayjob.yaml", "RayJob")
    assert job["apiVersion"] == "ray.io/v1"
    spec = job["spec"]
    m = re.fullmatch(r"specweave-ray run (configs/\S+\.ya?ml) --root (\S+)", spec["entrypoint"].strip())
    assert m, spec["entrypoint"]
    assert (ROOT / m.group(1)).is_file(), f"{m.group(1)} is not in the repository"
    assert m.group(2).startswith("/"), "results must go to an absolute (shared) path, not the temp working dir"
    head = spec["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]
    mounts = [vm["mountPath"] for c in head["containers"] for vm in c.get("volumeMounts", [])]
    assert any(m.group(2).startswith(p.rstrip("/") + "/") for p in mounts), "the root must be on the head's volume"

    from ray.runtime_env import RuntimeEnv

    renv = yaml.safe_load(spec["runtimeEnvYAML"])
    RuntimeEnv(**renv)  # Ray's own validation of every field
    assert f"specweave-ray=={PKG_VERSION}" in renv["pip"]["packages"]
    assert renv["env_vars"]["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] == "1"
    assert f"v{PKG_VERSION}" in renv["working_dir"]

    containers = _ray_containers(spec["rayClusterSpec"])
    assert {g for g, _, _ in containers} >= {"head", "cpu-workers", "gpu-workers"}
    for group, _, c in containers:
        _assert_token_from_secret(c, f"RayJob {group}")
    for c in spec["submitterPodTemplate"]["spec"]["containers"]:
        _assert_token_from_secret(c, "RayJob submitter")
    assert spec["rayClusterSpec"]["rayVersion"] == RAY_VERSION


@pytest.mark.parametrize("name", ["kuberay-raycluster.yaml", "kuberay-rayjob.yaml", "cluster.yaml"])
def test_no_manifest_turns_token_auth_off(name):
    text = (CLUSTER / name).read_text()
    assert not re.search(r"RAY_AUTH_MODE\W{0,20}disabled", text, re.I)
    for doc in _docs(name):
        flat = json.dumps(doc)
        assert '"value": "disabled"' not in flat and "RAY_AUTH_MODE=disabled" not in flat


def test_runtime_env_pins_env_vars_and_excludes():
    from ray._private.runtime_env.packaging import _get_excludes
    from ray.runtime_env import RuntimeEnv

    renv = _docs("runtime_env.yaml")[0]
    RuntimeEnv(**renv)
    assert f"ray[tune,default]=={RAY_VERSION}" in renv["pip"]["packages"]
    assert f"specweave-ray=={PKG_VERSION}" in renv["pip"]["packages"]
    assert renv["env_vars"] == {**renv["env_vars"], "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
                                "RAY_CHDIR_TO_TRIAL_DIR": "0"}
    assert "working_dir" not in renv  # given on the command line (--working-dir .)
    excluded = _get_excludes(ROOT, renv["excludes"])  # Ray's own matcher (gitwildmatch, relative to the working dir)
    for path in (".venv", ".git", "increments/0001-fraud-detection/experiments",  # the folders: pruned, not walked
                 ".venv/lib/python3.11/site-packages/torch/lib/libtorch.so", ".git/objects/ab/cd",
                 "increments/0001-fraud-detection/experiments/exp-001-xgb/model.ubj",
                 "increments/0001-fraud-detection/data/sample.parquet", "increments/mlflow.db"):
        assert excluded(ROOT / path), path
    for path in ("configs/fraud-detection.yaml", "increments/0001-fraud-detection/spec.md",
                 "specweave_ray/cli.py", "pyproject.toml"):
        assert not excluded(ROOT / path), path


def test_readme_recipe_names_real_files_and_the_token():
    text = (CLUSTER / "README.md").read_text()
    cmd = re.search(r"ray job submit .*--runtime-env (\S+) .*-- specweave-ray run (\S+) --root (\S+)", text)
    assert cmd, "cluster/README.md has no ray job submit recipe"
    assert (ROOT / cmd.group(1)).is_file() and (ROOT / cmd.group(2)).is_file()
    assert cmd.group(3).startswith("/")
    assert "RAY_AUTH_MODE=token" in text and "RAY_ADDRESS=http://127.0.0.1:8265" in text
    assert not re.search(r"RAY_AUTH_MODE=disabled", text)


# -- slow: a real head, a real `ray job submit` ---------------------------------------------
RAY = str(Path(sys.executable).with_name("ray"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cmdlines_mentioning(text: str) -> dict[int, str]:
    """{pid: command line} of every process whose command line contains ``text``."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmd:
            out[int(entry)] = cmd
    return out


def _pids_mentioning(text: str) -> list[int]:
    return sorted(_cmdlines_mentioning(text))


@dataclass
class Head:
    tmp: Path
    token: Path
    dashboard: str
    proc: subprocess.Popen
    log: Path

    def client_env(self, **changes: str | None) -> dict[str, str]:
        """The submitting user's environment: RAY_AUTH_MODE=token and the token's path."""
        env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_TOKEN")}
        env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(self.token))
        for k, v in changes.items():
            if v is None:
                env.pop(k, None)
            else:
                env[k] = v
        return env

    def ray(self, *args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run([RAY, *args], env=env or self.client_env(), capture_output=True, text=True,
                              timeout=timeout, cwd=self.tmp)


def _stop_head(proc: subprocess.Popen, tmp: Path) -> None:
    """SIGTERM our process group, then SIGKILL whatever still names our temp dir (ours only)."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)
    deadline = time.monotonic() + 20
    while (left := _pids_mentioning(str(tmp))) and time.monotonic() < deadline:
        time.sleep(0.5)
    for pid in _pids_mentioning(str(tmp)):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    time.sleep(0.5)
    left = _pids_mentioning(str(tmp))
    assert not left, f"processes of our Ray head still running: {left}"


@pytest.fixture(scope="module")  # one head for both job tests: a head's start and stop cost ~15 s
def ray_head() -> Iterator[Head]:
    # short: Ray's unix sockets live under --temp-dir and their paths must stay under 108 bytes
    tmp = Path(tempfile.mkdtemp(prefix="swr-", dir="/tmp"))
    token = tmp / "auth_token"
    token.write_text(secrets.token_hex(32))
    token.chmod(0o600)
    gcs, dash, client, agent = _free_port(), _free_port(), _free_port(), _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_TOKEN")}
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",  # the job runs `specweave-ray`
        # `ray start --head` only turns token auth on by itself when ~/.ray/auth_token exists: say it
        RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token),
        RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S="0", RAY_USAGE_STATS_ENABLED="0",
    )
    log = tmp / "head.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [RAY, "start", "--head", "--port", str(gcs), "--dashboard-port", str(dash),
             "--ray-client-server-port", str(client), "--num-cpus", "2", "--temp-dir", str(tmp / "ray"),
             "--include-dashboard", "true", "--dashboard-host", "127.0.0.1", "--disable-usage-stats",
             # its default, 52365, is taken by any other Ray on this machine: jobs then fail "No available agent"
             "--dashboard-agent-listen-port", str(agent), "--block"],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=tmp)
    head = Head(tmp, token, f"http://127.0.0.1:{dash}", proc, log)
    try:
        deadline = time.monotonic() + 180
        request = urllib.request.Request(f"{head.dashboard}/api/version",
                                         headers={"Authorization": f"Bearer {token.read_text()}"})
        while True:
            assert proc.poll() is None, f"ray start exited {proc.returncode}:\n{log.read_text()[-3000:]}"
            try:
                with urllib.request.urlopen(request, timeout=5) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            assert time.monotonic() < deadline, f"dashboard never came up:\n{log.read_text()[-3000:]}"
            time.sleep(1)
        yield head
    finally:
        _stop_head(proc, tmp)
        shutil.rmtree(tmp, ignore_errors=True)


def _job_status(cli_output: str) -> str | None:
    """The status `ray job status` prints: "Job 'x' succeeded" / "failed" / "was stopped" once
    it ended, "Status for job 'x': RUNNING" before."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", cli_output)
    if m := re.search(r"Job '[^']+' (succeeded|failed|was stopped)", text):
        return {"succeeded": "SUCCEEDED", "failed": "FAILED", "was stopped": "STOPPED"}[m.group(1)]
    if m := re.search(r"Status for job '[^']+': (\w+)", text):
        return m.group(1)
    return None


E2E_CONFIG = {
    "increment": "Cluster Fraud", "problem_type": "classification",
    "data": {"generate": "fraud", "rows": 3000, "target": "is_fraud", "params": {"positive_rate": 0.03}},
    "baselines": {"rule": "amount > 900 and card_present == 0"},
    "sweep": {"cv": 3, "stages": 2, "tuning_samples": 2},
    "candidates": [
        {"name": "logistic", "estimator": "logistic", "params": {"max_iter": 300, "C": {"loguniform": [0.01, 10.0]}},
         "num_samples": 2},
        {"name": "xgboost", "estimator": "xgboost", "params": {"n_estimators": 20, "max_depth": {"randint": [2, 4]}},
         "num_samples": 2},
    ],
    "seed": 5,
}

def _submit_and_wait(head: Head, work: Path, runtime_env: Path, entry: list[str]) -> tuple[str, str]:
    """``ray job submit --no-wait`` the entrypoint, follow its status until it ends; (status, logs)."""
    deadline = time.monotonic() + 120
    while True:  # the head's job agent can lag the dashboard by a few seconds
        job_id = f"swr-e2e-{secrets.token_hex(4)}"
        sub = head.ray("job", "submit", "--address", head.dashboard, "--submission-id", job_id,
                       "--working-dir", str(work), "--runtime-env", str(runtime_env), "--no-wait", "--", *entry)
        if sub.returncode == 0:
            break
        assert "No available agent" in sub.stderr + sub.stdout and time.monotonic() < deadline, sub.stderr[-3000:]
        time.sleep(3)
    status, deadline = "PENDING", time.monotonic() + 660
    while time.monotonic() < deadline:
        out = head.ray("job", "status", "--address", head.dashboard, job_id)
        status = _job_status(out.stdout + out.stderr) or status
        if status in ("SUCCEEDED", "FAILED", "STOPPED"):
            break
        time.sleep(3)
    return status, head.ray("job", "logs", "--address", head.dashboard, job_id).stdout


def _checkout_and_env(tmp: Path, **env_vars: str) -> tuple[Path, Path]:
    """A checkout with the e2e config, and the runtime env (its pip pins dropped: pip would clone
    this multi-GB .venv into a per-job virtualenv, and every pin is installed here already)."""
    job = Path(tempfile.mkdtemp(prefix="job-", dir=tmp))  # each test's own: the head is shared
    work = job / "checkout"
    _copy_checkout(work)
    (work / "configs" / "cluster-e2e.yaml").write_text(yaml.safe_dump(E2E_CONFIG))
    renv = _docs("runtime_env.yaml")[0]
    renv.pop("pip")
    renv.setdefault("env_vars", {}).update(env_vars)
    (job / "runtime_env.yaml").write_text(yaml.safe_dump(renv))
    return work, job / "runtime_env.yaml"


def _copy_checkout(dest: Path) -> None:
    """Copy the repository without what cluster/runtime_env.yaml excludes (.venv, .git, run outputs)."""
    from ray._private.runtime_env.packaging import _get_excludes

    excluded = _get_excludes(ROOT, _docs("runtime_env.yaml")[0]["excludes"])
    shutil.copytree(ROOT, dest, ignore=lambda folder, names: [n for n in names if excluded(Path(folder) / n)])


@pytest.mark.slow
@pytest.mark.timeout(900)  # ~2-3 min alone on 2 cores; far longer when other Ray suites share them
def test_ray_job_submit_end_to_end_with_token_auth(ray_head: Head):
    from specweave_ray.workspace.increment import list_increments
    from specweave_ray.workspace.records import list_records

    t0 = time.monotonic()
    tmp = ray_head.tmp
    # what a user submits: a checkout (here a copy, with a stray .venv that must not be uploaded)
    work, renv = _checkout_and_env(tmp)
    (work / ".venv").mkdir()
    (work / ".venv" / "marker-not-uploaded").write_text("x")
    root = tmp / "shared" / "increments"  # absolute, outside the job's working dir

    # the trap: without RAY_AUTH_MODE=token the client sends no token and is refused ...
    refused = ray_head.ray("job", "submit", "--address", ray_head.dashboard, "--no-wait", "--", "echo", "hi",
                           env=ray_head.client_env(RAY_AUTH_MODE=None, RAY_AUTH_TOKEN_PATH=None))
    assert refused.returncode != 0
    assert "AuthenticationError" in refused.stderr and "RAY_AUTH_MODE is currently 'disabled'" in refused.stderr
    # ... and with RAY_AUTH_MODE=token but some other token it is refused too
    wrong = ray_head.ray("job", "submit", "--address", ray_head.dashboard, "--no-wait", "--", "echo", "hi",
                         env=ray_head.client_env(RAY_AUTH_TOKEN_PATH=None, RAY_AUTH_TOKEN=secrets.token_hex(32)))
    assert wrong.returncode != 0 and "invalid or incorrect" in wrong.stderr

    entry = ["specweave-ray", "run", "configs/cluster-e2e.yaml", "--root", str(root)]
    status, logs = _submit_and_wait(ray_head, work, renv, entry)
    assert status == "SUCCEEDED", f"job: {status}\n{logs[-6000:]}"

    # the driver joined the head's cluster (Ray sets RAY_ADDRESS=<gcs> inside a job) ...
    assert re.search(r"Connecting to existing Ray cluster at address: [\d.]+:\d+", logs), logs[-4000:]
    head_nodes = {m.group(1) for cmd in _cmdlines_mentioning(str(tmp)).values() if "/raylet/raylet" in cmd
                  for m in [re.search(r"--node[_-]id=(\w+)", cmd)] if m}
    assert len(head_nodes) == 1, head_nodes

    # ... and the increment is complete at --root, not in the job's temporary working dir
    (inc,) = list_increments(root)
    assert inc.path.name == "0001-cluster-fraud"
    assert (inc.experiments_dir / "comparison.json").is_file()
    assert [t.done for t in inc.tasks()][:6] == [True] * 6, [(t.id, t.done) for t in inc.tasks()]
    assert len(list_records(inc, kind="evaluation")) == 1
    trials = [r for r in list_records(inc, kind="trial") if r.meta.get("sweep")]
    assert trials and all(r.status == "finished" for r in trials)
    assert {r.meta.get("node") for r in trials} == head_nodes
    assert (root / "mlflow.db").is_file()

    unpacked = [p for p in (tmp / "ray").glob("session_2*/runtime_resources/working_dir_files/_ray_pkg_*") if p.is_dir()]
    assert unpacked, "the working dir was not unpacked where expected"
    for pkg in unpacked:
        assert (pkg / "configs" / "cluster-e2e.yaml").is_file()
        assert not (pkg / ".venv").exists(), "runtime_env excludes / .gitignore did not keep .venv out"
        assert not list(pkg.rglob(inc.path.name)) and not list(pkg.rglob("mlflow.db")), "results landed in the temp dir"
    assert not list(work.rglob(inc.path.name)), "results landed in the submitted checkout"
    print(f"ray job submit end to end: {time.monotonic() - t0:.0f} s (job {status})")


def test_job_status_is_read_from_both_cli_formats():
    assert _job_status("\x1b[32mJob 'swr-1' succeeded\x1b[39m") == "SUCCEEDED"
    assert _job_status("Job 'swr-1' failed\nStatus message: ...") == "FAILED"
    assert _job_status("Job 'swr-1' was stopped") == "STOPPED"
    assert _job_status("Status for job 'swr-1': RUNNING") == "RUNNING"
    assert _job_status("Job submission server address: http://127.0.0.1:8265") is None


@pytest.mark.slow
def test_ray_job_submit_into_an_s3_root(ray_head: Head, tmp_path, monkeypatch):
    """The cluster recipe with an object-store root: the job's driver (in the head's temporary
    working dir) writes the increment to the bucket, and this machine reads it from there."""
    from s3_helpers import CREDENTIALS, s3_server

    from specweave_ray.workspace import storage
    from specweave_ray.workspace.increment import Increment
    from specweave_ray.workspace.records import list_records

    with s3_server() as s3:
        # the credentials reach the driver the way the README says: the runtime env's env_vars
        work, renv = _checkout_and_env(ray_head.tmp, **CREDENTIALS,
                                       SPECWEAVE_STAGING=str(ray_head.tmp / "driver-mirror"))  # removed with the head
        uri = s3.uri("cluster/increments")
        status, logs = _submit_and_wait(ray_head, work, renv, ["specweave-ray", "run", "configs/cluster-e2e.yaml",
                                                               "--root", uri])
        assert status == "SUCCEEDED", f"job: {status}\n{logs[-6000:]}"
        assert "under s3://specweave-test/cluster/increments" in logs

        keys = s3.keys("cluster/increments")
        assert {"0001-cluster-fraud/tasks.md", "0001-cluster-fraud/experiments/comparison.json",
                "0001-cluster-fraud/models/model-v1.metadata.json", "mlflow.db"} <= keys
        monkeypatch.setenv("SPECWEAVE_STAGING", str(tmp_path / "laptop"))
        storage.unmount()
        inc = Increment.open("cluster-fraud", root=uri)
        assert all(t.done for t in inc.tasks()), [(t.id, t.done) for t in inc.tasks()]
        trials = [r for r in list_records(inc, kind="trial") if r.meta.get("sweep")]
        assert trials and all(r.status == "finished" for r in trials)
        assert len(list_records(inc, kind="evaluation")) == 1
        storage.unmount()
    unpacked = list((ray_head.tmp / "ray").glob("session_2*/runtime_resources/working_dir_files/_ray_pkg_*"))
    assert unpacked and not any(list(p.rglob("0001-cluster-fraud")) for p in unpacked), "results in the temp dir"
