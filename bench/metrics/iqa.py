"""Full-reference image-quality metrics from pyiqa (the optional `iqa` extra) beside the suite's own PSNR/SSIM.

pyiqa is PolyForm Noncommercial licensed, so it stays optional and is imported only here. A metric is scored on
the same uint8-rounded outputs as PSNR/SSIM, given to pyiqa as float32 in [0, 1]; a one-channel image (deJPEG is
scored on luma) is repeated to 3 channels, since most pyiqa metrics take RGB. Its spec key names pyiqa, the metric,
its options, colour, crop and direction, and not pyiqa's version (that goes in the `versions` column): the gate
matches rows on the key, and a pyiqa upgrade must not turn every row into "missing".

Learned metrics need weight files that pyiqa downloads at first use into `$TORCH_HOME/hub/pyiqa` (its own files)
and `$TORCH_HOME/hub/checkpoints` (torchvision backbones). Which files a metric needs is not written in pyiqa's
configs, so `build` finds them by building the metric with downloads refused (`HYPERBENCH_IQA_OFFLINE=1`) or
allowed, and turns a missing file into an error that names it.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
import urllib.error
from dataclasses import dataclass, field

import numpy as np

from bench.common.errors import HyperbenchError, did_you_mean
from bench.metrics.quality import to_y

BUILTIN = ("psnr", "ssim")  # the suite's own (bench.metrics.quality), always scored
INSTALL = 'pip install -e ".[iqa]" (pyiqa, PolyForm Noncommercial 1.0.0; see docs/metrics.md)'
COLOURS = ("rgb", "y")
OFFLINE_ENV = "HYPERBENCH_IQA_OFFLINE"  # 1: never let pyiqa download (air-gapped machines, tests)


def pyiqa():
    """The pyiqa module, or a clear error saying how to install it."""
    try:
        import pyiqa as module
    except Exception as exc:  # ImportError, or torchvision built for another torch (RuntimeError at import)
        raise HyperbenchError(f"pyiqa metrics need pyiqa, which cannot be imported here ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})",
                              INSTALL) from None
    return module


def pyiqa_version() -> str:
    return pyiqa().__version__


def full_reference_names() -> list[str]:
    """Every full-reference metric pyiqa has (no-reference ones cannot compare an output with its clean image)."""
    return pyiqa().list_models(metric_mode="FR")


def lower_is_better(name: str) -> bool:
    from pyiqa.default_model_configs import DEFAULT_CONFIGS

    return bool(DEFAULT_CONFIGS[name].get("lower_better", False))


def check_name(name: str) -> None:
    """A name pyiqa scores against a reference: unknown names get "did you mean", no-reference ones say why not."""
    names = full_reference_names()
    if name in names:
        return
    if name in pyiqa().list_models(metric_mode="NR"):
        raise HyperbenchError(f"metric {name!r} is a no-reference pyiqa metric", "the tables compare each output with its clean image: name a "
                              "full-reference metric (`hyperbench metrics` lists them)")
    raise HyperbenchError(f"unknown metric {name!r}", did_you_mean(name, list(BUILTIN) + names) + " (`hyperbench metrics` lists them)")


@dataclass(frozen=True)
class IqaSpec:
    """How one pyiqa metric is scored for one task; `options` go to pyiqa.create_metric as they are."""

    name: str
    lower_better: bool
    colour: str = "rgb"  # rgb, or y: BT.601 studio-range luma of an RGB image (repeated to 3 channels)
    crop_border: int = 0
    gray: bool = False  # the task's images have one channel (repeated to 3)
    options: tuple = ()  # sorted (key, value) pairs: pyiqa's defaults with the profile's options on top

    def key(self) -> str:
        parts = [f"pyiqa:{self.name}", "gray-x3" if self.gray else self.colour, f"crop{self.crop_border}"]
        parts += [f"{k}={v}" for k, v in self.options]
        return "|".join(parts + ["lower" if self.lower_better else "higher"])

    @classmethod
    def from_key(cls, key: str) -> IqaSpec:
        """The spec a stored row's key names (no pyiqa needed: tables and the gate read rows without it)."""
        parts = key.split("|")
        if not parts[0].startswith("pyiqa:") or len(parts) < 4 or parts[-1] not in ("higher", "lower"):
            raise ValueError(f"bad pyiqa metric key {key!r}; expected e.g. 'pyiqa:ms_ssim|rgb|crop0|higher'")
        gray = parts[1] == "gray-x3"
        options = tuple(tuple(p.split("=", 1)) for p in parts[3:-1])
        return cls(parts[0][len("pyiqa:"):], parts[-1] == "lower", "rgb" if gray else parts[1], int(parts[2][len("crop"):]), gray, options)

    def describe(self) -> str:
        colour = ("one-channel luma repeated to 3 channels" if self.gray else
                  "RGB" if self.colour == "rgb" else "BT.601 studio-range Y (16-235, unrounded) repeated to 3 channels")
        options = ", ".join(f"{k}={v}" for k, v in self.options) or "no options"
        return (f"pyiqa `{self.name}` ({options}) on {colour}, float32 in [0, 1] from the uint8-rounded outputs, crop {self.crop_border} px, "
                f"{'lower' if self.lower_better else 'higher'} is better, mean over images")


