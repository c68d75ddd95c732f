"""Scale-out on torch.distributed, on the CPU with gloo: 2 ranks launched by torchrun label exactly
what one process labels, in input order, each rank computing a share."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from transenc.bundled import DEMO_PAIRS
from transenc.labeling import bi_scores, cross_scores
from transenc.models import BiEncoder, CrossEncoder
from transenc.readers import read_pairs

from test_label_stream import shuffled_pairs_with_duplicates

HERE = Path(__file__).parent
# Runs compared number for number across rank counts train in fp32: in bf16 (`auto` on a CPU with
# bf16 arithmetic) a rank's share of a batch rounds differently from the whole batch.
EXACT = "fp32"


def one_thread_env():
    # Exact equality needs equal intra-op thread counts too: a matmul's sums may be split by thread.
    return dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([str(HERE), os.environ["PYTHONPATH"]]))


def torchrun(*args, nproc=2, timeout=240, **env):
    """`python -m torch.distributed.run` on this machine, one thread per rank (env: more variables)."""
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
                           *map(str, args)], env=one_thread_env() | env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def bi_model(tiny_bert, tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny-bi")
    BiEncoder.load(tiny_bert, "cpu", max_length=8).save(path)  # short rows: many batches to share out
    return path


@pytest.fixture(scope="module")
def cross_model(tiny_bert, tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny-cross")
    CrossEncoder.load(tiny_bert, "cpu", max_length=12).save(path)  # saved once: a fresh head is random at each load
    return path


@pytest.fixture(scope="module")
def odd_pairs(tmp_path_factory):
    rows = shuffled_pairs_with_duplicates(n=28, seed=5)
    assert len(rows) % 2 == 1
    path = tmp_path_factory.mktemp("pairs") / "pairs.tsv"
    path.write_text("".join(f"{a}\t{b}\n" for a, b in rows))
    return path


def test_sharded_labels_equal_one_process_labels_exactly(tmp_path, bi_model, cross_model, odd_pairs):
    for nproc in (1, 2):
        (tmp_path / str(nproc)).mkdir()
        done = torchrun(HERE / "dist_label_worker.py", bi_model, cross_model, odd_pairs, tmp_path / str(nproc),
                        nproc=nproc)
        assert done.returncode == 0, done.stderr[-3000:]
    pairs, _ = read_pairs(odd_pairs)
    rows = [json.loads((tmp_path / "2" / f"rows-{r}.json").read_text()) for r in range(2)]
    for kind, total in (("bi", len(pairs.sentences)), ("cross", len(pairs))):
        one = np.load(tmp_path / "1" / f"{kind}-0.npy")
        assert one.shape == (len(pairs),) and np.isfinite(one).all()
        for r in range(2):
            assert np.array_equal(np.load(tmp_path / "2" / f"{kind}-{r}.npy"), one), (kind, r)
        assert [x[kind] > 0 for x in rows] == [True, True] and sum(x[kind] for x in rows) == total, rows
    # and the one-rank labels are the library's plain labels (to rounding: this process has its own threads)
    assert np.allclose(np.load(tmp_path / "1" / "bi-0.npy"),
                       bi_scores(BiEncoder.load(bi_model, "cpu"), pairs, batch_size=2), atol=1e-6)
    assert np.allclose(np.load(tmp_path / "1" / "cross-0.npy"),
                       cross_scores(CrossEncoder.load(cross_model, "cpu"), pairs, batch_size=2), atol=1e-6)


@pytest.mark.parametrize("mode", ["bi", "cross"])
def test_label_under_torchrun_writes_the_plain_run_file(tmp_path, bi_model, cross_model, odd_pairs, mode):
    model = bi_model if mode == "bi" else cross_model
    common = ["label", "--pairs", odd_pairs, "--mode", mode, "--model", model, "--batch-size", "2", "--chunk-pairs", "5"]
    plain = subprocess.run([sys.executable, "-m", "transenc", *map(str, common), "--out", str(tmp_path / "one.tsv")],
                           env=one_thread_env(), capture_output=True, text=True, timeout=240)
    assert plain.returncode == 0, plain.stderr[-3000:]
    counts = tmp_path / "rows"
    counts.mkdir()
    done = torchrun(HERE / "dist_train_worker.py", *common, "--out", tmp_path / "two.tsv", TRANSENC_TEST_ROWS_TO=str(counts))
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "two.tsv").read_bytes() == (tmp_path / "one.tsv").read_bytes()
    pairs = read_pairs(odd_pairs)[0]
    assert len((tmp_path / "two.tsv").read_text().splitlines()) == len(pairs)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.tsv", "rows", "two.tsv"]
    # the ranks shared the work: each computed some of the rows, together each row once
    rows = [json.loads((counts / f"rows-{r}.json").read_text())[mode] for r in range(2)]
    assert min(rows) > 0 and sum(rows) == (len(pairs.sentences) if mode == "bi" else len(pairs)), rows


@pytest.fixture(scope="module")
def no_dropout_bert(tiny_bert, tmp_path_factory):
    """The tiny BERT without dropout: each rank draws its own masks, so only then can a 2-rank step
    equal a 1-rank step number for number."""
    import torch
    from transformers import BertConfig, BertModel

    path = tmp_path_factory.mktemp("tiny-bert-no-dropout")
    config = BertConfig.from_pretrained(str(tiny_bert), hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    torch.manual_seed(0)
    BertModel(config).save_pretrained(str(path))
    for f in tiny_bert.iterdir():
        if "token" in f.name or f.name == "vocab.txt":
            (path / f.name).write_bytes(f.read_bytes())
    return path


def test_two_rank_fits_end_with_the_one_rank_weights(tmp_path, no_dropout_bert, odd_pairs):
    import torch
    from safetensors.torch import load_file

    for nproc in (1, 2):
        (tmp_path / str(nproc)).mkdir()
        done = torchrun(HERE / "dist_fit_worker.py", no_dropout_bert, odd_pairs, tmp_path / str(nproc), nproc=nproc)
        assert done.returncode == 0, done.stderr[-3000:]
    for kind in ("cross", "bi"):
        one = torch.load(tmp_path / "1" / f"{kind}-0.pt")
        for r in range(2):
            two = torch.load(tmp_path / "2" / f"{kind}-{r}.pt")
            assert one.keys() == two.keys()
            worst = max((one[k] - two[k]).abs().max().item() for k in one)
            assert worst < 1e-5, (kind, r, worst)
        runs = [json.loads((tmp_path / n / f"{kind}-0.json").read_text()) for n in ("1", "2")]
        assert np.allclose(runs[0]["losses"], runs[1]["losses"], rtol=1e-5)
        assert runs[0]["best_step"] == runs[1]["best_step"]
        # the weights really moved (1e-3 lr), so agreeing to 1e-5 says the steps agree
        start = load_file(str(no_dropout_bert / "model.safetensors"))
        prefix = "bert." if kind == "cross" else ""
        assert max((one[prefix + k] - start[k]).abs().max().item() for k in start if prefix + k in one) > 1e-3
        # every rank took rank 0's dev decisions: the same checks, so the same best weights
        ranks = [json.loads((tmp_path / "2" / f"{kind}-{r}.json").read_text())["checks"] for r in range(2)]
        assert ranks[0] == ranks[1] and len(ranks[0]) >= 2


def test_resume_on_two_ranks_continues_a_one_process_run(tmp_path, no_dropout_bert, monkeypatch):
    """A run killed in cycle 2 and resumed under torchrun with 2 ranks (sharded labels, data-parallel
    fits with dev checks) ends with the weights of an uninterrupted one-process run."""
    import torch
    from safetensors.torch import load_file

    from test_train import TINY, args_for, train
    from transenc import training

    monkeypatch.setitem(training.RECIPES, "tiny", TINY)
    torch.set_num_threads(1)  # as the ranks run, so that the two runs round alike
    lines = DEMO_PAIRS.read_text().splitlines()[:41]  # 41 pairs: uneven shards
    (tmp_path / "pairs.tsv").write_text("\n".join(lines) + "\n")
    (tmp_path / "dev.tsv").write_text("".join(f"{line}\t{i % 5}\n" for i, line in enumerate(lines[:15])))
    args = dict(pairs=tmp_path / "pairs.tsv", models=[no_dropout_bert], dev=tmp_path / "dev.tsv", precision=EXACT)
    train(args_for(tmp_path / "whole", **args))

    real = training.Trainer.cross_label

    def killed(self, cycle, folder):
        if cycle == 2:
            raise KeyboardInterrupt
        return real(self, cycle, folder)

    monkeypatch.setattr(training.Trainer, "cross_label", killed)
    with pytest.raises(KeyboardInterrupt):
        train(args_for(tmp_path / "split", **args))
    a = args_for(tmp_path / "split", **args, resume=True)
    done = torchrun(HERE / "dist_train_worker.py", "train", "--pairs", a["pairs"], "--out", a["out"], "--model", a["models"][0],
                    "--cycles", a["cycles"], "--dev", a["dev"][0], "--recipe", a["recipe"], "--seed", a["seed"], "--device", "cpu",
                    "--precision", EXACT, "--resume")
    assert done.returncode == 0, done.stderr[-3000:]
    state = json.loads((tmp_path / "split" / "state.json").read_text())
    assert state["done"][-1] == "cycle2.bi_train"
    for name in ("bi", "cross"):
        whole, split = load_file(str(tmp_path / "whole" / name / "model.safetensors")), \
            load_file(str(tmp_path / "split" / name / "model.safetensors"))
        worst = max((whole[k] - split[k]).abs().max().item() for k in whole)
        assert worst < 1e-4, (name, worst)
    metrics = [json.loads((tmp_path / run / "metrics.json").read_text()) for run in ("whole", "split")]
    dev = [m["cycles"][1]["stages"]["bi_train"]["dev"]["models"][0] for m in metrics]
    assert dev[0] == pytest.approx(dev[1], abs=1e-3)


def test_a_two_rank_run_killed_mid_stage_resumes_on_two_ranks_or_on_one(tmp_path, no_dropout_bert, monkeypatch):
    """Two ranks started by hand; rank 1 dies in the middle of cycle 2's cross-encoder fit. Rank 0
    stops with one clear line (exit 2) and the run keeps its finished stages. Resumed under torchrun
    with 2 ranks, and a copy of it in one process, both end with an uninterrupted run's weights."""
    import shutil
    import socket

    import torch
    from safetensors.torch import load_file

    from test_train import TINY, args_for, train
    from transenc import training

    monkeypatch.setitem(training.RECIPES, "tiny", TINY)
    torch.set_num_threads(1)  # as the ranks run, so that the runs round alike
    lines = DEMO_PAIRS.read_text().splitlines()[:41]  # 41 pairs: uneven shards
    (tmp_path / "pairs.tsv").write_text("\n".join(lines) + "\n")
    (tmp_path / "dev.tsv").write_text("".join(f"{line}\t{i % 5}\n" for i, line in enumerate(lines[:15])))
    a = args_for(tmp_path / "killed", tmp_path / "pairs.tsv", [no_dropout_bert], dev=tmp_path / "dev.tsv", precision=EXACT)
    train(args_for(tmp_path / "whole", tmp_path / "pairs.tsv", [no_dropout_bert], dev=tmp_path / "dev.tsv",
                                    precision=EXACT))

    argv = ["train", "--pairs", a["pairs"], "--out", a["out"], "--model", a["models"][0], "--cycles", a["cycles"], "--dev", a["dev"][0],
            "--recipe", a["recipe"], "--seed", a["seed"], "--device", "cpu", "--precision", EXACT]
    steps_per_fit = -(-2 * len(lines) // TINY.cross.batch_size) * TINY.cross.epochs
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ranks = []
    for rank in (0, 1):
        env = dict(one_thread_env(), RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
                   MASTER_PORT=str(port), TRANSENC_DIST_TIMEOUT="20", TRANSENC_TEST_DIE_AT_STEP=str(steps_per_fit + 3))
        ranks.append(subprocess.Popen([sys.executable, str(HERE / "dist_train_worker.py"), *map(str, argv)],
                                      env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    try:
        _, err = ranks[0].communicate(timeout=180)
    finally:
        ranks[1].kill()
        ranks[1].wait()
    assert ranks[1].returncode == 9  # it died where it was told to, not earlier
    assert ranks[0].returncode == 2, err[-2000:]
    errors = [line for line in err.splitlines() if line.startswith("transenc: error:")]
    assert len(errors) == 1 and "lost the other ranks" in errors[0], err[-2000:]
    done = json.loads((tmp_path / "killed" / "state.json").read_text())["done"]
    assert "cycle2.bi_label" in done and "cycle2.cross_train" not in done, done

    shutil.copytree(tmp_path / "killed", tmp_path / "one-rank")
    resumed = torchrun(HERE / "dist_train_worker.py", *argv, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    train(args_for(tmp_path / "one-rank", tmp_path / "pairs.tsv", [no_dropout_bert],
                                 dev=tmp_path / "dev.tsv", resume=True, precision=EXACT))
    for run in ("killed", "one-rank"):
        assert json.loads((tmp_path / run / "state.json").read_text())["done"][-1] == "cycle2.bi_train"
        for name in ("bi", "cross"):
            whole, other = (load_file(str(tmp_path / r / name / "model.safetensors")) for r in ("whole", run))
            assert max((whole[k] - other[k]).abs().max().item() for k in whole) < 1e-4, (run, name)


def test_mutual_models_train_at_once_on_their_own_ranks(tmp_path, no_dropout_bert):
    """K=2 on 2 ranks: each model's fits run on its own rank at the same time; the labels are still
    the mean of both models' labels, so the run ends as the one-process run does."""
    import shutil

    import torch
    from safetensors.torch import load_file
    from transformers import BertConfig, BertModel

    from test_train import TINY, args_for, train
    from transenc import training

    second = tmp_path / "second"
    shutil.copytree(no_dropout_bert, second)
    torch.manual_seed(1)
    BertModel(BertConfig.from_pretrained(str(no_dropout_bert))).save_pretrained(str(second))
    lines = DEMO_PAIRS.read_text().splitlines()[:48]
    (tmp_path / "pairs.tsv").write_text("\n".join(lines) + "\n")
    (tmp_path / "dev.tsv").write_text("".join(f"{line}\t{i % 5}\n" for i, line in enumerate(lines[:15])))
    a = args_for(tmp_path / "two", tmp_path / "pairs.tsv", [no_dropout_bert, second], dev=tmp_path / "dev.tsv",
                 cycles=1, precision=EXACT)
    done = torchrun(HERE / "dist_train_worker.py", "train", "--pairs", a["pairs"], "--out", a["out"], "--model", a["models"][0],
                    "--model", a["models"][1], "--cycles", 1, "--dev", a["dev"][0], "--recipe", a["recipe"], "--seed", a["seed"],
                    "--device", "cpu", "--precision", EXACT)
    assert done.returncode == 0, done.stderr[-3000:]
    stages = json.loads((tmp_path / "two" / "metrics.json").read_text())["cycles"][0]["stages"]
    for stage in ("cross_train", "bi_train"):
        (s0, e0), (s1, e1) = ((m["started"], m["ended"]) for m in stages[stage]["models"])
        assert max(s0, s1) < min(e0, e1), (stage, s0, e0, s1, e1)  # the two fits overlap in time
    for stage in ("cross_label", "bi_train"):
        assert len(stages[stage]["dev"]["models"]) == 2 and "ensemble" in stages[stage]["dev"]
    # the same run in one process, the models one after another, ends with the same weights
    pytest.MonkeyPatch().setitem(training.RECIPES, "tiny", TINY)
    torch.set_num_threads(1)
    train(args_for(tmp_path / "one", tmp_path / "pairs.tsv", [no_dropout_bert, second],
                                 dev=tmp_path / "dev.tsv", cycles=1, precision=EXACT))
    for name in ("bi-0", "bi-1", "cross-0", "cross-1"):
        one, two = (load_file(str(tmp_path / run / name / "model.safetensors")) for run in ("one", "two"))
        assert max((one[k] - two[k]).abs().max().item() for k in one) < 1e-4, name


@pytest.mark.parametrize("how", ["die", "hang"])
def test_a_lost_rank_stops_the_others_with_a_clear_error(tmp_path, bi_model, odd_pairs, how):
    """Two ranks started by hand (as on two machines, with no torchrun agent to stop the survivors):
    rank 1 dies or stops answering; rank 0 exits 2 with one clear line, within the group's timeout."""
    import socket
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    argv = ["label", "--pairs", odd_pairs, "--model", bi_model, "--out", tmp_path / "o.tsv"]
    ranks = []
    for rank in (0, 1):
        env = dict(one_thread_env(), RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
                   MASTER_PORT=str(port), TRANSENC_DIST_TIMEOUT="20")
        ranks.append(subprocess.Popen([sys.executable, str(HERE / "dist_kill_worker.py"), how, *map(str, argv)],
                                      env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    started = time.monotonic()
    try:
        _, err = ranks[0].communicate(timeout=120)
    finally:
        ranks[1].kill()
        ranks[1].wait()
    assert ranks[0].returncode == 2, err[-2000:]
    lines = [line for line in err.splitlines() if line.startswith("transenc: error:")]
    assert len(lines) == 1 and "rank 0: lost the other ranks" in lines[0], err[-2000:]
    assert time.monotonic() - started < 100
    assert not (tmp_path / "o.tsv").exists()
