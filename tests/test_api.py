"""The Python API: `import transenc` stays light, pairs come as paths, PairSets or tuples, and the
README's example runs as written."""
import json
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
    with pytest.raises(TransencError, match="pair 1: empty sentence"):
        transenc.read_pairs([("a", " ")])
    as_array = transenc.read_pairs(np.array(ROWS))  # rows of a numpy array of strings
    assert as_array.sentences == from_tuples.sentences and np.array_equal(as_array.pairs, from_tuples.pairs)
    assert transenc.read_pairs([("a", "b", None)]).labels is None  # None: no score, as an empty column
    for bad in ("x", float("nan"), float("inf"), [1], 1e300):  # 1e300: finite, but inf as a float32 label
        with pytest.raises(TransencError, match="pair 1: score .* is not a finite number"):
            transenc.read_pairs([("a", "b", bad)])
    for row, why in [(("a\ud800", "c"), "unpaired surrogate"), (("a\x00b", "c"), "NUL byte"),
                     ({"sentence1": "a", "sentence2": "b"}, "got a dict \\(keys sentence1, sentence2\\): pass the values")]:
        with pytest.raises(TransencError, match=f"pair 1: .*{why}"):  # what a file's line is refused for
            transenc.read_pairs([row])
    skipped = transenc.read_pairs([("a", ""), ROWS[0], ("b", "c", "x")], on_error="skip")  # as for a file's lines
    assert skipped.sentences == list(ROWS[0]) and len(skipped) == 1


@pytest.mark.parametrize("suffix, text, line", [
    (".tsv", "c\td\t2\na\tb\t1e300\n", 2),  # the engine's scanner leaves it to the Python parser, which refuses it
    (".csv", "sentence1,sentence2,score\nc,d,2\na,b,-1e39\n", 3),
    (".jsonl", '{"sentence1": "a", "sentence2": "b", "score": 1e300}\n', 1),
])
def test_a_score_beyond_float32_is_refused_in_a_file_too(tmp_path, suffix, text, line):
    """1e300 is a finite float64 but an infinite float32 label: refused as not finite, at its line."""
    path = tmp_path / f"p{suffix}"
    path.write_text(text)
    with pytest.raises(TransencError, match=f"p{suffix}:{line}: score is not a finite number"):
        transenc.read_pairs(path)


@pytest.mark.parametrize("call", [lambda model: transenc.label(ROWS, model=model),
                                  lambda model: transenc.label(ROWS, model=model, mode="cross"),
                                  lambda model: transenc.mine(["a", "b"], model=model)])
def test_a_model_is_named_by_path_and_a_loaded_one_is_refused_as_such(call):
    with pytest.raises(TransencError, match="a model is named by its folder or hub name .* got object; save a loaded one"):
        call(object())
    with pytest.raises(TransencError, match="model 'm{80}...' is no folder or hub name \\(File name too long\\)"):
        call("m" * 300)  # a loaded model's repr, say


def test_numpy_numbers_are_taken_where_python_ones_are(tiny_bert, tmp_path):
    """What a notebook's numpy or pandas arithmetic gives: numpy ints and floats, as ints and floats."""
    from transenc.train_config import TrainConfig

    assert np.array_equal(transenc.label(ROWS, model=tiny_bert, batch_size=np.int64(2)),
                          transenc.label(ROWS, model=tiny_bert, batch_size=2))
    sentences = [a for a, _ in ROWS] + [b for _, b in ROWS]
    assert transenc.mine(sentences, k=np.int64(2), min_score=np.float32(-0.5), model=tiny_bert) == \
        transenc.mine(sentences, k=2, min_score=-0.5, model=tiny_bert)
    config = TrainConfig(out=tmp_path, cycles=np.int64(1), seed=np.int32(3), patience=np.int64(0), max_length=np.int64(32))
    assert json.loads(json.dumps(config.record()))["cycles"] == 1 and config.max_length == (32, 32)  # state.json takes it


