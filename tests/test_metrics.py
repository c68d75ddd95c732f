"""Binary pair tasks: ROC AUC by ranks (ties included), `transenc eval --metric`, metric choice."""
import json

import numpy as np
import pytest

from transenc import cli
from transenc.errors import InputError, TransencError
from transenc.metrics import auc, data_files, find_sets, resolve_metric, score100


def auc_by_counting(predicted, gold):
    """The definition: over every (positive, negative) pair, 1 if the positive scores higher, 1/2 on a tie."""
    pos = [p for p, g in zip(predicted, gold) if g == 1]
    neg = [p for p, g in zip(predicted, gold) if g == 0]
    return sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg) / (len(pos) * len(neg))


def test_auc_of_a_hand_made_case_with_ties():
    # positives 0.35, 0.8, 0.4; negatives 0.1, 0.4, 0.4 -> wins 1 + 3 + (1 + 1/2 + 1/2) = 6 of 9 pairs
    predicted = [0.1, 0.4, 0.35, 0.8, 0.4, 0.4]
    gold = [0, 0, 1, 1, 1, 0]
    assert abs(auc(np.array(predicted), np.array(gold)) - 6 / 9) < 1e-12
    assert auc(np.array([0.2, 0.2, 0.2]), np.array([1, 0, 1])) == 0.5  # all tied: chance
    assert auc(np.array([0.9, 0.1]), np.array([1, 0])) == 1.0
    assert auc(np.array([0.9, 0.1]), np.array([0, 1])) == 0.0


@pytest.mark.parametrize("seed", range(5))
def test_auc_equals_the_pairwise_definition_on_tied_random_scores(seed):
    rng = np.random.default_rng(seed)
    predicted = rng.integers(0, 6, 200) / 5  # six values only: many ties
    gold = rng.integers(0, 2, 200).astype(np.float32)
    assert abs(auc(predicted, gold) - auc_by_counting(predicted, gold)) < 1e-12


def test_metric_choice():
    binary, graded = np.array([0, 1, 1, 0], np.float32), np.array([0, 1.5, 5, 3], np.float32)
    assert resolve_metric("auto", binary, "f") == "auc"
    assert resolve_metric("auto", graded, "f") == "spearman"
    assert resolve_metric("spearman", binary, "f") == "spearman"
    with pytest.raises(InputError, match="f: --metric auc needs 0/1 gold labels; pair 2 has 1.5"):
        resolve_metric("auc", graded, "f")
    with pytest.raises(InputError, match="both 0 and 1"):
        resolve_metric("auc", np.ones(3, np.float32), "f")
    assert score100("auc", np.array([0.1, 0.9]), np.array([0, 1])) == 100.0


def binary_pairs(path, n=24):
    rows = [(f"the {w} sat on the mat", f"a {w} is sitting on a rug", 1) for w in ("cat", "dog", "man", "child")]
    rows += [(f"the {w} sat on the mat", f"stock prices fell on {d}", 0) for w in ("cat", "dog") for d in ("monday", "friday")]
    rows += [(f"{w} rain is expected", f"the forecast says {w} rain", 1) for w in ("heavy", "light", "no")]
    rows += [(f"{w} rain is expected", "the team won the final", 0) for w in ("heavy", "light", "no")]
    path.write_text("".join(f"{a}\t{b}\t{g}\n" for a, b, g in rows[:n]))
    return rows[:n]


def test_eval_cli_reports_auc_of_a_binary_pairs_file(tmp_path, tiny_bert, capsys):
    rows = binary_pairs(tmp_path / "para.tsv")
    assert cli.main(["label", "--pairs", str(tmp_path / "para.tsv"), "--model", str(tiny_bert),
                     "--out", str(tmp_path / "scores.tsv")]) == 0
    scores = [float(line.rsplit("\t", 1)[1]) for line in (tmp_path / "scores.tsv").read_text().splitlines()]
    expected = auc_by_counting(scores, [g for _, _, g in rows]) * 100
    for metric in (["--metric", "auc"], ["--metric", "auto"], []):  # auto, the default, as train's dev checks
        capsys.readouterr()
        assert cli.main(["eval", "--data", str(tmp_path / "para.tsv"), *metric, "--model", str(tiny_bert),
                         "--json", str(tmp_path / "r.json")]) == 0
        said = capsys.readouterr()
        assert said.out == f"para\t{expected:.2f}\n" and "transenc: metrics: para auc" in said.err
        assert abs(json.loads((tmp_path / "r.json").read_text())["para"] - expected) < 1e-9


