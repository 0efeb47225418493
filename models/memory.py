"""Peak activation memory of one encoder pass (or one chunk of its stream), from its sizes, and the
largest pass that fits a memory budget.

For `frames` input frames (10 ms each by default) through an `Encoder`, in bytes of
`bytes_per_value` (4 for float32), the bound is the sum of

- the input frames [frames, F] and the convolutional subsampling: each convolution keeps its
  input and its output, and its ReLU a second output (not in place): for the first layer of the
  4x stack `channels x frames/2 x F/2` values, twice; then its flattened output and projection;
- one block at a time over `m = frames / subsampling` frames plus the frames a stream keeps
  (the attention's `left + right` keys, the convolution's kernel): the feed-forward's input,
  hidden and activated hidden (`2 x ff_dim + 3 x d_model` per frame), queries/keys/values, the
  `heads x m x (m + left + right)` scores with their mask and weights, and the depthwise
  convolution's `m x d_model x kernel` product (the stream multiplies an unfold view);
- the CTC head's log-probs are not the encoder's: the caller adds `m x vocab`.

Truncated attention makes every term linear in `frames` except the scores of a stream chunk
(quadratic in the chunk, not in the recording), so a budget gives a chunk size whatever the
length of the input: `frames_for_budget`.
"""

from .subsampling import LAYERS


def subsampling_bytes(encoder, frames: int, num_features: int, bytes_per_value: int = 4) -> int:
    """Peak bytes of the convolutional subsampling over `frames` input frames of `num_features` bins."""
    sub = encoder.subsample
    channels = sub.out.in_features // _freq_out(sub.factor, num_features)
    time, freq, before = frames, num_features, frames * num_features
    peak = 0
    for kernel, stride in LAYERS[sub.factor]:
        time, freq = max(0, (time - kernel) // stride + 1), (freq - kernel) // stride + 1
        out = channels * time * freq
        peak = max(peak, before + 2 * out)
        before = out
    projected = time * (channels * freq + encoder.d_model)  # the flattened copy and the projection
    return bytes_per_value * (frames * num_features + max(peak, before + projected))


def block_bytes(encoder, frames: int, bytes_per_value: int = 4) -> int:
    """Peak bytes of the largest block over the `frames // subsampling` frames of `frames` input frames."""
    m = frames // encoder.subsampling + 1
    d = encoder.d_model
    peak = 0
    for block in encoder.blocks:
        attention = block.attention
        left = 0 if block.left is None else block.left
        right = 0 if block.right is None else block.right
        keys = m + left + right if block.left is not None else m + right
        feed_forward = m * (2 * _ff_dim(block) + 3 * d)
        scores = 3 * attention.n_heads * m * keys + m * keys  # scores, weights, mask (float), mask (bool)
        qkv = 3 * d * (m + left + right) + 2 * m * d
        kernel = block.conv.depthwise.kernel_size[0] if hasattr(block, "conv") else 0
        conv = m * d * (kernel + 4)  # the unfold product, the gated input and output
        peak = max(peak, feed_forward, scores + qkv, conv)
    return bytes_per_value * (peak + 3 * m * d)  # plus the block's input, residual and output


def activation_bytes(encoder, frames: int, num_features: int, bytes_per_value: int = 4) -> int:
    """Bound on the activation memory of one pass of `encoder` over `frames` input frames (bytes)."""
    return (subsampling_bytes(encoder, frames, num_features, bytes_per_value)
            + block_bytes(encoder, frames, bytes_per_value))


def frames_for_budget(encoder, budget_bytes: int, num_features: int, bytes_per_value: int = 4,
                      largest: int = 1 << 20) -> int:
    """The most input frames (a multiple of the subsampling, at most `largest`) whose
    `activation_bytes` fit in `budget_bytes`; ValueError when not even one output frame fits."""
    step = encoder.subsampling
    smallest = encoder.subsample.right_context + step

    def fits(n):
        return activation_bytes(encoder, n, num_features, bytes_per_value) <= budget_bytes

    if not fits(smallest):
        need = activation_bytes(encoder, smallest, num_features, bytes_per_value)
        raise ValueError(f"a memory budget of {budget_bytes / 2**20:.1f} MiB cannot hold one encoder chunk "
                         f"({need / 2**20:.1f} MiB for {smallest} frames)")
    low, high = smallest // step, largest // step  # fits(low * step); binary search on multiples of step
    while low < high:
        middle = (low + high + 1) // 2
        if fits(middle * step):
            low = middle
        else:
            high = middle - 1
    return low * step


def _freq_out(factor: int, num_features: int) -> int:
    freq = num_features
    for kernel, stride in LAYERS[factor]:
        freq = (freq - kernel) // stride + 1
    return freq


def _ff_dim(block) -> int:
    ff = getattr(block, "ff1", None) or block.ff
    return ff.net[0].out_features
