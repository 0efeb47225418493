"""Encoder.stream(): chunk by chunk with per-layer caches, the offline encoder's outputs, bounded state."""

import pytest
import torch

from tasr.models.blocks import CONV1D_MIN_FRAMES
from tasr.models.encoder import Encoder

pytestmark = pytest.mark.usefixtures("one_thread")


def small_encoder(block="conformer", subsampling=4, left=6, right=2, n_layers=3, **options):
    torch.manual_seed(0)
    return Encoder(input_dim=40, d_model=32, n_heads=2, n_layers=n_layers, ff_dim=64, block=block,
                   subsampling=subsampling, subsampling_channels=8, conv_kernel=7, left=left,
                   right=right, dropout=0.0, **options).eval()


def offline(encoder, feats):
    with torch.inference_mode():
        out, lengths = encoder(feats[None], torch.tensor([feats.shape[0]]))
    return out[0, :lengths[0]]


def streamed(encoder, feats, chunks):
    """Feed `feats [T, F]` in pieces of the sizes in `chunks` (cycled), then flush."""
    stream, pieces, start, i = encoder.stream(), [], 0, 0
    with torch.inference_mode():
        while start < feats.shape[0]:
            n = chunks[i % len(chunks)]
            pieces.append(stream.feed(feats[start:start + n]))
            start, i = start + n, i + 1
        pieces.append(stream.flush())
    return torch.cat(pieces)


@pytest.mark.parametrize("block,subsampling,left,right", [
    ("conformer", 4, 6, 2),
    ("conformer", 4, 6, 0),
    ("transformer", 4, 5, 3),
    ("transformer", 6, 5, 0),
    ("conformer", 6, 4, 1),
    ("conformer", 8, [3, 0, 9], [0, 4, 1]),
    ("transformer", 8, [2, 7, 1], [3, 0, 2]),
])
@pytest.mark.parametrize("chunks", [[1], [3], [7, 1, 13], [40], [10_000]])
def test_stream_equals_offline(block, subsampling, left, right, chunks):
    encoder = small_encoder(block, subsampling, left, right)
    feats = torch.randn(253, 40, generator=torch.Generator().manual_seed(1))
    whole = offline(encoder, feats)
    out = streamed(encoder, feats, chunks)
    assert out.shape == whole.shape
    assert (out - whole).abs().max() < 1e-4


def test_long_chunks_take_conv1d_and_short_ones_the_dot_product_alike():
    """Chunks of more than CONV1D_MIN_FRAMES output frames go through conv1d in the convolution module."""
    encoder = small_encoder("conformer", 4, 6, 2)
    feats = torch.randn(1000, 40, generator=torch.Generator().manual_seed(3))
    long = 4 * CONV1D_MIN_FRAMES + 40
    assert (streamed(encoder, feats, [long, 5]) - offline(encoder, feats)).abs().max() < 1e-4


@pytest.mark.parametrize("options", [{"score": "additive"}, {"normalize": "relu"}])
def test_stream_equals_offline_with_other_attention_scores(options):
    encoder = small_encoder(attention_options=options)
    feats = torch.randn(180, 40, generator=torch.Generator().manual_seed(2))
    assert (streamed(encoder, feats, [9]) - offline(encoder, feats)).abs().max() < 1e-4


def test_outputs_come_as_soon_as_their_look_ahead_has_arrived():
    """Output frame t is out once input frame sub * t + (the encoder's right receptive field) is in."""
    encoder = small_encoder("conformer", 4, 6, 2)
    right = encoder.receptive_field()[1]
    feats = torch.randn(200, 40)
    stream, emitted = encoder.stream(), 0
    with torch.inference_mode():
        for received in range(1, 201):
            emitted += stream.feed(feats[received - 1:received]).shape[0]
            assert emitted == max(0, (received - 1 - right) // 4 + 1)


@pytest.mark.parametrize("num_frames", [0, 3, 6, 7, 11])
def test_inputs_shorter_than_the_look_ahead(num_frames):
    encoder = small_encoder()
    feats = torch.randn(num_frames, 40)
    whole = offline(encoder, feats)
    out = streamed(encoder, feats, [2])
    assert out.shape == whole.shape and torch.allclose(out, whole, atol=1e-4)


def state_elements(obj, seen=None) -> int:
    """Elements of every tensor a stream holds (walking its attributes, not the modules' weights)."""
    seen = set() if seen is None else seen
    if id(obj) in seen or isinstance(obj, torch.nn.Module):
        return 0
    seen.add(id(obj))
    if isinstance(obj, torch.Tensor):
        return obj.numel()
    if isinstance(obj, (list, tuple)):
        return sum(state_elements(x, seen) for x in obj)
    if hasattr(obj, "__dict__"):
        return sum(state_elements(x, seen) for x in vars(obj).values())
    return 0


@pytest.mark.parametrize("block", ["conformer", "transformer"])
def test_state_does_not_grow_with_the_stream(block):
    encoder = small_encoder(block, 4, 6, 2)
    stream, sizes = encoder.stream(), []
    g = torch.Generator().manual_seed(3)
    with torch.inference_mode():
        for _ in range(600):  # 6000 input frames, 1500 output frames
            stream.feed(torch.randn(10, 40, generator=g))
            sizes.append(state_elements(stream))
    assert max(sizes[300:]) <= max(sizes[100:300])
    for layer in stream.blocks:  # keys: the last `left` frames and those waiting for look-ahead
        assert layer.attention.k.shape[2] <= 6 + 2
    assert stream.subsampling.frames.shape[0] < encoder.subsample.right_context + 4


def test_unlimited_context_cannot_stream():
    for left, right in [(None, 2), (6, None), ([6, None, 6], 2)]:
        with pytest.raises(ValueError, match="unlimited attention context"):
            small_encoder(left=left, right=right).stream()
    with pytest.raises(ValueError, match="eval mode"):
        small_encoder().train().stream()


def test_a_flushed_stream_takes_no_more_input():
    encoder = small_encoder()
    stream = encoder.stream()
    stream.feed(torch.randn(50, 40))
    stream.flush()
    with pytest.raises(ValueError, match="flushed"):
        stream.feed(torch.randn(5, 40))


def test_a_new_stream_uses_the_weights_as_they_are_now():
    """Streams share weights derived once per module (transposed, projections): a change of the
    weights (in place, or new tensors loaded) reaches the next stream."""
    encoder = small_encoder()
    feats = torch.randn(120, 40, generator=torch.Generator().manual_seed(4))
    assert (streamed(encoder, feats, [9]) - offline(encoder, feats)).abs().max() < 1e-4
    with torch.no_grad():
        for parameter in encoder.parameters():
            parameter.mul_(1.1)
    assert (streamed(encoder, feats, [9]) - offline(encoder, feats)).abs().max() < 1e-4
    encoder.load_state_dict({k: 0.9 * v for k, v in encoder.state_dict().items()}, assign=True)
    assert (streamed(encoder, feats, [9]) - offline(encoder, feats)).abs().max() < 1e-4
