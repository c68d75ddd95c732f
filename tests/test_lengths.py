"""Training lengths from the data, exports at the start model's length, and every model scored at
the length it is exported with (issue: exports cut to the recipe's 32 / 64 tokens)."""
import json
import re
import shutil
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from transenc import api, lengths, training
from transenc.fit import FitConfig
from transenc.recipes import Recipe
from transenc.tokens import TokenCache

from test_train import pairs_64  # noqa: F401  (a fixture: 64 demo pairs and a 20-pair dev set)

NO_LENGTHS = Recipe(  # the tests' tiny fits, with lengths left to the data as the default recipe does
    cross=FitConfig(batch_size=16, epochs=2, lr=1e-3, warmup=0.1),
    bi=FitConfig(batch_size=16, epochs=2, lr=1e-3, warmup=0.0, eval_every=2),
)


def test_covering_length_is_the_smallest_multiple_of_16_keeping_99_percent_whole():
    rows = np.array([10] * 980 + [40] * 15 + [300] * 5)  # 99.5% of rows are at most 40 tokens
    assert lengths.covering_length(rows, cap=256) == 48
    assert lengths.covering_length(np.array([10] * 990 + [40] * 10), cap=256) == 16  # exactly 99% at 10
    assert lengths.covering_length(np.array([10] * 989 + [40] * 11), cap=256) == 48  # 98.9%: not enough
    assert lengths.covering_length(np.array([300] * 100), cap=256) == 256  # capped by the model
    assert lengths.covering_length(np.array([32] * 100), cap=256) == 32  # a multiple stays as it is
    assert lengths.share_whole(np.array([32, 40]), 32) == 0.5  # a row of exactly the length is whole


class FakeCache:
    """A token cache's lengths and special-token counts, for sentences of known lengths (its row
    lengths are TokenCache's own)."""

    sentence_row_lengths, pair_row_lengths = TokenCache.sentence_row_lengths, TokenCache.pair_row_lengths

    def __init__(self, sentence_lengths, single=2, pair=3):
        self.lengths = np.asarray(sentence_lengths)
        self.template = type("T", (), {"single_specials": single, "pair_specials": pair})()


