"""Several dev sets (graded and 0/1) select checkpoints by their mean, every one reported by name;
the run report: files, HTML, images, and a table that says what metrics.json says."""
import base64
import contextlib
import io
import json
import re
import shutil
from html.parser import HTMLParser
from io import BytesIO

import numpy as np
import pytest

from transenc import cli, training
from transenc.train_config import TrainConfig
from transenc.bundled import DEMO_DEV, DEMO_PAIRS
from transenc.fit import FitConfig
from transenc.labeling import bi_scores
from transenc.models import BiEncoder

from test_metrics import auc_by_counting
from test_train import train

CHECKED = training.Recipe(
    cross=FitConfig(batch_size=16, epochs=2, lr=1e-3, warmup=0.1, eval_every=2),
    bi=FitConfig(batch_size=16, epochs=2, lr=1e-3, warmup=0.0, eval_every=1),
    cross_max_length=32,
    bi_max_length=16,
)


@pytest.fixture(scope="module")
def two_dev_run(tmp_path_factory, tiny_bert):
    """Two cycles of a tiny BERT on 32 demo pairs, with a graded and a binary dev set."""
    root = tmp_path_factory.mktemp("two-dev")
    lines = DEMO_PAIRS.read_text().splitlines()
    (root / "pairs.tsv").write_text("\n".join(lines[:32]) + "\n")
    (root / "graded.tsv").write_text("".join(f"{line}\t{(i * 7) % 6}\n" for i, line in enumerate(lines[40:60])))
    (root / "binary.tsv").write_text("".join(f"{line}\t{1 - i % 2}\n" for i, line in enumerate(lines[60:76])))
    args = dict(out=root / "run", pairs=str(root / "pairs.tsv"), models=[str(tiny_bert)], cycles=2,
                      dev=[str(root / "graded.tsv"), f"binary={root / 'binary.tsv'}"],
                      test=[str(root / "graded.tsv")], recipe="checked", seed=3, device="cpu",
                      precision="fp32")  # exact: a 32-wide tiny BERT's scores differ below bf16's steps
    training.RECIPES["checked"] = CHECKED
    try:
        with contextlib.redirect_stderr(io.StringIO()) as err:
            train(args)
    finally:
        del training.RECIPES["checked"]
    (root / "stderr.txt").write_text(err.getvalue())
    return root


def test_dev_sets_are_reported_by_name_and_select_by_their_mean(two_dev_run, tiny_bert):
    metrics = json.loads((two_dev_run / "run" / "metrics.json").read_text())
    start = metrics["start"]["dev"]
    assert {n: s["metric"] for n, s in start["sets"].items()} == {"graded": "spearman", "binary": "auc"}
    for cycle in metrics["cycles"]:
        for stage in ("cross_train", "bi_train"):
            fit = cycle["stages"][stage]["models"][0]
            steps = [s for s, _ in fit["checks"]]
            assert steps == sorted(set(steps)) and steps[-1] == fit["steps"] and len(steps) >= 3
            by_set = fit["checks_by_set"]
            for i, (_, mean) in enumerate(fit["checks"]):
                assert mean == pytest.approx((by_set["graded"][i] + by_set["binary"][i]) / 2, abs=1e-9)
            scores = [v for _, v in fit["checks"]]
            assert fit["best_dev"] == max(scores) and fit["best_step"] == steps[int(np.argmax(scores))]
            assert len(fit["loss_curve"]) == fit["steps"] and fit["loss_curve"][-1][0] == fit["steps"]
        dev = cycle["stages"]["bi_train"]["dev"]
        assert dev["models"][0] == pytest.approx(np.mean([s["models"][0] for s in dev["sets"].values()]), abs=1e-9)
        # the kept bi-encoder's reported binary score is its AUC on the binary dev file, counted by hand
        from transenc.readers import read_pairs

        binary = read_pairs(two_dev_run / "binary.tsv")[0]
        scores = bi_scores(BiEncoder.load(two_dev_run / "run" / f"cycle{cycle['cycle']}" / "bi-0", "cpu"), binary)
        assert dev["sets"]["binary"]["models"][0] == pytest.approx(auc_by_counting(scores, binary.labels) * 100, abs=1e-9)
    best = metrics["best_cycle"]["bi"]
    means = [c["stages"]["bi_train"]["dev"]["models"][0] for c in metrics["cycles"]]
    assert best == int(np.argmax(means)) + 1


class Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.rows, self.images, self._cell = [], [], None

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = ""
        elif tag == "img":
            self.images.append(dict(attrs))

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.rows[-1].append(self._cell)
            self._cell = None


def test_report_files_images_and_table_equal_metrics(two_dev_run):
    from PIL import Image

    run = two_dev_run / "run"
    metrics = json.loads((run / "metrics.json").read_text())
    page = Page()
    page.feed((run / "report.html").read_text(encoding="utf-8"))
    names = ("dev_curves.png", "losses.png", "labels.png", "stage_times.png")
    assert [img["alt"] for img in page.images] == list(names)
    for img in page.images:
        data = base64.b64decode(img["src"].removeprefix("data:image/png;base64,"))
        assert data == (run / img["alt"]).read_bytes()  # the same PNG inline and beside the page
        width, height = Image.open(BytesIO(data)).size
        assert width > 300 and height > 100
    header, *rows = page.rows
    assert header == ["", "dev graded (spearman)", "dev binary (auc)", "dev mean", "test graded (spearman)"]

    def expected(label, stage, dev_key="dev"):
        dev, test = stage[dev_key], stage.get("test") if dev_key == "dev" else None
        return [label, *(f"{dev['sets'][n]['models'][0]:.2f}" for n in ("graded", "binary")),
                f"{dev['models'][0]:.2f}", f"{test['sets']['graded']['models'][0]:.2f}" if test else "-"]

    want = [expected("start", metrics["start"])]
    for c in metrics["cycles"]:
        want.append(expected(f"cycle {c['cycle']} cross-encoder", c["stages"]["cross_label"]))
        want.append(expected(f"cycle {c['cycle']} teacher of the bi-encoder (its targets)", c["stages"]["bi_train"],
                             "teacher_dev"))
        want.append(expected(f"cycle {c['cycle']} bi-encoder", c["stages"]["bi_train"]))
    for name, stage in (("bi", "bi_train"), ("cross", "cross_label")):
        best = metrics["best_cycle"][name]
        if metrics.get("exported", {}).get(name, {}).get("model") == "start":  # a gain inside dev's noise
            want.append(expected(f"exported {name}: the start model", metrics["start"]))
        else:
            want.append(expected(f"best {name} (cycle {best})", metrics["cycles"][best - 1]["stages"][stage]))
    assert metrics["exported"]["bi"]["model"] in ("start", "trained") and "cross" not in metrics["exported"]
    assert rows == want


def test_closing_lines_give_each_model_start_and_best_as_metrics_say(two_dev_run):
    run = two_dev_run / "run"
    metrics = json.loads((run / "metrics.json").read_text())
    printed = (two_dev_run / "stderr.txt").read_text().splitlines()
    for name, stage in (("bi", "bi_train"), ("cross", "cross_label")):
        best = metrics["best_cycle"][name]
        line = next(x for x in printed if x.startswith(f"{name}: start -> cycle {best}: "))
        after = metrics["cycles"][best - 1]["stages"][stage]
        want = [(f"{kind} {n}", f"{metrics['start'][kind]['sets'][n]['models'][0]:.2f}",
                 f"{after[kind]['sets'][n]['models'][0]:.2f}")
                for kind, names in (("dev", ("graded", "binary")), ("test", ("graded",))) for n in names]
        assert re.findall(r"((?:dev|test) \w+) (-?[\d.]+) -> (-?[\d.]+)", line) == want
        if metrics.get("exported", {}).get(name, {}).get("model") == "start":
            assert line.endswith(f"no gain beyond dev's noise: {run / name} is the start model")
        elif name == "cross" and after["dev"]["models"][0] < metrics["start"]["dev"]["models"][0]:
            assert line.endswith(f"{run / name} (below the start model's level on dev: prefer the bi-encoder)")
        else:
            assert line.endswith(f"; {run / name}")


