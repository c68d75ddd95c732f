"""The second real model, all-mpnet-base-v2 (MPNet: no SDPA, `<s> a </s></s> b </s>`, no token
types), labels and evaluates as sentence-transformers does. Skipped where it is not installed."""
import numpy as np
import pytest

from test_cli import read_scores, run, write_sts_as_tsv


@pytest.mark.slow
def test_mpnet_labels_stsb_test_like_sentence_transformers(sts, tmp_path, mpnet_path):
    from sentence_transformers import SentenceTransformer

    ps = write_sts_as_tsv(sts, tmp_path / "test.tsv")
    assert run(["label", "--pairs", str(tmp_path / "test.tsv"), "--model", str(mpnet_path),
                "--out", str(tmp_path / "s.tsv"), "--device", "cpu", "--precision", "fp32"]) == 0
    ours = read_scores(tmp_path / "s.tsv")
    st = SentenceTransformer(str(mpnet_path), device="cpu")
    emb = st.encode(list(ps.sentences), normalize_embeddings=True, convert_to_numpy=True, batch_size=64)
    theirs = (emb[ps.pairs[:, 0]] * emb[ps.pairs[:, 1]]).sum(1)
    assert len(ours) == len(ps)
    assert np.abs(ours - theirs).max() < 1e-5


@pytest.mark.slow
def test_mpnet_eval_gives_its_published_stsb_figure(sts, mpnet_path, capsys):
    assert run(["eval", "--data", str(sts), "--model", str(mpnet_path), "--device", "cpu", "--precision", "fp32"]) == 0
    lines = dict(line.split("\t") for line in capsys.readouterr().out.strip().splitlines())
    assert abs(float(lines["sts-b-test"]) - 83.42) <= 0.05  # MTEB's figure for all-mpnet-base-v2