def test_eval_cli_auc_on_graded_labels_is_a_clear_error_naming_the_line(tmp_path, tiny_bert, capsys):
    (tmp_path / "graded.tsv").write_text("a b\tc d\t0\n\ne f\tg h\t3.5\n")  # the pair after a blank line
    assert cli.main(["eval", "--data", str(tmp_path / "graded.tsv"), "--metric", "auc", "--model", str(tiny_bert),
                     "--json", str(tmp_path / "r.json")]) == 2
    assert "graded.tsv:3: --metric auc needs 0/1 gold labels; this pair's is 3.5" in capsys.readouterr().err
    assert not (tmp_path / "r.json").exists()
    sts = tmp_path / "sts"  # a folder's sets are named
    sts.mkdir()
    (sts / "sts-dev.csv").write_text("".join(f"main-news\tdev\t2012\t{i}\t{g}\ta b {i}\tc d {i}\n"
                                             for i, g in enumerate((1, 2.5, 0))))
    assert cli.main(["eval", "--data", str(sts), "--metric", "auc", "--model", str(tiny_bert)]) == 2
    assert f"{sts} (sts-b-dev): --metric auc needs 0/1 gold labels; pair 2 has 2.5" in capsys.readouterr().err


@pytest.mark.parametrize("name, text, line, reason", [
    ("header.tsv", "first\tsecond\tscore\na b\tc d\t3\n", 1,  # a header of names no reader knows
     "no gold score (a header line? a tsv header names its columns sentence1, sentence2): a set to evaluate on needs a number in every line's third field"),
    ("gap.tsv", "a b\tc d\t3\n\ne f\tg h\n", 3, "no gold score: a set to evaluate on needs a number in every line's third field"),
    ("rows.csv", "sentence1,sentence2,score\na b,c d,3\ne f,g h,\n", 3,
     "no gold score: a set to evaluate on needs a number in every row's score or label column"),
    ("lines.jsonl", '{"sentence1": "a", "sentence2": "b", "label": 1}\n{"sentence1": "c", "sentence2": "d"}\n', 2,
     'no gold score: a set to evaluate on needs a numeric "score" or "label" on every line'),
])
@pytest.mark.parametrize("command", ["eval --data SET", "train --dev SET --out RUN"])
def test_a_set_without_gold_scores_names_the_first_line_without_one(tmp_path, tiny_bert, capsys, command, name, text,
                                                                     line, reason):
    (tmp_path / name).write_text(text)
    argv = command.replace("SET", str(tmp_path / name)).replace("RUN", str(tmp_path / "run")).split()
    assert cli.main(argv + ["--model", str(tiny_bert)]) == 2
    assert capsys.readouterr().err == f"transenc: error: {tmp_path / name}:{line}: {reason}\n"
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("command", ["eval --data SET", "train --dev SET --out RUN"])
def test_a_set_whose_gold_scores_are_all_equal_is_a_clear_error(tmp_path, tiny_bert, capsys, command):
    (tmp_path / "same.tsv").write_text("a b\tc d\t3\ne f\tg h\t3\ni j\tk l\t3\n")  # Spearman with it: NaN
    argv = command.replace("SET", str(tmp_path / "same.tsv")).replace("RUN", str(tmp_path / "run")).split()
    assert cli.main(argv + ["--model", str(tiny_bert)]) == 2
    assert "same.tsv: Spearman needs at least two different gold scores; every pair here has 3" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_paired_gain_tells_a_real_gain_from_noise():
    from transenc.metrics import paired_gain

    rng = np.random.default_rng(0)
    gold = rng.uniform(0, 5, 300)
    noisy = gold + rng.normal(0, 3, 300)
    sets = [("spearman", gold)]
    gain, low = paired_gain(sets, [noisy], [noisy.copy()])
    assert gain == 0 and low <= 0  # the same scores: no gain
    gain, low = paired_gain(sets, [noisy], [gold + rng.normal(0, 0.5, 300)])
    assert gain > 20 and low > 0  # far better scores: a gain beyond the noise
    binary = (gold > 2.5).astype(np.float32)
    gain, low = paired_gain(sets + [("auc", binary)], [noisy, noisy], [noisy + rng.normal(0, 0.05, 300), noisy])
    assert abs(gain) < 1 and low < 0  # a jitter of the scores: inside the noise


