"""The paper's quantitative claims, checked on a profile's stored results (`claims.md` beside its tables).

Every verdict comes from the stored numbers by the rule printed beside it, never by hand. A PSNR difference
between two entries gets a 95 % interval that accounts for the test images and for the training seeds
(bench.reports.intervals): the claim *holds* when the whole interval clears the claim's floor minus a 0.1 dB
margin, *does not hold* when the whole interval misses it, and is *inconclusive* when it straddles it (with how
many more seeds or images would likely settle it); *not measurable* names the reason (an entry or level the
profile lacks, a published number that is lost or undefined). Entries trained with one seed borrow the seed
spread measured on the same task's multi-seed entries; without any, the interval holds the images alone and
says that the training variance is unmeasured.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bench.common.atomic import atomic_write_text
from bench.evaluation.results import per_image_file, read_results
from bench.models.catalog import param_count
from bench.reports.adaptive import below_own_levels
from bench.reports.intervals import difference_interval, format_interval, pooled_seed_variance
from bench.reports.intervals import verdict as interval_verdict
from bench.reports.markdown import markdown_table
from bench.reports.published import published, published_value
from bench.reports.seeds import over_seeds
from bench.tasks.task import get_task
from bench.training.profiles import Entry, Profile, entry_train
from bench.tuning.current import current_frame

ESTIMATOR = ("D = mean(A) − mean(B) over seeds and images; Var(D) = each entry's seed-to-seed variance of its per-seed mean "
             "(net of the seed x image interaction) / its seeds + the variance of the paired per-image difference / images; "
             "Welch–Satterthwaite df, Student t")
MARGIN_DB = 0.1  # the paper's gaps are printed to 0.01 dB; 0.1 dB is the margin a claim of "on par" allows
HOLDS, FAILS, INCONCLUSIVE, UNMEASURABLE = "holds", "does not hold", "inconclusive", "not measurable"
VERDICTS = (HOLDS, FAILS, INCONCLUSIVE, UNMEASURABLE)


@dataclass
class Claim:
    claim: str
    where: str
    paper: str
    measured: str
    verdict: str
    rule: str


def _per_image(profile: Profile, paths, entry: Entry | None, task: str) -> pd.DataFrame | None:
    path = per_image_file(paths.eval_dir(), profile, task, entry)
    return pd.read_csv(path, dtype={"image": str}) if path.exists() else None


def _seed_matrix(profile, paths, entries, model: str, task: str, levels) -> pd.DataFrame | None:
    """Images x training seeds: each seed's PSNR per image, averaged over `levels`; None without stored rows."""
    columns = []
    for entry in (e for e in entries if e.model == model and e.task == task):
        rows = _per_image(profile, paths, entry, task)
        if rows is not None:
            columns.append(rows[rows.level.isin(levels)].groupby("image").psnr.mean().rename(entry.seed))
    return pd.concat(columns, axis=1) if columns else None


@dataclass
class Comparison:
    """A difference in mean PSNR between two entries with its interval (bench.reports.intervals.Interval)."""

    interval: object
    source: str  # where the training variance comes from, in words


def _compare(profile, paths, entries, a: str, b: str, task: str, levels) -> Comparison | None:
    """The interval of the PSNR difference a − b over `levels`, paired by image, over every training seed of each.
    An entry with one seed borrows the seed variance of the task's multi-seed entries (over the same levels)."""
    matrices = [_seed_matrix(profile, paths, entries, name, task, levels) for name in (a, b)]
    if any(m is None for m in matrices):
        return None
    common = matrices[0].dropna().index.intersection(matrices[1].dropna().index)
    if len(common) < 2:
        return None
    a_m, b_m = (m.loc[common].to_numpy().T for m in matrices)  # seeds x images
    borrowed, source = None, ""
    if min(len(a_m), len(b_m)) == 1:
        donors = _multi_seed(profile, paths, entries, task, levels)
        if donors:
            borrowed = pooled_seed_variance([m for _, m in donors])
            source = f"seed spread borrowed from {', '.join(name for name, _ in donors)} ({task}) for the single-seed entr{'ies' if len(a_m) == len(b_m) else 'y'}"
    interval = difference_interval(a_m, b_m, borrowed_a=borrowed if len(a_m) == 1 else None, borrowed_b=borrowed if len(b_m) == 1 else None)
    return Comparison(interval, source)


