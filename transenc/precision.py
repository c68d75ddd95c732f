"""Which arithmetic runs a model: the --precision choice, resolved per device and per use.

Inference (label, eval, mine, and train's labeling stages and dev checks) may run int8 (CPU,
transenc.quantize), bf16 or fp16 (autocast) or exact fp32. Training steps run fp32 or bf16/fp16
autocast (fp32 master weights and optimizer state either way), never int8.

`auto` picks a faster precision on a CPU only where it was measured to agree with fp32
(Spearman >= 0.999 of the scores on STS-B's pairs, STS-B test within 0.3; MiniLM's cross- and
bi-encoder and the BERT-base-sized all-mpnet-base-v2, see bench/results/precision-*.md) and to run
faster: bf16 where the CPU has matrix units for it (AMX: on a Sapphire Rapids Xeon bf16 scored 1.2x
int8's pairs a second), else int8 where it has int8 dot products (VNNI: on an AMD EPYC with
AVX512-BF16 but no AMX, int8 scored 1.58x bf16's cross-encoder pairs a second) or AVX2 (the engine's
int8 matmul: 1.75x fp32's pairs a second on an AVX2-only AMD EPYC), else bf16 where it has bf16 dot
products alone, else fp32.
"""
from __future__ import annotations

import contextlib
import functools
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from transenc.errors import TransencError

if TYPE_CHECKING:
    import torch

PRECISIONS = ("auto", "fp32", "bf16", "fp16", "int8")
DEVICE_HELP = "auto (default: cuda if present, else cpu), cpu, cuda, cuda:1, ..."  # --device, beside --precision
# torch is imported inside the functions: the CLI's parser reads PRECISIONS without it.


def check_precision(precision: str, device=None) -> None:
    """A known precision, and int8 only on a CPU (a device of None or "auto" is checked once resolved)."""
    if precision not in PRECISIONS:
        raise TransencError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "int8" and device not in (None, "auto") and str(device).split(":")[0] != "cpu":
        raise TransencError(f"--precision int8 runs on the CPU only; on {device} use bf16 or fp16")


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags as Linux names them (empty elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


# What a precision needs to run fast on a CPU. Without it there is no fast kernel and the arithmetic
# crawls: on a 2-core AMD EPYC with AVX2 alone (Zen 3), one core scored all-MiniLM-L6-v2 over STS-B's
# first 300 pairs at 173 pairs/s in fp32, 24 in bf16, 28 in fp16 and 7 in int8 through torch._int_mm
# (2.9 G ops/s against fp32's 89; bench/results/roofline-amd-epyc-avx2.md). int8 runs fast where the
# CPU has int8 dot products (torch._int_mm) or AVX2 (the engine's own matmul, transenc.quantize: 1.75x
# fp32's pairs a second on that EPYC).
INT8_DOT_PRODUCTS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})  # torch._int_mm's fast kernels
CPU_FAST_PATH = {"bf16": ({"amx_bf16", "avx512_bf16"}, "bf16 arithmetic (AVX512-BF16 or AMX)"),
                 "fp16": ({"amx_fp16"}, "fp16 matrix units (AMX-FP16)"),
                 "int8": (INT8_DOT_PRODUCTS | {"avx2"}, "int8 dot products (VNNI or AMX) or AVX2")}


def cpu_auto_precision(flags: frozenset[str] | None = None) -> str:
    flags = cpu_flags() if flags is None else flags
    if "amx_bf16" in flags:  # bf16 on the matrix units beats int8
        return "bf16"
    if CPU_FAST_PATH["int8"][0] & flags:
        return "int8"
    return "bf16" if CPU_FAST_PATH["bf16"][0] & flags else "fp32"