def test_the_draws_are_of_the_mean_gain_over_the_sets():
    """With two dev sets, each draw is the mean of the sets' gains, not their sum: the draws centre on
    the mean gain paired_gain reports, and a set listed twice weighs as it does once."""
    from transenc.metrics import paired_draws, paired_gain

    rng = np.random.default_rng(4)
    gold = rng.uniform(0, 5, 300)
    before, after = gold + rng.normal(0, 3, 300), gold + rng.normal(0, 1, 300)
    sets, flat = [("spearman", gold), ("spearman", gold)], [("spearman", gold)]
    gain, _ = paired_gain(sets, [before, before], [after, before])  # a gain on one set, none on the other
    draws = paired_draws(sets, [before, before], [[after, before]])[0]
    assert gain == pytest.approx(paired_gain(flat, [before], [after])[0] / 2)
    assert abs(np.median(draws) - gain) < 0.25 * gain
    twice = paired_draws(sets, [before, before], [[after, after]])[0]
    assert abs(np.median(twice) - 2 * gain) < 0.25 * gain  # the same set twice: its own gain, not double


def test_auto_on_one_gold_value_says_what_spearman_needs():
    """Labels all 1 are binary but not two-sided: auto means Spearman there, and its error names Spearman,
    not an AUC the user never asked for."""
    with pytest.raises(TransencError, match="Spearman needs at least two different gold scores"):
        resolve_metric("auto", np.ones(3), "f.tsv")


def test_the_bootstrap_is_paired():
    """Both models scored on the same resampled pairs: equal scores give a gain of exactly 0 in every
    draw (an unpaired bootstrap, resampling each model's pairs apart, would not)."""
    from transenc.metrics import paired_draws

    rng = np.random.default_rng(1)
    gold = rng.uniform(0, 5, 200)
    scores = gold + rng.normal(0, 2, 200)
    assert (paired_draws([("spearman", gold)], [scores], [[scores.copy()]], resamples=300) == 0).all()
    # a gain that holds pair by pair: every paired draw sees it, however noisy the pairs are
    better = scores + 0.3 * (gold - scores)
    assert (paired_draws([("spearman", gold)], [scores], [[better]], resamples=300) > 0).all()


def test_scores_of_resampled_rows_equal_score100():
    """The bootstrap's vectorised Spearman and AUC against score100 row by row, on fresh draws with
    tied scores and tied gold labels."""
    from transenc.metrics import row_scorer, score100

    rng = np.random.default_rng()
    n = int(rng.integers(50, 90))
    gold, binary = rng.integers(0, 6, n).astype(float), rng.integers(0, 2, n).astype(float)
    predicted = np.round(rng.normal(0, 1, n), 1)  # ties
    rows = rng.integers(0, n, (7, n))
    for metric, g in (("spearman", gold), ("auc", binary)):
        expected = [score100(metric, predicted[r], g[r]) for r in rows]
        np.testing.assert_allclose(row_scorer(metric, g[rows])(predicted[rows]), expected, rtol=1e-12)


@pytest.mark.parametrize("bonferroni", [1, 9])
def test_the_bound_alone_is_the_5th_percentile_corrected_by_bonferroni(bonferroni):
    from transenc.metrics import paired_draws, paired_gain

    rng = np.random.default_rng(2)
    gold = rng.uniform(0, 5, 150)
    before, after = gold + rng.normal(0, 2, 150), gold + rng.normal(0, 1.8, 150)
    sets = [("spearman", gold)]
    draws = paired_draws(sets, [before], [[after]])[0]
    _, low = paired_gain(sets, [before], [after], bonferroni=bonferroni)
    assert low == np.percentile(draws, 5 / bonferroni)
    assert low != np.percentile(draws, 10 / bonferroni) and low != np.percentile(draws, 5 / (bonferroni + 1))


