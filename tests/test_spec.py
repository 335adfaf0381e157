"""Tests for ``specweave_ray.spec._grammar``: target phrasings, spec files, rendering, templates."""

from __future__ import annotations

import doctest
import math
import re
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from specweave_ray import problems
from specweave_ray.exceptions import SpecError, SpecweaveError
from specweave_ray.spec import _grammar as spec_module
from specweave_ray.spec._grammar import (
    OPS,
    TASKS,
    Requirement,
    Spec,
    Target,
    default_targets,
    load_spec,
    parse_spec,
    parse_targets,
    render_increment_docs,
    render_spec,
)

LIFT_BEST = {"relative_to": "best_baseline"}

# Every phrasing the parser promises to read, and the exact target it must produce.
PHRASINGS: list[tuple[str, Target]] = [
    ("precision@10 > 0.25", Target("precision_at_10", ">", 0.25)),
    ("latency_p99 < 100 ms", Target("latency_p99", "<", 100, "ms")),
    ("latency_p99 < 0.1 s", Target("latency_p99", "<", 100, "ms")),
    ("throughput >= 1000 req/s", Target("throughput", ">=", 1000, "req/s")),
    ("lift over best baseline >= 20%", Target("primary", ">=", 20, "%", **LIFT_BEST)),
    ("MAPE < 10%", Target("mape", "<", 10, "%")),
    ("RMSE < $50", Target("rmse", "<", 50, "$")),
    ("Latency: <100ms inference", Target("latency_p99", "<", 100, "ms")),
    ("Throughput: 1000 req/sec", Target("throughput", ">=", 1000, "req/s")),
    ("Accuracy: Better than random baseline by 3x",
     Target("accuracy", ">=", 3, "x", relative_to="random_baseline")),
    ("99% precision target", Target("precision", ">=", 0.99)),
    ("RMSE < $50 target", Target("rmse", "<", 50, "$")),
    ("MAPE < 10% target", Target("mape", "<", 10, "%")),
    ("Precision > 0.99", Target("precision", ">", 0.99)),
    ("precision >= 99%", Target("precision", ">=", 0.99)),
    ("F1 score > 0.8", Target("f1", ">", 0.8)),
    ("ROC AUC >= 0.9", Target("roc_auc", ">=", 0.9)),
    ("R² > 0.7", Target("r2", ">", 0.7)),
    ("R2 > 0.7", Target("r2", ">", 0.7)),
    ("Recall: > 0.8", Target("recall", ">", 0.8)),
    ("p99 latency < 100ms", Target("latency_p99", "<", 100, "ms")),
    ("latency_p50 < 20 ms", Target("latency_p50", "<", 20, "ms")),
    ("beat best baseline by 20%", Target("primary", ">=", 20, "%", **LIFT_BEST)),
    ("1.5x better than majority baseline",
     Target("primary", ">=", 1.5, "x", relative_to="majority_baseline")),
    ("accuracy lift over random baseline >= 3x",
     Target("accuracy", ">=", 3, "x", relative_to="random_baseline")),
    # A few more readings beyond the promised list.
    ("latency_p95 <= 250 us", Target("latency_p95", "<=", 0.25, "ms")),
    ("median latency under 20 ms", Target("latency_p50", "<", 20, "ms")),
    ("precision at least 0.9", Target("precision", ">=", 0.9)),
    ("throughput >= 1,000 req/s", Target("throughput", ">=", 1000, "req/s")),
    ("R2 > -0.5", Target("r2", ">", -0.5)),
    ("log loss <= 0.35", Target("log_loss", "<=", 0.35)),
    ("NDCG@10 ≥ 0.3", Target("ndcg_at_10", ">=", 0.3)),
    ("**PR AUC** >= 0.6.", Target("pr_auc", ">=", 0.6)),
    ("lift >= 20% over previous model", Target("primary", ">=", 20, "%", relative_to="previous_model")),
    ("RMSE improves on the baseline by 15%", Target("rmse", ">=", 15, "%", **LIFT_BEST)),
    ("MAE == 3", Target("mae", "==", 3)),
]


