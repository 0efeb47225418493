"""Truncated attention: the backends agree with the dense reference, which agrees with a per-frame loop."""

import math

import pytest
import torch

from tasr.models.attention import choose_backend, truncated_attention
from tasr.models.attention_flex import _band_block_mask, flex_truncated_attention

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def inputs(B, H, T, D, dtype=torch.float32, device="cpu", seed=0, lengths="mixed"):
    generator = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(B, H, T, D, generator=generator).to(device, dtype).requires_grad_() for _ in range(3))
    if lengths == "mixed":  # the longest is T, the others odd and shorter
        lengths = torch.tensor([T] + [max(1, (T * (i + 1)) // (B + 1) | 1) for i in range(B - 1)], device=device)
    return q, k, v, lengths


def run(backend, q, k, v, left, right, lengths, **options):
    """Output and gradients of q, k, v under a fixed random upstream gradient."""
    out = truncated_attention(q, k, v, left, right, lengths, backend=backend, **options)
    upstream = torch.randn(out.shape, generator=torch.Generator().manual_seed(1)).to(out)
    grads = torch.autograd.grad(out, (q, k, v), upstream)
    return out, grads


def assert_close(a, b, atol):
    (out_a, grads_a), (out_b, grads_b) = a, b
    assert (out_a.float() - out_b.float()).abs().max().item() <= atol
    for name, ga, gb in zip("qkv", grads_a, grads_b):
        assert (ga.float() - gb.float()).abs().max().item() <= atol, f"gradient of {name}"


def loop_reference(q, k, v, left, right, lengths):
    """Frame by frame in float64: the definition of truncated attention."""
    B, H, T, D = q.shape
    out = torch.zeros(B, H, T, D, dtype=torch.float64)
    for b in range(B):
        n = T if lengths is None else int(lengths[b])
        for t in range(n):
            lo = 0 if left is None else max(0, t - left)
            hi = n if right is None else min(n, t + right + 1)
            scores = q[b, :, t, None].double() @ k[b, :, lo:hi].double().transpose(-1, -2) / math.sqrt(D)
            out[b, :, t] = (torch.softmax(scores, -1) @ v[b, :, lo:hi].double())[:, 0]
    return out


@pytest.mark.parametrize("T, left, right", [(1, 0, 0), (9, 1, 7), (23, 7, None), (40, None, 0), (33, 64, 1), (20, None, None)])
def test_dense_matches_frame_by_frame_definition(T, left, right):
    q, k, v, lengths = inputs(3, 2, T, 8)
    out = truncated_attention(q, k, v, left, right, lengths, backend="dense")
    assert torch.allclose(out.double(), loop_reference(q, k, v, left, right, lengths), atol=1e-5)


# (B, H, T, D, left, right, block): every left/right value of the issue appears on both sides,
# with odd lengths, blocks that do not divide T, windows wider than T and T from 1 to 5000.
CASES = [
    (1, 1, 1, 8, 0, 0, None),
    (2, 3, 2, 16, 1, 0, None),
    (3, 2, 17, 8, 0, 1, 4),
    (2, 2, 31, 8, 7, 7, 5),
    (3, 1, 63, 32, 64, 0, None),
    (2, 2, 101, 16, 0, 64, 16),
    (4, 2, 129, 8, 7, None, None),
    (2, 1, 77, 8, None, 7, 9),
    (3, 2, 150, 16, 64, 16, None),
    (2, 2, 257, 8, None, None, 32),
    (1, 2, 500, 64, 1, 64, None),
    (2, 1, 333, 8, 64, 1, 7),
    (2, 1, 5000, 16, 64, 16, None),
    (1, 1, 1999, 8, 7, None, 64),
]


@pytest.mark.parametrize("B, H, T, D, left, right, block", CASES)
def test_chunked_equals_dense_float32(B, H, T, D, left, right, block):
    q, k, v, lengths = inputs(B, H, T, D, seed=T)
    dense = run("dense", q, k, v, left, right, lengths)
    chunked = run("chunked", q, k, v, left, right, lengths, block_size=block)
    assert_close(dense, chunked, atol=1e-5)


@pytest.mark.parametrize("score, normalize", [("dot", "relu"), ("additive", "softmax"), ("additive", "relu")])
@pytest.mark.parametrize("T, left, right", [(1, 0, 0), (37, 7, 1), (90, None, 64), (200, 64, 16)])
def test_score_variants_chunked_equals_dense(score, normalize, T, left, right):
    q, k, v, lengths = inputs(2, 2, T, 8, seed=T)
    weight = torch.randn(2, 8, generator=torch.Generator().manual_seed(2)).requires_grad_()
    options = dict(score=score, normalize=normalize, additive_weight=weight if score == "additive" else None)
    dense = run("dense", q, k, v, left, right, lengths, **options)
    chunked = run("chunked", q, k, v, left, right, lengths, block_size=8, **options)
    assert_close(dense, chunked, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("T, left, right", [(45, 7, 1), (300, 64, 16), (130, None, 0)])
def test_chunked_equals_dense_half_precision(dtype, T, left, right):
    q, k, v, lengths = inputs(2, 2, T, 32, dtype=dtype, seed=T)
    chunked = run("chunked", q, k, v, left, right, lengths)
    # Within 2e-2 of the exact result for these 16-bit inputs (float32 arithmetic) ...
    exact = run("dense", *(x.detach().float().requires_grad_() for x in (q, k, v)), left, right, lengths)
    assert_close(exact, chunked, atol=2e-2)
    # ... and of dense in 16 bits, give or take one rounding of values above 1 (gradients reach
    # ~3.5, where a bfloat16 step is 0.016: dense's own error against the exact result is 0.025).
    dense = run("dense", q, k, v, left, right, lengths)
    for a, b in zip((dense[0], *dense[1]), (chunked[0], *chunked[1])):
        assert torch.allclose(a.float(), b.float(), atol=2e-2, rtol=1e-2)


@pytest.mark.parametrize("backend", ["dense", "chunked"])
def test_padding_is_neither_attended_nor_attending(backend):
    q, k, v, lengths = inputs(3, 2, 50, 8)
    out, grads = run(backend, q, k, v, 7, 3, lengths)
    padded = torch.arange(50)[None, :] >= lengths[:, None]  # [B, T]
    assert out[padded[:, None, :, None].expand_as(out)].abs().max() == 0
    for grad in grads:  # nothing flows into padded frames
        assert grad[padded[:, None, :, None].expand_as(grad)].abs().max() == 0
    with torch.no_grad():  # changing padded keys/values changes nothing
        k2, v2 = k.clone(), v.clone()
        k2[padded[:, None, :, None].expand_as(k2)] = 1e3
        v2[padded[:, None, :, None].expand_as(v2)] = -1e3
        assert torch.equal(truncated_attention(q, k2, v2, 7, 3, lengths, backend=backend), out)


@pytest.mark.parametrize("backend", ["dense", "chunked"])
def test_window_edge_cases(backend):
    q, k, v, _ = inputs(2, 2, 40, 8)
    with torch.no_grad():
        # left = right = 0: each frame sees only itself
        assert torch.allclose(truncated_attention(q, k, v, 0, 0, backend=backend), v, atol=1e-6)
        # unlimited window = plain full attention; lengths=None = every frame valid
        full = torch.nn.functional.scaled_dot_product_attention(q, k, v)
        assert torch.allclose(truncated_attention(q, k, v, None, None, backend=backend), full, atol=1e-5)
        everything = torch.full((2,), 40)
        assert torch.allclose(
            truncated_attention(q, k, v, 5, 2, everything, backend=backend),
            truncated_attention(q, k, v, 5, 2, None, backend=backend),
            atol=1e-6,
        )


@pytest.mark.filterwarnings("ignore:flex_attention called without torch.compile")
def test_flex_eager_equals_dense_forward():
    """The flex backend's block mask and mask function, through uncompiled FlexAttention (CPU)."""
    for T, left, right in [(1, 0, 0), (37, 7, 1), (300, 64, 16), (260, None, 5), (200, None, None), (700, 130, 0)]:
        q, k, v, lengths = inputs(3, 2, T, 16, seed=T)
        with torch.no_grad():
            dense = truncated_attention(q, k, v, left, right, lengths, backend="dense")
            flex = flex_truncated_attention(q, k, v, left, right, lengths, compile=False)
        assert (dense - flex).abs().max() <= 1e-5, (T, left, right)


@pytest.mark.parametrize("left, right", [(0, 0), (64, 16), (200, 1), (1, 300)])
def test_flex_block_mask_lists_every_needed_block_and_few_others(left, right):
    lengths = torch.tensor([1000, 513, 1, 128], dtype=torch.int32)
    T_pad, block = 1024, 128
    block_mask = _band_block_mask(lengths, T_pad, left, right, mask_mod=None)
    listed = block_mask.to_dense()[:, 0].bool()  # [B, T/128, T/128]
    t = torch.arange(T_pad)
    offset = t[None, :] - t[:, None]
    for b, n in enumerate(lengths.tolist()):
        needed = (offset >= -left) & (offset <= right) & (t[None, :] < n) & (t[:, None] < n)
        needed_blocks = needed.view(8, block, 8, block).any(3).any(1)
        assert torch.equal(listed[b], needed_blocks), b  # exactly the blocks with work in them


def test_flex_refuses_backward_on_cpu():
    q, k, v, lengths = inputs(1, 1, 10, 16)
    with pytest.raises(RuntimeError, match="no backward on CPU"):
        truncated_attention(q, k, v, 2, 2, lengths, backend="flex")


def test_auto_never_picks_flex_on_cpu_and_goes_linear_for_long_inputs():
    for T in (1, 100, 1000, 100_000):
        q = torch.empty(1, 4, T, 64)
        assert choose_backend(q, 64, 16) in ("dense", "chunked")
    assert choose_backend(torch.empty(1, 4, 100_000, 64), 64, 16) == "chunked"
    assert choose_backend(torch.empty(1, 4, 100_000, 64), None, None) == "dense"  # full attention: SDPA


def test_bad_arguments_are_named():
    q, k, v, lengths = inputs(2, 1, 10, 8)
    with pytest.raises(ValueError, match="left"):
        truncated_attention(q, k, v, -1, 0)
    with pytest.raises(ValueError, match="backend"):
        truncated_attention(q, k, v, 1, 1, backend="fast")
    with pytest.raises(ValueError, match=r"\[B, H, T, D\]"):
        truncated_attention(q[0], k[0], v[0], 1, 1)
    with pytest.raises(ValueError, match="lengths"):
        truncated_attention(q, k, v, 1, 1, torch.tensor([3]))
    with pytest.raises(ValueError, match="additive_weight"):
        truncated_attention(q, k, v, 1, 1, score="additive")


@cuda
@pytest.mark.parametrize("dtype, atol", [(torch.float32, 1e-5), (torch.bfloat16, 2e-2)])
@pytest.mark.parametrize("T, left, right", [(1, 0, 0), (300, 64, 16), (1000, 7, None), (4097, 64, 16)])
def test_cuda_backends_equal_dense(dtype, atol, T, left, right):
    q, k, v, lengths = inputs(3, 2, T, 64, dtype=dtype, device="cuda", seed=T)
    dense = run("dense", q, k, v, left, right, lengths)
    for backend in ("chunked", "flex"):
        assert_close(dense, run(backend, q, k, v, left, right, lengths), atol=atol)


@cuda
def test_flex_does_not_recompile_for_lengths_in_the_same_bucket():
    from torch._dynamo.utils import counters

    counters.clear()
    for T in (1500, 1700, 2000, 1999):
        q, k, v, lengths = inputs(2, 2, T, 64, dtype=torch.bfloat16, device="cuda", seed=T)
        truncated_attention(q, k, v, 64, 16, lengths, backend="flex").sum().backward()
    assert counters["stats"]["unique_graphs"] <= 1  # one shape bucket: compiled at most once
