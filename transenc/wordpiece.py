"""BERT's tokenizer run by the `tokenizers` library alone, for inference.

transformers costs ~1 s of imports a process (more on a slow disk), and label, eval and mine on a
BERT checkpoint (transenc.bert) need nothing else from it. `load` builds the tokenizer the way
transformers' BertTokenizer does from a folder: tokenizer.json's WordPiece vocabulary and added
tokens, with the normalizer, pre-tokenizer and [CLS]/[SEP] template that tokenizer_config.json's
flags define, so the ids are transformers' (tests/test_wordpiece.py compares them). A folder of
any other kind gives None, and the caller loads it with transformers.
"""
from __future__ import annotations

import json
from pathlib import Path

BERT_CLASSES = ("BertTokenizer", "BertTokenizerFast")
SPECIAL_DEFAULTS = {"unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]",
                    "mask_token": "[MASK]"}


class WordPieceTokenizer:
    """What transenc asks of a transformers tokenizer when scoring (TokenCache, Template, the
    encoders' max length), over a `tokenizers.Tokenizer`."""

    truncation_side = "right"
    model_input_names = ["input_ids", "token_type_ids", "attention_mask"]

    def __init__(self, backend, pad_token_id: int, model_max_length: int, name_or_path: str):
        self.backend_tokenizer = backend
        self.pad_token_id = pad_token_id
        self.model_max_length = model_max_length
        self.name_or_path = name_or_path

    def __call__(self, text: str, text_pair: str | None = None, add_special_tokens: bool = True, **_) -> dict:
        encoding = self.backend_tokenizer.encode(text, text_pair, add_special_tokens=add_special_tokens)
        return {"input_ids": encoding.ids, "token_type_ids": encoding.type_ids,
                "attention_mask": encoding.attention_mask}


def _content(token) -> str:
    return token["content"] if isinstance(token, dict) else str(token)  # an AddedToken is saved as a dict


def load(path: Path) -> WordPieceTokenizer | None:
    """The tokenizer of a BERT folder (tokenizer.json and a BertTokenizer tokenizer_config.json);
    None for any other folder."""
    config_file, tokenizer_file = path / "tokenizer_config.json", path / "tokenizer.json"
    if not (config_file.is_file() and tokenizer_file.is_file()):
        return None
    config = json.loads(config_file.read_text(encoding="utf-8"))
    if (config.get("tokenizer_class") not in BERT_CLASSES or config.get("do_basic_tokenize") is False
            or config.get("never_split")):
        return None
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors

    backend = Tokenizer.from_file(str(tokenizer_file))
    if type(backend.model).__name__ != "WordPiece":
        return None
    # tokens transformers would add on top of tokenizer.json's: it would tokenize differently
    added = {token.content for token in backend.get_added_tokens_decoder().values()}
    wanted = {_content(t) for t in (config.get("added_tokens_decoder") or {}).values()}
    if not wanted | {_content(t) for t in config.get("additional_special_tokens") or []} <= added:
        return None
    specials = {name: _content(config.get(name) or default) for name, default in SPECIAL_DEFAULTS.items()}
    ids = {name: backend.token_to_id(token) for name, token in specials.items()}
    if None in ids.values():
        return None
    backend.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=config.get("tokenize_chinese_chars", True),
        strip_accents=config.get("strip_accents"), lowercase=config.get("do_lower_case", True))
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    cls, sep = specials["cls_token"], specials["sep_token"]
    backend.post_processor = processors.TemplateProcessing(
        single=f"{cls}:0 $A:0 {sep}:0", pair=f"{cls}:0 $A:0 {sep}:0 $B:1 {sep}:1",
        special_tokens=[(cls, ids["cls_token"]), (sep, ids["sep_token"])])
    backend.no_truncation()
    backend.no_padding()
    # transformers: a very large integer where the folder sets no maximum
    return WordPieceTokenizer(backend, ids["pad_token"], int(config.get("model_max_length", int(1e30))), str(path))