@pytest.mark.parametrize(("text", "expected"), PHRASINGS, ids=[p[0] for p in PHRASINGS])
@pytest.mark.parametrize("bullet", ["", "- ", "* "])
def test_phrasing_reads_to_exact_target(text: str, expected: Target, bullet: str) -> None:
    (target,) = parse_targets(bullet + text)
    assert target == expected
    assert (target.metric, target.op, target.value, target.unit, target.relative_to) == (
        expected.metric, expected.op, expected.value, expected.unit, expected.relative_to)
    assert isinstance(target.value, float)


@pytest.mark.parametrize("unit", ["req/sec", "req/s", "rps", "RPS", "requests/s",
                                  "req/second", "QPS", "requests per second"])
def test_throughput_unit_spellings(unit: str) -> None:
    assert parse_targets(f"Throughput: 1000 {unit}") == [Target("throughput", ">=", 1000, "req/s")]


def test_plain_latency_means_p99() -> None:
    assert parse_targets("latency < 50 ms")[0].metric == "latency_p99"


def test_several_targets_on_one_line() -> None:
    assert parse_targets("- Precision@10 > 0.25, Recall@10 > 0.15") == [
        Target("precision_at_10", ">", 0.25), Target("recall_at_10", ">", 0.15)]
    assert parse_targets("precision >= 0.9; recall >= 0.8", lineno=4)[1].line == 4


def test_target_line_is_kept_but_not_compared() -> None:
    (target,) = parse_targets("precision > 0.9", lineno=12)
    assert target.line == 12
    assert target == Target("precision", ">", 0.9)


BAD_LINES: list[tuple[str, str]] = [
    ("foo_score > 3", r"unknown metric 'foo_score'"),
    ("precision is good", r"no metric, operator and value"),
    ("precision > 0.9 recall > 0.8", r"no metric, operator and value"),
    ("precision > 0.9 on weekends", r"unexpected words after the value: 'on weekends'"),
    ("precision > 1.5", r"fraction in \[0, 1\]"),
    ("lift over best baseline >= 20", r"a lift needs a unit"),
    ("precision > $5", r"unit '\$' does not fit precision"),
    ("latency_p99 < 100%", r"unit '%' does not fit latency_p99"),
    ("RMSE < -3", r"must not be negative"),
    ("better than the model by 5%", r"relative_to must name a baseline or model"),
]


@pytest.mark.parametrize(("line", "reason"), BAD_LINES, ids=[b[0] for b in BAD_LINES])
def test_bad_line_names_file_line_text_and_canonical_form(line: str, reason: str) -> None:
    text = ("# Churn\n\n**Problem type**: classification\n\n## Success Criteria\n"
            f"- precision >= 0.9\n- {line}\n")
    pattern = (rf"^specs/churn\.md, line 7: cannot read target {re.escape(repr('- ' + line))}: "
               rf".*{reason}.*canonical form, e\.g\. 'precision >= 0\.9'")
    with pytest.raises(SpecError, match=pattern):
        parse_spec(text, source="specs/churn.md")


def test_unknown_metric_suggests_close_name() -> None:
    with pytest.raises(SpecError, match=r"unknown metric 'precison' \(did you mean 'precision'\?\)"):
        parse_targets("precison >= 0.9", source="spec.md", lineno=3)


def test_parse_targets_without_line_number_names_source() -> None:
    with pytest.raises(SpecError, match=r"^cfg\.md: cannot read target"):
        parse_targets("nonsense", source="cfg.md")


@pytest.mark.parametrize("line", ["", "   ", "- ", ","])
def test_empty_target_line_is_an_error(line: str) -> None:
    with pytest.raises(SpecError, match="empty target line"):
        parse_targets(line)


