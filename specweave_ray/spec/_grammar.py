"""``spec.md`` <-> :class:`Spec`: problem type and success criteria as typed :class:`Target` s.

The parser reads the canonical lines that :meth:`Target.render` writes (``precision@10 > 0.25``,
``latency_p99 < 100 ms``, ``lift over best baseline >= 20%``) and the plain phrasings of the
workflow's own spec (``Success metrics: Precision@10 > 0.25, Recall@10 > 0.15``, ``Latency: <100ms
inference``, ``Throughput: 1000 req/sec``, ``Accuracy: Better than random baseline by 3x``,
``Binary classification, 99% precision target``, ``New model must beat best baseline by 20%+``),
wherever they stand in ``## ML Problem Definition``, ``## Model Requirements`` or ``## Success
Criteria``. Bullets there that are not metrics (``Explainability: Must explain top-3
recommendations``, ``Input: User behavior history``) are kept as :class:`Requirement` s. A line
that looks like a target but can't be read is a :class:`SpecError` naming the file and line,
never skipped. Templates per problem type live in ``templates/<problem_type>/``.
"""

from __future__ import annotations

import math
import operator
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from difflib import get_close_matches
from importlib import resources
from pathlib import Path

from specweave_ray import problems
from specweave_ray.exceptions import ConfigError, SpecError
from specweave_ray.metrics import METRICS, canonical, find, known_text

__all__ = [
    "LOWER_IS_BETTER", "OPS", "TASKS", "Requirement", "Spec", "Target", "default_targets",
    "load_spec", "parse_spec", "parse_targets", "render_increment_docs", "render_spec",
]

TASKS: tuple[tuple[str, str], ...] = (
    ("T-001", "Data exploration"), ("T-002", "Feature pipeline"), ("T-003", "Baselines"),
    ("T-004", "Candidate models"), ("T-005", "Hyperparameter tuning"), ("T-006", "Evaluation"),
    ("T-007", "Explainability"), ("T-008", "Deployment preparation"), ("T-009", "A/B test plan"),
)
OPS: tuple[str, ...] = (">", ">=", "<", "<=", "==")
# Derived from the one vocabulary (specweave_ray.metrics): names, directions, units, spellings.
LOWER_IS_BETTER: frozenset[str] = frozenset(m.name for m in METRICS.values() if m.lower_is_better)

_OP_FUNCS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le,
    # Measured metrics are floats from arithmetic; exact equality would almost never hold.
    "==": lambda a, b: math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12),
}
_REF_NAME = re.compile(r"(?:[a-z0-9]+_){1,3}(?:baseline|model)")
_EXAMPLES = ("'precision >= 0.9', 'latency_p99 < 100 ms', 'throughput >= 1000 req/s', "
             "'MAPE < 10%', 'RMSE < $50', 'lift over best baseline >= 20%'")

# --- line grammar (applied to the lower-cased, cleaned line) ---------------------------------
_NUM = r"-?(?:(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+)(?:e[+-]?\d+)?"
_UNIT_WORDS = {
    "%": "%", "x": "x", "times": "x", "ms": "ms", "msec": "ms", "millisecond": "ms",
    "milliseconds": "ms", "s": "s", "sec": "s", "secs": "s", "second": "s", "seconds": "s",
    "us": "us", "microsecond": "us", "microseconds": "us", "rps": "req/s", "qps": "req/s",
    "/s": "req/s", "req/s": "req/s", "req/sec": "req/s", "req/second": "req/s",
    "requests/s": "req/s", "requests/sec": "req/s", "requests/second": "req/s",
    "requests per second": "req/s", "req per second": "req/s", "predictions/s": "req/s",
}
_UNIT = "|".join(re.escape(u) for u in sorted(_UNIT_WORDS, key=len, reverse=True))
_VALUE = rf"(?P<cur>\$)?\s*(?P<num>{_NUM})\s*(?:(?P<unit>{_UNIT})(?![a-z/]))?"
_OP_WORDS = {
    ">=": ">=", "<=": "<=", "==": "==", ">": ">", "<": "<", "=": "==", "at least": ">=",
    "no less than": ">=", "at most": "<=", "no more than": "<=", "up to": "<=", "within": "<=",
    "less than": "<", "lower than": "<", "below": "<", "under": "<", "greater than": ">",
    "more than": ">", "higher than": ">", "above": ">", "over": ">",
}
_OPS_RE = "|".join(  # symbols first; words only as whole words ("recall at 10" is no op)
    [re.escape(o) for o in sorted(_OP_WORDS, key=len, reverse=True) if not o[0].isalpha()]
    + [rf"(?<![a-z]){re.escape(o)}(?![a-z])" for o in sorted(_OP_WORDS, key=len, reverse=True)
       if o[0].isalpha()]
)
_TAIL = r"(?P<tail>(?:\s+[a-z]+)*)"
_FLUFF = frozenset("target targets goal minimum min maximum max or better higher more less lower "
                   "inference prediction predictions per request required sustained".split())
