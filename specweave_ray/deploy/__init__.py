"""The deploy stage (T-007…T-009): package, Predictor, explanations, serving, benchmark, drift,
release gate and A/B plan.

``package`` builds ``models/model-vK.*`` and ``_package_read`` reads one back verified;
``predictor``: :class:`Predictor` over a package (fast single-row path); ``explain`` and
``_explain_report``: SHAP/LIME explanations (T-007); ``serve``: the local (Starlette/uvicorn)
and Ray Serve engines; ``bench``: latency/throughput against the spec's targets; ``drift``:
PSI/KS against the package's reference; ``_release``: the T-008 gate and the T-009 A/B plan;
``abtest``: the power analysis.
"""

from specweave_ray.deploy._package_read import latest_version, list_packages, load_package
from specweave_ray.deploy.package import build_package, mark, package_for_evaluation
from specweave_ray.deploy.predictor import Predictor

__all__ = ["Predictor", "build_package", "latest_version", "list_packages", "load_package", "mark",
           "package_for_evaluation"]
