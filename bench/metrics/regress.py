"""Metric regression gate: compare a results CSV with a committed reference, row by row.

Rows are matched on MATCH_KEY. The profile and the seed are part of the key on purpose: the same model
at the same level means a different experiment under another profile or seed, so such rows are never
compared with each other; they show up as missing (in the reference only) or new (in the results only).
A row regresses when it is worse than the reference by more than the metric's tolerance, in the
direction bench.metrics.METRICS gives (a pyiqa metric: the direction its metric_spec names, taken from pyiqa
when it was scored, so the gate needs no pyiqa); it improves when it is better by more than that. Missing rows
and regressions fail the gate; improvements and new rows are reported and pass. A value that is not a
finite number (NaN, inf, empty) in either file is an error: it cannot be compared.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from bench.common.errors import HyperbenchError, did_you_mean
from bench.metrics.iqa import direction_of
from bench.metrics.quality import METRICS

MATCH_KEY = ["profile", "model", "task", "dataset", "level", "metric", "metric_spec", "seed"]
DEFAULT_TOL = {"psnr": 0.05, "ssim": 0.002, "ms_ssim": 0.002, "nlpd": 0.002}  # the last two: the extra metrics of `quick`
ENVIRONMENT = ["versions", "torch_threads", "train_threads", "interop_threads", "deterministic", "cpu", "device"]  # reported when they differ


def parse_tolerances(items: list[str] | None, known=()) -> dict[str, float]:
    """['psnr=0.05', 'lpips=0.01'] -> {'psnr': 0.05, 'lpips': 0.01, ...}, on top of DEFAULT_TOL; `known`: the metrics
    of the files compared (a pyiqa metric may be given a tolerance when a file holds it)."""
    tol = dict(DEFAULT_TOL)
    names = sorted(set(METRICS) | set(known))
    for item in items or []:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or name not in names:
            hint = did_you_mean(name, names) + "; " if sep and name else ""
            raise HyperbenchError(f"bad --tol {item!r}", f"{hint}write METRIC=VALUE with METRIC one of {', '.join(names)}, e.g. --tol psnr=0.05")
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not math.isfinite(number) or number < 0:
            raise HyperbenchError(f"bad --tol {item!r}: {value!r} is not a number >= 0", "e.g. --tol psnr=0.05 --tol ssim=0.002")
        tol[name] = number
    return tol


def read_table(path, role: str) -> pd.DataFrame:
    """A tidy results CSV (bench/evaluation/results.py format), checked enough that matching cannot go wrong silently."""
    path = Path(path)
    fix = f"give the {role} as a results CSV written by `hyperbench reproduce` (e.g. results/<profile>/results.csv)"
    if not path.is_file():
        raise HyperbenchError(f"{role} file {path} does not exist", fix)
    try:
        text_columns = ["run_id", "profile", "model", "task", "dataset", "metric", "metric_spec", "inputs_sha256", *ENVIRONMENT]
        frame = pd.read_csv(path, dtype=dict.fromkeys(text_columns, str))
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as exc:
        raise HyperbenchError(f"{role} file {path} is not a readable CSV ({str(exc).splitlines()[0]})", fix) from None
    lacking = [c for c in MATCH_KEY + ["value"] if c not in frame.columns]
    if lacking:
        raise HyperbenchError(f"{role} file {path} lacks the columns {lacking}", fix)
    unknown = sorted({m for m, spec in zip(frame.metric.astype(str), frame.metric_spec) if m not in METRICS and direction_of(spec) is None})
    if unknown:
        raise HyperbenchError(f"{role} file {path} has metrics {unknown} with no known direction",
                              f"known: {sorted(METRICS)} and pyiqa metrics, whose metric_spec (pyiqa:...|higher or |lower) says it")
    for column in ("level", "value", "seed"):
        numbers = pd.to_numeric(frame[column], errors="coerce")
        bad = frame[column][numbers.isna() & frame[column].notna()]
        if len(bad):
            raise HyperbenchError(f"{role} file {path}: column {column!r} holds {bad.iloc[0]!r}, not a number", fix)
        frame[column] = numbers
    _reject_non_finite(frame, path, role)
    duplicated = frame.duplicated(subset=MATCH_KEY, keep=False)
    if duplicated.any():
        row = frame[duplicated].iloc[0]
        raise HyperbenchError(
            f"{role} file {path} holds {int(duplicated.sum())} rows with a repeated key, e.g. "
            + ", ".join(f"{k}={row[k]}" for k in MATCH_KEY),
            "each (profile, model, task, dataset, level, metric, metric_spec, seed) may appear once; rewrite the file with bench.evaluation.results.write_rows",
        )
    return frame


def _reject_non_finite(frame: pd.DataFrame, path, role: str) -> None:
    """NaN or infinite values cannot be compared: an inf PSNR (an output identical to its reference, or
    a broken metric) would count as an improvement, a NaN reference would accept anything."""
    bad = frame[~frame[["level", "value", "seed"]].apply(lambda c: c.map(math.isfinite)).all(axis=1)]
    if len(bad):
        shown = "; ".join(f"{r.model} {r.task} level {r.level:g} {r.metric} = {r.value}" for r in bad.head(3).itertuples())
        raise HyperbenchError(
            f"{role} file {path} holds {len(bad)} rows that are not finite numbers (NaN, inf or empty), e.g. {shown}",
            "a gate cannot compare them: find why the evaluation gave them (a failed or degenerate run) and regenerate the file",
        )


@dataclass
class Comparison:
    tol: dict
    compared: int = 0
    regressions: pd.DataFrame = field(default_factory=pd.DataFrame)
    improvements: pd.DataFrame = field(default_factory=pd.DataFrame)
    missing: pd.DataFrame = field(default_factory=pd.DataFrame)
    new: pd.DataFrame = field(default_factory=pd.DataFrame)
    environment_notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.regressions.empty and self.missing.empty


def higher_is_better(metric: str, spec: str) -> bool:
    """The suite's own metrics by their registry, a pyiqa metric by its spec key."""
    return METRICS[metric]["higher_better"] if metric in METRICS else bool(direction_of(spec))