def test_spec_error_is_value_error() -> None:
    with pytest.raises(ValueError):
        parse_targets("foo > 1")
    assert issubclass(SpecError, SpecweaveError)


# --- Target: construction, metric_key, is_met ---------------------------------------------------
@pytest.mark.parametrize(("kwargs", "message"), [
    ({"metric": "foo", "op": ">", "value": 1}, r"unknown metric 'foo'"),
    ({"metric": "primary", "op": ">", "value": 1}, r"unknown metric 'primary'"),
    ({"metric": "f1", "op": "=>", "value": 0.5}, r"unknown operator '=>'"),
    ({"metric": "f1", "op": ">", "value": math.nan}, r"must be finite"),
    ({"metric": "f1", "op": ">", "value": "high"}, r"must be a number, got 'high'"),
    ({"metric": "f1", "op": ">", "value": 0.5, "unit": "ms"}, r"unit 'ms' does not fit f1"),
    ({"metric": "latency_p99", "op": "<", "value": 100}, r"unit '' does not fit latency_p99"),
    ({"metric": "primary", "op": ">=", "value": 20, "unit": "ms", "relative_to": "best_baseline"},
     r"does not fit primary lift"),
    ({"metric": "primary", "op": ">=", "value": 20, "unit": "%", "relative_to": "Best Baseline"},
     r"relative_to must name a baseline"),
    ({"metric": "recall", "op": ">=", "value": 80}, r"fraction in \[0, 1\]"),
])
def test_invalid_target_raises(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        Target(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(("target", "key"), [
    (Target("latency_p99", "<", 100, "ms"), "latency_p99_ms"),
    (Target("latency_p50", "<", 20, "ms"), "latency_p50_ms"),
    (Target("latency_p95", "<", 50, "ms"), "latency_p95_ms"),
    (Target("throughput", ">=", 1000, "req/s"), "throughput_rps"),
    (Target("primary", ">=", 20, "%", **LIFT_BEST), "lift_best_baseline_pct"),
    (Target("primary", ">=", 3, "x", relative_to="random_baseline"), "lift_random_baseline_x"),
    (Target("accuracy", ">=", 3, "x", relative_to="random_baseline"),
     "accuracy_lift_random_baseline_x"),
    (Target("precision_at_10", ">", 0.25), "precision_at_10"),
    (Target("mape", "<", 10, "%"), "mape"),
    (Target("rmse", "<", 50, "$"), "rmse"),
])
def test_metric_key(target: Target, key: str) -> None:
    assert target.metric_key == key


@pytest.mark.parametrize(("op", "measured", "expected"), [
    (">", 0.91, True), (">", 0.9, False), (">", 0.89, False),
    (">=", 0.91, True), (">=", 0.9, True), (">=", 0.89, False),
    ("<", 0.89, True), ("<", 0.9, False), ("<", 0.91, False),
    ("<=", 0.89, True), ("<=", 0.9, True), ("<=", 0.91, False),
    ("==", 0.9, True), ("==", 0.3 * 3, True), ("==", 0.91, False),
])
def test_is_met_for_every_op(op: str, measured: float, expected: bool) -> None:
    assert Target("precision", op, 0.9).is_met(measured) is expected


@pytest.mark.parametrize("op", OPS)
def test_is_met_is_false_for_nan(op: str) -> None:
    assert Target("rmse", op, 5).is_met(math.nan) is False


@pytest.mark.parametrize(("target", "text"), [
    (Target("precision_at_10", ">", 0.25), "precision@10 > 0.25"),
    (Target("latency_p99", "<", 100, "ms"), "latency_p99 < 100 ms"),
    (Target("throughput", ">=", 1000, "req/s"), "throughput >= 1000 req/s"),
    (Target("primary", ">=", 20, "%", **LIFT_BEST), "lift over best baseline >= 20%"),
    (Target("accuracy", ">=", 3, "x", relative_to="random_baseline"),
     "accuracy lift over random baseline >= 3x"),
    (Target("mape", "<", 10, "%"), "MAPE < 10%"),
    (Target("rmse", "<", 50, "$"), "RMSE < $50"),
    (Target("roc_auc", ">=", 0.9), "roc_auc >= 0.9"),
    (Target("r2", ">", 1e-20), "r2 > 1e-20"),
])
def test_render_canonical_text(target: Target, text: str) -> None:
    assert target.render() == text


# --- round trips (hypothesis) ----------------------------------------------------------------------
_ops = st.sampled_from(OPS)
_nonneg = st.floats(min_value=0, max_value=1e300, allow_nan=False, allow_infinity=False)
_at_k = st.builds("{}_at_{}".format, st.sampled_from(["precision", "recall", "ndcg", "map"]),
                  st.integers(1, 1000))
_ratio = st.sampled_from(["precision", "recall", "f1", "accuracy", "roc_auc", "pr_auc"]) | _at_k
_absolute = st.one_of(
    st.builds(Target, _ratio, _ops, st.floats(0, 1)),
    st.builds(Target, st.just("r2"), _ops, st.floats(-1e6, 1)),
    st.builds(Target, st.sampled_from(["rmse", "mae"]), _ops, _nonneg, st.sampled_from(["", "$"])),
    st.builds(Target, st.just("mape"), _ops, _nonneg, st.sampled_from(["", "%"])),
    st.builds(Target, st.just("log_loss"), _ops, _nonneg),
    st.builds(Target, st.sampled_from(["latency_p50", "latency_p95", "latency_p99"]), _ops,
              _nonneg, st.just("ms")),
    st.builds(Target, st.just("throughput"), _ops, _nonneg, st.just("req/s")),
)
_refs = st.sampled_from(["best_baseline", "random_baseline", "majority_baseline", "previous_model",
                         "stratified_random_baseline", "production_model", "seasonal_naive_baseline"])
_lift = st.builds(Target, st.sampled_from(["primary", "accuracy", "rmse", "mape", "f1"]) | _at_k,
                  _ops, _nonneg, st.sampled_from(["%", "x"]), _refs)
_targets = _absolute | _lift
_titles = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9 ,.()_-]{0,40}[A-Za-z0-9)]", fullmatch=True)


