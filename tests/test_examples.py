"""The README's example runs as written (with a smaller budget)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from specweave_ray.workspace.increment import Increment
from specweave_ray.workspace.records import list_records

pytestmark = pytest.mark.slow
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_quickstart_runs_and_records(tmp_path):
    proc = subprocess.run([sys.executable, str(EXAMPLES / "quickstart.py"), str(tmp_path), "3"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "candidate" in proc.stdout and "cv_mean" in proc.stdout
    inc = Increment.open("cancer-screening", root=tmp_path)
    kinds = [r.kind for r in list_records(inc)]
    assert kinds.count("trial") == 3 + 1 and kinds.count("baseline") == 3 and "experiment" in kinds
