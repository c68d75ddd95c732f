"""Cross-encoder predict and bi-encoder encode on one GPU against sentence-transformers, on random
BERTs of MiniLM-L6's and BERT-base's sizes; fills bench/results/gpu-models-<card>.md.

    python -m pytest bench/test_bench_gpu_models.py -q -s --bench-device cuda   # bench/gpu_check.sh, stage models
    python -m pytest bench/test_bench_gpu_models.py -q -s      # dry run: tiny models, 200 pairs, on the CPU
"""
from pathlib import Path

import pytest
import torch
from scipy.stats import spearmanr

import workloads as w
from transenc.labeling import bi_scores
from transenc.models import BiEncoder, CrossEncoder
from transenc.packing import padding_efficiency
from transenc.pairset import PairSet
from transenc.readers import read_pairs

pytest.importorskip("pytest_benchmark")
PREDICT, ENCODE, LABEL = "cross-encoder predict", "bi-encoder encode", "bi-label (encode + fused pair cosine)"
ST_PREDICT, ST_ENCODE = "sentence-transformers CrossEncoder.predict", "sentence-transformers SentenceTransformer.encode"
IMPLS = {ST_PREDICT: PREDICT, "ours predict": PREDICT, "ours predict, from a ready token cache": PREDICT,
         ST_ENCODE: ENCODE, "ours encode": ENCODE, "ours bi-label": LABEL}  # implementation -> its task
ANCHOR = {PREDICT: ST_PREDICT, ENCODE: ST_ENCODE}

TITLE = "Cross-encoder predict and encode against sentence-transformers"
HEADER = ["model", "task", "implementation", "s", "rows/s", "speed-up", "agreement with the anchor"]


def table_rows(measured: dict) -> list[list]:
    """measured: (model, implementation) -> (seconds, rows done, scores or embeddings)."""
    rows = []
    for (size, impl), (seconds, done, values) in measured.items():
        anchor = measured.get((size, ANCHOR.get(IMPLS[impl]))) if impl not in ANCHOR.values() else None
        agree = "" if not anchor else f"Spearman {spearmanr(anchor[2], values).statistic:.4f}" if IMPLS[impl] == PREDICT \
            else f"min cosine {torch.nn.functional.cosine_similarity(anchor[2], values, dim=1).min().item():.4f}"
        rows.append([size, IMPLS[impl], impl, f"{seconds:.2f}", f"{done / seconds:,.0f}",
                     f"{anchor[0] / seconds:.1f}x" if anchor else "", agree])
    return rows


def random_bert(size: str, folder: Path, tiny: bool) -> tuple[Path, Path]:
    """A bi-encoder and a cross-encoder folder of MiniLM-L6's size or BERT-base's (tiny: 2 layers of 32,
    for dry runs), random weights (workloads.random_bert)."""
    sizes = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64) if tiny else {}
    base = size != "minilm-l6"
    return (w.random_bert(folder / "bi", base=base, **sizes),
            w.random_bert(folder / "cross", cross=True, base=base, **sizes))


@pytest.fixture(scope="module")
def pairs(device, table) -> PairSet:
    path = w.DEVICE_DATA / "pairs.tsv"
    pairs = read_pairs(path)[0] if path.is_file() else w.sts_unique_pairs()
    if device == "cpu":
        table.title += " (dry run: numbers meaningless)"
        pairs = PairSet(pairs.sentences[:400], pairs.pairs[(pairs.pairs < 400).all(1)][:200])
    table.note(f"{len(pairs):,} pairs over {len(pairs.sentences):,} sentences (.device-data/pairs.tsv where at hand); "
               "random weights; the anchors at batch 128 (predict) and 32 (encode, its default) in fp32, as they run by "
               "default; ours at precision auto, loaded as `transenc label` loads them (transenc.bert for BERT), counting "
               "its tokenizing as the anchors do (but for the row from a ready token cache); one timed run each after "
               "a 2,048-row warm-up")
    return pairs


@pytest.fixture(scope="module")
def models(device, tmp_path_factory):
    made = {}

    def model(size: str) -> tuple[Path, Path]:  # each size made once, at its first test
        if size not in made:
            made[size] = random_bert(size, tmp_path_factory.mktemp(size), tiny=device == "cpu")
        return made[size]

    return model


def task_runner(impl: str, bi_dir: Path, cross_dir: Path, pairs: PairSet, device: str, note):
    """run(n): the implementation's task on the first n rows (None: all of them)."""
    import sentence_transformers as st

    if impl == ST_PREDICT:
        model = st.CrossEncoder(str(cross_dir), device=device, max_length=128)
        texts = [pairs.pair_texts(i) for i in range(len(pairs))]
        return lambda n: model.predict(texts[:n], batch_size=128, show_progress_bar=False)
    if impl == ST_ENCODE:
        model = st.SentenceTransformer(str(bi_dir), device=device)
        return lambda n: model.encode(pairs.sentences[:n], batch_size=32, convert_to_tensor=True, show_progress_bar=False)
    if IMPLS[impl] == PREDICT:
        model = CrossEncoder.load(cross_dir, device, max_length=128, inference=True)  # as label loads it
        cache = model.token_cache(pairs.sentences)
        note(f"ours' padding efficiency: {padding_efficiency(model.batches(cache, pairs.pairs, 256)):.3f}")
        source = cache if "cache" in impl else pairs.sentences
        return lambda n: model.predict(source, pairs.pairs[:n], batch_size=256, show_progress=False)
    model = BiEncoder.load(bi_dir, device, inference=True)
    if IMPLS[impl] == ENCODE:
        return lambda n: model.encode(pairs.sentences[:n], batch_size=256, show_progress=False)
    return lambda n: bi_scores(model, pairs if n is None else pairs.head(n), batch_size=256, show_progress=False)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("size", ["minilm-l6", "bert-base"])
def test_model(benchmark, table, models, pairs, device, size, impl):
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    run = task_runner(impl, *models(size), pairs, device, table.note)
    run(2048)  # warm-up: the CUDA context, the kernels, the allocator
    w.sync()
    values = w.timed(benchmark, lambda: (run(None), w.sync())[0])
    done = len(pairs.sentences) if IMPLS[impl] == ENCODE else len(pairs)
    table.measured[(size, impl)] = (benchmark.stats.stats.min, done, torch.as_tensor(values).float().cpu())
