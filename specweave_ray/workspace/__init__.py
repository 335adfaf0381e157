"""The workspace stage: the increment folder and everything recorded in it.

``increment``: create, number, lock, open and tick an increment (:class:`Increment`).
``records``: experiment records (``exp-NNN-*/meta.json`` …), ``track_experiment`` /
``track_model``. ``_mlflow``: the MLflow mirror of every record. ``storage``: roots given as
URIs (``s3://`` …), mounted as a local mirror and kept in step through ``pyarrow.fs``.
"""

from specweave_ray.workspace import storage
from specweave_ray.workspace.increment import (
    Increment,
    Task,
    list_increments,
    resolve_root,
    slugify,
)
from specweave_ray.workspace.records import (
    Experiment,
    Record,
    code_version,
    environment,
    lineage,
    list_records,
    open_experiment,
    read_record,
    resolve_increment,
    run_lineage,
    track_experiment,
    track_model,
)

__all__ = [
    "Experiment", "Increment", "Record", "Task", "code_version", "environment", "lineage",
    "list_increments", "list_records", "open_experiment", "read_record", "resolve_increment", "resolve_root",
    "run_lineage", "slugify", "storage", "track_experiment", "track_model",
]
