"""One transenc at a time per output (transenc.claims): a second label, mine or train onto the same
output is refused at once and leaves the first one's work as it was. A flock is held per open file,
so a claim held here, in the test's process, refuses a command run in the same process as it would
refuse one in another."""
import errno
import os

import pytest

from transenc import claims, cli, models
from transenc.bundled import DEMO_PAIRS
from transenc.errors import TransencError
from transenc.writers import partial_path

pytestmark = pytest.mark.skipif(claims.fcntl is None, reason="no flock here")


def test_a_second_claim_is_refused_and_the_lock_file_goes_with_the_first(tmp_path):
    lock = tmp_path / ".out.partial.lock"
    with claims.claimed(lock, "busy"):
        assert lock.is_file()
        with pytest.raises(TransencError, match="^busy$"), claims.claimed(lock, "busy"):
            pass
        assert lock.is_file()  # the refused claimant removes nothing
    assert not lock.exists()
    with claims.claimed(lock, "busy"):  # free again
        pass


def test_a_folder_is_claimed_and_kept(tmp_path):
    with claims.claimed(tmp_path, "busy"):
        with pytest.raises(TransencError), claims.claimed(tmp_path, "busy"):
            pass
    assert tmp_path.is_dir()


def test_a_lock_file_removed_by_its_holder_as_it_is_taken_is_claimed_anew(tmp_path, monkeypatch):
    """The holder ends, removing its lock file, between this claimant's open and its flock: the
    claimant holds a file no longer there, and must claim the path anew, or two would hold it."""
    lock, real, calls = tmp_path / "x.lock", claims.fcntl.flock, []

    def flock(fd, operation):
        calls.append(fd)
        if len(calls) == 1:
            lock.unlink()
        return real(fd, operation)

    monkeypatch.setattr(claims.fcntl, "flock", flock)
    with claims.claimed(lock, "busy"):
        assert len(calls) == 2 and lock.is_file()
        monkeypatch.setattr(claims.fcntl, "flock", real)
        with pytest.raises(TransencError), claims.claimed(lock, "busy"):
            pass


def test_without_locks_on_the_filesystem_the_work_goes_on_unclaimed(tmp_path, monkeypatch):
    def no_locks(fd, operation):
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(claims.fcntl, "flock", no_locks)
    ran = []
    with claims.claimed(tmp_path / "x.lock", "busy"):
        ran.append(True)
    assert ran and not (tmp_path / "x.lock").exists()


@pytest.mark.parametrize("verb", ["label", "mine"])
def test_a_second_label_or_mine_onto_the_same_out_is_refused_and_touches_nothing(verb, tmp_path, tiny_bert, capsys,
                                                                                 monkeypatch):
    out = tmp_path / "out.tsv"
    source = tmp_path / "in.txt"
    if verb == "label":
        source.write_text("\n".join(DEMO_PAIRS.read_text().splitlines()[:8]) + "\n")
    else:
        source.write_text("".join(f"sentence {i}\n" for i in range(12)))
    kept = partial_path(out)  # the first run's work so far, as it would be on the disk
    (kept.mkdir() if verb == "mine" else kept.write_bytes(b"rows so far"))
    before = sorted(p.name for p in tmp_path.iterdir())
    argv = [verb, "--pairs" if verb == "label" else "--sentences", str(source), "--out", str(out),
            "--model", str(tiny_bert), "--device", "cpu", "--precision", "fp32"]
    real_load, loads = models._load_model, []
    monkeypatch.setattr(models, "_load_model", lambda *a: loads.append(a) or real_load(*a))
    with claims.claimed(partial_path(out, ".lock"), "held by the first run"):
        assert cli.main(argv) == 2
    assert capsys.readouterr().err == (f"transenc: error: {out}: another transenc is writing it now; let that one "
                                       "end (or stop it), or choose another --out\n")
    assert not loads  # refused before any model loads
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(set(before) - {partial_path(out, ".lock").name})
    assert kept.is_dir() if verb == "mine" else kept.read_bytes() == b"rows so far"
    assert cli.main(argv) == 0 and out.is_file() and loads  # once the first has ended


@pytest.mark.parametrize("verb", ["label", "mine"])
def test_a_writer_of_standard_input_claims_its_out_too(verb, tmp_path, tiny_bert, capsys, monkeypatch):
    """A label or mine of a stream keeps no work, but writes `.OUT.XXXXXXXX.tmp` beside --out as it
    goes: a second writer of that output stops before its sweep of killed runs' temporaries could
    remove the live one (the first would then fail at its last rename, its work lost)."""
    import io
    import sys

    data = ("\n".join(DEMO_PAIRS.read_text().splitlines()[:8]) if verb == "label" else
            "".join(f"sentence {i}\n" for i in range(12))).encode()
    out, live = tmp_path / "out.tsv", tmp_path / ".out.tsv.a1b2c3d4.tmp"
    live.write_text("the first run's rows")
    argv = [verb, "--pairs" if verb == "label" else "--sentences", "-", "--out", str(out),
            "--model", str(tiny_bert), "--device", "cpu", "--precision", "fp32"]
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    with claims.claimed(partial_path(out, ".lock"), "held by the first run"):
        assert cli.main(argv) == 2
    assert "another transenc is writing it now" in capsys.readouterr().err and live.is_file()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    assert cli.main(argv) == 0 and out.is_file() and not live.exists()  # its writer gone: a killed run's


def test_a_second_train_in_the_same_folder_is_refused_before_it_writes(tmp_path, tiny_bert, capsys):
    run = tmp_path / "run"
    run.mkdir()
    argv = ["train", "--out", str(run), "--model", str(tiny_bert), "--device", "cpu", "--cycles", "1",
            "--max-pairs", "8"]
    with claims.claimed(run, "held by the first run"):
        assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.endswith(f"transenc: error: {run}: another transenc is training in this folder now; let that one "
                        "end (or stop it), then --resume, or choose another --out\n")
    assert list(run.iterdir()) == []