@settings(max_examples=300)
@given(_targets)
def test_render_parses_back_to_same_target(target: Target) -> None:
    assert parse_targets(target.render()) == [target]
    assert parse_targets("- " + target.render()) == [target]


@settings(max_examples=100, deadline=None)
@given(_titles, st.sampled_from(problems.names()), st.lists(_targets, max_size=8),
       st.none() | st.sampled_from(["roc_auc", "f1", "rmse", "mape", "ndcg_at_10"]))
def test_render_spec_round_trip(title: str, problem_type: str, targets: list[Target],
                                primary: str | None) -> None:
    spec = Spec(title, problem_type, tuple(targets), primary_metric=primary)
    back = parse_spec(render_spec(spec))
    assert back.targets == spec.targets
    # The template's requirement bullets (baselines, candidates, explainability) come back as
    # requirements, not targets.
    assert "explainability" in {r.kind for r in back.requirements}
    assert replace(back, requirements=()) == spec


# --- spec.md parsing -------------------------------------------------------------------------------
SPEC_TEXT = """\
# Churn prediction

**Problem type**: classification

## Problem Definition
Predict churn. Precision is good here, and this prose is not a target.

## Model Requirements
**Primary metric**: ROC AUC

## Success Criteria
<!-- one target a line -->

- precision >= 0.9
<!--
- this line is inside a comment and ignored
-->
### Serving
- Latency: <100ms inference
- Throughput: 1000 req/sec  <!-- p99 load test -->

## Out of Scope
Anything else.
"""


