"""A tasr model as a streaming ONNX graph: one fixed-shape chunk step with its caches as explicit
inputs and outputs, as the online CTC models of sherpa-onnx are made.

`export_streaming(model, folder, chunk_ms=320)` writes `streaming.onnx` into `folder`:

- inputs: `x` float32 [N, chunk * subsampling, F], raw Kaldi fbank frames (the CMVN is inside);
  `offset` int64 [N], steps so far times `chunk`; `total` int64 [N], the stream's output frames
  once its end is known, else anything larger; then the caches (`models.chunk_step`), zeros at
  the start, named as in the metadata's `cache_names` with shapes `cache_shapes` (N first);
- outputs: `log_probs` float32 [N, chunk, V] of output positions offset - delay + j (keep those
  from 0 to below `total`), then the next caches, named `next_` + the cache's name.

The metadata is that of `model.onnx` (`tasr.export.metadata`), with `model_type` "tasr_streaming_ctc"
and `chunk`, `chunk_ms`, `delay` (output frames), `cache_names` and `cache_shapes` (JSON).
`OnnxStream(folder)` (`tasr.onnx_runtime`) runs it: fbank frames in as they come, log-probs out,
equal to the offline model's. sherpa-onnx's online CTC loaders each read one model family's own
caches (WeNet: `attn_cache` [blocks, heads, frames, 2 * head_dim] and `conv_cache`, for chunks
without look-ahead; Zipformer2: its six caches per layer), so this graph is not one of them: its
blocks look ahead (`right`) and need the waiting frames' queries and residuals as caches too.
"""

import json
import os

import numpy as np
import torch
from torch import nn

from tasr.errors import TasrError
from tasr.export import OPSET, _quiet_exporter, cmvn_constants, metadata
from tasr.files import atomic_write, make_folder
from tasr.models.chunk_step import EncoderStep
from tasr.onnx_runtime import STREAMING_FILE, STREAMING_MODEL_TYPE, OnnxStream, require

DEFAULT_CHUNK_MS = 320


class StreamingGraph(nn.Module):
    """What `streaming.onnx` holds: CMVN, `EncoderStep` and the CTC head of a `SpeechRecognizer`."""

    def __init__(self, model, chunk: int):
        super().__init__()
        self.step, self.ctc = EncoderStep(model.encoder, chunk), model.ctc
        mean, scale = cmvn_constants(model)
        self.register_buffer("mean", mean)
        self.register_buffer("scale", scale)

    def forward(self, feats: torch.Tensor, offset: torch.Tensor, total: torch.Tensor, *caches: torch.Tensor):
        encoded, *caches = self.step((feats - self.mean) * self.scale, offset, total, *caches)
        return (self.ctc(encoded), *caches)


def chunk_frames(model, chunk_ms: float) -> int:
    """Output frames per step for `chunk_ms` of audio (at least 1)."""
    return max(1, round(chunk_ms / 1000 / model.output_frame_s))


def streaming_graph(model, chunk_ms: float = DEFAULT_CHUNK_MS) -> StreamingGraph:
    """The `StreamingGraph` of `model` (moved to the CPU, eval mode); TasrError when it cannot stream."""
    try:
        return StreamingGraph(model.cpu().eval(), chunk_frames(model, chunk_ms)).eval()
    except ValueError as error:
        raise TasrError(f"cannot export a streaming model: {error}") from None


def export_streaming(model, folder, chunk_ms: float = DEFAULT_CHUNK_MS, opset: int = OPSET) -> str:
    """Write `streaming.onnx` (see the module docstring) into `folder`; returns its path.

    `model` is a `SpeechRecognizer` (moved to the CPU, eval mode) whose attention context is
    limited left and right; TasrError otherwise."""
    onnx = require("onnx")
    graph = streaming_graph(model, chunk_ms)
    chunk = graph.step.chunk
    shapes = graph.step.cache_shapes(1)
    names = ["x", "offset", "total", *shapes]
    outputs = ["log_probs", *(f"next_{name}" for name in shapes)]
    batch = torch.export.Dim("batch")
    step_frames = chunk * model.encoder.subsampling
    example = (torch.zeros(2, step_frames, model.frontend.num_features), torch.zeros(2, dtype=torch.long),
               torch.full((2,), 10, dtype=torch.long), *graph.step.initial_caches(2))
    with torch.no_grad(), _quiet_exporter():
        program = torch.onnx.export(graph, example, dynamo=True, opset_version=opset, input_names=names,
                                    output_names=outputs, verbose=False,
                                    dynamic_shapes=({0: batch}, {0: batch}, {0: batch}, ({0: batch},) * len(shapes)))
    values = metadata(model)
    values.update(model_type=STREAMING_MODEL_TYPE, chunk=str(chunk), chunk_ms=str(chunk * model.output_frame_s * 1000),
                  step_frames=str(step_frames), delay=str(graph.step.delay), cache_names=json.dumps(list(shapes)),
                  cache_shapes=json.dumps([list(shape[1:]) for shape in shapes.values()]),
                  comment="tasr streaming CTC step: fbank chunk [N, chunk * subsampling, F], offset [N], total [N], "
                          "caches -> CTC log-probs [N, chunk, V] of positions offset - delay + j, next caches")
    proto = program.model_proto
    onnx.helper.set_model_props(proto, values)
    make_folder(folder)
    path = os.path.join(folder, STREAMING_FILE)
    with atomic_write(path, "wb") as f:
        f.write(proto.SerializeToString())
    return path


def stream_difference(model, folder, int8: bool = False, seconds: float = 3.0, piece: int = 37) -> float:
    """Largest |log-prob difference| between `model` (PyTorch, offline) and `OnnxStream(folder)`
    fed seeded noise's fbank frames `piece` at a time."""
    generator = torch.Generator().manual_seed(0)
    wave = 0.1 * torch.randn(1, int(seconds * model.sample_rate), generator=generator)
    lengths = torch.tensor([wave.shape[1]])
    with torch.inference_mode():
        reference, out_lengths = model(wave, lengths)
        raw, _ = model.frontend(wave, lengths)
    stream = OnnxStream(folder, int8=int8)
    pieces = [stream.accept(raw[0, i:i + piece].numpy()) for i in range(0, raw.shape[1], piece)]
    log_probs = torch.from_numpy(np.concatenate(pieces + [stream.finish()]))
    if log_probs.shape[0] != int(out_lengths[0]):
        raise TasrError(f"{stream.path}: gave {log_probs.shape[0]} frames for {int(out_lengths[0])}")
    return float((log_probs - reference[0, :out_lengths[0]]).abs().max())
