"""The spec stage: what the user asked for, as typed values.

``_grammar``: ``spec.md`` ↔ :class:`Spec` and its :class:`Target` s, and the increment templates
(``templates/<problem type>/``). ``search_space``: the one search-space grammar. ``experiment``:
:class:`ModelExperiment`, the one candidate type (a config's candidates become these directly).
``config``: the pipeline config (pydantic). The metric vocabulary they all read is
:mod:`specweave_ray.metrics`; what a problem type means is :mod:`specweave_ray.problems`.
"""

from specweave_ray.metrics import METRICS, MetricDef, get_metric
from specweave_ray.spec._grammar import (
    LOWER_IS_BETTER,
    OPS,
    TASKS,
    Spec,
    Target,
    default_targets,
    load_spec,
    parse_spec,
    parse_targets,
    render_increment_docs,
    render_spec,
)
from specweave_ray.spec.config import (
    ABTestConfig,
    BaselineConfig,
    DataConfig,
    NotebookConfig,
    PipelineConfig,
    SweepConfig,
    load_config,
    parse_config,
    sweep_config,
)
from specweave_ray.spec.experiment import ModelExperiment
from specweave_ray.spec.search_space import (
    Domain,
    as_domain,
    choice,
    lograndint,
    loguniform,
    quniform,
    randint,
    uniform,
)

__all__ = [
    "LOWER_IS_BETTER", "METRICS", "OPS", "TASKS", "ABTestConfig", "BaselineConfig", "DataConfig",
    "Domain", "MetricDef", "ModelExperiment", "NotebookConfig", "PipelineConfig", "Spec", "SweepConfig", "Target",
    "as_domain", "choice", "default_targets", "get_metric", "load_config", "load_spec",
    "lograndint", "loguniform", "parse_config", "parse_spec", "parse_targets", "quniform", "randint",
    "render_increment_docs", "render_spec", "sweep_config", "uniform",
]