_MET = r"(?:(?P<metric>[^<>=:]+?)\s*:?\s+)?"
_REF = r"(?P<ref>(?:[a-z0-9_]+\s+){0,4}?(?:baseline|model))"
_VS = r"(?:over|vs\.?|versus|against|relative to)"
_BEAT = r"(?:(?:is|must|should)\s+)?(?:be\s+)?(?:better than|beats?|outperforms?|improves? (?:on|over))"
_LIFT_PATTERNS = tuple(re.compile(p) for p in (
    rf"^{_MET}lift\s+{_VS}\s+{_REF}\s*:?\s*(?P<op>{_OPS_RE})\s*{_VALUE}{_TAIL}$",
    rf"^{_MET}lift\s*:?\s*(?P<op>{_OPS_RE})\s*{_VALUE}\s+{_VS}\s+{_REF}{_TAIL}$",
    rf"^{_MET}{_BEAT}\s+{_REF}\s+by\s+(?:at least\s+)?{_VALUE}{_TAIL}$",
    rf"^{_MET}(?:at least\s+)?{_VALUE}\s+(?:better than|over|above)\s+{_REF}{_TAIL}$",
    rf"^{_MET}lift\s*:?\s*(?P<op>{_OPS_RE})\s*{_VALUE}{_TAIL}$",
))
_ABS_PATTERNS = tuple(re.compile(p) for p in (
    rf"^(?P<metric>[^<>=:]+?)\s*:?\s*(?:(?:must be|should be|is|of)\s+)?(?P<op>{_OPS_RE})\s*{_VALUE}{_TAIL}$",
    rf"^(?P<metric>[^<>=:]+?)\s*:\s*{_VALUE}{_TAIL}$",
    rf"^{_VALUE}\s+(?P<metric>[^<>=:]+?)$",
))
# Sections whose bullets may hold targets; in the last, every line that is not a requirement is one.
_TARGET_SECTIONS = ("problem definition", "model requirements", "success criteria")
# The subject of a lift sentence that means the model being built ("New model must beat ...").
_SUBJECT = re.compile(r"(?:(?:the|our|a|new|candidate|chosen|best|final|production)\s+)*model")
_LOOKS_LIKE_TARGET = re.compile(
    rf"(?:(?:{_OPS_RE})\s*\$?\s*\d)|(?:\d\s*(?:{_UNIT})(?![a-z/]))|(?:\bbaseline\b.*\d)")
_REPLACE = (("≥", ">="), ("≤", "<="), ("=>", ">="), ("=<", "<="), ("²", "2"), ("×", "x"),
            ("µ", "u"), ("μ", "u"), ("\u2212", "-"), ("**", ""), ("`", ""), ("\u2009", " "), ("\u00a0", " "))


