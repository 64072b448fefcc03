"""The model registry and catalogue, HyperRes, its noise estimator, the per-level bank, shared layers and the control interface."""