def test_a_figure_without_a_value_is_said_so_in_the_closing_lines_the_table_and_the_card():
    """A model that scores every dev pair alike has no Spearman: 'n/a (all scores equal)', never 'nan', and a
    cross-encoder without one is not taken to be at or above the start's level."""
    from transenc.model_card import model_card
    from transenc.report import gain_lines, table

    nan = float("nan")
    figures = lambda x: {"models": [x], "sets": {"dev": {"metric": "spearman", "models": [x]}}}  # noqa: E731
    metrics = {"start": {"dev": figures(80.0)}, "start_names": ["start"], "best_cycle": {"cross": 1}, "exported": {},
               "lengths": [{"bi": 48, "cross": 80, "bi_export": 256, "cross_export": 256}],
               "pairs": {"count": 10, "sentences": 20}, "precision": {"training": "bf16", "labeling": "bf16"},
               "cycles": [{"cycle": 1, "stages": {"cross_train": {"models": [{"precision": "bf16"}]},
                                                  "cross_label": {"dev": figures(nan)}}}]}
    closing = gain_lines(metrics, "out")
    assert closing == ["cross: start -> cycle 1: dev dev 80.00 -> n/a (all scores equal); "
                       "out/cross (below the start model's level on dev: prefer the bi-encoder)"]
    assert ["cycle 1 cross-encoder", "n/a (all scores equal)"] in table(metrics)[1]
    card = model_card("cross", 0, metrics, {"models": ["start"], "recipe": "transenc", "seed": 1, "teachers": []})
    assert "| dev | spearman x 100 | 80.00 | n/a (all scores equal) | n/a (all scores equal) |" in card


def test_report_command_rewrites_the_report(two_dev_run, tmp_path):
    run = tmp_path / "copy"
    shutil.copytree(two_dev_run / "run", run, ignore=shutil.ignore_patterns("*.png", "report.html", "bi*", "cross*"))
    assert cli.main(["report", str(run)]) == 0
    assert (run / "report.html").is_file() and (run / "labels.png").is_file()


def test_a_report_of_a_run_that_has_not_ended_says_so(two_dev_run, tmp_path):
    run = tmp_path / "copy"
    shutil.copytree(two_dev_run / "run", run, ignore=shutil.ignore_patterns("*.png", "report.html", "bi*", "cross*"))
    assert "This run has not ended" not in (two_dev_run / "run" / "report.html").read_text(encoding="utf-8")
    metrics = json.loads((run / "metrics.json").read_text())
    for ended in ("stopped", "best_cycle", "exported"):  # as a run killed in its last cycle left them
        metrics.pop(ended, None)
    (run / "metrics.json").write_text(json.dumps(metrics))
    assert cli.main(["report", str(run)]) == 0
    assert "This run has not ended: these are its figures so far" in (run / "report.html").read_text(encoding="utf-8")


def test_report_of_constant_labels_says_so_without_a_warning(two_dev_run, tmp_path):
    import warnings

    from transenc.report import label_figure, _pyplot

    run = tmp_path / "copy"
    shutil.copytree(two_dev_run / "run", run, ignore=shutil.ignore_patterns("*.png", "report.html", "bi*", "cross*"))
    labels = run / "cycle1" / "labels_bi.npy"
    np.save(labels, np.ones_like(np.load(labels)))  # e.g. pairs of identical sentences: every cosine 1
    plt = _pyplot()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # scipy's ConstantInputWarning would be one
        fig = label_figure(plt, json.loads((run / "metrics.json").read_text()), run)
    titles = [ax.get_title() for ax in fig.axes]
    plt.close(fig)
    assert "cycle 1: agreement, no Spearman (constant labels)" in titles


