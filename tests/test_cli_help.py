"""Every `python -m` entry point of o1e answers --help with exit 0 through its real __main__ block: a
name missing at module level there (an import dropped in a refactor) fails here, not in a user's run."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ENTRY_POINTS = sorted(
    ".".join(path.relative_to(REPO).with_suffix("").parts)
    for package in ("o1e_tevatron", "o1e_pyserini") for path in (REPO / package).rglob("*.py")
    if 'if __name__ == "__main__":' in path.read_text(encoding="utf-8"))


def test_the_entry_points_are_found():
    assert {"o1e_pyserini.eval", "o1e_pyserini.mine", "o1e_tevatron.driver.train",
            "o1e_tevatron.synthesis.generate"} <= set(ENTRY_POINTS)


@pytest.mark.parametrize("module", ENTRY_POINTS)
def test_help_exits_zero(module, tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "O1E_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True, cwd=tmp_path,
                          env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "usage" in proc.stdout.lower(), proc.stdout[-2000:]
