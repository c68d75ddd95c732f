"""`transenc train` on a tiny BERT: losses fall, outputs load in sentence-transformers,
kill-and-resume (between stages or inside a fit) ends with the same weights, mutual distillation runs."""
import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from transenc import api, selection, training
from transenc.recipes import combine_targets
from transenc.bundled import DEMO_PAIRS
from transenc.errors import TransencError
from transenc.recipes import FitConfig

TINY = training.Recipe(
    cross=FitConfig(batch_size=16, epochs=6, lr=1e-3, warmup=0.1),
    bi=FitConfig(batch_size=16, epochs=6, lr=1e-3, warmup=0.0),
    cross_max_length=32,
    bi_max_length=16,
)


@pytest.fixture(autouse=True)
def tiny_recipe(monkeypatch):
    monkeypatch.setitem(training.RECIPES, "tiny", TINY)


@pytest.fixture
def pairs_64(tmp_path):
    lines = DEMO_PAIRS.read_text().splitlines()[:64]
    path = tmp_path / "pairs.tsv"
    path.write_text("\n".join(lines) + "\n")
    dev = tmp_path / "dev.tsv"
    dev.write_text("".join(f"{line}\t{i % 5}\n" for i, line in enumerate(lines[:20])))
    return path, dev


def args_for(out, pairs, models, dev=None, resume=False, cycles=2, teachers=None, precision="fp32") -> dict:
    """`transenc.train`'s keywords for a tiny run (every other setting its default). fp32, not `auto`:
    a tiny random model's cross-encoder scores pairs within ~1e-5 of each other, which bf16 (`auto` on a
    CPU with AMX) rounds to one label for every pair, and labels all alike stop a run."""
    return dict(pairs=str(pairs), out=out, models=[str(m) for m in models], cycles=cycles,
                teachers=[str(t) for t in teachers] if teachers else None, dev=[str(dev)] if dev else None,
                recipe="tiny", seed=7, device="cpu", resume=resume, precision=precision)


def train(args: dict):
    """A run as the Python API starts it: TrainConfig, then Trainer (the CLI's path too)."""
    return api.train(**args)


def weights(path):
    from safetensors.torch import load_file

    return load_file(str(path / "model.safetensors"))


def assert_labeled_by(labels: Path, models: list, mode: str, pairs, precision: str) -> None:
    """A run's label file equals the mean of `models`' scores of the pairs as `transenc.label` gives them
    (within 1e-4: at int8 the run's batches and label's differ, and so do the scores, by up to ~2e-5)."""
    mean = np.mean([api.label(pairs, model=m, mode=mode, device="cpu", precision=precision) for m in models], 0)
    np.testing.assert_allclose(np.load(labels), mean, atol=1e-4, err_msg=str(labels))


def test_two_cycles_learn_and_save_sentence_transformers_models(tmp_path, tiny_bert, pairs_64, capsys):
    from sentence_transformers import CrossEncoder, SentenceTransformer

    pairs, dev = pairs_64
    out = tmp_path / "run"
    train(args_for(out, pairs, [tiny_bert], dev=dev))
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["cycles"]) == 2
    for cycle in metrics["cycles"]:
        for stage in ("cross_train", "bi_train"):
            fit = cycle["stages"][stage]["models"][0]
            assert fit["loss_last"] < fit["loss_first"], (stage, fit)
            assert fit["precision"] == "fp32"
        for stage in training.STAGES:
            assert cycle["stages"][stage]["seconds"] >= 0
    assert "on cpu, training steps fp32, labeling and dev checks fp32" in capsys.readouterr().err
    st = SentenceTransformer(str(out / "bi"), device="cpu")
    ce = CrossEncoder(str(out / "cross"), device="cpu")
    emb = st.encode(["a cat sits", "a dog runs"])
    assert emb.shape == (2, 32) and np.isfinite(emb).all()
    assert np.isfinite(ce.predict([("a cat sits", "a dog runs")])).all()
    assert metrics["best_cycle"]["bi"] in (1, 2)
    # cycle 2 builds on cycle 1: its pairs are labeled by cycle 1's bi-encoder and its own cross-encoder
    precision = metrics["precision"]["labeling"]
    assert_labeled_by(out / "cycle2" / "labels_bi.npy", [out / "cycle1" / "bi-0"], "bi", pairs, precision)
    assert_labeled_by(out / "cycle2" / "labels_cross.npy", [out / "cycle2" / "cross-0"], "cross", pairs, precision)


def test_kill_and_resume_gives_identical_weights(tmp_path, tiny_bert, pairs_64, monkeypatch):
    pairs, _ = pairs_64
    train(args_for(tmp_path / "whole", pairs, [tiny_bert]))

    real = training.Trainer.cross_label

    def killed(self, cycle, folder):
        if cycle == 2:
            raise KeyboardInterrupt  # the run dies in cycle 2, after the cross-encoder was trained
        return real(self, cycle, folder)

    monkeypatch.setattr(training.Trainer, "cross_label", killed)
    with pytest.raises(KeyboardInterrupt):
        train(args_for(tmp_path / "split", pairs, [tiny_bert]))
    monkeypatch.setattr(training.Trainer, "cross_label", real)
    state = json.loads((tmp_path / "split" / "state.json").read_text())
    assert state["done"][-1] == "cycle2.cross_train"
    with pytest.raises(TransencError, match="--resume"):
        train(args_for(tmp_path / "split", pairs, [tiny_bert]))
    train(args_for(tmp_path / "split", pairs, [tiny_bert], resume=True))
    # a finished 1-cycle run continued with --cycles 2 ends as the 2-cycle run; fewer cycles are refused
    train(args_for(tmp_path / "extended", pairs, [tiny_bert], cycles=1))
    train(args_for(tmp_path / "extended", pairs, [tiny_bert], cycles=2, resume=True))
    with pytest.raises(TransencError, match="2 cycles"):
        train(args_for(tmp_path / "extended", pairs, [tiny_bert], cycles=1, resume=True))
    for run in ("split", "extended"):
        for name in ("bi", "cross"):
            whole, other = weights(tmp_path / "whole" / name), weights(tmp_path / run / name)
            assert whole.keys() == other.keys()
            for key in whole:
                assert torch.equal(whole[key], other[key]), (run, name, key)


