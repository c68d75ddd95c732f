"""scripts/bootstrap.sh's choice of torch, run against a stub venv whose pip fails as told: only a
missing CPU build sends it to PyTorch's CPU index; any other failure stops it with pip's message."""
import os
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

BOOTSTRAP = Path(__file__).resolve().parents[1] / "scripts" / "bootstrap.sh"
CPU_INDEX = "--index-url https://download.pytorch.org/whl/cpu"
pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="no bash")


def stub(path: Path, body: str) -> None:
    path.write_text("#!/usr/bin/env bash\n" + textwrap.dedent(body))
    path.chmod(0o755)


def bootstrap(tmp_path: Path, first_install_says: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    """Runs a copy of bootstrap.sh in tmp_path, where torch is missing and pip's first torch install
    fails with `first_install_says`; returns the run and pip's calls."""
    (tmp_path / "scripts").mkdir()
    shutil.copy(BOOTSTRAP, tmp_path / "scripts")
    venv = tmp_path / ".venv" / "bin"
    venv.mkdir(parents=True)
    calls = tmp_path / "pip-calls"
    stub(venv / "python", 'case "$*" in *"import torch"*) exit 1;; esac\n')  # torch is not installed
    stub(venv / "pip", f'''\
        echo "$*" >> {calls}
        if [ "$*" = "install --quiet torch==2.13.0+cpu" ]; then echo "{first_install_says}" >&2; exit 1; fi
        ''')
    run = subprocess.run(["bash", "scripts/bootstrap.sh"], cwd=tmp_path, capture_output=True, text=True,
                         env={**os.environ, "PYTHON": "false"})
    return run, calls.read_text().splitlines()


def test_only_a_missing_cpu_build_goes_to_pytorchs_index(tmp_path):
    run, calls = bootstrap(tmp_path, "ERROR: No matching distribution found for torch==2.13.0+cpu")
    assert run.returncode == 0, run.stderr
    assert calls[:2] == ["install --quiet torch==2.13.0+cpu", f"install --quiet torch==2.13.0+cpu {CPU_INDEX}"]
    assert calls[2].startswith("install --quiet -e")


def test_any_other_pip_failure_stops_with_pips_message(tmp_path):
    run, calls = bootstrap(tmp_path, "ERROR: Could not install packages due to an OSError: No space left on device")
    assert run.returncode == 1
    assert "No space left on device" in run.stderr
    assert calls == ["install --quiet torch==2.13.0+cpu"]
