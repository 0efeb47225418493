"""The encoder as one fixed-shape step: a chunk of feature frames and explicit caches in,
encodings and the next caches out, for runtimes that stream a graph (ONNX).

    step = EncoderStep(encoder.eval(), chunk=8)        # 8 output frames per step
    caches = step.initial_caches(batch=1)              # zeros
    for k, feats in enumerate(chunks):                 # [N, chunk * subsampling, F] normalised features
        out, *caches = step(feats, k * step.chunk, total, *caches)
        # out [N, chunk, d_model]: output positions k * chunk - step.delay + j; keep 0 <= p < total

Every step takes exactly `chunk * subsampling` feature frames and emits `chunk` frames, delayed
by `delay` output frames (the subsampling's and each block's look-ahead); `total` [N] is the
stream's number of output frames once its end is known (`Encoder.output_lengths`), else anything
larger. After the last (zero-padded) chunk, `ceil(delay / chunk)` chunks of zeros bring out the
rest. Positions before 0 and from `total` on are not frames: attention never reads them and the
convolutions see zeros there, as offline, so the frames kept equal `Encoder.forward` (within
float rounding). Compared with `EncoderStream` (which emits frames as soon as their look-ahead
has arrived and keeps variable-length state), every shape here is fixed by the model and `chunk`.

Caches per block (`cache_names`), `[N, frames, channels]`, zero at the start:
- `qkv`: the attention's projections of its last `left + right` input frames (rotated per step:
  positions are relative, so the window's own positions serve);
- `res1`: the block's residual inputs of the `right` frames waiting for their attention output;
- for a Conformer block, `conv`: the convolution's gated inputs of its last `kernel - 1`
  frames, and `res2`: the residual inputs of the `lookahead` frames waiting for the convolution.
Plus `feats`, the last `subsampling * ceil((right_context + 1 - subsampling) / subsampling)`
input frames of the subsampling. Caches of no frames are left out.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from .attention import LOW
from .rotary import rotate


class EncoderStep(nn.Module):
    """See the module docstring. Dot-product softmax attention with limited left and right context."""

    def __init__(self, encoder, chunk: int):
        super().__init__()
        if encoder.training:
            raise ValueError("the encoder steps in eval mode only (call .eval() first)")
        if chunk < 1:
            raise ValueError(f"chunk must be at least 1 output frame, got {chunk}")
        self.encoder, self.chunk = encoder, chunk
        sub = encoder.subsample
        self.sub_delay = math.ceil((sub.right_context + 1 - sub.factor) / sub.factor)
        self.feats_cache = sub.factor * self.sub_delay
        self.delay = self.sub_delay
        self.back = 0  # the earliest position a step reads, in frames before its first subsampled one
        self.layouts = []  # per block: (left, right, lookahead, kernel - 1) in frames
        for i, block in enumerate(encoder.blocks):
            attention = block.attention
            if block.left is None or block.right is None:
                raise ValueError(f"layer {i} has unlimited attention context (left={block.left}, "
                                 f"right={block.right}): only limited left and right can step in chunks")
            if attention.score != "dot" or attention.normalize != "softmax":
                raise ValueError(f"layer {i}: only dot-product softmax attention steps in chunks "
                                 f"(score={attention.score!r}, normalize={attention.normalize!r})")
            conv = getattr(block, "conv", None)
            lookahead, behind = (conv.padding[1], conv.depthwise.kernel_size[0] - 1) if conv is not None else (0, 0)
            self.layouts.append((block.left, block.right, lookahead, behind))
            self.back = max(self.back, self.delay - self.sub_delay + block.left + block.right)
            self.delay += block.right + lookahead
            W = block.left + block.right + chunk
            cos, sin = attention.rotary.tables(0, W)
            self.register_buffer(f"cos{i}", cos, persistent=False)
            self.register_buffer(f"sin{i}", sin, persistent=False)
            band = torch.where(_band(chunk, block.left, block.right), 0.0, LOW)
            self.register_buffer(f"band{i}", band, persistent=False)
        self.back = max(self.back, self.delay - self.sub_delay)

    def cache_shapes(self, batch: int = 1) -> dict:
        """{name: shape} of the caches, in the order `forward` takes and returns them (none of 0 frames)."""
        d = self.encoder.d_model
        shapes = {"feats": (batch, self.feats_cache, self.encoder.subsample.input_dim)}
        for i, (left, right, lookahead, behind) in enumerate(self.layouts):
            shapes[f"qkv{i}"] = (batch, left + right, 3 * d)
            shapes[f"res1_{i}"] = (batch, right, d)
            if behind:
                shapes[f"conv{i}"] = (batch, behind, d)
                shapes[f"res2_{i}"] = (batch, lookahead, d)
        return {name: shape for name, shape in shapes.items() if shape[1] > 0}

    def initial_caches(self, batch: int = 1) -> list[torch.Tensor]:
        """The zero caches `[N, frames, channels]` of a new stream, in `cache_shapes` order."""
        weight = self.encoder.norm.weight
        return [weight.new_zeros(shape) for shape in self.cache_shapes(batch).values()]

    def forward(self, feats: torch.Tensor, offset: torch.Tensor, total: torch.Tensor, *caches: torch.Tensor):
        """feats [N, chunk * subsampling, F], offset [N] int64 (steps so far x chunk), total [N] int64
        output frames (or more while unknown), caches -> (out [N, chunk, d_model], *next caches)."""
        names = list(self.cache_shapes(1))
        cache = dict(zip(names, caches))
        updated = {}
        C, B = self.chunk, self.back
        x = self.encoder.subsample.project(_window(feats, "feats", self.feats_cache, cache, updated))[:, :C]
        # which positions are frames, from B before the first subsampled one (output position offset - sub_delay)
        position = offset[:, None] - self.sub_delay - B + torch.arange(B + C, device=feats.device)[None, :]
        masks = Masks(_frames(position, total), B, C)
        x = masks.keep(x, 0)
        back = 0  # the frames' positions run `back` behind the subsampled ones
        for i, (block, layout) in enumerate(zip(self.encoder.blocks, self.layouts)):
            x, back = self._block(i, block, layout, x, back, masks, cache, updated)
        out = masks.keep(self.encoder.norm(x), back)
        return (out, *(updated[name] for name in names))

    def _block(self, i, block, layout, x, back, masks, cache, updated):
        """One block on frames x [N, C, d] `back` positions behind -> its outputs and how far they are behind."""
        left, right, lookahead, behind = layout
        conformer = hasattr(block, "conv")
        if conformer:
            x = x + 0.5 * block.ff1(block.ff1_norm(x))
        attended = self._attention(i, block.attention, block.attention_norm(x), left, right, back, masks,
                                   cache, updated)
        back += right
        residual = _waiting(x, f"res1_{i}", cache, updated)
        y = residual + attended
        if not conformer:
            y = y + block.ff(block.ff_norm(y))
            return masks.keep(y, back), back
        conv = block.conv
        gated = masks.keep(conv.gate(block.conv_norm(y)), back)
        window = _window(gated, f"conv{i}", behind, cache, updated)
        d = window.shape[2]
        convolved = F.conv1d(window.transpose(1, 2), conv.depthwise.weight, conv.depthwise.bias, groups=d)
        back += lookahead
        z = _waiting(y, f"res2_{i}", cache, updated) + conv.output(convolved.transpose(1, 2))
        z = z + 0.5 * block.ff2(block.ff2_norm(z))
        return masks.keep(block.out_norm(z), back), back

    def _attention(self, i, attention, x, left, right, back, masks, cache, updated):
        """Outputs [N, C, d] of the queries `right` frames back, over the keys of the last left + right + C frames."""
        N, C, d = x.shape
        H, D = attention.n_heads, attention.head_dim
        qkv = _window(attention.in_proj(x), f"qkv{i}", left + right, cache, updated)
        W = qkv.shape[1]
        heads = qkv.view(N, W, 3, H, D).permute(2, 0, 3, 1, 4)  # [3, N, H, W, D]
        cos, sin = getattr(self, f"cos{i}"), getattr(self, f"sin{i}")
        q = rotate(heads[0][:, :, left:left + C], cos[left:left + C], sin[left:left + C])
        k = rotate(heads[1], cos, sin)
        bias = getattr(self, f"band{i}") + masks.key_bias(back + left + right, W)[:, None, :]  # [N, C, W]
        scores = (q @ k.transpose(-1, -2)) * D ** -0.5 + bias[:, None]
        out = torch.softmax(scores, dim=-1) @ heads[2]  # [N, H, C, D]
        return attention.out_proj(out.transpose(1, 2).reshape(N, C, d))


class Masks:
    """One step's frame masks, made once and sliced per layer, from `frames` [N, B + C] bool: which
    positions are frames, from B (`back`) before the first subsampled frame on."""

    def __init__(self, frames: torch.Tensor, back: int, chunk: int):
        self.frames = frames[..., None]  # [N, B + C, 1]
        self.bias = torch.where(frames, 0.0, LOW)  # [N, B + C]: added to the scores of keys that are not frames
        self.back, self.chunk = back, chunk

    def keep(self, x: torch.Tensor, back: int) -> torch.Tensor:
        """x [N, C, d] of the positions `back` behind the subsampled frames, zero where not a frame."""
        start = self.back - back
        return torch.where(self.frames[:, start:start + self.chunk], x, 0.0)

    def key_bias(self, back: int, width: int) -> torch.Tensor:
        """[N, width]: the bias of the `width` positions from `back` behind the first subsampled frame."""
        start = self.back - back
        return self.bias[:, start:start + width]


def _band(chunk: int, left: int, right: int) -> torch.Tensor:
    """[chunk, left + right + chunk] bool: query j (window row left + j) sees window rows j ... j + left + right."""
    j = torch.arange(chunk)[:, None]
    r = torch.arange(left + right + chunk)[None, :]
    return (r >= j) & (r <= j + left + right)


def _frames(position: torch.Tensor, total: torch.Tensor) -> torch.Tensor:
    """Which positions [N, T] are frames of the stream: 0 <= p < total [N]."""
    return (position >= 0) & (position < total[:, None])


def _window(x: torch.Tensor, name: str, keep: int, cache: dict, updated: dict) -> torch.Tensor:
    """`cache[name]` (the frames before x) then x [N, C, d]; its last `keep` frames become the next cache."""
    if name not in cache:
        return x
    window = torch.cat((cache[name], x), dim=1)
    updated[name] = window[:, window.shape[1] - keep:]
    return window


def _waiting(x: torch.Tensor, name: str, cache: dict, updated: dict) -> torch.Tensor:
    """The frames [N, C, d] that `cache[name]`'s waiting frames and then x's make, the newest kept back."""
    if name not in cache:
        return x
    return _window(x, name, cache[name].shape[1], cache, updated)[:, :x.shape[1]]
