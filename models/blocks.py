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

Streaming (`block.stream()`, eval mode): frames [n, d] of one stream go in as they arrive and
each call returns the block's outputs for the frames whose look-ahead has arrived; `flush()` at
the end of the input returns the rest. A Transformer block waits `right` frames (its attention); a
Conformer block `right` for its attention, then the convolution's look-ahead on top. Each
stage keeps its bounded state (the attention's keys and values of the last `left` frames, the
convolution's last `kernel - 1 - lookahead` inputs) and the residual inputs of the frames still
waiting for it. Together the outputs equal `forward` on the whole input.
"""

import torch
import torch.nn.functional as F
from torch import nn

from .attention import TruncatedMultiHeadAttention
from .streaming import linear, stream_linear


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
        x = self.gate(x).masked_fill(~valid[..., None], 0.0)
        x = self.depthwise(nn.functional.pad(x.transpose(1, 2), self.padding)).transpose(1, 2)
        return self.output(x)

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        """[B, T, d] -> the depthwise convolution's input [B, T, d] (pointwise, GLU)."""
        w = self.pointwise_in
        return nn.functional.glu(nn.functional.linear(x, w.weight[:, :, 0], w.bias), dim=-1)

    def output(self, x: torch.Tensor) -> torch.Tensor:
        """The depthwise convolution's output [B, T, d] -> [B, T, d] (LayerNorm, SiLU, pointwise)."""
        w = self.pointwise_out
        return self.dropout(nn.functional.linear(nn.functional.silu(self.norm(x)), w.weight[:, :, 0], w.bias))


CONV1D_MIN_FRAMES = 64  # a stream's depthwise convolution of this many frames or more runs as conv1d


class ConvModuleStream:
    """Incremental `ConvModule` (eval mode): frames [n, d] in, outputs [k, d] of the frames
    whose look-ahead has arrived out; `flush()` gives the rest (the look-ahead beyond the end is
    zero, as offline). Keeps the gated inputs of the `kernel - 1 - lookahead` frames before the
    first waiting one (zeros before the start) and of the waiting frames (at most `lookahead` + chunk).

    The depthwise convolution of a chunk's few frames is one dot product over the kernel of an
    `unfold` view: on CPU, `conv1d` takes ~100 us a call for them, several times the arithmetic.
    From `CONV1D_MIN_FRAMES` frames on (the long windows of `tasr.longform`), `conv1d` is the
    faster one: the dot product materialises frames x channels x kernel products (8x slower at 640
    frames, d 256, kernel 31)."""

    def __init__(self, module: ConvModule):
        self.module = module
        self.kernel = module.depthwise.kernel_size[0]
        self.gate = stream_linear(module.pointwise_in)
        self.depthwise_weight = module.depthwise.weight.detach()[:, 0]  # [d, kernel]
        self.depthwise_bias = module.depthwise.bias.detach()
        self.norm = _layer_norm(module.norm)
        self.out = stream_linear(module.pointwise_out)
        self.frames = None  # [behind + waiting, d], zeros before the start

    def feed(self, x: torch.Tensor) -> torch.Tensor:
        if self.frames is None:
            self.frames = x.new_zeros(self.module.padding[0], x.shape[1])
        if x.shape[0]:
            gated = F.glu(linear(x, *self.gate), dim=-1)
            self.frames = torch.cat((self.frames, gated))
        return self._emit(self.frames)

    def flush(self) -> torch.Tensor:
        if self.frames is None:
            return self.depthwise_bias.new_zeros(0, self.depthwise_bias.shape[0])
        return self._emit(F.pad(self.frames, (0, 0, 0, self.module.padding[1])))

    def _emit(self, frames: torch.Tensor) -> torch.Tensor:
        ready = frames.shape[0] - self.kernel + 1
        if ready <= 0:
            return frames[:0]
        if ready < CONV1D_MIN_FRAMES:
            out = torch.linalg.vecdot(frames.unfold(0, self.kernel, 1), self.depthwise_weight) + self.depthwise_bias
        else:
            out = F.conv1d(frames.t(), self.depthwise_weight[:, None], self.depthwise_bias,
                           groups=self.depthwise_weight.shape[0]).t()
        self.frames = self.frames[ready:]
        out = F.silu(F.layer_norm(out, *self.norm), inplace=True)
        return linear(out, *self.out)


def _layer_norm(norm: nn.LayerNorm) -> tuple:
    """The arguments of `F.layer_norm` after the input: (shape, weight, bias, eps)."""
    return norm.normalized_shape, norm.weight.detach(), norm.bias.detach(), norm.eps


class _FeedForwardResidual:
    """x + scale * feed_forward(norm(x)) in eval mode, in functional calls (no module dispatch)."""

    def __init__(self, norm: nn.LayerNorm, ff: FeedForward, scale: float):
        first, second = ff.net[0], ff.net[3]
        self.norm = _layer_norm(norm)
        self.first, self.second = stream_linear(first), stream_linear(second)
        self.scale = scale

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        hidden = F.silu(linear(F.layer_norm(x, *self.norm), *self.first), inplace=True)
        return torch.add(x, linear(hidden, *self.second), alpha=self.scale)


class Pending:
    """Frames [n, d] (a block's residual inputs) waiting for a later stage's output, in order."""

    def __init__(self):
        self.frames = None

    def push(self, x: torch.Tensor) -> None:
        if self.frames is None or self.frames.shape[0] == 0:
            self.frames = x
        elif x.shape[0]:
            self.frames = torch.cat((self.frames, x))

    def pop(self, n: int) -> torch.Tensor:
        out, self.frames = self.frames.split((n, self.frames.shape[0] - n))
        return out


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

    def stream(self) -> "TransformerBlockStream":
        """A fresh incremental state for one stream (see the module docstring)."""
        return TransformerBlockStream(self)


class TransformerBlockStream:
    """Incremental `TransformerBlock` (eval mode): `feed(x [n, d]) -> [k, d]`, `flush() -> [k, d]`."""

    def __init__(self, block: TransformerBlock):
        self.block = block
        self.attention = block.attention.stream(batched=False)
        self.attention_norm = _layer_norm(block.attention_norm)
        self.ff = _FeedForwardResidual(block.ff_norm, block.ff, 1.0)
        self.waiting = Pending()  # inputs of the frames waiting for their attention output

    def feed(self, x: torch.Tensor) -> torch.Tensor:
        self.waiting.push(x)
        return self._finish(self.attention.feed(F.layer_norm(x, *self.attention_norm)))

    def flush(self) -> torch.Tensor:
        return self._finish(self.attention.flush())

    def _finish(self, attended: torch.Tensor) -> torch.Tensor:
        if attended.shape[0] == 0:
            return attended
        return self.ff(self.waiting.pop(attended.shape[0]) + attended)


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

    def stream(self) -> "ConformerBlockStream":
        """A fresh incremental state for one stream (see the module docstring)."""
        return ConformerBlockStream(self)


class ConformerBlockStream:
    """Incremental `ConformerBlock` (eval mode): `feed(x [n, d]) -> [k, d]`, `flush() -> [k, d]`.

    Two stages wait for look-ahead: the attention (`right` frames), then the convolution."""

    def __init__(self, block: ConformerBlock):
        self.block = block
        self.ff1 = _FeedForwardResidual(block.ff1_norm, block.ff1, 0.5)
        self.attention_norm = _layer_norm(block.attention_norm)
        self.attention = block.attention.stream(batched=False)
        self.conv_norm = _layer_norm(block.conv_norm)
        self.conv = ConvModuleStream(block.conv)
        self.ff2 = _FeedForwardResidual(block.ff2_norm, block.ff2, 0.5)
        self.out_norm = _layer_norm(block.out_norm)
        self.before_attention = Pending()  # residual inputs waiting for the attention
        self.before_conv = Pending()  # residual inputs waiting for the convolution

    def feed(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0]:
            x = self.ff1(x)
            self.before_attention.push(x)
            x = self._attended(self.attention.feed(F.layer_norm(x, *self.attention_norm)))
        return self._convolve(x)

    def flush(self) -> torch.Tensor:
        x = self._convolve(self._attended(self.attention.flush()))
        return torch.cat((x, self._finish(self.conv.flush())))

    def _attended(self, attended: torch.Tensor) -> torch.Tensor:
        if attended.shape[0] == 0:
            return attended
        return self.before_attention.pop(attended.shape[0]) + attended

    def _convolve(self, x: torch.Tensor) -> torch.Tensor:
        """Attended frames [n, d] -> the block's outputs of the frames whose convolution is complete."""
        if x.shape[0] == 0:
            return x
        self.before_conv.push(x)
        return self._finish(self.conv.feed(F.layer_norm(x, *self.conv_norm)))

    def _finish(self, convolved: torch.Tensor) -> torch.Tensor:
        if convolved.shape[0] == 0:
            return convolved
        x = self.ff2(self.before_conv.pop(convolved.shape[0]) + convolved)
        return F.layer_norm(x, *self.out_norm)


BLOCKS = {"transformer": TransformerBlock, "conformer": ConformerBlock}
