"""`transenc mine --resume`: a stopped mine keeps its embeddings and the neighbour lists of its
finished blocks of queries, and a rerun with the same sentences and settings encodes nothing and
searches only the rest, to the bytes an unstopped run writes."""
import errno
import random

import pytest

from transenc import cli, mine_checkpoint, mining, ops, writers
from transenc.errors import OutputError
from test_mine import FakeBiEncoder, args_for, fake_models  # noqa: F401 (a fixture)

BLOCK = 8


@pytest.fixture
def job(tmp_path, fake_models, monkeypatch):  # noqa: F811
    monkeypatch.setattr(mining, "QUERY_BLOCK", BLOCK)
    rng = random.Random(7)
    words = {"".join(rng.choice("abcdefghij") for _ in range(6)) for _ in range(60)}
    src = tmp_path / "sentences.txt"
    src.write_text("\n".join(sorted(words)) + "\n")  # 60 sentences: 8 blocks, the last of 4
    cli.cmd_mine(args_for(src, tmp_path / "whole.tsv", k=3))
    FakeBiEncoder.calls.clear()
    return src, (tmp_path / "whole.tsv").read_bytes()


def stop_at_block(monkeypatch, n: int, error: BaseException) -> list:
    """The n-th top-k call raises `error` (blocks 1 .. n-1 are found); returns the calls made."""
    real, calls = ops.cosine_topk, []

    def topk(*args, **kwargs):
        calls.append(kwargs["first_query_id"])
        if len(calls) == n:
            raise error
        return real(*args, **kwargs)

    monkeypatch.setattr(ops, "cosine_topk", topk)
    return calls


def interrupted_in_block_4(src, out, monkeypatch) -> None:
    """A mine of `src` into `out`, interrupted in its fourth block: three blocks found and kept."""
    with monkeypatch.context() as m:
        stop_at_block(m, 4, KeyboardInterrupt())
        with pytest.raises(KeyboardInterrupt):
            cli.cmd_mine(args_for(src, out, k=3))
    FakeBiEncoder.calls.clear()


def test_a_stopped_mine_resumes_with_the_rest_alone(tmp_path, job, monkeypatch, capsys):
    src, whole = job
    out = tmp_path / "out.tsv"
    interrupted_in_block_4(src, out, monkeypatch)
    kept = tmp_path / ".out.tsv.partial"
    assert not out.exists() and sorted(p.name for p in kept.iterdir()) == [
        "embeddings.npy", "embeddings.npy.json", "ids.npy", "record.json", "scores.npy"]
    capsys.readouterr()
    calls = stop_at_block(monkeypatch, 0, None)  # never raises: counts the calls
    cli.cmd_mine(args_for(src, out, k=3, resume=True))
    assert out.read_bytes() == whole
    assert not FakeBiEncoder.calls and calls == [24, 32, 40, 48, 56]  # nothing encoded; the 3 blocks found not searched
    assert f"resuming {out}: the embeddings of 60 sentences and the neighbours of 24 kept" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.tsv", "sentences.txt", "whole.tsv"]


def test_a_full_disk_keeps_the_blocks_found_and_says_how_to_go_on(tmp_path, job, monkeypatch):
    src, whole = job
    out = tmp_path / "out.tsv"
    real, records = mine_checkpoint.write_record, []

    def write_record(*args, **state):
        records.append(1)
        if len(records) == 3:  # blocks 1 and 2 are recorded: the third block's record fails
            raise OSError(errno.ENOSPC, "No space left on device")
        real(*args, **state)

    with monkeypatch.context() as m:
        m.setattr(mine_checkpoint, "write_record", write_record)
        with pytest.raises(OutputError) as err:
            cli.cmd_mine(args_for(src, out, k=3))
    assert str(err.value.path) == str(out) and "No space left on device" in str(err.value)
    assert str(err.value).endswith(f"; {writers.KEPT_WORK_HINT}")
    calls = stop_at_block(monkeypatch, 0, None)
    cli.cmd_mine(args_for(src, out, k=3, resume=True))
    assert out.read_bytes() == whole and calls[0] == 16


@pytest.mark.parametrize("full_at", ["scores.npy", "ids.npy"])  # the first, or the second (twice as big)
def test_neighbour_lists_that_do_not_fit_leave_no_file_of_their_size(tmp_path, job, monkeypatch, full_at):
    """The lists' files are allocated whole before the search: on a disk without room for them, the
    blocks allocated until it was full go too, and a first file that fit (they were gigabytes, for
    good, beside the kept embeddings)."""
    import os

    src, whole = job
    out = tmp_path / "out.tsv"
    real = os.posix_fallocate

    def full_for_lists(fd, offset, length):
        if os.readlink(f"/proc/self/fd/{fd}").endswith(full_at):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd, offset, length)

    with monkeypatch.context() as m:
        m.setattr(os, "posix_fallocate", full_for_lists)
        with pytest.raises(OutputError, match="No space left on device"):
            cli.cmd_mine(args_for(src, out, k=3))
    assert sorted(p.name for p in (tmp_path / ".out.tsv.partial").iterdir()) == ["embeddings.npy", "embeddings.npy.json"]
    cli.cmd_mine(args_for(src, out, k=3, resume=True))
    assert out.read_bytes() == whole


def test_stopped_while_encoding_leaves_nothing(tmp_path, job, monkeypatch):
    src, _ = job
    out = tmp_path / "out.tsv"
    monkeypatch.setattr(FakeBiEncoder, "encode", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        cli.cmd_mine(args_for(src, out, k=3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sentences.txt", "whole.tsv"]


@pytest.mark.parametrize("change", ["k", "touched", "no --resume"])
def test_other_settings_start_over(tmp_path, job, monkeypatch, capsys, change):
    src, whole = job
    out = tmp_path / "out.tsv"
    interrupted_in_block_4(src, out, monkeypatch)
    capsys.readouterr()
    if change == "touched":
        src.write_text(src.read_text() + "zzzzzz\n")
    k = 4 if change == "k" else 3
    cli.cmd_mine(args_for(src, out, k=k, resume=change != "no --resume"))
    assert len(FakeBiEncoder.calls) == 1  # encoded again
    if change == "no --resume":
        assert out.read_bytes() == whole
    else:
        assert "no stopped run of these sentences and settings to resume; starting" in capsys.readouterr().err
    assert not (tmp_path / ".out.tsv.partial").exists()


@pytest.mark.parametrize("where", ["no --out", "standard input"])
def test_resume_refusals(tmp_path, where, capsys):
    src = tmp_path / "s.txt"
    src.write_text("a\nb\n")
    argv = ["mine", "--sentences", "-" if where == "standard input" else str(src), "--resume"]
    argv += ["--out", str(tmp_path / "out.tsv")] if where == "standard input" else []
    assert cli.main(argv) == 2
    assert "--resume needs --out and a --sentences file" in capsys.readouterr().err
