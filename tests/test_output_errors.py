"""Failures on the output side: a full disk, a read-only filesystem, no permission. Each ends as one
line `transenc: error: cannot write PATH: reason`, exit 2, no traceback and nothing left behind."""
import errno
import io
import json
import os
import stat
import sys
import tempfile
import threading
from pathlib import Path

import pytest

from transenc import cli, writers
from transenc.bundled import DEMO_PAIRS
from transenc.errors import OutputError, TransencError
from transenc.writers import atomic_dir, atomic_open, free_space_warning, output_error, writing

HINT = "free space, then rerun with --resume; nothing finished is lost"


class FullDisk:
    """A file on a disk that fills up: each write puts its data out, then fails with ENOSPC."""

    def __init__(self, f):
        self.f = f

    def write(self, data):
        self.f.write(data)
        self.f.flush()
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name):
        return getattr(self.f, name)


def fail(monkeypatch, code: int, folder: Path) -> None:
    """The output's writes into `folder` fail with `code` where that error really strikes: ENOSPC at a
    write, EROFS at making the temporary (or partial) file, EACCES at the rename onto the target."""
    if code == errno.ENOSPC:  # writers opens nothing but its temporary files
        monkeypatch.setattr(writers, "open", lambda *a, **kw: FullDisk(open(*a, **kw)), raising=False)
    elif code == errno.EROFS:
        for name in ("mkstemp", "mkdtemp"):
            monkeypatch.setattr(tempfile, name, refusing(getattr(tempfile, name), folder, code))
        monkeypatch.setattr(writers, "open", refusing_open(folder, code), raising=False)  # label's partial output
    else:
        real = os.replace

        def replace(src, dst):
            if Path(dst).parent == folder:
                raise OSError(code, os.strerror(code), str(src), None, str(dst))
            return real(src, dst)

        monkeypatch.setattr(os, "replace", replace)


def refusing_open(folder: Path, code: int):
    """open, failing with `code` for a file named in `folder` (a descriptor, a made file's, opens)."""
    def opened(file, *args, **kwargs):
        if isinstance(file, (str, Path)) and Path(file).parent == folder:
            raise OSError(code, os.strerror(code), str(file))
        return open(file, *args, **kwargs)
    return opened


def refusing(make, folder: Path, code: int):
    """tempfile's `make` (mkstemp, mkdtemp), failing with `code` in `folder`."""
    def made(*args, dir=None, **kwargs):
        if dir is not None and Path(dir) == folder:
            raise OSError(code, os.strerror(code), str(Path(dir) / ".tmpXYZ"))
        return make(*args, dir=dir, **kwargs)
    return made


def assert_one_line(code: int, capsys, path: Path, reason_code: int, hint: str | None = None) -> None:
    err = capsys.readouterr().err
    assert code == 2, err
    line = f"transenc: error: cannot write {path}: {os.strerror(reason_code)}" + (f"; {hint}" if hint else "") + "\n"
    assert err.endswith(line) and err.count("transenc: error:") == 1 and "Traceback" not in err, err


CODES = [errno.ENOSPC, errno.EROFS, errno.EACCES]


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    path = tmp_path_factory.mktemp("in") / "pairs.tsv"
    path.write_text("\n".join(DEMO_PAIRS.read_text().splitlines()[:6]) + "\n")
    return path


def sentences_of(pairs: Path) -> Path:
    """The pairs' sentences, one per line (mine's input)."""
    sentences = pairs.parent / "sentences.txt"
    sentences.write_text("".join(line.replace("\t", "\n") + "\n" for line in pairs.read_text().splitlines()))
    return sentences


def graded(pairs: Path) -> Path:
    """The pairs with a gold score each (eval's input)."""
    dev = pairs.parent / "dev.tsv"
    dev.write_text("".join(f"{line}\t{i % 5}\n" for i, line in enumerate(pairs.read_text().splitlines())))
    return dev


@pytest.mark.parametrize("code", CODES)
def test_label(code, tmp_path, pairs, tiny_bert, monkeypatch, capsys):
    fail(monkeypatch, code, tmp_path)
    out = tmp_path / "out.tsv"
    argv = ["label", "--pairs", str(pairs), "--out", str(out), "--model", str(tiny_bert), "--device", "cpu",
            "--precision", "fp32"]
    assert_one_line(cli.main(argv), capsys, out, code)
    assert list(tmp_path.iterdir()) == []


