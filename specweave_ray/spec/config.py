"""Pipeline config (YAML) → a validated, frozen :class:`PipelineConfig`.

Errors name the file, the field path (``candidates.1.resources.gpu``), the rule and the value
received. Search-space entries are written as tagged dicts: ``{loguniform: [0.001, 1]}``.

Example (``configs/fraud-detection.yaml``)::

    increment: Fraud Detection
    spec: ../increments/0001-fraud-detection/spec.md
    root: ../increments
    data: {generate: fraud, rows: 50000, target: is_fraud}
    metric: pr_auc
    candidates:
      - {name: xgboost, estimator: xgboost, num_samples: 8,
         params: {max_depth: {randint: [3, 8]}, learning_rate: {loguniform: [0.02, 0.3]}}}
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    field_validator,
    model_validator,
)

from specweave_ray import problems
from specweave_ray.exceptions import CandidateError, ConfigError
from specweave_ray.spec.experiment import ModelExperiment


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DataConfig(_Frozen):
    """Where the data comes from: a CSV/Parquet ``path`` or a built-in ``generate`` name, and
    the columns' roles (``target``; for interactions also ``user_column``, ``item_column``, the
    rating as ``target`` with its ``relevance_threshold``, and ``time_column``; for forecasting
    ``time_column``, ``series_column``, the ``horizon``, the ``frequency`` (a pandas alias;
    inferred when absent) and the ``step`` between backtest windows (default the horizon))."""

    path: str | None = None
    generate: str | None = None
    rows: int | None = Field(default=None, gt=0)
    target: str | None = None
    test_size: float = Field(default=0.2, gt=0, lt=1)
    time_column: str | None = None
    user_column: str | None = None
    item_column: str | None = None
    relevance_threshold: float | None = None
    series_column: str | None = None
    horizon: int | None = Field(default=None, ge=1)
    frequency: str | None = None
    step: int | None = Field(default=None, ge=1)
    params: dict[str, Any] = Field(default_factory=dict)

    @property
    def columns(self) -> dict[str, Any]:
        """The column roles a problem type's ``frame`` reads."""
        return {"user_column": self.user_column, "item_column": self.item_column,
                "time_column": self.time_column, "relevance_threshold": self.relevance_threshold,
                "series_column": self.series_column, "horizon": self.horizon, "frequency": self.frequency,
                "step": self.step}

    @model_validator(mode="after")
    def _one_source(self) -> DataConfig:
        if (self.path is None) == (self.generate is None):
            raise ValueError("give exactly one of 'path' (a CSV/Parquet file) or 'generate' (fraud, ltv)")
        return self


def _candidate(raw: Any) -> ModelExperiment:
    try:
        return ModelExperiment.from_config(raw)
    except CandidateError as err:
        raise ValueError(str(err)) from err


# A config's candidate is a ModelExperiment; it dumps back to the YAML form it was read from.
Candidate = Annotated[ModelExperiment, BeforeValidator(_candidate),
                      PlainSerializer(lambda e: e.to_config(), return_type=dict)]


class SweepConfig(_Frozen):
    cv: int = Field(default=5, ge=2, le=20)
    stages: int = Field(default=4, ge=1, le=20)
    tuning_samples: int = Field(default=16, ge=1, le=1000)  # T-005: the best candidate's deeper search
    max_concurrent: int | None = Field(default=None, ge=1)
    address: str | None = None
    num_cpus: int | None = Field(default=None, ge=1)
    # true: the cluster adds nodes on demand, so a candidate that fits on no node yet waits for one;
    # unset: SPECWEAVE_ALLOW_AUTOSCALE=1, or an autoscaler seen in the cluster's status
    autoscale: bool | None = None
    # the longest a trial waits for a node able to host it before the sweep stops (SweepError)
    pending_timeout_s: float = Field(default=900.0, gt=0)
    # each trial runs in a forked child of its Ray worker (search/_isolate.py; one long-lived child
    # per worker, forked anew after a trial that failed): its exit code or signal is recorded, and
    # these limits are enforced on it (None: no limit)
    trial_timeout_s: float | None = Field(default=None, gt=0)
    trial_memory_mb: float | None = Field(default=None, gt=0)
    isolate_trials: bool = True
    # the greedy ensemble and the stack over the candidates' out-of-fold outputs (classification and
    # regression); chosen only when better than the best single candidate by more than its CV SE
    ensemble: bool = True
    ensemble_rounds: int = Field(default=25, ge=1, le=1000)
    # an ensemble whose p99 latency is not below this is not chosen (the pipeline sets it from the
    # spec's latency_p99 target), its latency estimated for `ensemble_latency_clients` concurrent
    # clients of one server process: 2 x clients x its model call's p99 (the pipeline sets T-008's 16)
    ensemble_latency_p99_ms: float | None = Field(default=None, gt=0)
    ensemble_latency_clients: int = Field(default=1, ge=1, le=10000)
    # an ensemble that one server process cannot serve this fast is not chosen (the pipeline sets it
    # from the spec's throughput target): 1000 / the p99 of its model call on an encoded row, in req/s
    ensemble_throughput_rps: float | None = Field(default=None, gt=0)
    # one sweep's wall-clock budget for its trials (Ray Tune's TuneConfig.time_budget_s): when it
    # ends the running trials are stopped and recorded ``interrupted`` (cause: the time budget);
    # the refits, the ensemble and the comparison come after it. None: no budget
    time_budget_s: float | None = Field(default=None, gt=0)


