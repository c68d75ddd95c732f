"""Training steps: cross-encoder on soft labels (BCE), bi-encoder by cosine regression (MSE),
and the SimCSE warm-up (contrastive, dropout noise). Each reads token ids from a TokenCache."""
from __future__ import annotations

import math
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from transenc import distributed
from transenc.dropout import engine_dropout
from transenc.errors import TransencError
from transenc.models import BiEncoder, CrossEncoder
from transenc.precision import autocast, training_precision
from transenc.packing import Batch, pack_pairs, pack_sentences, padded_to_multiples, to_device
from transenc.progress import progress
from transenc.recipes import FitConfig
from transenc.run_folder import RESUME_HINT
from transenc.tokens import TokenCache
from transenc.writers import atomic_open

# A shuffled training batch padded to its longest row is about half padding on STS-like data.
# On a CPU each step's batch is cut into length-sorted sub-batches instead, at least this full: the
# same loss and gradient (padding is masked out) for ~1.8x fewer tokens (bench/results/archive/training-cpu.md).
STEP_MIN_EFFICIENCY = 0.8
# A step keeps every activation of its forward for the backward: a bi-encoder step of 128 pairs of
# 256-token texts (65k tokens) grew past 21 GB with MiniLM-L6. On a CPU a step of more than
# CPU_STEP_TOKENS tokens runs in parts of at most CPU_PART_TOKENS, each part's forward run again in the
# backward (activation checkpointing, its dropout masks replayed): the whole step's loss and gradient
# (to rounding; dropout draws its masks per part), one part's activations at a time. Against the whole
# step (both with SDPA): at 32k tokens 1.18x as fast in 37% of the memory, at 16k 0.88x in 35% (cross;
# bench/results/long-training-*.md); at 8k whole was 1.34x as fast, hence the threshold. Of parts of
# 2k, 4k, 8k, 16k and 32k tokens, 4k held the least memory and ran within 12% of the fastest (2k,
# which held 2-3x as much; by hand). Steps on sentences stay whole (MRPC's hold < 7.5k tokens).
CPU_STEP_TOKENS = 8192
CPU_PART_TOKENS = 4096
# On a CPU PyTorch's fused attention kernels take no dropout, so in a training step (attention dropout
# 0.1) SDPA falls back to its math path, which runs a bf16 step's attention in fp32, its scores made
# whole. Under bf16 autocast a step runs the architecture's eager attention instead, the same
# computation with autocast's matmuls: on 300-word texts steps ran 1.12-1.45x as fast (MiniLM, bi at
# 128 and 256, cross at 256 and 512), peaks 7-45% lower; on sentences within run-to-run noise
# (bench/results/long-training-*.md). fp32 steps keep SDPA (eager ran 0.93-0.97x there, by hand); so
# do dev checks and labeling, which run without dropout on the fused kernel.
CPU_STEP_ATTENTION = "eager"


@dataclass(frozen=True)
class StepPolicy:
    """How a training step is cut into forwards, and how often the loop waits for the device."""

    min_efficiency: float  # sub-batches at least this full (0: one batch per step)
    token_multiple: int  # batch width rounded up to a multiple of this (capped at max length)
    row_multiple: int  # batch rows rounded up to a multiple of this (padding rows are dropped)
    optimizer: str  # AdamW implementation: "fused", "foreach" or "plain" (a loop over tensors)
    step_tokens: int = 0  # a step of more tokens runs in checkpointed parts (0: always whole)
    part_tokens: int = 0  # tokens a part holds at most
    attention: str = ""  # the attention a model with SDPA trains with in bf16 steps ("": SDPA)
    check_every: int = 100  # steps between loss checks (host syncs), besides dev checks and the end


# CPU: FLOPs dominate and a forward of any shape costs little more than its work, so cut padding.
# AdamW fused on the CPU too: one vectorised pass over the 22.7M parameters of MiniLM-L6 is ~6x
# faster than foreach's (bench/results/archive/training-loop-cpu.md), and every data-parallel rank pays it.
CPU_POLICY = StepPolicy(min_efficiency=STEP_MIN_EFFICIENCY, token_multiple=1, row_multiple=1, optimizer="fused",
                        step_tokens=CPU_STEP_TOKENS, part_tokens=CPU_PART_TOKENS, attention=CPU_STEP_ATTENTION)
