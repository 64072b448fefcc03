"""`hyperbench data`: the standard datasets, their sources and licences, download or import, and checksum
verification."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from bench.apps.cli_common import DataRootOpt, RunsOpt, console, log
from bench.common.errors import HyperbenchError

data_app = typer.Typer(no_args_is_help=True, help="Standard datasets: sources and licences, download or import, checksum verification.")


def _data_root_for_writing(data_root: str | None) -> Path:
    import os

    root = data_root or os.environ.get("HYPERBENCH_DATA")
    if not root:
        raise HyperbenchError("no data root to prepare the dataset in", "pass --data-root DIR (created if missing) or set HYPERBENCH_DATA")
    return Path(root).expanduser()


def _print_reports(reports) -> None:
    table = Table(pad_edge=False)  # fits 80 columns
    for column in ("dataset", "status", "images", "missing", "extra", "corrupted", "checksums"):
        table.add_column(column, no_wrap=True)
    for r in reports:
        status = {"ok": "[green]ok[/green]", "absent": "[dim]absent[/dim]", "problems": "[bold red]PROBLEMS[/bold red]"}[r.state]
        images = f"{r.present}" + (f"/{r.expected}" if r.expected is not None else "")
        counts = ["-"] * 3 if r.state == "absent" else [str(len(r.missing)), str(len(r.extra)), str(len(r.corrupted))]
        table.add_row(r.name, status, images, *counts, r.checksums or "-")
    console.print(table)
    for r in reports:
        for kind in ("missing", "extra", "corrupted"):
            names = getattr(r, kind)
            if names:
                more = f" and {len(names) - 5} more" if len(names) > 5 else ""
                console.print(f"  {r.name}: {kind} {', '.join(names[:5])}{more}")


@data_app.command("list")
def data_list(data_root: str = DataRootOpt):
    """The registered datasets: role, canonical count, checksums, source, original publisher and licence."""
    from bench.data.datasets import DATASETS
    from bench.data.loading import resolve_data_root

    root = resolve_data_root(data_root)
    for spec in DATASETS.values():
        here = ("  [green]present[/green]" if (root / spec.name).is_dir() else "  [dim]absent[/dim]") if root else ""
        count = f"{spec.count} images" if spec.count else "count depends on image sizes"
        console.print(f"[bold]{spec.name}[/bold]  {spec.role}  {count}  checksums: {spec.checksum_kind}{here}")
        console.print(f"  {spec.description}", soft_wrap=True)
        if spec.source:
            console.print(f"  source:    {spec.source.url}  ({', '.join(spec.source.folders)})", soft_wrap=True)
        else:
            console.print(f"  source:    cut from {spec.derived_from} by `hyperbench data prepare {spec.name}`")
        console.print(f"  publisher: {spec.homepage}", soft_wrap=True)
        console.print(f"  licence:   {spec.licence}", soft_wrap=True)


@data_app.command("prepare")
def data_prepare(name: str = typer.Argument(..., help="dataset name (see `hyperbench data list`)"),
                 from_: Path = typer.Option(None, "--from", help="import a local copy: a folder (holding NAME/ or the images) or an archive"),
                 data_root: str = DataRootOpt,
                 keep_archive: bool = typer.Option(False, "--keep-archive", help="keep the downloaded archive under <root>/.downloads")):
    """Download (resumable) or import a dataset, check every file's sha256 and install it as <root>/NAME/."""
    from bench.data.download import prepare

    report = prepare(name, _data_root_for_writing(data_root), from_, keep_archive, log=log)
    _print_reports([report])
    raise typer.Exit(0 if report.ok else 1)


@data_app.command("verify")
def data_verify(name: str = typer.Argument(None, help="one dataset (default: every registered one present under the root)"),
                data_root: str = DataRootOpt):
    """Report missing, extra and corrupted files; exit 1 when anything is wrong."""
    from bench.data.datasets import DATASETS, get_dataset
    from bench.data.loading import resolve_data_root
    from bench.data.verify import verify

    root = resolve_data_root(data_root)
    if root is None:
        raise HyperbenchError("no data root to verify", "pass --data-root DIR or set HYPERBENCH_DATA")
    specs = [get_dataset(name)] if name else list(DATASETS.values())
    reports = [verify(spec, root) for spec in specs]
    console.print(f"data root {root}")
    _print_reports(reports)
    bad = [r.name for r in reports if r.state == "problems" or (name and r.state == "absent")]
    ok = sum(r.ok for r in reports)
    absent = sum(r.state == "absent" for r in reports)
    console.print(f"{ok} verified, {absent} not present, {len(bad)} with problems" + (f": {', '.join(bad)}" if bad else ""))
    raise typer.Exit(1 if bad else 0)


cache_app = typer.Typer(no_args_is_help=True, help="The stored training data of the `fixed` data protocol (training-data/ beside the runs folder).")
data_app.add_typer(cache_app, name="cache")


@cache_app.command("list")
def cache_list(runs_dir: Path = RunsOpt):
    """Every training store: training set, task, options, seed, levels stored and size on disk."""
    from bench.data.training_store import list_stores, store_dir

    stores = list_stores(runs_dir)
    table = Table(pad_edge=False)
    for column in ("store", "task", "seed", "options", "files", "size"):
        table.add_column(column, no_wrap=column == "store")
    for store in stores:
        key = store["key"]
        table.add_row(store["folder"].name, key["task"], str(key["seed"]), ", ".join(f"{k} {v}" for k, v in key["options"].items()),
                      " ".join(store["files"]), f"{store['bytes'] / 1e6:.1f} MB")
    console.print(table)
    console.print(f"{len(stores)} stores, {sum(s['bytes'] for s in stores) / 1e6:.1f} MB in {store_dir(runs_dir)}")


@cache_app.command("remove")
def cache_remove(names: list[str] = typer.Argument(None, help="store folders to remove (default: with --all, every one)"),
                 all_: bool = typer.Option(False, "--all", help="remove every store under the runs folder"),
                 runs_dir: Path = RunsOpt):
    """Remove training stores (a later run rebuilds what it needs)."""
    from bench.data.training_store import remove_stores

    if not names and not all_:
        raise HyperbenchError("no store named", "give store names (`hyperbench data cache list`) or --all")
    removed = remove_stores(runs_dir, names)
    console.print(f"removed {len(removed)} stores" + (f": {', '.join(p.name for p in removed)}" if removed else ""))