def test_a_run_folder_removed_under_the_run_stops_it_before_its_state_is_written(tmp_path, tiny_bert, pairs_64,
                                                                                 monkeypatch):
    """`rm -rf` of the folder while cycle 1's bi-encoder labels the pairs: the run's next write stops it
    with a clear error, and the folder is not made again, half empty (its state would mark the stages
    before done in a folder that has lost them, which no --resume could finish)."""
    pairs, _ = pairs_64
    out = tmp_path / "run"
    real = training.Trainer.bi_label

    def removed(self, cycle, folder):
        shutil.rmtree(out)
        return real(self, cycle, folder)

    monkeypatch.setattr(training.Trainer, "bi_label", removed)
    with pytest.raises(TransencError, match="removed or replaced while this run wrote to it"):
        train(args_for(out, pairs, [tiny_bert]))
    assert not out.exists()


def test_a_folder_of_other_files_is_refused_and_a_killed_runs_early_scores_go(tmp_path, tiny_bert, pairs_64):
    """`--out` a folder of the user's files: a run would replace them (report.html, metrics.json) or mix
    its own in, so it stops before any work. A folder a run was killed in before its first state save
    holds only its start's dev scores, kept by model name (start-0): no settings say they are this
    run's model's, so they go."""
    pairs, dev = pairs_64
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "report.html").write_text("my report")
    (mine / ".DS_Store").write_text("")
    with pytest.raises(TransencError, match=r"--out .*mine holds files and no run \(report.html\); .* choose a new or"):
        train(args_for(mine, pairs, [tiny_bert], dev=dev, cycles=1))
    assert sorted(p.name for p in mine.iterdir()) == [".DS_Store", "report.html"]
    results = tmp_path / "results"  # `label --out results/scores/p.tsv`: the user's scores
    (results / "scores").mkdir(parents=True)
    (results / "scores" / "p.tsv").write_text("a\tb\t0.5\n")
    with pytest.raises(TransencError, match=r"holds files and no run \(scores\)"):
        train(args_for(results, pairs, [tiny_bert], dev=dev, cycles=1))
    assert (results / "scores" / "p.tsv").is_file()
    killed = tmp_path / "killed"
    (killed / "scores").mkdir(parents=True)
    (killed / "scores" / "start-0@999.fp32.dev.npz").write_bytes(b"another model's")
    train(args_for(killed, pairs, [tiny_bert], dev=dev, cycles=1))
    assert not (killed / "scores" / "start-0@999.fp32.dev.npz").exists() and (killed / "state.json").is_file()


def test_a_resumed_run_removes_the_half_written_files_a_killed_one_left(tmp_path, tiny_bert, pairs_64):
    """A SIGKILL during a save leaves its temporary (`.NAME.XXXXXXXX.tmp`, a model's size at most): the
    next run in the folder removes them; the user's own files stay."""
    pairs, _ = pairs_64
    out = tmp_path / "run"
    train(args_for(out, pairs, [tiny_bert], cycles=1))
    stale = [out / "cycle1" / ".cross-0.yw1skq87.tmp", out / "cycle1" / ".labels_bi.npy.a_b3x9q2.tmp",
             out / "cycle1" / ".bi-0.yw1skq87.old"]  # killed between a folder's two renames (writers._replace_dir)
    for folder in (stale[0], stale[2]):
        folder.mkdir()
        (folder / "model.safetensors").write_bytes(b"half")
    stale[1].write_bytes(b"half")
    mine = [out / "notes.tmp", out / ".hidden.tmp", out / "cycle1" / "my.model.12345678.txt"]
    for path in mine:
        path.write_text("mine")
    train(args_for(out, pairs, [tiny_bert], cycles=1, resume=True))
    assert not any(path.exists() for path in stale) and all(path.exists() for path in mine)


