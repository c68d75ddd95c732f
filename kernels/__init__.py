"""Triton kernels of the transenc engine, installed as `transenc.kernels`.

One file per op, each holding the kernel, its launcher and its table of measured launch configs
(the float64 torch references the tests check them against are in `transenc.reference`):

- `pair_cosine`: cos(a[i], b[i]) and the indexed form cos(T[idx[i, 0]], T[idx[i, 1]]),
  one bandwidth-bound pass over the inputs.
- `cosine_topk`: exact cosine top-k of queries against a corpus, the tile product on the
  tensor cores with a running top-k fused behind it.

`transenc.ops` is the only caller in the library; it sends CUDA tensors here. The kernels import
nothing from transenc outside this package: they sit below every other module (tests/test_layers.py
checks it). They also run on CPU tensors under `TRITON_INTERPRET=1`, which is how the tests check
them on a machine without a GPU.
"""

import torch


def capability(device: torch.device) -> tuple[int, int] | None:
    """(major, minor) of a CUDA device; None elsewhere (the interpreter)."""
    return torch.cuda.get_device_capability(device) if device.type == "cuda" else None


def measured(table: dict, cap: tuple[int, int] | None, d: int, dtype: torch.dtype) -> dict:
    """The launch config measured best for (capability, d, dtype), or {}: the kernel's defaults."""
    return table.get((*cap, d, dtype), {}) if cap else {}
