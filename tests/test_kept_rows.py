"""The encoding pass of `label` (bi mode) and `mine`, kept on the disk as it goes
(transenc.kept_rows): stopped after its third batch, a rerun with --resume encodes only the batches
not recorded, and the output is the bytes an unstopped run writes."""
import os

import numpy as np
import pytest
import torch

from transenc import cli, kept_rows, writers
from transenc.bundled import DEMO_PAIRS


def _encoding_job(command: str, lines: int, tmp_path, tiny_bert) -> tuple:
    """(its input file, argv but --out) of a label or a mine over the demo corpus's first lines,
    4 sentences a batch."""
    lines = DEMO_PAIRS.read_text().splitlines()[:lines]
    if command == "label":
        source = tmp_path / "pairs.tsv"
        source.write_text("\n".join(lines) + "\n")
        argv = ["label", "--pairs", str(source)]
    else:
        source = tmp_path / "sentences.txt"
        source.write_text("".join(f"{s}\n" for line in lines for s in line.split("\t")[:2]))
        argv = ["mine", "--sentences", str(source), "--k", "3"]
    return source, argv + ["--model", str(tiny_bert), "--device", "cpu", "--precision", "fp32", "--batch-size", "4"]


@pytest.mark.parametrize("command,damaged,resumed_with", [
    ("label", False, []), ("mine", False, []), ("label", True, []),
    ("label", False, ["--chunk-pairs", "7"]),  # the rows do not depend on it: taken up all the same
])
def test_an_encoding_stopped_after_batch_3_goes_on_from_batch_4(command, damaged, resumed_with, tmp_path, tiny_bert,
                                                                 monkeypatch, capsys):
    """... or from batch 1, where the kept rows' file is damaged."""
    monkeypatch.setattr(writers, "RECORD_EVERY_S", 0.0)  # a record after every batch
    source, argv = _encoding_job(command, 60, tmp_path, tiny_bert)
    assert cli.main(argv + ["--out", str(tmp_path / "whole.tsv")]) == 0

    real, numbers = kept_rows.KeptRows.finished, []

    def finished(self, number, rows, out):  # counts the batches encoded; Ctrl-C once the third is recorded
        numbers.append(number)
        real(self, number, rows, out)
        if number == 3 and stopping:
            raise KeyboardInterrupt

    monkeypatch.setattr(kept_rows.KeptRows, "finished", finished)
    out = tmp_path / "out.tsv"
    stopping = True
    assert cli.main(argv + ["--out", str(out)]) == 130
    assert not out.exists() and numbers == [1, 2, 3]
    if damaged:
        (tmp_path / ".out.tsv.partial.embeddings.npy").write_bytes(b"\x93NUMPY damaged")
    numbers.clear()
    stopping = False
    capsys.readouterr()
    assert cli.main(argv + ["--out", str(out), "--resume"] + resumed_with) == 0
    assert out.read_bytes() == (tmp_path / "whole.tsv").read_bytes()
    err = capsys.readouterr().err
    if damaged:
        assert numbers[0] == 1 and "no stopped run of these pairs and settings to resume" in err
    else:
        assert numbers[0] == 4 and len(numbers) > 3  # batches 1-3 were not encoded again
        assert "the embeddings of " in err
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([source.name, "whole.tsv", "out.tsv"])


@pytest.mark.parametrize("code", ["ENOSPC", "EDQUOT", "EFBIG"])  # a full disk, a full quota, ulimit -f or FAT32
def test_rows_that_do_not_fit_are_not_kept_and_the_label_goes_on(code, tmp_path, tiny_bert, monkeypatch, capsys):
    import errno
    import os

    def full(fd, offset, length):
        raise OSError(getattr(errno, code), os.strerror(getattr(errno, code)))

    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("\n".join(DEMO_PAIRS.read_text().splitlines()[:20]) + "\n")
    argv = ["label", "--pairs", str(pairs), "--model", str(tiny_bert), "--device", "cpu", "--precision", "fp32"]
    assert cli.main(argv + ["--out", str(tmp_path / "whole.tsv")]) == 0
    monkeypatch.setattr(os, "posix_fallocate", full)
    capsys.readouterr()
    assert cli.main(argv + ["--out", str(tmp_path / "out.tsv")]) == 0
    assert "of rows that --resume would take up do not fit beside" in capsys.readouterr().err
    assert (tmp_path / "out.tsv").read_bytes() == (tmp_path / "whole.tsv").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.tsv", "pairs.tsv", "whole.tsv"]