def test_a_full_tmpdir_while_spooling_standard_input(tmp_path, pairs, monkeypatch, capsys):
    """Standard input is copied to TMPDIR to be read twice: a TMPDIR that fills up is named, with
    what to do, and the spool is removed."""
    import io

    from transenc import readers

    spools = tmp_path / "tmp"
    spools.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spools))
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(pairs.read_bytes())))
    real = tempfile.NamedTemporaryFile
    monkeypatch.setattr(tempfile, "NamedTemporaryFile", lambda *a, **kw: FullDisk(real(*a, **kw)))
    assert cli.main(["label", "--pairs", "-", "--out", str(tmp_path / "out.tsv")]) == 2
    err = capsys.readouterr().err
    assert err == f"transenc: error: cannot write {spools}: {os.strerror(errno.ENOSPC)}; {readers.SPOOL_HINT}\n"
    assert list(spools.iterdir()) == [] and sorted(p.name for p in tmp_path.iterdir()) == ["tmp"]


@pytest.mark.parametrize("code", CODES)
def test_mine(code, tmp_path, pairs, tiny_bert, monkeypatch, capsys):
    sentences = sentences_of(pairs)
    fail(monkeypatch, code, tmp_path)
    out = tmp_path / "mined.tsv"
    argv = ["mine", "--sentences", str(sentences), "--k", "2", "--out", str(out), "--model", str(tiny_bert),
            "--device", "cpu", "--precision", "fp32"]
    # ENOSPC strikes the search's first record: nothing is kept. The others strike the pairs file in
    # tmp_path itself, after the search, whose work (in .mined.tsv.partial/) is kept for --resume.
    kept = code != errno.ENOSPC
    assert_one_line(cli.main(argv), capsys, out, code, writers.KEPT_WORK_HINT if kept else None)
    assert [p.name for p in tmp_path.iterdir()] == ([".mined.tsv.partial"] if kept else [])


def test_eval_json(tmp_path, pairs, tiny_bert, monkeypatch, capsys):
    dev = graded(pairs)
    fail(monkeypatch, errno.ENOSPC, tmp_path)
    out = tmp_path / "scores.json"
    argv = ["eval", "--data", str(dev), "--json", str(out), "--model", str(tiny_bert), "--device", "cpu",
            "--precision", "fp32"]
    assert_one_line(cli.main(argv), capsys, out, errno.ENOSPC)
    assert list(tmp_path.iterdir()) == []


def test_eval_json_into_a_folder_that_cannot_take_it_fails_before_the_model_loads(tmp_path, pairs, tiny_bert,
                                                                                   monkeypatch, capsys):
    from transenc import labeling

    fail(monkeypatch, errno.EROFS, tmp_path)
    monkeypatch.setattr(labeling, "load_scorer", lambda *a: pytest.fail("the model loaded"))
    out = tmp_path / "scores.json"
    argv = ["eval", "--data", str(graded(pairs)), "--json", str(out), "--model", str(tiny_bert), "--device", "cpu"]
    assert_one_line(cli.main(argv), capsys, out, errno.EROFS)


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full here")
@pytest.mark.parametrize("unbuffered", [False, True], ids=["buffered", "python-u"])
@pytest.mark.parametrize("verb", ["label", "mine", "eval"])
def test_standard_output_on_a_full_disk_is_named(verb, unbuffered, tmp_path, pairs, tiny_bert, monkeypatch, capsys):
    """`transenc VERB ... > file` on a full disk: standard output is named, whether its bytes are
    buffered or (python -u) a raw file."""
    data = {"label": ["--pairs", str(pairs)], "mine": ["--sentences", str(sentences_of(pairs)), "--k", "2"],
            "eval": ["--data", str(graded(pairs))]}[verb]
    raw = open("/dev/full", "wb", buffering=0)
    stdout = io.TextIOWrapper(raw if unbuffered else io.BufferedWriter(raw), write_through=unbuffered)
    monkeypatch.setattr(sys, "stdout", stdout)
    argv = [verb, *data, "--model", str(tiny_bert), "--device", "cpu", "--precision", "fp32"]
    assert_one_line(cli.main(argv), capsys, writers.STANDARD_OUTPUT, errno.ENOSPC)