def test_a_run_killed_inside_a_fit_resumes_from_the_fits_save(tmp_path, tiny_bert, pairs_64, monkeypatch):
    """Killed at cycle 1's 5th cross-encoder step with the fit saving every step, resumed: the fit goes on
    after step 4, the run ends with the uninterrupted run's weights and dev checks (each dev set's
    score at the checks before the kill included), and no save is left behind."""
    from functools import partial

    from transenc import fit

    pairs, dev = pairs_64
    monkeypatch.setitem(training.RECIPES, "tiny", replace(TINY, cross=replace(TINY.cross, eval_every=2)))
    monkeypatch.setattr(training, "StepCheckpoint", partial(fit.StepCheckpoint, every_seconds=0))
    train(args_for(tmp_path / "whole", pairs, [tiny_bert], dev=dev, cycles=1))
    real, steps = fit.cross_step_loss, []

    def killed_at_step_5(*args, **kwargs):
        steps.append(1)
        if len(steps) == 5:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(fit, "cross_step_loss", killed_at_step_5)
    with pytest.raises(KeyboardInterrupt):
        train(args_for(tmp_path / "killed", pairs, [tiny_bert], dev=dev, cycles=1))
    monkeypatch.setattr(fit, "cross_step_loss", real)
    assert (tmp_path / "killed" / "cycle1" / "cross-0.steps.pt").is_file()
    train(args_for(tmp_path / "killed", pairs, [tiny_bert], dev=dev, cycles=1, resume=True))
    metrics = json.loads((tmp_path / "killed" / "metrics.json").read_text())
    assert metrics["cycles"][0]["stages"]["cross_train"]["models"][0]["resumed_after_step"] == 4
    fits = [json.loads((tmp_path / run / "metrics.json").read_text())["cycles"][0]["stages"]["cross_train"]["models"][0]
            for run in ("whole", "killed")]
    assert [(f["checks"], f["checks_by_set"]) for f in fits][0] == [(f["checks"], f["checks_by_set"]) for f in fits][1]
    assert len(fits[1]["checks"]) == len(fits[1]["checks_by_set"]["dev"]) > 2
    assert (tmp_path / "killed" / "report.html").is_file()
    assert metrics["cycles"][0]["stages"]["bi_train"]["models"][0]["resumed_after_step"] == 0
    assert not list((tmp_path / "killed").rglob("*.steps.pt"))
    for name in ("bi", "cross"):
        whole, other = weights(tmp_path / "whole" / name), weights(tmp_path / "killed" / name)
        assert all(torch.equal(whole[key], other[key]) for key in whole), name


def other_tiny_bert(tiny_bert, folder):
    """tiny_bert's architecture and tokenizer with other random weights."""
    import shutil
    from transformers import BertConfig, BertModel

    shutil.copytree(tiny_bert, folder)
    torch.manual_seed(1)
    BertModel(BertConfig.from_pretrained(str(tiny_bert))).save_pretrained(str(folder))
    return folder


def test_mutual_distillation_of_two_models(tmp_path, tiny_bert, pairs_64):
    second = other_tiny_bert(tiny_bert, tmp_path / "second")
    pairs, dev = pairs_64
    out = tmp_path / "mutual"
    train(args_for(out, pairs, [tiny_bert, second], dev=dev, cycles=1))
    metrics = json.loads((out / "metrics.json").read_text())
    dev_bi = metrics["cycles"][0]["stages"]["bi_train"]["dev"]
    assert len(dev_bi["models"]) == 2 and "ensemble" in dev_bi
    for name in ("bi-0", "bi-1", "cross-0", "cross-1"):
        assert (out / name / "config.json").is_file()
    # every label is the mean of both models' scores: the start bi-encoders', then cycle 1's cross-encoders'
    precision = metrics["precision"]["labeling"]
    assert_labeled_by(out / "cycle1" / "labels_bi.npy", [tiny_bert, second], "bi", pairs, precision)
    assert_labeled_by(out / "cycle1" / "labels_cross.npy", [out / "cycle1" / "cross-0", out / "cycle1" / "cross-1"],
                      "cross", pairs, precision)


def test_non_finite_labels_stop_with_a_clear_message(tmp_path, tiny_bert, pairs_64, monkeypatch):
    pairs, _ = pairs_64
    monkeypatch.setattr(training.Trainer, "score", lambda self, e, p: np.full(len(p), np.nan, dtype=np.float32))
    with pytest.raises(TransencError, match="not finite"):
        train(args_for(tmp_path / "nan", pairs, [tiny_bert], cycles=1))
    assert not (tmp_path / "nan" / "cycle1" / "labels_bi.npy").exists()


def test_labels_all_alike_stop_with_a_clear_message(tmp_path, tiny_bert, pairs_64, monkeypatch):
    """A collapsed model scores every pair alike (in bf16 a near-collapsed one does too): an MSE fit onto
    one target for every pair learns no order and undoes the start's, so the run stops there."""
    pairs, _ = pairs_64
    monkeypatch.setattr(training.Trainer, "score", lambda self, e, p: np.full(len(p), 0.558, dtype=np.float32))
    with pytest.raises(TransencError, match=r"bi-encoder labels: all 64 pairs got the same label \(0\.558\), .*collapsed"):
        train(args_for(tmp_path / "alike", pairs, [tiny_bert], cycles=1))
    assert not (tmp_path / "alike" / "cycle1" / "labels_bi.npy").exists()


