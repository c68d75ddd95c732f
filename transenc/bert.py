"""BERT-family inference without transformers' modeling code: the encoder of label, eval and mine.

`transformers.models.bert` costs ~1.8 s of imports per process on a 2-core CPU (it pulls in
torch._dynamo, torch.distributed.tensor, generation and loss code), more than reading, loading
and scoring a small file together. This module is the same network in plain torch ops (the same
ops, in the same order, so fp32 scores equal transformers' to float rounding and autocast treats
both alike), its weights read straight from model.safetensors onto the device (no fp32 detour on
a GPU, no random initialisation first). Query, key and value run as one matmul.

Only checkpoints it fully covers are built here (`supported`): a BertModel, or a
BertForSequenceClassification with one logit, absolute positions, GELU, weights in safetensors.
Everything else (other families, training) goes through transformers, as before.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import torch
from torch import nn
from torch.nn import functional as F

WEIGHTS = "model.safetensors"
CROSS_ARCHITECTURE = "BertForSequenceClassification"


def supported(path: Path, cross: bool) -> bool:
    """Whether the checkpoint at `path` is one this module builds (as a bi- or a cross-encoder)."""
    config_file = path / "config.json"
    if not (config_file.is_file() and (path / WEIGHTS).is_file()):
        return False
    config = json.loads(config_file.read_text())
    plain = (config.get("model_type") == "bert" and config.get("hidden_act") == "gelu"
             and config.get("position_embedding_type", "absolute") == "absolute"
             and not config.get("is_decoder") and not config.get("add_cross_attention"))
    if not cross:
        return plain
    # a trained pair head with one logit; a bi-encoder loaded as a cross-encoder (fresh head) is not
    return (plain and CROSS_ARCHITECTURE in (config.get("architectures") or [])
            and len(config.get("id2label") or {"0": None}) == 1)


@dataclass
class Output:
    """What the encoders read off a transformers output: last_hidden_state, or logits."""

    last_hidden_state: torch.Tensor | None = None
    logits: torch.Tensor | None = None


def _unset_embedding(rows: int, width: int) -> nn.Embedding:
    """An embedding whose weight the checkpoint sets: no random init (on the meta device, torch's
    normal_ would import torch._dynamo, ~1 s)."""
    return nn.Embedding(rows, width, _weight=torch.empty(rows, width))


class Embeddings(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.word_embeddings = _unset_embedding(c.vocab_size, c.hidden_size)
        self.position_embeddings = _unset_embedding(c.max_position_embeddings, c.hidden_size)
        self.token_type_embeddings = _unset_embedding(c.type_vocab_size, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)

    def forward(self, input_ids, token_type_ids):
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        x = self.word_embeddings(input_ids) + self.token_type_embeddings(token_type_ids)
        return self.LayerNorm(x + self.position_embeddings(positions))


def sdpa_attention(qkv: torch.Tensor, mask: torch.Tensor, heads: int, queries: int | None = None) -> torch.Tensor:
    """Multi-head attention from the fused query/key/value projection [B, T, 3 * width] with SDPA's
    mask, for the first `queries` tokens (None: all T): [B, queries, width], the heads side by side.
    SDPA answers every query and the rest are dropped: given fewer, it may round one differently."""
    b, t, width = qkv.shape
    q, k, v = qkv.view(b, t, 3, heads, width // (3 * heads)).permute(2, 0, 3, 1, 4)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask).transpose(1, 2).reshape(b, t, width // 3)[:, :queries]


def self_attention(layer: "Layer", x: torch.Tensor, mask: torch.Tensor, queries: int | None = None) -> torch.Tensor:
    """A layer's query/key/value Linear and its multi-head attention for the first `queries` tokens
    (None: all): [B, queries, width]."""
    return layer.attention(layer.qkv(x), mask, layer.heads, queries)


def feed_forward(layer: "Layer", x: torch.Tensor) -> torch.Tensor:
    """A layer's intermediate Linear, GELU and output Linear."""
    return layer.output(F.gelu(layer.intermediate(x)))