@pytest.mark.parametrize("verb", ["label", "eval"])
def test_an_input_that_cannot_be_read_is_no_failed_write_of_standard_output(verb, tmp_path, pairs, tiny_bert,
                                                                            monkeypatch, capsys):
    """Rows to standard output while the input is read: a read that fails (a file without read
    permission, a disk's I/O error) names the input, not standard output."""
    from transenc import readers

    unreadable, opened = graded(pairs), []

    def refused(file, *args, **kwargs):
        if str(file) == str(unreadable):
            opened.append(file)
            if len(opened) > 1:  # the first look (PairReader's, at its first bytes) comes before any row
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(file))
        return open(file, *args, **kwargs)

    monkeypatch.setattr(readers, "open", refused, raising=False)
    data = {"label": "--pairs", "eval": "--data"}[verb]
    argv = [verb, data, str(unreadable), "--model", str(tiny_bert), "--device", "cpu", "--precision", "fp32"]
    assert cli.main(argv) == 2
    assert capsys.readouterr().err == f"transenc: error: {unreadable}: Permission denied\n"


@pytest.mark.parametrize("code", CODES)
def test_report(code, tmp_path, monkeypatch, capsys):
    pytest.importorskip("matplotlib")
    (tmp_path / "metrics.json").write_text(json.dumps({"cycles": []}))
    fail(monkeypatch, code, tmp_path)
    # the first file written fails (an image), or at the renames the first renamed: the page (the last written)
    first = "report.html" if code == errno.EACCES else "dev_curves.png"
    assert_one_line(cli.main(["report", str(tmp_path)]), capsys, tmp_path / first, code)
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]  # no image of the failed report either


def test_a_stray_os_error_is_one_line_naming_its_file(monkeypatch, capsys):
    def full(args):
        raise OSError(errno.EDQUOT, os.strerror(errno.EDQUOT), "runs/x/state.json")

    monkeypatch.setitem(cli.COMMANDS, "report", full)
    assert cli.main(["report", "runs/x"]) == 2
    err = capsys.readouterr().err
    assert err == f"transenc: error: runs/x/state.json: {os.strerror(errno.EDQUOT)}\n"


def test_atomic_open_close_failure_names_the_target_and_leaves_nothing(tmp_path, monkeypatch):
    class FailsAtClose:  # small writes sit in the buffer: a full disk shows when it goes out, at close
        def __init__(self, f):
            self.f = f

        def close(self):
            self.f.close()
            raise OSError(errno.EIO, os.strerror(errno.EIO))

        def __getattr__(self, name):
            return getattr(self.f, name)

    monkeypatch.setattr(writers, "open", lambda *a, **kw: FailsAtClose(open(*a, **kw)), raising=False)
    (tmp_path / "out.json").write_text("old")
    with pytest.raises(OutputError) as e:
        with atomic_open(tmp_path / "out.json", hint="try again") as f:
            f.write("{}")
    assert str(e.value) == f"cannot write {tmp_path / 'out.json'}: Input/output error; try again"
    assert [(p.name, p.read_text()) for p in tmp_path.iterdir()] == [("out.json", "old")]


def test_other_errors_in_an_atomic_open_block_go_on_unchanged(tmp_path):
    with pytest.raises(FileNotFoundError):  # reading an input in the block is no failed write of the output
        with atomic_open(tmp_path / "out.tsv"):
            open(tmp_path / "missing.tsv")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full here")
def test_a_device_is_written_in_place_and_stays_a_device(tmp_path, pairs, tiny_bert, capsys):
    """A file renamed onto /dev/full would replace the device (as root; elsewhere /dev refuses the
    temporary file): the write goes to the device, whose full disk is the one line it ends with."""
    argv = ["label", "--pairs", str(pairs), "--out", "/dev/full", "--model", str(tiny_bert), "--device", "cpu",
            "--precision", "fp32"]
    assert_one_line(cli.main(argv), capsys, Path("/dev/full"), errno.ENOSPC)
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)
    assert not [p for p in os.listdir("/dev") if p.startswith(".full.")]


def test_a_pipe_is_written_in_place(tmp_path, pairs, tiny_bert, capsys):
    fifo = tmp_path / "scores.fifo"
    os.mkfifo(fifo)
    read = []
    reader = threading.Thread(target=lambda: read.append(fifo.read_text()), daemon=True)
    reader.start()
    argv = ["label", "--pairs", str(pairs), "--out", str(fifo), "--model", str(tiny_bert), "--device", "cpu",
            "--precision", "fp32"]
    assert cli.main(argv) == 0, capsys.readouterr().err
    reader.join(timeout=60)
    assert len(read[0].splitlines()) == len(pairs.read_text().splitlines())
    assert stat.S_ISFIFO(os.stat(fifo).st_mode) and sorted(p.name for p in tmp_path.iterdir()) == ["scores.fifo"]


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="no /proc here")
def test_a_descriptor_the_shell_opened_to_append_is_appended_to(tmp_path):
    """`--out /dev/stdout >> log`: the output reopens the shell's file, and must not empty it."""
    log = tmp_path / "log.tsv"
    log.write_text("earlier\n")
    fd = os.open(log, os.O_WRONLY | os.O_APPEND)
    try:
        with atomic_open(f"/proc/self/fd/{fd}") as f:
            f.write("new\n")
    finally:
        os.close(fd)
    assert log.read_text() == "earlier\nnew\n" and sorted(p.name for p in tmp_path.iterdir()) == ["log.tsv"]


