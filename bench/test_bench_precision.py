"""Scoring STS-B's 8,567 unique pairs at every precision, cross- and bi-encoder: sentence-transformers
(torch fp32, ONNX Runtime fp32 and int8, OpenVINO fp32 and static int8) against transenc in process and
as whole `transenc label` processes, each timed once; then transenc at `--precision auto` (this CPU's
fastest: int8, or bf16 where it has AMX) against OpenVINO int8 head to head, in alternating rounds (the
table's notes); fills bench/results/precision-<cpu>.md.

In the bench environment (its pins: pyproject.toml's `bench` extra):
    python -m venv .venv-bench && .venv-bench/bin/pip install "torch==2.13.0+cpu" && .venv-bench/bin/pip install -e ".[bench]"
    .venv-bench/bin/python -m pytest bench/test_bench_precision.py -q -s
"""
import json
import os
import shutil
import subprocess
import sys
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

import workloads as w
from transenc.precision import cpu_auto_precision
from transenc.readers import read_pairs

pytest.importorskip("pytest_benchmark")
KINDS = ("cross", "bi", "bi-base")
ST_PATHS = {"torch": "sentence-transformers torch fp32", "onnx": "sentence-transformers ONNX Runtime fp32",
            "int8": "sentence-transformers ONNX Runtime int8 (avx512_vnni config)",
            "openvino": "sentence-transformers OpenVINO fp32",
            "openvino-int8": "sentence-transformers OpenVINO int8 (static, 300 STS-B train sentences)"}
ANCHORS = ("openvino-int8", "int8", "torch")  # the "vs" columns, fastest anchor first
REFERENCE = "transenc fp32, in process"
CALIBRATION_ROWS = 300  # what the maintainers' OpenVINO int8 figures were calibrated on
HEAD_TO_HEAD_ROUNDS = 5

TITLE = "Pair scoring at every precision, against sentence-transformers' fastest paths"
HEADER = ["encoder", "path", "s", "pairs/s", "vs ST OpenVINO int8", "vs ST ONNX int8", "vs ST torch fp32", "agreement",
          "STS-B test"]


def table_rows(measured: dict) -> list[list]:
    """measured: (encoder, path) -> (seconds, scores); "sts": the pairs, STS-B test's rows and gold scores."""
    pairs, test_rows, gold = measured["sts"]
    rows = []
    for (kind, path), (seconds, scores) in sorted(((k, v) for k, v in measured.items() if k != "sts"),
                                                  key=lambda item: KINDS.index(item[0][0])):
        versus = [measured.get((kind, ST_PATHS[b])) for b in ANCHORS]
        reference = measured.get((kind, REFERENCE))
        rows.append([kind, path, f"{seconds:.1f}", f"{len(pairs) / seconds:,.0f}",
                     *[f"{anchor[0] / seconds:.2f}x" if anchor else "-" for anchor in versus],
                     f"{spearmanr(reference[1], scores).statistic:.5f}" if reference else "-",
                     f"{spearmanr(scores[test_rows], gold).statistic * 100:.2f}"])
    return rows


@pytest.fixture(scope="module")
def data(sts_pairs, table, tmp_path_factory):
    folder, texts = tmp_path_factory.mktemp("precision"), [sts_pairs.pair_texts(i) for i in range(len(sts_pairs))]
    (folder / "pairs.tsv").write_text("".join(f"{a}\t{b}\n" for a, b in texts), encoding="utf-8")
    # ONNX exports write into the model folder: work on copies
    models = {kind: Path(shutil.copytree(path, folder / kind)) for kind, path in
              (("cross", w.trained_cross_encoder()), ("bi", w.minilm_path()))}
    # a BERT-base-sized model's agreement, where scripts/get_mpnet.sh (or TRANSENC_MPNET_DIR) put all-mpnet-base-v2
    models["bi-base"] = w.mpnet_path()
    test, _ = read_pairs(w.sts_dir() / "sts-test.csv")
    row_of = {pair: i for i, pair in enumerate(texts)}
    table.measured["sts"] = (sts_pairs, np.array([row_of[test.pair_texts(i)] for i in range(len(test))]), test.labels)
    for line in [f"STS-B train+dev+test, {len(sts_pairs):,} unique pairs over {len(sts_pairs.sentences):,} sentences; bi "
                 "rows: the cosine of each pair's embeddings (each sentence encoded once); STS-B test: Spearman x 100 "
                 "on its 1,379 pairs, read off the same scores",
                 "cross: all-MiniLM-L6-v2 trained 600 steps on its own cosines over STS-B train's pairs "
                 "(workloads.trained_cross_encoder); bi: all-MiniLM-L6-v2; bi-base: all-mpnet-base-v2 (BERT-base "
                 "sized; scripts/get_mpnet.sh), in process only",
                 "sentence-transformers at batch 32, its default; transenc at its defaults; model loading, ONNX and "
                 "OpenVINO exports untimed in process; whole processes count everything",
                 f"OpenVINO int8: calibrated on STS-B train's first {CALIBRATION_ROWS} sentences (single sentences, "
                 "the cross-encoder's too: the export takes one text column)",
                 "vs X: X's seconds over this row's; agreement: Spearman with transenc fp32's scores on all pairs",
                 f"`--precision auto` on this CPU: {cpu_auto_precision()}"]:
        table.note(line)
    return {"pairs": sts_pairs, "texts": texts, "folder": folder, "models": models,
            "calibration": calibration_rows(folder / "calibration")}


