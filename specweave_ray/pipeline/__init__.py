"""The pipeline: the task table T-001…T-009, each task one call into its stage; ticked tasks are
skipped, ``start`` reruns from a task. With ``cli.py``, the only code that imports every stage."""

from specweave_ray.pipeline._tasks import (
    CONFIG_NAME,
    TASK_ORDER,
    PipelineResult,
    ensure_increment,
    load_data,
    run_pipeline,
    save_config,
    stored_config,
)

__all__ = ["CONFIG_NAME", "TASK_ORDER", "PipelineResult", "ensure_increment", "load_data",
           "run_pipeline", "save_config", "stored_config"]
