"""Training steps: cross-encoder on soft labels (BCE), bi-encoder by cosine regression (MSE),
and the SimCSE warm-up (contrastive, dropout noise). Each reads token ids from a TokenCache."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from transenc import distributed
from transenc.errors import TransencError
from transenc.models import BiEncoder, CrossEncoder, autocast, effective_precision
from transenc.packing import Batch, pack_pairs, pack_sentences
from transenc.progress import progress
from transenc.tokens import TokenCache

# A shuffled training batch padded to its longest row is about half padding on STS-like data.
# Each step's batch is cut into length-sorted sub-batches instead, at least this full: the same
# loss and gradient (padding is masked out) for ~1.8x fewer tokens (see bench/results/training-cpu.md).
STEP_MIN_EFFICIENCY = 0.8


@dataclass
class FitConfig:
    batch_size: int
    epochs: float
    lr: float
    warmup: float  # fraction of all steps
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    precision: str = "auto"
    eval_every: int = 0  # steps between dev checks (0: only at the end)


@dataclass
class FitResult:
    losses: list[float]
    best_dev: float | None
    best_step: int


def _optimizer(model: torch.nn.Module, cfg: FitConfig, steps: int):
    """AdamW without weight decay on biases and LayerNorm, linear warm-up then linear decay."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.ndim < 2 or "LayerNorm" in name or "layer_norm" in name else decay).append(p)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr)
    warm = math.ceil(steps * cfg.warmup)

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / max(warm, 1)
        return max(0.0, (steps - step) / max(steps - warm, 1))

    return opt, torch.optim.lr_scheduler.LambdaLR(opt, factor)


def _batches_of(n: int, cfg: FitConfig, generator: torch.Generator):
    """Shuffled index batches for every epoch (a fractional last epoch is cut short)."""
    total = math.ceil(math.ceil(n / cfg.batch_size) * cfg.epochs)
    out = []
    while len(out) < total:
        order = torch.randperm(n, generator=generator).numpy()
        out.extend(order[i:i + cfg.batch_size] for i in range(0, n, cfg.batch_size))
    return out[:total]


def _train(model: torch.nn.Module, device, n: int, cfg: FitConfig, step_loss: Callable, seed: int,
           desc: str, evaluate: Callable[[], float] | None, keep_best: Callable[[], None] | None,
           group=None) -> FitResult:
    """With a process group (torchrun), data-parallel: every rank draws the same global batches
    and trains on its share (transenc.distributed.DataParallel). Every rank calls evaluate (which
    may share the scoring out over the group), rank 0's score decides, and rank 0 alone calls keep_best."""
    parallel = distributed.DataParallel(model, group) if group is not None and distributed.active(group) else None
    generator = torch.Generator().manual_seed(seed)
    batches = _batches_of(n, cfg, generator)
    opt, schedule = _optimizer(model, cfg, len(batches))
    # fp16 gradients underflow without loss scaling; for fp32 and bf16 the scaler passes through.
    scaler = torch.amp.GradScaler(device.type, enabled=effective_precision(device, cfg.precision) == "fp16")
    losses, best, best_step = [], None, -1
    model.train()
    with progress(len(batches), desc, "steps") as bar:
        for step, idx in enumerate(batches, start=1):
            if parallel is None:
                with autocast(device, cfg.precision):
                    loss = step_loss(idx)
                scaler.scale(loss).backward()
            else:
                mine, weight = parallel.share(idx)
                with autocast(device, cfg.precision):
                    local = step_loss(mine) * weight if len(mine) else torch.zeros((), device=device)
                if local.requires_grad:
                    scaler.scale(local).backward()
                parallel.reduce_gradients()
                loss = parallel.sum(local)  # the global batch's loss, the same on every rank
            if not torch.isfinite(loss):
                raise TransencError(f"{desc}: the loss became {loss.item()} at step {step}; stopping "
                                    "(the last finished stage's checkpoint is kept)")
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
            scaler.step(opt)
            scaler.update()
            schedule.step()
            opt.zero_grad(set_to_none=True)
            losses.append(loss.item())
            bar.update(1)
            bar.set_postfix(loss=f"{losses[-1]:.4f}")
            at_check = cfg.eval_every and step % cfg.eval_every == 0
            if evaluate is not None and (at_check or step == len(batches)):
                score = distributed.broadcast(evaluate(), group)  # one decision for every rank
                model.train()
                if best is None or score > best:
                    best, best_step = score, step
                    if distributed.is_main(group):
                        keep_best()
    return FitResult(losses, best, best_step)


def cross_step_loss(encoder: CrossEncoder, cache: TokenCache, pairs: np.ndarray, targets: torch.Tensor,
                    min_efficiency: float = STEP_MIN_EFFICIENCY) -> torch.Tensor:
    """Mean BCE between each pair's logit and its soft target, over length-sorted sub-batches."""
    batches = pack_pairs(cache, pairs, encoder.max_length, len(pairs) * encoder.max_length,
                         min_efficiency=min_efficiency)
    total = sum(F.binary_cross_entropy_with_logits(encoder.logits(b).float(), targets[b.rows].to(encoder.device),
                                                   reduction="sum") for b in batches)
    return total / len(pairs)