def test_the_bound_over_candidates_is_max_t():
    """Chosen among candidates by their kept scores: copies of the chosen one cost nothing; the bound
    is the chosen gain plus the 5th percentile of each draw's lowest deviation (a float64 reference)."""
    from transenc.metrics import paired_draws, paired_gain, score100

    rng = np.random.default_rng()
    gold = rng.uniform(0, 5, 120)
    before, after = gold + rng.normal(0, 2, 120), gold + rng.normal(0, 1.8, 120)
    others = [[after + rng.normal(0, s, 120)] for s in (0.5, 1.0, 2.0)]
    sets = [("spearman", gold)]
    alone = paired_gain(sets, [before], [after])
    assert paired_gain(sets, [before], [after], others=[[after.copy()]] * 4) == pytest.approx(alone, abs=1e-9)
    draws = paired_draws(sets, [before], [[after], *others])
    gains = np.array([score100("spearman", c[0], gold) - score100("spearman", before, gold) for c in [[after], *others]])
    expected = gains[0] + np.percentile((draws - gains[:, None]).min(0), 5)
    gain, low = paired_gain(sets, [before], [after], others=others)
    assert (gain, low) == pytest.approx((gains[0], expected), abs=1e-9) and low < alone[1]
    with pytest.raises(ValueError):
        paired_gain(sets, [before], [after], others=others, bonferroni=4)
    # a check that scored every pair alike (no Spearman: NaN) could not have been chosen: it is left out,
    # where its NaN draws made the bound NaN and the start was exported in place of any gain
    collapsed = [[np.full(120, 0.5)]]
    assert paired_gain(sets, [before], [after], others=others + collapsed) == pytest.approx((gain, low), abs=1e-9)


def test_do_no_harm_keeps_a_clear_gain_and_refuses_a_chosen_jitter():
    """A clear gain is exported even as the best of a fit's many checks; a small gain that is the best
    of many noisy candidates is not (the correction, by their scores or by Bonferroni), though it
    would pass as one candidate."""
    from transenc.export import harm_verdict

    rng = np.random.default_rng(3)
    gold = rng.uniform(0, 5, 400)
    start = gold + rng.normal(0, 3, 400)
    trained = gold + rng.normal(0, 1, 400)
    checks = [[trained + rng.normal(0, 0.3, 400)] for _ in range(29)]  # a fit's checks: close to each other
    clear = harm_verdict([("spearman", gold)], [start], [trained], checks, chosen_from=30)
    assert clear["model"] == "trained" and clear["gain_5th_percentile"] > 0
    assert (clear["candidates"], clear["correction"]) == (30, "max-t")
    rng = np.random.default_rng(129)  # a draw whose best jitter passes alone (of seeds 100-139, 8 did)
    gold = rng.uniform(0, 5, 400)
    start = gold + rng.normal(0, 3, 400)
    candidates = [start + rng.normal(0, 0.6, 400) for _ in range(30)]  # no real gain: the start's scores, jittered
    scored = [np.corrcoef(np.argsort(np.argsort(c)), np.argsort(np.argsort(gold)))[0, 1] for c in candidates]
    chosen = int(np.argmax(scored))  # chosen on the dev pairs it is tested on
    best, others = candidates[chosen], [[c] for i, c in enumerate(candidates) if i != chosen]
    alone = harm_verdict([("spearman", gold)], [start], [best], [], chosen_from=1)
    corrected = harm_verdict([("spearman", gold)], [start], [best], others, chosen_from=30)
    by_count = harm_verdict([("spearman", gold)], [start], [best], None, chosen_from=30)
    assert alone["model"] == "trained" and corrected["gain_5th_percentile"] < alone["gain_5th_percentile"]
    assert corrected["model"] == by_count["model"] == "start" and by_count["correction"] == "bonferroni"


def test_do_no_harm_corrects_for_the_checks_of_every_cycle():
    """The exported bi-encoder was chosen among every dev check of every cycle's fit: all of them are
    its candidates, by their kept scores, or counted for Bonferroni where one was not kept."""
    from transenc.dev_scores import check_name
    from transenc.export import check_scores

    def cycle(c, checks):
        return {"cycle": c, "stages": {"bi_train": {"models": [{"checks": [[6 * i, 80.0] for i in range(checks)]}]}}}

    metrics, asked = {"cycles": [cycle(1, 3), cycle(2, 2)]}, []

    class Kept:
        dev, missing = {"sts": None}, None

        def kept_scores(self, name, length, split):
            asked.append((name, length, split))
            return None if name == self.missing else {"sts": np.full(4, float(len(asked)))}

    scores, count = check_scores(Kept(), metrics, 0, 64)
    names = [check_name("cycle1-bi-0", i) for i in (1, 2, 3)] + [check_name("cycle2-bi-0", i) for i in (1, 2)]
    assert count == 5 and asked == [(name, 64, "dev") for name in names]
    assert [s[0][0] for s in scores] == [1, 2, 3, 4, 5]
    kept = Kept()
    kept.missing = names[3]
    assert check_scores(kept, metrics, 0, 64) == (None, 5)