@dataclass(frozen=True)
class Target:
    """One success criterion: ``metric op value [unit]``, absolute or a lift over a reference.

    Values are normalised: ratio metrics as fractions, latency in ms, throughput in req/s,
    MAPE in percent, money as the number, lift in % or x.

    Example:
        >>> t = Target("latency_p99", "<", 100, "ms")
        >>> t.render(), t.metric_key, t.is_met(80.0)
        ('latency_p99 < 100 ms', 'latency_p99_ms', True)
    """

    metric: str
    op: str
    value: float
    unit: str = ""
    relative_to: str | None = None
    line: int | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        try:
            value = float(self.value)
        except (TypeError, ValueError) as err:
            raise SpecError(f"target value must be a number, got {self.value!r}") from err
        object.__setattr__(self, "value", value)
        lift = self.relative_to is not None
        if not (_is_metric(self.metric) or (lift and self.metric == "primary")):
            raise SpecError(f"unknown metric {self.metric!r}; known: {known_text()}")
        if self.op not in OPS:
            raise SpecError(f"unknown operator {self.op!r} for {self.metric}; use one of {OPS}")
        if not math.isfinite(value):
            raise SpecError(f"target value for {self.metric} must be finite, got {value!r}")
        units = ("%", "x") if lift else _units_for(self.metric)
        if self.unit not in units:
            raise SpecError(f"unit {self.unit!r} does not fit {self.metric}"
                            f"{' lift' if lift else ''}; use one of {units}")
        if lift and not _REF_NAME.fullmatch(str(self.relative_to)):
            raise SpecError(f"relative_to must name a baseline or model such as 'best_baseline' "
                            f"or 'previous_model', got {self.relative_to!r}")
        if value < 0 and (lift or self.metric != "r2"):
            raise SpecError(f"target value for {self.metric} must not be negative, got {value!r}")
        if not lift and _is_ratio(self.metric) and value > 1:
            raise SpecError(f"{self.metric} is a fraction in [0, 1], got {value!r}; "
                            f"write e.g. 0.99 or 99%")

    @property
    def baseline(self) -> str | None:
        """Which reference a lift is measured against: ``"random"``, ``"best"`` (the best of all
        baselines), another baseline's or model's name, or ``None`` for an absolute target.

        Example:
            >>> parse_targets("Accuracy: Better than random baseline by 3x")[0].baseline
            'random'
        """
        if self.relative_to is None:
            return None
        return self.relative_to.removesuffix("_baseline")

    @property
    def metric_key(self) -> str:
        """The key under which ``metrics.json`` records the measured value."""
        if self.relative_to is not None:
            key = f"lift_{self.relative_to}_{'pct' if self.unit == '%' else 'x'}"
            # A named metric's lift must not collide with the primary metric's lift.
            return key if self.metric == "primary" else f"{self.metric}_{key}"
        if self.metric.startswith("latency_"):
            return f"{self.metric}_ms"
        return "throughput_rps" if self.metric == "throughput" else self.metric

    def is_met(self, measured: float) -> bool:
        """Whether ``measured`` (in this target's normalised unit) satisfies the target."""
        measured = float(measured)
        return not math.isnan(measured) and _OP_FUNCS[self.op](measured, self.value)

    def render(self) -> str:
        """Canonical text of the target, without a leading ``- ``; it parses back to ``self``."""
        num = _fmt(self.value)
        if self.unit == "$":
            val = f"${num}"
        elif self.unit in ("%", "x", ""):
            val = num + self.unit
        else:
            val = f"{num} {self.unit}"
        if self.relative_to is None:
            return f"{_display(self.metric)} {self.op} {val}"
        prefix = "" if self.metric == "primary" else f"{_display(self.metric)} "
        return f"{prefix}lift over {self.relative_to.replace('_', ' ')} {self.op} {val}"


@dataclass(frozen=True)
class Requirement:
    """A requirement bullet that is not a metric target (``Explainability: Must explain top-3
    recommendations``, ``Input: User behavior history``): shown in reports, never an error.

    Example:
        >>> r = Requirement("Explainability", "Must explain top-3 recommendations", line=9)
        >>> r.kind, r.top_k
        ('explainability', 3)
    """

    label: str
    text: str
    line: int | None = field(default=None, compare=False)

    @property
    def kind(self) -> str:
        """The label as a lower-case key (``"explainability"``, ``"input"``); ``""`` without one."""
        return re.sub(r"[^a-z0-9]+", "_", self.label.lower()).strip("_")

    @property
    def checked(self) -> bool:
        """Whether ``validate`` checks it against the records (today: explainability)."""
        return self.kind.startswith("explainab")

    @property
    def top_k(self) -> int | None:
        """The number of explained predictions asked for (``top-3`` → 3), when the text names one."""
        match = re.search(r"\btop[\s-]*(\d+)\b", self.text.lower())
        return int(match[1]) if match else None

    def render(self) -> str:
        return f"{self.label}: {self.text}" if self.label else self.text


