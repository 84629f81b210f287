"""polytune: Polyaxon-style experiment groups (hyperparameter search) on your own machine."""

__version__ = "0.1.0"