# CUDA: a small encoder's step is a few ms of work, so launches, syncs and new shapes are the cost:
# one batch per step from a small set of shapes (widths 16, 32, 48, 64; full batches), each seen in
# the first steps and reused after (kernel choices, allocator blocks), and a fused AdamW.
# Fixed shapes would also allow CUDA graphs or torch.compile; neither is used until measured faster
# on a GPU (bench/gpu_check.sh train times a whole cycle).
GPU_POLICY = StepPolicy(min_efficiency=0.0, token_multiple=16, row_multiple=32, optimizer="fused")


def step_policy(device: torch.device) -> StepPolicy:
    return GPU_POLICY if torch.device(device).type == "cuda" else CPU_POLICY


@dataclass
class FitResult:
    losses: list[float]  # per step
    best_dev: float | None
    best_step: int
    checks: list[tuple[int, float]] = field(default_factory=list)  # (step, dev score) of every dev check
    precision: str = "fp32"  # what the steps ran: fp32, bf16 or fp16 (training_precision)
    resumed_after: int = 0  # the step a saved fit went on from (0: from the start)


@dataclass(frozen=True)
class StepCheckpoint:
    """Where a fit saves how far it got, every `every_seconds`: a stage of hours that is killed goes on,
    with `resume`, from its last save instead of from its first step, and ends with the same weights as
    an uninterrupted fit (the batch order comes from the seed; the file holds the weights, the optimizer,
    the schedule, the random state of dropout, the losses and the best dev weights so far)."""

    path: Path
    resume: bool = False  # read a save left by an earlier process (else start afresh and overwrite it)
    every_seconds: float = 600.0
    # What the caller records beside the fit's own state (the Trainer: each dev set's score at every
    # check), saved with every save and put back by load, so that it covers the whole fit.
    alongside: dict = field(default_factory=dict)

    def save(self, state: dict) -> None:
        with atomic_open(self.path, binary=True, hint=RESUME_HINT) as f:
            torch.save({**state, "alongside": self.alongside}, f)

    def load(self, steps: int) -> dict | None:
        """The saved state of a fit of `steps` steps, or None when there is none to go on from."""
        if not (self.resume and self.path.is_file()):
            return None
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as e:  # a truncated or foreign file: say which, never a traceback
            raise TransencError(f"{self.path}: cannot resume the fit, its saved steps are damaged ({e}); "
                                "delete the file to run the stage from its start") from None
        if not isinstance(state, dict) or state.get("steps") != steps:
            raise TransencError(f"{self.path}: cannot resume the fit, it was saved by a fit of other settings; "
                                "delete the file to run the stage from its start")
        if "alongside" in state:
            self.alongside.clear()
            self.alongside.update(state["alongside"])
        return state

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def _optimizer(model: torch.nn.Module, cfg: FitConfig, steps: int, implementation: str):
    """AdamW without weight decay on biases and LayerNorm, linear warm-up then linear decay."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.ndim < 2 or "LayerNorm" in name or "layer_norm" in name else decay).append(p)
    kind = {"fused": {"fused": True}, "foreach": {"foreach": True}, "plain": {"foreach": False}}[implementation]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, **kind)
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
           desc: str, evaluate: Callable[[], float] | None, policy: StepPolicy, group=None,
           checkpoint: StepCheckpoint | None = None) -> FitResult:
    """The loop. Losses stay on the device until a check (a dev check, every policy.check_every
    steps, the end): one host sync reads them all and stops on a non-finite one. With `evaluate`,
    the best weights by dev are kept in host memory and put back into the model at the end.
    With a process group (torchrun), data-parallel: every rank draws the same global batches and
    trains on its share (transenc.distributed.DataParallel); every rank calls evaluate (which may
    share the scoring out over the group) and rank 0's score decides, so all ranks keep the same weights.
    With a checkpoint (one process only: data-parallel ranks each hold their own dropout state, so a
    data-parallel fit resumes at its stage's start), the fit saves itself and goes on from a save."""
    parallel = distributed.DataParallel(model, group) if group is not None and distributed.active(group) else None
    checkpoint = checkpoint if parallel is None else None
    generator = torch.Generator().manual_seed(seed)
    batches = _batches_of(n, cfg, generator)
    opt, schedule = _optimizer(model, cfg, len(batches), policy.optimizer)
    # fp16 gradients underflow without loss scaling; for fp32 and bf16 the scaler passes through.
    precision = training_precision(device, cfg.precision)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    attention = policy.attention if precision == "bf16" else ""  # see CPU_STEP_ATTENTION
    losses, pending, checks = [], [], []
    best, best_step, best_state = None, -1, None
    saved = checkpoint.load(len(batches)) if checkpoint else None
    if saved:
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["optimizer"])
        schedule.load_state_dict(saved["schedule"])
        scaler.load_state_dict(saved["scaler"])
        _set_rng_state(saved["rng"], device)
        losses, checks = saved["losses"], [tuple(c) for c in saved["checks"]]
        best, best_step, best_state = saved["best"], saved["best_step"], saved["best_state"]
    done = len(losses)
    last_save = time.monotonic()
    model.train()
    dropout = engine_dropout(model) if device.type == "cpu" else nullcontext()
    with dropout, progress(len(batches), desc, "steps", initial=done) as bar:
        for step, idx in enumerate(batches[done:], start=done + 1):
            with step_attention(model, attention):  # the backward too: checkpointed parts run again there
                if parallel is None:
                    with autocast(device, precision):
                        loss = step_loss(idx)
                    scaler.scale(loss).backward()
                else:
                    mine, weight = parallel.share(idx)
                    with autocast(device, precision):
                        local = step_loss(mine) * weight if len(mine) else torch.zeros((), device=device)
                    if local.requires_grad:
                        scaler.scale(local).backward()
                    loss = parallel.reduce(local)  # gradients summed; the global batch's loss, the same on every rank
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
            scaler.step(opt)
            scaler.update()
            schedule.step()
            opt.zero_grad(set_to_none=True)
            pending.append(loss.detach())
            bar.update(1)
            dev_check = evaluate is not None and ((cfg.eval_every and step % cfg.eval_every == 0) or step == len(batches))
            if dev_check or step % policy.check_every == 0 or step == len(batches):
                losses += _finite_losses(pending, step, desc)
                pending = []
                bar.set_postfix(loss=f"{losses[-1]:.4f}")
            if dev_check:
                score = distributed.broadcast(evaluate(), group)  # one decision for every rank
                model.train()
                checks.append((step, score))
                # a check without a value (NaN: every dev pair scored alike) gives way to any other
                if best is None or score > best or (math.isnan(best) and not math.isnan(score)):
                    best, best_step = score, step
                    best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
            if checkpoint and step < len(batches) and time.monotonic() - last_save >= checkpoint.every_seconds:
                losses += _finite_losses(pending, step, desc)
                pending = []
                checkpoint.save({"steps": len(batches), "model": model.state_dict(), "optimizer": opt.state_dict(),
                                 "schedule": schedule.state_dict(), "scaler": scaler.state_dict(),
                                 "rng": _rng_state(device), "losses": losses, "checks": checks,
                                 "best": best, "best_step": best_step, "best_state": best_state})
                last_save = time.monotonic()
    if best_state is not None:
        model.load_state_dict(best_state)
    return FitResult(losses, best, best_step, checks, precision, resumed_after=done)


