"""Fixtures and options shared by the benchmarks."""
import pytest

import workloads as w


def pytest_addoption(parser):
    group = parser.getgroup("transenc bench")
    group.addoption("--bench-device", default="cpu", help="device of the device-aware benchmarks (cpu, cuda)")
    group.addoption("--label-pairs", help="test_bench_label breakdown: pairs file (default: STS-B test)")
    group.addoption("--label-model", help="test_bench_label breakdown, bi: model folder (default: all-MiniLM-L6-v2)")
    group.addoption("--label-cross-model", help="test_bench_label breakdown, cross: model folder (default: "
                    "workloads.trained_cross_encoder)")
    group.addoption("--label-runs", type=int, default=2, help="test_bench_label breakdown: runs of each process")


@pytest.fixture(scope="session")
def sts_pairs():
    """The 8,567 unique STS-B pairs; the benchmark is skipped where STS-B is not at hand."""
    try:
        return w.sts_unique_pairs()
    except FileNotFoundError as e:
        pytest.skip(str(e))