def _multi_seed(profile, paths, entries, task, levels) -> list[tuple[str, np.ndarray]]:
    """(name, seeds x images) of the task's entries trained with several seeds (the donors of a borrowed seed spread)."""
    found = []
    for name in dict.fromkeys(e.model for e in entries if e.task == task):
        if sum(e.model == name and e.task == task for e in entries) > 1:
            m = _seed_matrix(profile, paths, entries, name, task, levels)
            if m is not None and m.shape[1] > 1:
                found.append((name, m.dropna().to_numpy().T))
    return found


def _verdict(comparison: Comparison | None, floor) -> tuple[str, str]:
    if comparison is None:
        return "—", UNMEASURABLE
    interval = comparison.interval
    found, advice = interval_verdict(interval, floor, MARGIN_DB)
    text = format_interval(interval)
    if comparison.source or (interval.note and advice.startswith(interval.note)):  # one place says it, not two
        text = text.removesuffix(f"; {interval.note}") + (f"; {comparison.source}" if comparison.source else "")
    return text + (f"; {advice}" if advice else ""), found


def _unequal_budget(profile, a: Entry | None, b: Entry | None) -> str:
    """A remark when the two entries of a comparison trained for different budgets (it then measures budget too): other
    step counts, unless both were given the same training compute (`tflop`)."""
    if a is None or b is None or a.weights or b.weights or not a.runs or not b.runs:  # official weights: trained elsewhere
        return ""
    budgets = [entry_train(profile, e.model, e.task) for e in (a, b)]
    if "tflop" in budgets[0] and budgets[0].get("tflop") == budgets[1].get("tflop"):
        return ""
    steps = [e.runs[0].config["train"]["steps"] for e in (a, b)]
    return "" if steps[0] == steps[1] else f"; unequal budgets: {a.model} {steps[0]:,}, {b.model} {steps[1]:,} steps per training stage"


def _find(entries, task, pred) -> Entry | None:
    return next((e for e in entries if e.task == task and pred(e)), None)


def _published_gap(pub, task, levels) -> float | None:
    pairs = [(published_value(pub, task, "hyperres", lv, "psnr")[0], published_value(pub, task, "perlevel", lv, "psnr")[0]) for lv in levels]
    pairs = [(h, p) for h, p in pairs if not (math.isnan(h) or math.isnan(p))]
    return float(np.mean([h - p for h, p in pairs])) if pairs else None


def table_claims(profile, paths, entries, task_name) -> list[Claim]:
    """Tables 1-3: HyperRes on par with the per-level networks, at all printed levels and at those it was not trained on."""
    task, tcfg = get_task(task_name), profile.task_cfg(task_name)
    hyper, bank = _find(entries, task_name, lambda e: e.model == "hyperres"), _find(entries, task_name, lambda e: e.model == "perlevel")
    printed = [lv for lv in task.table_levels if lv in tcfg["eval_levels"]]
    # The paper's gap defines the claim on any dataset: it is a difference between two models, compared with ours.
    paper_mean = _published_gap(published(), task_name, ["mean"])
    claims = []
    gap = _compare(profile, paths, entries, "hyperres", "perlevel", task_name, printed) if hyper and bank and len(printed) == len(task.table_levels) else None
    measured, verdict = _verdict(gap, paper_mean)
    measured += _unequal_budget(profile, hyper, bank)
    claims.append(Claim(f"{task_name}: one HyperRes is on par with a network per level", f"{task.paper_table}, mean of the printed levels",
                        f"HyperRes − per-level {paper_mean:+.2f} dB", measured, verdict,
                        f"holds if the 95 % interval of the gap (images and seeds) lies above the paper's gap − 0.1 dB, fails if it lies below; "
                        f"levels {', '.join(f'{v:g}' for v in printed)}"))
    trained = tcfg.get("train_levels") or []
    untrained = [lv for lv in printed if lv not in trained and lv in (tcfg.get("bank_levels") or [])]
    paper_gap = _published_gap(published(), task_name, untrained)
    gap = _compare(profile, paths, entries, "hyperres", "perlevel", task_name, untrained) if hyper and bank and untrained else None
    measured, verdict = _verdict(gap, paper_gap if paper_gap is not None else 0.0)
    measured += _unequal_budget(profile, hyper, bank)
    claims.append(Claim(f"{task_name}: at levels HyperRes was not trained on, it is on par with the network trained there",
                        f"{task.paper_table}, levels {', '.join(f'{v:g}' for v in untrained) or 'none'}",
                        f"{paper_gap:+.2f} dB" if paper_gap is not None else "—", measured, verdict if untrained else UNMEASURABLE,
                        "as above, on the printed levels outside HyperRes' training levels where a per-level network was trained"))
    return claims


