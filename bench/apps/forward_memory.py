"""Peak memory of one forward, the figure of the efficiency table (bench/apps/efficiency.py).

CUDA: torch's own count, `max_memory_allocated` over one forward after the warm-up (weights, input,
activations and workspaces that torch allocated). The CPU has no such counter for every allocation
(oneDNN and glibc allocate beside torch's allocator), so there the process is asked, in a fresh Python
process that holds nothing but the network: one warm-up forward of the same size (it pages in library
code and creates kernels and threads, some 6 MB of resident size that is no forward's), malloc_trim(0)
hands the memory it freed back to the kernel, the peak resident size (VmHWM) is reset to the current
size by writing 5 to /proc/self/clear_refs (Linux >= 4.0), and the second forward's peak minus the size
before it is what a forward needs; the bytes of the weights and the input, resident before, are added
so that both devices count weights, input and activations. Without the trim the second forward would
reuse the first one's freed memory and seem to need none.

Run as `python -m bench.apps.forward_memory` with a JSON spec on stdin; prints a JSON answer.
"""

from __future__ import annotations

import ctypes
import json
import subprocess
import sys
from pathlib import Path

import torch

from bench.common.errors import HyperbenchError

CPU_METHOD = ("CPU: resident set size of a fresh process, peak during its second forward (the first one's freed memory handed back "
              "with malloc_trim, VmHWM reset before it) minus the size before it, plus the bytes of the weights and the input")
CUDA_METHOD = "CUDA: torch.cuda.max_memory_allocated over one forward (weights, input, activations, workspaces)"


def model_from_spec(spec: dict) -> torch.nn.Module:
    """The network of an efficiency row: registry entry, keyword arguments and, for a modulated network, the
    endpoints its training sets (so DNI interpolates at the levels it would, and clips where it would)."""
    from bench.models.catalog import create_model

    torch.manual_seed(spec.get("seed", 0))  # random weights: values do not change the time or the memory
    model = create_model(spec["arch"], **spec["kwargs"])
    if spec.get("endpoints") and hasattr(model, "set_endpoints"):
        model.set_endpoints(*spec["endpoints"])
    return model.eval()


def tensor_bytes(model: torch.nn.Module, x: torch.Tensor) -> int:
    return sum(t.numel() * t.element_size() for t in list(model.parameters()) + list(model.buffers())) + x.numel() * x.element_size()


def cuda_peak(forward, device: torch.device) -> int:
    """max_memory_allocated over one call of `forward` (a network already on the device, after its warm-up)."""
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    with torch.inference_mode():
        forward()
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device)


def cpu_peak(spec: dict) -> int:
    """Peak memory of the first forward in a fresh process (see the module notes)."""
    proc = subprocess.run([sys.executable, "-m", "bench.apps.forward_memory"], input=json.dumps(spec), capture_output=True, text=True)
    if proc.returncode != 0:
        raise HyperbenchError(f"measuring the forward memory of {spec['arch']} failed: {proc.stderr.strip()[-500:]}",
                              "run `python -m bench.apps.forward_memory` with the spec on stdin to see the whole error")
    return int(json.loads(proc.stdout.strip().splitlines()[-1])["peak_bytes"])


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise HyperbenchError(f"/proc/self/status has no {field}", "the CPU memory figure needs Linux")


def _trim() -> None:
    """Hand the heap memory freed so far back to the kernel (glibc); elsewhere the figure would read low."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError, TypeError) as exc:
        raise HyperbenchError(f"cannot call malloc_trim ({exc})", "the CPU memory figure needs glibc (Linux)") from None


def _measure(spec: dict) -> dict:
    torch.set_num_threads(int(spec["threads"]))
    model = model_from_spec(spec)
    x = torch.rand(1, spec["channels"], spec["size"], spec["size"])
    with torch.inference_mode():  # warm-up: the library code, kernels and threads it brings in are no forward's memory
        model(x, spec["level"])
    _trim()
    try:
        Path("/proc/self/clear_refs").write_text("5")  # peak RSS := current RSS, so building the model does not count
    except OSError as exc:
        raise HyperbenchError(f"cannot reset the peak resident size ({exc})", "the CPU memory figure needs Linux >= 4.0") from None
    before = _status_kib("VmRSS")
    with torch.inference_mode():
        model(x, spec["level"])
    return {"peak_bytes": (_status_kib("VmHWM") - before) * 1024 + tensor_bytes(model, x)}


if __name__ == "__main__":
    print(json.dumps(_measure(json.loads(sys.stdin.read()))))
