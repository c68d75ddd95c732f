"""Streaming `transenc label` writes what the whole-file path writes, byte for byte, whatever the
chunk size, the format, the duplicates and the order of the pairs."""
import json

import numpy as np
import pytest

from transenc import cli
from transenc.labeling import load_scorer, score
from transenc.models import CrossEncoder
from transenc.readers import read_pairs
from transenc.writers import output_format, score_line

WORDS = ["a cat sits on the mat", "the dog runs", "birds fly south in winter", "a man plays a guitar",
         "two kids eat ice cream", "rain falls", "the market closed higher today"]


def shuffled_pairs_with_duplicates(n=23, seed=0):
    rng = np.random.default_rng(seed)
    pairs = [(WORDS[i], WORDS[j]) for i, j in rng.integers(0, len(WORDS), (n - 3, 2)) if i != j]
    pairs += pairs[:3]  # the same pairs again, later in the file
    return [pairs[i] for i in rng.permutation(len(pairs))]


def write_whole(path, pairs, scores):
    """The reference: every row at once from a PairSet, as the whole-file path wrote it."""
    rows = [(*pairs.pair_texts(i), s) for i, s in enumerate(np.asarray(scores, dtype=np.float32).tolist())]
    path.write_text("".join(score_line(a, b, s, output_format(path) == "jsonl") for a, b, s in rows), encoding="utf-8")


def write_as(fmt, rows, folder):
    """The same pairs in each input format, with a gold score the reader may or may not use."""
    if fmt == "tsv":
        text = "".join(f"{a}\t{b}\t{i % 5}\n" for i, (a, b) in enumerate(rows))
    elif fmt == "bars":
        text = "".join(f"{a}||{b}\n" for a, b in rows)
    elif fmt == "csv":
        text = "score,sentence1,sentence2\n" + "".join(f'{i % 5},"{a}","{b}"\n' for i, (a, b) in enumerate(rows))
    elif fmt == "jsonl":
        text = "".join(json.dumps({"text_a": a, "text_b": b}) + "\n" for a, b in rows)
    else:  # sts
        text = "".join(f"main-captions\tMSRvid\t2012test\t{i:04d}\t{i % 5}.000\t{a}\t{b}\n" for i, (a, b) in enumerate(rows))
    path = folder / f"pairs.{ {'bars': 'txt', 'sts': 'csv'}.get(fmt, fmt) }"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def models(tiny_bert, tmp_path_factory):
    """The tiny BERT as a bi-encoder, and as a saved cross-encoder (a fresh head is random at each load)."""
    cross = tmp_path_factory.mktemp("tiny-cross")
    CrossEncoder.load(tiny_bert, "cpu").save(cross)
    return {"bi": tiny_bert, "cross": cross}


@pytest.mark.parametrize("mode, keep_ids", [("bi", True), ("bi", False), ("cross", True)])
@pytest.mark.parametrize("fmt", ["tsv", "csv", "jsonl", "bars", "sts"])
def test_streamed_output_equals_the_whole_file_output(tmp_path, models, mode, keep_ids, fmt, monkeypatch):
    from transenc import readers

    if not keep_ids:  # bi mode past its kept ids: the pairs are read a second time
        monkeypatch.setattr(readers, "KEEP_IDS_PAIRS", 5)
    rows = shuffled_pairs_with_duplicates()
    path = write_as(fmt, rows, tmp_path)
    pairs, _ = read_pairs(path, fmt)
    assert [pairs.pair_texts(i) for i in range(len(pairs))] == rows
    scores = score(load_scorer(models[mode], mode, "cpu"), pairs)
    for suffix, chunk in (("tsv", 1), ("jsonl", 7), ("tsv", 1000)):  # a pair, uneven chunks, one chunk
        whole = tmp_path / f"whole.{suffix}"
        write_whole(whole, pairs, scores)
        streamed = tmp_path / f"streamed-{chunk}.{suffix}"
        assert cli.main(["label", "--pairs", str(path), "--format", fmt, "--mode", mode, "--model", str(models[mode]),
                         "--chunk-pairs", str(chunk), "--out", str(streamed)]) == 0
        assert streamed.read_bytes() == whole.read_bytes(), (mode, fmt, suffix, chunk)


