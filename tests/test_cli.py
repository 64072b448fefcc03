import subprocess
import sys

import pytest


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "bench.apps.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=120)


def test_list_shows_entries_and_counts():
    out = _cli("list")
    assert out.returncode == 0
    assert "hyperres" in out.stdout and "2,588,483" in out.stdout and "perlevel" in out.stdout


@pytest.mark.parametrize(
    "args,message",
    [
        (["reproduce", "--profile", "quik"], "did you mean 'quick'"),
        (["reproduce", "--tasks", "denoize"], "did you mean 'denoise'"),
        (["reproduce", "--models", "hyperess"], "did you mean 'hyperres'"),
        (["train", "--profile", "quick", "--data-root", "/nonexistent/data"], "does not exist"),
        (["train", "--profile", "quick", "--data-root", "/nonexistent/[/x] [bold]"], "/nonexistent/[/x] [bold]"),  # not rich markup
    ],
)
def test_bad_input_gives_one_clear_message(args, message, tmp_path):
    out = _cli(*args, cwd=tmp_path)
    assert out.returncode == 2
    text = " ".join((out.stdout + out.stderr).split())
    assert message in text and "fix:" in text
    assert "Traceback" not in out.stderr
    assert not any(tmp_path.iterdir())  # nothing half-written