def fit_cross(encoder: CrossEncoder, cache: TokenCache, pairs: np.ndarray, labels: np.ndarray, cfg: FitConfig,
              seed: int, evaluate=None, keep_best=None, group=None) -> FitResult:
    """BCE on soft labels; pairs should already hold both orders. group: data-parallel (see _train)."""
    targets = torch.from_numpy(np.asarray(labels, dtype=np.float32))
    return _train(encoder.model, encoder.device, len(pairs), cfg,
                  lambda idx: cross_step_loss(encoder, cache, pairs[idx], targets[idx]), seed, "train cross-encoder",
                  evaluate, keep_best, group)


def _pair_embeddings(encoder: BiEncoder, cache: TokenCache, pairs: np.ndarray,
                     min_efficiency: float = STEP_MIN_EFFICIENCY):
    """Embeddings of both sides of a batch of pairs, from length-sorted sub-batches, in pair order."""
    ids = np.concatenate([pairs[:, 0], pairs[:, 1]]).astype(np.int32)
    batches = pack_sentences(cache, ids, encoder.max_length, len(ids) * encoder.max_length,
                             min_efficiency=min_efficiency)
    embedded = torch.cat([encoder.embed(b) for b in batches])
    rows = torch.from_numpy(np.concatenate([b.rows for b in batches])).to(embedded.device)
    ordered = torch.empty_like(embedded).index_copy(0, rows, embedded)  # differentiable scatter
    return ordered[:len(pairs)], ordered[len(pairs):]


def bi_step_loss(encoder: BiEncoder, cache: TokenCache, pairs: np.ndarray, targets: torch.Tensor,
                 min_efficiency: float = STEP_MIN_EFFICIENCY) -> torch.Tensor:
    """MSE between cos(u, v) and the target (sentence-transformers' CosineSimilarityLoss)."""
    u, v = _pair_embeddings(encoder, cache, pairs, min_efficiency)
    return F.mse_loss(F.cosine_similarity(u.float(), v.float()), targets.to(encoder.device))


def fit_bi(encoder: BiEncoder, cache: TokenCache, pairs: np.ndarray, labels: np.ndarray, cfg: FitConfig,
           seed: int, evaluate=None, keep_best=None, group=None) -> FitResult:
    """Cosine regression on the labels. group: data-parallel (see _train)."""
    targets = torch.from_numpy(np.asarray(labels, dtype=np.float32))
    return _train(encoder.model, encoder.device, len(pairs), cfg,
                  lambda idx: bi_step_loss(encoder, cache, pairs[idx], targets[idx]), seed, "train bi-encoder",
                  evaluate, keep_best, group)


# ---- references: one padded batch from a tokenizer call per step, as sentence-transformers'
# collate builds it; tests check the packed steps against these, benchmarks time them side by side.
def _tokenized(encoder, *texts: list[str]) -> Batch:
    t = encoder.tokenizer(*texts, padding=True, truncation=True, max_length=encoder.max_length, return_tensors="pt")
    return Batch(t["input_ids"], t["attention_mask"], t.get("token_type_ids"), np.arange(len(texts[0])))


def cross_step_loss_reference(encoder: CrossEncoder, texts: list[tuple[str, str]],
                              targets: torch.Tensor) -> torch.Tensor:
    a, b = (list(side) for side in zip(*texts))
    logits = encoder.logits(_tokenized(encoder, a, b)).float()
    return F.binary_cross_entropy_with_logits(logits, targets.to(encoder.device))


def bi_step_loss_reference(encoder: BiEncoder, texts: list[tuple[str, str]], targets: torch.Tensor) -> torch.Tensor:
    a, b = (list(side) for side in zip(*texts))
    u, v = encoder.embed(_tokenized(encoder, a)), encoder.embed(_tokenized(encoder, b))
    return F.mse_loss(F.cosine_similarity(u.float(), v.float()), targets.to(encoder.device))


def fit_simcse(encoder: BiEncoder, cache: TokenCache, cfg: FitConfig, seed: int, temperature: float = 0.05) -> FitResult:
    """Unsupervised SimCSE: each sentence twice through dropout; the other copy is its positive."""
    sentences = np.arange(len(cache), dtype=np.int32)

    def step_loss(idx):
        u, v = _pair_embeddings(encoder, cache, np.stack([sentences[idx], sentences[idx]], 1))
        sim = F.cosine_similarity(u.float().unsqueeze(1), v.float().unsqueeze(0), dim=-1) / temperature
        return F.cross_entropy(sim, torch.arange(len(idx), device=sim.device))

    return _train(encoder.model, encoder.device, len(sentences), cfg, step_loss, seed, "SimCSE warm-up", None, None)
