"""Progress in logs: plain lines, no carriage returns; silent when disabled and on ranks other than 0."""
import pytest

from transenc import progress as progress_module
from transenc.progress import LogLines, clock, progress


def test_log_lines_report_count_rate_and_loss(capsys):
    with LogLines(3, "train cross-encoder", "steps", every=0) as bar:
        bar.set_postfix(loss="0.5000")
        bar.update(1)
        bar.update(1)
    err = capsys.readouterr().err
    assert err.splitlines()[-1].startswith("train cross-encoder: 2/3 steps (")
    assert err.splitlines()[0].endswith(" left), loss=0.5000")  # 1 of 3 done: the time the other 2 take
    assert err.splitlines()[-1].endswith(", loss=0.5000")
    assert "\r" not in err


def shown(**kwargs):
    """A progress of 5 rows, run to its end: with the fixture below, each update prints its line."""
    with progress(5, "encode", "rows", **kwargs) as bar:
        bar.update(5)
    return bar


@pytest.fixture
def every_update(monkeypatch):
    monkeypatch.setattr(progress_module, "LOG_EVERY_S", 0.0)  # else nothing prints in a test's first 30 s


def test_progress_off_a_terminal_is_log_lines_and_can_be_silenced(capsys, every_update):
    assert isinstance(shown(), LogLines)  # pytest's captured stderr is no terminal
    assert capsys.readouterr().err.startswith("encode: 5/5 rows (")
    shown(enabled=False)
    assert capsys.readouterr().err == ""


def test_under_torchrun_only_rank_0_shows_progress(capsys, monkeypatch, every_update):
    monkeypatch.setenv("RANK", "1")
    shown()
    assert capsys.readouterr().err == ""
    monkeypatch.setenv("RANK", "0")
    shown()
    assert capsys.readouterr().err.startswith("encode: 5/5 rows (")


def test_a_resumed_count_starts_where_it_was(capsys):
    with progress(10, "train bi-encoder", "steps", initial=4) as bar:
        bar.every = 0
        bar.update(1)
    assert capsys.readouterr().err.startswith("train bi-encoder: 5/10 steps (")


def test_time_left_reads_as_a_clock():
    assert [clock(s) for s in (0, 59.6, 61, 3599, 3600, 36_000 + 61)] == \
        ["00:00", "01:00", "01:01", "59:59", "1:00:00", "10:01:01"]
