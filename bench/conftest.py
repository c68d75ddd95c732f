"""Fixtures shared by the benchmarks."""
import pytest

import workloads as w


@pytest.fixture(scope="session")
def sts_pairs():
    """The 8,567 unique STS-B pairs; the benchmark is skipped where STS-B is not at hand."""
    try:
        return w.sts_unique_pairs()
    except FileNotFoundError as e:
        pytest.skip(str(e))