def test_co_teacher_enters_every_label_mean_and_is_not_trained(tmp_path, tiny_bert, pairs_64, monkeypatch, capsys):
    from transenc.labeling import bi_scores, cross_scores
    from transenc.models import BiEncoder, CrossEncoder
    from transenc.readers import read_pairs

    teacher = other_tiny_bert(tiny_bert, tmp_path / "teacher")
    teacher_weights = weights(teacher)
    pairs, dev = pairs_64
    out = tmp_path / "taught"
    # the student's own fit with a co-teacher: 2 epochs of 64 pairs at batch 16 (without one: 6)
    monkeypatch.setitem(training.RECIPES, "tiny", replace(
        TINY, bi_with_teacher=FitConfig(batch_size=16, epochs=2, lr=1e-3, warmup=0.0)))
    train(args_for(out, pairs, [tiny_bert], dev=dev, cycles=1, teachers=[teacher]))
    ps, _ = read_pairs(pairs)
    taught = bi_scores(BiEncoder.load(teacher, "cpu"), ps, precision="fp32")  # the run's (args_for)
    np.testing.assert_allclose(np.load(out / "teacher-0.npy"), taught, atol=1e-6)
    student = bi_scores(BiEncoder.load(tiny_bert, "cpu", None, TINY.bi_max_length), ps, precision="fp32")
    np.testing.assert_allclose(np.load(out / "cycle1" / "labels_bi.npy"), (student + taught) / 2, atol=1e-6)
    cross = cross_scores(CrossEncoder.load(out / "cycle1" / "cross-0", "cpu"), ps, precision="fp32")
    np.testing.assert_allclose(np.load(out / "cycle1" / "labels_cross.npy"), (cross + taught) / 2, atol=1e-6)
    metrics = json.loads((out / "metrics.json").read_text())
    own = metrics["teachers"][0]
    assert own["model"] == str(teacher) and len(own["dev"]["models"]) == 1 and own["seconds"] > 0
    closing = f"co-teacher {teacher}: dev dev {own['dev']['models'][0]:.2f}, labels in {own['seconds']:.1f} s"
    assert closing in capsys.readouterr().err
    from transenc.report import table

    assert [f"co-teacher 0: {teacher.name}", f"{own['dev']['models'][0]:.2f}"] in table(metrics)[1]
    assert metrics["cycles"][0]["stages"]["bi_train"]["models"][0]["steps"] == 8
    for key, value in weights(teacher).items():
        assert torch.equal(value, teacher_weights[key])


def test_the_recipes_bi_loss_trains_the_bi_encoder(tmp_path, tiny_bert, pairs_64, monkeypatch):
    from transenc import fit

    calls = {name: 0 for name in fit.BI_LOSSES}
    for name, loss in list(fit.BI_LOSSES.items()):
        monkeypatch.setitem(fit.BI_LOSSES, name, lambda *a, name=name, loss=loss: calls.update({name: calls[name] + 1}) or loss(*a))
    monkeypatch.setitem(training.RECIPES, "tiny", replace(TINY, bi_loss="cosent"))
    train(args_for(tmp_path / "run", pairs_64[0], [tiny_bert], cycles=1))
    assert calls == {name: 24 if name == "cosent" else 0 for name in fit.BI_LOSSES}  # 64 pairs, batch 16, 6 epochs


def test_mutual_distillation_across_architectures_and_tokenizers(tmp_path, tiny_bert, pairs_64):
    """A BERT and an MPNet (no SDPA, `<s> a </s></s> b </s>`, no token types) side by side: each keeps
    its own token cache, and every label is the mean of both models' labels."""
    import transformers

    from test_packing import mpnet_tokenizer

    tokenizer = mpnet_tokenizer()
    mpnet = tmp_path / "mpnet"
    torch.manual_seed(3)
    transformers.MPNetModel(transformers.MPNetConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        pad_token_id=tokenizer.pad_token_id)).save_pretrained(str(mpnet))
    tokenizer.save_pretrained(str(mpnet))
    pairs, dev = pairs_64
    out = tmp_path / "mixed"
    train(args_for(out, pairs, [tiny_bert, mpnet], dev=dev, cycles=1))
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["cycles"][0]["stages"]["cross_label"]["dev"]["models"]) == 2
    for name in ("bi-0", "bi-1", "cross-0", "cross-1"):
        assert (out / name / "config.json").is_file()
    assert json.loads((out / "bi-1" / "config.json").read_text())["model_type"] == "mpnet"


def scripted_dev(monkeypatch, gains: dict[int, float]):
    """Each cycle's dev mean set to the start's plus gains[cycle]; the stop rule reads only these."""
    def cycle_dev(metrics, cycle):
        return float(np.mean(metrics["start"]["dev"]["models"])) + gains[cycle]

    monkeypatch.setattr(selection, "cycle_dev", cycle_dev)


def dev_history(start: list[float], *cycles: list[float]) -> dict:
    """metrics.json's figures as selection reads them: each model's dev score, the start's and each cycle's."""
    def figures(models):
        return {"models": models}
    return {"start": {"dev": figures(start)},
            "cycles": [{"cycle": c, "stages": {"bi_train": {"dev": figures(m)}, "cross_label": {"dev": figures(m)}}}
                       for c, m in enumerate(cycles, start=1)]}


def test_each_models_best_cycle_is_its_own_and_a_tie_is_no_gain():
    metrics = dev_history([5.0, 5.0], [9.0, 1.0], [1.0, 9.0], [9.0, 9.0])
    assert [selection.best_cycle(metrics, kind, k) for kind in ("bi", "cross") for k in (0, 1)] == [1, 2, 1, 2]
    # a cycle that only equals the best so far does not beat it
    assert "(5.00, the start models)" in selection.stop_reason(dev_history([5.0], [5.0]), 1, 1)
    assert selection.stop_reason(dev_history([5.0], [5.5]), 1, 1) is None
    assert "(6.00, cycle 1)" in selection.stop_reason(dev_history([5.0], [6.0], [6.0], [6.0]), 3, 2)


