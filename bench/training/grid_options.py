"""Grid options: how runs are executed (the profile's `grid:` section and the command line's
--executor, --partition, ... flags), validated before anything is submitted."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from bench.common.errors import HyperbenchError

EXECUTORS = ("none", "local", "debug", "slurm")


_INT_KEYS = ("gpus_per_job", "cpus_per_job", "mem_gb", "time_min", "array_parallelism", "max_requeues")
_ZERO_ALLOWED = ("gpus_per_job", "max_requeues")  # 0 GPUs: a CPU partition; 0 requeues: a timed-out run stays unfinished


_STR_KEYS = ("executor", "partition", "account")


@dataclass
class GridOptions:
    """How runs are executed; the profile's `grid:` section gives defaults, the command line overrides them."""

    executor: str = "none"  # none: train in this process, one run after the other (the default)
    partition: str | None = None
    gpus_per_job: int | None = None  # Slurm: one task (one data-parallel process) per GPU; 0: a CPU job; None: see gpus()
    cpus_per_job: int | None = None
    mem_gb: int | None = None
    time_min: int = 24 * 60  # Slurm time limit; a run that hits it is requeued and resumes
    array_parallelism: int = 64  # at most this many jobs of the array at once
    account: str | None = None
    wait: bool | None = None  # wait for the jobs; default: yes for local and debug, no for slurm
    max_requeues: int = 3  # Slurm: how often a run that hits the time limit is requeued (submitit's max_num_timeout)
    device: str | None = None  # --device: a cuda device asks for GPUs by default

    def gpus(self) -> tuple[int, str]:
        """GPUs per job and why: the option or the profile's grid.gpus_per_job, else 1 with --device cuda, else 0
        (a login node usually has no GPU, so the submitting machine cannot tell)."""
        if self.gpus_per_job is not None:
            return self.gpus_per_job, "--gpus-per-job or the profile's grid.gpus_per_job"
        if self.device and self.device.startswith("cuda"):
            return 1, f"--device {self.device}"
        return 0, "no --device cuda and no --gpus-per-job: a CPU job (give --gpus-per-job N or --device cuda for GPUs)"

    @property
    def waits(self) -> bool:
        return self.executor != "slurm" if self.wait is None else self.wait

    @classmethod
    def from_settings(cls, profile_grid: dict, **overrides) -> GridOptions:
        """Profile `grid:` settings, then every override that is not None."""
        merged = {**profile_grid, **{k: v for k, v in overrides.items() if v is not None}}
        options = cls(**merged)
        grid_settings({k: v for k, v in asdict(options).items() if k != "device"} | {"wait": None}, "grid options")
        return options


def grid_settings(raw: dict, where: str) -> dict:
    """Validate a `grid:` section (executor, partition, gpus_per_job, cpus_per_job, mem_gb, time_min, array_parallelism, account)."""
    if not isinstance(raw, dict):
        raise HyperbenchError(f"{where}: grid must be a mapping", "write e.g. grid: {executor: slurm, partition: gpu, time_min: 1440}")
    known = set(_INT_KEYS) | set(_STR_KEYS) | {"wait"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise HyperbenchError(f"{where}: unknown grid keys {unknown}", f"known: {', '.join(sorted(known))}")
    if raw.get("executor", "none") not in EXECUTORS:
        raise HyperbenchError(f"{where}: executor {raw['executor']!r} is not one of {', '.join(EXECUTORS)}", "use --executor local, debug or slurm")
    for key in _INT_KEYS:
        value = raw.get(key)
        least = 0 if key in _ZERO_ALLOWED else 1
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < least):
            raise HyperbenchError(f"{where}: grid.{key} = {value!r} is not a whole number >= {least}", f"set grid.{key} to e.g. 1")
    for key in _STR_KEYS:
        if raw.get(key) is not None and not isinstance(raw[key], str):
            raise HyperbenchError(f"{where}: grid.{key} = {raw[key]!r} is not a name", f"write grid.{key}: NAME")
    return dict(raw)
