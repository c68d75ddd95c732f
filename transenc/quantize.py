"""int8 inference on the CPU, made at load time from the fp32 weights (saved models stay fp32).

Every nn.Linear becomes an Int8Linear: weights int8 per output channel (symmetric), activations
int8 per row (per token, asymmetric: each row's [min, max]) at run time, one int8 x int8 -> int32
matmul (torch._int_mm: VNNI / AMX-INT8 where the CPU has them), then the engine's one-pass
epilogue back to fp32. A scale per token matters: one per batch, as torch's dynamic quantization
has, lets a single outlier token flatten every other row (Spearman 0.983 against fp32 on a trained
MiniLM cross-encoder, measured when this was chosen; per token: 0.9997, bench/results/precision-*.md).
A row's own range matters too: symmetric per-token int8 cost STS-B test 0.31, asymmetric 0.15.
Attention, LayerNorm, embeddings and GELU stay fp32.
"""
from __future__ import annotations

import copy
import threading

import torch

from transenc import ops


class _LastInput(threading.local):
    """The last input quantized in a model, and its int8 rows, per thread (the CPU runs one stream of
    batches per core through the same model). Attention's query, key and value layers read the same
    tensor object: they quantize it once. (Held here, the tensor cannot be freed and its memory
    reused by another; inference tensors have no version counter, so an in-place change between
    two calls would go unseen: no encoder layer makes one.)"""

    def __init__(self):
        self.x, self.rows = None, None

    def quantized(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if x is not self.x:
            self.x = x
            self.rows = ops.quantize_rows(x.reshape(-1, x.shape[-1]))
        return self.rows


class Int8Linear(torch.nn.Module):
    """A Linear's inference with int8 weights (a scale per output channel) and int8 inputs (a scale and an
    offset per row)."""

    def __init__(self, linear: torch.nn.Linear, last_input: _LastInput | None = None):
        super().__init__()
        self.last_input = last_input or _LastInput()
        weight = linear.weight.detach().float()
        scale = weight.abs().amax(1).clamp_min(1e-12) / 127
        q = torch.round(weight / scale[:, None]).clamp(-127, 127).to(torch.int8)
        # [in, out] as a transposed view of the contiguous [out, in] rows: _int_mm's fast layout.
        self.register_buffer("weight_t", q.t(), persistent=False)
        self.register_buffer("scale", scale, persistent=False)
        # what each row's offset multiplies: the dequantized weights' sum over inputs
        self.register_buffer("col_sum", q.sum(1, dtype=torch.int32).float() * scale, persistent=False)
        self.bias = None if linear.bias is None else linear.bias.detach().float()
        self.out_features = linear.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, row_scale, row_offset = self.last_input.quantized(x)
        y = ops.dequantize_rows_(torch._int_mm(q, self.weight_t), row_scale, row_offset, self.scale, self.col_sum,
                                 self.bias)
        return y.view(*x.shape[:-1], self.out_features)


def int8_model(model: torch.nn.Module) -> torch.nn.Module:
    """An inference copy of `model` whose Linear layers are Int8Linear. Every other parameter and
    buffer is shared with `model`, not copied, so the copy costs only the int8 weights."""
    shared = {id(t): t for t in list(model.parameters()) + list(model.buffers())}
    quantized = copy.deepcopy(model, memo=shared)
    last_input = _LastInput()
    for module in list(quantized.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, torch.nn.Linear):
                setattr(module, name, Int8Linear(child, last_input))
    return quantized.eval()
