"""The training step and loop: a step cut into sub-batches (CPU policy) or padded to a fixed shape
(GPU policy, exercised here on the CPU) has the loss and gradient of the plain padded batch that
sentence-transformers would build with the tokenizer; the GPU policy draws few shapes; the loop
waits for the device only at checks; a non-finite loss stops it; the best dev step's weights win;
a fit killed mid-way goes on from its save to the same weights."""
import contextlib
import math
from dataclasses import replace

import numpy as np
import pytest
import torch

import corpora
import transenc
from transenc import fit
from transenc.dropout import engine_dropout
from transenc.errors import TransencError
from transenc.models import BiEncoder, CrossEncoder
from transenc.pairset import PairSetBuilder
from transenc.readers import read_pairs
from transenc.bundled import DEMO_PAIRS

POLICIES = {"cpu": fit.CPU_POLICY, "gpu": fit.GPU_POLICY}


def pairs_of_mixed_lengths(n: int, rng):
    """Pairs of demo-corpus words cut to 2..20 words, so a padded batch is far from full."""
    words = DEMO_PAIRS.read_text().split()
    builder = PairSetBuilder()
    for _ in range(n):
        a, b = (" ".join(words[(s := rng.integers(0, len(words) - 20)):s + rng.integers(2, 21)]) for _ in range(2))
        builder.add(a, b)
    return builder.build()


def loss_and_gradient(model, compute_loss):
    model.zero_grad(set_to_none=True)
    loss = compute_loss()
    loss.backward()
    return loss.item(), torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("kind", ["cross", "bi"])
def test_step_equals_one_plain_padded_batch(kind, policy, tiny_bert):
    policy = POLICIES[policy]
    torch.manual_seed(1)
    rng = np.random.default_rng(3)
    corpus = pairs_of_mixed_lengths(40, rng)
    texts = [corpus.pair_texts(i) for i in range(len(corpus))]
    targets = torch.from_numpy(rng.uniform(0, 1, len(corpus)).astype(np.float32))
    if kind == "cross":
        encoder, step_loss, plain_loss = CrossEncoder.load(tiny_bert, "cpu", 48), fit.cross_step_loss, fit.cross_step_loss_reference
        cache = encoder.token_cache(corpus.sentences)
        parts = fit.step_pair_batches(cache, corpus.pairs, 48, policy)
    else:
        encoder, step_loss, plain_loss = BiEncoder.load(tiny_bert, "cpu", "mean", 24), fit.bi_step_loss, fit.bi_step_loss_reference
        cache = encoder.token_cache(corpus.sentences)
        parts = fit.step_sentence_batches(cache, corpus.pairs.reshape(-1), 24, policy)
    if policy is fit.CPU_POLICY:
        assert len(parts) > 1  # the step really is cut into several sub-batches
    else:  # one batch with padding rows and padding tokens beyond the plain batch's
        (part,) = parts
        assert part.input_ids.shape[0] > len(part.rows) and part.input_ids.shape[0] % policy.row_multiple == 0
        assert part.attention_mask.sum(0)[-1] == 0 or part.input_ids.shape[1] == encoder.max_length
    encoder.model.eval()  # no dropout: both ways must then agree to rounding
    loss_plain, grad_plain = loss_and_gradient(encoder.model, lambda: plain_loss(encoder, texts, targets))
    loss_cut, grad_cut = loss_and_gradient(encoder.model, lambda: step_loss(encoder, cache, corpus.pairs, targets, policy))
    assert loss_cut == pytest.approx(loss_plain, rel=1e-5)
    assert torch.allclose(grad_cut, grad_plain, rtol=1e-4, atol=1e-6)
    assert grad_plain.abs().max() > 0


def epoch_shapes(cache, rows: np.ndarray, batch_size: int, max_length: int, policy, pairs: bool) -> set:
    order = np.random.default_rng(0).permutation(len(rows))
    shapes = set()
    for i in range(0, len(rows), batch_size):
        step = rows[order[i:i + batch_size]]
        batches = (fit.step_pair_batches(cache, step, max_length, policy) if pairs else
                   fit.step_sentence_batches(cache, np.concatenate([step[:, 0], step[:, 1]]), max_length, policy))
        shapes.update(tuple(b.input_ids.shape) for b in batches)
    return shapes


