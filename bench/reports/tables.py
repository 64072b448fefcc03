"""Reports: Tables 1-3 beside the published numbers (with differences), the parameter table and
PSNR-vs-level figures, as markdown, LaTeX (booktabs), CSV, PNG and PDF."""

from __future__ import annotations

import io
import math
from pathlib import Path

import pandas as pd
from tabulate import tabulate

from bench.common.atomic import atomic_write_text
from bench.evaluation.evaluate import INPUT
from bench.evaluation.results import read_results
from bench.metrics.iqa import BUILTIN, IqaSpec, direction_of
from bench.models.catalog import list_models, model_cfg, param_count
from bench.reports.adaptive import write_adaptive_reports
from bench.reports.efficiency import write_efficiency_tables
from bench.reports.figures import ENTRY_COLOURS, SPARE_COLOURS, pyplot, save_figure
from bench.reports.markdown import markdown_table
from bench.reports.names import PRETTY, level_label
from bench.reports.published import applicable, published, published_value
from bench.reports.seeds import over_seeds, seed_note, several_seeds, write_spread_figure
from bench.reports.visual import write_visual_report
from bench.tasks.task import get_task
from bench.training.profiles import Entry, Profile, model_arch, model_kwargs
from bench.training.recipes import departures_text
from bench.training.runs import RunDir

TABLE_FILES = {"dejpeg": "table1_dejpeg", "denoise": "table2_denoise", "sr": "table3_sr"}