def calibration_rows(folder: Path) -> Path:
    """A local dataset (one JSON line per row, column "text") of STS-B train's first sentences: OpenVINO's
    static int8 calibrates on it through `datasets`, with nothing from a hub."""
    train, _ = read_pairs(w.sts_dir() / "sts-train.csv")
    folder.mkdir()
    (folder / "rows.jsonl").write_text("".join(json.dumps({"text": train.pair_texts(i)[0]}) + "\n"
                                               for i in range(CALIBRATION_ROWS)), encoding="utf-8")
    return folder


def record(benchmark, table, kind: str, path: str, fn):  # one timed call (the callers warm up first), its scores kept
    scores = w.timed(benchmark, fn)
    table.measured[(kind, path)] = (benchmark.stats.stats.min, np.asarray(scores, dtype=np.float64))


def skip_without_a_fast_path(precision: str) -> None:
    """A precision this CPU has no arithmetic for runs several times slower than fp32 (bf16 ~7x without
    AVX512-BF16 or AMX; int8 without AVX2, where neither the engine's matmul nor VNNI runs; see
    transenc.precision.slow_on_this_cpu): rows that would take an hour and say nothing new are skipped."""
    from transenc.precision import slow_on_this_cpu

    if reason := slow_on_this_cpu(precision):
        pytest.skip(reason)


def model_for(data, kind: str) -> Path:
    if data["models"][kind] is None:
        pytest.skip("all-mpnet-base-v2 not found (bash scripts/get_mpnet.sh)")
    return data["models"][kind]


def st_scorer(data, kind: str, backend: str):
    """run(rows=None): sentence-transformers' CrossEncoder or SentenceTransformer on a backend scoring the first
    `rows` pairs (all: None), its exports written into the model's folder. ONNX int8 is its dynamically quantized
    ONNX export (avx512_vnni config), OpenVINO int8 its static post-training quantization
    (export_static_quantized_openvino_model) calibrated on local rows."""
    import sentence_transformers as st

    if backend != "torch":
        pytest.importorskip("openvino" if backend.startswith("openvino") else "onnxruntime")
    os.environ["HF_HUB_OFFLINE"] = os.environ["HF_DATASETS_OFFLINE"] = "1"  # calibration rows are local
    folder, pairs, texts = str(model_for(data, kind)), data["pairs"], data["texts"]
    load = partial(st.CrossEncoder if kind == "cross" else st.SentenceTransformer, folder, device="cpu")
    if backend == "int8":
        st.export_dynamic_quantized_onnx_model(load(backend="onnx"), "avx512_vnni", folder)
        model = load(backend="onnx", model_kwargs={"file_name": "onnx/model_qint8_avx512_vnni.onnx"})
    elif backend == "openvino-int8":
        st.export_static_quantized_openvino_model(load(backend="openvino"), None, folder,
                                                  dataset_name=str(data["calibration"]), dataset_config_name="default",
                                                  dataset_split="train", column_name="text")
        model = load(backend="openvino", model_kwargs={"file_name": "openvino/openvino_model_qint8_quantized.xml"})
    else:
        model = load(backend=backend)

    def run(rows=None):  # bi: each sentence encoded once, then the cosine of each pair's embeddings
        if kind == "cross":
            return model.predict(texts[:rows], batch_size=32, show_progress_bar=False)
        embeddings = torch.as_tensor(model.encode(pairs.sentences[:rows], batch_size=32, show_progress_bar=False))
        return None if rows else w.pair_cosines(embeddings, pairs.pairs)

    run(64)  # warm-up
    return run


