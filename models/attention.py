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

from tasr.models.attention_flex import flex_available, flex_truncated_attention
from tasr.models.rotary import RotaryEmbedding
from tasr.models.streaming import linear, stream_linear

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
LOW = torch.finfo(torch.float32).min / 2  # masked score; two of them still add up to a finite number
# Working memory (bytes) one segment of the chunked backend may use for scores and key slices.
CHUNKED_SEGMENT_BYTES = 8 * 2**20  # fits in cache and in malloc's reusable heap
CHUNKED_SEGMENT_BYTES_CUDA = 512 * 2**20
# Streaming: rotary angles computed for this many positions at a time; spare rows of the key/value
# cache (the live rows move to a fresh buffer once per this many frames).
ROTARY_TABLE_FRAMES = 64
STREAM_SPARE_FRAMES = 64


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
    if torch.compiler.is_exporting():  # torch.export / ONNX: one graph for every length
        return traceable_attention(q, k, v, left, right, lengths, score, normalize, additive_weight, block_size)
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

    Layout (`_Bands`): picture the frames of every (batch, head) sequence written one after the
    other, each preceded by `left` zero frames and padded to `stride` whole blocks, enough room
    for the band. Then block g of this flat layout sees the W = C+left+right rows starting at
    row g·C, so the key slices of all blocks of all sequences are one `unfold` view (a window
    every C rows) and one batched matrix product covers them (the few windows straddling two
    sequences are computed and dropped). The work runs in segments of blocks sized to keep the
    working set (scores, weights, slices) to a few MiB on CPU; each segment gathers its own rows
    of q, k, v, so nothing of the size of the input is copied (unless q, k or v is not
    contiguous over B, H, T).

    The default scores (dot product, softmax, no dropout) have their own backward pass
    (`_ChunkedSoftmaxAttention`), which recomputes the weights segment by segment as
    FlashAttention does: training memory is O(T·D), not O(T·(C+left+right)). The other variants
    go through autograd in one segment (memory O(T·(C+left+right))).
    """
    B, H, T, D = q.shape
    left, right = _clip_window(left, right, T)
    C = min(block_size or default_block_size(left, right), max(T, 1))
    lengths = torch.full((B,), T, device=q.device) if lengths is None else lengths.to(q.device)
    if score == "dot" and normalize == "softmax" and not dropout_p:
        return _ChunkedSoftmaxAttention.apply(q, k, v, lengths, left, right, C)
    return _chunked_autograd(q, k, v, left, right, lengths, score, normalize, additive_weight, dropout_p, C)


def traceable_attention(q, k, v, left, right, lengths=None, score="dot", normalize="softmax",
                        additive_weight=None, block_size=None):
    """The chunked backend's arithmetic in plain tensor operations, for `torch.export` and ONNX.

    One graph serves every length: no Python loop or branch on T and no custom autograd Function
    (what `truncated_attention` runs while exporting). With finite `left` and `right`, queries go
    in blocks of C against the W = C + left + right keys their band can reach, gathered by index:
    scores are `[B, H, T, W]`, memory O(T·W), no `[T, T]` mask. An unlimited side (None) needs the
    `[T, T]` band, the cost of full attention itself.
    """
    B, H, T, D = q.shape
    if left is None or right is None:
        return _traceable_full_attention(q, k, v, left, right, lengths, score, normalize, additive_weight)
    C = block_size or default_block_size(left, right)
    W = C + left + right
    n = (T + C - 1) // C  # blocks
    pad = n * C - T
    q_blocks = F.pad(q, (0, 0, 0, pad)).reshape(B, H, n, C, D)
    index = torch.arange(n, device=q.device)[:, None] * C + torch.arange(W, device=q.device)  # [n, W] key rows
    k_win = F.pad(k, (0, 0, left, pad + right))[:, :, index]  # [B, H, n, W, D]
    v_win = F.pad(v, (0, 0, left, pad + right))[:, :, index]
    frame = index - left  # the frame each key row holds
    key_valid = (frame >= 0) & (frame < (T if lengths is None else lengths.to(q.device)[:, None, None]))
    offset = torch.arange(W, device=q.device)[None, :] - torch.arange(C, device=q.device)[:, None]
    band = (offset >= 0) & (offset <= left + right)  # [C, W]: query a of a block sees key b
    mask = band & key_valid.view(-1, 1, n, 1, W)  # [B or 1, 1, n, C, W]
    scores = _scores(q_blocks, k_win, score, additive_weight)  # [B, H, n, C, W]
    weights = _normalize(scores, mask, normalize).to(v.dtype)
    out = (weights @ v_win).reshape(B, H, n * C, D)[:, :, :T]
    return out.masked_fill(~_traceable_valid(lengths, T, q.device)[:, None, :, None], 0.0)


def _traceable_full_attention(q, k, v, left, right, lengths, score, normalize, additive_weight):
    """`traceable_attention` with an unlimited side: the `[T, T]` band mask, O(T²) memory."""
    T = q.shape[2]
    t = torch.arange(T, device=q.device)
    offset = t[None, :] - t[:, None]  # key - query, [T, T]
    band = torch.ones_like(offset, dtype=torch.bool)
    if left is not None:
        band = band & (offset >= -left)
    if right is not None:
        band = band & (offset <= right)
    valid = _traceable_valid(lengths, T, q.device)  # [B or 1, T]
    mask = band & (valid[:, None, None, :] | ~valid[:, None, :, None])  # padded queries see padded keys
    weights = _normalize(_scores(q, k, score, additive_weight), mask, normalize).to(v.dtype)
    return (weights @ v).masked_fill(~valid[:, None, :, None], 0.0)


def _traceable_valid(lengths, T, device):
    """`[B, T]` bool (or `[1, T]` all True without lengths), with no Python branch on T."""
    t = torch.arange(T, device=device)[None, :]
    return t >= 0 if lengths is None else t < lengths.to(device)[:, None]


class _Bands:
    """Geometry of the chunked backend's flat layout (see `chunked_attention`) for q `[B, H, T, D]`."""

    def __init__(self, q, lengths, left, right, C):
        self.B, self.H, self.T, self.D = q.shape
        self.left, self.right, self.C = left, right, C
        self.W = C + left + right  # keys seen by one block
        self.n = -(-self.T // C)  # blocks per sequence
        self.stride = self.n + -(-(left + right) // C)  # blocks per sequence, room for the band
        self.P = self.stride * C  # rows per sequence
        self.G = self.B * self.H * self.stride  # blocks in the layout
        self.useful = self.G - self.stride + self.n  # blocks after this one hold padding only
        self.sequence_length = lengths.repeat_interleave(self.H)  # [B*H]
        a = torch.arange(C, device=q.device)
        b = torch.arange(self.W, device=q.device)
        self.band = (b[None, :] - a[:, None] >= 0) & (b[None, :] - a[:, None] <= left + right)  # [C, W]
        self.band_bias = torch.zeros(C, self.W, device=q.device).masked_fill_(~self.band, LOW)
        self.device = q.device

    def segments(self, bytes_per_block: int, budget: int):
        """(first, last) block ranges covering the useful blocks, each within `budget` bytes."""
        per_segment = max(1, budget // bytes_per_block)
        return [(f, min(f + per_segment, self.useful)) for f in range(0, self.useful, per_segment)]

    def rows(self, first: int, last: int):
        """Key rows of blocks first ... last-1: (index into [B*H*T] frames, clamped; is a real frame).

        Key row r holds frame t = r % P - left of sequence r // P when 0 <= t < length. Query row
        r is key row r + left, so `[left : left + (last - first) * C]` of both gives the queries.
        """
        r = torch.arange(first * self.C, last * self.C + self.left + self.right, device=self.device)
        sequence = r // self.P
        t = r - sequence * self.P - self.left
        valid = (t >= 0) & (t < self.sequence_length[sequence])
        return sequence * self.T + t.clamp(0, self.T - 1), valid

    def queries(self, x, first, last):
        return x[self.left:self.left + (last - first) * self.C]

    def windows(self, rows):
        """`[rows, ...]` -> the W rows each block sees: `[blocks, ..., W]` (a view)."""
        return rows.unfold(0, self.W, self.C)

    def output(self, out, lengths):
        """`[G, C, D]` blocks -> `[B, H, T, D]` with zeros at padded frames (a view of `out`)."""
        out[self.useful:] = 0
        out = out.view(self.B, self.H, self.P, self.D)[:, :, :self.T]
        padded = torch.arange(self.T, device=self.device)[None, :] >= lengths[:, None]
        return out.masked_fill_(padded[:, None, :, None], 0.0)


class _ChunkedSoftmaxAttention(torch.autograd.Function):
    """Chunked dot-product softmax attention with a segment-wise, recomputing backward pass."""

    @staticmethod
    def forward(ctx, q, k, v, lengths, left, right, C):
        bands = _Bands(q, lengths, left, right, C)
        D, W, scale = bands.D, bands.W, bands.D**-0.5
        q_flat, k_flat, v_flat = (x.reshape(-1, D) for x in (q, k, v))
        out = q.new_empty(bands.G, C, D)
        for first, last in bands.segments(C * W * 8 + 3 * W * D * 4, _segment_budget(q)):
            index, valid = bands.rows(first, last)
            q_seg, k_win = _gather_queries_keys(bands, q_flat, k_flat, index, first, last)
            weights = _band_softmax(bands, q_seg, k_win, valid, scale)
            v_win = bands.windows(v_flat.index_select(0, index))  # [g, D, W]
            torch.bmm(weights.to(v.dtype), v_win.transpose(-1, -2), out=out[first:last])
        ctx.save_for_backward(q, k, v, lengths)
        ctx.window = (left, right, C)
        return bands.output(out, lengths)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        q, k, v, lengths = ctx.saved_tensors
        bands = _Bands(q, lengths, *ctx.window)
        C, D, W, scale = bands.C, bands.D, bands.W, bands.D**-0.5
        q_flat, k_flat, v_flat = (x.reshape(-1, D) for x in (q, k, v))
        grad_flat = grad_out.reshape(-1, D)
        dq, dk, dv = (torch.zeros(x.shape, dtype=torch.float32, device=x.device) for x in (q_flat, k_flat, v_flat))
        window_row = torch.arange(W, device=q.device)[None, :]
        for first, last in bands.segments(C * W * 16 + 5 * W * D * 4, _segment_budget(q)):
            index, valid = bands.rows(first, last)
            q_seg, k_win = _gather_queries_keys(bands, q_flat, k_flat, index, first, last)  # float32
            weights = _band_softmax(bands, q_seg, k_win, valid, scale)  # [g, C, W]
            q_index = bands.queries(index, first, last)
            # Padded queries had their output zeroed: no gradient flows from them.
            d_out = grad_flat.index_select(0, q_index).float()
            d_out.masked_fill_(~bands.queries(valid, first, last)[:, None], 0.0)
            d_out = d_out.view(-1, C, D)
            v_win = bands.windows(v_flat.index_select(0, index)).float()  # [g, D, W]
            d_weights = torch.bmm(d_out, v_win)  # [g, C, W]
            d_scores = weights * (d_weights - (d_weights * weights).sum(-1, keepdim=True))
            dq.index_add_(0, q_index, torch.bmm(d_scores, k_win.transpose(-1, -2)).view(-1, D), alpha=scale)
            # Window w of block j is key row j*C + w of this segment: overlapping windows add up.
            rows = index[(torch.arange(last - first, device=q.device)[:, None] * C + window_row).view(-1)]
            dk.index_add_(0, rows, torch.bmm(d_scores.transpose(1, 2), q_seg).view(-1, D), alpha=scale)
            dv.index_add_(0, rows, torch.bmm(weights.transpose(1, 2), d_out).view(-1, D))
        grads = (g.view(q.shape).to(q.dtype) for g in (dq, dk, dv))
        return (*grads, None, None, None, None)


def _gather_queries_keys(bands, q_flat, k_flat, index, first, last):
    """Queries `[g, C, D]` and key windows `[g, D, W]` of blocks first ... last-1, in float32
    (scores of 16-bit products lose ~2 digits); padding rows repeat a real frame."""
    q_seg = bands.queries(q_flat.index_select(0, index), first, last).view(-1, bands.C, bands.D)
    k_win = bands.windows(k_flat.index_select(0, index))
    return q_seg.float(), k_win.float()


def _band_softmax(bands, q_seg, k_win, valid, scale):
    """Softmax weights `[g, C, W]` (float32) of the blocks of q_seg over the keys they see."""
    scores = torch.bmm(q_seg * scale, k_win)  # [g, C, W]
    scores += bands.band_bias
    scores += bands.windows(torch.where(valid, 0.0, LOW))[:, None, :]  # ... and are masked out here
    return torch.softmax(scores, dim=-1)


def _segment_budget(q) -> int:
    return CHUNKED_SEGMENT_BYTES_CUDA if q.is_cuda else CHUNKED_SEGMENT_BYTES


def _chunked_autograd(q, k, v, left, right, lengths, score, normalize, additive_weight, dropout_p, C):
    """Chunked backend for the other score variants and dropout, differentiable by autograd."""
    bands = _Bands(q, lengths, left, right, C)
    B, H, T, D = q.shape
    W = bands.W
    differentiable = torch.is_grad_enabled() and any(
        x is not None and x.requires_grad for x in (q, k, v, additive_weight))
    head_weight = None
    if score == "additive":  # the weight vector of block g's head
        heads = torch.arange(B * H, device=q.device).repeat_interleave(bands.stride) % H
        head_weight = additive_weight[heads]  # [G, D]
    q_flat, k_flat, v_flat = (x.reshape(-1, D) for x in (q, k, v))
    scale = D**-0.5 if score == "dot" else 1.0
    bytes_per_block = C * W * (8 + (8 * D if score == "additive" else 0)) + 3 * W * D * 4
    # With autograd, one segment: the gradient of each segment's gathered rows is a full-size
    # tensor, so many segments would make the backward pass quadratic.
    budget = bytes_per_block * bands.useful if differentiable else _segment_budget(q)
    pieces = []
    for first, last in bands.segments(bytes_per_block, budget):
        index, valid = bands.rows(first, last)
        q_seg = bands.queries(q_flat.index_select(0, index), first, last).view(-1, C, D)
        k_win = bands.windows(k_flat.index_select(0, index)).transpose(-1, -2)  # [g, W, D]
        v_win = bands.windows(v_flat.index_select(0, index)).transpose(-1, -2)
        if q.dtype != torch.float32:
            q_seg, k_win = q_seg.float(), k_win.float()
        w = head_weight[first:last].view(-1, 1, 1, D) if head_weight is not None else None
        scores = _scores(q_seg, k_win, score, w) if score == "additive" else (q_seg * scale) @ k_win.transpose(-1, -2)
        weights = _normalize(scores, bands.band & bands.windows(valid)[:, None, :], normalize).to(v.dtype)
        if dropout_p:
            weights = F.dropout(weights, dropout_p)
        pieces.append(torch.bmm(weights, v_win))  # [g, C, D]
    out = torch.cat(pieces) if len(pieces) > 1 else pieces[0]
    out = F.pad(out, (0, 0, 0, 0, 0, bands.G - bands.useful)).view(B, H, bands.P, D)[:, :, :T]
    padded = torch.arange(T, device=q.device)[None, :] >= lengths[:, None]
    return out.masked_fill(padded[:, None, :, None], 0.0)


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
        qkv = self.in_proj(x).view(B, T, 3, self.n_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        if self.rotary is None:
            return qkv.unbind(0)
        q, k = self.rotary(qkv[:2], offset)  # one rotation for both
        return q, k, qkv[2]

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

    def stream(self, batched: bool = True) -> "TruncatedAttentionStream":
        """A fresh incremental state for a batch of streams, frames [B, n, d_model], or for one
        stream of frames [n, d_model] if not `batched` (see `TruncatedAttentionStream`)."""
        return TruncatedAttentionStream(self, batched)

    def extra_repr(self) -> str:
        return (f"d_model={self.d_model}, n_heads={self.n_heads}, left={self.left}, right={self.right}, "
                f"backend={self.backend!r}, score={self.score!r}, normalize={self.normalize!r}")


class TruncatedAttentionStream:
    """Incremental form of `TruncatedMultiHeadAttention` for streaming recognition.

    Feed frames as they arrive with `feed(x [B, n, d_model])` (`[n, d_model]` if not `batched`);
    it returns the outputs of every frame whose `right` future frames have now been seen
    (`[B, m, d_model]` or `[m, d_model]`; m may be 0).
    `flush()` returns the outputs of the remaining frames at the end of the stream. Together
    they equal the offline module on the concatenated input. Queries and keys are rotated at
    their absolute positions. The cache keeps keys and values of the last `left` frames before
    the first pending frame, plus the pending frames: memory is O(left + right + chunk),
    whatever the length of the stream (unbounded if left is None).

    A chunk costs a few large operations, whatever its number of frames or heads: one
    projection gives q, k, v, one roll their rotated-half partners (`x.roll(D / 2)`), one
    multiply-add rotates q and k with angle tables computed `ROTARY_TABLE_FRAMES` positions at a
    time (v's sine is zero) and writes them into the cache, one
    `scaled_dot_product_attention` over the pending queries and cached keys with the band as an
    additive mask, one output projection. The cache is a buffer `[3, B, H, rows, D]` (rotated q,
    k, v per frame, in the layout the attention reads) written in place, with
    `STREAM_SPARE_FRAMES` spare rows: the live rows move to a fresh buffer when it is full.
    """

    def __init__(self, module: TruncatedMultiHeadAttention, batched: bool = True):
        self.module, self.batched = module, batched
        self.received = 0  # frames fed so far
        self.emitted = 0  # frames whose output was returned
        self.cache_start = 0  # position of the first cached frame
        self.buffer = None  # [3, B, H, rows, D]: frames cache_start ... received - 1 at rows start ...
        self.start = 0
        self.band = (None, None, None)  # (geometry, bool mask, additive mask) of the last call
        self.table = (0, None, None)  # (first position, cos, sin [3, 1, 1, frames, D]) of the rotation
        self.projection = stream_linear(module.in_proj)
        self.out = stream_linear(module.out_proj)

    @property
    def k(self) -> torch.Tensor:
        """Cached keys `[B, H, frames, D]` (rotated), from position `cache_start` on."""
        return self._frames()[1]

    @property
    def v(self) -> torch.Tensor:
        """Cached values `[B, H, frames, D]`, from position `cache_start` on."""
        return self._frames()[2]

    @torch.no_grad()
    def feed(self, x: torch.Tensor) -> torch.Tensor:
        m = self.module
        if x.dim() != (3 if self.batched else 2):
            kind, shape = ("batched", "[B, n, d_model]") if self.batched else ("single", "[n, d_model]")
            raise ValueError(f"a {kind} stream takes frames {shape}, got {list(x.shape)}")
        B, n = x.shape[:2] if self.batched else (1, x.shape[0])
        if n:
            qkv = linear(x, *self.projection).view(B, n, 3, m.n_heads, m.head_dim).permute(2, 0, 3, 1, 4)
            rows = self._reserve(B, n, x)  # [3, B, H, n, D], as qkv
            if m.rotary is None:
                rows.copy_(qkv)
            else:  # (q, k, v) * (cos, cos, 1) + (q, k, v partners) * (sin, sin, 0)
                cos, sin = self._rotation(n, x)
                torch.addcmul(qkv * cos, qkv.roll(m.head_dim // 2, dims=-1), sin, out=rows)
            self.received += n
        ready = self.emitted if m.right is None else max(self.emitted, self.received - m.right)
        return self._emit(ready, B, x)

    @torch.no_grad()
    def flush(self) -> torch.Tensor:
        return self._emit(self.received, 1 if self.buffer is None else self.buffer.shape[1], self.out[1])

    def _frames(self) -> torch.Tensor:
        """The cached frames `[3, B, H, frames, D]` (a view of the buffer)."""
        m = self.module
        if self.buffer is None:
            return self.out[1].new_zeros(3, 0, m.n_heads, 0, m.head_dim)
        return self.buffer[:, :, :, self.start:self.start + self.received - self.cache_start]

    def _reserve(self, B: int, n: int, like: torch.Tensor) -> torch.Tensor:
        """The buffer rows `[3, B, H, n, D]` of the next n frames (a fresh buffer when they do not fit)."""
        m = self.module
        live = self.received - self.cache_start
        end = self.start + live
        if self.buffer is None or end + n > self.buffer.shape[3]:
            buffer = like.new_empty(3, B, m.n_heads, live + n + STREAM_SPARE_FRAMES, m.head_dim)
            if live:
                buffer[:, :, :, :live] = self.buffer[:, :, :, self.start:end]
            self.buffer, self.start, end = buffer, 0, live
        return self.buffer[:, :, :, end:end + n]

    def _rotation(self, n: int, like: torch.Tensor):
        """(cos, sin) `[3, 1, 1, n, D]` of positions received ... received + n - 1, for (q, k, v) of every head."""
        first, cos, sin = self.table
        position = self.received
        if cos is None or position + n > first + cos.shape[3]:
            frames = max(n, ROTARY_TABLE_FRAMES)
            c, s = self.module.rotary.tables(position, frames, like.dtype, like.device)  # [frames, D]
            cos = torch.stack((c, c, torch.ones_like(c)))[:, None, None]
            sin = torch.stack((s, s, torch.zeros_like(s)))[:, None, None]
            first, self.table = position, (position, cos, sin)
        rows = slice(position - first, position - first + n)
        return cos[:, :, :, rows], sin[:, :, :, rows]

    def _mask(self, n: int, keys: int, device):
        """(bool, additive) `[n, keys]`: which cached keys each of the next n pending queries sees."""
        m = self.module
        geometry = (n, keys, self.emitted - self.cache_start)
        if self.band[0] != geometry:
            key = torch.arange(self.cache_start, self.cache_start + keys, device=device)
            offset = key[None, :] - torch.arange(self.emitted, self.emitted + n, device=device)[:, None]
            mask = torch.ones_like(offset, dtype=torch.bool)
            if m.left is not None:
                mask &= offset >= -m.left
            if m.right is not None:
                mask &= offset <= m.right
            additive = torch.zeros(mask.shape, dtype=self.out[1].dtype, device=device).masked_fill_(~mask, LOW)
            self.band = (geometry, mask, additive)
        return self.band[1], self.band[2]

    def _emit(self, ready: int, B: int, like: torch.Tensor) -> torch.Tensor:
        m = self.module
        n = ready - self.emitted
        if n <= 0 or self.buffer is None:
            return like.new_zeros((B, 0, m.d_model) if self.batched else (0, m.d_model))
        frames = self._frames()
        first = self.emitted - self.cache_start
        q, k, v = frames  # [B, H, frames, D] each
        q = q[:, :, first:first + n]
        mask, additive = self._mask(n, frames.shape[3], frames.device)
        if m.score == "dot" and m.normalize == "softmax":
            heads = F.scaled_dot_product_attention(q, k, v, attn_mask=additive)
        else:
            heads = _normalize(_scores(q, k, m.score, m.additive_weight), mask, m.normalize).to(v.dtype) @ v
        self.emitted = ready
        if m.left is not None and self.emitted - m.left > self.cache_start:
            drop = self.emitted - m.left - self.cache_start
            self.start += drop
            self.cache_start += drop
        out = linear(heads.transpose(1, 2).reshape(B * n, m.d_model), *self.out)
        return out.view(B, n, m.d_model) if self.batched else out
