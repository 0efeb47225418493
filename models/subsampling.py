"""Convolutional subsampling: feature frames [B, T, F] -> [B, T', d] with T' about T / factor.

A stack of 2-D convolutions over (time, frequency) without padding, each followed by ReLU, then
a linear projection to `d_model` (as in ESPnet/WeNet's Conv2dSubsampling):

    factor 4: 3x3 stride 2, 3x3 stride 2            output frame t sees input frames 4t .. 4t+6
    factor 6: 3x3 stride 2, 5x5 stride 3            output frame t sees input frames 6t .. 6t+10
    factor 8: 3x3 stride 2, 3x3 stride 2, 3x3 /2    output frame t sees input frames 8t .. 8t+14

Because there is no padding in time, an output frame exists only when all the input frames it
sees exist: `output_lengths` counts exactly those, so padded input frames never reach a valid
output. A window of the input that starts at a multiple of `factor` gives the same outputs as
the whole input for the frames it contains entirely (shifted by start / factor).

`stream()` gives the incremental form (`SubsamplingStream`): it keeps the input frames from
`factor * (frames emitted)` on, fewer than `right_context + factor`, and runs the convolutions
on them plus each new chunk.
"""

import torch
import torch.nn.functional as F
from torch import nn

from .streaming import linear, stream_linear

# factor -> (kernel, stride) of each convolution, in time and frequency alike
LAYERS = {4: ((3, 2), (3, 2)), 6: ((3, 2), (5, 3)), 8: ((3, 2), (3, 2), (3, 2))}


class ConvSubsampling(nn.Module):
    """`factor` in (4, 6, 8); `channels` of the convolutions (default `d_model`)."""

    def __init__(self, input_dim: int, d_model: int, factor: int = 4, channels: int | None = None,
                 dropout: float = 0.0):
        super().__init__()
        if factor not in LAYERS:
            raise ValueError(f"subsampling factor must be one of {sorted(LAYERS)}, not {factor}")
        channels = channels or d_model
        self.input_dim, self.factor = input_dim, factor
        self.layers = LAYERS[factor]
        convs, in_channels, freq = [], 1, input_dim
        for kernel, stride in self.layers:
            convs += [nn.Conv2d(in_channels, channels, kernel, stride), nn.ReLU()]
            in_channels, freq = channels, (freq - kernel) // stride + 1
        if freq < 1:
            raise ValueError(f"input_dim {input_dim} is too small for subsampling by {factor}")
        self.conv = nn.Sequential(*convs)
        self.out = nn.Linear(channels * freq, d_model)
        self.dropout = nn.Dropout(dropout)
        # right context in input frames: output frame t sees input frames [factor*t, factor*t + right_context]
        self.right_context, step = 0, 1
        for kernel, stride in self.layers:
            self.right_context += (kernel - 1) * step
            step *= stride

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Output frames for `lengths` input frames (0 when shorter than right_context + 1)."""
        for kernel, stride in self.layers:
            lengths = torch.div(lengths - kernel, stride, rounding_mode="floor") + 1
        return lengths.clamp(min=0)

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor):
        """feats [B, T, F], lengths [B] -> ([B, T', d_model], out_lengths [B])."""
        valid = torch.arange(feats.shape[1], device=feats.device)[None, :] < lengths[:, None]
        x = feats.masked_fill(~valid[..., None], 0.0)
        if x.shape[1] <= self.right_context:  # too short for one output frame: pad so the convs run
            x = nn.functional.pad(x, (0, 0, 0, self.right_context + 1 - x.shape[1]))
        return self.project(x), self.output_lengths(lengths)

    def project(self, feats: torch.Tensor) -> torch.Tensor:
        """feats [B, T, F] with T > right_context -> [B, T', d_model], every output frame complete."""
        x = self.conv(feats.unsqueeze(1))  # [B, C, T', F']
        return self.dropout(self.out(x.transpose(1, 2).flatten(2)))

    def stream(self) -> "SubsamplingStream":
        """A fresh incremental state for one stream (see `SubsamplingStream`)."""
        return SubsamplingStream(self)


class SubsamplingStream:
    """Feature frames [n, F] in, the output frames [k, d_model] now complete out.

    Output frame t is emitted once input frame `factor * t + right_context` has arrived; the
    input frames kept are those from `factor * t` on for the next t (fewer than
    `right_context + factor`). No padding in time, so frames left at the end of the input are
    never an output frame, as offline: there is nothing to flush. Eval mode (no dropout), in
    functional calls on the module's weights.
    """

    def __init__(self, module: ConvSubsampling):
        self.module = module
        self.convs = [(conv.weight.detach(), conv.bias.detach(), conv.stride)
                      for conv in module.conv if isinstance(conv, nn.Conv2d)]
        self.out = stream_linear(module.out)
        self.frames = None  # input frames [n, F] from factor * emitted on
        self.emitted = 0  # output frames returned so far

    def feed(self, feats: torch.Tensor) -> torch.Tensor:
        m = self.module
        self.frames = feats if self.frames is None else torch.cat((self.frames, feats))
        ready = (self.frames.shape[0] - m.right_context - 1) // m.factor + 1  # complete output frames
        if ready <= 0:
            return feats.new_zeros(0, m.out.out_features)
        x = self.frames[None, None, :m.factor * (ready - 1) + m.right_context + 1]  # [1, 1, T, F]
        for weight, bias, stride in self.convs:
            x = F.relu(F.conv2d(x, weight, bias, stride), inplace=True)
        self.frames = self.frames[m.factor * ready:]
        self.emitted += ready
        return linear(x[0].transpose(0, 1).flatten(1), *self.out)  # [C, k, F'] -> [k, C * F'] -> [k, d]