def test_a_figure_without_a_value_is_never_the_best_and_is_printed_as_such():
    """A model that scores every dev pair alike has no Spearman (NaN). NaN > x is always False, so a max or
    argmax that meets it first kept it: a collapsed cycle was the best and reset --patience."""
    nan = float("nan")
    metrics = dev_history([5.0], [nan], [3.0])
    assert [selection.best_cycle(metrics, kind, 0) for kind in ("bi", "cross")] == [2, 2]
    assert "(5.00, the start models)" in selection.stop_reason(dev_history([5.0], [nan]), 1, 1)
    assert selection.stop_reason(dev_history([5.0], [nan], [6.0]), 2, 2) is None
    assert selection.cycle_dev({"cycles": [{"stages": {"bi_train": {"dev": {"models": [nan]}},
                                                       "cross_label": {"dev": {"models": [4.0]}}}}]}, 1) == 4.0
    stages = metrics["cycles"][0]["stages"]
    stages |= {"bi_train": {**stages["bi_train"], "seconds": 1.0}, "cross_label": {**stages["cross_label"], "seconds": 1.0,
                                                                                  "labels": {"mean": 0.5}}}
    line = selection.cycle_line(metrics, 1, "dev")
    assert "this cycle cross n/a (all scores equal), bi n/a (all scores equal)" in line and "nan" not in line


def test_a_cycle_that_does_not_improve_stops_the_run(tmp_path, tiny_bert, pairs_64, monkeypatch, capsys):
    pairs, dev = pairs_64
    scripted_dev(monkeypatch, {1: 5.0, 2: 4.0, 3: 9.0, 4: 1.0})
    out = tmp_path / "run"
    train(args_for(out, pairs, [tiny_bert], dev=dev, cycles=3))
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["cycles"]) == 2 and not (out / "cycle3").exists()
    assert metrics["stopped"]["cycle"] == 2 and "did not beat the best dev mean so far" in metrics["stopped"]["reason"]
    assert "cycle 1" in metrics["stopped"]["reason"]
    assert "stopping after cycle 2 of 3" in capsys.readouterr().err
    # resumed with more cycles, the stopped run goes on: cycle 3 improves, cycle 4 does not
    train(args_for(out, pairs, [tiny_bert], dev=dev, cycles=5, resume=True))
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["cycles"]) == 4 and metrics["stopped"]["cycle"] == 4 and "cycle 3" in metrics["stopped"]["reason"]
    assert "Ended after cycle 4 of 5" in (out / "report.html").read_text()


def test_patience_zero_runs_every_cycle_and_a_first_cycle_below_the_start_stops(tmp_path, tiny_bert, pairs_64,
                                                                                  monkeypatch):
    pairs, dev = pairs_64
    scripted_dev(monkeypatch, {1: -1.0, 2: -2.0, 3: -3.0})
    args = args_for(tmp_path / "all", pairs, [tiny_bert], dev=dev, cycles=3)
    args["patience"] = 0
    train(args)
    metrics = json.loads((tmp_path / "all" / "metrics.json").read_text())
    assert len(metrics["cycles"]) == 3 and metrics["stopped"]["reason"] == "ran the 3 cycle(s) asked (--patience 0)"
    train(args_for(tmp_path / "one", pairs, [tiny_bert], dev=dev, cycles=3))
    metrics = json.loads((tmp_path / "one" / "metrics.json").read_text())
    assert len(metrics["cycles"]) == 1 and "the start models" in metrics["stopped"]["reason"]


def test_without_dev_sets_every_cycle_runs(tmp_path, tiny_bert, pairs_64):
    pairs, _ = pairs_64
    train(args_for(tmp_path / "run", pairs, [tiny_bert], cycles=2))
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert len(metrics["cycles"]) == 2 and "no dev set" in metrics["stopped"]["reason"]


def test_negative_patience_is_refused(tmp_path, tiny_bert, pairs_64):
    args = args_for(tmp_path / "run", pairs_64[0], [tiny_bert], cycles=2)
    args["patience"] = -1
    with pytest.raises(TransencError, match="--patience must be 0"):
        train(args)
    assert not (tmp_path / "run").exists()


def test_a_gain_inside_dev_noise_exports_the_start_model(tmp_path, tiny_bert, pairs_64, monkeypatch, capsys):
    """A bi-encoder that learns nothing (lr 0) scores dev as its start does: the start goes out."""
    monkeypatch.setitem(training.RECIPES, "tiny", replace(TINY, bi=FitConfig(batch_size=16, epochs=1, lr=0.0,
                                                                             warmup=0.0)))
    pairs, dev = pairs_64
    out = tmp_path / "run"
    train(args_for(out, pairs, [tiny_bert], dev=dev, cycles=1))
    metrics = json.loads((out / "metrics.json").read_text())
    verdict = metrics["exported"]["bi"]
    assert verdict["model"] == "start" and abs(verdict["gain"]) < 1e-6 and verdict["gain_5th_percentile"] <= 0
    start = weights(tiny_bert)
    assert all(torch.equal(v, start[k]) for k, v in weights(out / "bi").items())
    assert "start model is exported in its place" in capsys.readouterr().err
    assert "exported bi: the start model" in (out / "report.html").read_text()


