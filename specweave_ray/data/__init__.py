"""The data stage (T-001): load, fingerprint, schema (pandera), profile/EDA, sample, split.

Facade over ``_load`` (CSV/Parquet via pyarrow, target checks, splits), ``_fingerprint``,
``_schema`` (pandera infer/validate), ``_profile`` (profile.json and the EDA report) and
``datasets`` (the worked examples' generated data). What depends on the problem type (target
checks, stratification, the profile's target section) is asked of ``specweave_ray.problems``.
"""

from specweave_ray.data._fingerprint import fingerprint
from specweave_ray.data._load import (
    check_target,
    holdout_split,
    infer_schema,
    load_table,
    read_schema,
    sample,
    split_xy,
    validate,
    write_schema,
)
from specweave_ray.data._profile import profile, write_eda_report
from specweave_ray.data._stage import (
    record_data,
    record_features,
    record_interactions,
    record_series,
)
from specweave_ray.data.datasets import DATASETS, generate

__all__ = [
    "DATASETS", "check_target", "fingerprint", "generate", "holdout_split", "infer_schema",
    "load_table", "profile", "read_schema", "record_data", "record_features", "record_interactions", "record_series", "sample", "split_xy", "validate", "write_eda_report",
    "write_schema",
]
