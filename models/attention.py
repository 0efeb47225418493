"""Truncated (banded) self-attention: frame t attends only to frames t-left ... t+right.

Shapes: queries, keys and values are `[B, H, T, D]` (batch, heads, frames, channels per head);
`lengths [B]` gives the number of valid frames of each sequence (the rest is padding).

Semantics shared by every backend:

- frame t sees keys s with t - left <= s <= t + right and s < lengths[b]; `left`/`right` are
  frame counts, `None` means unlimited (left = right = None is full attention);
- padded frames (t >= lengths[b]) are never attended to, and their outputs are zero;
- scores are `q·k / sqrt(D)` ("dot", default) or `w·tanh(q + k)` ("additive", Bahdanau-style,
  with one weight vector `w [H, D]` per head); they are normalised with a softmax (default) or
  with `relu(score) / number of keys the frame sees` ("relu", Wortsman et al. 2023).

Backends:

- `dense`: the reference; `scaled_dot_product_attention` with a band mask, O(T²) memory.
- `chunked`: pure PyTorch, O(T·(left+right)) time and memory. Queries are cut into blocks of a
  few frames; each block is multiplied with exactly the slice of keys its band can reach
  (an `unfold` view, batched over the blocks of all heads at once), so little outside the band
  is computed. Blocks go through in segments of a few MiB, so peak memory stays small.
- `flex`: FlexAttention with a block-sparse mask (compiled; forward and backward on CUDA,
  forward only on CPU; see `models/attention_flex.py`).
- `auto`: the fastest correct one for the device, length and window (see `choose_backend`).
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from models.rotary import RotaryEmbedding

BACKENDS = ("auto", "dense", "chunked", "flex")
SCORES = ("dot", "additive")
NORMALIZATIONS = ("softmax", "relu")

# `auto` on CPU: dense while T <= max(DENSE_MIN_FRAMES, DENSE_WINDOWS x (left+right+1)), else chunked.
# Measured (1 thread, B=8, H=4, D=64, left=64, right=16, mixed lengths, forward and forward+backward):
# dense wins up to T=256, chunked from T=512 (2x faster at 512 forward, 10x at 2048).
DENSE_MIN_FRAMES = 256
DENSE_WINDOWS = 4
# `auto` on CUDA picks FlexAttention from this length on (not measured in this project yet: a GPU
# run of `tasr bench attention --device cuda` should set it).
FLEX_MIN_FRAMES_CUDA = 1024
# Working memory (bytes) one segment of the chunked backend may use for scores and key slices.
CHUNKED_SEGMENT_BYTES = 8 * 2**20  # fits in cache and in malloc's reusable heap
CHUNKED_SEGMENT_BYTES_CUDA = 512 * 2**20


def truncated_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    left: int | None,
    right: int | None,
    lengths: torch.Tensor | None = None,
    backend: str = "auto",
    score: str = "dot",
    normalize: str = "softmax",
    additive_weight: torch.Tensor | None = None,
    dropout_p: float = 0.0,
    block_size: int | None = None,
) -> torch.Tensor:
    """Banded attention of `q, k, v [B, H, T, D]` -> `[B, H, T, D]`.

    `lengths [B]` (frames, int) marks padding; `None` means every frame is valid.
    `additive_weight [H, D]` is required for `score="additive"`. `dropout_p` drops attention
    weights (training only; not supported by `flex`). `block_size` (frames) overrides the
    query block of the chunked backend.
    """
    _check_inputs(q, k, v, left, right, lengths, score, normalize, additive_weight)
    if backend == "auto":
        backend = choose_backend(q, left, right, score, normalize, dropout_p)
    if backend == "dense":
        return dense_attention(q, k, v, left, right, lengths, score, normalize, additive_weight, dropout_p)
    if backend == "chunked":
        return chunked_attention(
            q, k, v, left, right, lengths, score, normalize, additive_weight, dropout_p, block_size
        )
    if backend == "flex":
        if score != "dot" or normalize != "softmax" or dropout_p:
            raise ValueError("the flex backend supports only dot-product scores, softmax and no dropout")
        from models.attention_flex import flex_truncated_attention

        return flex_truncated_attention(q, k, v, left, right, lengths)
    raise ValueError(f"unknown attention backend {backend!r}; expected one of {', '.join(BACKENDS)}")


def choose_backend(q, left, right, score="dot", normalize="softmax", dropout_p=0.0) -> str:
    """The backend `auto` uses for queries like `q [B, H, T, D]` (rule from `tasr bench attention`)."""
    T = q.shape[-2]
    left, right = _clip_window(left, right, T)
    if left >= T - 1 and right >= T - 1:
        return "dense"  # the band is the whole matrix: plain (flash) SDPA
    dense_up_to = max(DENSE_MIN_FRAMES, DENSE_WINDOWS * (left + right + 1))
    if q.is_cuda:
        from models.attention_flex import flex_available

        plain = score == "dot" and normalize == "softmax" and not dropout_p
        if plain and T >= FLEX_MIN_FRAMES_CUDA and flex_available(q):
            return "flex"
    return "dense" if T <= dense_up_to else "chunked"


def dense_attention(q, k, v, left, right, lengths=None, score="dot", normalize="softmax",
                    additive_weight=None, dropout_p=0.0):
    """Reference backend: the full `[T, T]` score matrix with a band mask. O(T²) memory."""
    B, H, T, D = q.shape
    left, right = _clip_window(left, right, T)
    valid = _valid_frames(lengths, B, T, q.device)  # [B, T]
    t = torch.arange(T, device=q.device)
    band = (t[None, :] >= t[:, None] - left) & (t[None, :] <= t[:, None] + right)  # [T(query), T(key)]
    if lengths is None:
        mask = band
    else:
        # Padded queries may look at padded keys (their output is zeroed anyway): every row keeps
        # at least its diagonal, so no row is empty and nothing turns into NaN.
        mask = band[None, None] & (valid[:, None, None, :] | ~valid[:, None, :, None])  # [B, 1, T, T]
    if score == "dot" and normalize == "softmax":
        full = left >= T - 1 and right >= T - 1
        attn_mask = None if (full and lengths is None) else mask
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p)
    else:
        scores = _scores(q, k, score, additive_weight)  # [B, H, T, T]
        weights = _normalize(scores, mask, normalize).to(v.dtype)
        out = F.dropout(weights, dropout_p) @ v
    return out.masked_fill(~valid[:, None, :, None], 0.0)


def chunked_attention(q, k, v, left, right, lengths=None, score="dot", normalize="softmax",
                      additive_weight=None, dropout_p=0.0, block_size=None):
    """Linear-cost backend: blocks of C queries against the C + left + right keys they can see.

    For block j (queries jC ... jC+C-1) the keys run from jC-left to jC+C-1+right. In those
    coordinates query a sees key b iff 0 <= b - a <= left + right, the same pattern for every
    block, so one `[C, C+left+right]` band mask serves all blocks. Fraction of computed scores
    that lie in the band: (left+right+1) / (C+left+right).

    Layout: picture the frames of every (batch, head) sequence written one after the other,
    each preceded by `left` zero frames and padded to `stride` whole blocks, enough room for the
    band. Then block g of this flat layout sees the W = C+left+right rows starting at row g·C,
    so the key slices of all blocks of all sequences are one `unfold` view (a window every C
    rows) and one batched matrix product covers them (the few windows straddling two sequences
    are computed and dropped). The work runs in segments of blocks sized to keep the working
    set (scores, weights, slices) to a few MiB on CPU. Without autograd each segment gathers its
    own rows from q, k, v, so nothing of the size of the input is copied (unless q, k or v is
    not contiguous over B, H, T). With autograd the flat layout is built once (a padded copy of
    q, k, v) and all blocks go in one segment: memory O(T·(C+left+right)), like what the backward
    pass keeps anyway.
    """
    B, H, T, D = q.shape
    left, right = _clip_window(left, right, T)
    C = min(block_size or default_block_size(left, right), max(T, 1))
    W = C + left + right  # keys seen by one block
    n = -(-T // C)  # blocks per sequence
    stride = n + -(-(left + right) // C)  # blocks per sequence in the flat layout, room for the band
    P = stride * C  # rows per sequence in the flat layout
    G = B * H * stride  # blocks in the flat layout
    useful = G - stride + n  # blocks after this one hold padding only
    lengths = torch.full((B,), T, device=q.device) if lengths is None else lengths.to(q.device)
    dot_softmax = score == "dot" and normalize == "softmax"
    scale = D**-0.5 if dot_softmax else 1.0

    sequence_length = lengths.repeat_interleave(H)  # [B*H]
    low = torch.finfo(torch.float32).min / 2  # two of them still add up to a finite number
    differentiable = torch.is_grad_enabled() and any(x.requires_grad for x in (q, k, v))
    if differentiable:  # the flat layouts, built once ([rows, D]); segments are views of them
        q_rows, k_rows, v_rows = (
            F.pad(x, (0, 0, front, P - front - T)).reshape(G * C, D)
            for x, front in ((q * scale if scale != 1 else q, 0), (k, left), (v, left))
        )
    else:  # segments gather their own rows of q, k, v
        q_flat, k_flat, v_flat = (x.reshape(B * H * T, D) for x in (q, k, v))

    a = torch.arange(C, device=q.device)
    b = torch.arange(W, device=q.device)
    band = (b[None, :] - a[:, None] >= 0) & (b[None, :] - a[:, None] <= left + right)  # [C, W]
    band_bias = torch.zeros(C, W, device=q.device).masked_fill_(~band, low)
    if score == "additive":  # the weight vector of block g's head
        heads = torch.arange(B * H, device=q.device).repeat_interleave(stride) % H
        head_weight = additive_weight[heads]  # [G, D]

    half = q.dtype in (torch.float16, torch.bfloat16)  # scores of 16-bit products lose ~2 digits: use float32
    per_block = C * W * (8 + (8 * D if score == "additive" else 0)) + 3 * W * D * (4 if half else q.element_size())
    budget = CHUNKED_SEGMENT_BYTES_CUDA if q.is_cuda else CHUNKED_SEGMENT_BYTES
    # With autograd, one segment: the weights kept for the backward pass are O(T·W) whatever the
    # segments, and the gradient of a slice of the flat layout is a full-size tensor, so many
    # segments would make the backward pass quadratic.
    per_segment = useful if differentiable else max(1, budget // per_block)
    out = None if differentiable else q.new_empty(G, C, D)
    pieces = []
    for first in range(0, useful, per_segment):
        last = min(first + per_segment, useful)
        # Key row r of the flat layout holds frame t = r % P - left of sequence r // P, if 0 <= t < T.
        r = torch.arange(first * C, last * C + left + right, device=q.device)
        sequence = r // P
        t = r - sequence * P - left
        key_valid = (t >= 0) & (t < sequence_length[sequence])  # [rows]: a real frame, not padding
        if differentiable:
            q_seg, k_seg, v_seg = q_rows[first * C:last * C], k_rows[first * C:r[-1] + 1], v_rows[first * C:r[-1] + 1]
        else:  # padding rows repeat a real frame (clamped index): masked out below
            index = sequence * T + t.clamp(0, T - 1)
            q_seg = q_flat.index_select(0, index[left:left + (last - first) * C])  # query row r: key row r + left
            k_seg, v_seg = k_flat.index_select(0, index), v_flat.index_select(0, index)
            if scale != 1:
                q_seg *= scale
        q_seg, k_seg, v_seg = q_seg.view(-1, C, D), k_seg.unfold(0, W, C), v_seg.unfold(0, W, C)  # k, v: [g, D, W]
        if half:
            q_seg, k_seg = q_seg.float(), k_seg.float()
        if dot_softmax:
            scores = torch.bmm(q_seg, k_seg)  # [g, C, W]
            scores += band_bias
            scores += torch.where(key_valid, 0.0, low).unfold(0, W, C)[:, None, :]
            weights = torch.softmax(scores, dim=-1)
        else:
            w = head_weight[first:last].view(-1, 1, 1, D) if score == "additive" else None
            scores = _scores(q_seg, k_seg.transpose(-1, -2), score, w)
            weights = _normalize(scores, band & key_valid.unfold(0, W, C)[:, None, :], normalize)
        weights = weights.to(v.dtype)
        if dropout_p:
            weights = F.dropout(weights, dropout_p)
        if differentiable:
            pieces.append(torch.bmm(weights, v_seg.transpose(-1, -2)))
        else:
            torch.bmm(weights, v_seg.transpose(-1, -2), out=out[first:last])
    if differentiable:
        out = torch.cat(pieces, dim=0) if len(pieces) > 1 else pieces[0]
        out = F.pad(out, (0, 0, 0, 0, 0, G - useful))
    else:
        out[useful:] = 0
    out = out.view(B, H, P, D)[:, :, :T]
    padded = (torch.arange(T, device=q.device)[None, :] >= lengths[:, None])[:, None, :, None]
    return out.masked_fill(padded, 0.0) if differentiable else out.masked_fill_(padded, 0.0)


def default_block_size(left: int, right: int) -> int:
    """Query block of the chunked backend, frames: small enough that little is computed outside
    the band, large enough for efficient matrix products (measured with `tasr bench attention`:
    for left=64, right=16 on CPU, 32 beats 16 by ~1.6x and 64 by ~1.1x)."""
    return 32 if left + right <= 160 else 64


def _scores(q, k, score, additive_weight):
    """Scores of queries `[..., Tq, D]` against keys `[..., Tk, D]` -> `[..., Tq, Tk]`."""
    if score == "dot":
        return (q @ k.transpose(-1, -2)) * (q.shape[-1] ** -0.5)
    # additive: w · tanh(q + k); w is [H, D] for q [B, H, ..., D], or already broadcastable.
    w = additive_weight
    if w.dim() == 2:
        w = w.view(w.shape[0], *([1] * (q.dim() - 2)), w.shape[1])
    hidden = torch.tanh(q.unsqueeze(-2) + k.unsqueeze(-3))  # [..., Tq, Tk, D]
    return (hidden * w.to(hidden.dtype)).sum(-1)


def _normalize(scores, mask, normalize):
    """Attention weights from scores, zero where `mask` is False (float16/bfloat16 go through float32)."""
    if scores.dtype in (torch.float16, torch.bfloat16):
        scores = scores.float()
    if normalize == "softmax":
        return torch.softmax(scores.masked_fill(~mask, torch.finfo(scores.dtype).min), dim=-1)
    seen = mask.sum(-1, keepdim=True).clamp(min=1)
    return torch.relu(scores).masked_fill(~mask, 0.0) / seen


def _clip_window(left, right, T):
    """`left`/`right` as frame counts no larger than T - 1 (`None` = unlimited)."""
    limit = max(T - 1, 0)
    left = limit if left is None else min(left, limit)
    right = limit if right is None else min(right, limit)
    return left, right


def _valid_frames(lengths, B, T, device):
    """`[B, T]` bool, True for frames before each sequence's length."""
    if lengths is None:
        return torch.ones(B, T, dtype=torch.bool, device=device)
    return torch.arange(T, device=device)[None, :] < lengths.to(device)[:, None]