def test_the_ensemble_figure_scores_the_mean_of_the_models_scores():
    from types import SimpleNamespace

    from transenc.dev_scores import figures

    rng = np.random.default_rng(5)
    gold = {"a": rng.uniform(0, 5, 60), "b": rng.integers(0, 2, 60).astype(float)}
    sets = {name: (SimpleNamespace(labels=g), "spearman" if name == "a" else "auc") for name, g in gold.items()}
    scores = [{name: g + rng.normal(0, 2, 60) for name, g in gold.items()} for _ in range(2)]
    result = figures(sets, scores)
    for name, (_, metric) in sets.items():
        mean = (scores[0][name] + scores[1][name]) / 2
        assert result["sets"][name]["ensemble"] == score100(metric, mean, gold[name])
        assert result["sets"][name]["models"] == [score100(metric, s[name], gold[name]) for s in scores]
    assert result["ensemble"] == pytest.approx(np.mean([result["sets"][n]["ensemble"] for n in sets]))
    assert "ensemble" not in figures(sets, scores[:1])


def test_kept_scores_are_per_model_length_and_precision(tmp_path):
    """A run keeps each named model's dev scores in out/scores/ and reuses them (a resumed run too),
    but never across lengths or precisions: `auto` may mean another precision where a run resumes."""
    from types import SimpleNamespace

    from transenc.dev_scores import DevScores
    from transenc.pairset import PairSetBuilder

    builder = PairSetBuilder()
    for i in range(5):
        builder.add(f"a {i}", f"b {i}")
    sets, calls = {"dev": (builder.build(), "spearman")}, []

    def score(encoder, pairs, group):
        calls.append((encoder.max_length, group))
        return np.arange(len(pairs), dtype=np.float32)

    def scored(length, precision):
        return DevScores(sets, {}, score, tmp_path, precision).scores(SimpleNamespace(max_length=length), "dev", "m")

    scored(64, "fp32")
    scored(64, "fp32")  # a new process: read back from the folder
    assert len(calls) == 1
    scored(64, "int8")
    scored(128, "fp32")
    assert len(calls) == 3 and sorted(p.name for p in tmp_path.iterdir()) == [
        "m@128.fp32.dev.npz", "m@64.fp32.dev.npz", "m@64.int8.dev.npz"]


def senteval_tree(root, inputs=b"a b\tc d\ne f\tg h\n\ni j\tk l\nm n\to p\n", gold=b"1.5\n4\n\n\n0.25\n",
                  sick=b"pair_ID\tsentence_A\tsentence_B\trelatedness_score\tentailment_judgment\n"
                       b"1\tq r\ts t\t3.6\tNEUTRAL\n2\tu v\tw x\t1.2\tNEUTRAL\n"):
    """A SentEval tree: STS13 with one scored input (line 3 blank, line 4 unlabeled) and one without a
    gold file, and SICK-R. Returns (the STS input, its gold file, the SICK file)."""
    sts = root / "STS" / "STS13-en-test"
    sts.mkdir(parents=True)
    (sts / "STS.input.headlines.txt").write_bytes(inputs)
    (sts / "STS.gs.headlines.txt").write_bytes(gold)
    (sts / "STS.input.OnWN.txt").write_bytes(b"y z\tz y\n")  # no gold file: skipped
    (root / "SICK_test_annotated.txt").write_bytes(sick)
    return sts / "STS.input.headlines.txt", sts / "STS.gs.headlines.txt", root / "SICK_test_annotated.txt"


def test_a_senteval_tree_is_scored_line_by_line(tmp_path):
    senteval_tree(tmp_path)
    sets = find_sets(tmp_path)
    assert list(sets) == ["sts13-en-test", "sick-r"]
    sts, sick = sets["sts13-en-test"], sets["sick-r"]
    assert [sts.pair_texts(i) for i in range(len(sts))] == [("a b", "c d"), ("e f", "g h"), ("m n", "o p")]
    assert sts.labels.tolist() == [1.5, 4, 0.25]
    assert [sick.pair_texts(i) for i in range(len(sick))] == [("q r", "s t"), ("u v", "w x")]
    assert np.allclose(sick.labels, [3.6, 1.2])