def ours_in_process(data, kind: str, precision: str):
    """run(): transenc's scores of all pairs in this process (model loaded and warmed up first)."""
    from transenc.labeling import load_scorer, score

    model, pairs = load_scorer(str(model_for(data, kind)), kind.split("-")[0], "cpu", precision), data["pairs"]
    score(model, pairs.head(64), precision=precision, show_progress=False)  # warm-up
    return lambda: score(model, pairs, precision=precision, show_progress=False)


def ours_label_process(data, kind: str, precision: str):
    """run(): `transenc label` as a whole process over all pairs, its output file read back."""
    out = data["folder"] / f"{kind}-{precision}.tsv"
    command = w.label_command(data["folder"] / "pairs.tsv", "--mode", kind, "--model", data["models"][kind],
                              "--precision", precision, "--out", out,
                              program=[Path(sys.executable).parent / "transenc"])  # the console script

    def run():
        subprocess.run(command, check=True, capture_output=True)
        return [float(line.rsplit("\t", 1)[1]) for line in out.read_text(encoding="utf-8").splitlines()]

    return run


@pytest.mark.parametrize("kind, backend", [(k, b) for k in ("cross", "bi") for b in ST_PATHS] + [("bi-base", "torch")])
def test_st(benchmark, table, data, kind, backend):
    record(benchmark, table, kind, ST_PATHS[backend], st_scorer(data, kind, backend))


# fp16 on a CPU runs at a third of fp32's speed (MiniLM's rows show it): the BERT-base row would cost ~13 min
@pytest.mark.parametrize("kind, precision", [(k, p) for k in KINDS for p in ("fp32", "bf16", "fp16", "int8")
                                             if (k, p) != ("bi-base", "fp16")])
def test_ours_in_process(benchmark, table, data, kind, precision):
    skip_without_a_fast_path(precision)
    record(benchmark, table, kind, f"transenc {precision}, in process", ours_in_process(data, kind, precision))


@pytest.mark.parametrize("kind", ["cross", "bi"])
@pytest.mark.parametrize("precision", ["fp32", "auto", "int8", "bf16"])
def test_ours_label_process(benchmark, table, data, kind, precision):
    skip_without_a_fast_path(precision)
    record(benchmark, table, kind, f"`transenc label --precision {precision}`, whole process",
           ours_label_process(data, kind, precision))


@pytest.mark.parametrize("kind", ["cross", "bi"])
def test_head_to_head(benchmark, table, data, kind):
    """transenc at `--precision auto` in process and as a whole `transenc label` process against ST OpenVINO
    int8, alternating over HEAD_TO_HEAD_ROUNDS rounds. This machine's speed drifts by 15% and more from one
    minute to the next, and OpenVINO's more: each row above, timed once at its own moment, can be off by more
    than the paths differ (on a Zen 4 EPYC two runs gave transenc int8 1.71x and 1.16x OpenVINO int8 on the
    cross-encoder). The medians of paired rounds are the figures to quote."""
    auto = cpu_auto_precision()
    skip_without_a_fast_path(auto)
    paths = {"OpenVINO int8": st_scorer(data, kind, "openvino-int8"),
             f"transenc {auto} in process": ours_in_process(data, kind, auto),
             "`transenc label --precision auto` process": ours_label_process(data, kind, "auto")}

    def rounds():
        seconds = {name: [] for name in paths}
        for r in range(HEAD_TO_HEAD_ROUNDS):
            for name in (list(paths) if r % 2 == 0 else list(paths)[::-1]):
                seconds[name].append(w.seconds(paths[name]))
        return seconds

    seconds = w.timed(benchmark, rounds)
    anchor = np.array(seconds["OpenVINO int8"])
    for name in list(paths)[1:]:
        ratios = anchor / np.array(seconds[name])
        table.note(f"head to head, {kind}, {HEAD_TO_HEAD_ROUNDS} alternating rounds: ST OpenVINO int8's seconds over "
                   f"{name}'s: median {np.median(ratios):.2f}x (rounds: {', '.join(f'{r:.2f}' for r in ratios)}); "
                   f"pairs/s medians {len(data['pairs']) / np.median(seconds[name]):,.0f} against "
                   f"{len(data['pairs']) / np.median(anchor):,.0f}")
