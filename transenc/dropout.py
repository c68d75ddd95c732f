"""Dropout of CPU training steps on the engine (csrc/dropout.h, ops.dropout_mask / ops.masked_scale).

torch's CPU dropout draws each mask element from its generator one at a time (bernoulli_): on the AMX
Xeon 13% of a MiniLM cross-encoder's bf16 step. The engine hashes (seed, element) many elements at
once and writes the output in one pass, as it writes the gradient: for 1.57M elements its mask took
0.3 ms and its output ~1.2 ms, where F.dropout took 8.8 ms (bf16) to 11.7 ms (fp32). What it takes
is a model's nn.Dropout modules: in BERT the hidden states' (the attention probabilities' dropout runs
inside transformers' attention function and stays torch's, about half the dropped elements of a
layer at 64 tokens); in MPNet those too. Both kernels run on the calling thread. Each
call draws its seed from torch's generator, so torch.manual_seed and a resumed fit's restored random
state replay the same masks. The masks are not torch's: the same law (each element dropped with
probability p, to 1/65,536), other draws.
"""
from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn

from transenc import ops


class _Dropout(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, p: float) -> torch.Tensor:
        seed = int(torch.randint(0, 2 ** 62, (), device="cpu").item())  # the generator a fit saves
        keep = ops.dropout_mask(seed, x.numel(), p)
        ctx.save_for_backward(keep)
        ctx.scale = 1 / (1 - p)
        return ops.masked_scale(x, keep, ctx.scale)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor):
        (keep,) = ctx.saved_tensors
        return ops.masked_scale(grad, keep, ctx.scale), None


class EngineDropout(nn.Dropout):
    """nn.Dropout whose CPU fp32 / bf16 tensors are dropped on the engine in training; anything else (eval,
    p = 0 or 1, a GPU, other dtypes) is nn.Dropout's."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or not 0 < self.p < 1 or not ops.masked_scale_takes(x):
            return super().forward(x)
        return _Dropout.apply(x, self.p)


@contextmanager
def engine_dropout(model: nn.Module):
    """Within, the model's nn.Dropout modules are EngineDropouts (the same p, the same mode; never in place,
    which changes no result); then they are put back, in the mode the model left them."""
    swapped = []
    for owner in list(model.modules()):
        for name, child in list(owner.named_children()):
            if type(child) is nn.Dropout:
                engine = EngineDropout(child.p).train(child.training)
                setattr(owner, name, engine)
                swapped.append((owner, name, child, engine))
    try:
        yield
    finally:
        for owner, name, child, engine in swapped:
            setattr(owner, name, child.train(engine.training))
