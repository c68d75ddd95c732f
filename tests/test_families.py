"""Every encoder family people start from loads, labels and trains: tiny random models built from
each family's config with a tokenizer of that family's own kind (its own special-token template),
scored against sentence-transformers, which loads the same folders its own way."""
import importlib

import numpy as np
import pytest
import torch
import transformers

from transenc.fit import FitConfig, fit_bi, fit_cross
from transenc.errors import ModelError
from transenc.labeling import bi_scores, cross_scores
from transenc.models import BiEncoder, CrossEncoder
from transenc.pairset import PairSet

SENTENCES = ["a man is playing a guitar .", "the cat sat on the mat", "a woman slices an onion",
             "two dogs run across a field", "kids play football in the park", "he plays the guitar"]
PAIRS = [(0, 5), (1, 2), (3, 4), (5, 0), (2, 2), (4, 1), (0, 3)]
WORDS = sorted({w for s in SENTENCES for w in s.split()} | set("abcdefghijklmnopqrstuvwxyz."))


def _wordpiece(cls):
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
    return cls(vocab={w: i for i, w in enumerate(vocab)})


def _mpnet():
    vocab = ["<s>", "<pad>", "</s>", "[UNK]", "<mask>", *WORDS]
    return transformers.MPNetTokenizerFast(vocab={w: i for i, w in enumerate(vocab)})


def _roberta():
    # byte-level BPE with no merges: every byte of the alphabet is a token
    # the module by its full name: transformers' lazy top level answers `convert_slow_tokenizer` with the
    # function of that name until something has imported the module
    slow = importlib.import_module("transformers.convert_slow_tokenizer")
    alphabet = sorted(slow.bytes_to_unicode().values())
    vocab = ["<s>", "<pad>", "</s>", "<unk>", "<mask>", *alphabet]
    return transformers.RobertaTokenizerFast(vocab={w: i for i, w in enumerate(vocab)}, merges=[])


def _unigram(cls, specials):
    pieces = [(s, 0.0) for s in specials] + [("▁" + w, -1.0) for w in WORDS] + [(c, -5.0) for c in "▁" + "".join(WORDS)]
    seen, vocab = set(), []
    for piece, score in pieces:
        if piece not in seen:
            seen.add(piece)
            vocab.append((piece, score))
    return cls(vocab=vocab)


def _deberta():
    return _unigram(transformers.DebertaV2TokenizerFast, ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])


def _xlmr():
    return _unigram(transformers.XLMRobertaTokenizerFast, ["<s>", "<pad>", "</s>", "<unk>", "<mask>"])


SMALL = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
FAMILIES = {  # family: (tokenizer, config, attention the model should run)
    "bert": (lambda: _wordpiece(transformers.BertTokenizerFast), lambda v: transformers.BertConfig(vocab_size=v, **SMALL), "sdpa"),
    "electra": (lambda: _wordpiece(transformers.ElectraTokenizerFast),
                lambda v: transformers.ElectraConfig(vocab_size=v, embedding_size=32, **SMALL), "sdpa"),
    "distilbert": (lambda: _wordpiece(transformers.DistilBertTokenizerFast),
                   lambda v: transformers.DistilBertConfig(vocab_size=v, dim=32, n_layers=2, n_heads=2, hidden_dim=64), "sdpa"),
    "roberta": (_roberta, lambda v: transformers.RobertaConfig(vocab_size=v, pad_token_id=1, max_position_embeddings=130, **SMALL), "sdpa"),
    "xlm-roberta": (_xlmr, lambda v: transformers.XLMRobertaConfig(vocab_size=v, pad_token_id=1, max_position_embeddings=130, **SMALL),
                    "sdpa"),
    "mpnet": (_mpnet, lambda v: transformers.MPNetConfig(vocab_size=v, pad_token_id=1, **SMALL), "eager"),
    "deberta-v2": (_deberta, lambda v: transformers.DebertaV2Config(vocab_size=v, **SMALL), "eager"),
}


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def family_model(request, tmp_path_factory):
    make_tokenizer, make_config, attention = FAMILIES[request.param]
    tokenizer = make_tokenizer()
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp(request.param)
    transformers.AutoModel.from_config(make_config(len(tokenizer))).save_pretrained(str(path))
    tokenizer.save_pretrained(str(path))
    return request.param, path, attention


def _pairset():
    return PairSet(SENTENCES, np.array(PAIRS, dtype=np.int32))


def test_family_loads_with_its_attention_and_labels_like_sentence_transformers(family_model):
    from sentence_transformers import SentenceTransformer

    name, path, attention = family_model
    encoder = BiEncoder.load(path, "cpu")
    assert encoder.model.config._attn_implementation == attention
    ours = bi_scores(encoder, _pairset(), precision="fp32")
    st = SentenceTransformer(str(path), device="cpu")
    emb = st.encode(SENTENCES, convert_to_tensor=True, normalize_embeddings=True)
    theirs = np.array([float(emb[a] @ emb[b]) for a, b in PAIRS])
    np.testing.assert_allclose(ours, theirs, atol=1e-5, err_msg=name)


