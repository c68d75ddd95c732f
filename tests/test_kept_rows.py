"""The encoding pass of `label` (bi mode) and `mine`, kept on the disk as it goes
(transenc.kept_rows): stopped after its third batch, a rerun with --resume encodes only the batches
not recorded, and the output is the bytes an unstopped run writes."""
import pytest

from transenc import cli, kept_rows
from transenc.bundled import DEMO_PAIRS


@pytest.mark.parametrize("command,damaged", [("label", False), ("mine", False), ("label", True)])
def test_an_encoding_stopped_after_batch_3_goes_on_from_batch_4(command, damaged, tmp_path, tiny_bert, monkeypatch,
                                                                 capsys):
    """... or from batch 1, where the kept rows' file is damaged."""
    monkeypatch.setattr(kept_rows, "RECORD_EVERY_S", 0.0)  # a record after every batch
    lines = DEMO_PAIRS.read_text().splitlines()[:60]
    if command == "label":
        source = tmp_path / "pairs.tsv"
        source.write_text("\n".join(lines) + "\n")
        argv = ["label", "--pairs", str(source)]
    else:
        source = tmp_path / "sentences.txt"
        source.write_text("".join(f"{s}\n" for line in lines for s in line.split("\t")[:2]))
        argv = ["mine", "--sentences", str(source), "--k", "3"]
    argv += ["--model", str(tiny_bert), "--device", "cpu", "--precision", "fp32", "--batch-size", "4"]
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
    assert cli.main(argv + ["--out", str(out), "--resume"]) == 0
    assert out.read_bytes() == (tmp_path / "whole.tsv").read_bytes()
    err = capsys.readouterr().err
    if damaged:
        assert numbers[0] == 1 and "no stopped run of these pairs and settings to resume" in err
    else:
        assert numbers[0] == 4 and len(numbers) > 3  # batches 1-3 were not encoded again
        assert "the embeddings of " in err
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([source.name, "whole.tsv", "out.tsv"])


def test_rows_that_do_not_fit_are_not_kept_and_the_label_goes_on(tmp_path, tiny_bert, monkeypatch, capsys):
    import errno
    import os

    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

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