def _gain(ours: float, ref: float, higher_better: bool) -> float:
    """How much better ours is than the reference (negative: worse); both are finite (read_table checks)."""
    return (ours - ref) if higher_better else (ref - ours)


def compare(results: pd.DataFrame, reference: pd.DataFrame, tol: dict) -> Comparison:
    merged = reference.merge(results, on=MATCH_KEY, how="outer", suffixes=("_ref", "_ours"), indicator=True)
    both = merged[merged["_merge"] == "both"].copy()
    untolerated = sorted(set(both.metric) - set(tol))
    if untolerated:
        raise HyperbenchError(f"no tolerance for the metrics {untolerated}", f"give one, e.g. --tol {untolerated[0]}=0.01")
    both["gain"] = [_gain(o, r, higher_is_better(m, spec)) for o, r, m, spec in zip(both.value_ours, both.value_ref, both.metric, both.metric_spec)]
    both["tol"] = [tol[m] for m in both.metric]
    columns = MATCH_KEY + ["value_ref", "value_ours", "gain", "tol"]
    out = Comparison(tol={m: v for m, v in tol.items() if m in set(both.metric)} or tol, compared=len(both))  # the tolerances that applied
    out.regressions = both[both.gain < -both.tol][columns]
    out.improvements = both[both.gain > both.tol][columns]
    out.missing = merged[merged["_merge"] == "left_only"][MATCH_KEY + ["value_ref"]]
    out.new = merged[merged["_merge"] == "right_only"][MATCH_KEY + ["value_ours"]]
    if "inputs_sha256_ref" in both and "inputs_sha256_ours" in both:  # written by bench.data.input_cache
        changed = both.inputs_sha256_ref.notna() & both.inputs_sha256_ours.notna() & (both.inputs_sha256_ref != both.inputs_sha256_ours)
        if changed.any():
            out.environment_notes.append(f"degraded inputs (inputs_sha256) differ in {int(changed.sum())} rows: data or degradation changed, not only models")
    for column in ENVIRONMENT:
        if f"{column}_ref" in both and f"{column}_ours" in both:
            ref = set(both[f"{column}_ref"].dropna().astype(str))
            ours = set(both[f"{column}_ours"].dropna().astype(str))
            if ref != ours:
                out.environment_notes.append(f"environment differs, {column}: reference {', '.join(sorted(ref))}; results {', '.join(sorted(ours))}")
    return out


def compare_files(results_path, reference_path, tol_items: list[str] | None = None) -> Comparison:
    results, reference = read_table(results_path, "results"), read_table(reference_path, "reference")
    tol = parse_tolerances(tol_items, set(results.metric) | set(reference.metric))
    return compare(results, reference, tol)


def print_report(cmp: Comparison, console) -> None:
    from rich import box
    from rich.table import Table

    def rows_table(title: str, frame: pd.DataFrame, style: str) -> Table:
        table = Table("model", "task", "level", "metric", "reference", "ours", "ours − ref",
                      title=title, title_style=style, title_justify="left", box=box.SIMPLE_HEAD)
        for row in frame.sort_values(MATCH_KEY).itertuples(index=False):
            ref, ours = getattr(row, "value_ref", math.nan), getattr(row, "value_ours", math.nan)
            delta = ours - ref if not (math.isnan(ours) or math.isnan(ref)) else math.nan
            table.add_row(row.model, row.task, f"{row.level:g}", row.metric, _num(ref), _num(ours), _num(delta, signed=True))
        return table

    for title, frame, style in (("Regressions (worse than the reference by more than tol)", cmp.regressions, "bold red"),
                                ("Missing rows (in the reference, not in the results)", cmp.missing, "bold red"),
                                ("Improvements (better than the reference by more than tol)", cmp.improvements, "bold green")):
        # one table per (profile, dataset, seed), named in the title, so the table fits an 80-column CI log
        for (profile, dataset, seed), sub in frame.groupby(["profile", "dataset", "seed"]):
            console.print(rows_table(f"{title}: {len(sub)} (profile {profile}, {dataset}, seed {seed:g})", sub, style))
    if not cmp.new.empty:
        console.print(f"{len(cmp.new)} result rows have no reference row (new models, levels or profiles); not gated.")
    for note in cmp.environment_notes:
        console.print(f"note: {note}", markup=False)
    tol = ", ".join(f"{k}={v:g}" for k, v in sorted(cmp.tol.items()))
    verdict = "[bold green]PASS[/bold green]" if cmp.passed else "[bold red]FAIL[/bold red]"
    console.print(f"{verdict}: {cmp.compared} rows compared (tol {tol}): {len(cmp.regressions)} regressions, "
                  f"{len(cmp.missing)} missing, {len(cmp.improvements)} improvements, {len(cmp.new)} new")
    if not cmp.improvements.empty and cmp.passed:
        console.print("to adopt the improvements, copy the results CSV over the reference and commit it (see docs/adding-a-baseline.md)")


def _num(v: float, signed: bool = False) -> str:
    if isinstance(v, float) and math.isnan(v):
        return "—"
    if signed and v and abs(v) < 5e-5:  # would print as +0.0000 (seen with --tol psnr=0)
        return f"{v:+.1e}"
    return f"{v:+.4f}" if signed else f"{v:.4f}"
