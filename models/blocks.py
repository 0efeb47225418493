"""Encoder blocks: Transformer (pre-norm attention + feed-forward) and Conformer.

Both take `(x [B, T, d], lengths [B], valid [B, T] bool)` and return `[B, T, d]`; their
self-attention is `TruncatedMultiHeadAttention` with `left`/`right` context in frames of the
block (None = unlimited). `context()` gives how many frames left and right of a frame one block
looks at, for the encoder's receptive field.

Conformer convolution module and look-ahead: the depthwise convolution of kernel K looks
`min(right, (K - 1) // 2)` frames ahead and the rest (K - 1 - that) behind. So with full
attention (right=None) it is the usual centred convolution, with right=0 it is causal, and in
between it never looks further ahead than the attention does: the model's look-ahead is set by
the attention's right context alone. Padded frames are zeroed before the convolution, so a
sequence gives the same outputs alone and inside a padded batch. The convolution is normalised
with LayerNorm (not BatchNorm, whose training statistics would depend on padding and batch
composition).
"""

import torch
from torch import nn

from .attention import TruncatedMultiHeadAttention


class FeedForward(nn.Module):
    """Linear d -> ff_dim, SiLU, dropout, Linear ff_dim -> d, dropout (frame by frame)."""

    def __init__(self, d_model: int, ff_dim: int, dropout: float = 0.0):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d_model, ff_dim), nn.SiLU(), nn.Dropout(dropout),
                                 nn.Linear(ff_dim, d_model), nn.Dropout(dropout))

    def forward(self, x):
        return self.net(x)


class ConvModule(nn.Module):
    """Conformer convolution: pointwise (GLU), depthwise of `kernel` frames, LayerNorm, SiLU, pointwise.

    `lookahead` of the kernel's frames are ahead of the current frame, `kernel - 1 - lookahead` behind.
    """

    def __init__(self, d_model: int, kernel: int, lookahead: int, dropout: float = 0.0):
        super().__init__()
        if kernel < 1 or not 0 <= lookahead <= kernel - 1:
            raise ValueError(f"bad convolution kernel {kernel} / look-ahead {lookahead}")
        self.padding = (kernel - 1 - lookahead, lookahead)
        self.pointwise_in = nn.Conv1d(d_model, 2 * d_model, 1)
        self.depthwise = nn.Conv1d(d_model, d_model, kernel, groups=d_model)
        self.norm = nn.LayerNorm(d_model)
        self.pointwise_out = nn.Conv1d(d_model, d_model, 1)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        x = nn.functional.glu(self.pointwise_in(x.transpose(1, 2)), dim=1)  # [B, d, T]
        x = x.masked_fill(~valid[:, None, :], 0.0)
        x = self.depthwise(nn.functional.pad(x, self.padding))
        x = nn.functional.silu(self.norm(x.transpose(1, 2)))
        return self.dropout(self.pointwise_out(x.transpose(1, 2)).transpose(1, 2))


class TransformerBlock(nn.Module):
    """x + attention(norm(x)), then x + feed_forward(norm(x))."""

    def __init__(self, d_model, n_heads, ff_dim, left=None, right=None, dropout=0.1,
                 attention_dropout=0.0, attention_backend="auto", attention_options=None, **unused):
        super().__init__()
        self.left, self.right = left, right
        self.attention_norm = nn.LayerNorm(d_model)
        self.attention = TruncatedMultiHeadAttention(d_model, n_heads, left, right,
                                                     dropout=attention_dropout, backend=attention_backend,
                                                     **(attention_options or {}))
        self.attention_dropout = nn.Dropout(dropout)
        self.ff_norm = nn.LayerNorm(d_model)
        self.ff = FeedForward(d_model, ff_dim, dropout)

    def context(self):
        return self.left, self.right

    def forward(self, x, lengths, valid):
        x = x + self.attention_dropout(self.attention(self.attention_norm(x), lengths))
        return x + self.ff(self.ff_norm(x))


class ConformerBlock(nn.Module):
    """Macaron: x + ff1/2, x + attention, x + conv, x + ff2/2, then LayerNorm (Gulati et al. 2020)."""

    def __init__(self, d_model, n_heads, ff_dim, left=None, right=None, dropout=0.1,
                 attention_dropout=0.0, attention_backend="auto", attention_options=None, conv_kernel=15,
                 **unused):
        super().__init__()
        self.left, self.right = left, right
        lookahead = (conv_kernel - 1) // 2 if right is None else min(right, (conv_kernel - 1) // 2)
        self.conv_context = (conv_kernel - 1 - lookahead, lookahead)
        self.ff1_norm = nn.LayerNorm(d_model)
        self.ff1 = FeedForward(d_model, ff_dim, dropout)
        self.attention_norm = nn.LayerNorm(d_model)
        self.attention = TruncatedMultiHeadAttention(d_model, n_heads, left, right,
                                                     dropout=attention_dropout, backend=attention_backend,
                                                     **(attention_options or {}))
        self.attention_dropout = nn.Dropout(dropout)
        self.conv_norm = nn.LayerNorm(d_model)
        self.conv = ConvModule(d_model, conv_kernel, lookahead, dropout)
        self.ff2_norm = nn.LayerNorm(d_model)
        self.ff2 = FeedForward(d_model, ff_dim, dropout)
        self.out_norm = nn.LayerNorm(d_model)

    def context(self):
        left = None if self.left is None else self.left + self.conv_context[0]
        right = None if self.right is None else self.right + self.conv_context[1]
        return left, right

    def forward(self, x, lengths, valid):
        x = x + 0.5 * self.ff1(self.ff1_norm(x))
        x = x + self.attention_dropout(self.attention(self.attention_norm(x), lengths))
        x = x + self.conv(self.conv_norm(x), valid)
        x = x + 0.5 * self.ff2(self.ff2_norm(x))
        return self.out_norm(x)


BLOCKS = {"transformer": TransformerBlock, "conformer": ConformerBlock}