def _check_inputs(q, k, v, left, right, lengths, score, normalize, additive_weight):
    if q.dim() != 4 or q.shape != k.shape or q.shape != v.shape:
        raise ValueError(f"q, k, v must all be [B, H, T, D]; got {tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}")
    for name, value in (("left", left), ("right", right)):
        if value is not None and value < 0:
            raise ValueError(f"{name} must be >= 0 or None, got {value}")
    if lengths is not None and tuple(lengths.shape) != (q.shape[0],):
        raise ValueError(f"lengths must be [B] = [{q.shape[0]}], got {tuple(lengths.shape)}")
    if score not in SCORES:
        raise ValueError(f"unknown score {score!r}; expected one of {', '.join(SCORES)}")
    if normalize not in NORMALIZATIONS:
        raise ValueError(f"unknown normalisation {normalize!r}; expected one of {', '.join(NORMALIZATIONS)}")
    if score == "additive" and (additive_weight is None or tuple(additive_weight.shape) != (q.shape[1], q.shape[3])):
        raise ValueError(f"additive scores need additive_weight [H, D] = [{q.shape[1]}, {q.shape[3]}]")


class TruncatedMultiHeadAttention(nn.Module):
    """Multi-head self-attention over a band of `left` past and `right` future frames.

    Positions are rotary (relative): the module is translation-invariant, so running it on a
    window of the input gives the same outputs for every frame whose band lies inside the
    window. With `score="additive"` rotary positions do not apply (tanh(q + k) is not a function
    of t - s after rotation) and order comes only from the band and the rest of the encoder.

    `forward(x [B, T, d_model], lengths [B] | None) -> [B, T, d_model]`, zero at padded frames.
    `stream()` gives the incremental form (see `TruncatedAttentionStream`).
    """

    def __init__(self, d_model: int, n_heads: int, left: int | None, right: int | None,
                 dropout: float = 0.0, backend: str = "auto", score: str = "dot",
                 normalize: str = "softmax", rotary_base: float = 10000.0):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model {d_model} is not divisible by n_heads {n_heads}")
        if backend not in BACKENDS:
            raise ValueError(f"unknown attention backend {backend!r}; expected one of {', '.join(BACKENDS)}")
        if score not in SCORES or normalize not in NORMALIZATIONS:
            raise ValueError(f"unknown score {score!r} or normalisation {normalize!r}")
        self.d_model, self.n_heads, self.head_dim = d_model, n_heads, d_model // n_heads
        self.left, self.right = left, right
        self.dropout, self.backend, self.score, self.normalize = dropout, backend, score, normalize
        self.in_proj = nn.Linear(d_model, 3 * d_model)
        self.out_proj = nn.Linear(d_model, d_model)
        self.rotary = RotaryEmbedding(self.head_dim, rotary_base) if score == "dot" else None
        self.additive_weight = (
            nn.Parameter(torch.randn(n_heads, self.head_dim) / math.sqrt(self.head_dim))
            if score == "additive" else None
        )

    def project(self, x: torch.Tensor, offset: int = 0):
        """`x [B, T, d_model]` (frame t at position offset + t) -> q, k, v `[B, H, T, D]`, rotated."""
        B, T, _ = x.shape
        q, k, v = self.in_proj(x).view(B, T, 3, self.n_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        if self.rotary is not None:
            q, k = self.rotary(q, offset), self.rotary(k, offset)
        return q, k, v

    def merge(self, heads: torch.Tensor) -> torch.Tensor:
        """`[B, H, T, D]` -> output projection `[B, T, d_model]`."""
        B, H, T, D = heads.shape
        return self.out_proj(heads.transpose(1, 2).reshape(B, T, H * D))

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        q, k, v = self.project(x)
        heads = truncated_attention(
            q, k, v, self.left, self.right, lengths, self.backend, self.score, self.normalize,
            self.additive_weight, self.dropout if self.training else 0.0,
        )
        out = self.merge(heads)
        if lengths is not None:
            out = out.masked_fill(~_valid_frames(lengths, x.shape[0], x.shape[1], x.device)[:, :, None], 0.0)
        return out

    def stream(self) -> "TruncatedAttentionStream":
        """A fresh incremental state for one batch of streams (see `TruncatedAttentionStream`)."""
        return TruncatedAttentionStream(self)

    def extra_repr(self) -> str:
        return (f"d_model={self.d_model}, n_heads={self.n_heads}, left={self.left}, right={self.right}, "
                f"backend={self.backend!r}, score={self.score!r}, normalize={self.normalize!r}")


class TruncatedAttentionStream:
    """Incremental form of `TruncatedMultiHeadAttention` for streaming recognition.

    Feed frames as they arrive with `feed(x [B, n, d_model])`; it returns the outputs of every
    frame whose `right` future frames have now been seen (`[B, m, d_model]`, m may be 0).
    `flush()` returns the outputs of the remaining frames at the end of the stream. Together
    they equal the offline module on the concatenated input. The cache keeps keys and values
    of the last `left` frames before the first pending frame, plus the pending frames: memory
    is O(left + right + chunk), whatever the length of the stream (unbounded if left is None).
    """

    def __init__(self, module: TruncatedMultiHeadAttention):
        self.module = module
        self.received = 0  # frames fed so far
        self.emitted = 0  # frames whose output was returned
        self.cache_start = 0  # position of the first cached key
        self.q = self.k = self.v = None  # pending queries [B, H, received - emitted, D]; keys/values from cache_start

    @torch.no_grad()
    def feed(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.module.project(x, offset=self.received)
        self.q = q if self.q is None else torch.cat((self.q, q), dim=2)
        self.k = k if self.k is None else torch.cat((self.k, k), dim=2)
        self.v = v if self.v is None else torch.cat((self.v, v), dim=2)
        self.received += x.shape[1]
        ready = self.emitted if self.module.right is None else max(self.emitted, self.received - self.module.right)
        return self._emit(ready)

    @torch.no_grad()
    def flush(self) -> torch.Tensor:
        return self._emit(self.received)

    def _emit(self, ready: int) -> torch.Tensor:
        m = self.module
        n = ready - self.emitted
        if n == 0 or self.q is None:
            width = 0 if self.q is None else self.q.shape[0]
            return torch.zeros(width, 0, m.d_model, dtype=m.out_proj.weight.dtype, device=m.out_proj.weight.device)
        queries = torch.arange(self.emitted, ready, device=self.k.device)
        keys = torch.arange(self.cache_start, self.received, device=self.k.device)
        offset = keys[None, :] - queries[:, None]
        mask = torch.ones_like(offset, dtype=torch.bool)
        if m.left is not None:
            mask &= offset >= -m.left
        if m.right is not None:
            mask &= offset <= m.right
        scores = _scores(self.q[:, :, :n], self.k, m.score, m.additive_weight)
        heads = _normalize(scores, mask, m.normalize).to(self.v.dtype) @ self.v
        self.emitted = ready
        self.q = self.q[:, :, n:]
        if m.left is not None and self.emitted - m.left > self.cache_start:
            drop = self.emitted - m.left - self.cache_start
            self.k, self.v = self.k[:, :, drop:], self.v[:, :, drop:]
            self.cache_start += drop
        return m.merge(heads)
