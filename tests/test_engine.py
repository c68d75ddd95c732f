"""The compiled engine is what runs, in the variant this CPU runs best (csrc/variants.h); its numeric
checks, on every variant, are in test_ops_cpu.py."""
import numpy as np
import pytest
import torch

import transenc
from test_ops_cpu import DTYPES, rand
from transenc import _C, ops
from transenc.precision import cpu_flags


# ---- the compiled engine is what runs --------------------------------------------------


def test_engine_is_the_compiled_extension():
    assert _C.__file__.endswith(".so")
    assert ops._C is transenc._C
    assert _C.threads() >= 1


def test_cpu_ops_call_the_engine(monkeypatch):
    calls = []

    class Spy:
        def __getattr__(self, name):
            fn = getattr(_C, name)

            def spy(*args, **kwargs):
                calls.append(name)
                return fn(*args, **kwargs)

            return spy

    monkeypatch.setattr(ops, "_C", Spy())
    x = torch.randn(5, 8)
    ops.pair_cosine(x, x)
    ops.pair_cosine_indexed(x, torch.tensor([[0, 1]]))
    ops.cosine_topk(x, x, 2)
    assert calls == ["pair_cosine", "pair_cosine_indexed", "cosine_topk"]


@pytest.mark.parametrize("dtype", DTYPES)
def test_half_inputs_reach_the_engine_without_a_copy(dtype, monkeypatch):
    """Each op hands the engine its tensors' own memory, in their own dtype."""
    x, y = torch.randn(6, 16).to(dtype), torch.randn(6, 16).to(dtype)
    reached = []

    def spy(real):  # records each call's rows (address, item size) and kinds; ids (int32) are not rows
        def call(*args):
            reached.append([(v.__array_interface__["data"][0], v.itemsize) for v in args
                            if isinstance(v, np.ndarray) and v.dtype != np.int32] + [v for v in args if isinstance(v, str)])
            return real(*args)
        return call

    for name in ("pair_cosine", "pair_cosine_indexed", "cosine_topk"):
        monkeypatch.setattr(ops._C, name, spy(getattr(ops._C, name)))
    ops.pair_cosine(x, y)
    ops.pair_cosine_indexed(x, np.array([[0, 1], [2, 3]]))
    ops.cosine_topk(x, y, 2)
    kind = {torch.float32: "f32", torch.float16: "f16", torch.bfloat16: "bf16"}[dtype]
    own = [(x.data_ptr(), x.element_size()), (y.data_ptr(), y.element_size())]
    assert reached == [[*own, kind], [own[0], kind], [*own, kind, kind]]


# ---- the engine's variants (csrc/variants.h) ----------------------------------------------


def test_the_widest_variant_this_cpu_runs_is_the_default():
    x86_64_v3 = {"avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "abm", "movbe", "xsave"}
    x86_64_v4 = x86_64_v3 | {"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"}
    _C.set_variant("auto")
    flags = cpu_flags()
    vnni = x86_64_v4 | {"avx512_vnni"}
    bf16 = vnni | {"avx512_bf16"}
    assert _C.variants() == (["baseline"] + ["avx2"] * (x86_64_v3 <= flags) + ["avx512"] * (x86_64_v4 <= flags)
                             + ["avx512_vnni"] * (vnni <= flags) + ["avx512_bf16"] * (bf16 <= flags))
    assert _C.VARIANTS == ("baseline", "avx2", "avx512", "avx512_vnni", "avx512_bf16")
    assert _C.variant() == _C.variants()[-1]
    with pytest.raises(ValueError, match="must be auto, baseline, avx2, avx512, avx512_vnni or avx512_bf16"):
        _C.set_variant("sse9")


def test_forcing_a_variant_switches_the_kernels():
    """avx512 sums cosines in another order than the baseline: its fp32 results differ in the last
    bits, each within the float64 checks below. avx2 has no cosine kernel of its own (its int8 matmul
    is what it is for): its cosines are the baseline's to the bit, so fp32 labels did not change
    where it became the default; avx512_vnni's and avx512_bf16's are avx512's. Without a second
    variant, there is nothing to switch."""
    if len(_C.variants()) < 2:
        pytest.skip("this CPU runs the baseline variant only")
    gen = torch.Generator().manual_seed(5)
    a, b = rand(gen, 2000, 384), rand(gen, 2000, 384)
    scores = {}
    for variant in _C.variants():
        _C.set_variant(variant)
        assert _C.variant() == variant
        scores[variant] = ops.pair_cosine(a, b)
    if "avx2" in scores:
        assert torch.equal(scores["baseline"], scores["avx2"])
    if "avx512" in scores:
        assert not torch.equal(scores["baseline"], scores["avx512"])
        torch.testing.assert_close(scores["baseline"], scores["avx512"], rtol=0, atol=1e-5)
    if "avx512_vnni" in scores:  # VNNI changes the int8 matmul only
        assert torch.equal(scores["avx512"], scores["avx512_vnni"])
    if "avx512_bf16" in scores:  # BF16 changes attention only
        assert torch.equal(scores["avx512"], scores["avx512_bf16"])
