"""How reports name entries and levels: one place, so tables and figures say the same."""

from bench.evaluation.evaluate import INPUT

PRETTY = {"perlevel": "Per-level networks (paper: Baseline)", "hyperres": "HyperRes", INPUT: "Degraded input"}


def level_label(task: str, level) -> str:
    if level == "mean":
        return "mean"
    return {"denoise": "σ={:g}", "dejpeg": "q={:g}", "sr": "x{:g}"}[task].format(float(level))