@dataclass(frozen=True)
class Spec:
    """A parsed ``spec.md``: title, problem type, success criteria, primary metric, and the
    requirement bullets that are not metrics.

    ``primary_metric`` defaults per problem type when not given.
    """

    title: str
    problem_type: str
    targets: tuple[Target, ...]
    path: Path | None = None
    primary_metric: str | None = None
    requirements: tuple[Requirement, ...] = ()

    def __post_init__(self) -> None:
        if not self.title.strip() or "\n" in self.title:
            raise SpecError(f"spec title must be one non-empty line, got {self.title!r}")
        _check_problem_type(self.problem_type)
        object.__setattr__(self, "targets", tuple(self.targets))
        object.__setattr__(self, "requirements", tuple(self.requirements))
        if self.primary_metric is None:
            object.__setattr__(self, "primary_metric", problems.get(self.problem_type).default_metric)
        elif not _is_metric(self.primary_metric):
            raise SpecError(f"unknown primary metric {self.primary_metric!r}; "
                            f"known: {known_text()}")


def parse_targets(line: str, *, source: str = "<string>", lineno: int | None = None) -> list[Target]:
    """Read the target(s) on one line; several may be separated by ``,`` or ``;``.

    A label that is not a metric (``Success metrics:``, ``Requirement:``, ``spec.md:``) is
    skipped, and so is a part that names a problem type (``Binary classification, 99% precision
    target``).

    Args:
        line: The text, with or without a leading bullet.
        source: File name used in error messages.
        lineno: 1-based line number, used in error messages and stored on each target.

    Returns:
        The targets, in order.

    Raises:
        SpecError: The line is empty, unreadable or names an unknown metric.

    Example:
        >>> [t.render() for t in parse_targets("- Precision@10 > 0.25, Latency: <0.1 s")]
        ['precision@10 > 0.25', 'latency_p99 < 100 ms']
        >>> [t.render() for t in parse_targets("- Success metrics: Precision@10 > 0.25, Recall@10 > 0.15")]
        ['precision@10 > 0.25', 'recall@10 > 0.15']
    """
    return _read_line(line, source=source, lineno=lineno)[0]


def parse_spec(text: str, *, source: str = "<string>") -> Spec:
    """Parse the text of a ``spec.md``.

    Raises:
        SpecError: No ``# title`` first line, a missing or unknown problem type, an unknown
            primary metric, or a line that looks like a target but can't be read.
    """
    title = problem = primary = None
    targets: list[Target] = []
    requirements: list[Requirement] = []
    accuracy_lines: set[int] = set()
    named_type: tuple[str, int] | None = None  # "- Regression, RMSE < $50 target" names the type in passing
    section, in_comment, in_fence, seen_content = "", False, False, False
    for lineno, raw in enumerate(text.splitlines(), 1):
        body, in_comment = _strip_comments(raw, in_comment)
        stripped = body.strip()
        if stripped.startswith(("```", "~~~")):
            in_fence = not in_fence
            continue
        if not stripped or in_fence:
            continue
        heading = re.match(r"(#{1,6})\s+(.*?)(?:\s+#+)?$", stripped)
        if not seen_content:
            seen_content = True
            if not heading or len(heading[1]) != 1 or not heading[2]:
                raise SpecError(f"{source}: no title: the first line must be '# <title>', "
                                f"got {stripped!r} on line {lineno}")
            title = heading[2]
            continue
        if heading:
            if len(heading[1]) <= 2:
                section = re.sub(r"\s+", " ", heading[2].lower())
            continue
        plain = stripped.replace("*", "").replace("`", "")
        if match := re.match(r"(?:-\s+)?problem[ _-]?type\s*:\s*(.+)$", plain, re.I):
            if problem is None:
                problem = _problem_type(match[1], where=f"{source}, line {lineno}")
            continue
        if match := re.match(r"(?:-\s+)?primary[ _-]?metric\s*:\s*(.+)$", plain, re.I):
            if primary is None:
                primary = _resolve_metric(re.sub(r"\s*\(.*$", "", match[1]))
                if primary is None:
                    raise SpecError(f"{source}, line {lineno}: unknown primary metric "
                                    f"{match[1]!r}; known: {known_text()}")
            continue
        if not any(name in section for name in _TARGET_SECTIONS):
            continue
        bullet = re.match(r"(?:[-*+]|\d+[.)])\s", stripped) is not None
        if not bullet and not section.startswith("success criteria"):
            continue  # prose under a heading
        if (req := _requirement(plain, strict=section.startswith("success criteria"))) is not None:
            requirements.append(replace(req, line=lineno))
            continue
        found, phrase = _read_line(stripped, source=source, lineno=lineno)
        if re.match(r"(?:[-*+]\s+)?accuracy\s*:", plain, re.I):
            accuracy_lines.add(lineno)
        targets.extend(found)
        if named_type is None and phrase is not None:
            named_type = (phrase, lineno)
    if title is None:
        raise SpecError(f"{source}: no title: the first line must be '# <title>'")
    if problem is None and named_type is not None:
        problem = _problem_type(named_type[0], where=f"{source}, line {named_type[1]}")
    if problem is None:
        raise SpecError(f"{source}: no problem type: add a line '**Problem type**: <type>' "
                        f"under the title, <type> one of {', '.join(problems.names())}")
    # "- Accuracy: better than random baseline by 3x" (the workflow's phrase) in a type with no
    # accuracy metric (ranking lists) means the type's primary measure of quality
    scored = problems.get(problem).metrics
    targets = [replace(t, metric="primary") if t.line in accuracy_lines and t.relative_to is not None
               and t.metric == "accuracy" and "accuracy" not in scored else t for t in targets]
    return Spec(title, problem, tuple(targets), primary_metric=primary,
                requirements=tuple(requirements))