def test_do_no_harm_corrects_for_the_checks_by_their_kept_scores(tmp_path, tiny_bert, pairs_64, monkeypatch):
    """Every dev check of the bi-encoder's fit keeps its dev scores; the exported model's gain is
    corrected for its choice among them (max-T), and the kept check's scores are the exported
    cycle model's own."""
    from transenc.dev_scores import check_name

    monkeypatch.setitem(training.RECIPES, "tiny", replace(TINY, bi=replace(TINY.bi, eval_every=6)))
    pairs, dev = pairs_64
    out = tmp_path / "run"
    train(args_for(out, pairs, [tiny_bert], dev=dev, cycles=1))
    metrics = json.loads((out / "metrics.json").read_text())
    fit = metrics["cycles"][0]["stages"]["bi_train"]["models"][0]
    assert [step for step, _ in fit["checks"]] == [6, 12, 18, 24]
    assert (metrics["exported"]["bi"]["correction"], metrics["exported"]["bi"]["candidates"]) == ("max-t", 4)
    length = json.loads((out / "cycle1" / "bi-0" / "sentence_bert_config.json").read_text())["max_seq_length"]
    best = fit["checks"].index([fit["best_step"], fit["best_dev"]]) + 1
    at = f"@{length}.{metrics['precision']['labeling']}.dev.npz"
    with np.load(out / "scores" / f"{check_name('cycle1-bi-0', best)}{at}") as kept, \
            np.load(out / "scores" / f"cycle1-bi-0{at}") as exported:
        np.testing.assert_allclose(kept["dev"], exported["dev"], atol=1e-6)


def test_a_corpus_too_small_for_the_cross_encoder_gets_more_steps_and_a_warning(tmp_path, tiny_bert, pairs_64,
                                                                                 monkeypatch, capsys):
    monkeypatch.setitem(training.RECIPES, "tiny", replace(TINY, cross_min_steps=60))
    pairs, _ = pairs_64
    train(args_for(tmp_path / "run", pairs, [tiny_bert], cycles=1))
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["cycles"][0]["stages"]["cross_train"]["models"][0]["steps"] == 60  # 8 batches x 6 epochs: 48
    assert "64 pairs give the cross-encoder 48 steps in 6 epochs" in capsys.readouterr().err
    assert metrics["cycles"][0]["stages"]["bi_train"]["models"][0]["steps"] == 24  # the bi-encoder as it was


def test_the_cross_encoders_least_steps_are_a_bound_and_a_stretched_fit_checks_dev_four_times(capsys):
    from transenc.recipes import cross_fit_config

    assert cross_fit_config(replace(TINY, cross_min_steps=48), 128) is TINY.cross  # 8 batches x 6 epochs: enough
    assert capsys.readouterr().err == ""
    stretched = cross_fit_config(replace(TINY, cross_min_steps=60), 128, warn=False)
    assert (stretched.epochs, stretched.eval_every) == (60 / 8, 15)


def test_rank_targets_are_percentile_ranks_with_the_top_at_one():
    from transenc.recipes import cross_targets

    np.testing.assert_allclose(cross_targets(np.array([0.3, 0.1, 0.2, 0.2], np.float32), "rank"),
                               [1.0, 0.25, 0.625, 0.625])  # ties share their average rank


def test_a_simcse_warm_up_makes_the_runs_start(tmp_path, tiny_bert, pairs_64, capsys):
    """--simcse: the start model is first tuned on the pairs' sentences (SimCSE), and that model, not
    the one named, labels cycle 1 and is what the run's bi-encoders start from."""
    pairs, dev = pairs_64
    out = tmp_path / "run"
    api.train(**args_for(out, pairs, [tiny_bert], dev=dev, cycles=1), simcse=True)
    assert "SimCSE warm-up of" in capsys.readouterr().err
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["simcse.0"]) == {"loss_first", "loss_last"}  # two steps: too few to ask that it fell
    start, warmed = weights(tiny_bert), weights(out / "simcse-0")
    assert any(not torch.equal(v, start[k]) for k, v in warmed.items())
    assert_labeled_by(out / "cycle1" / "labels_bi.npy", [out / "simcse-0"], "bi", pairs, metrics["precision"]["labeling"])


@pytest.mark.parametrize("field", ["cross_targets", "bi_targets", "bi_loss"])
def test_a_recipe_with_an_unknown_kind_is_refused_when_made(field):
    with pytest.raises(ValueError, match=f"Recipe.{field} must be one of .*'cosnet'"):
        replace(TINY, **{field: "cosnet"})


def test_bi_targets_mean_order_keeps_the_cosines_and_takes_the_teachers_order():
    rng = np.random.default_rng(3)
    bi = rng.uniform(0.3, 0.9, 257).astype(np.float32)
    cross = (bi + rng.normal(0.1, 0.2, 257)).astype(np.float32)  # another scale, skewed up; no ties
    targets = combine_targets(cross, bi, "mean_order")
    np.testing.assert_array_equal(np.sort(targets), np.sort(bi))  # the bi-encoder's own values, none drifted
    teachers = np.argsort(np.argsort(cross)) + np.argsort(np.argsort(bi))  # rank sum (no ties here)
    assert (np.diff(targets[np.argsort(teachers, kind="stable")]) >= 0).all()  # in the teachers' order
    mean = combine_targets(cross, bi, "mean")
    np.testing.assert_allclose(mean, (bi + cross) / 2)
    assert abs(mean.mean() - bi.mean()) > 0.05 and abs(targets.mean() - bi.mean()) < 1e-6


