"""The stable-variance technique: ``studio.core.model.variance`` (the calibration's preparation
applies the same rewrite to every model, so it lives below both)."""

from studio.core.model.variance import has_unstable_variance, stabilise_variance

__all__ = ["has_unstable_variance", "stabilise_variance"]
