"""`transenc label` and `transenc eval` end to end, and the CLI's handling of bad input."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import corpora
from transenc import cli, ops
from transenc.metrics import labeled_sets
from transenc.models import CrossEncoder
from transenc.readers import read_pairs


def run(argv, capsys=None):
    code = cli.main(argv)
    return code


def write_tsv(pairs, path):
    path.write_text("".join(f"{a}\t{b}\n" for a, b in pairs), encoding="utf-8")


def write_sts_as_tsv(sts, path):
    ps, _ = read_pairs(sts / "sts-test.csv")
    write_tsv((ps.pair_texts(i) for i in range(len(ps))), path)
    return ps


# Pairs a real model must label as sentence-transformers does: demo_mix everywhere (rows past the
# model's 256 tokens among them), STS-B's test split where the data is.
REAL_PAIRS = {"demo-mix": lambda: corpora.demo_mix(1000), "sts-b-test": lambda: corpora.sts_b(("test",))}


@pytest.fixture(params=sorted(REAL_PAIRS))
def real_pairs(request, tmp_path):
    """(a pair file, its pairs as text)."""
    pairs = REAL_PAIRS[request.param]()
    write_tsv(pairs, tmp_path / "pairs.tsv")
    return tmp_path / "pairs.tsv", pairs


def read_scores(path):
    return np.array([float(line.rsplit("\t", 1)[1]) for line in path.read_text(encoding="utf-8").splitlines()])


@pytest.mark.slow
def test_label_bi_matches_sentence_transformers_pair_by_pair(real_pairs, tmp_path, default_model_path):
    from sentence_transformers import SentenceTransformer

    path, texts = real_pairs
    assert run(["label", "--pairs", str(path), "--out", str(tmp_path / "s.tsv"), "--device", "cpu",
                "--precision", "fp32"]) == 0
    ours = read_scores(tmp_path / "s.tsv")
    st = SentenceTransformer(str(default_model_path), device="cpu")
    a = st.encode([t[0] for t in texts], normalize_embeddings=True, convert_to_numpy=True)
    b = st.encode([t[1] for t in texts], normalize_embeddings=True, convert_to_numpy=True)
    reference = (a * b).sum(1)
    assert len(ours) == len(texts)
    assert np.abs(ours - reference).max() < 1e-5


@pytest.mark.slow
def test_eval_reproduces_the_published_stsb_figure(sts, capsys):
    assert run(["eval", "--data", str(sts), "--device", "cpu", "--precision", "fp32"]) == 0
    lines = dict(line.split("\t") for line in capsys.readouterr().out.strip().splitlines())
    assert abs(float(lines["sts-b-test"]) - 82.03) <= 0.05  # MTEB's figure for all-MiniLM-L6-v2


@pytest.mark.slow
def test_saved_cross_encoder_loads_in_sentence_transformers_with_the_same_scores(real_pairs, tmp_path,
                                                                               default_model_path):
    from sentence_transformers import CrossEncoder as STCrossEncoder

    path, texts = real_pairs
    model = CrossEncoder.load(default_model_path, "cpu", max_length=128)  # head starts fresh: any weights do
    model.save(tmp_path / "cross")
    assert run(["label", "--mode", "cross", "--model", str(tmp_path / "cross"), "--pairs", str(path),
                "--out", str(tmp_path / "c.tsv"), "--device", "cpu", "--precision", "fp32"]) == 0
    ours = read_scores(tmp_path / "c.tsv")
    theirs = STCrossEncoder(str(tmp_path / "cross"), device="cpu").predict(texts)
    assert np.abs(ours - np.asarray(theirs)).max() < 1e-5
    assert ours.std() > 0


def test_label_writes_jsonl_in_input_order(tmp_path, tiny_bert):
    rows = [("b b", "a a"), ("c", "a a"), ("b b", "a a"), ("a a", "c")]
    (tmp_path / "p.tsv").write_text("".join(f"{a}\t{b}\n" for a, b in rows))
    assert run(["label", "--pairs", str(tmp_path / "p.tsv"), "--model", str(tiny_bert), "--out", str(tmp_path / "o.jsonl")]) == 0
    import json

    out = [json.loads(line) for line in (tmp_path / "o.jsonl").read_text().splitlines()]
    assert [(o["sentence1"], o["sentence2"]) for o in out] == rows
    assert out[0]["score"] == out[2]["score"]
    assert out[0]["score"] != out[1]["score"]


@pytest.mark.parametrize("content, message", [
    (b"a\tb\nno tab here\n", "bad.tsv:2: expected at least 2 tab-separated fields"),
    (b"a\tb\n\xc3\x28 broken\tb\n", "bad.tsv:2: invalid UTF-8"),
    (b"", "bad.tsv: file is empty"),
    (b"a\tb\n \tb\n", "bad.tsv:2: empty sentence"),
    (b"a\tb\tnan\n", "bad.tsv:1: score is not a finite number"),
])
def test_bad_input_exits_2_with_a_clear_line_and_no_output(tmp_path, capsys, tiny_bert, content, message):
    (tmp_path / "bad.tsv").write_bytes(content)
    out = tmp_path / "out.tsv"
    assert run(["label", "--pairs", str(tmp_path / "bad.tsv"), "--model", str(tiny_bert), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not out.exists() and not any(p.name.startswith(".out.tsv") for p in tmp_path.iterdir())


def test_skip_bad_lines_reports_how_many(tmp_path, capsys, tiny_bert):
    (tmp_path / "p.tsv").write_bytes(b"a\tb\nbroken\nc\td\n")
    assert run(["label", "--pairs", str(tmp_path / "p.tsv"), "--model", str(tiny_bert), "--on-error", "skip",
                "--out", str(tmp_path / "o.tsv")]) == 0
    assert "skipped 1 bad line" in capsys.readouterr().err
    assert len((tmp_path / "o.tsv").read_text().splitlines()) == 2


@pytest.mark.parametrize("model, message", [
    ("{tmp}/no-such-model", "is not a model directory"),
    ("{tmp}", "has no config.json"),
])
def test_missing_or_unreadable_model_exits_2(tmp_path, capsys, model, message):
    (tmp_path / "p.tsv").write_text("a\tb\n")
    out = tmp_path / "o.tsv"
    assert run(["label", "--pairs", str(tmp_path / "p.tsv"), "--model", model.format(tmp=tmp_path), "--out", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("removed", [["tokenizer.json"], ["tokenizer.json", "tokenizer_config.json"]])
@pytest.mark.parametrize("mode", ["bi", "cross"])
def test_a_model_folder_without_a_tokenizer_exits_2(tmp_path, capsys, tiny_bert, removed, mode):
    """transformers would build a tokenizer of the special tokens alone from config.json: every word
    [UNK], every score nearly the same, exit 0."""
    import shutil

    model = tmp_path / "model"
    shutil.copytree(tiny_bert, model)
    for name in removed:
        (model / name).unlink()
    (tmp_path / "p.tsv").write_text("a man plays a guitar\tthe cat sat on the mat\n")
    out = tmp_path / "o.tsv"
    assert run(["label", "--mode", mode, "--pairs", str(tmp_path / "p.tsv"), "--model", str(model), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"model directory '{model}' has no tokenizer: none of tokenizer.json, vocab.txt" in err and err.count("\n") == 1
    assert not out.exists()


@pytest.mark.parametrize("mode", ["bi", "cross"])
def test_weights_that_cannot_be_read_say_so(tmp_path, tiny_bert, mode):
    """safetensors calls a weights file it may not read "No such file or directory". Run for real: as
    root (who reads everything), with the capabilities that let root read dropped (setpriv)."""
    import shutil

    model = tmp_path / "model"
    shutil.copytree(tiny_bert, model)
    (model / "model.safetensors").chmod(0)
    (tmp_path / "p.tsv").write_text("a man plays a guitar\tthe cat sat on the mat\n")
    command = [sys.executable, "-m", "transenc", "label", "--mode", mode, "--pairs", str(tmp_path / "p.tsv"),
               "--model", str(model)]
    if os.geteuid() == 0:
        caps = "-dac_override,-dac_read_search"
        setpriv = ["setpriv", f"--bounding-set={caps}", f"--inh-caps={caps}"]
        if shutil.which("setpriv") is None or subprocess.run([*setpriv, "true"]).returncode != 0:
            pytest.skip("running as root, and no setpriv here to drop the capability to read any file")
        command = [*setpriv, *command]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and done.stderr.endswith(f"Permission denied: '{model / 'model.safetensors'}'\n")


def test_offline_hub_name_fails_clearly(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    (tmp_path / "p.tsv").write_text("a\tb\n")
    assert run(["label", "--pairs", str(tmp_path / "p.tsv"), "--model", "someone/not-a-real-model-xyz"]) == 2
    assert "could not be downloaded from the Hugging Face hub" in capsys.readouterr().err


def test_corrupt_model_weights_exit_2(tmp_path, capsys, tiny_bert):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(tiny_bert, broken)
    for f in broken.glob("*.safetensors"):
        f.write_bytes(b"garbage")
    (tmp_path / "p.tsv").write_text("a\tb\n")
    assert run(["label", "--pairs", str(tmp_path / "p.tsv"), "--model", str(broken)]) == 2
    assert "cannot load a transformer" in capsys.readouterr().err


def test_the_compiled_engine_is_what_labels(tmp_path, tiny_bert, monkeypatch):
    from transenc import _C

    assert _C.__file__.endswith(".so")
    calls = []
    real = _C.pair_cosine_indexed
    monkeypatch.setattr(_C, "pair_cosine_indexed", lambda *a: calls.append(1) or real(*a))
    (tmp_path / "p.tsv").write_text("a\tb\nb\tc\n")
    assert run(["label", "--pairs", str(tmp_path / "p.tsv"), "--model", str(tiny_bert), "--out", str(tmp_path / "o.tsv")]) == 0
    assert calls == [1]


def test_mine_writes_to_standard_output_without_out(tmp_path, tiny_bert, capsys):
    (tmp_path / "s.txt").write_text("".join(f"sentence {i} about topic {i % 3}\n" for i in range(12)))
    argv = ["mine", "--sentences", str(tmp_path / "s.txt"), "--k", "2", "--model", str(tiny_bert)]
    assert run(argv + ["--out", str(tmp_path / "mined.tsv")]) == 0
    n = len((tmp_path / "mined.tsv").read_text().splitlines())
    from transenc.models import resolve_device
    from transenc.precision import inference_precision

    device = resolve_device("auto")
    ran = f"(bi-encoder, {inference_precision(device, 'auto')} on {device})"  # the summary line, as label's
    assert capsys.readouterr().err.endswith(f"transenc: wrote {n} pairs to {tmp_path / 'mined.tsv'} {ran}\n")
    for standard_output in ([], ["--out", "-"]):  # - is standard output, as it is standard input for --sentences
        assert run(argv + standard_output) == 0
        printed = capsys.readouterr()
        assert printed.out == (tmp_path / "mined.tsv").read_text() and printed.err.endswith(f"mined {n} pairs {ran}\n")
    assert not (tmp_path / "-").exists() and not Path("-").exists()
    label = ["label", "--pairs", str(tmp_path / "mined.tsv"), "--model", str(tiny_bert)]
    assert run(label) == 0
    scores = capsys.readouterr().out
    assert run(label + ["--out", "-"]) == 0
    assert capsys.readouterr().out == scores and scores.count("\n") == len((tmp_path / "mined.tsv").read_text().splitlines())
    (tmp_path / "one.txt").write_text("the same sentence\nthe same sentence\n")
    assert run(["mine", "--sentences", str(tmp_path / "one.txt"), "--model", str(tiny_bert)]) == 2
    assert "mining needs at least two different sentences; got 1" in capsys.readouterr().err


def test_mine_output_feeds_label_unchanged(tmp_path, tiny_bert):
    words = ["cat", "dog", "bird", "fish", "horse", "cow", "sheep", "goat"]
    (tmp_path / "s.txt").write_text("".join(f"the {a} sees the {b}\n" for a in words for b in words[:3]))
    assert run(["mine", "--sentences", str(tmp_path / "s.txt"), "--k", "3", "--model", str(tiny_bert),
                "--out", str(tmp_path / "mined.tsv")]) == 0
    mined = [line.split("\t") for line in (tmp_path / "mined.tsv").read_text().splitlines()]
    assert len(mined) >= 24 and all(a != b for a, b, _ in mined)
    assert len({frozenset((a, b)) for a, b, _ in mined}) == len(mined)  # each unordered pair once
    assert run(["label", "--pairs", str(tmp_path / "mined.tsv"), "--model", str(tiny_bert),
                "--out", str(tmp_path / "scored.tsv")]) == 0
    scored = [line.split("\t") for line in (tmp_path / "scored.tsv").read_text().splitlines()]
    assert [r[:2] for r in scored] == [r[:2] for r in mined]
    # label's bi-encoder cosine is the cosine mine ranked by
    assert np.allclose([float(r[2]) for r in scored], [float(r[2]) for r in mined], atol=1e-5)


@pytest.mark.parametrize("name, code", [("SIGTERM", 143), ("SIGHUP", 129)])
def test_a_stop_signal_unwinds_as_ctrl_c_does(name, code, tmp_path, tiny_bert, monkeypatch, capsys):
    """`kill` (SIGTERM), or the terminal closing (SIGHUP), mid-label: exit 128 + the signal and one
    line, and neither the output's temporary file nor the spooled standard input is left behind, as
    Python's default (ending on the spot) left them."""
    import io
    import signal
    import tempfile

    from transenc import writers
    from transenc.bundled import DEMO_PAIRS

    spools, out = tmp_path / "tmp", tmp_path / "out"
    spools.mkdir()
    out.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spools))
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(DEMO_PAIRS.read_bytes())))
    real = writers.score_rows

    def killed(*args):
        os.kill(os.getpid(), getattr(signal, name))  # as `kill PID` does, while the first chunk is written
        return real(*args)

    monkeypatch.setattr(writers, "score_rows", killed)
    # the signal at its default, as a shell leaves it: under `nohup` (a test run in the background)
    # SIGHUP comes ignored, and the command rightly leaves it so (test_under_nohup_sighup_stays_ignored)
    inherited = signal.signal(getattr(signal, name), signal.SIG_DFL)
    before = signal.getsignal(getattr(signal, name))
    try:
        assert run(["label", "--pairs", "-", "--out", str(out / "scores.tsv"), "--model", str(tiny_bert)]) == code
    finally:
        after = signal.signal(getattr(signal, name), inherited)
    assert capsys.readouterr().err.endswith(f"transenc: stopped ({name})\n")
    assert list(out.iterdir()) == [] and list(spools.iterdir()) == []
    assert after == before  # the command's handler is gone with it