def test_a_symbolic_link_keeps_pointing_at_the_output(tmp_path):
    (tmp_path / "results").mkdir()
    real, link = tmp_path / "results" / "scores.tsv", tmp_path / "scores.tsv"
    real.write_text("old\n")
    link.symlink_to(Path("results") / "scores.tsv")
    with atomic_open(link) as f:
        f.write("new\n")
    assert link.is_symlink() and real.read_text() == "new\n"
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == ["scores.tsv"]  # no temporary left


def test_a_folder_is_made_for_an_output_the_user_named_alone(tmp_path):
    """A job's own files go into the folders it made as it began: one removed under it is not made
    again, half empty (the job stops); an output the user named may be in a new folder."""
    for save in (lambda: atomic_open(tmp_path / "gone" / "state.json"), lambda: atomic_dir(tmp_path / "gone" / "bi")):
        with pytest.raises(OutputError, match="No such file or directory"):
            with save():
                pass
    assert list(tmp_path.iterdir()) == []
    with atomic_open(tmp_path / "new" / "scores.tsv", make_folder=True) as f:
        f.write("1")
    assert (tmp_path / "new" / "scores.tsv").read_text() == "1"


def test_atomic_dir_saves_whole_or_not_at_all(tmp_path):
    target = tmp_path / "run" / "bi"
    target.parent.mkdir()
    with atomic_dir(target) as tmp:
        assert tmp.parent == target.parent and tmp.name.startswith(".bi.") and not target.exists()
        (tmp / "config.json").write_text("1")
    assert [p.name for p in target.iterdir()] == ["config.json"]
    assert oct(target.stat().st_mode & 0o777) == oct(0o777 & ~writers._umask())

    with atomic_dir(target) as tmp:  # a second save replaces the first whole
        (tmp / "model.safetensors").write_text("2")
    assert [p.name for p in target.iterdir()] == ["model.safetensors"]

    with pytest.raises(OutputError) as e:
        with atomic_dir(target, hint=HINT) as tmp:
            (tmp / "half").write_text("3")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp / "half"))
    assert str(e.value) == f"cannot write {target}: No space left on device; {HINT}"
    assert e.value.path == str(target) and e.value.hint == HINT
    assert [p.name for p in target.parent.iterdir()] == ["bi"]  # the earlier save, and no temporary folder
    assert [p.name for p in target.iterdir()] == ["model.safetensors"]

    with pytest.raises(KeyError):  # anything else goes on as it is, and the temporary folder goes too
        with atomic_dir(target):
            raise KeyError("x")
    assert [p.name for p in target.parent.iterdir()] == ["bi"]


def test_atomic_dir_on_a_read_only_folder(tmp_path, monkeypatch):
    fail(monkeypatch, errno.EROFS, tmp_path)
    with pytest.raises(OutputError, match=f"^cannot write {tmp_path / 'cross'}: Read-only file system$"):
        with atomic_dir(tmp_path / "cross"):
            pass
    assert list(tmp_path.iterdir()) == []


def test_safetensors_errors_are_failed_writes(tmp_path):
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    full = SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")
    assert str(output_error("runs/x/bi", full, HINT)) == f"cannot write runs/x/bi: No space left on device; {HINT}"
    with pytest.raises(OutputError, match=r"^cannot write .*/bi: No such file or directory$"):
        with writing(tmp_path / "bi"):  # a real one: the folder is not there
            save_file({"w": torch.zeros(2)}, str(tmp_path / "missing" / "model.safetensors"))
    assert output_error("x", SafetensorError("Error while deserializing header: HeaderTooLarge")) is None
    assert output_error("x", ValueError("no")) is None
    assert output_error("x", BrokenPipeError(errno.EPIPE, "Broken pipe")) is None
    assert isinstance(output_error("x", PermissionError(errno.EACCES, "Permission denied")), TransencError)


