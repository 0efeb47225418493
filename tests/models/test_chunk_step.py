"""EncoderStep: fixed-shape chunks with explicit caches give the offline encoder's outputs."""

import math

import pytest
import torch

from tasr.models.chunk_step import EncoderStep
from tasr.models.encoder import Encoder

pytestmark = pytest.mark.usefixtures("one_thread")


def small_encoder(block, subsampling, left, right, **options):
    torch.manual_seed(0)
    return Encoder(input_dim=40, d_model=32, n_heads=2, n_layers=3, ff_dim=64, block=block,
                   subsampling=subsampling, subsampling_channels=8, conv_kernel=7, left=left,
                   right=right, dropout=0.0, **options).eval()


def stepped(step, feats, total):
    """Feats [T, F] through `step` in zero-padded chunks until every output frame is out."""
    n, C = step.chunk * step.encoder.subsampling, step.chunk
    caches, outs, k = step.initial_caches(1), [], 0
    while sum(o.shape[0] for o in outs) < total:
        x = feats[k * n:(k + 1) * n]
        x = torch.cat((x, x.new_zeros(n - x.shape[0], feats.shape[1])))[None]
        out, *caches = step(x, torch.tensor([k * C]), torch.tensor([total]), *caches)
        assert out.shape == (1, C, 32) and [c.shape for c in caches] == [c.shape for c in step.initial_caches(1)]
        position = k * C - step.delay + torch.arange(C)
        outs.append(out[0, (position >= 0) & (position < total)])
        k += 1
    assert k <= math.ceil(feats.shape[0] / n) + math.ceil(step.delay / C)
    return torch.cat(outs)


@pytest.mark.parametrize("block,subsampling,left,right", [
    ("conformer", 4, 6, 2),
    ("conformer", 4, 0, 0),
    ("transformer", 4, 5, 3),
    ("conformer", 6, [3, 0, 9], [0, 4, 1]),
    ("transformer", 8, [2, 7, 1], [3, 0, 2]),
])
@pytest.mark.parametrize("chunk", [1, 3, 8])
def test_steps_equal_offline(block, subsampling, left, right, chunk):
    encoder = small_encoder(block, subsampling, left, right)
    feats = torch.randn(253, 40, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        whole, lengths = encoder(feats[None], torch.tensor([feats.shape[0]]))
        step = EncoderStep(encoder, chunk)
        out = stepped(step, feats, int(lengths[0]))
    assert out.shape == whole[0].shape
    assert (out - whole[0]).abs().max() < 1e-4


def test_delay_is_the_look_ahead_and_caches_are_bounded():
    encoder = small_encoder("conformer", 4, 6, 2)
    step = EncoderStep(encoder, 8)
    lookahead = (encoder.receptive_field()[1] - encoder.subsample.right_context) // 4  # blocks' look-ahead
    assert step.delay == lookahead + step.sub_delay
    shapes = step.cache_shapes(1)
    assert shapes["qkv0"] == (1, 8, 96) and shapes["conv0"] == (1, 6, 32) and shapes["res2_0"] == (1, 2, 32)
    assert shapes["feats"] == (1, 4, 40)


@pytest.mark.parametrize("change,message", [
    ({"left": None}, "unlimited attention context"),
    ({"attention_options": {"score": "additive"}}, "only dot-product softmax"),
])
def test_what_cannot_step_is_refused(change, message):
    with pytest.raises(ValueError, match=message):
        EncoderStep(small_encoder("conformer", 4, **{"left": 4, "right": 1, **change}), 4)
    with pytest.raises(ValueError, match="eval mode"):
        EncoderStep(small_encoder("conformer", 4, 4, 1).train(), 4)
