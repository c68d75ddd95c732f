"""Progress in logs: plain lines, no carriage returns; silent when disabled and on ranks other than 0."""
from transenc.progress import LogLines, progress


def test_log_lines_report_count_rate_and_loss(capsys):
    with LogLines(3, "train cross-encoder", "steps", every=0) as bar:
        bar.set_postfix(loss="0.5000")
        bar.update(1)
        bar.update(1)
    err = capsys.readouterr().err
    assert err.splitlines()[-1].startswith("train cross-encoder: 2/3 steps (")
    assert err.splitlines()[-1].endswith(", loss=0.5000")
    assert "\r" not in err


def test_progress_off_a_terminal_is_log_lines_and_can_be_silenced(capsys):
    assert isinstance(progress(5, "encode"), LogLines)  # pytest's captured stderr is no terminal
    with progress(5, "encode", enabled=False) as bar:
        bar.update(5)
    assert capsys.readouterr().err == ""


def test_under_torchrun_only_rank_0_shows_progress(capsys, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    with progress(5, "encode") as bar:
        bar.update(5)
    monkeypatch.setenv("RANK", "0")
    assert isinstance(progress(5, "encode"), LogLines)
    assert capsys.readouterr().err == ""


def test_a_resumed_count_starts_where_it_was(capsys):
    with progress(10, "train bi-encoder", "steps", initial=4) as bar:
        bar.every = 0
        bar.update(1)
    assert capsys.readouterr().err.startswith("train bi-encoder: 5/10 steps (")