def direction_of(spec_key: str) -> bool | None:
    """Whether a pyiqa row's metric is better higher (True) or lower (False), read from its spec key; None: not pyiqa."""
    if not str(spec_key).startswith("pyiqa:"):
        return None
    return str(spec_key).rsplit("|", 1)[-1] != "lower"


def spec_for(metric: dict, task) -> IqaSpec:
    """The spec of a profile's metric entry ({"name", "options"}) for a task (bench.tasks.task.Task)."""
    options = dict(metric.get("options") or {})
    colour = options.pop("colour", "rgb")
    if colour not in COLOURS:
        raise HyperbenchError(f"metric {metric['name']}: colour {colour!r}", f"use one of {', '.join(COLOURS)}")
    for key, value in options.items():
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", str(key)) or not isinstance(value, (str, int, float, bool)):
            raise HyperbenchError(f"metric {metric['name']}: option {key}={value!r}", "give pyiqa options as plain names and values, e.g. {net: vgg}")
    gray = task.channels != "rgb"
    return IqaSpec(metric["name"], lower_is_better(metric["name"]), "rgb" if gray else colour, task.metric.crop_border, gray,
                   effective_options(metric["name"], options))


def effective_options(name: str, options: dict) -> tuple:
    """pyiqa's default options of a metric with the profile's on top, as sorted pairs: the spec names every option
    that decides the number (e.g. ms_ssim scores pyiqa's Y channel by default: test_y_channel=True)."""
    from pyiqa.default_model_configs import DEFAULT_CONFIGS

    merged = {k: v for k, v in DEFAULT_CONFIGS[name]["metric_opts"].items() if k != "type"} | dict(options)
    return tuple(sorted(merged.items()))


class MissingWeights(Exception):
    def __init__(self, url: str, path: str):
        super().__init__(url)
        self.url, self.path = url, path


@dataclass
class Fetches:
    """What building a metric asked for: files it loaded (present) and the first it would have downloaded."""

    loaded: list[str] = field(default_factory=list)
    missing: MissingWeights | None = None


