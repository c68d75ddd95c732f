"""`transenc label --resume`: a stopped label keeps its complete chunks, and a rerun with the same
pairs and settings scores only the rest and ends with the bytes an unstopped run writes."""
import errno
import os
import shutil

import pytest

from transenc import cli, ops, writers
from transenc.bundled import DEMO_PAIRS

CHUNK = 8


@pytest.fixture
def job(tmp_path, tiny_bert, monkeypatch):
    monkeypatch.setattr(writers, "RECORD_EVERY_S", 0.0)  # a record after every chunk
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("\n".join(DEMO_PAIRS.read_text().splitlines()[:50]) + "\n")  # 7 chunks, the last of 2

    def argv(out, *more):
        return ["label", "--pairs", str(pairs), "--out", str(out), "--model", str(tiny_bert), "--device", "cpu",
                "--precision", "fp32", "--chunk-pairs", str(CHUNK), *more]

    assert cli.main(argv(tmp_path / "whole.tsv")) == 0
    return pairs, argv, (tmp_path / "whole.tsv").read_bytes()


def stop_at_chunk(monkeypatch, n: int, error: BaseException) -> None:
    """The n-th chunk's rows raise `error` before they are written (chunks 1 .. n-1 are written)."""
    real, calls = writers.score_rows, []

    def rows(*args):
        calls.append(1)
        if len(calls) == n:
            raise error
        return real(*args)

    monkeypatch.setattr(writers, "score_rows", rows)


def cosine_calls(monkeypatch) -> list:
    calls, real = [], ops.pair_cosine_indexed
    monkeypatch.setattr(ops, "pair_cosine_indexed", lambda *a: calls.append(1) or real(*a))
    return calls


def test_a_stopped_label_resumes_with_the_rest_alone(tmp_path, job, monkeypatch, capsys):
    pairs, argv, whole = job
    out = tmp_path / "out.tsv"
    with monkeypatch.context() as m:
        stop_at_chunk(m, 4, KeyboardInterrupt())
        assert cli.main(argv(out)) == 130
    assert not out.exists() and (tmp_path / ".out.tsv.partial").read_bytes() == b"".join(whole.splitlines(True)[:24])
    kept = writers.size_for_people(sum(f.stat().st_size for f in tmp_path.glob(".out.tsv.partial*")))
    assert capsys.readouterr().err.endswith("transenc: interrupted; the same command with --resume goes on from the "
                                            f"work kept ({kept} in {tmp_path / '.out.tsv.partial'}*)\n")
    calls = cosine_calls(monkeypatch)
    partial = tmp_path / ".out.tsv.partial"  # bytes past the recorded rows (a write cut short) are dropped
    partial.write_bytes(partial.read_bytes() + b"half a row\n" * len(whole))
    assert cli.main(argv(out, "--resume")) == 0
    assert out.read_bytes() == whole and len(calls) == 7 - 3  # the three complete chunks are not scored again
    err = capsys.readouterr().err
    assert "resuming " + str(out) + " after its first 24 scores" in err and "wrote 50 scores" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.tsv", "pairs.tsv", "whole.tsv"]


def test_a_label_stopped_in_its_first_chunk_says_nothing_was_kept(tmp_path, job, monkeypatch, capsys):
    """A cross-encoder's label (a bi-encoder's keeps the embeddings it encoded before any row)."""
    _, argv, _ = job
    stop_at_chunk(monkeypatch, 1, KeyboardInterrupt())
    assert cli.main(argv(tmp_path / "out.tsv", "--mode", "cross")) == 130
    assert capsys.readouterr().err.endswith("transenc: interrupted; no work was complete enough to keep\n")
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".out.tsv")]


def test_a_stopped_npy_output_resumes_to_the_same_bytes(tmp_path, job, monkeypatch):
    pairs, argv, _ = job
    whole, out = tmp_path / "whole.npy", tmp_path / "out.npy"
    assert cli.main(argv(whole)) == 0
    with monkeypatch.context() as m:
        stop_at_chunk(m, 4, KeyboardInterrupt())
        assert cli.main(argv(out)) == 130
    calls = cosine_calls(monkeypatch)
    assert cli.main(argv(out, "--resume")) == 0
    assert out.read_bytes() == whole.read_bytes() and len(calls) == 7 - 3  # the header is kept, not written twice


