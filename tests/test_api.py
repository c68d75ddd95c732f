"""The Python API: `import transenc` stays light, pairs come as paths, PairSets or tuples, and the
README's example runs as written."""
import re
import subprocess
import sys

import numpy as np
import pytest

import transenc
from transenc.bundled import DEMO_PAIRS
from transenc.errors import TransencError
from transenc.pairset import PairSet

from conftest import REPO

ROWS = [("a cat sits on the mat", "a kitten rests on a rug"), ("a cat sits on the mat", "stocks fell today"),
        ("rain is expected", "the forecast says rain")]


def test_import_transenc_does_not_import_torch():
    code = ("import sys, transenc\n"
            "assert 'torch' not in sys.modules\n"
            "transenc.read_pairs([('a', 'b')]); transenc.DEMO_PAIRS\n"
            "assert 'torch' not in sys.modules, 'read_pairs pulled in torch'\n")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("argv", [["label", "--pairs"], ["mine", "--sentences"], ["mine", "--out", "x.tsv", "--sentences"]])
def test_bad_input_is_refused_before_torch_is_imported(argv, tmp_path):
    """A label's input and output checks, and its first pass over the file, start before torch is
    imported (it loads beside them); mine reads its sentences first. A missing file is refused
    without it, and the command leaves without importing it either (an atexit hook runs: a plain
    exit, not the os._exit after torch)."""
    code = ("import atexit, sys\nfrom transenc import cli\n"
            "atexit.register(lambda: print('torch' in sys.modules))\n"
            f"cli.run({argv + [str(tmp_path / 'missing.txt')]!r})\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 2 and done.stdout == "False\n", done
    assert done.stderr.startswith("transenc: error: ") and "missing.txt" in done.stderr


def test_read_pairs_takes_a_path_a_pairset_or_tuples(tmp_path):
    path = tmp_path / "p.tsv"
    path.write_text("".join(f"{a}\t{b}\n" for a, b in ROWS))
    from_file, from_tuples = transenc.read_pairs(path), transenc.read_pairs(ROWS)
    assert from_file.sentences == from_tuples.sentences and np.array_equal(from_file.pairs, from_tuples.pairs)
    assert transenc.read_pairs(from_file) is from_file
    scored = transenc.read_pairs([(a, b, i) for i, (a, b) in enumerate(ROWS)])
    assert scored.labels.tolist() == [0, 1, 2]
    with pytest.raises(TransencError, match="pair 2: expected"):
        transenc.read_pairs([("a", "b"), ("only one",)])
    with pytest.raises(TransencError, match="pair 1: expected"):
        transenc.read_pairs([("a", " ")])
    as_array = transenc.read_pairs(np.array(ROWS))  # rows of a numpy array of strings
    assert as_array.sentences == from_tuples.sentences and np.array_equal(as_array.pairs, from_tuples.pairs)
    assert transenc.read_pairs([("a", "b", None)]).labels is None  # None: no score, as an empty column
    for bad in ("x", float("nan"), float("inf"), [1]):
        with pytest.raises(TransencError, match="pair 1: score .* is not a finite number"):
            transenc.read_pairs([("a", "b", bad)])


@pytest.mark.parametrize("call, message", [
    (lambda out: transenc.label(ROWS, batch_size=0), "batch_size must be a whole number of at least 1, got 0"),
    (lambda out: transenc.label(ROWS, mode="bl"), "mode must be one of .* got 'bl'"),
    (lambda out: transenc.label(ROWS, precision="fp8"), "precision must be one of .* got 'fp8'"),
    (lambda out: transenc.read_pairs(DEMO_PAIRS, on_error="ignore"), "on_error must be 'raise' or 'skip', got 'ignore'"),
    (lambda out: transenc.mine(["a", "b", "c"], batch_size=2.5), "batch_size must be .* got 2.5"),
    (lambda out: transenc.mine(["a", "b", "c"], k=0), "k .* must be a whole number of at least 1, got 0"),
    (lambda out: transenc.mine(["a", "b", "c"], min_score=float("nan")), "min_score must be a cosine, from -1 to 1, got nan"),
    (lambda out: transenc.mine(["a", "b", "c"], min_score=1.5), "min_score must be a cosine, from -1 to 1, got 1.5"),
    (lambda out: transenc.train(ROWS, ""), "--out is empty; name the run's folder"),
    (lambda out: transenc.train(ROWS, out, models=[]), "models: name at least one model"),
    (lambda out: transenc.train(ROWS, out, recipe="nope"), "--recipe must be one of .* got 'nope'"),
    (lambda out: transenc.train(ROWS, out, precision="fp8"), "precision must be one of .* got 'fp8'"),
    (lambda out: transenc.train(ROWS, out, cycles=1.5), "--cycles must be a whole number of at least 1, got 1.5"),
    (lambda out: transenc.train(ROWS, out, patience=-1), "--patience must be 0"),
    (lambda out: transenc.train(ROWS, out, max_length=4), "--max-length 4: at least 8 tokens"),
    (lambda out: transenc.train(ROWS, out, max_length=64.7), "--max-length 64.7: expected a number of tokens"),
    (lambda out: transenc.train(ROWS, out, max_length=(64, True)), "--max-length \\(64, True\\): expected a number"),
    (lambda out: transenc.train(ROWS, out, seed="x"), "--seed must be a whole number, got 'x'"),
    (lambda out: transenc.train(ROWS, out, max_length="long"), "--max-length long: expected a number of tokens"),
    (lambda out: transenc.train(ROWS, out, cycles=0), "--cycles must be a whole number of at least 1, got 0"),
])
def test_keywords_are_checked_as_the_command_checks_its_options(tmp_path, monkeypatch, call, message):
    """A bad keyword is a TransencError before any model loads or folder is made, never a KeyError, a
    silent default (batch_size=0 once meant 'the default') or argparse's exit out of the notebook."""
    from transenc.models import BiEncoder, CrossEncoder

    def no_model(*args, **kwargs):
        raise AssertionError("a model was loaded before the keywords were checked")

    for cls in (BiEncoder, CrossEncoder):
        monkeypatch.setattr(cls, "load", no_model)
    with pytest.raises(TransencError, match=message):
        call(tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_verbs_stay_verbs_when_the_library_modules_are_imported(tiny_bert):
    import transenc.api
    import transenc.labeling  # noqa: F401  (the library behind transenc.label: a name of its own, no shadowing)

    assert transenc.label is transenc.api.label and transenc.train is transenc.api.train
    bi = transenc.label(ROWS, model=tiny_bert)
    assert bi.shape == (3,) and bi.dtype == np.float32
    assert np.array_equal(bi, transenc.label(transenc.read_pairs(ROWS), model=str(tiny_bert)))
    cross = transenc.label(ROWS, model=tiny_bert, mode="cross")
    assert ((cross > 0) & (cross < 1)).all() and not np.allclose(cross, bi)


def test_mine_then_train_in_memory_and_resume(tmp_path, tiny_bert, monkeypatch):
    from transenc import training

    monkeypatch.setitem(training.RECIPES, "tiny", training.Recipe(
        cross=training.FitConfig(batch_size=8, epochs=1, lr=1e-3, warmup=0.0),
        bi=training.FitConfig(batch_size=8, epochs=1, lr=1e-3, warmup=0.0), cross_max_length=32, bi_max_length=16))
    sentences = transenc.read_pairs(transenc.DEMO_PAIRS).sentences[:20]
    mined = transenc.mine(sentences, k=2, model=tiny_bert)
    assert len({frozenset(p[:2]) for p in mined}) == len(mined) and all(a != b for a, b, _ in mined)
    assert all(isinstance(s, float) for _, _, s in mined)
    dev = tmp_path / "dev.tsv"
    dev.write_text("".join(f"{a}\t{b}\t{i % 2}\n" for i, (a, b, _) in enumerate(mined[:10])))
    run = transenc.train(mined, tmp_path / "run", models=tiny_bert, dev=dev, recipe="tiny", cycles=1)
    assert isinstance(run, transenc.Run) and run.bi == [tmp_path / "run" / "bi"] and run.cross == [tmp_path / "run" / "cross"]
    assert (run.bi[0] / "config.json").is_file() and run.report == tmp_path / "run" / "report.html"
    assert run.metrics["cycles"][0]["stages"]["bi_train"]["dev"]["sets"]["dev"]["metric"] == "auc"
    assert transenc.Run.load(tmp_path / "run").metrics == run.metrics
    # the same in-memory pairs resume; other pairs are another run
    again = transenc.train(mined, tmp_path / "run", models=tiny_bert, dev=dev, recipe="tiny", cycles=1, resume=True)
    assert again.metrics == run.metrics
    with pytest.raises(TransencError, match="other settings"):
        transenc.train(mined[1:], tmp_path / "run", models=tiny_bert, dev=dev, recipe="tiny", cycles=1, resume=True)


def readme_api_example() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    found = re.search(r"<!-- api-example -->\n```python\n(.*?)```", text, re.S)
    assert found, "README.md lost its <!-- api-example --> python block"
    return found.group(1)


@pytest.mark.slow
def test_the_readme_api_example_runs(tmp_path, monkeypatch):
    """As written, with the default model, in a fresh folder (it trains into runs/notebook)."""
    result = subprocess.run([sys.executable, "-c", readme_api_example()], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "pairs over" in result.stdout and "dev:" in result.stdout
    assert (tmp_path / "runs" / "notebook" / "report.html").is_file()
    assert isinstance(transenc.read_pairs(transenc.DEMO_PAIRS), PairSet)