@pytest.mark.parametrize("command", ["label", "mine"])
def test_a_system_without_posix_fallocate_keeps_the_rows_all_the_same(command, tmp_path, tiny_bert, monkeypatch,
                                                                        capsys):
    """macOS has no os.posix_fallocate: the kept files' blocks are then allocated as rows come."""
    _, argv = _encoding_job(command, 20, tmp_path, tiny_bert)
    assert cli.main(argv + ["--out", str(tmp_path / "whole.tsv")]) == 0
    monkeypatch.delattr(os, "posix_fallocate")
    kept, allocated = [], kept_rows.allocated_npy
    monkeypatch.setattr(kept_rows, "allocated_npy", lambda *a: kept.append(a[2]) or allocated(*a))
    capsys.readouterr()
    assert cli.main(argv + ["--out", str(tmp_path / "out.tsv")]) == 0
    assert (tmp_path / "out.tsv").read_bytes() == (tmp_path / "whole.tsv").read_bytes()
    assert kept and "not kept" not in capsys.readouterr().err  # kept on the disk, not held in memory instead

def _mapped_from(path) -> tuple[int, int]:
    """The address range at which this process maps `path` (Linux's /proc/self/maps)."""
    real = os.path.realpath(path)
    spans = [line.split()[0] for line in open("/proc/self/maps") if line.rstrip().endswith(real)]
    assert spans, f"{real} is not mapped"
    return int(spans[0].split("-")[0], 16), int(spans[-1].split("-")[1], 16)


@pytest.mark.skipif(not os.path.exists("/proc/self/maps"), reason="reads Linux's /proc/self/maps")
def test_on_a_cpu_the_rows_are_the_kept_file_itself_not_memory(tmp_path, tiny_bert):
    """So that more sentences than the memory holds encode: the rows live in the file's pages,
    which the kernel writes back and reclaims, and a resumed complete pass maps them again."""
    from transenc.models import BiEncoder

    encoder = BiEncoder.load(str(tiny_bert), "cpu", inference=True)
    sentences = [line.split("\t")[0] for line in DEMO_PAIRS.read_text().splitlines()[:40]]
    path, settings = tmp_path / "rows.npy", {"sentences": 40}
    kept = kept_rows.KeptRows(path, settings, False, tmp_path / "out.tsv", "hint")
    rows = encoder.encode(sentences, 4, "fp32", kept=kept)
    start, end = _mapped_from(path)
    assert start <= rows.data_ptr() < end
    assert torch.equal(rows, encoder.encode(sentences, 4, "fp32"))  # the same rows as a pass in memory

    taken_up = kept_rows.KeptRows(path, settings, True, tmp_path / "out.tsv", "hint").complete(len(sentences))
    assert torch.equal(taken_up, rows)
    start, end = _mapped_from(path)
    assert start <= taken_up.data_ptr() < end


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a GPU"))])
def test_a_pass_stopped_after_batch_3_gives_the_same_rows_on_its_device(device, tmp_path, tiny_bert, monkeypatch):
    """The two homes of the rows: the mapped file (CPU), or the device with copies out (GPU)."""
    from transenc.models import BiEncoder

    monkeypatch.setattr(writers, "RECORD_EVERY_S", 0.0)
    encoder = BiEncoder.load(str(tiny_bert), device, inference=True)
    sentences = [line.split("\t")[1] for line in DEMO_PAIRS.read_text().splitlines()[:40]]
    whole = encoder.encode(sentences, 4, "fp32")
    path, settings = tmp_path / "rows.npy", {"sentences": 40}

    def kept(resume):
        return kept_rows.KeptRows(path, settings, resume, tmp_path / "out.tsv", "hint")

    real, numbers = kept_rows.KeptRows.finished, []

    def finished(self, number, rows, out):
        numbers.append(number)
        real(self, number, rows, out)
        if number == 3 and len(numbers) == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(kept_rows.KeptRows, "finished", finished)
    with pytest.raises(KeyboardInterrupt):
        encoder.encode(sentences, 4, "fp32", kept=kept(False))
    resumed = encoder.encode(sentences, 4, "fp32", kept=kept(True))
    assert numbers[3] == 4 and torch.equal(resumed, whole)