def test_parse_spec_reads_everything() -> None:
    spec = parse_spec(SPEC_TEXT, source="spec.md")
    assert spec.title == "Churn prediction"
    assert spec.problem_type == "classification"
    assert spec.primary_metric == "roc_auc"
    assert spec.path is None
    assert spec.targets == (Target("precision", ">=", 0.9), Target("latency_p99", "<", 100, "ms"),
                            Target("throughput", ">=", 1000, "req/s"))
    assert [t.line for t in spec.targets] == [14, 19, 20]


@pytest.mark.parametrize(("line", "expected"), [
    ("Problem type: regression", "regression"),
    ("Problem Type: binary classification", "classification"),
    ("**Problem type**: Multi-class", "classification"),
    ("- **Problem type**: Regression (LTV in USD)", "regression"),
])
def test_problem_type_spellings(line: str, expected: str) -> None:
    assert parse_spec(f"# T\n{line}\n").problem_type == expected


@pytest.mark.parametrize("line", [
    "**Problem type**: Time series", "**Problem type:** Time-series forecasting",
    "- **Problem type**: forecasting (weekly)",
])
def test_the_forecasting_spellings_name_the_timeseries_type(line: str) -> None:
    assert parse_spec(f"# T\n{line}\n", source="spec.md").problem_type == "timeseries"


@pytest.mark.parametrize(("problem_type", "primary"), [
    ("classification", "roc_auc"), ("regression", "rmse"),
])
def test_default_primary_metric(problem_type: str, primary: str) -> None:
    assert parse_spec(f"# T\n\n**Problem type**: {problem_type}\n").primary_metric == primary


def test_spec_without_success_criteria_has_no_targets() -> None:
    assert parse_spec("# T\n\n**Problem type**: regression\n\n## Problem Definition\nx\n").targets == ()