@pytest.mark.parametrize("change", ["chunk-pairs", "pairs file", "no --resume"])
def test_a_label_of_other_settings_starts_over(change, tmp_path, job, monkeypatch, capsys):
    pairs, argv, whole = job
    out = tmp_path / "out.tsv"
    with monkeypatch.context() as m:
        stop_at_chunk(m, 3, KeyboardInterrupt())
        assert cli.main(argv(out)) == 130
    more = ["--resume"]
    if change == "chunk-pairs":
        more += ["--chunk-pairs", "10"]
    elif change == "pairs file":
        os.utime(pairs, ns=(0, 0))  # as an edited file: another modification time
    else:
        more = []
    calls = cosine_calls(monkeypatch)
    capsys.readouterr()
    assert cli.main(argv(out, *more)) == 0
    assert out.read_bytes() == whole and len(calls) == (5 if change == "chunk-pairs" else 7)
    err = capsys.readouterr().err
    # another --chunk-pairs starts the rows over but takes up the embeddings, which do not depend on it
    assert ("no stopped run of these pairs and settings to resume" in err) == (change == "pairs file")
    assert ("the embeddings of 75 sentences kept" in err) == (change == "chunk-pairs")
    assert not (tmp_path / ".out.tsv.partial").exists() and not (tmp_path / ".out.tsv.partial.json").exists()


def test_other_weights_under_the_same_model_path_start_over(tmp_path, job, tiny_bert, monkeypatch, capsys):
    """A model folder given new weights between the stop and the --resume: neither the kept rows nor
    the kept embeddings of the old weights are taken up."""
    import torch
    from transformers import BertConfig, BertModel

    _, argv, _ = job
    model = tmp_path / "model"
    shutil.copytree(tiny_bert, model)

    def with_model(out, *more):
        return [*argv(out, *more), "--model", str(model)]  # the last --model is the one taken

    with monkeypatch.context() as m:
        stop_at_chunk(m, 4, KeyboardInterrupt())
        assert cli.main(with_model(tmp_path / "out.tsv")) == 130
    torch.manual_seed(1)
    BertModel(BertConfig.from_pretrained(model)).save_pretrained(model)  # the same config, other weights
    assert cli.main(with_model(tmp_path / "new.tsv")) == 0
    capsys.readouterr()
    assert cli.main(with_model(tmp_path / "out.tsv", "--resume")) == 0
    assert (tmp_path / "out.tsv").read_bytes() == (tmp_path / "new.tsv").read_bytes()
    err = capsys.readouterr().err
    assert "no stopped run of these pairs and settings to resume" in err and "embeddings" not in err


def test_an_output_inside_the_model_folder_resumes(tmp_path, job, tiny_bert, monkeypatch, capsys):
    """The work kept beside an --out in the model's own folder is no change of the model."""
    _, argv, whole = job
    model = tmp_path / "model"
    shutil.copytree(tiny_bert, model)
    out = model / "scores.tsv"
    with monkeypatch.context() as m:
        stop_at_chunk(m, 4, KeyboardInterrupt())
        assert cli.main([*argv(out), "--model", str(model)]) == 130
    capsys.readouterr()
    assert cli.main([*argv(out, "--resume"), "--model", str(model)]) == 0
    assert "after its first 24 scores" in capsys.readouterr().err and out.read_bytes() == whole


