import platform
import resource

import pytest
import torch

from bench.allocator import keep_freed_memory

glibc = pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")


def _page_faults(repeats: int, numel: int) -> int:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(repeats):
        torch.ones(numel)  # written in full, then freed
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


@glibc
def test_freed_feature_maps_are_reused_not_faulted_in_again():
    assert keep_freed_memory() is True
    numel = 4 << 20  # 16 MiB: above glibc's default mmap threshold
    _page_faults(1, numel)  # the first allocation grows the heap once
    pages = numel * 4 // resource.getpagesize()
    # glibc's own adaptive threshold alone: about 8 x pages faulted in for 20 allocations here; kept: 0 to 1 x
    assert _page_faults(20, numel) < 2 * pages


def test_numbers_do_not_depend_on_the_allocator():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 8, 3, padding=1)
    x = torch.rand(1, 3, 64, 64)
    before = conv(x)
    keep_freed_memory()
    assert torch.equal(conv(x), before)
