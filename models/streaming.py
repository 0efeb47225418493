"""The encoder's streaming state: feature frames in chunk by chunk, encodings out, as offline.

    stream = encoder.eval().stream()
    for feats in chunks:               # [n, F] normalised feature frames, any n >= 0
        out = stream.feed(feats)       # [k, d_model]: the output frames now complete
    out = stream.flush()               # [k, d_model]: the rest, at the end of the input

The concatenated outputs equal `Encoder.forward` on the whole input (within float rounding).
Each stage keeps only what its next frames need, whatever has been streamed:

- the convolutional subsampling, the input frames of its next output frame (fewer than
  `right_context + subsampling`; `models/subsampling.py`);
- each block's attention, the keys and values of its last `left` frames (rotated at their
  absolute positions) and the queries of the frames waiting for their `right` future frames
  (`models/attention.py`);
- each Conformer convolution, its last `kernel - 1 - lookahead` inputs and the frames waiting
  for its look-ahead, plus each block's residual inputs of waiting frames (`models/blocks.py`).

A layer emits a frame once the frames it looks ahead at exist at its input, so an output frame
comes out `encoder.lookahead_ms` after its start has arrived (plus the chunk). The cost of a
chunk is that of its own frames against bounded contexts: it does not grow with the stream.
A model with unlimited context (left or right None) cannot stream.

The streams compute in functional calls on their modules' weights (eval mode: no dropout, no
module dispatch), and their linear layers as `addmm` with the weight transposed once into a
contiguous `[in, out]` matrix (`stream_linear`): for the 8 frames of a 320 ms chunk that is ~1.7x
faster on CPU than `F.linear`, which multiplies by a transposed view. Such derived weights are
kept on the module (`derived`), shared by all its streams and remade when a weight changes.
"""

import weakref

import torch
import torch.nn.functional as F
from torch import nn


def derived(module: nn.Module, name: str, make, *sources: torch.Tensor):
    """`make(*sources)` (detached), kept on `module` under `name` while the source tensors are the
    same ones, unchanged (not updated in place, not moved), so that every stream of the module shares it."""
    key = tuple((t._version, t.data_ptr(), t.dtype, t.device) for t in sources)
    store = module.__dict__.setdefault("_stream_derived", {})
    hit = store.get(name)
    if hit is None or hit[1] != key or any(ref() is not t for ref, t in zip(hit[0], sources)):
        with torch.inference_mode(False), torch.no_grad():  # a plain tensor, even inside inference mode
            value = make(*(t.detach() for t in sources))
        hit = store[name] = (tuple(weakref.ref(t) for t in sources), key, value)
    return hit[2]


def stream_linear(layer: nn.Module) -> tuple:
    """(weight [in, out] contiguous, bias [out]) of an `nn.Linear` or a 1x1 `nn.Conv1d`, for `linear`."""
    return derived(layer, "transposed", lambda w: w.reshape(w.shape[0], -1).t().contiguous(), layer.weight), \
        layer.bias.detach()


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """`x [..., in]` times `weight [in, out]` (see `stream_linear`) plus `bias [out]` -> `[..., out]`."""
    if x.dim() == 2:
        return torch.addmm(bias, x, weight)
    return torch.addmm(bias, x.reshape(-1, x.shape[-1]), weight).view(*x.shape[:-1], weight.shape[1])


class EncoderStream:
    """One stream through an `Encoder` in eval mode; see the module docstring."""

    def __init__(self, encoder):
        if encoder.training:
            raise ValueError("the encoder streams in eval mode only (call .eval() first)")
        for i, block in enumerate(encoder.blocks):
            if block.left is None or block.right is None:
                raise ValueError(f"layer {i} has unlimited attention context (left={block.left}, "
                                 f"right={block.right}): an encoder streams only with limited left and right")
        self.encoder = encoder
        self.subsampling = encoder.subsample.stream()
        self.blocks = [block.stream() for block in encoder.blocks]
        norm = encoder.norm
        self.norm = norm.normalized_shape, norm.weight.detach(), norm.bias.detach(), norm.eps
        self.finished = False

    @torch.no_grad()
    def feed(self, feats: torch.Tensor) -> torch.Tensor:
        """Feature frames [n, F] -> the encodings [k, d_model] (k >= 0) complete now."""
        if self.finished:
            raise ValueError("the stream was flushed: start a new one with encoder.stream()")
        x = self.subsampling.feed(feats)
        for block in self.blocks:
            if x.shape[0] == 0:
                return x
            x = block.feed(x)
        return F.layer_norm(x, *self.norm)

    @torch.no_grad()
    def flush(self) -> torch.Tensor:
        """End of the input: the encodings [k, d_model] that were waiting for look-ahead."""
        if self.finished:
            raise ValueError("the stream was already flushed")
        self.finished = True
        weight = self.encoder.norm.weight
        if self.subsampling.emitted == 0:  # too short for one output frame, as offline
            return weight.new_zeros(0, weight.shape[0])
        x = weight.new_zeros(0, weight.shape[0])
        for block in self.blocks:
            if x.shape[0]:
                x = block.feed(x)
            x = torch.cat((x, block.flush()))
        return F.layer_norm(x, *self.norm)