def load_spec(path: str | os.PathLike[str]) -> Spec:
    """Read and parse the ``spec.md`` at ``path``.

    Raises:
        SpecError: The file is missing or unreadable, or its content is invalid.
    """
    spec_path = Path(path)
    try:
        text = spec_path.read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise SpecError(f"{spec_path}: spec file not found; create it with "
                        f"'specweave-ray inc' or check the path") from err
    except (OSError, UnicodeDecodeError) as err:
        raise SpecError(f"{spec_path}: cannot read spec file: {err}") from err
    return replace(parse_spec(text, source=str(spec_path)), path=spec_path)


def render_spec(spec: Spec) -> str:
    """A full ``spec.md`` for ``spec`` from its problem type's template; it parses back."""
    return _fill(_template(spec.problem_type, "spec.md"), _values(spec, increment_id=""))


def render_increment_docs(title: str, problem_type: str, *, increment_id: str,
                          targets: Sequence[Target] | None = None) -> dict[str, str]:
    """Render ``spec.md``, ``plan.md``, ``tasks.md`` and ``tests.md`` for a new increment.

    Args:
        title: Increment title (one line).
        problem_type: A registered problem type (:func:`specweave_ray.problems.names`).
        increment_id: The increment's id, e.g. ``0001-churn``.
        targets: Success criteria; the problem type's :func:`default_targets` when ``None``.

    Raises:
        SpecError: Unknown problem type or invalid title.
    """
    problem_type = _problem(problem_type).name
    chosen = default_targets(problem_type) if targets is None else tuple(targets)
    values = _values(Spec(title, problem_type, chosen), increment_id=increment_id)
    docs = {name: _fill(_template(problem_type, name), values)
            for name in ("spec.md", "plan.md", "tasks.md")}
    docs["tests.md"] = _fill(_template("tests.md"), values)
    return docs


def default_targets(problem_type: str) -> tuple[Target, ...]:
    """The targets the templates pre-fill for ``problem_type``.

    Raises:
        SpecError: Unknown problem type.
    """
    problem = _problem(problem_type)
    source = f"the {problem.name} problem type's default criteria"
    return tuple(t for line in problem.default_criteria for t in parse_targets(line, source=source))


# --- private helpers -------------------------------------------------------------------------
def _read_line(line: str, *, source: str, lineno: int | None) -> tuple[list[Target], str | None]:
    """The targets on one line, and the first problem-type phrase it names in passing."""
    where = f"{source}, line {lineno}" if lineno is not None else source
    cleaned = _clean(line)
    parts = [p for p in re.split(r"\s*[;,](?!\d)\s*", cleaned) if p]
    if not parts:
        raise SpecError(f"{where}: empty target line; write e.g. {_EXAMPLES}")
    targets: list[Target] = []
    named: str | None = None
    for part in parts:
        try:
            target = _parse_part(part, lineno)
        except SpecError as err:
            raise SpecError(f"{where}: cannot read target {line.strip()!r}: {err}. "
                            f"Write one target a line in the canonical form, e.g. {_EXAMPLES}"
                            ) from err
        if isinstance(target, Target):
            targets.append(target)
        elif named is None:
            named = target
    if not targets:
        raise SpecError(f"{where}: cannot read target {line.strip()!r}: it names a problem type "
                        f"but no metric, operator and value. Write one target a line in the "
                        f"canonical form, e.g. {_EXAMPLES}")
    return targets, named