def small_model_claims(profile, paths, entries, task_name) -> list[Claim]:
    """Figs 2-4: the small HyperRes against AdaFM and CFSNet at a fraction of their parameters."""
    small = _find(entries, task_name, lambda e: e.arch == "hyperres" and e.model != "hyperres")
    levels = profile.task_cfg(task_name)["eval_levels"]
    figure = {"dejpeg": "Fig 2", "denoise": "Fig 3", "sr": "Fig 4"}[task_name]
    claims = []
    for rival in ("adafm", "cfsnet"):
        other = _find(entries, task_name, lambda e, r=rival: e.model == r)
        if small is None or other is None:
            claims.append(Claim(f"{task_name}: small HyperRes ≥ {rival} with fewer parameters", figure, "curves only (no printed numbers)",
                                "—", UNMEASURABLE, f"the profile has no {'small HyperRes' if small is None else rival} entry for {task_name}"))
            continue
        ours, theirs = param_count(small.arch, **small.model_kwargs), param_count(other.arch, **other.model_kwargs)
        measured, verdict = _verdict(_compare(profile, paths, entries, small.model, other.model, task_name, levels), 0.0)
        measured += _unequal_budget(profile, small, other)
        verdict = verdict if ours < theirs or verdict == UNMEASURABLE else FAILS
        claims.append(Claim(f"{task_name}: small HyperRes ({ours:,} params) ≥ {rival} ({theirs:,}) at fewer parameters", figure,
                            "curves only (no printed numbers)", measured, verdict,
                            "holds if it has fewer parameters and the 95 % interval of its mean PSNR gap over all evaluation levels lies above −0.1 dB"))
    return claims


def cresmd_claim(profile, paths, entries, task_name) -> Claim:
    hyper, cresmd = _find(entries, task_name, lambda e: e.model == "hyperres"), _find(entries, task_name, lambda e: e.model == "cresmd")
    gap = _compare(profile, paths, entries, "hyperres", "cresmd", task_name, profile.task_cfg(task_name)["eval_levels"]) if hyper and cresmd else None
    measured, verdict = _verdict(gap, 0.0)
    return Claim(f"{task_name}: HyperRes ≥ CResMD (32 blocks)", "Table 4", "lost: no number of Table 4 is legible",
                 measured + _unequal_budget(profile, hyper, cresmd), verdict,
                 "holds if the 95 % interval of HyperRes − CResMD (mean PSNR over all evaluation levels) lies above −0.1 dB (the paper's text: HyperRes more accurate)")


def tuning_claims(profile, paths) -> list[Claim]:
    """Fig 5 and the noise estimator, from the tuning results of the profile's current runs (bench.tuning.current)."""
    tuned = (current_frame(paths, profile.name, f"optimal-{task}-hyperres") for task in ("dejpeg", "denoise", "sr"))
    rows = next((frame for frame in tuned if frame is not None), None)  # the paper's Fig 5 is deJPEG; read until one is found
    if rows is None:
        fig5 = Claim("the best input level is the true level", "Fig 5", "negligible difference (bars, no numbers)", "—", UNMEASURABLE,
                     "no tuning results of HyperRes's current runs in this profile (run `hyperbench tune`)")
    else:
        per_level = rows.assign(dev=(rows.best - rows.reference).abs()).groupby("level")[["dev", "step"]].mean()
        within = per_level.dev <= per_level.step
        fig5 = Claim(f"the best input level is within one grid step of the true level ({rows.task.iloc[0]}, HyperRes)", "Fig 5",
                     "negligible difference (bars, no numbers)",
                     f"{int(within.sum())} of {len(within)} levels; mean |best − true| {per_level.dev.mean():.2f} (grid step {per_level.step.mean():.2f})",
                     HOLDS if within.all() else FAILS, "holds if at every true level the mean |best − true| over images ≤ the search's grid step")
    blind = current_frame(paths, profile.name, "blind-denoise")
    measured = "—"
    if blind is not None:
        estimates = blind.drop_duplicates(["image", "level"])  # one estimate per noisy input, whichever models restored it
        tol = float(profile.tune.get("blind", {}).get("tolerance", 2))
        measured = f"{100 * float(((estimates.estimate - estimates.level).abs() <= tol).mean()):.1f} % within ±{tol:g} σ ({len(estimates)} estimates)"
    estimator = Claim("the noise estimator is accurate", "Sec. 4.4", "98.23 % 'average accuracy'", measured, UNMEASURABLE,
                      "the paper does not define its accuracy (no tolerance, classes or test set), so no rule can compare with it")
    return [fig5, estimator]


