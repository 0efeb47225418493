"""TruncatedMultiHeadAttention: padding, translation invariance (windows), streaming = offline."""

import pytest
import torch

from tasr.models.attention import TruncatedMultiHeadAttention
from tasr.models.rotary import RotaryEmbedding


def module(left, right, backend="chunked", seed=0, **options):
    torch.manual_seed(seed)
    return TruncatedMultiHeadAttention(32, 4, left, right, backend=backend, **options).eval()


def features(B, T, seed=1):
    return torch.randn(B, T, 32, generator=torch.Generator().manual_seed(seed))


def test_rotary_scores_depend_only_on_the_distance():
    rotary = RotaryEmbedding(8)
    q, k = torch.randn(1, 8), torch.randn(1, 8)
    near = rotary(q, offset=3) @ rotary(k, offset=1).T
    far = rotary(q, offset=200_003) @ rotary(k, offset=200_001).T
    assert torch.allclose(near, far, atol=1e-5)


@pytest.mark.parametrize("backend", ["dense", "chunked"])
def test_shapes_and_padded_frames_are_zero(backend):
    attention = module(7, 2, backend)
    x, lengths = features(3, 40), torch.tensor([40, 17, 1])
    out = attention(x, lengths)
    assert out.shape == x.shape
    assert out[1, 17:].abs().max() == 0 and out[2, 1:].abs().max() == 0
    # a padded batch gives each sequence what it gets alone
    alone = attention(x[1:2, :17])
    assert torch.allclose(out[1:2, :17], alone, atol=1e-5)


@pytest.mark.parametrize("left, right", [(7, 2), (64, 16), (0, 5), (3, 0)])
@pytest.mark.parametrize("backend", ["dense", "chunked"])
def test_a_window_gives_the_same_outputs_where_its_context_is_inside(left, right, backend):
    attention = module(left, right, backend)
    x = features(2, 400)
    full = attention(x)
    for start, stop in [(0, 150), (100, 300), (37, 400), (250, 400)]:
        window = attention(x[:, start:stop])
        # frames whose whole band [t - left, t + right] lies in the window (or hits the true edges)
        lo = start if start == 0 else start + left
        hi = stop if stop == 400 else stop - right
        assert torch.allclose(window[:, lo - start:hi - start], full[:, lo:hi], atol=1e-5), (start, stop)


def test_translation_invariance_far_into_a_long_recording():
    """Positions up to 250k frames (about 2.8 hours after 4x subsampling) keep rotary exact."""
    attention = module(7, 2)
    x = features(1, 60)
    q, k, v = attention.project(x)
    q_far, k_far, v_far = attention.project(x, offset=250_000)
    scores = q @ k.transpose(-1, -2)
    assert torch.allclose(scores, q_far @ k_far.transpose(-1, -2), atol=1e-4)


@pytest.mark.parametrize("left, right, chunks", [
    (7, 2, [1, 5, 17, 3, 60, 114]),
    (64, 16, [16] * 12 + [8]),
    (0, 0, [4, 4, 4]),
    (5, None, [10, 3, 7]),
    (None, 3, [2, 30, 1, 9]),
])
def test_streaming_equals_offline(left, right, chunks):
    attention = module(left, right)
    x = features(2, sum(chunks))
    offline = attention(x)
    stream, pieces, start = attention.stream(), [], 0
    for n in chunks:
        pieces.append(stream.feed(x[:, start:start + n]))
        start += n
        if right is not None:
            assert stream.emitted == max(0, start - right)  # outputs come as soon as their right context is there
    pieces.append(stream.flush())
    streamed = torch.cat(pieces, dim=1)
    assert torch.allclose(streamed, offline, atol=1e-5)
    if left is not None:  # the cache holds no more than left past frames plus the pending ones
        assert stream.k.shape[2] <= left + (stream.received - stream.emitted)


def test_a_single_stream_takes_unbatched_frames_and_gives_the_batched_outputs():
    attention = module(7, 2)
    x = features(1, 40)
    single, batched = attention.stream(batched=False), attention.stream()
    pieces = [(single.feed(x[0, i:i + 9]), batched.feed(x[:, i:i + 9])) for i in range(0, 40, 9)]
    pieces.append((single.flush(), batched.flush()))
    for one, many in pieces:
        assert one.dim() == 2 and torch.equal(one, many[0])
    with pytest.raises(ValueError, match=r"single stream takes frames \[n, d_model\], got \[1, 4, 32\]"):
        attention.stream(batched=False).feed(x[:, :4])
    with pytest.raises(ValueError, match=r"batched stream takes frames \[B, n, d_model\], got \[4, 32\]"):
        attention.stream().feed(x[0, :4])


@pytest.mark.parametrize("score, normalize", [("dot", "relu"), ("additive", "softmax"), ("additive", "relu")])
def test_score_variants_agree_across_backends_and_streaming(score, normalize):
    dense = module(7, 3, "dense", score=score, normalize=normalize)
    chunked = module(7, 3, "chunked", score=score, normalize=normalize)
    x, lengths = features(2, 50), torch.tensor([50, 31])
    assert torch.allclose(dense(x, lengths), chunked(x, lengths), atol=1e-5)
    stream = chunked.stream()
    streamed = torch.cat([stream.feed(x[:, :20]), stream.feed(x[:, 20:]), stream.flush()], dim=1)
    assert torch.allclose(streamed, chunked(x), atol=1e-5)


def test_parameter_gradients_agree_between_backends():
    dense, chunked = module(7, 3, "dense").train(), module(7, 3, "chunked").train()
    x, lengths = features(2, 90), torch.tensor([90, 41])
    for attention in (dense, chunked):
        attention(x, lengths).square().sum().backward()
    for (name, a), b in zip(dense.named_parameters(), chunked.parameters()):
        assert torch.allclose(a.grad, b.grad, atol=1e-4), name


def test_training_step_with_dropout_reaches_every_parameter():
    attention = module(7, 3, "chunked", score="additive", dropout=0.1).train()
    x, lengths = features(2, 30).requires_grad_(), torch.tensor([30, 12])
    attention(x, lengths).square().sum().backward()
    for name, parameter in attention.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
    assert x.grad[1, 12:].abs().max() == 0  # padding influences nothing


def test_bad_configuration_is_named():
    with pytest.raises(ValueError, match="divisible"):
        TruncatedMultiHeadAttention(30, 4, 1, 1)
    with pytest.raises(ValueError, match="backend"):
        TruncatedMultiHeadAttention(32, 4, 1, 1, backend="fastest")