def test_family_cross_encoder_labels_like_sentence_transformers(family_model, tmp_path):
    from sentence_transformers import CrossEncoder as STCrossEncoder

    name, path, _ = family_model
    torch.manual_seed(1)
    CrossEncoder.load(path, "cpu").save(tmp_path)  # a fresh head, saved as a cross-encoder
    ours = cross_scores(CrossEncoder.load(tmp_path, "cpu"), _pairset(), precision="fp32")
    theirs = STCrossEncoder(str(tmp_path), device="cpu").predict([(SENTENCES[a], SENTENCES[b]) for a, b in PAIRS])
    np.testing.assert_allclose(ours, theirs, atol=1e-5, err_msg=name)


def _copy(path, target, names):
    target.mkdir()
    for name in names:
        (target / name).write_bytes((path / name).read_bytes())
    return target


@pytest.mark.parametrize("kept", [["tokenizer_config.json"], []])
@pytest.mark.parametrize("kind", ["bi", "cross"])
def test_family_without_its_tokenizer_files_is_refused(family_model, tmp_path, kind, kept):
    """Without them transformers builds a vocabulary of the special tokens alone from config.json: every
    word the unknown token, every score nearly the same. The load says so instead."""
    name, path, _ = family_model
    bare = _copy(path, tmp_path / name, ["config.json", "model.safetensors", *kept])
    with pytest.raises(ModelError, match=f"'{bare}' has no tokenizer: none of tokenizer.json, .* holds a vocabulary"):
        (BiEncoder if kind == "bi" else CrossEncoder).load(bare, "cpu")


def test_a_wordpiece_family_with_a_vocab_txt_alone_still_loads(family_model, tmp_path):
    """A folder as older tools saved it: vocab.txt and no tokenizer.json."""
    name, path, _ = family_model
    encoder = BiEncoder.load(path, "cpu")
    if encoder.tokenizer.vocab_files_names.get("vocab_file") != "vocab.txt":
        pytest.skip(f"{name}: not a WordPiece vocabulary")
    folder = _copy(path, tmp_path / name, ["config.json", "model.safetensors", "tokenizer_config.json"])
    vocab = sorted(encoder.tokenizer.get_vocab().items(), key=lambda item: item[1])
    (folder / "vocab.txt").write_text("".join(f"{token}\n" for token, _ in vocab))
    ids = BiEncoder.load(folder, "cpu").tokenizer(SENTENCES[0], SENTENCES[1])["input_ids"]
    assert ids == encoder.tokenizer(SENTENCES[0], SENTENCES[1])["input_ids"], name


@pytest.mark.parametrize("kind", ["bi", "cross"])
def test_a_saved_tokenizer_is_the_same_whatever_calls_it_served(family_model, tmp_path, kind):
    """A model saved before and after its tokenizer served a call with truncation and padding (HF
    leaves them set on the backend) writes the same tokenizer.json: a resumed run's exports equal an
    unstopped run's."""
    _, path, _ = family_model
    encoder = (BiEncoder if kind == "bi" else CrossEncoder).load(path, "cpu")
    encoder.save(tmp_path / "before")
    encoder.tokenizer(SENTENCES, truncation=True, max_length=7, padding="max_length")
    encoder.save(tmp_path / "after")
    assert (tmp_path / "before" / "tokenizer.json").read_bytes() == (tmp_path / "after" / "tokenizer.json").read_bytes()


@pytest.mark.parametrize("kind", ["bi", "cross"])
def test_family_trains_one_step(family_model, kind):
    name, path, _ = family_model
    torch.manual_seed(2)
    encoder = BiEncoder.load(path, "cpu") if kind == "bi" else CrossEncoder.load(path, "cpu", 32)
    before = {k: v.clone() for k, v in encoder.model.state_dict().items()}
    pairs = np.array(PAIRS, dtype=np.int32)
    labels = np.linspace(0.1, 0.9, len(PAIRS)).astype(np.float32)
    fit = fit_bi if kind == "bi" else fit_cross
    result = fit(encoder, encoder.token_cache(SENTENCES), pairs, labels,
                 FitConfig(batch_size=len(PAIRS), epochs=1, lr=1e-3, warmup=0.0), seed=0)
    assert len(result.losses) == 1 and np.isfinite(result.losses[0]), name
    changed = [k for k, v in encoder.model.state_dict().items() if not torch.equal(v, before[k])]
    assert changed, f"{name}: one training step changed no weight"