def st_folder(tmp_path, max_seq_length=256, positions=512):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert", "max_position_embeddings": positions}))
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 512}))
    if max_seq_length:
        (tmp_path / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": max_seq_length}))
    return tmp_path


def test_lengths_chosen_from_a_pair_set_with_known_token_lengths(tmp_path):
    model = st_folder(tmp_path)
    sentence = np.array([20] * 99 + [100])  # with 2 specials: 99% of sentences at 22 tokens -> 32
    pairs = np.stack([np.arange(100), np.roll(np.arange(100), 1)], 1)  # pair rows 43 (98), 123 (2) tokens
    chosen = lengths.choose(model, FakeCache(sentence), pairs, None, (None, None))
    assert (chosen.bi, chosen.cross, chosen.bi_export, chosen.cross_export) == (32, 128, 256, 256)
    assert "99.0% of 100 sentences whole" in chosen.why and "100.0% of 100 pairs whole" in chosen.why
    keep98 = np.stack([np.arange(100), np.arange(100)], 1)[:99]  # 99 short pairs of 43 tokens
    assert lengths.choose(model, FakeCache(sentence), keep98, None, (None, None)).cross == 48
    reference = lengths.choose(model, FakeCache(sentence), pairs, None, (32, 64))
    assert (reference.bi, reference.cross, reference.bi_export) == (32, 64, 256)  # --recipe reference
    for fixed, want in (((32, None), (32, 128)), ((None, 64), (32, 64)), ((48, None), (48, 128))):
        one = lengths.choose(model, FakeCache(sentence), pairs, None, fixed)  # a recipe fixing one length
        assert (one.bi, one.cross) == want and "from the data" in one.why
    asked = lengths.choose(model, FakeCache(sentence), pairs, (96, 160), (32, 64))
    assert (asked.bi, asked.cross, asked.bi_export, asked.cross_export) == (96, 160, 96, 160)
    short = st_folder(tmp_path / "short" if (tmp_path / "short").mkdir() is None else None, 24, 512)
    assert lengths.choose(short, FakeCache(sentence), pairs, None, (None, None)).cross == 24  # capped by the start


def test_a_models_own_length_and_what_it_reads(tmp_path):
    assert lengths.own_length(st_folder(tmp_path / "a" if (tmp_path / "a").mkdir() is None else None)) == 256
    plain = st_folder(tmp_path / "b" if (tmp_path / "b").mkdir() is None else None, None, 128)
    assert lengths.own_length(plain) == 128 and lengths.positions(plain) == 128
    (plain / "config.json").write_text(json.dumps({"model_type": "roberta", "max_position_embeddings": 514}))
    assert lengths.positions(plain) == 512  # RoBERTa's positions start after the padding index
    with pytest.raises(Exception, match="reads at most 512 tokens"):
        lengths.check_asked((64, 600), plain)
    lengths.check_asked((512, 512), plain)  # all it reads: taken
    beyond = st_folder(tmp_path / "c" if (tmp_path / "c").mkdir() is None else None, 512, 128)
    assert lengths.own_length(beyond) == 128  # a saved max_seq_length beyond its positions: what it reads


def test_max_length_is_one_length_for_both_or_bi_then_cross_and_8_at_least():
    from transenc.train_config import parse_max_length

    assert parse_max_length("8") == (8, 8) and parse_max_length("128,256") == (128, 256)
    assert parse_max_length([96, 160]) == (96, 160) and parse_max_length(None) is None
    with pytest.raises(Exception, match="at least 8 tokens"):
        parse_max_length("7,128")


def test_a_plain_encoder_loads_at_the_length_sentence_transformers_gives_it(tiny_bert):
    """No sentence-transformers config: its positions (128 for the tiny BERT), as SentenceTransformer reads it."""
    from sentence_transformers import SentenceTransformer

    from transenc.models import BiEncoder

    assert BiEncoder.load(tiny_bert, "cpu").max_length == SentenceTransformer(str(tiny_bert), device="cpu").max_seq_length == 128


def tiny_st_bert(tmp_path, tiny_bert):
    """tiny_bert with 512 positions, saved as a sentence-transformers model at max_seq_length 256."""
    import torch
    from transformers import BertConfig, BertModel

    from transenc.models import BiEncoder

    folder = tmp_path / "tiny-512"
    shutil.copytree(tiny_bert, folder)
    config = BertConfig.from_pretrained(str(tiny_bert))
    config.max_position_embeddings = 512
    torch.manual_seed(5)
    BertModel(config).save_pretrained(str(folder))
    BiEncoder.load(folder, "cpu", max_length=256).save(folder)
    return folder


def test_a_run_says_its_lengths_records_them_and_exports_at_the_start_length(tmp_path, tiny_bert, pairs_64,
                                                                              monkeypatch, capsys):
    from transenc.models import BiEncoder

    monkeypatch.setitem(training.RECIPES, "data", NO_LENGTHS)
    start = tiny_st_bert(tmp_path, tiny_bert)
    capsys.readouterr()
    pairs, dev = pairs_64
    out = tmp_path / "run"
    api.train(pairs, out, models=start, dev=dev, recipe="data", cycles=1, seed=3, device="cpu", precision="fp32")
    metrics = json.loads((out / "metrics.json").read_text())
    chosen = metrics["lengths"][0]
    cache = BiEncoder.load(start, "cpu").token_cache(training.read_training_pairs(pairs).sentences)
    sentences = cache.lengths + 2
    assert chosen["bi"] == lengths.covering_length(sentences, 256) and chosen["bi"] % 16 == 0
    assert chosen["bi_export"] == chosen["cross_export"] == 256
    err = capsys.readouterr().err
    first = err.splitlines()[:3]
    assert any(f"lengths of tiny-512: training at the shortest multiples of 16" in line for line in first), first
    assert json.loads((out / "bi" / "sentence_bert_config.json").read_text())["max_seq_length"] == 256
    assert json.loads((out / "cycle1" / "bi-0" / "sentence_bert_config.json").read_text())["max_seq_length"] == 256
    from transformers import AutoTokenizer

    assert AutoTokenizer.from_pretrained(str(out / "cross")).model_max_length == 256
    assert (out / "scores").is_dir() and any(p.name.startswith("start-0@256.") for p in (out / "scores").iterdir())


def long_text(words: int, seed: int) -> str:
    rng = np.random.default_rng(seed)
    vocab = "river stone market window garden letter silver morning engine travel quiet harbor".split()
    return " ".join(rng.choice(vocab, words))


def test_exports_score_a_long_pair_in_sentence_transformers_as_transenc_label_does(tmp_path, tiny_bert, pairs_64,
                                                                                    monkeypatch):
    """At the exported length (256), not at the training length: a pair that differs after its 32nd token."""
    from sentence_transformers import CrossEncoder, SentenceTransformer

    from transenc import cli

    monkeypatch.setitem(training.RECIPES, "cut", replace(NO_LENGTHS, bi_max_length=32, cross_max_length=32))
    start = tiny_st_bert(tmp_path, tiny_bert)
    pairs, dev = pairs_64
    out = tmp_path / "run"
    api.train(pairs, out, models=start, dev=dev, recipe="cut", cycles=1, seed=3, device="cpu", precision="fp32")
    head = long_text(30, 1)
    a, b = head + " " + long_text(70, 2), head + " " + long_text(70, 3)  # ~200 tokens as a pair
    (tmp_path / "long.tsv").write_text(f"{a}\t{b}\n")
    scores = {}
    for mode in ("bi", "cross"):
        target = tmp_path / f"{mode}.tsv"
        assert cli.main(["label", "--pairs", str(tmp_path / "long.tsv"), "--mode", mode, "--model", str(out / mode),
                         "--precision", "fp32", "--out", str(target)]) == 0
        scores[mode] = float(target.read_text().split("\t")[-1])
    bi = SentenceTransformer(str(out / "bi"), device="cpu")
    assert bi.max_seq_length == 256
    u, v = bi.encode([a, b], convert_to_numpy=True)
    assert scores["bi"] == pytest.approx(float(u @ v / np.linalg.norm(u) / np.linalg.norm(v)), abs=1e-5)
    bi.max_seq_length = 32
    u, v = bi.encode([a, b], convert_to_numpy=True)
    assert abs(scores["bi"] - float(u @ v / np.linalg.norm(u) / np.linalg.norm(v))) > 1e-3  # not its 32-token cut
    cross = CrossEncoder(str(out / "cross"), device="cpu")
    assert scores["cross"] == pytest.approx(float(cross.predict([(a, b)])[0]), abs=2e-6)
    cut = CrossEncoder(str(out / "cross"), device="cpu", max_length=32)
    assert abs(scores["cross"] - float(cut.predict([(a, b)])[0])) > 2e-5  # a near-random tiny head: small, but 10x that


def test_the_model_card_carries_the_figures_of_metrics_json(tmp_path, tiny_bert, pairs_64, monkeypatch):
    monkeypatch.setitem(training.RECIPES, "data", NO_LENGTHS)
    pairs, dev = pairs_64
    out = tmp_path / "run"
    # fp32: in bf16 (auto on a CPU with AMX) this tiny fit's cross-encoder gives every pair one label, which stops a run
    api.train(pairs, out, models=tiny_bert, dev=dev, test=dev, recipe="data", cycles=1, seed=3, device="cpu",
              precision="fp32")
    metrics = json.loads((out / "metrics.json").read_text())
    for name, stage in (("bi", "bi_train"), ("cross", "cross_label")):
        card = (out / name / "README.md").read_text()
        exported = metrics["start"] if metrics.get("exported", {}).get(name, {}).get("model") == "start" \
            else metrics["cycles"][metrics["best_cycle"][name] - 1]["stages"][stage]
        for split in ("dev", "test"):
            row = re.search(rf"## {split}\n\n.*?\n\| dev \| (\w+) x 100 \| ([-\d.]+) \| ([-\d.]+) \|", card, re.S)
            assert row, card
            assert row[1] == metrics["start"][split]["sets"]["dev"]["metric"]
            assert float(row[2]) == round(metrics["start"][split]["sets"]["dev"]["models"][0], 2)
            assert float(row[3]) == round(exported[split]["sets"]["dev"]["models"][0], 2)
        assert f"{metrics['pairs']['count']:,} unlabeled pairs" in card
        assert f"trained at {metrics['lengths'][0][name]} tokens" in card
        assert f"exported at {metrics['lengths'][0][name + '_export']}" in card
        assert f"Scored by transenc in {metrics['precision']['labeling']} at {metrics['lengths'][0][name + '_export']} tokens" in card
        assert f"from\n`{Path(tiny_bert).name}` ({tiny_bert})" in card  # the start as the user named it
        assert "|\n\n## test" in card  # the tables apart, or markdown runs the test heading into dev's table


def test_a_card_says_an_exported_start_was_not_trained_and_whose_start_a_cross_encoder_is_compared_with():
    from transenc.model_card import model_card

    figures = lambda x: {"sets": {"dev": {"metric": "spearman", "models": [x]}}}  # noqa: E731
    metrics = {"start": {"dev": figures(80.0)}, "start_names": ["all-MiniLM-L6-v2"], "best_cycle": {"bi": 1, "cross": 1},
               "exported": {"bi": {"model": "start"}}, "lengths": [{"bi": 48, "cross": 80, "bi_export": 256, "cross_export": 256}],
               "pairs": {"count": 10, "sentences": 20}, "precision": {"training": "bf16", "labeling": "int8"},
               "cycles": [{"stages": {"bi_train": {"dev": figures(79.0), "models": [{"precision": "bf16"}]},
                                      "cross_train": {"models": [{"precision": "bf16"}]},
                                      "cross_label": {"dev": figures(81.0)}}}]}
    config = {"models": ["all-MiniLM-L6-v2"], "recipe": "transenc", "seed": 1, "teachers": []}
    bi, cross = model_card("bi", 0, metrics, config), model_card("cross", 0, metrics, config)
    assert "`all-MiniLM-L6-v2`: the start model itself" in bi  # the name once, no folder of this machine
    assert "| dev | spearman x 100 | 80.00 | 80.00 | +0.00 |" in bi
    assert "trained at 48 tokens with bf16 steps, were not kept" in bi and "precision: training steps" not in bi
    assert "| set | metric | start bi-encoder | exported | change |" in cross
    assert "| dev | spearman x 100 | 80.00 | 81.00 | +1.00 |" in cross
    assert "trained at 80 tokens; used and exported at 256" in cross and "training steps bf16" in cross
    assert "Dev chose the cycle" in cross and "SimCSE" not in cross

    # no dev set: the last cycle, said so; a SimCSE warm-up: the start it made, said so
    metrics |= {"start": {"dev": None, "test": figures(80.0)}, "exported": {}}
    for stage in ("bi_train", "cross_label"):
        metrics["cycles"][0]["stages"][stage] = {**metrics["cycles"][0]["stages"][stage], "dev": None, "test": figures(82.0)}
    bi = model_card("bi", 0, {**metrics}, {**config, "simcse": True})
    assert "`all-MiniLM-L6-v2`, after a SimCSE warm-up on the pairs: cycle 1 of 1, the last (no dev set)" in bi
    assert "With no dev set, the last\ncycle's last step is exported" in bi and "Dev chose" not in bi
    assert "| dev | spearman x 100 | 80.00 | 82.00 | +2.00 |" in bi  # the test table (its set is named dev here)


def test_the_card_of_model_k_carries_model_ks_figures_lengths_and_name():
    from transenc.model_card import model_card

    figures = lambda *x: {"sets": {"dev": {"metric": "spearman", "models": list(x)}}}  # noqa: E731
    fits = {"models": [{"precision": "bf16"}, {"precision": "fp32"}]}
    metrics = {"start": {"dev": figures(70.0, 80.0)}, "start_names": ["first", "second"], "exported": {},
               "best_cycle": {"bi-0": 1, "bi-1": 2, "cross-0": 2, "cross-1": 1},
               "lengths": [{"bi": 32, "cross": 64, "bi_export": 128, "cross_export": 128},
                           {"bi": 48, "cross": 80, "bi_export": 256, "cross_export": 384}],
               "pairs": {"count": 10, "sentences": 20}, "precision": {"training": "bf16", "labeling": "int8"},
               "cycles": [{"stages": {"bi_train": {"dev": figures(71.0, 85.0), **fits}, "cross_train": fits,
                                      "cross_label": {"dev": figures(72.0, 86.0)}}},
                          {"stages": {"bi_train": {"dev": figures(60.0, 90.0), **fits}, "cross_train": fits,
                                      "cross_label": {"dev": figures(73.0, 75.0)}}}]}
    config = {"models": ["first", "second"], "recipe": "transenc", "seed": 1, "teachers": []}
    bi, cross = model_card("bi-1", 1, metrics, config), model_card("cross-1", 1, metrics, config)
    assert "`second`: cycle 2 of 2" in bi and "| dev | spearman x 100 | 80.00 | 90.00 | +10.00 |" in bi
    assert "trained at 48 tokens; used and exported at 256" in bi and "training steps fp32" in bi
    assert "`second`: cycle 1 of 2" in cross and "| dev | spearman x 100 | 80.00 | 86.00 | +6.00 |" in cross
    assert "trained at 80 tokens; used and exported at 384" in cross


def test_the_default_start_model_is_named_as_the_user_knows_it_not_by_its_packages_folder():
    trainer = SimpleNamespace(config=SimpleNamespace(models=[]))
    assert training.Trainer.model_names.fget(trainer) == ["all-MiniLM-L6-v2"]
    trainer.config.models = ["models/all-mpnet-base-v2/"]
    assert training.Trainer.model_names.fget(trainer) == ["all-mpnet-base-v2"]


def test_label_mine_and_eval_say_how_many_rows_the_models_length_cuts(tmp_path, tiny_bert, capsys):
    """tiny_bert reads 128 tokens: one sentence of ~300 tokens is cut, and said so; short ones are not."""
    from transenc import cli

    long, short = long_text(150, 4), ["a cat sits", "the dog runs", "rain falls", "two kids eat"]
    (tmp_path / "long.tsv").write_text(f"{short[0]}\t{short[1]}\n{long}\t{short[2]}\n{short[2]}\t{short[3]}\n")
    (tmp_path / "short.tsv").write_text(f"{short[0]}\t{short[1]}\n")
    (tmp_path / "sentences.txt").write_text("\n".join([long, *short]) + "\n")
    (tmp_path / "dev.tsv").write_text(f"{long}\t{short[2]}\t0\n{short[0]}\t{short[1]}\t1\n")

    def notes(*argv, out=("--out", str(tmp_path / "out.tsv"))):
        assert cli.main([*argv, "--model", str(tiny_bert), "--device", "cpu", *out]) == 0
        return [line for line in capsys.readouterr().err.splitlines() if "note:" in line]

    assert notes("eval", "--data", str(tmp_path / "dev.tsv"), out=()) == [
        "transenc: note: dev: 1 of 4 sentences are longer than the model's 128 tokens: each is scored on its first 128"]
    api.label(tmp_path / "long.tsv", model=str(tiny_bert), mode="cross", device="cpu")
    assert "transenc: note: 1 of 3 pairs are longer than the model's 128 tokens" in capsys.readouterr().err

    assert notes("label", "--pairs", str(tmp_path / "long.tsv")) == [
        "transenc: note: 1 of 5 sentences are longer than the model's 128 tokens: each is scored on its first 128"]
    assert notes("label", "--pairs", str(tmp_path / "long.tsv"), "--mode", "cross", "--chunk-pairs", "2") == [
        "transenc: note: 1 of 3 pairs are longer than the model's 128 tokens: each is cut to 128, its longer "
        "sentence first"]
    assert notes("mine", "--sentences", str(tmp_path / "sentences.txt"), "--k", "1") == [
        "transenc: note: 1 of 5 sentences are longer than the model's 128 tokens: each is scored on its first 128"]
    for mode in ("bi", "cross"):
        assert notes("label", "--pairs", str(tmp_path / "short.tsv"), "--mode", mode) == []
