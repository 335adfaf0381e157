"""Import path kept for model packages registered in MLflow before the stage layout: their stored
pyfunc code says ``from specweave_ray.predictor import Predictor``."""

from specweave_ray.deploy.predictor import Predictor

__all__ = ["Predictor"]