def test_bi_targets_mean_calibrated_puts_the_cross_labels_on_the_bi_labels_scale():
    rng = np.random.default_rng()
    bi = rng.uniform(0.3, 0.9, 301)
    cross = 1 / (1 + np.exp(-(3 * bi + rng.normal(0, 0.3, 301))))  # a sigmoid's squeezed, shifted scale
    targets = combine_targets(cross, bi, "mean_calibrated")
    moved = 2 * targets - bi  # the calibrated cross-encoder labels
    assert moved.mean() == pytest.approx(bi.mean(), abs=1e-6) and moved.std() == pytest.approx(bi.std(), rel=1e-5)
    np.testing.assert_allclose(np.corrcoef(moved, cross)[0, 1], 1, atol=1e-9)  # a linear map, increasing
    # on other pairs (dev) the training pairs' map is applied, not one fitted on them
    dev_cross, dev_bi = cross[:50] + 0.1, bi[:50]
    slope = bi.std() / cross.std()
    np.testing.assert_allclose(combine_targets(dev_cross, dev_bi, "mean_calibrated", (cross, bi)),
                               ((dev_cross - cross.mean()) * slope + bi.mean() + dev_bi) / 2, rtol=1e-5)


@pytest.mark.parametrize("kind", ["cross", "mean", "mean_calibrated"])
def test_the_bi_encoders_teacher_is_scored_on_the_dev_pairs(tmp_path, tiny_bert, pairs_64, monkeypatch, capsys, kind):
    """Its figure: the recipe's targets made from the dev pairs' scores by the cycle's labeling models."""
    from transenc.metrics import spearman100
    from transenc.labeling import bi_scores, cross_scores
    from transenc.models import BiEncoder, CrossEncoder
    from transenc.readers import read_pairs

    monkeypatch.setitem(training.RECIPES, "tiny", replace(TINY, bi_targets=kind))
    pairs, dev = pairs_64
    out = tmp_path / "run"
    args = args_for(out, pairs, [tiny_bert], dev=dev, cycles=1)
    args["precision"] = "fp32"
    train(args)
    stages = json.loads((out / "metrics.json").read_text())["cycles"][0]["stages"]
    teacher = stages["bi_train"]["teacher_dev"]["models"][0]
    dev_pairs, _ = read_pairs(dev)
    bi = bi_scores(BiEncoder.load(tiny_bert, "cpu", None, TINY.bi_max_length), dev_pairs, precision="fp32",
                   show_progress=False)
    cross = cross_scores(CrossEncoder.load(out / "cycle1" / "cross-0", "cpu"), dev_pairs, precision="fp32",
                         show_progress=False)
    assert spearman100(cross, dev_pairs.labels) != pytest.approx(spearman100(bi, dev_pairs.labels), abs=0.1)
    if kind == "cross":  # the cross-encoder's own dev figure, as the cycle's evaluation has it
        assert teacher == pytest.approx(stages["cross_label"]["dev"]["models"][0], abs=1e-6)
    if kind == "mean_calibrated":  # the training pairs' map: their cross labels get their bi labels' mean and spread
        train_cross, train_bi = (np.load(out / "cycle1" / f"labels_{k}.npy").astype(np.float64) for k in ("cross", "bi"))
        cross = (cross - train_cross.mean()) * train_bi.std() / train_cross.std() + train_bi.mean()
    expected = spearman100(cross if kind == "cross" else (bi + cross) / 2, dev_pairs.labels)
    assert teacher == pytest.approx(expected, abs=1e-6)
    assert f"(taught by {expected:.2f})" in capsys.readouterr().err
    assert "teacher of the bi-encoder (its targets)" in (out / "report.html").read_text()


def test_a_resume_whose_pairs_or_dev_files_changed_is_refused_naming_them(tmp_path, tiny_bert, pairs_64):
    """Same names, other content: the stopped run's labels and cached dev scores belong to other
    rows, so the resume is refused, naming what changed. A run recorded before the content was
    (no "content" in its state) is taken up as before."""
    pairs, dev = pairs_64
    out = tmp_path / "run"
    finished = train(args_for(out, pairs, [tiny_bert], dev=dev, cycles=1))
    lines = pairs.read_text().splitlines()
    pairs.write_text("\n".join([lines[1], lines[0], *lines[2:]]) + "\n")  # as many pairs, two swapped
    with pytest.raises(TransencError, match=r"other settings \(what pairs holds\)"):
        train(args_for(out, pairs, [tiny_bert], dev=dev, cycles=1, resume=True))
    pairs.write_text("\n".join(lines) + "\n")
    graded = dev.read_text().splitlines()
    dev.write_text("\n".join([graded[0].rsplit("\t", 1)[0] + "\t4.5", *graded[1:]]) + "\n")  # one gold score
    with pytest.raises(TransencError, match=r"other settings \(what dev dev holds\)"):
        train(args_for(out, pairs, [tiny_bert], dev=dev, cycles=1, resume=True))
    dev.write_text("\n".join(graded) + "\n")
    # a setting is named by its option; a file named anew is that, not a file whose content changed
    with pytest.raises(TransencError, match=r"other settings \(--dev\);"):
        train({**args_for(out, pairs, [tiny_bert], cycles=1, resume=True), "dev": [f"renamed={dev}"]})
    with pytest.raises(TransencError, match=r"other settings \(--seed\);"):
        train({**args_for(out, pairs, [tiny_bert], dev=dev, cycles=1, resume=True), "seed": 8})
    state = json.loads((out / "state.json").read_text())
    del state["config"]["content"]
    (out / "state.json").write_text(json.dumps(state))
    assert train(args_for(out, pairs, [tiny_bert], dev=dev, cycles=1, resume=True)).metrics == finished.metrics


