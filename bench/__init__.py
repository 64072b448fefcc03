"""hyperbench: a reproducibility benchmark for adaptive image restoration (HyperRes and its baselines)."""

__version__ = "0.1.0"
