"""Scoring STS-B's 8,567 unique pairs at every precision, side by side in one run:
sentence-transformers (torch fp32, ONNX Runtime fp32, ONNX Runtime int8) against transenc (fp32,
bf16, fp16, int8 in process; `transenc label` as whole processes), cross- and bi-encoder.
Writes bench/results/precision-<cpu>.md.

    pip install -e ".[bench]"       # sentence-transformers[onnx]
    python -m pytest bench/test_bench_precision.py --benchmark-only -q -p no:randomly

Cross-encoder: workloads.trained_cross_encoder (made once, ~7 min). Bi-encoder: all-MiniLM-L6-v2.
Agreement is the Spearman of each path's scores with transenc fp32's over the 8,567 pairs;
STS-B test is Spearman x 100 on its 1,379 pairs, read off the same scores. Model loading and ONNX
export are not timed in process; the whole processes count everything (start, imports, load,
reading, writing, exit).
"""
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

import workloads as w
from results_writer import write_table

pytest.importorskip("pytest_benchmark")
ROWS: dict[tuple[str, str], dict] = {}  # (encoder, path) -> pairs/s, scores, ...
OURS_IN_PROCESS = ("fp32", "bf16", "fp16", "int8")
OURS_PROCESS = ("fp32", "auto", "int8", "bf16")


@pytest.fixture(scope="module")
def data(sts_pairs):
    rows, gold = w.sts_test_rows(sts_pairs)
    folder = Path(tempfile.mkdtemp(prefix="transenc-bench-precision-"))
    with open(folder / "pairs.tsv", "w", encoding="utf-8") as f:
        f.writelines(f"{a}\t{b}\n" for a, b in (sts_pairs.pair_texts(i) for i in range(len(sts_pairs))))
    models = {"cross": w.trained_cross_encoder(), "bi": w.resolve_model(None)}
    for kind, path in list(models.items()):  # ONNX exports write into the model folder: work on copies
        models[kind] = Path(shutil.copytree(path, folder / kind))
    models["bi-base"] = w.mpnet_path()  # a BERT-base-sized model's agreement; None where it is not at hand
    yield {"pairs": sts_pairs, "test_rows": rows, "gold": gold, "folder": folder, "models": models}
    write_results(sts_pairs, rows, gold)


def record(benchmark, kind: str, path: str, fn):
    """Times one call of fn (the callers warm up first) and keeps its scores for the table."""
    scores = benchmark.pedantic(fn, rounds=1, iterations=1, warmup_rounds=0)
    ROWS[(kind, path)] = {"seconds": benchmark.stats.stats.min, "scores": np.asarray(scores, dtype=np.float64)}


def bi_pair_scores(embeddings, pairs) -> np.ndarray:
    from transenc import ops

    return ops.pair_cosine_indexed(torch.as_tensor(embeddings, dtype=torch.float32), pairs.pairs).numpy()


# ---- sentence-transformers -----------------------------------------------------------------

def st_model(kind: str, folder: Path, backend: str):
    """sentence-transformers' CrossEncoder (kind "cross") or SentenceTransformer on a ST_PATHS backend
    (int8: its dynamically quantized ONNX export, avx512_vnni config, written into `folder`)."""
    import sentence_transformers as st

    cls = st.CrossEncoder if kind == "cross" else st.SentenceTransformer
    if backend != "int8":
        return cls(str(folder), device="cpu", backend=backend)
    st.export_dynamic_quantized_onnx_model(cls(str(folder), device="cpu", backend="onnx"), "avx512_vnni", str(folder))
    return cls(str(folder), device="cpu", backend="onnx", model_kwargs={"file_name": "onnx/model_qint8_avx512_vnni.onnx"})


ST_PATHS = {"torch": "sentence-transformers torch fp32", "onnx": "sentence-transformers ONNX Runtime fp32",
            "int8": "sentence-transformers ONNX Runtime int8 (avx512_vnni config)"}


def model_for(data, kind: str) -> Path:
    if data["models"][kind] is None:
        pytest.skip("all-mpnet-base-v2 not found (bash scripts/get_mpnet.sh)")
    return data["models"][kind]