def test_free_space_warning(tmp_path, monkeypatch):
    usage = type("usage", (), {"total": 10**10, "used": 0, "free": 87_300_000})
    seen = []
    monkeypatch.setattr(writers.shutil, "disk_usage", lambda p: seen.append(Path(p)) or usage)
    assert free_space_warning(tmp_path / "run", 50_000_000) is None
    assert seen == [tmp_path]  # the run folder is not there yet: its parent's filesystem
    assert free_space_warning(tmp_path, 1_234_000_000) == (
        f"transenc: warning: {tmp_path} has 87.3 MB free and this needs about 1.2 GB: it may stop for lack of space")
    usage.free = 512
    assert free_space_warning(tmp_path, 2000) == (
        f"transenc: warning: {tmp_path} has 512 bytes free and this needs about 2.0 kB: it may stop for lack of space")


def failing_rename(monkeypatch, target_name: str, code: int, after: int = 0):
    """os.replace onto a file or folder named `target_name` fails with `code` (after `after` good ones):
    the last step of every atomic write of training's outputs."""
    real, seen = os.replace, []

    def replace(src, dst):
        if Path(dst).name == target_name:
            seen.append(dst)
            if len(seen) > after:
                raise OSError(code, os.strerror(code), str(src), None, str(dst))
        return real(src, dst)

    monkeypatch.setattr(os, "replace", replace)


@pytest.mark.parametrize("target, code, after", [("cross-0", errno.ENOSPC, 0), ("metrics.json", errno.EROFS, 3),
                                                 ("bi", errno.EACCES, 0)])
def test_train_stops_with_one_line_and_resumes_to_the_same_weights(target, code, after, tmp_path, tiny_bert,
                                                                   monkeypatch, capsys):
    """A checkpoint, metrics.json or an export that cannot be written: one line naming it with the
    --resume hint, exit 2, no temporary file; --resume then ends as a run never interrupted."""
    from safetensors.torch import load_file

    from test_train import TINY
    from transenc import training
    from transenc.run_folder import RESUME_HINT

    monkeypatch.setitem(training.RECIPES, "tiny", TINY)
    lines = DEMO_PAIRS.read_text().splitlines()[:24]
    (tmp_path / "pairs.tsv").write_text("\n".join(lines) + "\n")
    (tmp_path / "dev.tsv").write_text("".join(f"{line}\t{i % 5}\n" for i, line in enumerate(lines[:12])))
    argv = ["train", "--pairs", str(tmp_path / "pairs.tsv"), "--dev", str(tmp_path / "dev.tsv"), "--model", str(tiny_bert),
            "--recipe", "tiny", "--cycles", "1", "--seed", "4", "--device", "cpu", "--precision", "fp32"]
    assert cli.main(argv + ["--out", str(tmp_path / "whole")]) == 0
    capsys.readouterr()
    with monkeypatch.context() as m:
        failing_rename(m, target, code, after)
        assert cli.main(argv + ["--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    failed = next(p for p in [tmp_path / "run" / "cycle1" / "cross-0", tmp_path / "run" / "metrics.json",
                              tmp_path / "run" / "bi"] if p.name == target)
    assert err.endswith(f"transenc: error: cannot write {failed}: {os.strerror(code)}; {RESUME_HINT}\n"), err
    assert err.count("transenc: error:") == 1 and "Traceback" not in err
    assert not [p for p in (tmp_path / "run").rglob("*") if p.name.endswith((".tmp", ".old"))]
    if target != "metrics.json":
        assert not failed.exists()  # a folder is complete or not there
    assert cli.main(argv + ["--out", str(tmp_path / "run"), "--resume"]) == 0
    for name in ("bi", "cross"):
        whole, resumed = (load_file(str(tmp_path / r / name / "model.safetensors")) for r in ("whole", "run"))
        assert all((whole[k] == resumed[k]).all() for k in whole)


def test_a_run_that_will_not_fit_is_warned_with_the_figures(tmp_path, tiny_bert, monkeypatch, capsys):
    """Before training: checkpoints (a bi- and a cross-encoder per cycle), exports and the running fit's
    step save (four copies: weights, AdamW's two moments, best weights) against free space."""
    import shutil
    from collections import namedtuple

    from transenc.run_folder import check_free_space

    weights = sum(f.stat().st_size for f in tiny_bert.glob("*.safetensors"))
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 0, weights * 11))
    check_free_space(tmp_path / "run", [str(tiny_bert)], cycles=3)  # needs 8 + 4 copies of the weights
    err = capsys.readouterr().err
    assert err.startswith(f"transenc: warning: {tmp_path / 'run'} has ") and "this needs about" in err
    check_free_space(tmp_path / "run", [str(tiny_bert)], cycles=2)  # 6 + 4 copies fit in 11
    assert capsys.readouterr().err == ""