def _parse_part(text: str, lineno: int | None) -> Target | str:
    """One target, or the phrase itself when it names a problem type (``binary classification``)."""
    try:
        return _parse_one(text, lineno)
    except SpecError as err:
        label, colon, rest = text.partition(":")
        if colon and rest.strip() and _resolve_metric(label) is None:
            return _parse_part(rest.strip(), lineno)  # "success metrics: precision@10 > 0.25"
        if problems.lookup(text) is not None:
            return text
        raise err


def _requirement(text: str, *, strict: bool) -> Requirement | None:
    """A bullet that is a requirement, not a target; ``None`` when it looks like a target.

    Under ``## Success Criteria`` (``strict``) only a labelled bullet can be a requirement, so a
    stray unlabelled line there stays an error.
    """
    cleaned = _clean(text)
    label, colon, rest = cleaned.partition(":")
    if _LOOKS_LIKE_TARGET.search(cleaned) or (colon and _resolve_metric(label) is not None):
        return None
    if not colon and (strict or _resolve_metric(cleaned.split(" ")[0]) is not None):
        return None
    raw = re.sub(r"^(?:[-*+]|\d+[.)])\s+(?:\[[ xX]\]\s+)?", "", text.strip())
    raw_label, _, raw_rest = raw.partition(":")
    return Requirement(raw_label.strip(), raw_rest.strip()) if colon else Requirement("", raw)


def _parse_one(text: str, lineno: int | None) -> Target:
    for pattern in _LIFT_PATTERNS:
        if match := pattern.fullmatch(text):
            return _build(match, lineno, lift=True)
    for pattern in _ABS_PATTERNS:
        if match := pattern.fullmatch(text):
            return _build(match, lineno, lift=False)
    raise SpecError("no metric, operator and value found")