@pytest.mark.skipif(not os.path.exists("/proc/self/maps"), reason="reads Linux's /proc/self/maps")
def test_a_pass_with_nothing_to_keep_has_its_rows_in_tmpdir_and_leaves_nothing(tmp_path, tiny_bert, monkeypatch):
    """A label to standard output: the rows are a file in TMPDIR, removed as soon as it is mapped."""
    import tempfile

    from transenc.models import BiEncoder

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    encoder = BiEncoder.load(str(tiny_bert), "cpu", inference=True)
    sentences = [line.split("\t")[0] for line in DEMO_PAIRS.read_text().splitlines()[:40]]
    rows = encoder.encode(sentences, 4, "fp32", kept=kept_rows.ScratchRows())
    spans = [line.split()[0].split("-") for line in open("/proc/self/maps")
             if str(tmp_path) in line and "transenc-rows-" in line and line.rstrip().endswith("(deleted)")]
    assert any(int(a, 16) <= rows.data_ptr() < int(b, 16) for a, b in spans)
    assert torch.equal(rows, encoder.encode(sentences, 4, "fp32")) and list(tmp_path.iterdir()) == []


def test_a_label_to_standard_output_without_room_in_tmpdir_says_so_and_goes_on(tmp_path, tiny_bert, monkeypatch,
                                                                                capsys):
    import errno

    _, argv = _encoding_job("label", 20, tmp_path, tiny_bert)
    assert cli.main(argv) == 0
    whole = capsys.readouterr().out

    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "posix_fallocate", full)
    assert cli.main(argv) == 0
    done = capsys.readouterr()
    assert done.out == whole and "of embeddings cannot go to TMPDIR" in done.err and "held in memory" in done.err


def test_a_mine_to_standard_output_has_its_embeddings_in_tmpdir(tmp_path, tiny_bert, monkeypatch, capsys):
    opened, real = [], kept_rows.ScratchRows.open

    def open_(self, shape, batches, device):
        opened.append(shape)
        return real(self, shape, batches, device)

    monkeypatch.setattr(kept_rows.ScratchRows, "open", open_)
    source, argv = _encoding_job("mine", 20, tmp_path, tiny_bert)
    assert cli.main(argv) == 0
    mined = capsys.readouterr().out
    assert len(opened) == 1 and opened[0][0] == len(set(source.read_text().splitlines()))
    assert cli.main(argv + ["--out", str(tmp_path / "out.tsv")]) == 0  # kept beside it instead
    assert len(opened) == 1 and (tmp_path / "out.tsv").read_text() == mined


def test_the_python_api_label_has_its_embeddings_in_tmpdir(tiny_bert, monkeypatch):
    """transenc.label (labeling.bi_scores, as eval and training's labeling): the embeddings of the
    unique sentences in a ScratchRows, scored as in memory."""
    import transenc
    from transenc import ops
    from transenc.models import BiEncoder

    opened, real = [], kept_rows.ScratchRows.open

    def open_(self, shape, batches, device):
        opened.append(shape)
        return real(self, shape, batches, device)

    monkeypatch.setattr(kept_rows.ScratchRows, "open", open_)
    pairs = transenc.read_pairs(DEMO_PAIRS)
    scores = transenc.label(pairs, model=str(tiny_bert), device="cpu", precision="fp32")
    assert opened == [(len(pairs.sentences), 32)]
    in_memory = BiEncoder.load(str(tiny_bert), "cpu", inference=True).encode(pairs.sentences, 128, "fp32")
    assert np.array_equal(scores, ops.pair_cosine_indexed(in_memory, pairs.pairs).numpy())