class ResidualNorm(nn.LayerNorm):
    """A sublayer's LayerNorm over its output y plus its input x: LayerNorm(y + x). Called with both, so
    that an int8 or bf16 copy can add them inside its norm (quantize.RowMakingLayerNorm)."""

    def forward(self, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return super().forward(y + x)


class Layer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.heads = c.num_attention_heads
        # an int8 or bf16 copy may run the engine's kernels for these instead (transenc.quantize)
        self.self_attention = self_attention
        self.attention = sdpa_attention
        self.feed_forward = feed_forward
        self.qkv = nn.Linear(c.hidden_size, 3 * c.hidden_size)
        self.attention_out = nn.Linear(c.hidden_size, c.hidden_size)
        self.attention_norm = ResidualNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.intermediate = nn.Linear(c.hidden_size, c.intermediate_size)
        self.output = nn.Linear(c.intermediate_size, c.hidden_size)
        self.output_norm = ResidualNorm(c.hidden_size, eps=c.layer_norm_eps)

    def forward(self, x, mask, first_token_only: bool = False):
        """[B, T, width] -> [B, T, width]; with `first_token_only`, [B, 1, width]: every token is a key,
        only the first one is answered and goes on past attention."""
        attended = self.self_attention(self, x, mask, 1 if first_token_only else None)
        if first_token_only:
            x = x[:, :1]
        x = self.attention_norm(self.attention_out(attended), x)
        return self.output_norm(self.feed_forward(self, x), x)


class Bert(nn.Module):
    """BertModel's last_hidden_state, or with `cross` BertForSequenceClassification's one logit.

    The pair head reads the first token alone; with `last_layer_first_token` the last layer answers
    attention for it alone (every token still a key; the engine's attention skips the other
    queries, SDPA computes and drops them) and computes nothing else past attention (12% of a
    MiniLM-L6 cross-encoder's matmul work on STS-B pairs). Set on int8 copies, whose kernels treat
    each row on its own, so the logit is bit for bit the same, and on bf16 copies that attend on the
    engine, already rounded apart from autocast's (transenc.quantize); a float BLAS may round a row
    differently when the batch has fewer rows, and fp32 scores stay those of transformers' network."""

    last_layer_first_token = False

    def __init__(self, config: dict, cross: bool):
        super().__init__()
        # what _Encoder reads off a transformers config; "sdpa": it takes a 4-D boolean mask as it is
        self.config = SimpleNamespace(**config, _attn_implementation="sdpa", takes_4d_mask=True)
        c = self.config
        self.embeddings = Embeddings(c)
        self.layers = nn.ModuleList(Layer(c) for _ in range(c.num_hidden_layers))
        self.pooler = nn.Linear(c.hidden_size, c.hidden_size) if cross else None
        self.classifier = nn.Linear(c.hidden_size, 1) if cross else None

    def forward(self, input_ids, attention_mask, token_type_ids=None) -> Output:
        mask = attention_mask if attention_mask.dim() == 4 else attention_mask.bool()[:, None, None, :]
        x = self.embeddings(input_ids, token_type_ids)
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            x = layer(x, mask, first_token_only=i == last and self.last_layer_first_token and self.classifier is not None)
        if self.classifier is None:
            return Output(last_hidden_state=x)
        return Output(logits=self.classifier(torch.tanh(self.pooler(x[:, 0]))))


def _renamed(name: str) -> str:
    """A transformers weight name as this module names it."""
    name = name.removeprefix("bert.")
    renames = (("encoder.layer.", "layers."), ("attention.output.dense", "attention_out"),
               ("attention.output.LayerNorm", "attention_norm"), ("intermediate.dense", "intermediate"),
               ("output.dense", "output"), ("output.LayerNorm", "output_norm"), ("pooler.dense", "pooler"))
    for old, new in renames:
        name = name.replace(old, new)
    return name


def load(path: Path, cross: bool, device: torch.device) -> Bert:
    """The checkpoint at `path` (see `supported`), its weights read from safetensors onto `device` in
    fp32 (the exact path; autocast makes bf16/fp16 of them, int8 copies are made from them). Weights
    it does not use (position_ids, a pretraining head) are left unread."""
    from safetensors import safe_open

    with torch.device("meta"):
        model = Bert(json.loads((path / "config.json").read_text()), cross)
    wanted = model.state_dict().keys()
    weights, qkv = {}, {}
    with safe_open(str(path / WEIGHTS), framework="pt", device=str(device)) as f:
        for name in f.keys():
            ours = _renamed(name)
            for part in ("query", "key", "value"):
                if f".attention.self.{part}." in ours:
                    qkv[ours.replace(f"attention.self.{part}", "qkv"), part] = f.get_tensor(name)
                    break
            else:
                if ours in wanted:
                    weights[ours] = f.get_tensor(name).float()
    for name in {n for n, _ in qkv}:
        weights[name] = torch.cat([qkv[name, part] for part in ("query", "key", "value")]).float()
    missing = sorted(set(wanted) - weights.keys())
    if missing:
        raise ValueError(f"'{path / WEIGHTS}' lacks {', '.join(missing[:3])}" + (" ..." if len(missing) > 3 else ""))
    model.load_state_dict(weights, assign=True)
    return model.eval()