def test_a_model_named_as_before_resumes_from_another_folder_but_not_with_other_weights(tmp_path, tiny_bert, pairs_64,
                                                                                          monkeypatch):
    """The run records a model by its name and its files, not by its folder: a moved run, or the
    default model installed in another environment, resumes; the same name with other weights is
    refused, naming it. A run recorded by an older transenc (the folders, no model content) is taken
    up as before."""
    import shutil

    from safetensors.torch import save_file

    pairs, dev = pairs_64
    folders = {"named": tiny_bert}
    monkeypatch.setattr(training, "resolve_model", lambda name: Path(folders[name]))
    finished = train(args_for(tmp_path / "run", pairs, ["named"], dev=dev, cycles=1))
    shutil.move(tmp_path / "run", tmp_path / "moved")
    folders["named"] = shutil.copytree(tiny_bert, tmp_path / "elsewhere")
    assert train(args_for(tmp_path / "moved", pairs, ["named"], dev=dev, cycles=1, resume=True)).metrics == finished.metrics

    changed = {k: v + 1e-3 if k.endswith("LayerNorm.bias") else v for k, v in weights(folders["named"]).items()}
    save_file(changed, str(folders["named"] / "model.safetensors"))
    with pytest.raises(TransencError, match=r"other settings \(what model named holds\)"):
        train(args_for(tmp_path / "moved", pairs, ["named"], dev=dev, cycles=1, resume=True))

    state = json.loads((tmp_path / "moved" / "state.json").read_text())
    state["config"]["models"] = [str(folders["named"])]  # as an older transenc recorded it
    del state["config"]["content"]["model named"]
    (tmp_path / "moved" / "state.json").write_text(json.dumps(state))
    assert train(args_for(tmp_path / "moved", pairs, ["named"], dev=dev, cycles=1, resume=True)).metrics == finished.metrics


def test_a_models_digest_reads_what_loads_it_not_its_card_download_metadata_or_other_runtimes(tmp_path, tiny_bert):
    import shutil

    from transenc.models import model_digest

    model = shutil.copytree(tiny_bert, tmp_path / "model")
    before = model_digest(model)
    (model / "README.md").write_text("a card")
    (model / "onnx").mkdir()
    (model / "onnx" / "model.onnx").write_bytes(b"other weights")
    (model / ".cache").mkdir()
    (model / ".cache" / "model.safetensors.metadata").write_text("etag, when")
    assert model_digest(model) == before == model_digest(shutil.copytree(model, tmp_path / "moved"))
    (model / "1_Pooling").mkdir()
    (model / "1_Pooling" / "config.json").write_text('{"pooling_mode_cls_token": true}')
    with_pooling = model_digest(model)
    assert with_pooling != before
    (model / "1_Pooling" / "config.json").write_text('{"pooling_mode_mean_tokens": true}')
    assert model_digest(model) not in (before, with_pooling)


def test_auto_runs_this_cpus_precisions(tmp_path, tiny_bert, pairs_64):
    """`auto`: bf16 steps where the CPU has bf16 arithmetic, and labeling in its fastest inference precision."""
    from transenc.precision import cpu_auto_precision, cpu_training_precision
    from transenc.train_config import TrainConfig

    trainer = training.Trainer(TrainConfig(out=tmp_path / "run", pairs=str(pairs_64[0]), models=[str(tiny_bert)],
                                           device="cpu", precision="auto"))
    assert (trainer.train_precision, trainer.label_precision) == (cpu_training_precision(), cpu_auto_precision())


def test_pairs_given_in_memory_are_recorded_by_their_content(tmp_path, tiny_bert, pairs_64):
    """The API's pairs have no file name: the run records all of them by their content, and apart,
    as for a file, the ones it trains on (max_pairs cuts them)."""
    from transenc.train_config import TrainConfig

    pairs = api.read_pairs(pairs_64[0])
    for max_pairs, trained in ((None, pairs), (32, pairs.head(32))):
        config = TrainConfig(out=tmp_path / f"run-{max_pairs}", pairs=pairs, models=[str(tiny_bert)], recipe="tiny",
                             device="cpu", **({"max_pairs": max_pairs} if max_pairs else {}))
        recorded = training.Trainer(config).run.state["config"]
        assert recorded["pairs"] == "sha1:" + training._digest(pairs)
        assert recorded["content"]["pairs"] == training._digest(trained)


def test_a_resumed_cycle_prints_the_seconds_its_stages_took(tmp_path, tiny_bert, pairs_64, capsys):
    """A finished cycle taken up again prints the recorded times of its stages, not the 0 s that
    passed on the resume."""
    pairs, dev = pairs_64
    out = tmp_path / "run"
    train(args_for(out, pairs, [tiny_bert], dev=dev, cycles=1))
    state = json.loads((out / "state.json").read_text())
    for info in state["metrics"]["cycles"][0]["stages"].values():
        info["seconds"] = 100.0  # as a cycle of real size records them
    (out / "state.json").write_text(json.dumps(state))
    assert "Writing model shards" not in capsys.readouterr().err  # transformers' bars stay off in a run's lines
    train(args_for(out, pairs, [tiny_bert], dev=dev, cycles=1, resume=True))
    line = next(x for x in capsys.readouterr().err.splitlines() if x.startswith("cycle 1: dev"))
    assert line.endswith("| 400s") and "cross_train=100s" in line, line
