"""The efficiency table (issue 31): the stored figures of `hyperbench perf --efficiency` as
efficiency.{md,csv,tex}, with the machine they came from.

The figures live in results/<profile>/efficiency.csv, one row per entry, task and machine: a run on
another device (CUDA) or another CPU adds its rows, a run on the same machine replaces its own. The
tables print only what is stored; nothing here measures.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import pandas as pd

from bench.common.atomic import atomic_write_text
from bench.reports.markdown import markdown_table

COLUMNS = [
    "profile", "model", "arch", "task", "config", "params", "macs_256", "level", "latency_256_ms", "latency_mp_ms", "mp_from",
    "peak_memory_bytes", "memory_method", "switch_mechanism", "switch_ms", "switch_step_ms", "switch_cold_ms", "warm_cached",
    "cold_cached", "storage_bytes", "storage_files", "scratch_fs", "repeats", "warmup",
    "device", "device_name", "cores", "threads", "torch", "load", "date",
]
MACHINE = ["device", "device_name", "cores", "threads", "torch"]  # rows measured alike share one table
KEY = ["model", "task", "device", "device_name", "cores"]  # a new measurement replaces the stored row with the same key
HEADER = ["entry", "task", "params", "GMACs (256²)", "ms / 256² image", "ms / MP", "peak memory MiB", "level switch: mechanism",
          "switch ms", "of it, the mechanism ms", "switch ms, file not cached", "storage for the printed levels"]


def efficiency_file(results_dir, profile: str) -> Path:
    return Path(results_dir) / profile / "efficiency.csv"


def read_efficiency(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, keep_default_na=False, na_values=[""])


def store_efficiency(path: Path, rows: list[dict]) -> pd.DataFrame:
    """Add the rows to the stored figures, replacing rows of the same entry, task and machine."""
    new = pd.DataFrame(rows, columns=COLUMNS)
    frame = new
    if path.is_file():
        old = read_efficiency(path)
        replaced = set(map(tuple, new[KEY].astype(str).values))
        kept = old[[tuple(k) not in replaced for k in old[KEY].astype(str).values]]
        frame = pd.concat([kept, new], ignore_index=True) if len(kept) else new
    buf = io.StringIO()
    frame.to_csv(buf, index=False)
    atomic_write_text(path, buf.getvalue())
    return frame


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _ms(v) -> str:
    if _missing(v):
        return "—"
    return f"{v:.2f}" if v < 10 else f"{v:.1f}" if v < 100 else f"{v:,.0f}"


def _cached(fraction) -> str:
    return "" if _missing(fraction) else f" ({fraction:.0%} of the file cached)"


def _row(r) -> list[str]:
    bank = not _missing(r.cold_cached) or not _missing(r.warm_cached)
    return [
        r.model, r.task, f"{int(r.params):,}", f"{r.macs_256 / 1e9:.3g}", _ms(r.latency_256_ms), _ms(r.latency_mp_ms),
        f"{r.peak_memory_bytes / 2**20:,.1f}", r.switch_mechanism, _ms(r.switch_ms) + (_cached(r.warm_cached) if bank else ""),
        _ms(r.switch_step_ms), _ms(r.switch_cold_ms) + (_cached(r.cold_cached) if not _missing(r.switch_cold_ms) else ""),
        f"{r.storage_bytes / 1e6:,.2f} MB ({int(r.storage_files)} file{'s' if r.storage_files != 1 else ''})",
    ]


def machine_line(sub: pd.DataFrame) -> str:
    first = sub.iloc[0]
    dates = sorted(set(sub.date))
    when = dates[0] if len(dates) == 1 else f"{dates[0]} to {dates[-1]}"
    where = (f"CPU {first.device_name}, {int(first.cores)} cores available, {int(first.threads)} torch threads" if first.device == "cpu"
             else f"{first.device_name} ({first.device}; {int(first.cores)} CPU cores, {int(first.threads)} torch threads)")
    loads = ", ".join(f"{v:.1f}" for v in sorted(set(sub.load)))
    return f"{where}; torch {first.torch}; measured {when} (1-minute load average at the start: {loads})"


def notes(frame: pd.DataFrame) -> list[str]:
    repeats = ", ".join(str(int(v)) for v in sorted(set(frame.repeats)))
    warmup = ", ".join(str(int(v)) for v in sorted(set(frame.warmup)))
    lines = [
        "Every figure was measured by `hyperbench perf --efficiency` and stored in results/<profile>/efficiency.csv; "
        "the networks have random weights (the values change neither time nor memory) at the profile's sizes.",
        "params: the parameters resident to answer a level (a per-level bank: one member network; DNI: both endpoint networks).",
        "GMACs: multiply-accumulates of one forward of a 1 x C x 256 x 256 input, counted by torch.utils.flop_counter.FlopCounterMode "
        "and halved (it counts 2 FLOPs per multiply-add); it counts convolutions and matrix products only (elementwise work, "
        "normalisation, activations and HyperRes' weight generation are not in it).",
        f"Latency: median of {repeats} timed forwards after {warmup} warm-up forwards, batch 1, under torch.inference_mode, at the "
        "middle printed level of the task (`level` in the CSV); ms / MP: " + "; ".join(sorted(set(frame.mp_from))) + ".",
        "Peak memory: " + "; ".join(sorted(set(frame.memory_method))) + ".",
        "Level switch: the time from a new level to the first output at that level (256 x 256), cycling through the task's printed "
        "levels (a bank: through the member networks they need), median of the same repeats; 'of it, the mechanism' times the "
        "switch step alone (weight generation, weight interpolation, loading the file), '—' where the level only enters the forward.",
        "Bank switch: the member's safetensors file is read with the suite's checkpoint loader and copied into the resident network. "
        "'switch ms' had the file in the page cache (as mincore reported after the timing); 'file not cached' asked the kernel to "
        "drop it first (fsync, posix_fadvise DONTNEED) and reports the cached share mincore saw just before each load. "
        "Scratch files on: " + ", ".join(sorted(set(frame.scratch_fs.astype(str)))) + ".",
        "Storage: bytes of the safetensors files needed to serve every printed level of the task: one file for one adaptive "
        "network (DNI's holds both endpoints), one file per member network the printed levels use for a per-level bank.",
    ]
    return lines


def efficiency_markdown(frame: pd.DataFrame, profile: str) -> str:
    lines = [f"## Efficiency — profile `{profile}`", ""]
    for _, sub in frame.groupby(MACHINE, sort=False):
        lines += [f"Measured on {machine_line(sub)}.", "", markdown_table([_row(r) for r in sub.itertuples()], HEADER), ""]
    return "\n".join(lines + [f"- {n}" for n in notes(frame)] + [""])


def _tex(text: str) -> str:
    return (str(text).replace("\\", r"\textbackslash{}").replace("&", r"\&").replace("%", r"\%").replace("_", r"\_")
            .replace("#", r"\#").replace("—", "--").replace("²", "$^2$").replace("α", r"$\alpha$").replace("λ", r"$\lambda$")
            .replace("σ", r"$\sigma$").replace("·", r"$\cdot$").replace("−", "$-$"))


def efficiency_latex(frame: pd.DataFrame, profile: str) -> str:
    out = []
    for _, sub in frame.groupby(MACHINE, sort=False):
        out += [r"\begin{table}[t]", r"\centering", rf"\caption{{Efficiency, profile {_tex(profile)}: {_tex(machine_line(sub))}.}}",
                r"\begin{tabular}{ll" + "r" * 6 + "p{4cm}rrrr}", r"\toprule", " & ".join(_tex(h) for h in HEADER) + r" \\", r"\midrule"]
        out += [" & ".join(_tex(c) for c in _row(r)) + r" \\" for r in sub.itertuples()]
        out += [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]
    return "\n".join(out)


def write_efficiency_tables(profile: str, results_dir, out: Path) -> tuple[list[Path], list[str]]:
    """efficiency.{md,csv,tex} in `out` from the stored figures, and the markdown for the index; nothing where none are stored."""
    path = efficiency_file(results_dir, profile)
    if not path.is_file():
        return [], []
    frame = read_efficiency(path)
    md = efficiency_markdown(frame, profile)
    atomic_write_text(out / "efficiency.md", md)
    atomic_write_text(out / "efficiency.tex", efficiency_latex(frame, profile))
    buf = io.StringIO()
    frame.to_csv(buf, index=False)
    atomic_write_text(out / "efficiency.csv", buf.getvalue())
    return [out / "efficiency.md", out / "efficiency.csv", out / "efficiency.tex"], md.splitlines() + [""]