@contextmanager
def step_attention(model: torch.nn.Module, attention: str):
    """A model that runs SDPA runs `attention` inside (a transformers attention implementation; "": SDPA)."""
    switch = bool(attention) and getattr(getattr(model, "config", None), "_attn_implementation", None) == "sdpa"
    if switch:
        model.set_attn_implementation(attention)
    try:
        yield
    finally:
        if switch:
            model.set_attn_implementation("sdpa")


def _rng_state(device) -> dict:
    """The random state the steps draw from (dropout): the CPU's, and the GPU's when they run there."""
    state = {"cpu": torch.get_rng_state()}
    if torch.device(device).type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict, device) -> None:
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and torch.device(device).type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)


def _finite_losses(pending: list[torch.Tensor], last_step: int, desc: str) -> list[float]:
    """The losses of the steps since the last check as floats (the check's one host sync)."""
    if not pending:  # a save right after a check
        return []
    values = torch.stack(pending).float().tolist()
    first = last_step - len(values) + 1
    for step, value in enumerate(values, start=first):
        if not math.isfinite(value):
            raise TransencError(f"{desc}: the loss became {value} at step {step} (checked at steps {first}-{last_step}); "
                                "stopping (the last finished stage's checkpoint is kept)")
    return values


def tokens_held(row_lengths: np.ndarray, max_length: int) -> int:
    """Tokens a step's rows hold at max_length, padding not counted: what policy.step_tokens limits."""
    return int(np.minimum(row_lengths, max_length).sum())