def slow_on_this_cpu(precision: str, flags: frozenset[str] | None = None) -> str | None:
    """Why `precision` has no fast path on this CPU, or None where it has one (fp32 always does)."""
    if precision not in CPU_FAST_PATH:
        return None
    needs, what = CPU_FAST_PATH[precision]
    return None if needs & (cpu_flags() if flags is None else flags) else f"this CPU has no {what}"


_warned: set[str] = set()  # the precisions warned about in this process


def _warn_if_slow(device: torch.device, precision: str) -> None:
    """One line on standard error, once per process, where a precision asked for by name runs without
    a fast kernel on this CPU (auto never picks one)."""
    reason = slow_on_this_cpu(precision) if device.type == "cpu" else None
    if reason and precision not in _warned:
        _warned.add(precision)
        print(f"transenc: warning: {reason}: --precision {precision} runs several times slower than fp32 here "
              f"(bf16 ~7x, fp16 ~6x on an AVX2-only AMD EPYC); --precision auto runs "
              f"{cpu_auto_precision()} on this CPU", file=sys.stderr)


def inference_precision(device: torch.device, precision: str) -> str:
    """What a labeling or evaluation pass runs: fp32, bf16, fp16 or int8."""
    check_precision(precision, device)
    if precision != "auto":
        _warn_if_slow(device, precision)
        return precision
    return _gpu_precision() if device.type == "cuda" else cpu_auto_precision()


def cpu_training_precision(flags: frozenset[str] | None = None) -> str:
    """`auto` for training steps on a CPU: bf16 autocast where the CPU has bf16 arithmetic (AMX or
    AVX512-BF16), else fp32. On a 2-core AMD EPYC with AVX512-BF16, bf16 ran MiniLM's cross-encoder
    steps 1.64x and its bi-encoder steps 2.13x as fast (bench/results/archive/training-precision-amd-epyc.md),
    and a default-recipe cycle 1.7x (STS-B), 2.0x (MRPC) and ~1.8x (the paper's STS pairs) as fast
    with dev figures within 0.05 of fp32's (bench/results/recipes.md)."""
    flags = cpu_flags() if flags is None else flags
    return "bf16" if CPU_FAST_PATH["bf16"][0] & flags else "fp32"


def training_precision(device: torch.device, precision: str) -> str:
    """What a training step runs: for `auto`, bf16 autocast on a GPU that has it (else fp16) and
    cpu_training_precision on a CPU; int8, an inference path, trains in fp32."""
    check_precision(precision)
    if precision == "int8":
        return "fp32"
    if precision != "auto":
        _warn_if_slow(device, precision)
        return precision
    return _gpu_precision() if device.type == "cuda" else cpu_training_precision()


def _gpu_precision() -> str:
    import torch

    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def module_copy(model: torch.nn.Module) -> torch.nn.Module:
    """New modules over the same tensors: an inference copy whose layers can be swapped or recast
    (int8's, half_linear_copy's) while the model, which training changes and saves, stays as it is."""
    import copy

    return copy.deepcopy(model, memo={id(t): t for t in list(model.parameters()) + list(model.buffers())})


def half_linear_copy(model: torch.nn.Module, precision: str) -> torch.nn.Module:
    """An inference copy of `model` whose Linear weights and biases are already bf16 / fp16, every other
    tensor shared: under autocast they would be cast again on every batch (its cache lasts one autocast
    region, a batch here). It is the same rounding, so the scores are autocast's bit for bit."""
    import torch

    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    half = module_copy(model)
    for module in half.modules():
        if isinstance(module, torch.nn.Linear):
            for name in ("weight", "bias"):
                if getattr(module, name) is not None:
                    setattr(module, name, torch.nn.Parameter(getattr(module, name).detach().to(dtype), requires_grad=False))
    return half.eval()


def autocast(device: torch.device, precision: str):
    """An already resolved precision's context: nothing for fp32 and int8, autocast for bf16/fp16."""
    if precision in ("fp32", "int8"):
        return contextlib.nullcontext()
    import torch

    return torch.autocast(device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)