def test_report_without_matplotlib_says_what_to_install(two_dev_run, tmp_path, capsys, monkeypatch):
    run = tmp_path / "copy"
    shutil.copytree(two_dev_run / "run", run, ignore=shutil.ignore_patterns("*.png", "report.html", "bi*", "cross*"))
    monkeypatch.setitem(__import__("sys").modules, "matplotlib", None)  # import matplotlib now fails
    assert cli.main(["report", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("transenc: error: ") and "pip install 'transenc[report]'" in err
    assert not any(p.suffix in (".png", ".html", ".tmp") for p in run.iterdir())


def test_report_of_a_folder_that_is_no_run(tmp_path, capsys):
    assert cli.main(["report", str(tmp_path)]) == 2
    assert f"{tmp_path / 'metrics.json'}: no such file" in capsys.readouterr().err
    (tmp_path / "metrics.json").write_text('{"cycles": [\n oops')
    assert cli.main(["report", str(tmp_path)]) == 2
    assert "metrics.json:2: invalid JSON" in capsys.readouterr().err
    for other in ('{}', '[1, 2]', '{"cycles": 5}', '{"cycles": [{"cycle": 1}]}'):  # valid JSON, no run's
        (tmp_path / "metrics.json").write_text(other)
        assert cli.main(["report", str(tmp_path)]) == 2
        assert "metrics.json: not a transenc run's metrics" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]


@pytest.mark.parametrize("edit", [
    lambda m: m["cycles"][0]["stages"]["bi_label"].update(seconds="abc"),
    lambda m: m["cycles"][0]["stages"]["bi_train"]["models"][0].update(checks=5),
    lambda m: m["start"]["dev"]["sets"]["binary"].update(models=["a"]),
    lambda m: m.update(exported=3),
], ids=["seconds-a-string", "checks-a-number", "score-a-string", "exported-a-number"])
def test_a_hand_edited_metrics_file_is_said_not_a_traceback(two_dev_run, tmp_path, capsys, edit):
    run = tmp_path / "copy"
    shutil.copytree(two_dev_run / "run", run, ignore=shutil.ignore_patterns("*.png", "report.html", "bi*", "cross*"))
    metrics = json.loads((run / "metrics.json").read_text())
    edit(metrics)
    (run / "metrics.json").write_text(json.dumps(metrics))
    assert cli.main(["report", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"transenc: error: {run}: its report cannot be drawn from its metrics.json and "
                          "cycle*/labels_*.npy (") and err.endswith("; was one edited by hand or damaged?\n")
    assert not any(p.suffix in (".png", ".html", ".tmp") for p in run.iterdir())


def test_the_demo_corpus_gets_the_bundled_dev_set(tmp_path):
    from transenc.metrics import read_labeled

    dev = read_labeled(DEMO_DEV)
    assert 200 <= len(dev) <= 300
    assert dev.labels.min() == 0 and dev.labels.max() == 5 and len(np.unique(dev.labels)) >= 15
    corpus = set(training.read_training_pairs(DEMO_PAIRS).sentences)
    assert not corpus & set(dev.sentences)  # dev sentences never appear in the training corpus
    config = TrainConfig(out=tmp_path / "r", cycles=1, seed=1, device="cpu")
    assert list(training.Trainer(config).scored.dev) == ["demo-dev"]
    (tmp_path / "p.tsv").write_text("a b\tc d\n")
    config = TrainConfig(out=tmp_path / "r2", pairs=tmp_path / "p.tsv", cycles=1, seed=1, device="cpu")
    assert training.Trainer(config).scored.dev == {}  # other training data: no dev set unless asked for
