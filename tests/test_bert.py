"""transenc.bert, the inference encoder of label/eval/mine, against transformers' BERT: random
checkpoints of awkward shapes, padded batches, both pair halves' token types; which checkpoints
it takes; and that a `transenc label` process never imports transformers' modeling code."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
import transformers

from transenc import bert
from transenc.errors import TransencError
from transenc.models import BiEncoder, CrossEncoder

SHAPES = [  # hidden, heads, layers, intermediate: head widths of 16, 5 and 1
    (48, 3, 3, 80),
    (35, 7, 1, 19),
    (8, 8, 2, 8),
]


def _config(hidden, heads, layers, intermediate, vocab_size=97, **extra):
    return transformers.BertConfig(vocab_size=vocab_size, hidden_size=hidden, num_attention_heads=heads,
                                   num_hidden_layers=layers, intermediate_size=intermediate,
                                   max_position_embeddings=64, layer_norm_eps=1e-7, **extra)


def _saved(tmp_path, config, cross: bool, seed: int):
    torch.manual_seed(seed)
    model_class = transformers.BertForSequenceClassification if cross else transformers.BertModel
    model = model_class(config).eval()
    with torch.no_grad():  # LayerNorms off their 1/0 init, so that their weights are read too
        for name, p in model.named_parameters():
            if "LayerNorm" in name:
                p.add_(torch.randn_like(p) * 0.1)
    model.save_pretrained(str(tmp_path))
    return model


def _batch(generator, rows: int, width: int):
    ids = torch.randint(5, 97, (rows, width), generator=generator)
    mask = torch.ones(rows, width, dtype=torch.long)
    for i in range(rows):
        mask[i, int(torch.randint(1, width + 1, (), generator=generator)):] = 0
    types = (torch.arange(width) >= width // 3).long().expand(rows, width).contiguous()
    return ids, mask, types


@pytest.mark.parametrize("cross", [False, True])
@pytest.mark.parametrize("shape", SHAPES)
def test_bert_equals_transformers_on_padded_batches(tmp_path, shape, cross):
    seed = hash((shape, cross)) % 1000
    reference = _saved(tmp_path, _config(*shape, num_labels=1), cross, seed)
    assert bert.supported(tmp_path, cross)
    ours = bert.load(tmp_path, cross, torch.device("cpu"))
    generator = torch.Generator().manual_seed(seed)
    for rows, width in [(1, 1), (3, 17), (11, 64)]:
        ids, mask, types = _batch(generator, rows, width)
        with torch.inference_mode():
            theirs = reference(input_ids=ids, attention_mask=mask, token_type_ids=types)
            for given in (mask, mask.bool()[:, None, None, :]):  # a 2-D mask, or the 4-D one _forward passes
                mine = ours(ids, given, types)
                if cross:
                    torch.testing.assert_close(mine.logits, theirs.logits, atol=1e-5, rtol=0)
                else:
                    kept = mask.bool()  # padded positions' outputs are never read
                    torch.testing.assert_close(mine.last_hidden_state[kept], theirs.last_hidden_state[kept],
                                               atol=1e-5, rtol=0)


def test_encoders_load_bert_for_inference_and_score_as_transformers_does(tiny_bert, tmp_path):
    sentences = ["a man plays a guitar", "the cat sat", "a woman slices an onion into rings", "dogs run"]
    pairs = np.array([[0, 1], [2, 3], [3, 0]], dtype=np.int32)
    fast, plain = BiEncoder.load(tiny_bert, "cpu", inference=True), BiEncoder.load(tiny_bert, "cpu")
    assert isinstance(fast.model, bert.Bert) and not isinstance(plain.model, bert.Bert)
    torch.testing.assert_close(fast.encode(sentences, precision="fp32"), plain.encode(sentences, precision="fp32"),
                               atol=1e-5, rtol=0)
    with pytest.raises(TransencError, match="inference only"):
        fast.save(tmp_path / "no")

    tokenizer = transformers.AutoTokenizer.from_pretrained(str(tiny_bert))
    _saved(tmp_path / "cross", _config(32, 2, 2, 64, vocab_size=tokenizer.vocab_size, num_labels=1), True, 3)
    tokenizer.save_pretrained(str(tmp_path / "cross"))
    fast, plain = (CrossEncoder.load(tmp_path / "cross", "cpu", inference=i) for i in (True, False))
    assert isinstance(fast.model, bert.Bert) and not fast.fresh_head
    np.testing.assert_allclose(fast.predict(sentences, pairs, precision="fp32"),
                               plain.predict(sentences, pairs, precision="fp32"), atol=1e-6)


def _edited_config(tmp_path, tiny_bert, name="edited", **changes):
    """tiny_bert's weights under a config.json with `changes`."""
    folder = tmp_path / name
    folder.mkdir()
    (folder / "model.safetensors").symlink_to(tiny_bert / "model.safetensors")
    config = json.loads((tiny_bert / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, **changes}))
    return folder