def test_evaluate_gives_what_the_command_prints(tiny_bert, capsys):
    from transenc import cli

    assert cli.main(["eval", "--data", str(transenc.DEMO_DEV), "--model", str(tiny_bert)]) == 0
    printed = capsys.readouterr().out
    seen = []
    results = transenc.evaluate(transenc.DEMO_DEV, model=tiny_bert, each=lambda *x: seen.append(x))
    assert printed == "".join(f"{name}\t{value:.2f}\n" for name, value in results.items()) and list(results) == ["demo_dev"]
    assert seen == [("demo_dev", "spearman", results["demo_dev"])]
    pairs = transenc.read_pairs(transenc.DEMO_DEV)  # in memory: the same set, named "pairs"
    assert transenc.evaluate(pairs, model=tiny_bert) == {"pairs": results["demo_dev"]}


def test_a_load_leaves_transformers_logging_as_it_was(tiny_bert):
    """A notebook's own transformers verbosity and progress bars stay as they were after a model loads."""
    from transformers.utils import logging

    logging.set_verbosity_info()
    try:
        transenc.label(ROWS, model=tiny_bert, mode="cross")  # a fresh pair head: quiet while it loads
        assert logging.get_verbosity() == logging.INFO and logging.is_progress_bar_enabled()
    finally:
        logging.set_verbosity_warning()


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
    (lambda out: transenc.train(ROWS, out, models=object()), "models: expected a path or name, or a list of them, got object"),
    (lambda out: transenc.train(ROWS, out, dev=transenc.read_pairs(ROWS)), "dev: expected a path or name.* got PairSet"),
    (lambda out: transenc.train(ROWS, out, test=[("a", "b", 1.0)]), "test: expected a path or name.* holding tuple"),
    (lambda out: transenc.read_pairs(ROWS, on_error="bogus"), "on_error must be 'raise' or 'skip', got 'bogus'"),
    (lambda out: transenc.read_pairs(None), "pairs: expected a path, a PairSet or .* got NoneType"),
    (lambda out: transenc.read_pairs(5), "pairs: expected a path, a PairSet or .* got int"),
    (lambda out: transenc.mine(transenc.read_pairs(ROWS)), "sentences: expected a file or a list of strings \\(a PairSet's are its .sentences\\)"),
    (lambda out: transenc.mine(["a", "", "b"]), "sentence 2: empty sentence"),
    (lambda out: transenc.mine(["a", None, "b"]), "sentence 2: not a str but NoneType"),
    (lambda out: transenc.mine([b"a", b"b"]), "sentence 1: not a str but bytes"),
    (lambda out: transenc.mine(["a", "b\x00c"]), "sentence 2: NUL byte in a sentence"),
    (lambda out: transenc.mine(["a\ud800", "b"]), "sentence 1: a sentence holds an unpaired surrogate"),
    (lambda out: transenc.mine(str(out / "missing.txt")), "missing.txt: no such file"),
    (lambda out: transenc.mine("A cat sleeps on the sofa."), "no file is named 'A cat sleeps on the sofa.': a str names "
                                                             "a file of sentences, .* pass the sentences themselves as a list"),
    (lambda out: transenc.mine(out.parent), "is a folder, not a sentences file"),
    (lambda out: transenc.evaluate(ROWS), "pairs: pair 1 has none; every pair needs a gold score"),
    (lambda out: transenc.evaluate([("a", "b", 1.0), ("a", "c")]), "pairs: pair 2 has none; every pair needs a gold"),
    (lambda out: transenc.evaluate([("a", "b", 1.0), ("a", "c", 2.0)], each=5), "each must be a function"),
    (lambda out: transenc.read_pairs([(None, "b")]), "pair 1: sentence1 is not a str but NoneType"),
    (lambda out: transenc.read_pairs([("a", "b"), ("a", float("nan"))]), "pair 2: sentence2 is not a str but float"),
    (lambda out: transenc.read_pairs({("a", "b"), ("c", "d")}), "pairs: a set has no order, and score i is pair i's"),
    (lambda out: transenc.label(PairSet(["a", "b"], np.array([[0, 7]]))), "must index its 2 sentences \\(0 to 1\\)"),
    (lambda out: transenc.label(PairSet(["a", "b"], np.array([0, 1]))), "must be an int array of shape \\(N, 2\\)"),
    (lambda out: transenc.label(PairSet(["a", None], np.array([[0, 1]]))), "sentences\\[1\\]: not a str but NoneType"),
    (lambda out: transenc.label(PairSet(["a\ud800", "b"], np.array([[0, 1]]))),
     "PairSet.sentences\\[0\\]: a sentence holds an unpaired surrogate"),
    (lambda out: transenc.label(PairSet(["a", " "], np.array([[0, 1]]))), "PairSet.sentences\\[1\\]: empty sentence"),
    (lambda out: transenc.evaluate(PairSet(["a", "b"], np.array([[0, 1], [1, 0]]), np.ones(1, np.float32))),
     "PairSet.labels holds 1 scores for 2 pairs"),
    (lambda out: transenc.mine(["a", "b", "c"], k=None), "k .* must be a whole number of at least 1, got None"),
    (lambda out: transenc.train(ROWS, None), "out must be the run's folder, a path, got NoneType"),
    (lambda out: transenc.train(ROWS, out, simcse="no"), "simcse must be True or False, got 'no'"),
    (lambda out: transenc.train(ROWS, out, resume="no"), "resume must be True or False, got 'no'"),
    (lambda out: transenc.label(ROWS, device="mps"), "--device mps: transenc runs on cpu or on cuda"),
    (lambda out: transenc.label(ROWS, device="cpu:1"), "--device cpu:1: transenc runs on cpu or on cuda"),
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