@pytest.mark.parametrize("corpus", ["demo-mix", "sts-b"])
def test_gpu_policy_draws_few_shapes_per_epoch(corpus, default_model_path):
    """One epoch of STS-B train (or as many demo_mix pairs) at the default recipe's batches: the GPU
    policy sees a handful of (rows, tokens) shapes, the CPU policy (cut for padding) a new one at
    nearly every forward."""
    pairs = transenc.read_pairs(corpora.demo_mix(5749)) if corpus == "demo-mix" else \
        read_pairs(corpora.sts_b_folder() / "sts-train.csv")[0]
    encoder = BiEncoder.load(default_model_path, "cpu")
    cache = encoder.token_cache(pairs.sentences)
    both = pairs.both_orders()
    counts = {}
    for name, policy in POLICIES.items():
        counts[name] = (len(epoch_shapes(cache, both, 32, 64, policy, pairs=True)),
                        len(epoch_shapes(cache, pairs.pairs, 128, 32, policy, pairs=False)))
    print("distinct (rows, tokens) shapes per epoch, (cross, bi):", counts)
    assert max(counts["gpu"]) <= 12
    assert min(counts["cpu"]) > 3 * max(counts["gpu"])


SYNCS = ("item", "tolist", "cpu", "numpy", "__bool__", "__float__", "__int__", "__index__")


def sync_log(monkeypatch) -> list[str]:
    """Every call that makes the host wait for a device tensor, as 'sync' entries (on the CPU, the
    calls that would): wraps the Tensor methods that read a value back."""
    log = []
    for name in SYNCS:
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _original=original, **kwargs):
            log.append("sync")
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    return log


def tiny_fit(tiny_bert, kind, policy, evaluate_of, steps=12, eval_every=4, checkpoint=None):
    """A short fit of a 2-layer BERT; evaluate_of(encoder) gives its dev check."""
    torch.manual_seed(0)
    corpus = pairs_of_mixed_lengths(8 * steps, np.random.default_rng(0))
    labels = np.random.default_rng(1).uniform(0, 1, len(corpus)).astype(np.float32)
    cfg = fit.FitConfig(batch_size=8, epochs=1, lr=1e-3, warmup=0.1, eval_every=eval_every)
    if kind == "cross":
        encoder, run = CrossEncoder.load(tiny_bert, "cpu", 32), fit.fit_cross
    else:
        encoder, run = BiEncoder.load(tiny_bert, "cpu", "mean", 16), fit.fit_bi
    cache = encoder.token_cache(corpus.sentences)
    return encoder, run(encoder, cache, corpus.pairs, labels, cfg, 5, evaluate_of(encoder), policy,
                        checkpoint=checkpoint)


def syncs_between_checks(tiny_bert, kind, policy, monkeypatch) -> list[int]:
    log = sync_log(monkeypatch)
    draw = fit._batches_of
    # drawing the epoch's shuffled batches on the host comes before the first step: not counted
    monkeypatch.setattr(fit, "_batches_of", lambda *a: (draw(*a), log.clear())[0])
    # a GPU's steps drop with torch's dropout; the engine's (CPU tensors only) reads its seed on the host
    monkeypatch.setattr(fit, "engine_dropout", lambda model: contextlib.nullcontext())
    try:
        tiny_fit(tiny_bert, kind, policy, lambda encoder: lambda: log.append("check") or 0.0)
    finally:
        monkeypatch.undo()
    counts, count = [], 0
    for entry in log:
        if entry == "check":
            counts.append(count)
            count = 0
        else:
            count += 1
    return counts


@pytest.mark.parametrize("kind", ["cross", "bi"])
def test_no_host_sync_between_checks(kind, tiny_bert, monkeypatch):
    """Under the GPU policy the loop reads from the device once per check (the losses since the
    last one); the old loop (a check every step, the plain AdamW) is caught by the same counter."""
    new = syncs_between_checks(tiny_bert, kind, fit.GPU_POLICY, monkeypatch)
    assert new == [1, 1, 1]  # 12 steps, a dev check every 4: one read per check, none per step
    old = syncs_between_checks(tiny_bert, kind, replace(fit.CPU_POLICY, optimizer="plain", check_every=1), monkeypatch)
    assert len(old) == 3 and all(n >= 4 for n in old), old