def _fmt(v, metric, signed=False, digits=None):
    """A number of ours (PSNR 2 decimals, SSIM 4) or, with `digits`, of the paper at its printed precision."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    if digits is None or (isinstance(digits, float) and math.isnan(digits)):
        digits = 2 if metric == "psnr" else 4
    digits = int(digits)
    return f"{v:+.{digits}f}" if signed else f"{v:.{digits}f}"


def task_table(profile: Profile, task_name: str, results: pd.DataFrame, entries: list[Entry], per_seed_results: pd.DataFrame | None = None) -> pd.DataFrame:
    """Long table: model, metric, level, ours, published, delta, confidence (table levels + mean). `results` holds one
    row per cell (bench.reports.seeds.over_seeds: the mean over training seeds); ours_sd is the standard deviation across
    seeds of the cell (of the seeds' level means in the mean column), NaN for one seed."""
    task = get_task(task_name)
    pub, _ = applicable(published(), task_name, profile.task_cfg(task_name)["eval_dataset"], task.metric.key())
    ours = results[(results.task == task_name) & (results.profile == profile.name)]
    levels = list(task.table_levels)
    rows = []

    def cells_of(model, metric):
        sub = ours[(ours.model == model) & (ours.metric == metric)]
        values = {float(lv): v for lv, v in zip(sub.level, sub.value)}
        cells = [(lv, values.get(float(lv), math.nan)) for lv in levels]
        present = [v for _, v in cells if not math.isnan(v)]
        mean = sum(present) / len(present) if len(present) == len(levels) else math.nan
        return dict(cells + [("mean", mean)]), {float(lv): il for lv, il in zip(sub.level, sub.input_level)}

    def spread_of(model, metric):
        """Standard deviation across training seeds per printed level and of the seeds' means over them."""
        sub = per_seed[(per_seed.model == model) & (per_seed.metric == metric) & per_seed.level.isin([float(lv) for lv in levels])]
        by_seed = sub.pivot_table(index="seed", columns="level", values="value") if "seed" in sub else sub.iloc[:1]
        if len(by_seed) < 2:
            return dict.fromkeys(levels + ["mean"], math.nan), len(by_seed)
        sd = {lv: float(by_seed[float(lv)].std()) if float(lv) in by_seed else math.nan for lv in levels}
        means = by_seed.mean(axis=1) if by_seed.shape[1] == len(levels) else None
        return sd | {"mean": float(means.std()) if means is not None else math.nan}, len(by_seed)

    per_seed = per_seed_results if per_seed_results is not None else ours
    per_seed = per_seed[(per_seed.task == task_name) & (per_seed.profile == profile.name)]
    extras = extra_metrics(profile, ours)
    models = list(dict.fromkeys(e.model for e in entries)) + [INPUT]
    degraded = {metric: cells_of(INPUT, metric)[0] for metric in BUILTIN + tuple(extras)}
    # PSNR and SSIM per model as the paper prints them, then a block per extra metric (pyiqa), every model in it
    for model, metric in [(m, k) for m in models for k in BUILTIN] + [(m, k) for k in extras for m in models]:
        values, given = cells_of(model, metric)
        sds, n_seeds = spread_of(model, metric)
        for lv, v in values.items():
            p, conf, digits = published_value(pub, task_name, model, lv, metric)
            rows.append({
                "table": task.paper_table, "task": task_name, "model": model, "metric": metric, "level": lv,
                "ours": v, "published": p, "delta": round(v - p, digits) if not (math.isnan(v) or math.isnan(p)) else math.nan,
                "published_digits": digits, "published_confidence": conf, "input_level": given.get(float(lv), math.nan) if lv != "mean" else math.nan,
                "vs_input": v - degraded[metric][lv] if model != INPUT else math.nan,
                "ours_sd": sds[lv], "n_seeds": n_seeds, "metric_spec": extras.get(metric, task.metric.key()),
            })
    return pd.DataFrame(rows)


def extra_metrics(profile: Profile, results: pd.DataFrame) -> dict[str, str]:
    """The pyiqa metrics these results hold, name -> spec key, in the profile's order (then any other)."""
    if "metric_spec" not in results:  # rows from before specs were stored: PSNR/SSIM only
        return {}
    found = {m: spec for m, spec in zip(results.metric, results.metric_spec) if str(spec).startswith("pyiqa:")}
    order = [m["name"] for m in profile.metrics] + sorted(found)
    return {name: found[name] for name in dict.fromkeys(order) if name in found}


def _metric_label(metric: str, spec: str) -> str:
    """PSNR, SSIM; a pyiqa metric with its direction (↑ higher is better, ↓ lower)."""
    if metric in BUILTIN:
        return metric.upper()
    return f"{metric.upper()} {'↑' if direction_of(spec) else '↓'}"


def _wide(table: pd.DataFrame, task: str, labels: dict | None = None):
    """Rows (model, metric, paper/ours/diff) x level columns, for markdown and LaTeX."""
    levels = list(dict.fromkeys(table.level))
    header = ["model", "metric", ""] + [level_label(task, lv) for lv in levels]
    body = []
    for (model, metric), sub in table.groupby(["model", "metric"], sort=False):
        sub = sub.set_index("level")
        name, m = (labels or {}).get(model, PRETTY.get(model, model)), _metric_label(metric, sub.metric_spec.iloc[0])
        if model != INPUT and metric not in BUILTIN:  # the paper printed no other metric: ours and the gain over the input
            body.append([name, m, "ours"] + [_fmt(sub.ours[lv], metric) + _spread(sub.ours_sd[lv], metric) + _elsewhere(lv, sub.input_level[lv])
                                             for lv in levels])
            body.append(["", "", "ours − input"] + [_fmt(sub.vs_input[lv], metric, signed=True) for lv in levels])
        elif model != INPUT:  # the paper's numbers and our differences at the precision the paper printed
            printed = {lv: sub.published_digits[lv] for lv in levels}
            body.append([name, m, "paper"] + [_fmt(sub.published[lv], metric, digits=printed[lv]) for lv in levels])
            body.append(["", "", "ours"] + [_fmt(sub.ours[lv], metric) + _spread(sub.ours_sd[lv], metric) + _elsewhere(lv, sub.input_level[lv])
                                            for lv in levels])
            body.append(["", "", "ours − paper"] + [_fmt(sub.delta[lv], metric, signed=True, digits=printed[lv]) for lv in levels])
            body.append(["", "", "ours − input"] + [_fmt(sub.vs_input[lv], metric, signed=True) for lv in levels])
        else:
            body.append([name, m, "ours"] + [_fmt(sub.ours[lv], metric) for lv in levels])
    return header, body


def _spread(sd, metric) -> str:
    """' ± sd' across training seeds, nothing for one seed."""
    return "" if sd is None or (isinstance(sd, float) and math.isnan(sd)) else f" ± {_fmt(sd, metric)}"


def per_seed_table(profile: Profile, task_name: str, per_seed: pd.DataFrame, entries: list[Entry]) -> pd.DataFrame:
    """The table's cells once per training seed of each entry (the CSV's per-seed rows, `seed` set)."""
    frames = []
    for seed in sorted(per_seed[(per_seed.model != INPUT) & (per_seed.task == task_name)].seed.unique()):
        rows = per_seed[(per_seed.seed == seed) | (per_seed.model == INPUT)]
        present = set(rows[(rows.task == task_name) & (rows.seed == seed)].model)
        table = task_table(profile, task_name, over_seeds(rows), [e for e in entries if e.model in present])
        frames.append(table[table.model != INPUT].assign(seed=str(int(seed)), ours_sd=math.nan, n_seeds=1))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _elsewhere(level, input_level) -> str:
    """A dagger where a bank answered with a network trained for another level."""
    if level == "mean" or input_level is None or math.isnan(input_level) or abs(input_level - float(level)) < 1e-9:
        return ""
    return f" †{input_level:g}"


def below_input_notes(table: pd.DataFrame, profile: Profile, task_name: str) -> list[str]:
    """Under a table: every PSNR cell in which a model scores below its own degraded input, and the
    reason the profile gives for cells that cannot beat it for a cause other than training (`below_input:`)."""
    psnr = table[(table.metric == "psnr") & (table.model != INPUT) & (table.level != "mean")]
    if psnr.vs_input.isna().all():
        return []
    below = psnr[psnr.vs_input < 0]
    if below.empty:
        return ["Every model scores above its degraded input in PSNR at every level of this table."]
    cells = "; ".join(f"{PRETTY.get(m, m)} at {', '.join(level_label(task_name, lv) for lv in sub.level)}"
                      for m, sub in below.groupby("model", sort=False))
    line = f"Below the degraded input in PSNR: {cells}."
    reason = profile.task_cfg(task_name).get("below_input")
    return [line + (f" Known limit: {reason}" if reason else "")]


def _latex(header, body, caption: str) -> str:
    cols = "lll" + "r" * (len(header) - 3)
    esc = [h.replace("σ", r"$\sigma$").replace("−", "$-$") for h in header]
    lines = [r"\begin{table}[t]", r"\centering", rf"\caption{{{caption}}}", rf"\begin{{tabular}}{{{cols}}}", r"\toprule",
             " & ".join(esc) + r" \\", r"\midrule"]
    for row in body:
        lines.append(" & ".join(str(c).replace("−", "$-$").replace("—", "--") for c in row) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]
    return "\n".join(lines)


def _gain_over_input(results: pd.DataFrame, entry: Entry) -> float:
    """Mean PSNR gain of an entry (its seed's runs) over its degraded input, across all evaluation levels."""
    psnr = results[(results.task == entry.task) & (results.metric == "psnr")]
    ours = psnr[(psnr.model == entry.model) & (psnr.seed == entry.seed)].set_index("level").value
    base = psnr[psnr.model == INPUT].set_index("level").value
    common = ours.index.intersection(base.index)
    return float((ours[common] - base[common]).mean()) if len(common) else math.nan


def _training_summary(entries: list[Entry], runs_dir: Path, results: pd.DataFrame) -> list[list]:
    """One row per entry and training seed (`results`: one row per seed)."""
    rows = []
    several = {e.model for e in entries if sum(x.model == e.model for x in entries) > 1}
    for e in entries:
        gain = _gain_over_input(results, e)
        summaries = [RunDir(runs_dir, r).summary() for r in e.runs]
        losses = [s.get("final_loss", math.nan) for s in summaries]
        rows.append([
            PRETTY.get(e.model, e.model) + (f", seed {e.seed}" if e.model in several else ""), ", ".join(f"{k}={v}" for k, v in e.model_kwargs.items() if k != "levels"),
            f"{param_count(e.arch, **e.model_kwargs):,}" + (f" x {len(e.runs)} nets" if len(e.runs) > 1 else ""),
            len(e.runs), "imported" if e.weights else summaries[0].get("steps", "?") if summaries else "?",
            "—" if e.weights else e.runs[0].config["train"].get("data_protocol", "fresh"), _kept_weights(e, summaries),
            " / ".join(f"{v:.4f}" for v in losses), _fmt(gain, "psnr", signed=True), " ".join(r.run_id for r in e.runs),
        ])
    return rows


def _kept_weights(entry: Entry, summaries: list[dict]) -> str:
    """Which weights were evaluated: the official file, the last ones, or the best validation checkpoint (its step)."""
    if entry.weights:
        return "official file"
    if not any("best_step" in s for s in summaries):
        return "last"
    valid = entry.runs[0].config.get("valid_dataset", "validation set")
    return f"best on {valid} at step " + " / ".join(str(s.get("best_step", "last")) for s in summaries)


def conventions_text(profile: Profile, task_name: str, results: pd.DataFrame, per_seed: pd.DataFrame | None = None) -> list[str]:
    task, tcfg = get_task(task_name), profile.task_cfg(task_name)
    sub = results[(results.task == task_name) & (results.profile == profile.name)]
    lines = [
        f"Metric spec: {task.metric.describe()} (key `{task.metric.key()}`).",
        f"Evaluation data: {sub.data_source.iloc[0] if len(sub) else tcfg['eval_dataset']}; images modcropped to 2; "
        f"degraded inputs seeded from (image, level, seed={profile.seed}); degradation options {tcfg['options']}.",
        (f"Training data: {tcfg['train_dataset']} (the paper trains on {task.paper_train_dataset}); "
         f"HyperRes trained jointly on {', '.join(f'{v:g}' for v in tcfg['train_levels'])}; per-level networks at "
         f"{', '.join(f'{v:g}' for v in tcfg['bank_levels'])}; evaluated at {', '.join(f'{v:g}' for v in tcfg['eval_levels'])}."
         if tcfg.get("train_dataset") else
         f"Nothing trained here: every row is an official checkpoint (below); evaluated at {', '.join(f'{v:g}' for v in tcfg['eval_levels'])}."),
        "† n: the entry has no network for this level and level n's answered (a per-level bank: its nearest trained level; "
        "DNI: its nearest endpoint, as it interpolates between its two endpoint networks and is undefined beyond them).",
        f"Profile `{profile.name}` differs from the paper in: " + ("; ".join(profile.conventions) or "nothing declared") + ".",
        "Published values: HyperRes arXiv 2206.05970v3 (paper_tables/published/hyperres_tables.csv); '—' = not printed or not legible; "
        "the paper's mean is over the five printed levels, and so is ours.",
        seed_note((per_seed if per_seed is not None else sub)[lambda f: f.profile == profile.name], task_name, profile.seed),
    ]
    extras = extra_metrics(profile, sub)
    lines[1:1] = [f"Metric spec of {name.upper()}: {IqaSpec.from_key(key).describe()} (key `{key}`); pyiqa's version is in each row's `versions`."
                  for name, key in extras.items()]
    if extras:
        lines.append(f"The paper printed no {', '.join(n.upper() for n in extras)} values: those blocks show ours and the gain over the degraded input only.")
    _, why = applicable(published(), task_name, tcfg["eval_dataset"], task.metric.key())
    if why:
        lines.append(why)
    if len(sub):
        lines.append(f"Seed {profile.seed}; {sub.versions.iloc[0]}; torch threads {sub.torch_threads.iloc[0]}; deterministic algorithms {sub.deterministic.iloc[0]}.")
    return lines


def param_table(profile: Profile | None = None) -> pd.DataFrame:
    """Every registered entry's official configurations: our count vs the official count vs the paper."""
    rows = []
    for name in list_models():
        cfg = model_cfg(name)
        for oc in cfg.official_counts:
            ours = param_count(name, **oc.kwargs)
            rows.append({"model": name, "config": ", ".join(f"{k}={v}" for k, v in oc.kwargs.items()), "ours": ours,
                         "official": oc.params, "paper_claim": oc.paper_claim, "match": ours == oc.params, "source": oc.source})
    if profile is not None:
        for model in profile.models:
            arch = model_arch(profile, model)
            for task in profile.tasks:
                if task not in model_cfg(arch).tasks:
                    continue
                kw = model_kwargs(profile, model, task)
                rows.append({"model": model, "config": f"profile {profile.name}, {task}: " + ", ".join(f"{k}={v}" for k, v in kw.items()),
                             "ours": param_count(arch, **kw), "official": None, "paper_claim": "", "match": None,
                             "source": "reduced size used by this profile (per network)"})
    return pd.DataFrame(rows)


def psnr_figure(profile: Profile, task_name: str, results: pd.DataFrame):
    """PSNR against level for every entry of the task (ours: lines, the mean over training seeds with a min–max band
    where there are several; `results` as bench.reports.seeds.over_seeds gives them) and the paper's printed values (crosses)."""
    plt = pyplot()

    task, tcfg = get_task(task_name), profile.task_cfg(task_name)
    ours = results[(results.task == task_name) & (results.profile == profile.name) & (results.metric == "psnr")]
    pub, _ = applicable(published(), task_name, tcfg["eval_dataset"], task.metric.key())
    pub = pub[(pub.metric == "psnr") & (pub.level != "mean") & (pub.value != "NA")]
    fig, ax = plt.subplots(figsize=(8.4, 4.2))
    colours = {**ENTRY_COLOURS, INPUT: "tab:gray"}
    # one colour per entry, so no two lines look alike (past the spare colours, matplotlib's cycle)
    colours |= dict(zip(sorted(set(ours.model) - set(colours)), SPARE_COLOURS))
    for model, sub in ours.groupby("model"):
        sub = sub.sort_values("level")
        n = int(sub.n_seeds.max()) if "n_seeds" in sub else 1
        ax.plot(sub.level, sub.value, marker="o", ms=3, color=colours.get(model), ls="--" if model == INPUT else "-",
                label=f"{PRETTY.get(model, model)} (ours" + (f", mean of {n} seeds, band: min–max)" if n > 1 else ")"))
        if n > 1:
            ax.fill_between(sub.level, sub.value_min, sub.value_max, color=colours.get(model), alpha=0.2, lw=0)
    for model, sub in pub.groupby("model"):
        ax.scatter(sub.level.astype(float), sub.value.astype(float), marker="x", s=40, color=colours.get(model),
                   label=f"{PRETTY.get(model, model)} (paper)")
    for lv in tcfg["train_levels"]:
        ax.axvline(lv, color="tab:red", alpha=0.15, lw=4)
    ax.set_xlabel(task.unit + " (shaded: HyperRes training levels)")
    ax.set_ylabel("PSNR [dB]")
    ax.set_title(f"{task.title}, {tcfg['eval_dataset']}\nprofile {profile.name}", fontsize=10)  # two lines: one ran past the figure
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))  # beside the axes: it hides no line
    fig.tight_layout()
    return fig


