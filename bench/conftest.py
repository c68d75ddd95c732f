"""Options, fixtures and results tables shared by the benchmarks: each bench/test_bench_<name>.py fills
bench/results/<name>-<machine>.md from its TITLE, HEADER and table_rows(measured), written when the session
ends with the rows of whichever of the file's benchmarks ran."""
import shlex
from pathlib import Path

import pytest

import workloads as w
from results_writer import Table


def pytest_addoption(parser):
    group = parser.getgroup("transenc bench")
    group.addoption("--bench-device", default="cpu", help="device of the device-aware benchmarks (cpu, cuda)")
    group.addoption("--label-pairs", help="label breakdown: pairs file (default: STS-B test)")
    group.addoption("--label-model", help="label breakdown, bi: model folder (default: all-MiniLM-L6-v2)")
    group.addoption("--label-cross-model", help="label breakdown, cross: model folder (default: "
                    "workloads.trained_cross_encoder)")
    group.addoption("--label-runs", type=int, default=2, help="label breakdown: runs of each process")


@pytest.fixture(scope="session")
def device(request) -> str:
    return request.config.getoption("--bench-device")


@pytest.fixture(scope="session")
def _tables(request):
    tables: dict[str, Table] = {}
    yield tables
    command = "python -m pytest " + shlex.join(request.config.invocation_params.args)
    for table in tables.values():
        table.note(f"made by `{command}`")
        print(f"\nresults: {table.write() or f'no {table.stem} table (none of its benchmarks ran)'}")


@pytest.fixture(scope="module")
def table(request, _tables, device) -> Table:
    """The results table of the requesting benchmark file."""
    module, stem = request.module, Path(request.module.__file__).stem.removeprefix("test_bench_").replace("_", "-")
    return _tables.setdefault(stem, Table(stem, module.TITLE, module.HEADER, module.table_rows, device))


@pytest.fixture(scope="session")
def sts_pairs():
    """The 8,567 unique STS-B pairs; the benchmark is skipped where STS-B is not at hand."""
    try:
        return w.sts_unique_pairs()
    except FileNotFoundError as e:
        pytest.skip(str(e))