def test_non_finite_loss_stops_naming_the_step():
    model = torch.nn.Linear(2, 1)
    x = torch.ones(1, 2)

    def step_loss(idx):
        loss = model(x).sum() ** 2
        return loss * math.nan if 7 in idx else loss

    cfg = fit.FitConfig(batch_size=1, epochs=1, lr=1e-3, warmup=0.0)
    n = 30
    # batches are a seeded permutation: the step that holds row 7
    step = 1 + [b.tolist() for b in fit._batches_of(n, cfg, torch.Generator().manual_seed(0))].index([7])
    first = (step - 1) // 10 * 10 + 1
    with pytest.raises(TransencError, match=rf"loss became nan at step {step} \(checked at steps {first}-{first + 9}\)"):
        fit._train(model, torch.device("cpu"), n, cfg, step_loss, 0, "toy", None, replace(fit.CPU_POLICY, check_every=10))


@pytest.mark.parametrize("first", [1.0, math.nan])
@pytest.mark.parametrize("kind", ["cross", "bi"])
def test_best_dev_weights_are_restored_and_saved(kind, first, tiny_bert, tmp_path):
    """The model ends with the weights of its best dev check (the 2nd of 3; the 3rd ties it, and a tie
    is no gain), and saves exactly those. A first check without a value (NaN: every dev pair scored
    alike) is below any other, not kept for good because NaN > x is always False."""
    from safetensors.torch import load_file

    scores, states = iter([first, 3.0, 3.0]), []

    def evaluate_of(encoder):
        def evaluate():
            states.append({k: v.clone() for k, v in encoder.model.state_dict().items()})
            return next(scores)
        return evaluate

    encoder, result = tiny_fit(tiny_bert, kind, fit.GPU_POLICY, evaluate_of)
    assert result.checks[1:] == [(8, 3.0), (12, 3.0)] and result.checks[0][0] == 4
    np.testing.assert_equal(result.checks[0][1], first)
    assert (result.best_step, result.best_dev) == (8, 3.0)
    assert len(result.losses) == 12 and all(isinstance(x, float) for x in result.losses)
    best, last = states[1], states[2]
    assert any(not torch.equal(best[k], last[k]) for k in best)  # training moved on after the best check
    encoder.save(tmp_path / "m")
    saved = load_file(str(tmp_path / "m" / "model.safetensors"))
    assert saved and set(saved) <= set(best)
    for key, value in saved.items():
        assert torch.equal(value, best[key]), key


class Killed(Exception):
    pass


