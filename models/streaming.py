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
"""

import torch


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
        self.finished = False

    @torch.no_grad()
    def feed(self, feats: torch.Tensor) -> torch.Tensor:
        """Feature frames [n, F] -> the encodings [k, d_model] (k >= 0) complete now."""
        if self.finished:
            raise ValueError("the stream was flushed: start a new one with encoder.stream()")
        x = self.subsampling.feed(feats[None])
        if x.shape[1] == 0:
            return x[0]
        for block in self.blocks:
            x = block.feed(x)
            if x.shape[1] == 0:
                return x[0]
        return self.encoder.norm(x)[0]

    @torch.no_grad()
    def flush(self) -> torch.Tensor:
        """End of the input: the encodings [k, d_model] that were waiting for look-ahead."""
        if self.finished:
            raise ValueError("the stream was already flushed")
        self.finished = True
        weight = self.encoder.norm.weight
        if self.subsampling.emitted == 0:  # too short for one output frame, as offline
            return weight.new_zeros(0, weight.shape[0])
        x = weight.new_zeros(1, 0, weight.shape[0])
        for block in self.blocks:
            if x.shape[1]:
                x = block.feed(x)
            x = torch.cat((x, block.flush()), dim=1)
        return self.encoder.norm(x)[0]
