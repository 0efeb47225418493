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

    def forward(self, x: torch.Tensor, offset: int = 0) -> torch.Tensor:
        """`x [..., T, D]` with frame t at position `offset + t` -> rotated `x`, same shape and dtype."""
        T, D = x.shape[-2], x.shape[-1]
        if D != self.head_dim:
            raise ValueError(f"expected head dimension {self.head_dim}, got {D}")
        half = D // 2
        inv_freq = self.base ** (-torch.arange(half, dtype=torch.float64, device=x.device) * 2 / D)
        positions = torch.arange(offset, offset + T, dtype=torch.float64, device=x.device)
        angles = positions[:, None] * inv_freq[None, :]  # [T, D/2]
        if torch.compiler.is_exporting():  # ONNX runtimes often lack float64 cos/sin: reduce to [0, 2π) first
            angles = torch.remainder(angles, 2 * math.pi).float()
        cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
        x1, x2 = x[..., :half], x[..., half:]
        return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)

    def extra_repr(self) -> str:
        return f"head_dim={self.head_dim}, base={self.base}"
