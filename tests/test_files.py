"""Files a lab can share: written with the umask's mode (not mkstemp's 0600), and the same checkpoint bytes from
any process (safetensors writes its metadata map in a per-process hash order; the suite writes one JSON string)."""

import os
import subprocess
import sys

from bench.common.atomic import atomic_write_text
from bench.common.checkpoint import load_tensors, read_metadata, save_tensors

SAVE = """
import sys, torch
from bench.common.checkpoint import save_tensors
save_tensors(sys.argv[1], {"b": torch.arange(4.0), "a": torch.ones(2, 2)}, {"step": 3, "stage": "x", "lr": 0.1, "z": [1, 2], "m": {"k": 1}})
"""


def test_written_files_follow_the_umask(tmp_path):
    previous = os.umask(0o002)  # a lab's group-writable setting
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        save_tensors(tmp_path / "w.safetensors", {"a": __import__("torch").ones(1)}, {"step": 1})
    finally:
        os.umask(previous)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o664
    assert (tmp_path / "w.safetensors").stat().st_mode & 0o777 == 0o664  # safetensors replaces the temp file: still 0664


def test_a_checkpoint_is_the_same_bytes_from_every_process(tmp_path):
    paths = [tmp_path / f"{i}.safetensors" for i in range(3)]
    for path in paths:  # separate processes: separate hash seeds
        subprocess.run([sys.executable, "-c", SAVE, str(path)], check=True, env={**os.environ, "PYTHONHASHSEED": "random"})
    assert paths[0].read_bytes() == paths[1].read_bytes() == paths[2].read_bytes()
    tensors, meta = load_tensors(paths[0])
    assert meta == {"step": 3, "stage": "x", "lr": 0.1, "z": [1, 2], "m": {"k": 1}} == read_metadata(paths[0])
    assert tensors["b"].tolist() == [0.0, 1.0, 2.0, 3.0]


def test_checkpoints_written_before_keep_loading(tmp_path):
    """Files of the earlier layout (one JSON string per metadata key) load as they did."""
    import torch
    from safetensors.torch import save_file

    save_file({"a": torch.ones(1)}, str(tmp_path / "old.safetensors"), metadata={"step": "7", "stage": '"joint"'})
    assert read_metadata(tmp_path / "old.safetensors") == {"step": 7, "stage": "joint"}