def test_a_model_that_scores_every_pair_alike_has_no_spearman_and_says_so(tiny_bert):
    """Not the NaN (and scipy's warning) that a Spearman of constant scores is."""
    with pytest.raises(TransencError, match="pairs: the model gives every pair the same score .*: Spearman has no"):
        transenc.evaluate([("a cat", "a dog", 4.0), ("a cat", "a dog", 1.0)], model=tiny_bert)


def test_a_pair_set_of_other_int_indices_and_other_path_and_bool_types_are_taken(tiny_bert, tmp_path):
    import os

    from transenc.train_config import TrainConfig

    pairs = transenc.read_pairs(ROWS)
    wide = PairSet(pairs.sentences, pairs.pairs.astype(np.int64))  # as numpy makes them by default
    assert np.array_equal(transenc.label(wide, model=tiny_bert), transenc.label(pairs, model=tiny_bert))

    class Folder(os.PathLike):  # py.path.local, say
        def __fspath__(self):
            return str(tmp_path / "run")

    config = TrainConfig(out=Folder(), simcse=np.True_, resume=np.False_)
    assert (config.simcse, config.resume) == (True, False) and type(config.simcse) is bool


def test_the_api_exports_what_it_returns_and_raises():
    assert transenc.PairSet is type(transenc.read_pairs(ROWS))
    assert issubclass(transenc.ModelError, transenc.TransencError) and issubclass(transenc.OutputError, transenc.TransencError)


def test_verbs_stay_verbs_when_the_library_modules_are_imported(tiny_bert):
    import transenc.api
    import transenc.labeling  # noqa: F401  (the library behind transenc.label: a name of its own, no shadowing)

    import transenc.metrics  # noqa: F401  (eval's metrics: a module of another name than transenc.evaluate)

    assert transenc.label is transenc.api.label and transenc.train is transenc.api.train
    assert transenc.evaluate is transenc.api.evaluate
    assert {"label", "evaluate", "mine", "train", "read_pairs", "Run"} <= set(dir(transenc))
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
    # fp32: in bf16 (auto on a CPU with AMX) the tiny model's cross-encoder gives every pair one label, which stops a run
    run = transenc.train(mined, tmp_path / "run", models=tiny_bert, dev=dev, recipe="tiny", cycles=1, precision="fp32")
    assert isinstance(run, transenc.Run) and run.bi == [tmp_path / "run" / "bi"] and run.cross == [tmp_path / "run" / "cross"]
    assert (run.bi[0] / "config.json").is_file() and run.report == tmp_path / "run" / "report.html"
    assert run.metrics["cycles"][0]["stages"]["bi_train"]["dev"]["sets"]["dev"]["metric"] == "auc"
    assert transenc.Run.load(tmp_path / "run").metrics == run.metrics
    # the same in-memory pairs resume; other pairs are another run
    again = transenc.train(mined, tmp_path / "run", models=tiny_bert, dev=dev, recipe="tiny", cycles=1, resume=True,
                           precision="fp32")
    assert again.metrics == run.metrics
    with pytest.raises(TransencError, match="other settings"):
        transenc.train(mined[1:], tmp_path / "run", models=tiny_bert, dev=dev, recipe="tiny", cycles=1, resume=True,
                       precision="fp32")


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