@pytest.mark.parametrize("kind", ["cross", "bi"])
def test_a_fit_killed_mid_way_goes_on_from_its_save_to_the_same_weights(kind, tiny_bert, tmp_path):
    """Saved every step, killed in the dev check of step 8 (the best so far is step 4's), resumed:
    the losses, the checks, the best step and the final weights are those of the uninterrupted fit
    (the tiny BERT has dropout, so the random state must come back too)."""
    def by_weights(encoder):  # a dev score that the weights decide, the same in every process
        return lambda: float(next(encoder.model.parameters()).detach().double().sum())

    whole_encoder, whole = tiny_fit(tiny_bert, kind, fit.GPU_POLICY, by_weights)
    path = tmp_path / "m.steps.pt"
    calls = []

    def killed_at_second_check(encoder):
        score = by_weights(encoder)

        def evaluate():
            calls.append(1)
            if len(calls) == 2:
                raise Killed
            return score()
        return evaluate

    with pytest.raises(Killed):
        tiny_fit(tiny_bert, kind, fit.GPU_POLICY, killed_at_second_check,
                 checkpoint=fit.StepCheckpoint(path, every_seconds=0))
    assert torch.load(path, weights_only=True)["best_step"] == 4
    encoder, resumed = tiny_fit(tiny_bert, kind, fit.GPU_POLICY, by_weights,
                                checkpoint=fit.StepCheckpoint(path, resume=True, every_seconds=0))
    assert resumed.resumed_after == 7 and whole.resumed_after == 0
    assert (resumed.losses, resumed.checks, resumed.best_step) == (whole.losses, whole.checks, whole.best_step)
    a, b = whole_encoder.model.state_dict(), encoder.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_save_of_other_settings_or_a_damaged_one_is_refused(tiny_bert, tmp_path):
    path = tmp_path / "m.steps.pt"
    tiny_fit(tiny_bert, "bi", fit.GPU_POLICY, lambda e: None, checkpoint=fit.StepCheckpoint(path, every_seconds=0))
    assert torch.load(path, weights_only=True)["steps"] == 12  # the last save, step 11: the end saves none
    with pytest.raises(TransencError, match="other settings"):
        tiny_fit(tiny_bert, "bi", fit.GPU_POLICY, lambda e: None, steps=10,
                 checkpoint=fit.StepCheckpoint(path, resume=True))
    path.write_bytes(b"not a save")
    with pytest.raises(TransencError, match=r"m\.steps\.pt: cannot resume the fit, its saved steps are damaged"):
        tiny_fit(tiny_bert, "bi", fit.GPU_POLICY, lambda e: None, checkpoint=fit.StepCheckpoint(path, resume=True))
    # without resume the file is no one's business: the fit starts afresh
    assert tiny_fit(tiny_bert, "bi", fit.GPU_POLICY, lambda e: None,
                    checkpoint=fit.StepCheckpoint(path))[1].resumed_after == 0


def test_the_learning_rate_warms_up_from_its_first_step_then_decays_to_zero():
    """Linear warm-up over the first 10% of steps (the first step already at 1/warm of the rate), then
    linear decay to 0 at the last step."""
    model = torch.nn.Linear(2, 2)
    opt, schedule = fit._optimizer(model, fit.FitConfig(batch_size=1, epochs=1, lr=1.0, warmup=0.1), 100, "plain")
    rates = []
    for _ in range(100):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        schedule.step()
    assert rates[0] == pytest.approx(0.1) and rates[4] == pytest.approx(0.5)
    assert rates[9] == rates[10] == pytest.approx(1.0) and rates[99] == pytest.approx(1 / 90)


def test_weight_decay_spares_biases_and_layer_norms(tiny_bert):
    model = BiEncoder.load(tiny_bert, "cpu").model
    opt, _ = fit._optimizer(model, fit.FitConfig(batch_size=1, epochs=1, lr=1e-3, warmup=0.0), 10, "plain")
    decayed, spared = opt.param_groups
    names = {id(p): name for name, p in model.named_parameters()}
    assert decayed["weight_decay"] == 0.01 and spared["weight_decay"] == 0.0
    assert all(p.ndim == 2 and "LayerNorm" not in names[id(p)] for p in decayed["params"])
    assert {names[id(p)] for p in spared["params"]} == {n for n, p in model.named_parameters()
                                                          if p.ndim < 2 or "LayerNorm" in n}


def test_gradients_are_clipped_at_the_configs_norm(monkeypatch):
    clipped, clip = [], torch.nn.utils.clip_grad_norm_
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", lambda params, norm: clipped.append(norm) or clip(params, norm))
    model = torch.nn.Linear(2, 1)
    cfg = fit.FitConfig(batch_size=4, epochs=1, lr=1e-3, warmup=0.0, max_grad_norm=0.5)
    fit._train(model, torch.device("cpu"), 12, cfg, lambda idx: model(torch.ones(len(idx), 2)).sum() ** 2, 0, "toy",
               None, fit.CPU_POLICY)
    assert clipped == [0.5] * 3


