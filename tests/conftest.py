import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("HYPERBENCH_QUIET", "1")

SHARED = Path(__file__).resolve().parents[2] / "shared"
SHARED_DATA = Path(os.environ.get("HYPERBENCH_DATA", SHARED / "datasets"))
PARAM_COUNTS = SHARED / "reference" / "official_param_counts.json"


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