def _in_parts(row_lengths: np.ndarray, max_length: int, policy: StepPolicy) -> bool:
    """Whether a step's rows hold more than policy.step_tokens tokens: it then runs in checkpointed parts."""
    return bool(policy.step_tokens) and tokens_held(row_lengths, max_length) > policy.step_tokens


def _budget(rows: int, max_length: int, policy: StepPolicy, in_parts: bool) -> int:
    """Tokens a batch of the step may hold: all its rows, or a part's (a longer row makes a part alone)."""
    return policy.part_tokens if in_parts else rows * max_length


def step_pair_batches(cache: TokenCache, pairs: np.ndarray, max_length: int, policy: StepPolicy,
                      in_parts: bool = False) -> list[Batch]:
    """One training step's pair rows as the policy's batches (in_parts: as its parts)."""
    budget = _budget(len(pairs), max_length, policy, in_parts)
    packed = pack_pairs(cache, pairs, max_length, budget, min_efficiency=policy.min_efficiency)
    return padded_to_multiples(packed, policy.row_multiple, policy.token_multiple, max_length, cache.pad_id)


def step_sentence_batches(cache: TokenCache, ids: np.ndarray, max_length: int, policy: StepPolicy,
                          in_parts: bool = False) -> list[Batch]:
    """One training step's single-sentence rows as the policy's batches (in_parts: as its parts)."""
    budget = _budget(len(ids), max_length, policy, in_parts)
    packed = pack_sentences(cache, ids, max_length, budget, min_efficiency=policy.min_efficiency)
    return padded_to_multiples(packed, policy.row_multiple, policy.token_multiple, max_length, cache.pad_id)


def _step_forward(forward: Callable[[Batch], torch.Tensor], batches: list[Batch], in_parts: bool) -> torch.Tensor:
    """forward over a step's batches, outputs concatenated (padding rows dropped). In parts, each part's
    activations are not kept: its forward runs again, dropout masks and autocast alike, in the backward."""
    if in_parts and torch.is_grad_enabled():
        return torch.cat([checkpoint(forward, b, use_reentrant=False)[:len(b.rows)] for b in batches])
    return torch.cat([forward(b)[:len(b.rows)] for b in batches])


def cross_step_loss(encoder: CrossEncoder, cache: TokenCache, pairs: np.ndarray, targets: torch.Tensor,
                    policy: StepPolicy | None = None, max_length: int | None = None) -> torch.Tensor:
    """Mean BCE between each pair's logit and its soft target, over the policy's sub-batches."""
    max_length, policy = max_length or encoder.max_length, policy or step_policy(encoder.device)
    in_parts = _in_parts(cache.pair_row_lengths(pairs), max_length, policy)
    batches = step_pair_batches(cache, pairs, max_length, policy, in_parts)
    logits = _step_forward(encoder.logits, batches, in_parts)
    ordered = to_device(targets[np.concatenate([b.rows for b in batches])], encoder.device)
    return F.binary_cross_entropy_with_logits(logits.float(), ordered)


def fit_cross(encoder: CrossEncoder, cache: TokenCache, pairs: np.ndarray, labels: np.ndarray, cfg: FitConfig,
              seed: int, evaluate=None, policy: StepPolicy | None = None, group=None,
              checkpoint: StepCheckpoint | None = None) -> FitResult:
    """BCE on soft labels; pairs should already hold both orders. group, checkpoint: see _train."""
    return _fit_on_labels(cross_step_loss, "train cross-encoder", encoder, cache, pairs, labels, cfg, seed,
                          evaluate, policy, group, checkpoint)


def _pair_embeddings(encoder: BiEncoder, cache: TokenCache, pairs: np.ndarray, policy: StepPolicy | None = None,
                     max_length: int | None = None):
    """Embeddings of both sides of a batch of pairs, from the policy's sub-batches, in pair order."""
    ids = np.concatenate([pairs[:, 0], pairs[:, 1]]).astype(np.int32)
    max_length, policy = max_length or encoder.max_length, policy or step_policy(encoder.device)
    in_parts = _in_parts(cache.sentence_row_lengths(ids), max_length, policy)
    batches = step_sentence_batches(cache, ids, max_length, policy, in_parts)
    embedded = _step_forward(encoder.embed, batches, in_parts)
    rows = to_device(torch.from_numpy(np.concatenate([b.rows for b in batches])), encoder.device)
    ordered = torch.empty_like(embedded).index_copy(0, rows, embedded)  # differentiable scatter
    return ordered[:len(pairs)], ordered[len(pairs):]


