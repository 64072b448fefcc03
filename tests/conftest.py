import importlib
import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("HYPERBENCH_QUIET", "1")

SHARED = Path(__file__).resolve().parents[2] / "shared"
SHARED_DATA = Path(os.environ.get("HYPERBENCH_DATA", SHARED / "datasets"))
PARAM_COUNTS = SHARED / "reference" / "official_param_counts.json"


@pytest.fixture
def one_thread():
    """Tiny networks gain nothing from threads, and on a busy machine thread hand-offs dominate."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def shared_data():
    if not (SHARED_DATA / "CBSD68").is_dir():
        pytest.skip("../shared/datasets is not on this machine")
    return SHARED_DATA


@pytest.fixture
def official_counts():
    if not PARAM_COUNTS.is_file():
        pytest.skip("../shared/reference/official_param_counts.json is not on this machine")
    return json.loads(PARAM_COUNTS.read_text())


# In CI (.ci/run sets CI=true) every test dependency is installed, so a test that cannot find one fails
# there; locally it skips with the reason. Data from ../shared and platform limits skip everywhere.
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(available: bool, reason: str, module_level: bool = False) -> None:
    """Skip (locally) or fail (in CI) when a test's dependency is missing."""
    if available:
        return
    if IN_CI:
        pytest.fail(f"CI must provide this: {reason}", pytrace=False)
    pytest.skip(reason, allow_module_level=module_level)


def require_module(name: str, install: str, module_level: bool = False):
    """The module, or a skip (locally) / failure (in CI) that says how to install it."""
    try:
        return importlib.import_module(name)
    except ImportError:
        require(False, f"{name} is not installed ({install})", module_level)
