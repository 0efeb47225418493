"""Running tasr's ONNX files in onnxruntime: sessions with clear errors, and one stream through the
chunk step that `tasr export --streaming` writes (`tasr.export_streaming`).

`OnnxStream(folder)` feeds `streaming.onnx` raw fbank frames as they come and returns CTC
log-probs equal to the offline model's (the caches go out of one step and into the next).
"""

import copy
import importlib
import json
import os

import numpy as np

from tasr.errors import TasrError

STREAMING_FILE = "streaming.onnx"
STREAMING_INT8_FILE = "streaming.int8.onnx"
STREAMING_MODEL_TYPE = "tasr_streaming_ctc"
UNKNOWN_TOTAL = np.iinfo(np.int64).max  # the stream's output frames while its end is not known


def session(path, threads, missing: str = " (tasr export writes it)"):
    """An onnxruntime CPU session of `path` on `threads` intra-op threads (None: its default); TasrError
    naming the file when it is missing ("not found" + `missing`) or not readable."""
    ort = require("onnxruntime")
    if not os.path.isfile(path):
        raise TasrError(f"{path}: not found{missing}")
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime raises its own Fail/InvalidProtobuf/... types
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise TasrError(f"{path}: not a readable ONNX model ({reason})") from None


def require(module: str):
    """Import an optional dependency of export, or say how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise TasrError(f"ONNX export and runtimes need {module.split('.')[0]}: "
                        "pip install 'tasr[export]' (onnx, onnxruntime, sherpa-onnx)") from None


class OnnxStream:
    """One stream through `streaming.onnx` in onnxruntime: fbank frames in, CTC log-probs out.

        stream = OnnxStream("exp/onnx")
        for frames in pieces:                 # raw fbank frames [n, F] (the model's front-end), any n
            log_probs = stream.accept(frames)  # [k, V]: the frames complete now
        log_probs = stream.finish()            # [k, V]: the rest
    """

    def __init__(self, folder, int8: bool = False, threads: int | None = 1):
        path = os.path.join(folder, STREAMING_INT8_FILE if int8 else STREAMING_FILE)
        self.path, self.session = path, session(path, threads, "; streaming in onnxruntime needs the "
                                                             "streaming graph (tasr export --streaming)")
        meta = dict(self.session.get_modelmeta().custom_metadata_map)
        if meta.get("model_type") != STREAMING_MODEL_TYPE:
            raise TasrError(f"{path}: not a streaming model exported by tasr (`tasr export --streaming`)")
        self.chunk, self.delay, self.step_frames = int(meta["chunk"]), int(meta["delay"]), int(meta["step_frames"])
        self.subsampling, self.right_context = int(meta["subsampling_factor"]), int(meta["min_frames"]) - 1
        self.feature_dim, self.vocab_size = int(meta["feature_dim"]), int(meta["vocab_size"])
        self.names, self.shapes = json.loads(meta["cache_names"]), json.loads(meta["cache_shapes"])
        self.reset()

    def new_stream(self) -> "OnnxStream":
        """Another stream, from the start, on this one's session (loading a session takes ~30 ms)."""
        stream = copy.copy(self)
        stream.reset()
        return stream

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
            out.append(self._step(self.pending[:self.step_frames], UNKNOWN_TOTAL))
            self.pending = self.pending[self.step_frames:]
        return np.concatenate(out) if out else np.zeros((0, self.vocab_size), dtype=np.float32)

    def finish(self) -> np.ndarray:
        """End of the stream: the remaining log-probs [k, V]."""
        total = max(0, (self.frames_in - self.right_context - 1) // self.subsampling + 1)
        out = []
        while self.emitted < total:
            feats = np.zeros((self.step_frames, self.feature_dim), dtype=np.float32)
            feats[:self.pending.shape[0]] = self.pending
            self.pending = self.pending[:0]
            out.append(self._step(feats, total))
        return np.concatenate(out) if out else np.zeros((0, self.vocab_size), dtype=np.float32)
