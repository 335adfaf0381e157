"""The increment's notebooks, written from its records and executed with nbclient in a real kernel.

A finished increment is the legacy fixture's (records of a real 0.1.0 run, copied to a temporary
folder, so the notebooks also prove they read paths relative to themselves); a partial one is a
fresh increment where only T-001 ran (today's data stage, on 200 rows).
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import nbformat
import pytest

from specweave_ray.data import record_data
from specweave_ray.data.datasets import make_fraud
from specweave_ray.finish import notebooks
from specweave_ray.finish.notebooks import NOTEBOOKS, write_notebooks
from specweave_ray.problems import get as get_problem
from specweave_ray.workspace.increment import Increment
from specweave_ray.workspace.records import list_records

FIXTURE = Path(__file__).parent / "fixtures" / "legacy" / "root"


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPECWEAVE_MLFLOW", "0")
    monkeypatch.delenv("SPECWEAVE_ROOT", raising=False)


def _texts(nb: nbformat.NotebookNode) -> str:
    """Everything the executed cells printed or displayed as text or markdown."""
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out["output_type"] == "stream":
                parts.append(out["text"])
            elif out["output_type"] in ("display_data", "execute_result"):
                parts.append(out["data"].get("text/markdown", ""))
    return "\n".join(parts)


def _outputs(nb: nbformat.NotebookNode, kind: str | None = None) -> list[dict]:
    outs = [o for c in nb.cells for o in c.get("outputs", [])]
    return [o for o in outs if kind is None or o["output_type"] == kind or kind in o.get("data", {})]


@pytest.fixture
def finished(tmp_path: Path) -> Increment:
    """The legacy fraud increment (every task done), moved to a new folder."""
    dest = tmp_path / "moved" / "0001-fraud-detection"
    shutil.copytree(FIXTURE / "0001-fraud-detection", dest)
    return Increment(dest)


def test_notebooks_run_top_to_bottom_on_a_finished_increment(finished: Increment) -> None:
    paths = write_notebooks(finished, execute=True, timeout=60)
    assert paths == [finished.notebooks_dir / n for n in NOTEBOOKS]
    books = {p.name: nbformat.read(p, as_version=4) for p in paths}
    for nb in books.values():
        nbformat.validate(nb)
        assert not _outputs(nb, "error")
        assert all(c.get("execution_count") for c in nb.cells if c.cell_type == "code")
        assert str(finished.path) not in "".join(c.source for c in nb.cells)  # relative paths only

    data = list_records(finished, kind="data")[-1]
    eda = _texts(books["01-eda.ipynb"])
    assert f"record {data.id}; source {data.params['source']}; target {data.params['target']!r}" in eda
    assert f"rows: {data.params['rows_train']} train / {data.params['rows_test']} held out" in eda
    assert _outputs(books["01-eda.ipynb"], "image/png")  # the target drawn from the sample

    features = list_records(finished, kind="features")[-1]
    fe = books["02-feature-engineering.ipynb"]
    assert f"record {features.id}" in _texts(fe)
    assert any(name in o["data"].get("text/plain", "") for o in _outputs(fe, "text/html")
               for name in features.params["features"])

    comparison = json.loads((finished.experiments_dir / "comparison.json").read_text())
    metric = comparison["metric"]
    ev = list_records(finished, kind="evaluation")[-1]
    models = _texts(books["03-model-analysis.ipynb"])
    assert f"best {comparison['best_candidate']} ({comparison['best']})" in models
    assert (f"held-out {metric} = {ev.metrics[metric]!r} "
            f"[{ev.metrics[f'{metric}_ci_low']!r}, {ev.metrics[f'{metric}_ci_high']!r}]") in models
    gate = list_records(finished, kind="gate")[-1]
    assert (f"record {gate.id}: {gate.params['package']} {'passed' if gate.params['passed'] else 'failed'} "
            f"the gate ({gate.metrics['met']} met, {gate.metrics['not_met']} not met") in models
    assert "Not recorded yet" not in models

    # a rerun replaces each file whole (here without outputs) and leaves no temporary files
    write_notebooks(finished)
    assert sorted(p.name for p in finished.notebooks_dir.iterdir()) == sorted(NOTEBOOKS)
    again = nbformat.read(finished.notebooks_dir / "03-model-analysis.ipynb", as_version=4)
    assert not _outputs(again) and again.metadata["specweave"]["increment"] == finished.id


def test_notebooks_degrade_to_notes_when_only_t001_ran(tmp_path: Path) -> None:
    inc = Increment.create("Fraud Partial", problem_type="classification", root=tmp_path / "incs")
    df = make_fraud(200, positive_rate=0.1, seed=0)
    record_data(inc, df, target="is_fraud", problem=get_problem("classification"), source="generate:fraud",
                test_size=0.2, rows_train=160, rows_test=40, seed=0, fingerprint="sha256:test")
    paths = write_notebooks(inc, execute=True, timeout=60)
    books = {p.name: nbformat.read(p, as_version=4) for p in paths}
    for nb in books.values():
        assert not _outputs(nb, "error")

    eda = books["01-eda.ipynb"]
    assert "rows: 160 train / 40 held out" in _texts(eda)
    assert "eda-summary.md" not in _texts(eda)  # the report is there, so it is shown, not noted
    assert len(_outputs(eda, "image/png")) >= 2  # the sample's target and the profile's saved plots
    assert "Not recorded yet" not in _texts(eda)

    assert "Not recorded yet:** the feature pipeline (T-002 has not run" in _texts(books["02-feature-engineering.ipynb"])
    notes = _texts(books["03-model-analysis.ipynb"])
    for what, task in (("the comparison", "T-003"), ("the held-out evaluation", "T-006"),
                       ("the explanations", "T-007"), ("the benchmark", "T-008"), ("the release gate", "T-008")):
        assert f"Not recorded yet:** {what} ({task} has not run for {inc.id})" in notes


def test_a_notebook_that_fails_is_saved_unexecuted_with_a_warning_naming_the_cell(
        finished: Increment, caplog: pytest.LogCaptureFixture) -> None:
    (finished.experiments_dir / "comparison.json").write_text("{not json")
    name = "03-model-analysis.ipynb"
    cells = notebooks.build_notebook(finished, name).cells
    index = next(i for i, c in enumerate(cells) if c.cell_type == "code" and "comparison.json" in c.source)
    caplog.set_level(logging.WARNING, logger=notebooks.__name__)
    books = {p.name: nbformat.read(p, as_version=4) for p in write_notebooks(finished, execute=True, timeout=60)}
    assert f"{finished.id}/notebooks/{name}: cell {index} (JSONDecodeError" in caplog.text
    assert not _outputs(books[name])  # saved as written, not half run
    assert _outputs(books["01-eda.ipynb"]) and _outputs(books["02-feature-engineering.ipynb"])
