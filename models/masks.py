"""Padding masks of batched sequences."""

import torch


def valid_mask(lengths: torch.Tensor, T: int) -> torch.Tensor:
    """[B, T] bool, True at the real frames `t < lengths[b]` (lengths [B]) and False at the padding."""
    return torch.arange(T, device=lengths.device)[None, :] < lengths[:, None]
