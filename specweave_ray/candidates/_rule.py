"""A safe boolean expression over DataFrame columns, for :class:`RuleClassifier`.

The rule is parsed with :mod:`ast` and walked node by node; it is never passed to ``eval``.
Only comparisons, ``and``/``or``/``not``, column names and numeric/string/boolean constants
(and lists or tuples of them, for ``in``) are accepted; anything else — calls, attributes,
subscripts, arithmetic, lambdas — is refused with the offending construct named.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable
from typing import Any

import numpy as np

from specweave_ray.exceptions import CandidateError

_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}
_ALLOWED = "comparisons (== != < <= > >= in, not in), and/or/not, column names, constants"


def parse_rule(rule: str) -> ast.Expression:
    """Parse ``rule`` and check every node is allowed.

    Raises:
        CandidateError: The rule is not a string, does not parse, or uses a forbidden construct.
    """
    if not isinstance(rule, str) or not rule.strip():
        raise CandidateError(
            f"a rule must be a non-empty string such as 'balance > 1800', got {rule!r}"
        )
    try:
        tree = ast.parse(rule.strip(), mode="eval")
    except SyntaxError as err:
        raise CandidateError(f"rule {rule!r} is not a valid expression: {err.msg}") from err
    for node in ast.walk(tree):
        _check_node(node, rule)
    return tree


def rule_columns(tree: ast.Expression) -> list[str]:
    """Column names a parsed rule reads, in order of first use."""
    names = [node.id for node in ast.walk(tree) if isinstance(node, ast.Name)]
    return list(dict.fromkeys(names))


def evaluate_rule(tree: ast.Expression, frame: Any, *, rule: str) -> np.ndarray:
    """Evaluate a parsed rule on a DataFrame; missing values compare as False.

    Returns:
        A boolean array with one entry per row of ``frame``.
    """
    try:
        result = _eval(tree.body, frame)
    except TypeError as err:
        raise CandidateError(f"rule {rule!r} cannot be evaluated on these columns: {err}") from err
    return np.broadcast_to(_as_bool(result), (len(frame),)).copy()


def _check_node(node: ast.AST, rule: str) -> None:
    allowed = (
        ast.Expression,
        ast.BoolOp,
        ast.And,
        ast.Or,
        ast.UnaryOp,
        ast.Not,
        ast.USub,
        ast.UAdd,
        ast.Compare,
        ast.In,
        ast.NotIn,
        ast.Name,
        ast.Load,
        ast.Constant,
        ast.List,
        ast.Tuple,
        *_COMPARE,
    )
    if not isinstance(node, allowed):
        raise CandidateError(
            f"rule {rule!r} uses {type(node).__name__}, which is not allowed; a rule may use "
            f"only {_ALLOWED}"
        )
    if isinstance(node, ast.Constant) and not isinstance(node.value, (bool, int, float, str)):
        raise CandidateError(
            f"rule {rule!r} uses the constant {node.value!r}; use numbers or strings"
        )
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        if not isinstance(node.operand, ast.Constant) or isinstance(node.operand.value, str):
            raise CandidateError(f"rule {rule!r}: a sign may only prefix a number")
    if isinstance(node, (ast.List, ast.Tuple)) and not all(
        isinstance(elt, (ast.Constant, ast.UnaryOp)) for elt in node.elts
    ):
        raise CandidateError(f"rule {rule!r}: a list after 'in' may hold only constants")


def _eval(node: ast.AST, frame: Any) -> Any:
    if isinstance(node, ast.Name):
        return frame[node.id]
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.UnaryOp):
        if isinstance(node.op, ast.Not):
            return ~_as_bool(_eval(node.operand, frame))
        value = _eval(node.operand, frame)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_eval(elt, frame) for elt in node.elts]
    if isinstance(node, ast.BoolOp):
        parts = [_as_bool(_eval(value, frame)) for value in node.values]
        combine = np.logical_and if isinstance(node.op, ast.And) else np.logical_or
        return combine.reduce(np.broadcast_arrays(*parts))
    if isinstance(node, ast.Compare):
        result: Any = True
        left = _eval(node.left, frame)
        for op, comparator in zip(node.ops, node.comparators, strict=True):
            right = _eval(comparator, frame)
            result = np.logical_and(result, _compare(op, left, right))
            left = right
        return result
    raise CandidateError(f"unsupported rule node {type(node).__name__}")  # unreachable after parse


def _compare(op: ast.cmpop, left: Any, right: Any) -> np.ndarray:
    if isinstance(op, (ast.In, ast.NotIn)):
        if not isinstance(right, list):
            raise TypeError(
                "'in' needs a list or tuple of constants on its right, e.g. x in (1, 2)"
            )
        if hasattr(left, "isin"):  # a column: pandas handles missing values (NA is not in)
            inside = _as_bool(left.isin(right))
        else:
            inside = np.asarray(left in right, dtype=bool)
        return ~inside if isinstance(op, ast.NotIn) else inside
    return _as_bool(_COMPARE[type(op)](left, right))


def _as_bool(value: Any) -> np.ndarray:
    """Booleans as a numpy array; pandas' missing values (NA) count as False."""
    if hasattr(value, "fillna") and hasattr(value, "dtype"):
        if str(value.dtype) in ("bool", "boolean"):
            value = value.astype("boolean").fillna(False)
        else:  # a bare column used as a condition: non-zero and present
            value = value.notna() & (value != 0)
    return np.asarray(value, dtype=bool)