@pytest.mark.parametrize(("text", "message"), [
    ("", r"^my/spec\.md: no title"),
    ("**Problem type**: classification\n# T\n", r"^my/spec\.md: no title.*line 1"),
    ("## Success Criteria\n", r"^my/spec\.md: no title"),
    ("# T\n\n## Problem Definition\n", r"^my/spec\.md: no problem type"),
    ("# T\n**Problem type**: clustering\n", r"^my/spec\.md, line 2: unknown problem type 'clustering'"),
    ("# T\n**Problem type**: regression\n**Primary metric**: speed\n",
     r"^my/spec\.md, line 3: unknown primary metric 'speed'"),
])
def test_invalid_spec_names_the_file(text: str, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        parse_spec(text, source="my/spec.md")


def test_load_spec_sets_path(tmp_path: Path) -> None:
    path = tmp_path / "spec.md"
    path.write_text(SPEC_TEXT, encoding="utf-8")
    spec = load_spec(path)
    assert spec.path == path
    assert len(spec.targets) == 3


def test_load_spec_error_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "spec.md"
    path.write_text("# T\n**Problem type**: regression\n## Success Criteria\n- speed > 3\n",
                    encoding="utf-8")
    with pytest.raises(SpecError, match=rf"^{re.escape(str(path))}, line 4: .*'speed'"):
        load_spec(str(path))


@pytest.mark.parametrize("make", ["missing", "directory", "binary"])
def test_load_spec_unreadable(tmp_path: Path, make: str) -> None:
    path = tmp_path / "spec.md"
    if make == "directory":
        path.mkdir()
    elif make == "binary":
        path.write_bytes(b"# T\n\xff\xfe\x00")
    with pytest.raises(SpecError, match=re.escape(str(path))):
        load_spec(path)


def test_spec_validates_itself() -> None:
    with pytest.raises(SpecError, match="unknown problem type 'clustering'"):
        Spec("T", "clustering", ())
    with pytest.raises(SpecError, match="title"):
        Spec("  ", "regression", ())
    with pytest.raises(SpecError, match="unknown primary metric"):
        Spec("T", "regression", (), primary_metric="speed")
    assert Spec("T", "regression", [Target("r2", ">", 0.5)]).targets == (Target("r2", ">", 0.5),)


# --- templates -------------------------------------------------------------------------------------
@pytest.mark.parametrize("problem_type", problems.names())
def test_templates_render_parse_and_list_nine_tasks(problem_type: str) -> None:
    docs = render_increment_docs("Churn model", problem_type, increment_id="0007-churn-model")
    assert set(docs) == {"spec.md", "plan.md", "tasks.md", "tests.md"}
    for name, text in docs.items():
        assert "{{" not in text and "}}" not in text, name
        assert "Churn model" in text, name
    spec = parse_spec(docs["spec.md"], source="spec.md")
    assert (spec.title, spec.problem_type) == ("Churn model", problem_type)
    assert spec.targets == default_targets(problem_type)
    lines = docs["tasks.md"].splitlines()
    checkbox = [i for i, line in enumerate(lines) if line.startswith("- [")]
    assert [lines[i] for i in checkbox] == [f"- [ ] {tid}: {title}" for tid, title in TASKS]
    for i in checkbox:
        assert lines[i + 1].startswith("  ") and lines[i + 1].strip(), lines[i]
    for heading in ("## Approach", "## Stages", "## Ray Tune sweep layout", "## Risks"):
        assert heading in docs["plan.md"]
    assert "0007-churn-model" in docs["plan.md"]
    for target in spec.targets:
        assert f"`{target.metric_key}`" in docs["tests.md"]


def test_render_increment_docs_with_custom_targets() -> None:
    targets = [Target("mape", "<", 8, "%"), Target("primary", ">=", 2, "x", **LIFT_BEST)]
    docs = render_increment_docs("Demand", "regression", increment_id="0002-demand", targets=targets)
    assert parse_spec(docs["spec.md"]).targets == tuple(targets)
    assert "| `MAPE < 8%` | `mape` |" in docs["tests.md"]


def test_render_increment_docs_rejects_unknown_problem_type() -> None:
    with pytest.raises(SpecError, match="unknown problem type 'clustering'"):
        render_increment_docs("T", "clustering", increment_id="0001-t")


@pytest.mark.parametrize("problem_type", problems.names())
def test_default_targets_carry_a_lift_over_best_baseline(problem_type: str) -> None:
    targets = default_targets(problem_type)
    assert Target("primary", ">=", 20, "%", **LIFT_BEST) in targets
    assert len({t.metric_key for t in targets}) == len(targets)


def test_default_targets_rejects_unknown_problem_type() -> None:
    with pytest.raises(SpecError, match="unknown problem type 'ranking'; known: classification"):
        default_targets("ranking")


def test_docstring_examples_run() -> None:
    result = doctest.testmod(spec_module)
    assert result.attempted > 0 and result.failed == 0


# --- the spec.md the workflow writes (the seed's exact lines) -----------------------------------
SEED_SPEC = """\
# Recommendation Model

## ML Problem Definition
- Problem type: Binary classification
- Input: User behavior history
- Output: Top-N product recommendations
- Success metrics: Precision@10 > 0.25, Recall@10 > 0.15

## Data Requirements
- Training data: 6 months user interactions
- Validation: Last month
- Features: User profile, product attributes, interaction history

## Model Requirements
- Latency: <100ms inference
- Throughput: 1000 req/sec
- Accuracy: Better than random baseline by 3x
- Explainability: Must explain top-3 recommendations
"""


def test_workflow_spec_parses_every_target_where_it_stands() -> None:
    spec = parse_spec(SEED_SPEC, source="spec.md")
    assert spec.targets == (
        Target("precision_at_10", ">", 0.25), Target("recall_at_10", ">", 0.15),
        Target("latency_p99", "<", 100, "ms"), Target("throughput", ">=", 1000, "req/s"),
        Target("accuracy", ">=", 3, "x", relative_to="random_baseline"),
    )
    assert [t.line for t in spec.targets] == [7, 7, 15, 16, 17]
    # The lift names the random baseline, not the best one.
    assert [t.baseline for t in spec.targets] == [None, None, None, None, "random"]
    assert spec.targets[-1].metric_key == "accuracy_lift_random_baseline_x"


def test_workflow_spec_keeps_requirement_bullets() -> None:
    spec = parse_spec(SEED_SPEC, source="spec.md")
    assert spec.requirements == (
        Requirement("Input", "User behavior history"),
        Requirement("Output", "Top-N product recommendations"),
        Requirement("Explainability", "Must explain top-3 recommendations"),
    )
    assert [r.line for r in spec.requirements] == [5, 6, 18]
    explain = spec.requirements[-1]
    assert (explain.kind, explain.checked, explain.top_k) == ("explainability", True, 3)
    assert not spec.requirements[0].checked
    # Data Requirements bullets are neither targets nor checked requirements.
    assert "training_data" not in {r.kind for r in spec.requirements}


@pytest.mark.parametrize(("line", "expected"), [
    ("- spec.md: Binary classification, 99% precision target", [Target("precision", ">=", 0.99)]),
    ("- Regression, RMSE < $50 target", [Target("rmse", "<", 50, "$")]),
    ("- Time series, MAPE < 10% target", [Target("mape", "<", 10, "%")]),
    ("- Requirement: New model must beat best baseline by 20%+",
     [Target("primary", ">=", 20, "%", relative_to="best_baseline")]),
    ("- Accuracy: Better than random baseline by 3x",
     [Target("accuracy", ">=", 3, "x", relative_to="random_baseline")]),
    ("- Success metrics: Precision@10 > 0.25, Recall@10 > 0.15",
     [Target("precision_at_10", ">", 0.25), Target("recall_at_10", ">", 0.15)]),
])
def test_workflow_example_lines(line: str, expected: list[Target]) -> None:
    assert parse_targets(line) == expected


def test_example_line_names_the_problem_type_when_no_line_does() -> None:
    spec = parse_spec("# LTV\n\n## Success Criteria\n- Regression, RMSE < $50 target\n")
    assert (spec.problem_type, spec.targets) == ("regression", (Target("rmse", "<", 50, "$"),))


@pytest.mark.parametrize(("section", "line", "reason"), [
    ("Model Requirements", "Latency: <fast", r"no metric, operator and value"),
    ("ML Problem Definition", "Success metrics: Precison@10 > 0.25", r"unknown metric"),
    ("Model Requirements", "Accuracy: better than random baseline by 3", r"a lift needs a unit"),
    ("Success Criteria", "Binary classification", r"names a problem type but no metric"),
    ("Success Criteria", "fast enough", r"no metric, operator and value"),
])
def test_unreadable_target_anywhere_names_file_and_line(section: str, line: str, reason: str) -> None:
    text = f"# T\n**Problem type**: classification\n## {section}\n- Input: rows\n- {line}\n"
    with pytest.raises(SpecError, match=rf"^specs/t\.md, line 5: cannot read target .*{reason}"):
        parse_spec(text, source="specs/t.md")


def test_requirement_lines_are_never_targets_nor_errors() -> None:
    text = ("# T\n**Problem type**: classification\n## Success Criteria\n- precision >= 0.9\n"
            "- Explainability: SHAP values for every prediction\n## Model Requirements\n"
            "- Baselines: random and majority-class dummy models\n"
            "- Candidates: logistic regression, random forest\nSome prose with 99% in it.\n")
    spec = parse_spec(text)
    assert spec.targets == (Target("precision", ">=", 0.9),)
    assert [r.kind for r in spec.requirements] == ["explainability", "baselines", "candidates"]
    assert spec.requirements[0].top_k is None
