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
`OnnxStream(folder)` runs it in onnxruntime: fbank frames in as they come, log-probs out,
equal to the offline model's. sherpa-onnx's online CTC loaders each read one model family's own
caches (WeNet: `attn_cache` [blocks, heads, frames, 2 * head_dim] and `conv_cache`, for chunks
without look-ahead; Zipformer2: its six caches per layer), so this graph is not one of them: its
blocks look ahead (`right`) and need the waiting frames' queries and residuals as caches too.
"""

import json
import math
import os

import numpy as np
import torch
from torch import nn

from tasr.errors import TasrError
from tasr.export import OPSET, _quiet_exporter, _require, _session, cmvn_constants, metadata
from tasr.files import atomic_write, make_folder
from tasr.models.chunk_step import EncoderStep

STREAMING_FILE = "streaming.onnx"
STREAMING_INT8_FILE = "streaming.int8.onnx"
MODEL_TYPE = "tasr_streaming_ctc"
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
    onnx = _require("onnx")
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
    values.update(model_type=MODEL_TYPE, chunk=str(chunk), chunk_ms=str(chunk * model.output_frame_s * 1000),
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


class OnnxStream:
    """One stream through `streaming.onnx` in onnxruntime: fbank frames in, CTC log-probs out.

        stream = OnnxStream("exp/onnx")
        for frames in pieces:                 # raw fbank frames [n, F] (the model's front-end), any n
            log_probs = stream.accept(frames)  # [k, V]: the frames complete now
        log_probs = stream.finish()            # [k, V]: the rest
    """

    def __init__(self, folder, int8: bool = False, threads: int | None = 1):
        ort = _require("onnxruntime")
        path = os.path.join(folder, STREAMING_INT8_FILE if int8 else STREAMING_FILE)
        self.path, self.session = path, _session(ort, path, threads)
        meta = dict(self.session.get_modelmeta().custom_metadata_map)
        if meta.get("model_type") != MODEL_TYPE:
            raise TasrError(f"{path}: not a streaming model exported by tasr (`tasr export --streaming`)")
        self.chunk, self.delay, self.step_frames = int(meta["chunk"]), int(meta["delay"]), int(meta["step_frames"])
        self.subsampling, self.right_context = int(meta["subsampling_factor"]), int(meta["min_frames"]) - 1
        self.feature_dim = int(meta["feature_dim"])
        self.names, self.shapes = json.loads(meta["cache_names"]), json.loads(meta["cache_shapes"])
        self.reset()

    def reset(self) -> None:
        """Start a new stream (the session is kept)."""
        self.caches = [np.zeros((1, *shape), dtype=np.float32) for shape in self.shapes]
        self.pending = np.zeros((0, self.feature_dim), dtype=np.float32)
        self.steps, self.frames_in, self.emitted = 0, 0, 0

    def _step(self, feats: np.ndarray, total: int) -> np.ndarray:
        inputs = {"x": feats[None], "offset": np.array([self.steps * self.chunk], dtype=np.int64),
                  "total": np.array([total], dtype=np.int64), **dict(zip(self.names, self.caches))}
        log_probs, *self.caches = self.session.run(None, inputs)
        first = self.steps * self.chunk - self.delay
        self.steps += 1
        keep = np.arange(first, first + self.chunk)
        keep = (keep >= 0) & (keep < total)
        self.emitted += int(keep.sum())
        return log_probs[0][keep]

    def accept(self, frames) -> np.ndarray:
        """Fbank frames [n, F] -> the log-probs [k, V] now complete (k may be 0)."""
        frames = np.asarray(frames, dtype=np.float32).reshape(-1, self.feature_dim)
        self.pending = np.concatenate((self.pending, frames))
        self.frames_in += frames.shape[0]
        out = []
        while self.pending.shape[0] >= self.step_frames:
            out.append(self._step(self.pending[:self.step_frames], np.iinfo(np.int64).max))
            self.pending = self.pending[self.step_frames:]
        return np.concatenate(out) if out else np.zeros((0, self._vocab()), dtype=np.float32)

    def finish(self) -> np.ndarray:
        """End of the stream: the remaining log-probs [k, V]."""
        total = max(0, (self.frames_in - self.right_context - 1) // self.subsampling + 1)
        out = []
        while self.emitted < total:
            feats = np.zeros((self.step_frames, self.feature_dim), dtype=np.float32)
            feats[:self.pending.shape[0]] = self.pending
            self.pending = self.pending[:0]
            out.append(self._step(feats, total))
        return np.concatenate(out) if out else np.zeros((0, self._vocab()), dtype=np.float32)

    def _vocab(self) -> int:
        return self.session.get_outputs()[0].shape[-1]


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