def test_sts_b_is_found_below_the_folder_as_transenc_data_puts_it(tmp_path):
    """`transenc data --out data` writes data/stsbenchmark/sts-*.csv; `eval --data data` reads them."""
    rows = "".join(f"g\tf\t2012\t{i}\t{i % 5}.0\ts{i} a\ts{i} b\n" for i in range(4))
    (tmp_path / "stsbenchmark").mkdir()
    for split in ("dev", "test", "train"):
        (tmp_path / "stsbenchmark" / f"sts-{split}.csv").write_text(rows)
    assert {name: len(pairs) for name, pairs in find_sets(tmp_path).items()} == {"sts-b-dev": 4, "sts-b-test": 4}
    assert sorted(p.name for p in data_files(tmp_path)) == ["sts-dev.csv", "sts-test.csv"]  # what it reads
    # SentEval's tree holds a copy too, deeper, beside the sets it adds: the shallowest is read
    senteval_tree(tmp_path / "senteval")
    (tmp_path / "senteval" / "STS" / "STSBenchmark").mkdir(parents=True)
    (tmp_path / "senteval" / "STS" / "STSBenchmark" / "sts-dev.csv").write_text(rows.replace("s0 a", "other"))
    sets = find_sets(tmp_path)
    assert list(sets) == ["sts-b-dev", "sts-b-test", "sts13-en-test", "sick-r"]
    assert sets["sts-b-dev"].pair_texts(0) == ("s0 a", "s0 b")
    assert tmp_path / "stsbenchmark" / "sts-dev.csv" in data_files(tmp_path)
    assert tmp_path / "senteval" / "STS" / "STSBenchmark" / "sts-dev.csv" not in data_files(tmp_path)
    (tmp_path / "copy").mkdir()
    (tmp_path / "copy" / "sts-dev.csv").write_text(rows)
    with pytest.raises(InputError, match="holds 2 STS-B dev sets at one depth .*: pass the folder of one"):
        find_sets(tmp_path)


@pytest.mark.parametrize("which, files, line, reason", [
    ("gold", {"gold": b"1.5\nabc\n"}, 2, "score 'abc' is not a number"),
    ("gold", {"gold": b"1.5\n4\n\n\nnan\n"}, 5, "score is not a finite number (nan)"),
    ("gold", {"gold": b"inf\n"}, 1, "score is not a finite number (inf)"),
    ("gold", {"gold": b"1.5\n\xff\n"}, 2, "invalid UTF-8 at byte 0 of the line"),
    ("inputs", {"inputs": b"a b\tc d\ne f g h\n"}, 2, "expected 2 tab-separated sentences"),
    ("inputs", {"inputs": b"a b\tc d\ne f\t\xffg h\n"}, 2, "invalid UTF-8 at byte 4 of the line"),
    ("inputs", {"inputs": b"a b\t \n"}, 1, "empty sentence"),
    ("inputs", {"inputs": b"a b\tc\x00d\n"}, 1, "NUL byte in a sentence"),
    ("sick", {"sick": b"pair_ID\tsentence_A\tsentence_B\trelatedness_score\n1\tq r\ts t\tx\n"}, 2,
     "score 'x' is not a number"),
    ("sick", {"sick": b"1\tq r\ts t\t3.6\n2\tu v\tw x\tnan\n"}, 2, "score is not a finite number (nan)"),
    ("sick", {"sick": b"1\tq r\t\t3.6\n"}, 1, "empty sentence"),
])
def test_a_bad_senteval_line_is_an_input_error_naming_its_file_and_line(tmp_path, which, files, line, reason):
    paths = dict(zip(("inputs", "gold", "sick"), senteval_tree(tmp_path, **files)))
    with pytest.raises(InputError) as error:
        find_sets(tmp_path)
    assert (error.value.path, error.value.line, error.value.reason) == (str(paths[which]), line, reason)


def test_eval_cli_names_a_bad_senteval_gold_line(tmp_path, tiny_bert, capsys):
    _, gold, _ = senteval_tree(tmp_path, gold=b"1.5\nnan\n")
    argv = ["eval", "--data", str(tmp_path), "--model", str(tiny_bert), "--json", str(tmp_path / "r.json")]
    assert cli.main(argv) == 2
    assert capsys.readouterr().err == f"transenc: error: {gold}:2: score is not a finite number (nan)\n"
    assert not (tmp_path / "r.json").exists()
