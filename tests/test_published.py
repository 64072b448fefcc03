"""A published number stands beside a result only when the evaluation dataset, the level and the
metric convention are the published row's."""

import pandas as pd

from bench.reports.published import applicable, published, published_value
from bench.tasks.task import get_task


def test_every_published_row_names_its_dataset_and_metric_spec():
    pub = published()
    assert not pub.empty and pub.dataset.notna().all() and pub.metric_spec.notna().all()
    for task_name, sub in pub.groupby("task"):
        assert set(sub.metric_spec) == {get_task(task_name).metric.key()}  # the suite's default is the paper's convention
        assert set(sub.dataset) == {get_task(task_name).eval_dataset}


def test_published_values_apply_only_to_the_same_dataset_and_spec():
    pub = published()
    spec = get_task("sr").metric.key()
    rows, why = applicable(pub, "sr", "Set5", spec)
    assert len(rows) and why == ""
    assert published_value(rows, "sr", "hyperres", 2.0, "psnr")[0] > 30
    for dataset, key in (("skimage-eval", spec), ("Set5", "y|crop0|ssim11g1.5|mean")):
        rows, why = applicable(pub, "sr", dataset, key)
        assert rows.empty and "Set5" in why and dataset in why


def test_smoke_tables_show_no_published_value_and_say_why():
    from bench.reports.tables import conventions_text, task_table
    from bench.training.profiles import expand, load_profile

    profile = load_profile("smoke")
    entries = [e for e in expand(profile, tasks=["denoise"]) if e.model in ("hyperres", "perlevel")]
    results = pd.DataFrame([
        {"profile": "smoke", "task": "denoise", "model": e.model, "metric": m, "level": lv, "value": 20.0, "input_level": lv,
         "data_source": "skimage-eval", "versions": "v", "torch_threads": 1, "deterministic": "on"}
        for e in entries for m in ("psnr", "ssim") for lv in profile.task_cfg("denoise")["eval_levels"]
    ])
    table = task_table(profile, "denoise", results, entries)
    assert table.published.isna().all()
    assert any("Published values not shown" in line and "CBSD68" in line for line in conventions_text(profile, "denoise", results))


def test_a_profile_on_the_papers_data_gets_the_published_value_and_the_difference():
    from dataclasses import replace

    from bench.reports.tables import task_table
    from bench.training.profiles import expand, load_profile

    smoke = load_profile("smoke")
    profile = replace(smoke, tasks={**smoke.tasks, "sr": {**smoke.tasks["sr"], "eval_dataset": "Set5"}})
    entries = [e for e in expand(profile, tasks=["sr"]) if e.model == "hyperres"]
    results = pd.DataFrame([{"profile": "smoke", "task": "sr", "model": "hyperres", "metric": "psnr", "level": lv, "value": 30.0,
                             "input_level": lv} for lv in profile.task_cfg("sr")["eval_levels"]])
    table = task_table(profile, "sr", results, entries)
    row = table[(table.metric == "psnr") & (table.level.astype(str).isin(["2", "2.0"]))].iloc[0]
    assert row.published == 36.71 and abs(row.delta - (30.0 - 36.71)) < 1e-9


def test_published_values_and_differences_keep_the_printed_precision():
    """The paper prints SSIM 0.82 (two decimals): the table shows `0.82`, not `0.8200`, and our difference to two
    decimals; our own numbers keep their four."""
    from bench.reports.tables import _wide, task_table
    from bench.training.profiles import expand, load_profile

    profile = load_profile("quick")
    entries = [e for e in expand(profile, tasks=["dejpeg"]) if e.model == "hyperres"]
    pub = published()
    q10 = pub[(pub.task == "dejpeg") & (pub.model == "hyperres") & (pub.level == "10") & (pub.metric == "ssim")].iloc[0]
    assert q10.digits == "2" and q10.value == "0.82"
    results = pd.DataFrame([
        {"profile": "quick", "task": "dejpeg", "model": m, "metric": metric, "level": lv, "value": value, "input_level": lv}
        for m in ("hyperres", "degraded-input") for lv in (10, 30, 50, 70, 80) for metric, value in (("psnr", 28.123456), ("ssim", 0.781234))
    ])
    table = task_table(profile, "dejpeg", results, entries)
    row = table[(table.model == "hyperres") & (table.metric == "ssim") & (table.level.astype(str) == "10")].iloc[0]
    assert row.published_digits == 2 and row.delta == round(0.781234 - 0.82, 2)
    header, body = _wide(table, "dejpeg")
    start = next(i for i, r in enumerate(body) if r[:3] == ["HyperRes", "SSIM", "paper"])
    paper, ours, diff = body[start : start + 3]
    column = header.index("q=10")
    assert (paper[column], ours[column], diff[column]) == ("0.82", "0.7812", "-0.04")


def test_every_cell_shows_its_gap_to_the_degraded_input_and_the_cells_below_it_are_named():
    from dataclasses import replace

    from bench.reports.markdown import markdown_table
    from bench.reports.tables import _wide, below_input_notes, task_table
    from bench.training.profiles import expand, load_profile

    quick = load_profile("quick")
    entries = [e for e in expand(quick, tasks=["dejpeg"]) if e.model in ("hyperres", "perlevel")]
    ours = {10: 29.0, 30: 33.0, 50: 34.0, 70: 35.0, 80: 35.5}
    degraded = {10: 27.5, 30: 32.0, 50: 34.2, 70: 35.6, 80: 36.6}
    rows = [{"profile": "quick", "task": "dejpeg", "model": m, "metric": "psnr", "level": lv, "value": v, "input_level": lv}
            for m, values in (("hyperres", ours), ("perlevel", {lv: v + 1.0 for lv, v in ours.items()}), ("degraded-input", degraded))
            for lv, v in values.items()]
    table = task_table(quick, "dejpeg", pd.DataFrame(rows), entries)
    cell = table[(table.model == "hyperres") & (table.metric == "psnr") & (table.level.astype(str) == "50")].iloc[0]
    assert abs(cell.vs_input - (34.0 - 34.2)) < 1e-9
    mean = table[(table.model == "hyperres") & (table.metric == "psnr") & (table.level == "mean")].iloc[0]
    assert abs(mean.vs_input - (sum(ours.values()) - sum(degraded.values())) / 5) < 1e-9
    header, body = _wide(table, "dejpeg")
    start = next(i for i, r in enumerate(body) if r[:3] == ["HyperRes", "PSNR", "paper"])
    assert body[start + 3][2] == "ours − input" and body[start + 3][header.index("q=10")] == "+1.50"
    markdown = markdown_table(body, header)  # an all-number column keeps its signs and digits as formatted
    assert "| +1.50 " in markdown and "| 29.00 " in markdown
    note = below_input_notes(table, quick, "dejpeg")[0]
    assert "HyperRes at q=50, q=70, q=80" in note and "Per-level networks (paper: Baseline) at q=80" in note and "Known limit" not in note
    limited = replace(quick, tasks={**quick.tasks, "dejpeg": {**quick.tasks["dejpeg"], "below_input": "the training set is JPEG."}})
    assert below_input_notes(table, limited, "dejpeg")[0].endswith("Known limit: the training set is JPEG.")
    above = pd.DataFrame([r for r in rows if r["model"] != "degraded-input"]
                         + [{**r, "value": r["value"] - 5} for r in rows if r["model"] == "degraded-input"])
    assert below_input_notes(task_table(quick, "dejpeg", above, entries), quick, "dejpeg") == [
        "Every model scores above its degraded input in PSNR at every level of this table."]
