"""Comparison models. Each module registers its entries through the `hyperbench.models` entry points,
exactly as a third-party plugin would."""