def claims(profile: Profile, paths, entries: list[Entry]) -> list[Claim]:
    found = []
    for task_name in dict.fromkeys(e.task for e in entries):
        found += table_claims(profile, paths, entries, task_name)
        found += small_model_claims(profile, paths, entries, task_name)
        if task_name in ("denoise", "dejpeg"):
            found.append(cresmd_claim(profile, paths, entries, task_name))
    return found + tuning_claims(profile, paths)


def below_input_lines(profile: Profile, entries: list[Entry], rows: pd.DataFrame) -> list[str]:
    """Entries below their degraded input at one of their own training levels (its comparisons then judge an untrained
    or broken entry), with the reason the profile gives for that task (`below_input:`), else that none was diagnosed."""
    cells = over_seeds(rows[rows.profile == profile.name]) if len(rows) else rows
    lines = []
    for task in dict.fromkeys(e.task for e in entries):
        below = below_own_levels(cells, profile, [e for e in entries if e.primary], task)
        if below:
            reason = profile.task_cfg(task).get("below_input") or "no cause diagnosed in this profile"
            listed = "; ".join(f"{m} at {', '.join(f'{v:g}' for v in lv)}" for m, lv in below.items())
            lines.append(f"- {task}: below the degraded input at their own training levels: {listed}. Reason: {reason}")
    return lines


def write_claims(profile: Profile, paths, entries: list[Entry]) -> tuple[Path, str]:
    """claims.md beside the tables; returns its path and the one-line summary for the tables' README."""
    found = claims(profile, paths, entries)
    counts = {v: sum(c.verdict == v for c in found) for v in VERDICTS}
    summary = (f"Claims of the paper at this profile's scale: {counts[HOLDS]} hold, {counts[FAILS]} do not hold, {counts[INCONCLUSIVE]} inconclusive, "
               f"{counts[UNMEASURABLE]} not measurable (claims.md).")
    body = [[c.claim, c.where, c.paper, c.measured, c.verdict, c.rule] for c in found]
    rows = read_results(paths.results_file(profile.name))
    text = "\n".join([
        f"# The paper's claims — profile `{profile.name}`", "", summary, "",
        markdown_table(body, ["claim", "where", "paper", "measured here", "verdict", "rule"]), "",
        f"- Interval: 95 % for the difference in mean PSNR, from the paired per-image differences and the spread across training seeds "
        f"(bench/reports/intervals.py: {ESTIMATOR}); margin {MARGIN_DB} dB below the claim's floor. Verdicts are computed from "
        f"{rows.shape[0]} stored result rows and the per-image rows beside them, never set by hand.",
        *below_input_lines(profile, entries, rows),
        f"- Profile `{profile.name}` differs from the paper in: " + ("; ".join(profile.conventions) or "nothing declared") + ".", "",
    ])
    out = paths.tables_dir(profile.name) / "claims.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, text)
    readme = out.with_name("README.md")
    if readme.exists():  # the summary line under the tables' title (replacing an earlier one)
        lines = [line for line in readme.read_text().splitlines() if not line.startswith("Claims of the paper at this profile's scale")]
        atomic_write_text(readme, "\n".join(lines[:1] + ["", summary] + lines[1:]) + "\n")
    return out, summary
