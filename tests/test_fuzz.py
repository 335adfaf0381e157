"""Property-based: random and mutated inputs to the parsers a user or a client feeds either parse
or raise the project's own error with a message, never another exception (a traceback).

The spec parser, the target grammar, the pipeline config, the serve payload parsers and the row
validator, each fed text or JSON built from the valid shapes and then mutated (characters
dropped, duplicated or swapped, values replaced by other JSON).
"""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from specweave_ray.deploy._rows import RowValidator
from specweave_ray.deploy.serve import parse_recommend, parse_rows
from specweave_ray.exceptions import BadRequest, SpecweaveError
from specweave_ray.spec._grammar import parse_spec, parse_targets
from specweave_ray.spec.config import parse_config

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

TARGET_LINES = ["- precision >= 0.8", "- Precision@10 > 0.25, Recall@10 > 0.15", "- Latency: <100ms inference",
                "- Throughput: 1000 req/sec", "- Accuracy: Better than random baseline by 3x",
                "- Regression, RMSE < $50 target", "- Requirement: New model must beat best baseline by 20%+",
                "- Explainability: Must explain top-3 recommendations", "- lift over best baseline >= 20%",
                "- MAPE < 10%", "- r2 >= 0.7", "- latency_p99 < 100 ms"]
SPEC = ("# Spec: {title}\n\n**Problem type**: {ptype}\n\n## ML Problem Definition\n{a}\n\n"
        "## Success Criteria\n{b}\n{c}\n")
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
                    max_leaves=10)


@st.composite
def mutated(draw, text: str) -> str:
    """``text`` with a few characters dropped, repeated, swapped or inserted."""
    chars = list(text)
    for _ in range(draw(st.integers(0, 4))):
        if not chars:
            break
        i = draw(st.integers(0, len(chars) - 1))
        op = draw(st.sampled_from(["drop", "dup", "swap", "insert"]))
        if op == "drop":
            del chars[i]
        elif op == "dup":
            chars.insert(i, chars[i])
        elif op == "swap" and i + 1 < len(chars):
            chars[i], chars[i + 1] = chars[i + 1], chars[i]
        else:
            chars.insert(i, draw(st.sampled_from(list("<>=%$x@,.-: 0123456789\n#*`"))))
    return "".join(chars)


def _own_error(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except SpecweaveError as err:
        assert str(err).strip(), f"{type(err).__name__} with no message"
        return None


@FAST
@given(st.sampled_from(TARGET_LINES).flatmap(mutated))
def test_a_target_line_parses_or_is_refused_with_a_message(line):
    _own_error(parse_targets, line, source="spec.md", lineno=3)


@FAST
@given(st.builds(lambda title, ptype, a, b, c: SPEC.format(title=title, ptype=ptype, a=a, b=b, c=c),
                 st.text(min_size=1, max_size=12), st.sampled_from(["classification", "regression", "recommendation",
                                                                    "binary", "clasification", ""]),
                 st.sampled_from(TARGET_LINES), st.sampled_from(TARGET_LINES), st.sampled_from(TARGET_LINES))
       .flatmap(mutated))
def test_a_spec_parses_or_names_the_problem(text):
    spec = _own_error(parse_spec, text, source="spec.md")
    if spec is not None:
        assert spec.title.strip() and "\n" not in spec.title


VALID_CONFIG = {"increment": "Fraud", "problem_type": "classification",
                "data": {"generate": "fraud", "rows": 1000, "target": "is_fraud"},
                "sweep": {"cv": 3, "num_cpus": 2}, "baselines": {"rule": "amount > 900"},
                "candidates": [{"name": "xgb", "estimator": "xgboost", "params": {"max_depth": {"randint": [2, 6]}}}]}


def _paths(obj, prefix=()):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield (*prefix, k)
            yield from _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield (*prefix, i)
            yield from _paths(v, (*prefix, i))


PATHS = list(_paths(VALID_CONFIG))


@FAST
@given(st.lists(st.tuples(st.sampled_from(PATHS), JSON), min_size=1, max_size=3))
def test_a_mutated_config_loads_or_names_the_field(changes):
    cfg = json.loads(json.dumps(VALID_CONFIG))
    for path, value in changes:
        node = cfg
        try:
            for key in path[:-1]:
                node = node[key]
            node[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue
    _own_error(parse_config, cfg, source="cfg.yaml")


@FAST
@given(JSON | st.lists(st.dictionaries(st.text(max_size=5), JSON, max_size=4), max_size=3))
def test_a_predict_body_parses_or_is_a_4xx(data):
    body = json.dumps(data, allow_nan=True).encode()
    try:
        rows = parse_rows(body, max_rows=2)
    except BadRequest as err:
        assert err.status in (413, 422) and str(err)
        return
    assert all(isinstance(r, dict) for r in rows)


@FAST
@given(st.binary(max_size=40) | JSON.map(lambda d: json.dumps(d, allow_nan=True).encode()))
def test_a_recommend_body_parses_or_is_a_4xx(body):
    try:
        parse_recommend(body, max_rows=3)
    except BadRequest as err:
        assert err.status in (413, 422) and str(err)


SCHEMA = {"amount": {"kind": "number", "dtype": "float64", "nullable": False, "min": 0.0, "max": 5000.0},
          "merchant": {"kind": "string", "dtype": "object", "categories": ["fuel", "travel"]},
          "card_present": {"kind": "boolean", "dtype": "bool"},
          "day": {"kind": "datetime", "dtype": "datetime64[ns]"}}


@FAST
@given(st.lists(st.dictionaries(st.sampled_from([*SCHEMA, "other"]), JSON, max_size=5), min_size=1, max_size=3))
def test_rows_check_against_the_schema_or_name_the_field(rows):
    try:
        out = RowValidator(SCHEMA).check_records(rows)
    except SpecweaveError as err:
        assert str(err).strip()
        return
    for row in out:
        for value in row.values():
            assert not (isinstance(value, float) and math.isinf(value))


@pytest.mark.parametrize("body", [b"[" * 100_000, b'{"rows": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"])
def test_deeply_nested_json_is_a_422_not_a_recursion_error(body):
    with pytest.raises(BadRequest) as err:
        parse_rows(body, max_rows=10)
    assert err.value.status == 422