def test_stops_after_the_first_wait_for_its_unwinding(tmp_path, tiny_bert, monkeypatch, capsys):
    """An impatient user's second Ctrl-C, or `kill` twice: signals that arrive together, and one more
    while the first unwinds, end the command with one line and its work kept, as one signal does. A
    second exception used to break off the cleanup with a traceback and exit 1, and a handler set to
    SIG_IGN with a signal pending prints "Signal 15 ignored due to race condition"."""
    import signal

    from transenc import readers, writers
    from transenc.bundled import DEMO_PAIRS

    both = {signal.SIGINT, signal.SIGTERM}
    real_rows, real_spools, unraisable = writers.score_rows, readers.remove_spools, []

    def killed_twice(*args):
        signal.pthread_sigmask(signal.SIG_BLOCK, both)  # both arrive before either handler runs
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGINT)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, both)
        return real_rows(*args)

    def killed_while_cleaning_up():
        os.kill(os.getpid(), signal.SIGTERM)
        real_spools()

    monkeypatch.setattr(writers, "score_rows", killed_twice)
    monkeypatch.setattr(readers, "remove_spools", killed_while_cleaning_up)
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    before = {signum: signal.getsignal(signum) for signum in both}
    out = tmp_path / "out"
    out.mkdir()
    code = run(["label", "--pairs", str(DEMO_PAIRS), "--out", str(out / "s.tsv"), "--model", str(tiny_bert)])
    err = capsys.readouterr().err
    said = {130: "transenc: interrupted", 143: "transenc: stopped (SIGTERM)"}[code] + cli.RESUME_FROM_KEPT
    assert err.startswith(said) and err.endswith(f" in {out / '.s.tsv.partial'}*)\n") and err.count("\n") == 1
    assert unraisable == [] and not any(writers.is_temporary(f.name) for f in out.iterdir())
    assert {signum: signal.getsignal(signum) for signum in both} == before


