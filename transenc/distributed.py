"""Scale-out on torch.distributed: one process per device, launched by torchrun.

A plain run (no torchrun: WORLD_SIZE unset or 1) never creates a process group, and every helper
here then answers as for a single process. Under torchrun the group is NCCL on GPUs and gloo on
CPUs. Work is split into contiguous shares by rank, and results come back by row index, so row i
of a result is row i of the input whatever the number of ranks.
"""
from __future__ import annotations

import datetime
import functools
import os
import sys

import numpy as np
import torch
import torch.distributed as dist

from transenc.errors import TransencError

# How long a collective waits for the other ranks: a rank that dies makes the others stop with an
# error after this, instead of hanging for ever. TRANSENC_DIST_TIMEOUT (seconds) overrides it.
TIMEOUT_S = 1800


class RankLost(TransencError):
    """A collective failed: another rank died, or did not answer within the timeout. (A broken
    group's gloo threads can abort the interpreter's exit: the command leaves through exit_now,
    transenc.cli.run, after printing it.)"""


def collective(fn):
    """Turn a failed collective into one clear error instead of a gloo/NCCL traceback (or a hang:
    a rank that stops answering fails the collective after the group's timeout)."""
    @functools.wraps(fn)
    def run(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (RuntimeError, dist.DistError) as e:
            where = f"rank {dist.get_rank()}" if dist.is_initialized() else "this rank"
            reason = str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__
            if dist.is_initialized():
                dist.destroy_process_group()  # the group is broken; leave it before exiting
            raise RankLost(f"{where}: lost the other ranks in {fn.__qualname__} (a rank died or stopped "
                           f"answering; see its log): {reason}") from None
    return run


def launched() -> bool:
    """Started by torchrun with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def setup(device: torch.device) -> torch.device:
    """Join torchrun's process group (env://) if launched by it; returns this rank's device
    (cuda:LOCAL_RANK on a GPU machine). A plain run returns `device` unchanged."""
    if not launched() or dist.is_initialized():
        return device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
    timeout = datetime.timedelta(seconds=float(os.environ.get("TRANSENC_DIST_TIMEOUT", TIMEOUT_S)))
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=timeout)
    return device


@collective
def teardown() -> None:
    """Leave the process group: call it when the work is done, before the interpreter exits.
    (Left to interpreter exit, gloo's threads can abort the process: "terminate called without an
    active exception".) After an error, skip it: the other ranks may be inside a collective."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def exit_now(code: int) -> None:
    """Flush stdout and stderr and leave the process without the interpreter's finalization. Under
    torchrun, gloo's threads can abort that finalization ("terminate called without an active
    exception", exit -6, which torchrun reports as a failed rank), now and then even after
    teardown(): a rank whose work and files are complete leaves this way."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def world():
    """The group of all ranks under torchrun, None in a plain run: what to pass as `group` to share
    a job among all ranks (library calls without a group run whole on the calling rank)."""
    return dist.group.WORLD if active() else None


def active(group=None) -> bool:
    """A process group with more than one rank is in use."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size(group) > 1


def rank(group=None) -> int:
    return dist.get_rank(group) if active(group) else 0


def size(group=None) -> int:
    return dist.get_world_size(group) if active(group) else 1


def is_main(group=None) -> bool:
    """Rank 0 of the group: the one that writes files."""
    return rank(group) == 0


def share(n: int, group=None) -> slice:
    """This rank's contiguous share of n items; shares differ by at most one item."""
    r, w = rank(group), size(group)
    return slice(n * r // w, n * (r + 1) // w)


def _comm_device() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def _all_gather(tensor: torch.Tensor, group) -> list[torch.Tensor]:
    parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size(group))]
    dist.all_gather(parts, tensor, group=group)
    return parts


@collective
def gather_rows(values: torch.Tensor, rows: np.ndarray, n: int, group=None) -> torch.Tensor:
    """Every rank's (values, rows) put together on every rank as a CPU table: out[rows_r] = values_r.

    Shares may be uneven (or empty): each rank's part is padded to the longest for all_gather.
    """
    dev = _comm_device()
    counts = [int(c) for c in _all_gather(torch.tensor([len(rows)], device=dev), group)]
    longest = max(counts)
    padded = torch.zeros((longest, *values.shape[1:]), dtype=values.dtype, device=dev)
    padded[:len(rows)] = values.to(dev)
    padded_rows = torch.zeros(longest, dtype=torch.int64, device=dev)
    padded_rows[:len(rows)] = torch.as_tensor(rows, dtype=torch.int64, device=dev)
    out = torch.empty((n, *values.shape[1:]), dtype=values.dtype)
    for part, part_rows, count in zip(_all_gather(padded, group), _all_gather(padded_rows, group), counts):
        out[part_rows[:count].cpu()] = part[:count].cpu()
    return out


@collective
def broadcast(value: float | None, group=None) -> float | None:
    """Rank 0's number on every rank (None stays None): one decision, taken once."""
    if not active(group):
        return value
    box = [value]
    dist.broadcast_object_list(box, src=dist.get_global_rank(group, 0) if group is not None else 0, group=group)
    return box[0]


@collective
def barrier(group=None) -> None:
    if active(group):
        dist.barrier(group=group)


# Embedding tables at least this long travel row-sparse: a step's batch touches a few hundred of a
# vocabulary's rows, and the untouched rows' gradients are zero on every rank.
ROW_SPARSE_MIN_ROWS = 4096


class DataParallel:
    """Data-parallel training of one model over a group: the rank's contiguous share of every global
    batch, and gradients summed over the ranks, so each step is the one-process step.

    Not torch's DistributedDataParallel wrapper: a transenc step runs several length-sorted
    sub-batch forwards before its one backward, and a rank's share of a short last batch may be
    empty; one all-reduce of the flattened gradients after backward covers both, with the same
    arithmetic (DDP also all-reduces flat gradient buckets), and it leaves out the embedding rows
    that no rank touched (see reduce)."""

    @collective
    def __init__(self, model: torch.nn.Module, group=None):
        self.model, self.group = model, group
        for tensor in [*model.parameters(), *model.buffers()]:  # start from rank 0's weights, as DDP does
            dist.broadcast(tensor.data, src=self._root(), group=group)
        self.params = [p for p in model.parameters() if p.requires_grad]
        tables = {id(m.weight) for m in model.modules()
                  if isinstance(m, torch.nn.Embedding) and m.num_embeddings >= ROW_SPARSE_MIN_ROWS}
        self.row_sparse = [p for p in self.params if id(p) in tables]

    def _root(self) -> int:
        return dist.get_global_rank(self.group, 0) if self.group is not None else 0

    def share(self, idx: np.ndarray) -> tuple[np.ndarray, float]:
        """This rank's rows of a global batch, and the weight of its mean loss: rows / global rows.
        Summed over the ranks, the weighted means are the global batch's mean loss."""
        mine = idx[share(len(idx), self.group)]
        return mine, len(mine) / len(idx)

    @collective
    def reduce(self, loss: torch.Tensor) -> torch.Tensor:
        """Sum every parameter's gradient and the step's (detached) loss over the ranks; returns the
        global loss, the same on every rank. A parameter no rank has a gradient for (an unused
        pooler) keeps none, as in one process, so the optimizer leaves it alone; a rank with no
        rows contributes zeros. Two collectives: a small one saying which parameters and embedding
        rows any rank has a gradient for, then one of those gradients and the loss."""
        dev = _comm_device()
        used = torch.tensor([p.grad is not None for p in self.params], dtype=torch.int32)
        rows = [p.grad.ne(0).any(1).cpu() if p.grad is not None else torch.zeros(len(p), dtype=torch.bool)
                for p in self.row_sparse]
        who = torch.cat([used, *[r.int() for r in rows]]).to(dev)
        dist.all_reduce(who, group=self.group)
        who = who.cpu()
        touched, at = {}, len(self.params)
        for p in self.row_sparse:
            touched[id(p)] = who[at:at + len(p)].nonzero().squeeze(1).to(p.device)
            at += len(p)
        params = [p for p, u in zip(self.params, who[:len(self.params)].tolist()) if u]
        parts = []
        for p in params:
            grad = p.grad if p.grad is not None else torch.zeros_like(p)
            parts.append((grad[touched[id(p)]] if id(p) in touched else grad).reshape(-1))
        flat = torch.cat([*[t.to(dev) for t in parts], loss.detach().float().reshape(1).to(dev)])
        dist.all_reduce(flat, group=self.group)
        at = 0
        for p, part in zip(params, parts):
            summed = flat[at:at + part.numel()].to(p.device)
            at += part.numel()
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            if id(p) in touched:  # rows outside `touched` are zero here already
                p.grad[touched[id(p)]] = summed.view(-1, *p.shape[1:]).to(p.grad.dtype)
            else:
                p.grad.copy_(summed.view_as(p))
        return flat[-1].to(loss.device)


def split(parts: int):
    """Cut the ranks into `parts` equal contiguous groups, for `parts` jobs at once (mutual models on
    their own devices): returns (this rank's part, its group), or None where the ranks are fewer
    than the parts or do not divide evenly (the jobs then run one after another on all ranks)."""
    w = size()
    if parts < 2 or w < parts or w % parts:
        return None
    per = w // parts
    groups = [dist.new_group(list(range(p * per, (p + 1) * per))) for p in range(parts)]  # every rank makes every group
    return rank() // per, groups[rank() // per]


@collective
def gather_objects(value) -> list:
    """Every rank's picklable value, in rank order, on every rank."""
    if not active():
        return [value]
    values = [None] * size()
    dist.all_gather_object(values, value)
    return values