def official_notes(entries: list[Entry], absent: list[Entry]) -> list[str]:
    """Under a table: which rows are official weights (file, sha256, the setting they were trained for) and
    which entries are absent, with where to get their files."""
    lines = []
    for e in (e for e in entries if e.weights and e.runs):
        imported = e.runs[0].config["imported"]
        files = ", ".join(f"{f['name']} (sha256 {f['sha256'][:12]}…)" for f in imported["files"])
        lines.append(f"{PRETTY.get(e.model, e.model)} (official weights): {files}, imported, not trained here"
                     + (f"; trained for: {imported['setting']}" if imported.get("setting") else "") + ".")
    lines += [f"{PRETTY.get(e.model, e.model)}: absent — {e.absent}." for e in absent]
    return lines


def write_reports(profile: Profile, paths, entries: list[Entry], absent: list[Entry] = (), data_root=None) -> list[Path]:
    out = paths.tables_dir(profile.name)
    out.mkdir(parents=True, exist_ok=True)
    per_seed = read_results(paths.results_file(profile.name))  # one row per training seed
    # the runs of these entries only: rows of seeds or an evaluation seed the profile no longer has stay out
    current = {e.key for e in entries} | {(INPUT, profile.seed)}
    per_seed = per_seed[(per_seed.profile == profile.name) & pd.Series([(m, s) in current for m, s in zip(per_seed.model, per_seed.seed)], index=per_seed.index, dtype=bool)]
    results = over_seeds(per_seed)  # one row per cell: the mean over seeds
    written, index = [], [f"# Generated tables — profile `{profile.name}`", "", profile.description, ""]
    for task_name in dict.fromkeys(e.task for e in entries):
        task = get_task(task_name)
        task_entries = [e for e in entries if e.task == task_name]
        table = task_table(profile, task_name, results, task_entries, per_seed)
        base = out / TABLE_FILES[task_name]
        labels = {e.model: f"{PRETTY.get(e.model, e.model)} (official weights)" for e in task_entries if e.weights}
        header, body = _wide(table, task_name, labels)
        notes = (conventions_text(profile, task_name, results, per_seed) + below_input_notes(table, profile, task_name) + departures_text(profile, task_entries)
                 + official_notes(task_entries, [e for e in absent if e.task == task_name]))
        train = _training_summary(task_entries, paths.runs, per_seed)
        extras = ", ".join(_metric_label(m, k) for m, k in extra_metrics(profile, results[results.task == task_name]).items())
        title = f"{task.paper_table} — {task.title}, {profile.task_cfg(task_name)['eval_dataset']}: PSNR [dB] and SSIM" + (f"; {extras}" if extras else "")
        md = [f"## {title}", "", markdown_table(body, header), ""] + [f"- {n}" for n in notes]
        md += ["", "Training (data = the data protocol, fixed: whole images degraded once, fresh: every crop degraded as drawn; "
               "weights evaluated = the last ones or the best validation checkpoint; "
               "final L1 = moving average of the L1 training loss at the last step, per-level networks in level order; "
               "gain = mean PSNR over the degraded input across all evaluation levels, so an untrained model shows a gain near or below 0):", "",
               tabulate(train, ["model", "kwargs", "params", "runs", "steps", "data", "weights evaluated", "final L1",
                                "PSNR gain over input [dB]", "run ids"], tablefmt="github"), ""]
        atomic_write_text(base.with_suffix(".md"), "\n".join(md))
        atomic_write_text(base.with_suffix(".tex"), _latex(header, body, title + ". " + notes[0].replace("_", r"\_")))
        if several_seeds(per_seed[per_seed.task == task_name]):  # the mean and sd over seeds (seed "mean"), then every seed's own cells
            csv = pd.concat([table.assign(seed="mean"), per_seed_table(profile, task_name, per_seed, task_entries)], ignore_index=True)
        else:  # one seed: the table as it always was
            csv = table.drop(columns=["ours_sd", "n_seeds"])
        buf = io.StringIO()
        csv.assign(profile=profile.name).to_csv(buf, index=False, float_format="%.4f")
        atomic_write_text(base.with_suffix(".csv"), buf.getvalue())
        written += [base.with_suffix(s) for s in (".md", ".tex", ".csv")]
        written += save_figure(psnr_figure(profile, task_name, results), out / f"fig_psnr_vs_level_{task_name}")
        index += md + [f"![PSNR vs level]({'fig_psnr_vs_level_' + task_name}.png)", ""]
        spread = write_spread_figure(profile, task_name, per_seed, out)
        written += spread
        index += [f"![seed-to-seed spread]({spread[0].name})", ""] if spread else []
        visual_files, visual_md = write_visual_report(profile, paths, task_entries, data_root=data_root)  # trained runs only; else it says why
        written, index = written + visual_files, index + visual_md
    unshown = [e for e in absent if e.task not in {t.task for t in entries}]
    if unshown:  # a task whose every entry is absent has no table
        index += ["## Absent official weights", ""] + [f"- {n}" for n in official_notes([], unshown)] + [""]
    adaptive_files, adaptive_md = write_adaptive_reports(profile, results, [e for e in entries if e.primary], out, per_seed)
    written += adaptive_files
    index += adaptive_md
    params = param_table(profile)
    pbody = params.astype(object).where(params.notna(), "").values.tolist()
    atomic_write_text(out / "params.md", "## Parameter counts: ours vs official code vs paper\n\n" + tabulate(pbody, list(params.columns), tablefmt="github") + "\n")
    atomic_write_text(out / "params.tex", _latex(list(params.columns[:6]), [r[:6] for r in pbody], "Parameter counts: ours vs official vs paper claim"))
    buf = io.StringIO()
    params.to_csv(buf, index=False)
    atomic_write_text(out / "params.csv", buf.getvalue())
    written += [out / "params.md", out / "params.tex", out / "params.csv"]
    index += ["## Parameter counts", "", tabulate(pbody, list(params.columns), tablefmt="github"), ""]
    efficiency_files, efficiency_md = write_efficiency_tables(profile.name, paths.results, out)  # stored `perf --efficiency` figures; none: nothing
    written, index = written + efficiency_files, index + efficiency_md
    atomic_write_text(out / "README.md", "\n".join(index))
    written.append(out / "README.md")
    return written
