"""A missing test dependency skips locally but fails in CI (CI=true, set by .ci/run), so CI cannot pass
with checks silently skipped."""

import pytest

from tests import conftest


def test_missing_dependency_fails_in_ci_and_skips_locally(monkeypatch):
    monkeypatch.setattr(conftest, "IN_CI", True)
    with pytest.raises(pytest.fail.Exception, match="CI must provide this: cv9 is not installed"):
        conftest.require_module("cv9", "pip install cv9")
    monkeypatch.setattr(conftest, "IN_CI", False)
    with pytest.raises(pytest.skip.Exception, match="cv9 is not installed \\(pip install cv9\\)"):
        conftest.require_module("cv9", "pip install cv9")
    assert conftest.require_module("json", "stdlib").dumps([1]) == "[1]"
    conftest.require(True, "present")  # nothing happens


def test_ci_script_sets_ci_and_prints_skips():
    from pathlib import Path

    script = (Path(__file__).resolve().parents[1] / ".ci" / "run").read_text()
    assert "export CI=true" in script and "pytest -q -rs" in script
