"""bench/ stays runnable: CI runs no benchmark, so this checks that every benchmark file collects
(its imports, fixtures and parameters) and that every script compiles."""
import py_compile
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench"


def test_every_benchmark_file_collects():
    done = subprocess.run([sys.executable, "-m", "pytest", str(BENCH), "--collect-only", "-q", "-p", "no:cacheprovider"],
                          capture_output=True, text=True, cwd=BENCH.parent)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for path in BENCH.glob("test_bench_*.py"):  # each one collected, none skipped at import
        assert f"bench/{path.name}::" in done.stdout, f"{path.name} collected no benchmark:\n{done.stdout[-3000:]}"


def test_every_bench_script_compiles(tmp_path):
    for script in BENCH.glob("*.py"):
        py_compile.compile(str(script), cfile=str(tmp_path / f"{script.stem}.pyc"), doraise=True)