def test_every_epoch_is_a_new_seeded_order_of_all_rows_and_a_last_partial_batch_counts():
    cfg = fit.FitConfig(batch_size=8, epochs=1.5, lr=1.0, warmup=0.0)
    batches = fit._batches_of(30, cfg, torch.Generator().manual_seed(1))
    assert [len(b) for b in batches] == [8, 8, 8, 6, 8, 8]  # 4 batches an epoch, the last of 6 rows; half of epoch 2
    assert sorted(np.concatenate(batches[:4]).tolist()) == list(range(30))
    two = fit._batches_of(30, replace(cfg, epochs=2), torch.Generator().manual_seed(1))
    assert not np.array_equal(np.concatenate(two[:4]), np.concatenate(two[4:]))  # epoch 2 is shuffled anew
    again, other = (fit._batches_of(30, cfg, torch.Generator().manual_seed(s)) for s in (1, 2))
    assert all(np.array_equal(a, b) for a, b in zip(batches, again))
    assert not all(np.array_equal(a, b) for a, b in zip(batches, other))


def test_simcse_pairs_each_sentence_with_itself_through_dropout(tiny_bert, monkeypatch):
    """Unsupervised SimCSE: the positive of a sentence is its own second pass (dropout tells them apart),
    the rest of the batch its negatives."""
    seen, embed = [], fit._pair_embeddings
    monkeypatch.setattr(fit, "_pair_embeddings", lambda encoder, cache, rows, *a: seen.append(rows.copy())
                        or embed(encoder, cache, rows, *a))
    encoder = BiEncoder.load(tiny_bert, "cpu", "mean", 16)
    sentences = [f"sentence number {i} of the warm-up" for i in range(20)]
    result = fit.fit_simcse(encoder, encoder.token_cache(sentences), fit.FitConfig(8, 1, 1e-3, 0.0), 0)
    assert [len(rows) for rows in seen] == [8, 8, 4] and len(result.losses) == 3
    assert all((rows[:, 0] == rows[:, 1]).all() for rows in seen)
    assert sorted(np.concatenate([rows[:, 0] for rows in seen]).tolist()) == list(range(20))


def test_the_recipes_name_every_bi_loss():
    from transenc.recipes import BI_LOSS_NAMES

    assert tuple(fit.BI_LOSSES) == BI_LOSS_NAMES  # (the recipes name them without importing torch)


def test_cosent_equals_its_definition_in_float64():
    """log(1 + sum over i, j with target_i > target_j of exp(20 (cos_j - cos_i))), on fresh inputs with
    tied targets (a tie adds nothing) and batches of one and two pairs."""
    rng = np.random.default_rng()
    for n in (1, 2, 37):
        cos, targets = rng.uniform(-1, 1, n), rng.integers(0, 5, n) / 4
        expected = math.log1p(sum(math.exp(20 * (cos[j] - cos[i]))
                                  for i in range(n) for j in range(n) if targets[i] > targets[j]))
        got = fit.cosent_loss(torch.from_numpy(cos), torch.from_numpy(targets)).item()
        assert got == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_margin_mse_equals_its_definition_in_float64():
    """The mean over every ordered two pairs i, j (i = j included) of ((cos_i - cos_j) - (t_i - t_j))^2,
    on fresh inputs, batches of one, two and 37 pairs; a shift of every target changes nothing."""
    rng = np.random.default_rng()
    for n in (1, 2, 37):
        cos, targets = rng.uniform(-1, 1, n), rng.uniform(0, 1, n)
        expected = sum(((cos[i] - cos[j]) - (targets[i] - targets[j])) ** 2 for i in range(n) for j in range(n)) / n ** 2
        got = fit.margin_mse_loss(torch.from_numpy(cos), torch.from_numpy(targets)).item()
        assert got == pytest.approx(expected, rel=1e-12, abs=1e-15)
        shifted = fit.margin_mse_loss(torch.from_numpy(cos), torch.from_numpy(targets + 0.3)).item()
        assert shifted == pytest.approx(expected, rel=1e-9, abs=1e-15)


