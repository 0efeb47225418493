"""FlexAttention backend of `truncated_attention` (CUDA, compiled Triton kernels).

FlexAttention computes only the 128x128 tiles a `BlockMask` lists, so the cost of a band of
left + right frames is linear in T. Compilation happens per tensor shape, so to avoid
recompiling for every new length:

- T is padded to a power-of-two bucket (at least one 128-frame block) and the batch to a
  power of two; padding costs memory only, because the block mask is built per sequence and
  gives padded query blocks no key block at all (nothing computed there);
- the mask function for a (batch bucket, T bucket, left, right, device) is built once and cached;
  it reads the sequence lengths from a cached device buffer that each call overwrites in
  place, so the compiled kernel sees the same function and the same tensor every time.

The block mask itself is built per call from the lengths with a few tensor operations
(O(B·T/128) work, no dense [T, T] mask). The uncompiled (eager) FlexAttention is O(T²) in
memory; it is used only when `compile=False` (tests on CPU).
"""

import importlib.util

import torch

BLOCK = 128  # FlexAttention's tile, frames
_MIN_COMPILE_CACHE = 64  # distinct shapes the compiled kernel may be specialised for

_mask_cache = {}
_compiled = None


def flex_available(q: torch.Tensor) -> bool:
    """True if compiled FlexAttention can run forward and backward on `q`'s device (CUDA sm80+, Triton).

    On CPU, FlexAttention compiles (C++) for inference only, so `auto` never picks it there;
    asking for `backend="flex"` explicitly on CPU works without gradients.
    """
    if not q.is_cuda or importlib.util.find_spec("triton") is None:
        return False
    try:
        from torch.nn.attention import flex_attention  # noqa: F401
    except ImportError:
        return False
    return torch.cuda.get_device_capability(q.device) >= (8, 0)


def flex_truncated_attention(q, k, v, left, right, lengths=None, compile: bool = True):
    """`truncated_attention` semantics (dot-product scores, softmax) with FlexAttention."""
    from torch.nn.attention.flex_attention import flex_attention

    if q.is_cuda and compile and not flex_available(q):
        raise RuntimeError("the flex backend needs a CUDA GPU of compute capability 8.0+ with Triton")
    if not q.is_cuda and torch.is_grad_enabled() and any(x.requires_grad for x in (q, k, v)):
        raise RuntimeError("FlexAttention has no backward on CPU: use the chunked backend for training")
    B, H, T, D = q.shape
    T_pad = _bucket(T, BLOCK)
    # Clipped to the bucket, not to T, so that every T of a bucket shares one mask function.
    left = T_pad - 1 if left is None else min(left, T_pad - 1)
    right = T_pad - 1 if right is None else min(right, T_pad - 1)
    B_pad = _bucket(B, 1)
    if lengths is None:
        lengths = torch.full((B,), T, dtype=torch.int32, device=q.device)
    lengths_pad = torch.zeros(B_pad, dtype=torch.int32, device=q.device)
    lengths_pad[:B] = lengths.to(device=q.device, dtype=torch.int32)

    key = (B_pad, T_pad, left, right, str(q.device))
    if key not in _mask_cache:
        _mask_cache[key] = _make_mask_mod(B_pad, left, right, q.device)
    lengths_buffer, mask_mod = _mask_cache[key]
    lengths_buffer.copy_(lengths_pad)
    block_mask = _band_block_mask(lengths_pad, T_pad, left, right, mask_mod)

    def pad(x):
        return torch.nn.functional.pad(x, (0, 0, 0, T_pad - T, 0, 0, 0, B_pad - B))

    attend = _compiled_flex() if compile else flex_attention
    out = attend(pad(q), pad(k), pad(v), block_mask=block_mask)[:B, :, :T]
    valid = torch.arange(T, device=q.device)[None, :] < lengths.to(q.device)[:, None]
    return out.masked_fill(~valid[:, None, :, None], 0.0)


def _bucket(n: int, minimum: int) -> int:
    """The smallest power of two >= max(n, minimum)."""
    return 1 << (max(n, minimum) - 1).bit_length()


def _make_mask_mod(B_pad, left, right, device):
    """(lengths buffer [B_pad], mask_mod): band of left/right frames, keys and queries before each length."""
    lengths_buffer = torch.zeros(B_pad, dtype=torch.int32, device=device)

    def mask_mod(b, h, q_idx, kv_idx):
        offset = kv_idx - q_idx
        length = lengths_buffer[b]
        return (offset >= -left) & (offset <= right) & (kv_idx < length) & (q_idx < length)

    return lengths_buffer, mask_mod


def _band_block_mask(lengths, T_pad, left, right, mask_mod):
    """BlockMask listing, for each sequence and 128-query block, the key blocks its band touches."""
    from torch.nn.attention.flex_attention import BlockMask

    device = lengths.device
    n = T_pad // BLOCK
    blocks = torch.arange(n, device=device)
    first = ((blocks * BLOCK - left).clamp(min=0) // BLOCK)[None, :]  # [1, n]
    last_band = ((blocks * BLOCK + BLOCK - 1 + right).clamp(max=T_pad - 1) // BLOCK)[None, :]
    last_key = ((lengths - 1).clamp(min=0) // BLOCK)[:, None].long()  # [B, 1]
    last = torch.minimum(last_band, last_key)
    has_queries = (blocks[None, :] * BLOCK) < lengths[:, None]
    count = torch.where(has_queries, last - first + 1, 0).clamp(min=0)  # [B, n]
    indices = (first[..., None] + blocks[None, None, :]).clamp(max=n - 1)  # [1, n, n]: listed first, rest ignored
    indices = indices.expand(lengths.shape[0], n, n)
    return BlockMask.from_kv_blocks(
        count[:, None].to(torch.int32),
        indices[:, None].to(torch.int32).contiguous(),
        BLOCK_SIZE=BLOCK,
        mask_mod=mask_mod,
        seq_lengths=(T_pad, T_pad),
    )


def _compiled_flex():
    """`torch.compile(flex_attention)`, created once; shapes are specialised (dynamic=False)."""
    global _compiled
    if _compiled is None:
        from torch.nn.attention.flex_attention import flex_attention

        config = torch._dynamo.config
        config.recompile_limit = max(config.recompile_limit, _MIN_COMPILE_CACHE)
        _compiled = torch.compile(flex_attention, dynamic=False)
    return _compiled
