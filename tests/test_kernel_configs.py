"""Launch configs come from a table of measured entries keyed by (capability, d, dtype); other
devices, sizes and dtypes keep the kernels' reasoned defaults. Pure Python: no GPU needed."""
import pytest
import torch

pytest.importorskip("triton")
from transenc.kernels import cosine_topk as ct  # noqa: E402
from transenc.kernels import measured, pair_cosine as pc  # noqa: E402

H200 = (9, 0)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_topk_uses_the_sm90_entry_and_falls_back_elsewhere(dtype):
    tuned = ct.launch_config(H200, 384, dtype, k_pad=16)
    assert (tuned["block_q"], tuned["block_c"], tuned["block_k"], tuned["num_warps"], tuned["num_stages"]) == (64, 256, 64, 8, 3)
    default = ct.default_config(dtype, 16)
    assert tuned != default
    for cap, d, k_pad in [((8, 0), 384, 16), ((9, 0), 768, 16), (None, 384, 16), (H200, 384, 64)]:
        assert ct.launch_config(cap, d, dtype, k_pad) == ct.default_config(dtype, k_pad), (cap, d, k_pad)
    assert ct.launch_config(H200, 384, torch.float32, 16) == ct.default_config(torch.float32, 16)


def test_pair_cosine_uses_the_sm90_entry_and_falls_back_elsewhere():
    assert measured(pc.MEASURED, H200, 384, torch.float32) == dict(block_n=16, num_warps=4)
    for cap, d, dtype in [((8, 9), 384, torch.float32), (H200, 384, torch.float16), (H200, 256, torch.float32),
                          (None, 384, torch.float32)]:
        assert measured(pc.MEASURED, cap, d, dtype) == {}, (cap, d, dtype)


def test_topk_refuses_an_unknown_loop_shape():
    x = torch.randn(3, 4)
    with pytest.raises(ValueError, match="loop must be 'tiles' or 'flat'"):
        ct.cosine_topk(x, x, 2, config=dict(loop="flattened"))