def test_a_cosent_fit_learns_only_the_order_of_its_labels(tiny_bert):
    """Labels squeezed toward 1 in the same order train the same weights under "cosent", other
    weights under "mse"."""
    def weights_after(loss, squeeze):
        torch.manual_seed(0)
        corpus = pairs_of_mixed_lengths(32, np.random.default_rng(0))
        labels = np.random.default_rng(1).uniform(0, 1, len(corpus))
        labels = (0.8 + 0.2 * labels ** 3 if squeeze else labels).astype(np.float32)
        encoder = BiEncoder.load(tiny_bert, "cpu", "mean", 16)
        cfg = fit.FitConfig(batch_size=8, epochs=1, lr=1e-3, warmup=0.1)
        fit.fit_bi(encoder, encoder.token_cache(corpus.sentences), corpus.pairs, labels, cfg, 5, loss=loss)
        return torch.cat([p.detach().flatten() for p in encoder.model.parameters()]), labels

    (cosent, plain), (cosent_squeezed, squeezed) = weights_after("cosent", False), weights_after("cosent", True)
    assert np.array_equal(np.argsort(plain), np.argsort(squeezed)) and len(set(squeezed)) == len(squeezed)
    assert torch.equal(cosent, cosent_squeezed)
    assert not torch.equal(weights_after("mse", False)[0], weights_after("mse", True)[0])


@pytest.mark.parametrize("kind", ["cross", "bi"])
def test_a_step_of_more_than_step_tokens_runs_in_checkpointed_parts_with_the_whole_steps_gradient(kind, tiny_bert,
                                                                                                monkeypatch):
    """A step whose rows hold more than policy.step_tokens tokens is cut into parts of at most part_tokens;
    their activations are not kept for the backward (each part's forward runs again there, its dropout
    replayed), and the loss and gradient are the whole step's. The CPU policy leaves steps of sentences whole."""
    torch.manual_seed(1)
    rng = np.random.default_rng(5)
    corpus = pairs_of_mixed_lengths(40, rng)
    targets = torch.from_numpy(rng.uniform(0, 1, len(corpus)).astype(np.float32))
    in_parts = replace(fit.CPU_POLICY, step_tokens=200, part_tokens=64)
    if kind == "cross":
        encoder, step_loss = CrossEncoder.load(tiny_bert, "cpu", 48), fit.cross_step_loss
        cache = encoder.token_cache(corpus.sentences)
        rows, lengths = corpus.pairs, cache.pair_row_lengths(corpus.pairs)
        parts = fit.step_pair_batches(cache, rows, 48, in_parts, in_parts=True)
    else:
        encoder, step_loss = BiEncoder.load(tiny_bert, "cpu", "mean", 24), fit.bi_step_loss
        cache = encoder.token_cache(corpus.sentences)
        rows, lengths = corpus.pairs.reshape(-1), cache.sentence_row_lengths(corpus.pairs.reshape(-1))
        parts = fit.step_sentence_batches(cache, rows, 24, in_parts, in_parts=True)
    assert fit._in_parts(lengths, encoder.max_length, in_parts) and not fit._in_parts(lengths, encoder.max_length,
                                                                                         fit.CPU_POLICY)
    assert len(parts) > 3 and all(b.input_ids.numel() <= 64 for b in parts)
    assert sorted(np.concatenate([b.rows for b in parts])) == list(range(len(rows)))

    def kept_for_backward(policy) -> int:
        kept = []
        with torch.autograd.graph.saved_tensors_hooks(lambda t: kept.append(t.numel() * t.element_size()) or t,
                                                      lambda t: t):
            step_loss(encoder, cache, corpus.pairs, targets, policy)
        return sum(kept)

    assert kept_for_backward(in_parts) * 10 < kept_for_backward(fit.CPU_POLICY)

    encoder.model.eval()  # no dropout: the parts and the whole step agree to rounding
    loss_whole, grad_whole = loss_and_gradient(encoder.model, lambda: step_loss(encoder, cache, corpus.pairs, targets))
    loss_parts, grad_parts = loss_and_gradient(encoder.model,
                                               lambda: step_loss(encoder, cache, corpus.pairs, targets, in_parts))
    assert loss_parts == pytest.approx(loss_whole, rel=1e-5)
    assert torch.allclose(grad_parts, grad_whole, rtol=1e-4, atol=1e-6) and grad_whole.abs().max() > 0

    encoder.model.train()  # dropout: the backward's second forward draws each part's masks again, the same

    def with_dropout():
        torch.manual_seed(7)
        return loss_and_gradient(encoder.model, lambda: step_loss(encoder, cache, corpus.pairs, targets, in_parts))

    for dropout in (contextlib.nullcontext, engine_dropout):  # torch's, then the engine's (a CPU fit's)
        with dropout(encoder.model):
            loss_replayed, grad_replayed = with_dropout()
            with monkeypatch.context() as patched:
                patched.setattr(fit, "checkpoint", lambda forward, batch, use_reentrant: forward(batch))  # parts whole
                loss_kept, grad_kept = with_dropout()
        assert loss_replayed == loss_kept
        assert torch.allclose(grad_replayed, grad_kept, rtol=1e-5, atol=1e-7)
        assert not torch.allclose(grad_kept, grad_whole, rtol=1e-2, atol=1e-4)  # dropout was on