def test_a_stop_during_a_stuck_clean_up_ends_the_process():
    """A later stop is ignored while the first unwinds, but a clean-up that runs past STUCK_AFTER_S (a
    write to a stalled pipe or NFS mount) is stuck: a further Ctrl-C or kill then ends the process at
    once, as no kill -9 should be needed for."""
    import signal
    import textwrap

    code = textwrap.dedent("""
        import os, signal, time
        from transenc import cli
        cli.STUCK_AFTER_S = 2.0  # time enough for the next line on a loaded machine
        cli._catch_stop_signals()
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
        except cli.Stopped:
            os.kill(os.getpid(), signal.SIGTERM)  # at once: ignored
            print("unwinding", flush=True)
            time.sleep(2.5)  # stuck
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
            print("still there", flush=True)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert (proc.returncode, proc.stdout) == (-signal.SIGTERM, "unwinding\n"), proc.stderr


def test_under_nohup_sighup_stays_ignored(tmp_path, tiny_bert, monkeypatch):
    """`nohup transenc ...` ignores SIGHUP so that the run outlives the terminal: the command must
    not catch it and stop."""
    import signal

    from transenc import writers
    from transenc.bundled import DEMO_PAIRS

    during, real = [], writers.score_rows

    def writing(*args):
        during.append(signal.getsignal(signal.SIGHUP))
        return real(*args)

    monkeypatch.setattr(writers, "score_rows", writing)
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        assert run(["label", "--pairs", str(DEMO_PAIRS), "--out", str(tmp_path / "s.tsv"), "--model", str(tiny_bert)]) == 0
        assert during == [signal.SIG_IGN] and signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, previous)


def test_standard_input_and_pipes_read_as_files_do(tmp_path, tiny_bert, monkeypatch, capsys):
    """`mine --sentences -`, `label --pairs -` and a pipe (`--pairs <(...)`) give what the files give;
    label reads its pairs twice, so the stream is spooled once, and the spool is removed."""
    import io
    import os
    import tempfile
    import threading

    def stdin(data: bytes):
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))

    words = ["cat", "dog", "bird", "fish"]
    (tmp_path / "s.txt").write_text("".join(f"the {a} sees the {b}\n" for a in words for b in words))
    model = ["--model", str(tiny_bert)]
    assert run(["mine", "--sentences", str(tmp_path / "s.txt"), "--k", "2", "--out", str(tmp_path / "file.tsv")] + model) == 0
    stdin((tmp_path / "s.txt").read_bytes())
    assert run(["mine", "--sentences", "-", "--k", "2", "--out", str(tmp_path / "stdin.tsv")] + model) == 0
    pairs = (tmp_path / "file.tsv").read_bytes()
    assert (tmp_path / "stdin.tsv").read_bytes() == pairs
    spools = tmp_path / "tmp"
    spools.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spools))
    label = ["label"] + model  # bi mode: a first pass (the sentences) beside the scoring pass
    assert run(label + ["--pairs", str(tmp_path / "file.tsv"), "--out", str(tmp_path / "scores.tsv")]) == 0
    stdin(pairs)
    assert run(label + ["--pairs", "-", "--out", str(tmp_path / "scores-stdin.tsv")]) == 0
    fifo = tmp_path / "pairs.fifo"
    os.mkfifo(fifo)
    threading.Thread(target=fifo.write_bytes, args=(pairs,), daemon=True).start()
    assert run(label + ["--pairs", str(fifo), "--out", str(tmp_path / "scores-fifo.tsv")]) == 0
    want = (tmp_path / "scores.tsv").read_bytes()
    assert (tmp_path / "scores-stdin.tsv").read_bytes() == want == (tmp_path / "scores-fifo.tsv").read_bytes()
    scored = (tmp_path / "scores.tsv").read_bytes()  # its cosines as gold: eval reads them from standard input too
    assert run(["eval", "--data", str(tmp_path / "scores.tsv")] + model) == 0
    from_file = capsys.readouterr().out
    stdin(scored)
    assert run(["eval", "--data", "-"] + model) == 0
    assert capsys.readouterr().out == from_file.replace("scores\t", "stdin\t") and from_file.startswith("scores\t")
    threading.Thread(target=fifo.write_bytes, args=(scored,), daemon=True).start()
    assert run(["eval", "--data", str(fifo)] + model) == 0  # as <(zcat ...) gives: not named after /dev/fd/63
    assert capsys.readouterr().out == from_file.replace("scores\t", "stream\t")
    threading.Thread(target=fifo.write_bytes, args=(scored,), daemon=True).start()
    assert list(labeled_sets([str(fifo)])) == ["stream"]  # train's --dev
    stdin(b"a\tb\nbad line\n")  # a bad line: its error names standard input, and the spool goes all the same
    capsys.readouterr()
    assert run(label + ["--pairs", "-", "--out", str(tmp_path / "bad.tsv")]) == 2
    assert capsys.readouterr().err.startswith("transenc: error: -:2: expected at least 2 tab-separated fields")
    assert list(spools.iterdir()) == [] and not (tmp_path / "bad.tsv").exists()


@pytest.mark.slow
@pytest.mark.parametrize("corpus", ["demo-mix", "sts-b"])
def test_mine_on_real_sentences_agrees_with_faiss(corpus):
    """STS-B's 15,000 sentences, or demo_mix's 12,600 short ones (under 200 characters: the long ones
    would triple the encoding's 20 s), duplicates and near ties included."""
    import faiss
    import torch

    from transenc.mining import mine_pairs
    from transenc.models import BiEncoder

    pairs = corpora.demo_mix(20000) if corpus == "demo-mix" else corpora.sts_b()
    sentences = list(dict.fromkeys(s for pair in pairs for s in pair if corpus == "sts-b" or len(s) < 200))
    assert len(sentences) > 12000
    embeddings = BiEncoder.load(None, "cpu").encode(sentences)
    scores, ids = ops.cosine_topk(embeddings, embeddings, 5, exclude_self=True)
    unit = torch.nn.functional.normalize(embeddings, dim=1).numpy()
    index = faiss.IndexFlatIP(unit.shape[1])
    index.add(unit)
    f_scores, f_ids = index.search(unit, 6)
    differing = 0
    for i in range(len(sentences)):
        keep = f_ids[i] != i
        fs, fi = f_scores[i][keep][:5], f_ids[i][keep][:5]
        assert np.allclose(scores[i].numpy(), fs, atol=1e-5)  # the same neighbour scores
        if set(fi.tolist()) != set(ids[i].tolist()):
            differing += 1  # only where the 5th and 6th neighbours tie (duplicate sentences' embeddings)
            kth = scores[i, -1].item()
            assert all(abs(f_scores[i][keep][j] - kth) < 1e-5 for j in range(5) if fi[j] not in ids[i].tolist())
    assert differing <= 0.005 * len(sentences)
    pairs, _ = mine_pairs(embeddings, 5)
    expected = {(min(i, j), max(i, j)) for i, row in enumerate(ids.tolist()) for j in row}
    assert {tuple(p) for p in pairs.tolist()} == expected


def test_nul_byte_in_a_sentence_is_refused_with_file_and_line(tmp_path, capsys, tiny_bert):
    for name, content in (("bad.tsv", b"a\tb\nc\x00d\te\n"), ("bad.jsonl", b'{"sentence1": "a", "sentence2": "b"}\n'
                                                                      b'{"sentence1": "c\\u0000", "sentence2": "d"}\n')):
        (tmp_path / name).write_bytes(content)
        out = tmp_path / "out.tsv"
        assert run(["label", "--pairs", str(tmp_path / name), "--model", str(tiny_bert), "--out", str(out)]) == 2
        assert f"{name}:2: NUL byte in a sentence" in capsys.readouterr().err
        assert not out.exists()


def test_label_refuses_to_write_over_its_input(tmp_path, capsys, tiny_bert):
    pairs = tmp_path / "x.tsv"
    pairs.write_text("a\tb\n")
    (tmp_path / "link.tsv").symlink_to(pairs)
    for out in (pairs, tmp_path / "link.tsv", tmp_path / "." / "x.tsv"):
        assert run(["label", "--pairs", str(pairs), "--model", str(tiny_bert), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("transenc: error: --out") and str(pairs) in err and str(out) in err
        assert pairs.read_text() == "a\tb\n"


@pytest.mark.parametrize("command", ["label --pairs IN --out OUT", "mine --sentences IN --out OUT",
                                     "eval --data IN --json OUT"])
def test_an_output_that_is_a_folder_or_the_input_is_refused_before_any_work(tmp_path, capsys, tiny_bert, command):
    source = tmp_path / "in.tsv"
    source.write_text("a\tb\t1\nc\td\t2\ne\tf\t3\n")
    flag = command.split()[-2]
    for out in (tmp_path, tmp_path / "in.tsv"):
        argv = command.replace("IN", str(source)).replace("OUT", str(out)).split() + ["--model", str(tiny_bert)]
        assert run(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"transenc: error: {flag} {out} is ") and ("folder" in err or str(source) in err)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["in.tsv"] and source.read_text().startswith("a\tb")


@pytest.mark.parametrize("command", ["label --pairs IN", "mine --sentences IN", "train --pairs IN --out OUT",
                                     "label --pairs IN --out OUT", "mine --sentences IN --out OUT"])
def test_a_loop_of_links_as_input_is_one_line(command, tmp_path, capsys, tiny_bert):
    """Path.resolve raises RuntimeError on a loop of symbolic links: mine and train ended in a traceback."""
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    argv = command.replace("IN", str(tmp_path / "a")).replace("OUT", str(tmp_path / "run")).split()
    assert run(argv + ["--model", str(tiny_bert)]) == 2
    assert capsys.readouterr().err == f"transenc: error: {tmp_path / 'a'}: a symbolic link to no file (or a loop of links)\n"


def test_eval_json_onto_a_file_of_the_data_folder_is_refused(tmp_path, capsys, tiny_bert):
    """`eval --data FOLDER --json FOLDER/sts-dev.csv`: the set it scores would be replaced by its scores."""
    data = tmp_path / "sts"
    (data / "STS12").mkdir(parents=True)
    dev = data / "sts-dev.csv"
    dev.write_text("".join(f"g\tf\t2012\t{i}\t{i % 5}.0\ts{i} a\ts{i} b\n" for i in range(6)))
    gold = data / "STS12" / "STS.gs.x.txt"
    gold.write_text("1\n2\n")
    (data / "STS12" / "STS.input.x.txt").write_text("a b\tc d\ne f\tg h\n")
    for out in (dev, gold):
        before = out.read_bytes()
        assert run(["eval", "--data", str(data), "--json", str(out), "--model", str(tiny_bert)]) == 2
        assert capsys.readouterr().err.startswith(f"transenc: error: --json {out} is the input file {out}; ")
        assert out.read_bytes() == before


@pytest.mark.parametrize("state", [b'{"config": {', b"\xff\xfe", b"[]", b'{"config": {}, "done": 3, "metrics": {}}'])
def test_resume_from_a_damaged_state_file_exits_2(tmp_path, capsys, tiny_bert, state):
    (tmp_path / "p.tsv").write_text("a\tb\nc\td\n")
    out = tmp_path / "run"
    out.mkdir()
    (out / "state.json").write_bytes(state)
    assert run(["train", "--pairs", str(tmp_path / "p.tsv"), "--model", str(tiny_bert), "--out", str(out),
                "--device", "cpu", "--resume"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"transenc: error: {out / 'state.json'}: cannot resume") and err.count("\n") == 1
    assert (out / "state.json").read_bytes() == state


def test_label_into_a_pipe_closed_early_stops_quietly(tmp_path, tiny_bert):
    """`transenc label ... | head -1`: no traceback, and the shell's exit code for a closed pipe."""
    pairs = tmp_path / "p.tsv"  # its scores are ~3x a pipe's 64 KiB buffer, written a chunk (~7 KiB) at a time:
    # the writer meets the closed end (one write of it all may land whole before the reader leaves)
    pairs.write_text("".join(f"sentence number {i} of the file\tanother sentence, number {i + 1}\n" for i in range(3000)),
                     encoding="utf-8")
    proc = subprocess.Popen([sys.executable, "-m", "transenc", "label", "--pairs", str(pairs), "--model", str(tiny_bert),
                             "--device", "cpu", "--chunk-pairs", "100"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = proc.stdout.readline()
    proc.stdout.close()
    errors = proc.stderr.read().decode()
    assert proc.wait(timeout=300) == 141
    assert first.startswith(b"sentence number 0 of the file\t") and "Traceback" not in errors


def test_label_under_python_u_into_a_pipe_closed_early_is_not_called_done(tmp_path, tiny_bert):
    """Under python -u (PYTHONUNBUFFERED) standard output's bytes are a raw file: one large write into
    a pipe whose reader leaves takes what fits and returns, with no error. The rows past it must not
    be dropped silently with `scored N pairs` and exit 0: the closed pipe's 141, as without -u."""
    pairs = tmp_path / "p.tsv"  # one chunk, whose scores (~160 KiB) are one write of ~2.5 pipe buffers
    pairs.write_text("".join(f"sentence number {i} of the file\tanother sentence, number {i + 1}\n" for i in range(3000)),
                     encoding="utf-8")
    proc = subprocess.Popen([sys.executable, "-m", "transenc", "label", "--pairs", str(pairs), "--model", str(tiny_bert),
                             "--device", "cpu"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    first = proc.stdout.readline()
    proc.stdout.close()
    errors = proc.stderr.read().decode()
    assert proc.wait(timeout=300) == 141, errors
    assert first.startswith(b"sentence number 0 of the file\t") and "scored" not in errors and "Traceback" not in errors


@pytest.mark.parametrize("argv, message", [
    (["train", "--cycles", "0"], "--cycles must be a whole number of at least 1, got 0"),
    (["train", "--cycles", "-1"], "--cycles must be a whole number of at least 1, got -1"),
    (["train", "--max-pairs", "0"], "--max-pairs must be a whole number of at least 1, got 0"),
    (["train", "--out", "FILE"], "--out FILE is a file; a run is written to a folder"),
    (["train", "--out", ""], "--out is empty; name the run's folder"),  # an unset $OUT: not the current folder
    (["train", "--model", ""], "a model name is empty (--model or --teacher ''); name a model folder or a hub name"),
    (["label", "--pairs", "DEMO", "--out", ""], "--out is empty; name the file to write"),
    (["label", "--pairs", "DEMO", "--out", "new.tsv/"], "--out new.tsv/ is a folder; name the file to write"),
    (["label", "--pairs", "DEMO", "--out", "", "--resume"], "--out is empty; name the file to write"),
    (["mine", "--sentences", "DEMO", "--out", ""], "--out is empty; name the file to write"),
    (["eval", "--data", "DEMO", "--json", ""], "--json is empty; name the file to write"),
    (["train", "--out", "FILE/run"], "--out FILE/run: FILE is a file, not a folder"),
    (["label", "--pairs", "DEMO", "--out", "FILE/a/scores.tsv"], "--out FILE/a/scores.tsv: FILE is a file, not a folder"),
    (["mine", "--sentences", "DEMO", "--out", "FILE/mined.tsv"], "--out FILE/mined.tsv: FILE is a file, not a folder"),
    (["eval", "--data", "DEMO", "--json", "FILE/r.json"], "--json FILE/r.json: FILE is a file, not a folder"),
    (["train", "--dev", "sts="], "sts=: a name but no file after the '='"),
    (["train", "--dev", "=FILE"], "=FILE: a file but no name before the '='"),
    (["label", "--pairs", "DEMO", "--device", "tpu"], "--device tpu: not a device name (cpu, cuda, cuda:1, ...)"),
    (["train", "--device", "cuda:99"], "--device cuda:99: this machine has "),  # none, or fewer than 100
    (["train", "--max-length", "4"], "--max-length 4: at least 8 tokens"),
    (["train", "--max-length", "64,long"], "--max-length 64,long: expected a number of tokens, or BI,CROSS"),
    (["train", "--max-length", "1,2,3"], "--max-length 1,2,3: expected a number of tokens, or BI,CROSS"),
    (["train", "--max-length", "128,9999"], "--max-length 128,9999: "),  # names the model and what it reads
])
def test_bad_settings_exit_2_before_any_work(tmp_path, capsys, argv, message):
    from transenc.bundled import DEMO_PAIRS

    (tmp_path / "file").write_text("not a folder")
    argv = [str(DEMO_PAIRS) if a == "DEMO" else a for a in argv]
    argv += [] if "--out" in argv or argv[0] == "eval" else ["--out", str(tmp_path / "out")]
    argv = [a.replace("FILE", str(tmp_path / "file")) for a in argv]
    assert run(argv) == 2
    assert f"transenc: error: {message.replace('FILE', str(tmp_path / 'file'))}" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["file"]


@pytest.mark.parametrize("argv, option, values, rule", [
    (["label", "--pairs", "x.tsv"], "--batch-size", ["0", "-3", "many", "2.5"], "must be a whole number of at least 1"),
    (["mine", "--sentences", "x.txt"], "--k", ["0", "-3", "many", "2.5"], "must be a whole number of at least 1"),
    # past int32's pair indices; 2^63 overflowed the engine's counts (a TypeError)
    (["label", "--pairs", "x.tsv"], "--chunk-pairs", [str(2**31), str(2**63)], "must be at most 2,147,483,647"),
    (["mine", "--sentences", "x.txt"], "--k", [str(2**31)], "must be at most 2,147,483,647"),
    (["mine", "--sentences", "x.txt"], "--min-score", ["nan", "1.01", "-2", "high"], "must be a cosine, from -1 to 1"),
])
def test_bad_numbers_exit_2_naming_the_option(capsys, argv, option, values, rule):
    for value in values:
        with pytest.raises(SystemExit) as e:
            cli.main([*argv, option, value])
        # one line, as every refusal (argparse's own would print the usage block first)
        assert e.value.code == 2 and capsys.readouterr().err == \
            f"transenc: error: argument {option}: {rule}, got {value} (see transenc {argv[0]} --help)\n"


@pytest.mark.parametrize("argv, said", [
    ([], "the following arguments are required: {label,eval,mine,train,report,data} (see transenc --help)"),
    (["lab"], "invalid choice: 'lab' (choose from 'label', 'eval', 'mine', 'train', 'report', 'data') (see transenc --help)"),
    (["label"], "the following arguments are required: --pairs (see transenc label --help)"),
    (["label", "--pairs", "x.tsv", "--k", "3"], "unrecognized arguments: --k 3 (see transenc label --help)"),
])
def test_a_bad_command_line_is_one_line_pointing_to_the_help_that_lists_its_options(capsys, argv, said):
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.startswith("transenc: error: ") and err.endswith(said + "\n") and err.count("\n") == 1


def test_help_and_version_exit_0(capsys):
    import transenc

    for argv, said in ((["--help"], "usage: transenc [-h] [--version] {label,eval,mine,train,report,data}"),
                       (["mine", "--help"], "usage: transenc mine [-h] --sentences SENTENCES"),
                       (["--version"], f"transenc {transenc.__version__}\n")):
        with pytest.raises(SystemExit) as e:
            cli.main(argv)
        assert e.value.code == 0 and capsys.readouterr().out.startswith(said)


def test_cross_mode_without_a_pair_head_and_bi_mode_on_a_cross_encoder_warn(tmp_path, tiny_bert, capsys):
    (tmp_path / "p.tsv").write_text("a b\tc d\ne f\tg h\n")
    argv = ["label", "--pairs", str(tmp_path / "p.tsv"), "--mode", "cross", "--out", str(tmp_path / "s.tsv")]
    assert run(argv + ["--model", str(tiny_bert)]) == 0  # a plain encoder: scores from a random head
    assert f"transenc: warning: {tiny_bert} has no cross-encoder head" in capsys.readouterr().err
    CrossEncoder.load(tiny_bert, "cpu").save(tmp_path / "cross")  # saved with its head: a cross-encoder
    assert run(argv + ["--model", str(tmp_path / "cross")]) == 0
    assert "warning" not in capsys.readouterr().err
    bi = [a for a in argv if a not in ("--mode", "cross")]  # and the other way round
    assert run(bi + ["--model", str(tmp_path / "cross")]) == 0
    assert f"transenc: warning: {tmp_path / 'cross'} is a cross-encoder (it has a pair head)" in capsys.readouterr().err
    assert run(bi + ["--model", str(tiny_bert)]) == 0
    assert "warning" not in capsys.readouterr().err
    (tmp_path / "s.txt").write_text("a b\nc d\ne f\n")  # mine embeds with it too
    assert run(["mine", "--sentences", str(tmp_path / "s.txt"), "--k", "1", "--model", str(tmp_path / "cross")]) == 0
    assert f"transenc: warning: {tmp_path / 'cross'} is a cross-encoder (it has a pair head)" in capsys.readouterr().err


def test_a_stopped_command_offers_resume_only_where_it_kept_work(tmp_path):
    """A pairs file kept work beside --out where any was complete (its `.NAME.partial*` files stay);
    standard input, a pipe (`<(zcat …)`) or standard output kept none."""
    from types import SimpleNamespace

    (tmp_path / "p.tsv").write_text("a\tb\n")
    os.mkfifo(tmp_path / "pipe")
    hint = "; the same command with --resume goes on from the work kept"
    out = str(tmp_path / "s[1].tsv")  # a glob's characters in the name match themselves
    label = lambda pairs, out=out: SimpleNamespace(command="label", pairs=pairs, out=out)  # noqa: E731
    assert cli._resume_hint(label(str(tmp_path / "p.tsv"))) == "; no work was complete enough to keep"
    (tmp_path / ".s1.tsv.partial.json").write_text("{}")  # another output's work
    (tmp_path / ".s[1].tsv.partial.lock").write_text("")  # a claim a killed run left: no work
    assert cli._resume_hint(label(str(tmp_path / "p.tsv"))) == "; no work was complete enough to keep"
    (tmp_path / ".s[1].tsv.partial.json").write_text("{}")
    kept = f" (2 bytes in {tmp_path / '.s[1].tsv.partial'}*)"  # hidden, and up to gigabytes: where and how much
    assert cli._resume_hint(label(str(tmp_path / "p.tsv"))) == hint + kept
    (tmp_path / ".s[1].tsv.partial").mkdir()  # mine's folder
    (tmp_path / ".s[1].tsv.partial" / "embeddings.npy").write_bytes(bytes(1500))
    assert cli._resume_hint(label(str(tmp_path / "p.tsv"))).endswith(f" (1.5 kB in {tmp_path / '.s[1].tsv.partial'}*)")
    assert cli._resume_hint(SimpleNamespace(command="train", out="runs/x")) == hint
    for stream in ("-", str(tmp_path / "pipe")):
        assert cli._resume_hint(label(stream)) == ""
    assert cli._resume_hint(label(str(tmp_path / "p.tsv"), out=None)) == ""


def test_ctrl_c_while_the_parser_loads_is_one_line(monkeypatch, capsys):
    """Ctrl-C in a command's first tenth of a second, while build_parser's imports load: no traceback."""
    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "build_parser", interrupted)
    assert cli.main(["label", "--help"]) == 130
    assert capsys.readouterr().err == "transenc: interrupted\n"
