"""transenc.wordpiece: BERT's tokenizer without transformers gives transformers' ids."""
import json
import shutil

import pytest
from transformers import AutoTokenizer

import corpora
from transenc import wordpiece
from transenc.readers import read_pairs
from transenc.tokens import Template, TokenCache


def sentences():
    return corpora.demo_sentences() + corpora.AWKWARD + corpora.CONTROL


def assert_same_tokenizer(ours, theirs, texts):
    assert ours is not None
    assert ours.pad_token_id == theirs.pad_token_id and ours.model_max_length == theirs.model_max_length
    assert Template.of(ours) == Template.of(theirs)
    a, b = TokenCache(ours, texts), TokenCache(theirs, texts)
    assert (a.ids == b.ids).all() and (a.offsets == b.offsets).all()
    for first, second in zip(texts, texts[1:] + texts[:1]):
        mine, hf = ours(first, second), theirs(first, second, return_token_type_ids=True)
        assert mine["input_ids"] == hf["input_ids"] and mine["token_type_ids"] == hf["token_type_ids"], (first, second)


def test_the_default_models_tokenizer(default_model_path):
    assert_same_tokenizer(wordpiece.load(default_model_path), AutoTokenizer.from_pretrained(str(default_model_path)),
                          sentences())


@pytest.mark.parametrize("corpus", ["demo-mix", "sts-b"])
def test_every_sentence_of_a_real_corpus(default_model_path, corpus):
    if corpus == "demo-mix":
        texts = sorted({s for pair in corpora.demo_mix(8000) for s in pair})
    else:
        folder = corpora.sts_b_folder()
        texts = sorted({s for split in ("train", "dev", "test") for s in read_pairs(folder / f"sts-{split}.csv")[0].sentences})
    assert_same_tokenizer(wordpiece.load(default_model_path), AutoTokenizer.from_pretrained(str(default_model_path)),
                          texts)


def test_a_folder_transenc_saved(tiny_bert):
    """tiny_bert's tokenizer went through transformers' save_pretrained, as every model transenc saves."""
    assert_same_tokenizer(wordpiece.load(tiny_bert), AutoTokenizer.from_pretrained(str(tiny_bert)), sentences())


# tokenizer_config.json's list of added tokens as save_pretrained may write it: exactly tokenizer.json's.
SAVED_SPECIALS = {str(i): {"content": token, "lstrip": False, "normalized": False, "rstrip": False,
                           "single_word": False, "special": True}
                  for i, token in ((0, "[PAD]"), (100, "[UNK]"), (101, "[CLS]"), (102, "[SEP]"), (103, "[MASK]"))}


@pytest.mark.parametrize("flags", [{"do_lower_case": False}, {"strip_accents": True}, {"strip_accents": False},
                                   {"tokenize_chinese_chars": False}, {"model_max_length": 128},
                                   {"model_max_length": "unset"}, {"do_lower_case": "unset"},
                                   {"strip_accents": "unset"}, {"tokenize_chinese_chars": "unset"},
                                   {"added_tokens_decoder": SAVED_SPECIALS}])
def test_tokenizer_config_flags_over_tokenizer_json(tmp_path, default_model_path, flags):
    """transformers builds the normalizer from tokenizer_config.json's flags, whatever tokenizer.json says."""
    for name in ("tokenizer.json", "vocab.txt", "special_tokens_map.json", "config.json"):
        shutil.copy(default_model_path / name, tmp_path / name)
    config = json.loads((default_model_path / "tokenizer_config.json").read_text()) | flags
    config = {key: value for key, value in config.items() if value != "unset"}
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(config))
    assert_same_tokenizer(wordpiece.load(tmp_path), AutoTokenizer.from_pretrained(str(tmp_path)), sentences())


@pytest.mark.parametrize("change", [{"tokenizer_class": "MPNetTokenizer"}, {"do_basic_tokenize": False},
                                    {"never_split": ["hello"]}, {"additional_special_tokens": ["[NEW]"]}, None])
def test_other_tokenizers_are_left_to_transformers(tmp_path, default_model_path, change):
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(default_model_path / name, tmp_path / name)
    if change is None:
        (tmp_path / "tokenizer.json").unlink()
    else:
        config = json.loads((tmp_path / "tokenizer_config.json").read_text()) | change
        (tmp_path / "tokenizer_config.json").write_text(json.dumps(config))
    assert wordpiece.load(tmp_path) is None