def test_a_bad_line_after_the_first_chunks_leaves_no_output(tmp_path, capsys, tiny_bert):
    rows = shuffled_pairs_with_duplicates()
    (tmp_path / "p.tsv").write_text("".join(f"{a}\t{b}\n" for a, b in rows) + "no tab\n")
    out = tmp_path / "o.tsv"
    for mode in ("bi", "cross"):
        assert cli.main(["label", "--pairs", str(tmp_path / "p.tsv"), "--mode", mode, "--model", str(tiny_bert),
                         "--chunk-pairs", "2", "--out", str(out)]) == 2
        assert f"p.tsv:{len(rows) + 1}: expected at least 2 tab-separated fields" in capsys.readouterr().err
        assert sorted(p.name for p in tmp_path.iterdir()) == ["p.tsv"]


def test_a_cross_label_counts_its_pairs_first_for_one_bar_and_its_bad_lines(tmp_path, capsys, monkeypatch, models):
    from transenc import labeling, progress

    monkeypatch.setattr(progress, "LOG_EVERY_S", 0.0)  # a log line at every update
    scored, real = [], labeling.cross_scores
    monkeypatch.setattr(labeling, "cross_scores", lambda *a, **k: scored.append(1) or real(*a, **k))
    # long rows (the cross-encoder's batches hold 512 tokens): a chunk of 20 pairs is several batches
    rows = [(" ".join([a] * 5), " ".join([b] * 5)) for a, b in shuffled_pairs_with_duplicates()]
    path, out = tmp_path / "p.tsv", tmp_path / "o.tsv"
    path.write_text("".join(f"{a}\t{b}\n" for a, b in rows))
    argv = ["label", "--pairs", str(path), "--mode", "cross", "--model", str(models["cross"]), "--chunk-pairs", "20",
            "--out", str(out)]
    assert cli.main(argv) == 0 and len(scored) == -(-len(rows) // 20)
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("label: ")]
    assert lines[-1].startswith(f"label: {len(rows)}/{len(rows)} pairs (")  # one bar over the file, not one a chunk
    done = [int(line.split()[1].split("/")[0]) for line in lines]
    assert done == sorted(done) and len(set(done)) > len(scored)  # it goes on inside the chunks too

    scored.clear()
    path.write_text(path.read_text() + "no tab\n")
    assert cli.main(argv) == 2 and scored == []  # the bad last line stops the run before any pair is scored
    assert f"p.tsv:{len(rows) + 1}: expected at least 2 tab-separated fields" in capsys.readouterr().err


@pytest.mark.parametrize("mode", ["bi", "cross"])
def test_an_npy_output_holds_the_scores_alone_in_input_order(tmp_path, models, mode):
    rows = shuffled_pairs_with_duplicates()
    path = tmp_path / "p.tsv"
    path.write_text("".join(f"{a}\t{b}\n" for a, b in rows))
    argv = ["label", "--pairs", str(path), "--mode", mode, "--model", str(models[mode]), "--chunk-pairs", "6"]
    assert cli.main([*argv, "--out", str(tmp_path / "o.tsv")]) == 0
    assert cli.main([*argv, "--out", str(tmp_path / "o.npy")]) == 0
    tsv = np.array([line.split("\t")[2] for line in (tmp_path / "o.tsv").read_text().splitlines()], dtype=np.float32)
    for scores in (np.load(tmp_path / "o.npy"), np.load(tmp_path / "o.npy", mmap_mode="r")):
        assert scores.dtype == np.float32 and scores.shape == (len(rows),)
        assert np.array_equal(scores, tsv)  # the TSV's 9 digits give float32's value back exactly


def test_output_suffixes_that_name_no_format_are_refused_before_any_work(tmp_path, capsys):
    pairs = tmp_path / "p.tsv"
    pairs.write_text("a cat\ta dog\n")
    for argv, says in (
        (["label", "--out", str(tmp_path / "o.csv")], "cannot write '.csv' here; name it .tsv"),
        (["label", "--out", str(tmp_path / "o.npy"), "--on-error", "skip"], "holds the scores alone"),
        (["mine", "--sentences", str(pairs), "--out", str(tmp_path / "m.jsonl")],
         "cannot write '.jsonl' here; name it .tsv (or .txt, or none)\n"),
    ):
        if argv[0] == "label":
            argv += ["--pairs", str(pairs), "--model", str(tmp_path / "no-model")]  # it fails before loading it
        assert cli.main(argv) == 2
        assert says in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.tsv"]


def test_chunk_size_must_be_positive(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["label", "--pairs", "x.tsv", "--chunk-pairs", "0"])
    assert e.value.code == 2 and "must be a whole number of at least 1" in capsys.readouterr().err