@contextlib.contextmanager
def watched(allow_downloads: bool):
    """Record the files torch.load reads while a pyiqa metric is built; with downloads refused, the first file pyiqa
    or torchvision would fetch raises MissingWeights naming its URL and destination. pyiqa fixes its cache folder at
    import: it is re-read from TORCH_HOME here, so a TORCH_HOME set later is the one used."""
    import torch
    import torch.hub
    from pyiqa.utils import download_util

    fetches, saved = Fetches(), (torch.load, torch.hub.download_url_to_file, download_util.download_url_to_file, download_util.DEFAULT_CACHE_DIR)
    load = torch.load

    def recording_load(f, *args, **kwargs):
        fetches.loaded.append(str(f))
        return load(f, *args, **kwargs)

    def refuse(url, dst, *args, **kwargs):
        raise MissingWeights(url, str(dst))

    def attempt(url, dst, *args, **kwargs):
        try:
            return saved[1](url, dst, *args, **kwargs)
        except (urllib.error.URLError, OSError) as exc:  # no internet: the same error as a refusal
            raise MissingWeights(url, str(dst)) from exc

    fetch = attempt if allow_downloads else refuse
    offline = {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    torch.load, torch.hub.download_url_to_file, download_util.download_url_to_file = recording_load, fetch, fetch
    download_util.DEFAULT_CACHE_DIR = os.path.join(torch.hub.get_dir(), "pyiqa")
    hub = sys.modules.get("huggingface_hub.constants")  # read at import: set here too, or each file is retried for ~25 s
    hub_offline = getattr(hub, "HF_HUB_OFFLINE", None)
    if not allow_downloads:  # Hugging Face downloads (a few metrics) fail at once instead of retrying
        os.environ.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
        if hub is not None:
            hub.HF_HUB_OFFLINE = True
    quiet = io.StringIO()  # pyiqa and torchvision print "Loading"/"Downloading" lines, also for a refused download
    try:
        with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
            yield fetches
    except MissingWeights as exc:
        fetches.missing = exc
    finally:
        torch.load, torch.hub.download_url_to_file, download_util.download_url_to_file, download_util.DEFAULT_CACHE_DIR = saved
        if hub is not None:
            hub.HF_HUB_OFFLINE = hub_offline
        for k, v in offline.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def downloads_allowed() -> bool:
    return os.environ.get(OFFLINE_ENV, "") in ("", "0")


def torch_home() -> str:
    import torch.hub

    return os.path.dirname(torch.hub.get_dir())


_BUILT: dict = {}


def _create(name: str, options: dict, allow_downloads: bool):
    """pyiqa.create_metric on the CPU, watched: (the metric or None, what building it fetched, pyiqa's own error or None)."""
    metric = error = None
    with watched(allow_downloads) as fetches:
        try:
            metric = pyiqa().create_metric(name, as_loss=False, device="cpu", **options)
        except MissingWeights:
            raise  # watched() records it in fetches.missing
        except Exception as exc:  # a Hugging Face download refused or failed, a bad option, ...
            error = exc
    return metric, fetches, error


def build(spec: IqaSpec, allow_downloads: bool | None = None):
    """The pyiqa metric of a spec on the CPU (built once per process), or a clear error when its weights are absent."""
    key = (spec.name, spec.options)
    if key in _BUILT:
        return _BUILT[key]
    allow = downloads_allowed() if allow_downloads is None else allow_downloads
    metric, fetches, error = _create(spec.name, dict(spec.options), allow)
    if error is not None:
        raise HyperbenchError(f"pyiqa could not build metric {spec.name!r} ({type(error).__name__}: {str(error).splitlines()[0][:200]})",
                              "check its options; a learned metric's files come from pyiqa's first run on a machine with internet "
                              f"(the Hugging Face ones into $HF_HOME, the others into {torch_home()}/hub)")
    if fetches.missing is not None:
        raise missing_weights_error(spec.name, fetches.missing, allow)
    _BUILT[key] = metric
    return metric


def missing_weights_error(name: str, missing: MissingWeights, tried: bool) -> HyperbenchError:
    folder = os.path.dirname(missing.path)
    return HyperbenchError(
        f"metric {name!r} needs the weight file {os.path.basename(missing.path)}, which is not in {folder}"
        + (" and could not be downloaded" if tried else f" (downloads refused: {OFFLINE_ENV}=1)"),
        f"pyiqa fetches it at its first run on a machine with internet (from {missing.url}), into TORCH_HOME ({torch_home()}): "
        f"run `hyperbench metrics --fetch {name}` there and copy {torch_home()}/hub to this machine (pyiqa may fetch more files after this one), "
        "or drop the metric from the profile's metrics:")


def probe(name: str) -> dict:
    """Whether a metric needs weight files and whether they are here, by building it with downloads refused:
    {"weights": "none" | "needed", "present": what was found (file names; the folders are TORCH_HOME's), "spec"}."""
    spec = IqaSpec(name, lower_is_better(name), options=effective_options(name, {}))
    _, fetches, error = _create(name, {}, allow_downloads=False)
    if error is not None:  # a file of the Hugging Face hub, absent while offline
        return {"weights": "needed", "present": "no (Hugging Face hub files, into HF_HOME)", "spec": spec}
    if fetches.missing is not None:
        return {"weights": "needed", "present": f"no: {os.path.basename(fetches.missing.path)}", "spec": spec}
    if fetches.loaded:
        return {"weights": "needed", "present": "yes: " + ", ".join(os.path.basename(f) for f in fetches.loaded), "spec": spec}
    return {"weights": "none", "present": "—", "spec": spec}


def to_pyiqa(image: np.ndarray, spec: IqaSpec):
    """A uint8 image (H x W x 3 or H x W) as pyiqa's 1 x 3 x H x W float32 tensor in [0, 1], in the spec's colour."""
    import torch

    x = to_y(image) / 255.0 if spec.colour == "y" and image.ndim == 3 else image.astype(np.float32) / 255.0
    b = spec.crop_border
    if b:
        x = x[b:-b, b:-b]
    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    t = t.unsqueeze(-1).expand(*t.shape, 3) if t.ndim == 2 else t  # one channel -> 3 (stated in the spec)
    return t.permute(2, 0, 1).unsqueeze(0).contiguous()


class IqaReference:
    """A clean image scored by one pyiqa metric against many outputs (its tensor is made once)."""

    def __init__(self, ref: np.ndarray, spec: IqaSpec):
        self.spec, self.metric, self.shape = spec, build(spec), ref.shape
        self.ref = to_pyiqa(ref, spec)

    def score(self, out: np.ndarray) -> float:
        import torch

        if out.shape != self.shape:
            raise ValueError(f"shape mismatch: out {out.shape} vs ref {self.shape}")
        with torch.no_grad():
            return float(self.metric(to_pyiqa(out, self.spec), self.ref).reshape(-1)[0])


def profile_specs(profile, task) -> list[IqaSpec]:
    """The pyiqa metrics a profile scores on a task (bench.tasks.task.Task), in the profile's order."""
    return [spec_for(m, task) for m in profile.metrics]


def check_profile_metrics(profile) -> None:
    """Before any training or evaluation: every extra metric of the profile exists in pyiqa, scores against a
    reference and has its weight files (each is built once, and kept for the evaluation)."""
    from bench.tasks.task import get_task

    for metric in profile.metrics:
        pyiqa()
        check_name(metric["name"])
        for task in profile.tasks:
            build(spec_for(metric, get_task(task)))


def parse_metrics(raw, where: str) -> list[dict]:
    """A profile's `metrics: [psnr, ssim, ms_ssim, {lpips: {net: vgg}}]`: the extra metrics in order, each a name and
    its options. PSNR and SSIM are always scored (tables, claims and the gate rest on them); whether a name exists is
    checked against pyiqa before any work (check_profile_metrics), so a profile loads without pyiqa."""
    if raw is None:
        return []
    fix = "write e.g. `metrics: [psnr, ssim, ms_ssim, {lpips: {net: vgg}}]` (`hyperbench metrics` lists them)"
    if not isinstance(raw, list):
        raise HyperbenchError(f"{where}: metrics must be a list, got {raw!r}", fix)
    extra = []
    for item in raw:
        if isinstance(item, str):
            name, options = item, {}
        elif isinstance(item, dict) and len(item) == 1 and isinstance(next(iter(item.values())) or {}, dict):
            name, options = next(iter(item.items()))
            options = dict(options or {})
        else:
            raise HyperbenchError(f"{where}: metrics entry {item!r} is neither a name nor one name mapped to its options", fix)
        if name in BUILTIN:
            if options:
                raise HyperbenchError(f"{where}: metrics: {name} takes no options here", "PSNR and SSIM follow each task's metric spec; drop the options")
            continue
        if any(m["name"] == name for m in extra):
            raise HyperbenchError(f"{where}: metrics names {name!r} twice", "list each metric once")
        extra.append({"name": str(name), "options": options})
    return extra