class ABTestConfig(_Frozen):
    """T-009: inputs of the A/B test plan's power analysis."""

    mde_relative: float = Field(default=0.1, gt=0, lt=10)
    daily_traffic: int = Field(default=50_000, ge=1)
    traffic_split: float = Field(default=0.5, gt=0, lt=1)


class NotebookConfig(_Frozen):
    """The notebooks written at the end of a run: ``execute`` runs them (nbclient) and saves
    their outputs, each cell given ``timeout_s``; off by default, since they run when opened."""

    execute: bool = False
    timeout_s: float = Field(default=120.0, gt=0)


class BaselineConfig(_Frozen):
    enabled: bool = True
    rule: str | None = None


class PipelineConfig(_Frozen):
    """A whole pipeline run: which increment, which data, which candidates, how to sweep."""

    increment: str = Field(min_length=1)
    problem_type: str | None = None
    spec: str | None = None
    root: str | None = None
    data: DataConfig
    metric: str | None = None
    k: int | None = Field(default=None, ge=1, le=10_000)  # list length of ranking metrics (--k)
    seed: int = 0
    baselines: BaselineConfig = Field(default_factory=BaselineConfig)
    candidates: list[Candidate] | None = None
    sweep: SweepConfig = Field(default_factory=SweepConfig)
    # the whole run's wall-clock budget (``--time-budget``): split across the T-003…T-005 sweeps from
    # the time left when each starts (pipeline/_tasks.py); ``sweep.time_budget_s`` is one sweep's
    time_budget_s: float | None = Field(default=None, gt=0)
    abtest: ABTestConfig = Field(default_factory=ABTestConfig)
    notebooks: NotebookConfig = Field(default_factory=NotebookConfig)
    parent: str | None = None  # the increment this one follows (id or number under the same root)
    source: str | None = Field(default=None, exclude=True)

    @field_validator("problem_type")
    @classmethod
    def _problem_type(cls, value: str | None) -> str | None:
        return None if value is None else problems.resolve(value)

    @model_validator(mode="after")
    def _names_unique(self) -> PipelineConfig:
        names = [c.name for c in self.candidates or []]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"candidate names must be unique; repeated: {dupes}")
        if self.problem_type is None and self.spec is None:
            raise ValueError("give 'problem_type' or a 'spec' whose spec.md names it")
        return self


def _field_path(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc) or "(top level)"


def _problems(err: ValidationError) -> str:
    found = []
    for e in err.errors():
        value = e.get("input")
        shown = repr(value) if not isinstance(value, dict) else "{…}"
        message = e['msg'].removeprefix("Value error, ")  # our validators' own words
        found.append(f"{_field_path(e['loc'])}: {message} (got {shown[:80]})")
    return "; ".join(found)


def sweep_config(value: SweepConfig | Mapping[str, Any] | None) -> SweepConfig:
    """A :class:`SweepConfig` from itself, a mapping of its fields, or None (the defaults).

    Raises:
        ConfigError: a field is unknown or invalid; names the field, the rule and the value.
    """
    if isinstance(value, SweepConfig):
        return value
    try:
        return SweepConfig.model_validate(dict(value or {}))
    except (TypeError, ValueError) as err:
        detail = _problems(err) if isinstance(err, ValidationError) else str(err)
        raise ConfigError(f"sweep: {detail}") from err


def parse_config(raw: Any, *, source: str = "<config>") -> PipelineConfig:
    """Validate a loaded YAML mapping; :class:`ConfigError` names the field and value."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: a config must be a YAML mapping, got {type(raw).__name__}")
    try:
        return PipelineConfig.model_validate({**raw, "source": source})
    except ValidationError as err:
        raise ConfigError(f"{source}: invalid config: {_problems(err)}") from err


def load_config(path: str | os.PathLike[str]) -> PipelineConfig:
    """Read and validate a YAML config; relative paths in it are resolved against its folder."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise ConfigError(f"config file {path} does not exist") from err
    except OSError as err:
        raise ConfigError(f"config file {path} cannot be read: {err}") from err
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}:{where} is not valid YAML: {getattr(err, 'problem', err)}") from err
    cfg = parse_config(raw, source=str(path))
    base = path.resolve().parent
    updates: dict[str, Any] = {}
    for key in ("spec", "root"):
        value = getattr(cfg, key)
        if value and not os.path.isabs(value) and "://" not in value:
            updates[key] = str((base / value).resolve())
    if cfg.data.path and not os.path.isabs(cfg.data.path):
        updates["data"] = cfg.data.model_copy(update={"path": str((base / cfg.data.path).resolve())})
    return cfg.model_copy(update=updates)