@pytest.mark.parametrize("kind", ["cross", "bi"])
def test_cpu_training_steps_run_eager_attention_with_sdpas_gradient_and_dev_checks_keep_sdpa(kind, tiny_bert,
                                                                                            monkeypatch):
    """On a CPU SDPA has no fused kernel that takes dropout: a bf16 training step runs the architecture's
    eager attention, the same computation, forward and backward; fp32 steps and dev checks keep SDPA."""
    import transformers.models.bert.modeling_bert as bert

    torch.manual_seed(1)
    rng = np.random.default_rng(6)
    corpus = pairs_of_mixed_lengths(24, rng)
    targets = torch.from_numpy(rng.uniform(0, 1, len(corpus)).astype(np.float32))
    if kind == "cross":
        encoder, step_loss, fit_on = CrossEncoder.load(tiny_bert, "cpu", 48), fit.cross_step_loss, fit.fit_cross
    else:
        encoder, step_loss, fit_on = BiEncoder.load(tiny_bert, "cpu", "mean", 24), fit.bi_step_loss, fit.fit_bi
    cache, model = encoder.token_cache(corpus.sentences), encoder.model
    assert model.config._attn_implementation == "sdpa"

    model.eval()  # no dropout: eager and SDPA agree to rounding
    loss_sdpa, grad_sdpa = loss_and_gradient(model, lambda: step_loss(encoder, cache, corpus.pairs, targets))
    with fit.step_attention(model, fit.CPU_POLICY.attention):
        assert model.config._attn_implementation == "eager"
        loss_eager, grad_eager = loss_and_gradient(model, lambda: step_loss(encoder, cache, corpus.pairs, targets))
    assert model.config._attn_implementation == "sdpa"
    assert loss_eager == pytest.approx(loss_sdpa, rel=1e-5)
    assert torch.allclose(grad_eager, grad_sdpa, rtol=1e-4, atol=1e-6) and grad_sdpa.abs().max() > 0

    calls, phase = {"step": 0, "dev check": 0}, ["step"]  # eager attention's calls, in steps and in dev checks
    eager = bert.eager_attention_forward
    monkeypatch.setattr(bert, "eager_attention_forward",
                        lambda *a, **k: calls.__setitem__(phase[0], calls[phase[0]] + 1) or eager(*a, **k))

    def dev_check():
        phase[0] = "dev check"
        model.eval()
        with torch.no_grad():
            step_loss(encoder, cache, corpus.pairs, targets)
        phase[0] = "step"
        return 0.0

    for precision in ("bf16", "fp32"):  # eager under autocast; fp32 steps keep SDPA (as fast there)
        calls.update({"step": 0, "dev check": 0})
        cfg = fit.FitConfig(batch_size=8, epochs=1, lr=1e-4, warmup=0.0, eval_every=1, precision=precision)
        result = fit_on(encoder, cache, corpus.pairs, targets.numpy(), cfg, 0, dev_check, fit.CPU_POLICY)
        assert len(result.losses) == 3 and len(result.checks) == 3 and result.precision == precision
        assert calls["dev check"] == 0 and model.config._attn_implementation == "sdpa"
        if precision == "bf16":
            assert calls["step"] >= 3 * model.config.num_hidden_layers
        else:
            assert calls["step"] == 0