def _build(match: re.Match[str], lineno: int | None, *, lift: bool) -> Target:
    groups = match.groupdict()
    phrase = (groups.get("metric") or "").strip()
    tail = (groups.get("tail") or "").split()
    if not lift and match.re is _ABS_PATTERNS[2]:
        words = phrase.split()  # "99% precision target": the fluff follows the metric
        while words and words[-1] in _FLUFF:
            tail.append(words.pop())
        phrase = " ".join(words)
    if extra := [w for w in tail if w not in _FLUFF]:
        raise SpecError(f"unexpected words after the value: {' '.join(extra)!r}")
    metric = "primary" if lift and (not phrase or _SUBJECT.fullmatch(phrase)) else _resolve_metric(phrase)
    if metric is None:
        close = get_close_matches(_key(phrase), METRICS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise SpecError(f"unknown metric {phrase!r}{hint}; known: {known_text()}")
    op = _OP_WORDS[groups["op"]] if groups.get("op") else (
        "<=" if metric in LOWER_IS_BETTER and not lift else ">=")
    value, unit = _value(metric, groups, lift=lift)
    ref = _ref_name(groups["ref"]) if lift and groups.get("ref") else "best_baseline"
    return Target(metric, op, value, unit, relative_to=ref if lift else None, line=lineno)


def _value(metric: str, groups: Mapping[str, str | None], *, lift: bool) -> tuple[float, str]:
    """Normalise the number and unit; :class:`Target` then rejects units that do not fit."""
    raw = Decimal((groups["num"] or "").replace(",", ""))
    unit = _UNIT_WORDS.get(groups.get("unit") or "", "")
    if groups.get("cur"):
        unit = "$" if not unit else "$" + unit
    elif lift and unit not in ("%", "x"):
        raise SpecError("a lift needs a unit: write e.g. 20% or 3x")
    elif not lift and metric.startswith("latency_") and unit in ("", "ms", "s", "us"):
        return float(raw * {"": 1, "ms": 1, "s": 1000, "us": Decimal("0.001")}[unit]), "ms"
    elif not lift and metric == "throughput" and not unit:
        unit = "req/s"
    elif not lift and unit == "%" and _is_ratio(metric):
        return float(raw / 100), ""
    return float(raw), unit


def _clean(line: str) -> str:
    text = line.strip()
    for old, new in _REPLACE:
        text = text.replace(old, new)
    text = re.sub(r"^(?:[-*+]|\d+[.)])(?:\s+|$)(?:\[[ xX]\]\s+)?", "", text)
    text = re.sub(r"(?<=[\d%xX])\+(?=\s|$|[,;.])", "", text)  # "by 20%+": at least, the default
    return re.sub(r"\s+", " ", text).strip().rstrip(".").strip().lower()


def _key(phrase: str) -> str:
    key = re.sub(r"[\s\-]+", "_", phrase.strip().lower()).replace("@", "_at_")
    return re.sub(r"_+", "_", key).strip("_")


def _resolve_metric(phrase: str) -> str | None:
    key = _key(phrase)
    key = key[: -len("_score")] if key.endswith("_score") and key != "_score" else key
    if (name := canonical(key)) is not None:
        return name
    # A latency without a percentile means p99: the conservative reading of a latency budget.
    lat = re.fullmatch(r"(?:(?:inference|prediction|serving|response|model)_)?"
                       r"(?:(p50|p95|p99|median)_)?latency(?:_(p50|p95|p99))?(?:_ms)?", key)
    if lat or re.fullmatch(r"p50|p95|p99", key):
        pct = (lat[1] or lat[2] if lat else key) or "p99"
        return f"latency_{'p50' if pct == 'median' else pct}"
    return None


def _ref_name(ref: str) -> str:
    words = [w for w in ref.replace("_", " ").split() if w not in ("the", "a", "our")]
    # A bare "baseline" means the best one: the bar a model has to clear to be worth shipping.
    return "best_baseline" if words == ["baseline"] else "_".join(words)


def _is_metric(name: str) -> bool:
    return canonical(name) == name


def _is_ratio(metric: str) -> bool:
    return find(metric).ratio


def _units_for(metric: str) -> tuple[str, ...]:
    return find(metric).units


def _display(metric: str) -> str:
    return find(metric).display or metric


def _fmt(value: float) -> str:
    # repr is the shortest text that reads back to the same float, so rendering round-trips.
    return str(int(value)) if value.is_integer() and abs(value) < 1e16 else repr(value)


def _problem(problem_type: str, *, where: str | None = None) -> problems.ProblemType:
    try:
        return problems.get(problem_type)
    except ConfigError as err:
        raise SpecError(f"{where}: {err}" if where else str(err)) from err


def _check_problem_type(problem_type: str) -> None:
    if _problem(problem_type).name != problem_type:  # an alias: a Spec holds the canonical name
        raise SpecError(f"problem type {problem_type!r} is an alias; write "
                        f"{problems.resolve(problem_type)!r}")


def _problem_type(text: str, *, where: str) -> str:
    return _problem(text.strip(), where=where).name


def _strip_comments(line: str, in_comment: bool) -> tuple[str, bool]:
    kept, pos = [], 0
    while pos <= len(line):
        marker = line.find("-->" if in_comment else "<!--", pos)
        if marker < 0:
            if not in_comment:
                kept.append(line[pos:])
            break
        if not in_comment:
            kept.append(line[pos:marker])
        pos, in_comment = marker + (3 if in_comment else 4), not in_comment
    return "".join(kept), in_comment


def _template(*parts: str) -> str:
    try:
        node = resources.files("specweave_ray.spec").joinpath("templates")
    except (NotADirectoryError, TypeError):  # a namespace package (no __init__.py yet), editable
        node = Path(__file__).with_name("templates")
    for part in parts:
        node = node.joinpath(part)
    return node.read_text(encoding="utf-8")


def _values(spec: Spec, *, increment_id: str) -> dict[str, str]:
    bullets = "\n".join(f"- {t.render()}" for t in spec.targets)
    rows = "\n".join(f"| `{t.render()}` | `{t.metric_key}` | {_gate(t)} |" for t in spec.targets)
    return {"title": spec.title, "problem_type": spec.problem_type,
            "increment_id": increment_id, "primary_metric": spec.primary_metric or "",
            "success_criteria": bullets or "<!-- no targets yet -->",
            "targets_table": rows or "| (none) | | |"}


def _gate(target: Target) -> str:
    if target.relative_to is not None:
        return "validate: best model vs. baseline records"
    if target.metric.startswith("latency_") or target.metric == "throughput":
        return "bench: measured on the packaged model"
    return "validate: held-out test metrics of the best model"


def _fill(text: str, values: Mapping[str, str]) -> str:
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: values[m[1]], text)