def cosent_loss(cos: torch.Tensor, targets: torch.Tensor, scale: float = 20.0) -> torch.Tensor:
    """CoSENT (Su 2022, sentence-transformers' CoSENTLoss): log(1 + sum over the batch's pairs i, j
    with target_i > target_j of exp(scale * (cos_j - cos_i))). Only the targets' order within the
    batch counts, not their scale or skew."""
    diff = scale * (cos[None, :] - cos[:, None])  # [i, j]: scale * (cos_j - cos_i)
    diff = diff.masked_fill(~(targets[:, None] > targets[None, :]), float("-inf"))
    return torch.logsumexp(torch.cat([diff.new_zeros(1), diff.flatten()]), 0)


def margin_mse_loss(cos: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """MarginMSE (Hofstaetter et al. 2020) over every two pairs i, j of the batch: the mean of
    ((cos_i - cos_j) - (target_i - target_j))^2, which is twice the MSE of (cos - target) about its
    batch mean, computed so in O(n). A shift of all targets teaches nothing; their spread does."""
    gap = cos - targets
    return 2 * (gap - gap.mean()).pow(2).mean()


BI_LOSSES = {
    "mse": F.mse_loss,  # sentence-transformers' CosineSimilarityLoss: the labels' values are taught
    "cosent": cosent_loss,  # only their order
    "margin_mse": margin_mse_loss,  # their differences, not their level
}


def bi_step_loss(encoder: BiEncoder, cache: TokenCache, pairs: np.ndarray, targets: torch.Tensor,
                 policy: StepPolicy | None = None, max_length: int | None = None, loss: str = "mse") -> torch.Tensor:
    """BI_LOSSES[loss] between cos(u, v) and the targets."""
    u, v = _pair_embeddings(encoder, cache, pairs, policy, max_length)
    return BI_LOSSES[loss](F.cosine_similarity(u.float(), v.float()), to_device(targets, encoder.device))


def fit_bi(encoder: BiEncoder, cache: TokenCache, pairs: np.ndarray, labels: np.ndarray, cfg: FitConfig,
           seed: int, evaluate=None, policy: StepPolicy | None = None, group=None,
           checkpoint: StepCheckpoint | None = None, loss: str = "mse") -> FitResult:
    """Cosine regression on the labels (BI_LOSSES[loss]). group, checkpoint: see _train. Data-parallel,
    "cosent" and "margin_mse" compare pairs within each rank's share of the batch only."""
    return _fit_on_labels(partial(bi_step_loss, loss=loss), "train bi-encoder", encoder, cache, pairs, labels,
                          cfg, seed, evaluate, policy, group, checkpoint)


def _fit_on_labels(step_loss, desc: str, encoder, cache: TokenCache, pairs: np.ndarray, labels: np.ndarray,
                   cfg: FitConfig, seed: int, evaluate, policy: StepPolicy | None, group,
                   checkpoint: StepCheckpoint | None) -> FitResult:
    """_train with each step's loss = step_loss over the batch's pairs and their labels."""
    targets = torch.from_numpy(np.asarray(labels, dtype=np.float32))
    policy = policy or step_policy(encoder.device)
    return _train(encoder.model, encoder.device, len(pairs), cfg,
                  lambda idx: step_loss(encoder, cache, pairs[idx], targets[idx], policy, cfg.max_length), seed,
                  desc, evaluate, policy, group, checkpoint)


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


def fit_simcse(encoder: BiEncoder, cache: TokenCache, cfg: FitConfig, seed: int, temperature: float = 0.05,
               policy: StepPolicy | None = None) -> FitResult:
    """Unsupervised SimCSE: each sentence twice through dropout; the other copy is its positive."""
    sentences = np.arange(len(cache), dtype=np.int32)
    policy = policy or step_policy(encoder.device)

    def step_loss(idx):
        u, v = _pair_embeddings(encoder, cache, np.stack([sentences[idx], sentences[idx]], 1), policy, cfg.max_length)
        sim = F.cosine_similarity(u.float().unsqueeze(1), v.float().unsqueeze(0), dim=-1) / temperature
        return F.cross_entropy(sim, torch.arange(len(idx), device=sim.device))

    return _train(encoder.model, encoder.device, len(sentences), cfg, step_loss, seed, "SimCSE warm-up", None, policy)
