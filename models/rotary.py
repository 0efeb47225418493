"""Rotary position embedding (RoFormer, Su et al. 2021).

Rotating queries and keys by an angle proportional to their frame index makes the dot product
of a query at frame t with a key at frame s depend only on t - s: the attention is
translation-invariant, so processing a window of a recording gives the same outputs as
processing the whole recording for every frame whose context lies inside the window.
"""

import math

import torch
from torch import nn


class RotaryEmbedding(nn.Module):
    """Rotates pairs of channels of `[..., T, D]` tensors by position-dependent angles.

    Channel i (i < D/2) is paired with channel i + D/2 (the GPT-NeoX layout) and rotated by
    `position * base ** (-2i / D)` radians. Angles are computed in float64, so positions far
    into a long recording (hundreds of thousands of frames) keep full precision.
    """

    def __init__(self, head_dim: int, base: float = 10000.0):
        super().__init__()
        if head_dim % 2:
            raise ValueError(f"rotary embedding needs an even head dimension, got {head_dim}")
        self.head_dim = head_dim
        self.base = base
        half = head_dim // 2
        inv_freq = base ** (-torch.arange(half, dtype=torch.float64) * 2 / head_dim)
        # angle rate and sign of the sine per channel: out = x * cos + (x2, x1) * (-sin, sin); float64
        # whatever the module's dtype (plain attributes, not buffers: never cast or saved)
        self.inv_freq = torch.cat((inv_freq, inv_freq))  # [D]
        self.sign = torch.cat((-torch.ones(half, dtype=torch.float64), torch.ones(half, dtype=torch.float64)))

    def forward(self, x: torch.Tensor, offset: int = 0) -> torch.Tensor:
        """`x [..., T, D]` with frame t at position `offset + t` -> rotated `x`, same shape and dtype."""
        T, D = x.shape[-2], x.shape[-1]
        if D != self.head_dim:
            raise ValueError(f"expected head dimension {self.head_dim}, got {D}")
        return rotate(x, *self.tables(offset, T, x.dtype, x.device))

    def tables(self, offset: int, T: int, dtype=torch.float32, device=None):
        """(cos, sin) `[T, D]` of positions offset ... offset + T - 1, the sine signed as `forward` uses it:
        rotated x = x * cos + x.roll(D // 2, dims=-1) * sin."""
        positions = torch.arange(offset, offset + T, dtype=torch.float64, device=device)
        angles = positions[:, None] * self.inv_freq.to(device)  # [T, D]
        if torch.compiler.is_exporting():  # ONNX runtimes often lack float64 cos/sin: reduce to [0, 2π) first
            angles = torch.remainder(angles, 2 * math.pi).float()
        return angles.cos().to(dtype), (angles.sin() * self.sign.to(angles)).to(dtype)

    def extra_repr(self) -> str:
        return f"head_dim={self.head_dim}, base={self.base}"


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """`x [..., T, D]` rotated with the tables [T, D] of `RotaryEmbedding.tables`."""
    return x * cos + x.roll(x.shape[-1] // 2, dims=-1) * sin  # (x1 cos - x2 sin, x2 cos + x1 sin)
