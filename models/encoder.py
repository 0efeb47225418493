"""The encoder: feature frames [B, T, F] -> encodings [B, T / subsampling, d_model].

Convolutional subsampling (4x by default; 6x, 8x) then `n_layers` blocks, Transformer or
Conformer (see `models/blocks.py`), each with truncated self-attention: frame t of a block
attends to frames t-left .. t+right of that block (`left`/`right` in subsampled frames; None
means unlimited, i.e. full attention). `left`/`right` are one value for every layer or a list
with one value per layer.

Receptive field: output frame t depends on input frames
`subsampling*t - left_total .. subsampling*t + right_total` where `receptive_field()` returns
`(left_total, right_total)` in input (10 ms) frames: the blocks' contexts summed over layers
times the subsampling factor, plus the subsampling convolutions' own context. Running the
encoder on a window of the input that starts at a multiple of `subsampling` gives the same
outputs as running it on the whole input, for every output frame whose receptive field lies
inside the window; `lookahead_ms` is `right_total` in milliseconds.

Streaming: `encoder.stream()` gives an `EncoderStream` (`models/streaming.py`) that takes
feature frames chunk by chunk and carries each layer's caches, with the offline outputs.

Example configurations (keyword arguments of `Encoder`, as they appear in a recipe's yaml):

    small (FSDD digits on a CPU; 1.1M parameters with 80 fbank bins):
        {"block": "conformer", "d_model": 128, "n_heads": 4, "n_layers": 4, "ff_dim": 256,
         "subsampling_channels": 32, "conv_kernel": 15, "left": 16, "right": 2, "dropout": 0.1}
    medium (LibriSpeech-scale Conformer-CTC as in WeNet; 32.7M parameters + the output layer):
        {"block": "conformer", "d_model": 256, "n_heads": 4, "n_layers": 12, "ff_dim": 2048,
         "conv_kernel": 31, "left": 64, "right": 4, "dropout": 0.1}
    Look-ahead of those: small 4 * 4 * (2 + 2) + 6 = 70 frames = 700 ms; medium 4 * 12 *
    (4 + 4) + 6 = 390 frames (3.9 s; use right=0 or 1 for low latency). Full attention:
    "left": null, "right": null.
"""

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from .blocks import BLOCKS
from .streaming import EncoderStream
from .subsampling import ConvSubsampling


def _per_layer(value, n_layers, name):
    if isinstance(value, (list, tuple)):
        if len(value) != n_layers:
            raise ValueError(f"{name} has {len(value)} values for {n_layers} layers")
        values = list(value)
    else:
        values = [value] * n_layers
    for v in values:
        if v is not None and (not isinstance(v, int) or v < 0):
            raise ValueError(f"{name} must be None or a frame count >= 0, not {v!r}")
    return values


class Encoder(nn.Module):
    """Conv subsampling + `n_layers` Transformer/Conformer blocks with truncated self-attention.

    input_dim: feature bins (80); d_model, n_heads, ff_dim (default 4 * d_model): block sizes;
    block: "conformer" or "transformer"; subsampling: 4, 6 or 8; left/right: attention context
    in subsampled frames (int or None, or a list per layer); conv_kernel: Conformer depthwise
    kernel (odd); dropout: after attention, inside feed-forward/conv and after subsampling;
    attention_dropout: on attention weights; subsampling_channels: conv channels (default
    d_model); attention_backend: see `models.attention`; attention_options: more keyword
    arguments of `TruncatedMultiHeadAttention` (e.g. {"score": "additive"} or
    {"normalize": "relu"}); frame_shift_ms: input frame period;
    checkpointing: recompute blocks in the backward pass (less memory, more time) when training.
    """

    def __init__(self, input_dim=80, d_model=256, n_heads=4, n_layers=12, ff_dim=None,
                 block="conformer", subsampling=4, left=None, right=None, conv_kernel=15,
                 dropout=0.1, attention_dropout=0.0, subsampling_channels=None,
                 attention_backend="auto", attention_options=None, frame_shift_ms=10.0, checkpointing=False):
        super().__init__()
        if block not in BLOCKS:
            raise ValueError(f"block must be one of {sorted(BLOCKS)}, not {block!r}")
        if d_model % n_heads:
            raise ValueError(f"d_model {d_model} is not a multiple of n_heads {n_heads}")
        if conv_kernel % 2 == 0:
            raise ValueError(f"conv_kernel must be odd, not {conv_kernel}")
        lefts = _per_layer(left, n_layers, "left")
        rights = _per_layer(right, n_layers, "right")
        self.d_model = d_model
        self.frame_shift_ms = frame_shift_ms
        self.checkpointing = checkpointing
        self.subsample = ConvSubsampling(input_dim, d_model, subsampling, subsampling_channels, dropout)
        self.blocks = nn.ModuleList(
            BLOCKS[block](d_model=d_model, n_heads=n_heads, ff_dim=ff_dim or 4 * d_model, left=l,
                          right=r, dropout=dropout, attention_dropout=attention_dropout,
                          attention_backend=attention_backend, attention_options=attention_options,
                          conv_kernel=conv_kernel)
            for l, r in zip(lefts, rights))
        self.norm = nn.LayerNorm(d_model)

    @property
    def subsampling(self) -> int:
        """Input frames per output frame."""
        return self.subsample.factor

    def output_lengths(self, frame_lengths: torch.Tensor) -> torch.Tensor:
        """Output frames for `frame_lengths` input frames."""
        return self.subsample.output_lengths(frame_lengths)

    def receptive_field(self):
        """(left, right) in input frames around input frame `subsampling * t` for output frame t; None = unlimited."""
        left = right = 0
        for block in self.blocks:
            l, r = block.context()
            left = None if left is None or l is None else left + l
            right = None if right is None or r is None else right + r
        factor = self.subsampling
        return (None if left is None else factor * left,
                None if right is None else factor * right + self.subsample.right_context)

    @property
    def lookahead_ms(self):
        """How far ahead of an output frame's start the encoder looks, in ms (None = the whole input)."""
        right = self.receptive_field()[1]
        return None if right is None else right * self.frame_shift_ms

    def stream(self) -> EncoderStream:
        """A fresh streaming state for one input (eval mode; left and right limited); see `models/streaming.py`."""
        return EncoderStream(self)

    def forward(self, feats: torch.Tensor, frame_lengths: torch.Tensor, intermediate: tuple = ()):
        """feats [B, T, F], frame_lengths [B] -> (out [B, T', d_model], out_lengths [B]); padding is zero.

        With `intermediate` block numbers (1 = after the first block), also the list of those blocks'
        outputs through the final norm, [B, T', d_model] each (for intermediate CTC losses)."""
        if any(not 1 <= i < len(self.blocks) for i in intermediate):
            raise ValueError(f"intermediate outputs are of blocks 1 to {len(self.blocks) - 1}, got {list(intermediate)}")
        x, lengths = self.subsample(feats, frame_lengths)
        valid = torch.arange(x.shape[1], device=x.device)[None, :] < lengths[:, None]
        taken = []
        for i, block in enumerate(self.blocks, 1):
            if self.checkpointing and self.training and torch.is_grad_enabled():
                x = checkpoint(block, x, lengths, valid, use_reentrant=False)
            else:
                x = block(x, lengths, valid)
            if i in intermediate:
                taken.append(self.norm(x).masked_fill(~valid[..., None], 0.0))
        out = self.norm(x).masked_fill(~valid[..., None], 0.0)
        return (out, lengths, taken) if intermediate else (out, lengths)
