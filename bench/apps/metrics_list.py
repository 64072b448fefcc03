"""`hyperbench metrics`: which metrics a profile can score, fetching learned metrics' weights, and what each metric
costs per 1,000 images on this machine."""

from __future__ import annotations

import time

import numpy as np

from bench.common.errors import HyperbenchError
from bench.metrics import iqa

DEFAULT_TIMED = ("ms_ssim", "nlpd")  # the extra metrics of `quick`


def list_metrics(profile_name: str | None, console) -> None:
    from rich import box
    from rich.table import Table

    profile = _profile(profile_name)
    used = {m["name"] for m in profile.metrics} if profile else set()
    table = Table("metric", "from", "better", "weights", "present", *(["in profile"] if profile else []), box=box.SIMPLE)
    for name in iqa.BUILTIN:
        table.add_row(name, "hyperbench", "higher", "none", "—", *(["yes (always)"] if profile else []))
    try:
        names = iqa.full_reference_names()
    except HyperbenchError as exc:
        console.print(table)
        if used:
            raise  # the profile needs pyiqa
        console.print(f"pyiqa is not installed here: {exc.fix} adds its full-reference metrics", markup=False)
        return
    with console.status(f"building {len(names)} pyiqa metrics with downloads refused, to see which weight files they need"):
        for name in names:
            found = iqa.probe(name)
            origin = f"pyiqa {iqa.pyiqa_version()}" + (" (the name means the suite's own)" if name in iqa.BUILTIN else "")
            table.add_row(name, origin, "lower" if found["spec"].lower_better else "higher", found["weights"],
                          found["present"], *(["yes" if name in used else ""] if profile else []))
    console.print(table)
    console.print(f"weight files are read from {iqa.torch_home()}/hub/pyiqa and {iqa.torch_home()}/hub/checkpoints (TORCH_HOME), "
                  "a few from the Hugging Face cache (HF_HOME); they come from pyiqa's first run on a machine with internet: "
                  "`hyperbench metrics --fetch NAME` there", markup=False)
    if profile:
        iqa.check_profile_metrics(profile)
        console.print(f"profile {profile.name}: psnr, ssim" + "".join(f", {m['name']}" for m in profile.metrics) + " ready to score", markup=False)


def fetch_metrics(names: list[str], log) -> None:
    """Build each metric with downloads allowed: pyiqa fetches its weight files into TORCH_HOME."""
    from bench.tasks.task import get_task

    for name in [n for item in names for n in item.split(",") if n]:
        if name in iqa.BUILTIN:
            log(f"{name}: the suite's own metric, nothing to fetch")
            continue
        iqa.check_name(name)
        spec = iqa.spec_for({"name": name, "options": {}}, get_task("denoise"))
        iqa.build(spec, allow_downloads=True)
        log(f"{name}: ready ({iqa.probe(name)['present']})")


def time_metrics(profile_name: str | None, count: int, data_root, log) -> None:
    """Score `count` CBSD68 images (σ25 noisy inputs as the outputs) with each metric, one image at a time as the
    evaluation does, and print the seconds per 1,000 images: what each metric adds to an evaluation."""
    import torch
    from tabulate import tabulate

    from bench.data.images import modcrop
    from bench.data.loading import load_dataset
    from bench.metrics.quality import Reference
    from bench.tasks.task import get_task

    if count < 1:
        raise HyperbenchError(f"--time {count}", "give the number of images to score, e.g. --time 20")
    task = get_task("denoise")
    profile = _profile(profile_name)
    metrics = profile.metrics if profile else [{"name": n, "options": {}} for n in DEFAULT_TIMED]
    specs = [iqa.spec_for(m, task) for m in metrics]
    for spec in specs:
        iqa.build(spec)  # weights and imports before the clock starts
    images = load_dataset("CBSD68", data_root, colour="rgb")[:count]
    pairs = []
    for i, image in enumerate(images):
        clean = modcrop(image.pixels, 2)
        noisy = task.degrade(clean, 25.0, np.random.default_rng(i), task.default_options)
        pairs.append((clean, np.clip(np.round(noisy * 255), 0, 255).astype(np.uint8)))
    scorers = {"psnr": lambda c: Reference(c, task.metric).psnr, "ssim": lambda c: Reference(c, task.metric).ssim}
    scorers |= {s.name: (lambda c, s=s: iqa.IqaReference(c, s).score) for s in specs}
    rows = []
    for name, make in scorers.items():
        start = time.perf_counter()
        for clean, out in pairs:
            make(clean)(out)
        seconds = time.perf_counter() - start
        rows.append([name, f"{seconds / len(pairs) * 1000:.0f}", f"{seconds / len(pairs) * 1000 / 60:.1f}"])
    shape = pairs[0][0].shape
    log(f"{len(pairs)} CBSD68 images (about {shape[0]}x{shape[1]}), torch threads {torch.get_num_threads()}, "
        f"{torch.backends.cpu.get_cpu_capability()}; each score made as the evaluation makes it (reference prepared per image):\n"
        + tabulate(rows, ["metric", "s per 1,000 images", "min per 1,000 images"], tablefmt="simple", disable_numparse=True))


def _profile(name: str | None):
    if name is None:
        return None
    from bench.training.profiles import load_profile

    return load_profile(name)


def print_cross_check(log) -> None:
    from tabulate import tabulate

    from bench.metrics.crosscheck import cross_check, skimage_pairs

    rows = cross_check(skimage_pairs())
    log(f"pyiqa {iqa.pyiqa_version()} against the suite's metrics on 6 pairs (3 sample images, AWGN σ15 and JPEG q30); "
        "difference = pyiqa − ours (dB for PSNR):\n" + tabulate(
            [[r["comparison"], r["pyiqa"], r["ours"], "yes" if r["same convention"] else "no", f"{r['mean difference']:+.2e}",
              f"{r['largest |difference|']:.2e}"] for r in rows],
            ["comparison", "pyiqa's convention", "ours", "same", "mean diff", "largest |diff|"], tablefmt="github", disable_numparse=True))