@pytest.mark.parametrize("kind, backend", [(k, b) for k in ("cross", "bi") for b in ST_PATHS] + [("bi-base", "torch")])
def test_st(benchmark, data, kind, backend):
    pytest.importorskip("onnxruntime") if backend != "torch" else None
    model, pairs = st_model(kind, model_for(data, kind), backend), data["pairs"]
    if kind == "cross":
        texts = [pairs.pair_texts(i) for i in range(len(pairs))]
        model.predict(texts[:64], batch_size=32, show_progress_bar=False)  # warm-up
        run = lambda: model.predict(texts, batch_size=32, show_progress_bar=False)  # noqa: E731
    else:
        model.encode(pairs.sentences[:64], batch_size=32, show_progress_bar=False)
        run = lambda: bi_pair_scores(model.encode(pairs.sentences, batch_size=32, show_progress_bar=False), pairs)  # noqa: E731
    record(benchmark, kind, ST_PATHS[backend], run)


# ---- transenc ------------------------------------------------------------------------------

# fp16 on a CPU runs at a third of fp32's speed (MiniLM's rows show it): the BERT-base row would cost ~13 min
@pytest.mark.parametrize("kind, precision", [(k, p) for k in ("cross", "bi", "bi-base") for p in OURS_IN_PROCESS
                                             if (k, p) != ("bi-base", "fp16")])
def test_ours_in_process(benchmark, data, kind, precision):
    from transenc.labeling import load_scorer, score

    model, pairs = load_scorer(str(model_for(data, kind)), kind.split("-")[0], "cpu", precision), data["pairs"]
    score(model, pairs.head(64), precision=precision, show_progress=False)  # warm-up
    record(benchmark, kind, f"transenc {precision}, in process",
           lambda: score(model, pairs, precision=precision, show_progress=False))


@pytest.mark.parametrize("kind", ["cross", "bi"])
@pytest.mark.parametrize("precision", OURS_PROCESS)
def test_ours_label_process(benchmark, data, kind, precision):
    out = data["folder"] / f"{kind}-{precision}.tsv"
    command = [str(Path(sys.executable).parent / "transenc"), "label", "--pairs", str(data["folder"] / "pairs.tsv"),
               "--mode", kind, "--model", str(data["models"][kind]), "--precision", precision, "--out", str(out)]

    def run():
        subprocess.run(command, check=True, capture_output=True)
        return [float(line.rsplit("\t", 1)[1]) for line in out.read_text(encoding="utf-8").splitlines()]

    record(benchmark, kind, f"`transenc label --precision {precision}`, whole process", run)


# ---- the table -------------------------------------------------------------------------------

def write_results(pairs, test_rows, gold) -> None:
    from transenc.precision import cpu_auto_precision

    table = []
    for kind in ("cross", "bi", "bi-base"):
        reference = ROWS.get((kind, "transenc fp32, in process"))
        anchors = {name: ROWS.get((kind, ST_PATHS[b])) for name, b in (("onnx8", "int8"), ("torch", "torch"))}
        for (k, path), row in ROWS.items():
            if k != kind:
                continue
            rate = len(pairs) / row["seconds"]
            ratio = lambda a: f"{a['seconds'] / row['seconds']:.2f}x" if a else "-"  # noqa: E731
            agree = f"{spearmanr(reference['scores'], row['scores']).statistic:.5f}" if reference else "-"
            test = spearmanr(row["scores"][test_rows], gold).statistic * 100
            table.append([kind, path, f"{row['seconds']:.1f}", f"{rate:,.0f}", ratio(anchors["onnx8"]),
                          ratio(anchors["torch"]), agree, f"{test:.2f}"])
    notes = [f"Data: STS-B train+dev+test, {len(pairs):,} unique pairs over {len(pairs.sentences):,} sentences; "
             "bi-encoder rows score every pair by the cosine of its sentences' embeddings (each sentence encoded once)",
             "Cross-encoder: all-MiniLM-L6-v2 trained 600 steps on its own cosines over STS-B train's pairs "
             "(bench/workloads.trained_cross_encoder); bi-encoder: all-MiniLM-L6-v2; bi-base: "
             "all-mpnet-base-v2 (BERT-base-sized, 12 layers of 768; scripts/get_mpnet.sh), in process only",
             "sentence-transformers at batch 32, its default; transenc at its defaults (length-sorted token-budget "
             "batches, ~64 pairs / ~128 sentences)",
             "vs X: X's seconds over this row's (above 1: this row is faster); agreement: Spearman with transenc fp32's "
             "scores on all pairs",
             f"`--precision auto` on this CPU: {cpu_auto_precision()}"]
    header = ["encoder", "path", "s", "pairs/s", "vs ST ONNX int8", "vs ST torch fp32", "agreement", "STS-B test"]
    print(write_table("precision", "Pair scoring at every precision, against sentence-transformers' fastest paths",
                      notes, header, table))
