import pytest
import torch

from tasr.models.encoder import Encoder
from tasr.models.subsampling import ConvSubsampling


def small_encoder(block="conformer", subsampling=4, left=3, right=1, **overrides):
    torch.manual_seed(0)
    config = dict(input_dim=40, d_model=32, n_heads=4, n_layers=2, ff_dim=64, block=block,
                  subsampling=subsampling, left=left, right=right, conv_kernel=7, dropout=0.0,
                  attention_backend="dense")
    config.update(overrides)
    return Encoder(**config).eval()


@pytest.mark.parametrize("factor", [4, 6, 8])
def test_subsampling_lengths_count_only_complete_frames(factor):
    sub = ConvSubsampling(40, 16, factor)
    for length in range(0, 60):
        out_length = int(sub.output_lengths(torch.tensor([length]))[0])
        # the last output frame t sees input frames factor*t .. factor*t + right_context
        assert out_length == max(0, (length - 1 - sub.right_context) // factor + 1)
    x, lengths = sub(torch.randn(2, 5, 40), torch.tensor([5, 3]))  # shorter than one output frame
    assert x.shape[0] == 2 and lengths.tolist() == [0, 0]


@pytest.mark.parametrize("block", ["transformer", "conformer"])
@pytest.mark.parametrize("factor", [4, 6, 8])
def test_shapes_and_padding_does_not_leak(block, factor):
    encoder = small_encoder(block, factor)
    lengths = torch.tensor([120, 77, 31])
    feats = torch.randn(3, 120, 40)
    feats[1, 77:] = 1e3  # garbage in the padding must not change anything
    out, out_lengths = encoder(feats, lengths)
    assert out.shape == (3, int(out_lengths.max()), 32)
    assert out_lengths.tolist() == encoder.output_lengths(lengths).tolist()
    for b in range(3):
        alone, _ = encoder(feats[b : b + 1, : lengths[b]], lengths[b : b + 1])
        torch.testing.assert_close(out[b, : out_lengths[b]], alone[0], atol=1e-5, rtol=1e-5)
        assert out[b, out_lengths[b] :].abs().max() == 0 if out_lengths[b] < out.shape[1] else True


@pytest.mark.parametrize("block", ["transformer", "conformer"])
@pytest.mark.parametrize("factor", [4, 6])
def test_window_gives_same_outputs_inside_receptive_field(block, factor):
    encoder = small_encoder(block, factor, left=[2, 4], right=[1, 0])
    left, right = encoder.receptive_field()
    feats = torch.randn(1, 80 * factor, 40)
    full, _ = encoder(feats, torch.tensor([80 * factor]))
    start, width = 16 * factor, 60 * factor  # windows start at a multiple of the factor
    window, window_lengths = encoder(feats[:, start : start + width], torch.tensor([width]))
    inside = outside = 0
    for k in range(int(window_lengths[0])):
        t = start // factor + k
        if factor * t - left >= start and factor * t + right <= start + width - 1:
            torch.testing.assert_close(window[0, k], full[0, t], atol=1e-5, rtol=1e-5)
            inside += 1
        elif not torch.allclose(window[0, k], full[0, t], atol=1e-5):
            outside += 1
    assert inside >= 10
    assert outside > 0  # frames that see past the window's edges differ: the field is not overstated


def test_receptive_field_and_lookahead():
    # transformer, 4x: per layer left/right in subsampled frames, times 4, plus 6 frames of convs
    encoder = small_encoder("transformer", 4, left=[5, 3], right=[2, 1])
    assert encoder.receptive_field() == (4 * 8, 4 * 3 + 6)
    assert encoder.lookahead_ms == (4 * 3 + 6) * 10.0
    # conformer: the depthwise conv (kernel 7) looks min(right, 3) ahead and the rest behind
    encoder = small_encoder("conformer", 4, left=4, right=1)
    assert encoder.receptive_field() == (4 * 2 * (4 + 5), 4 * 2 * (1 + 1) + 6)
    causal = small_encoder("conformer", 8, left=4, right=0)
    assert causal.receptive_field()[1] == 14 and causal.lookahead_ms == 140.0
    full = small_encoder("conformer", 4, left=None, right=None)
    assert full.receptive_field() == (None, None) and full.lookahead_ms is None


def test_full_attention_sees_the_whole_input():
    encoder = small_encoder("transformer", 4, left=None, right=None)
    feats = torch.randn(1, 200, 40)
    out, _ = encoder(feats, torch.tensor([200]))
    changed = feats.clone()
    changed[0, -10:] += 1.0
    out2, _ = encoder(changed, torch.tensor([200]))
    assert not torch.allclose(out[0, 0], out2[0, 0])  # the first frame depends on the last ones


def test_gradients_and_checkpointing_agree():
    encoder = small_encoder("conformer", 4, checkpointing=True).train()
    feats = torch.randn(2, 80, 40)
    lengths = torch.tensor([80, 50])
    out, _ = encoder(feats, lengths)
    out.square().sum().backward()
    with_checkpoints = [p.grad.clone() for p in encoder.parameters()]
    encoder.zero_grad()
    encoder.checkpointing = False
    out, _ = encoder(feats, lengths)
    out.square().sum().backward()
    for a, p in zip(with_checkpoints, encoder.parameters()):
        torch.testing.assert_close(a, p.grad, atol=1e-5, rtol=1e-4)


def test_bad_configs_are_rejected():
    with pytest.raises(ValueError, match="subsampling"):
        small_encoder(subsampling=3)
    with pytest.raises(ValueError, match="block"):
        small_encoder(block="lstm")
    with pytest.raises(ValueError, match="layers"):
        small_encoder(left=[1, 2, 3])
    with pytest.raises(ValueError, match="odd"):
        small_encoder(conv_kernel=8)


def test_intermediate_outputs_are_earlier_blocks_through_the_final_norm():
    encoder = small_encoder("conformer", 4, n_layers=3)
    feats, lengths = torch.randn(2, 90, 40), torch.tensor([90, 61])
    out, out_lengths, taken = encoder(feats, lengths, (1, 2))
    plain, _ = encoder(feats, lengths)
    torch.testing.assert_close(out, plain)
    x, sub_lengths = encoder.subsample(feats, lengths)
    valid = torch.arange(x.shape[1])[None, :] < sub_lengths[:, None]
    for block, got in zip(encoder.blocks, taken):
        x = block(x, sub_lengths, valid)
        torch.testing.assert_close(got, encoder.norm(x).masked_fill(~valid[..., None], 0.0))
    with pytest.raises(ValueError, match="blocks 1 to 2"):
        encoder(feats, lengths, (3,))