def test_a_label_removes_the_half_written_files_a_killed_one_left(tmp_path, job, monkeypatch):
    """A SIGKILL while a record of kept work, or the output, is written leaves its temporary
    (`.NAME.XXXXXXXX.tmp`) beside the output: the next label onto that output removes them, under
    its claim. Another output's, and the user's own files, stay."""
    _, argv, whole = job
    out = tmp_path / "out.tsv"
    with monkeypatch.context() as m:
        stop_at_chunk(m, 4, KeyboardInterrupt())
        assert cli.main(argv(out)) == 130
    stale = ["..out.tsv.partial.json.k3j9x0ab.tmp", "..out.tsv.partial.embeddings.npy.json.q1w2_3r4.tmp",
             ".out.tsv.a1b2c3d4.tmp"]
    others = [".out.tsv.gz.a1b2c3d4.tmp", "..other.tsv.partial.json.a1b2c3d4.tmp", ".out.tsv.notes.tmp",
              "out.tsv.a1b2c3d4.tmp"]
    for name in stale + others:
        (tmp_path / name).write_text("half")
    assert cli.main(argv(out, "--resume")) == 0 and out.read_bytes() == whole
    assert [name for name in stale + others if (tmp_path / name).exists()] == others


def test_an_output_folder_removed_under_a_label_offers_no_resume(tmp_path, job, monkeypatch, capsys):
    """Its kept work went with the folder: the error says what failed, and not to go on from it."""
    _, argv, _ = job
    out = tmp_path / "gone" / "out.tsv"
    real, calls = writers.write_record, []

    def record(path, *args, **kwargs):
        calls.append(path)
        if path.name == ".out.tsv.partial.json" and calls.count(path) == 3:  # two chunks are kept
            shutil.rmtree(out.parent)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(writers, "write_record", record)
    assert cli.main(argv(out)) == 2
    assert capsys.readouterr().err == f"transenc: error: cannot write {out}: No such file or directory\n"
    assert not out.parent.exists()  # not made again, to hold a record of rows that are gone


class FillsUp:
    """The partial output's file on a disk that fills up at its n-th write."""

    def __init__(self, f, n: int):
        self.f, self.n = f, n

    def write(self, data):
        self.n -= 1
        if self.n == 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return self.f.write(data)

    def __getattr__(self, name):
        return getattr(self.f, name)


def test_a_full_disk_keeps_the_complete_chunks_and_says_how_to_go_on(tmp_path, job, monkeypatch, capsys):
    pairs, argv, whole = job
    out = tmp_path / "out.tsv"
    with monkeypatch.context() as m:
        m.setattr(writers, "open", lambda file, *a, **kw: FillsUp(open(file, *a, **kw), 5)
                  if str(file).endswith(".partial") else open(file, *a, **kw), raising=False)
        assert cli.main(argv(out)) == 2
    assert capsys.readouterr().err.endswith(f"transenc: error: cannot write {out}: No space left on device; "
                                            f"{writers.KEPT_WORK_HINT}\n")
    assert (tmp_path / ".out.tsv.partial").read_bytes() == b"".join(whole.splitlines(True)[:32])
    assert cli.main(argv(out, "--resume")) == 0 and out.read_bytes() == whole


def test_resume_needs_an_output_file_and_a_pairs_file(tiny_bert, capsys):
    assert cli.main(["label", "--pairs", str(DEMO_PAIRS), "--resume", "--model", str(tiny_bert)]) == 2
    assert "--resume needs --out and a --pairs file" in capsys.readouterr().err
    assert cli.main(["label", "--pairs", "-", "--out", "x.tsv", "--resume", "--model", str(tiny_bert)]) == 2
    assert "--resume needs --out and a --pairs file" in capsys.readouterr().err


def test_a_resume_onto_a_finished_output_says_that_it_is_replaced(tmp_path, job, capsys):
    """A job run again with --resume once it is done starts over (only a stopped run's work is kept,
    and a finished output records no settings), and says so: the file there is not taken up."""
    pairs, argv, whole = job
    capsys.readouterr()
    out = tmp_path / "new.tsv"
    assert cli.main(argv(out, "--resume")) == 0
    assert "resume; starting\n" in capsys.readouterr().err  # nothing there yet: nothing to replace
    assert cli.main(argv(out, "--resume")) == 0
    assert "resume; starting: the file already there is replaced when this run ends" in capsys.readouterr().err
    assert out.read_bytes() == whole