@pytest.mark.parametrize("changes", [
    {"model_type": "mpnet"}, {"hidden_act": "gelu_new"}, {"position_embedding_type": "relative_key"},
    {"is_decoder": True},
])
def test_other_checkpoints_stay_with_transformers(tmp_path, tiny_bert, changes):
    assert bert.supported(tiny_bert, cross=False)
    assert not bert.supported(_edited_config(tmp_path, tiny_bert, **changes), cross=False)


def test_cross_needs_a_trained_one_logit_head(tmp_path, tiny_bert):
    assert not bert.supported(tiny_bert, cross=True)  # a BertModel: its head would be random
    head = {"architectures": ["BertForSequenceClassification"]}
    assert bert.supported(_edited_config(tmp_path, tiny_bert, **head), cross=True)
    two_logits = _edited_config(tmp_path, tiny_bert, "two", **head, id2label={"0": "a", "1": "b"})
    assert not bert.supported(two_logits, cross=True)


def test_missing_weights_are_named(tmp_path, tiny_bert):
    from safetensors.torch import load_file, save_file

    weights = load_file(str(tiny_bert / "model.safetensors"))
    del weights["encoder.layer.1.output.dense.weight"]
    save_file(weights, str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_text((tiny_bert / "config.json").read_text())
    with pytest.raises(ValueError, match="lacks layers.1.output.weight"):
        bert.load(tmp_path, False, torch.device("cpu"))


def test_label_process_imports_no_transformers(tiny_bert, tmp_path):
    """The fixed cost: transformers' BERT module pulls in torch._dynamo and torch.distributed.tensor
    (~1.8 s a process on a 2-core CPU), and transformers itself ~1 s more (its tokenizer: transenc.wordpiece)."""
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("a man plays a guitar\tthe cat sat\n")
    script = ("import sys; from transenc import cli; "
              f"assert cli.main(['label', '--pairs', {str(pairs)!r}, '--model', {str(tiny_bert)!r}, '--out', "
              f"{str(tmp_path / 'out.tsv')!r}]) == 0; "
              "print(sorted(m for m in sys.modules if m.startswith(('transformers', 'torch._dynamo'))))")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("kernel", ["torch", "engine"])
def test_int8_cross_encoders_run_the_last_layer_for_the_first_token_alone_and_score_the_same(tmp_path, kernel):
    """An int8 copy of a cross-encoder feeds only the first token past the last layer's attention (what
    the pair head reads); its logits equal the whole layer's bit for bit, under every engine variant.
    The fp32 model keeps the whole layer."""
    from transenc import _C
    from transenc.quantize import int8_model

    _saved(tmp_path, _config(48, 3, 3, 80, num_labels=1), True, 5)
    model = bert.load(tmp_path, True, torch.device("cpu"))
    assert not model.last_layer_first_token
    ids, mask, types = _batch(torch.Generator().manual_seed(5), 11, 23)
    widths = []
    variants = _C.variants() if kernel == "engine" else [_C.variant()]
    try:
        for variant in variants:
            _C.set_variant(variant)
            quantized = int8_model(model, kernel)
            last = quantized.layers[-1]
            feed_forward = last.feed_forward
            last.feed_forward = lambda layer, x: widths.append(x.shape[1]) or feed_forward(layer, x)
            with torch.inference_mode():
                first_only = quantized(ids, mask, types).logits
                quantized.last_layer_first_token = False
                whole = quantized(ids, mask, types).logits
            assert torch.equal(first_only, whole), variant
    finally:
        _C.set_variant("auto")
    assert widths == [1, 23] * len(variants)
