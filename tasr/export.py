"""A tasr model as ONNX, for onnxruntime and sherpa-onnx.

`export(model, folder, int8=False)` writes into `folder`:

- `model.onnx`: global CMVN, encoder and CTC head in one graph (made by `torch.export` through
  `torch.onnx.export(dynamo=True)`, opset 18). Inputs: `x` float32 [N, T, F], Kaldi fbank frames
  computed with the model's front-end options from waveforms in [-1, 1], and `x_lens` int64 [N]
  (frames). Outputs: `log_probs` float32 [N, T', V] and `log_probs_len` int64 [N]. N and T are
  dynamic (T at least `min_frames` of the metadata: 7 frames for 4x subsampling). Truncated
  attention is the chunked backend's arithmetic (`models.attention.traceable_attention`):
  memory grows linearly with T, there is no [T, T] mask.
- `model.int8.onnx` (int8=True): the same graph with int8 weights in its matrix products
  (onnxruntime dynamic quantisation; activations are quantised on the fly).
- `tokens.txt`: "token id" lines as sherpa-onnx reads them: `<blank>` id 0 (sherpa-onnx's greedy
  search finds the blank by that name), the word boundary "▁" (sherpa-onnx turns a token's leading
  "▁" into a space), `<unk>` written "⁇" as tasr writes it in text.

The metadata (`metadata(model)`, string values) carries what a runtime needs: sherpa-onnx's
`model_type`, `vocab_size` and `subsampling_factor`; the sample rate and every Kaldi fbank option
(`fbank`, JSON); the tasr config and tokenizer (JSON), so that `OnnxModel(folder)` needs no `.pt` file.

sherpa-onnx: the model is of its "zipformer2_ctc" kind, the offline CTC kind whose features
sherpa-onnx takes from the caller's `FeatureExtractorConfig` as they are (Kaldi fbank, povey window,
preemphasis 0.97, samples in [-1, 1]). sherpa-onnx reads no feature option from the metadata, and
its defaults differ from Kaldi's (and tasr's) in two: `high_freq` -400 (Kaldi 0) and `snip_edges`
false (Kaldi true); `sherpa_recognizer(folder)` sets both from the metadata. Its "wenet_ctc" kind
would multiply samples by 32768 and force dither 1 (random noise), its NeMo kinds use librosa-style
features. `sherpa_incompatibilities(fbank_options(model))` lists the front-end options sherpa-onnx
cannot follow (the Python API sets only the sample rate, mel bins, low/high_freq, dither, the sample
scale and snip_edges; its C++ command line has no snip_edges).
"""

import contextlib
import dataclasses
import json
import logging
import os
import tempfile
import warnings

import torch
from torch import nn

from tasr import audio
from tasr.models.ctc import BLANK
from tasr.models.encoder import Encoder
from tasr import __version__
from tasr.errors import TasrError
from tasr.files import atomic_write, make_folder
from tasr.text import UNK, tokenizer_from_state
from tasr.onnx_runtime import OnnxStream, require, session
from tasr.recognizer import Recognizer

MODEL_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
TOKENS_FILE = "tokens.txt"
OPSET = 18  # the dynamo exporter's lowest; onnxruntime 1.14 and later run it
INPUTS = ("x", "x_lens")
OUTPUTS = ("log_probs", "log_probs_len")
SHERPA_MODEL_TYPE = "zipformer2_ctc"
UNK_TEXT = "⁇"  # how tasr's tokenizers write <unk> in text
EXAMPLE_FRAMES = 400  # length of the example input the graph is traced with (any length works after)
QUANTIZED_OPS = ("MatMul",)  # as icefall's int8 exports: the subsampling convolutions stay float
# Front-end options sherpa-onnx's Python API cannot set, with the value it always uses
# (kaldi-native-fbank's defaults): a model with another value is not decoded right there.
SHERPA_FIXED = {
    "frame_length": 25.0, "frame_shift": 10.0, "preemphasis_coefficient": 0.97, "remove_dc_offset": True,
    "window_type": "povey", "round_to_power_of_two": True, "blackman_coeff": 0.42, "vtln_warp": 1.0,
    "use_energy": False, "energy_floor": 0.0, "use_log_fbank": True, "use_power": True, "subtract_mean": False,
}


class ExportedGraph(nn.Module):
    """What `model.onnx` holds: CMVN + encoder + CTC head of a `SpeechRecognizer` (eval mode).

    `forward(feats [N, T, F], lengths [N] frames) -> (log_probs [N, T', V], out_lengths [N])`, the
    numbers of `model.encode_features(*model.cmvn(...))` with the CMVN statistics as constants.
    """

    def __init__(self, model):
        super().__init__()
        self.encoder, self.ctc = model.encoder, model.ctc
        self.normalize = model.cmvn is not None
        if self.normalize:
            mean, scale = cmvn_constants(model)
            self.register_buffer("mean", mean)
            self.register_buffer("scale", scale)

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor):
        if self.normalize:
            valid = torch.arange(feats.shape[1], device=feats.device)[None, :] < lengths[:, None]
            feats = (feats - self.mean) * self.scale * valid[..., None]
        encoded, out_lengths = self.encoder(feats, lengths)
        return self.ctc(encoded), out_lengths


def cmvn_constants(model) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean [F], scale [F]) float32 of the model's CMVN, normalised = (feats - mean) * scale (0 and 1 without)."""
    F = model.frontend.num_features
    if model.cmvn is None:
        return torch.zeros(F), torch.ones(F)
    mean, std = model.cmvn.mean_std()
    scale = std.reciprocal() if bool(model.cmvn.norm_vars) else torch.ones_like(std)
    return mean.float(), scale.float()


def min_frames(model) -> int:
    """Fewest input frames the graph takes (one output frame of the subsampling)."""
    return model.encoder.subsample.right_context + 1


def fbank_options(model) -> dict:
    """Every Kaldi fbank option of the model's front-end, resolved (tasr's defaults filled in)."""
    frontend = model.frontend
    options = {}
    for group in (frontend.frame_opts, frontend.mel_opts, frontend.feat_opts):
        options.update(dataclasses.asdict(group))
    for name in ("num_ceps", "cepstral_lifter", "sample_rate"):  # mfcc-only; the rate has its own key
        options.pop(name, None)
    return options


def metadata(model) -> dict:
    """The ONNX metadata of the exported model (string values)."""
    encoder = model.encoder
    left, right = encoder.receptive_field()
    fbank = fbank_options(model)
    values = {
        "model_type": SHERPA_MODEL_TYPE,
        "version": "1",
        "model_author": "tasr",
        "comment": "tasr CTC model: Kaldi fbank [N, T, F] and frames [N] -> CTC log-probs [N, T', V] "
                   "and frames [N]; global CMVN inside the graph; blank id 0",
        "vocab_size": model.tokenizer.vocab_size,
        "subsampling_factor": encoder.subsampling,
        "blank_id": BLANK,
        "sample_rate": model.sample_rate,
        "feature_dim": model.frontend.num_features,
        "frame_shift_ms": fbank["frame_shift"],
        "frame_length_ms": fbank["frame_length"],
        "normalize_samples": int(not fbank["int16_scale"]),  # 1: waveforms in [-1, 1] (sherpa-onnx's name)
        "fbank": json.dumps(fbank, sort_keys=True),
        "cmvn": "global, inside the graph" if model.cmvn is not None else "none",
        "min_frames": min_frames(model),
        "left_frames": "unlimited" if left is None else left,  # receptive field, input frames
        "right_frames": "unlimited" if right is None else right,
        "tasr_version": __version__,
        "tasr_config": json.dumps(model.config, sort_keys=True),
        "tasr_tokenizer": json.dumps(model.tokenizer.to_state(), sort_keys=True),
    }
    return {key: str(value) for key, value in values.items()}


def sherpa_tokens(tokenizer) -> list[str]:
    """Token strings in id order as `tokens.txt` writes them."""
    return [UNK_TEXT if token == UNK else token for token in tokenizer.tokens]


def sherpa_incompatibilities(options: dict) -> list[str]:
    """What sherpa-onnx cannot follow in resolved fbank `options` (see `fbank_options`), one line each."""
    return [f"{name}={options[name]!r} (sherpa-onnx always uses {fixed!r})"
            for name, fixed in SHERPA_FIXED.items() if options.get(name, fixed) != fixed]


def export(model, folder, int8: bool = False, opset: int = OPSET) -> dict:
    """Write `model.onnx`, `tokens.txt` (and `model.int8.onnx` with `int8`) into `folder`.

    `model` is a `SpeechRecognizer` (moved to the CPU, eval mode); returns {file name: path} of
    what was written.
    """
    onnx = require("onnx")
    make_folder(folder)
    graph = ExportedGraph(model.cpu().eval()).eval()
    batch = torch.export.Dim("batch")
    frames = torch.export.Dim("frames", min=min_frames(model))
    length = max(EXAMPLE_FRAMES, 2 * min_frames(model))
    example = (torch.zeros(2, length, model.frontend.num_features), torch.tensor([length, length - 1]))
    with torch.no_grad(), _quiet_exporter():
        program = torch.onnx.export(graph, example, dynamo=True, opset_version=opset, input_names=list(INPUTS),
                                    output_names=list(OUTPUTS), dynamic_shapes=({0: batch, 1: frames}, {0: batch}),
                                    verbose=False)
    proto = program.model_proto
    onnx.helper.set_model_props(proto, metadata(model))
    written = {}
    path = os.path.join(folder, MODEL_FILE)
    with atomic_write(path, "wb") as f:
        f.write(proto.SerializeToString())
    written[MODEL_FILE] = path
    path = os.path.join(folder, TOKENS_FILE)
    with atomic_write(path, "w", encoding="utf-8") as f:
        f.writelines(f"{token} {i}\n" for i, token in enumerate(sherpa_tokens(model.tokenizer)))
    written[TOKENS_FILE] = path
    if int8:
        written[INT8_FILE] = quantize(written[MODEL_FILE], os.path.join(folder, INT8_FILE))
    return written


def quantize(source, target) -> str:
    """onnxruntime's dynamic int8 quantisation of `source` into `target` (written atomically), with
    the metadata of `source`."""
    onnx = require("onnx")
    quantization = require("onnxruntime.quantization")
    props = {p.key: p.value for p in onnx.load(source, load_external_data=False).metadata_props}
    with tempfile.TemporaryDirectory(dir=os.path.dirname(os.path.abspath(target)), prefix=".quantize.") as temp:
        out = os.path.join(temp, os.path.basename(target))
        with _quiet_exporter():
            quantization.quantize_dynamic(source, out, op_types_to_quantize=list(QUANTIZED_OPS),
                                          weight_type=quantization.QuantType.QInt8)
        proto = onnx.load(out)
    del proto.metadata_props[:]
    onnx.helper.set_model_props(proto, props)
    with atomic_write(target, "wb") as f:
        f.write(proto.SerializeToString())
    return os.fspath(target)


def read_metadata(path) -> dict:
    """The metadata of an ONNX file (string values); TasrError when it is not a tasr export."""
    runner = session(path, threads=1)
    values = dict(runner.get_modelmeta().custom_metadata_map)
    if values.get("model_author") != "tasr" or "tasr_config" not in values:
        raise TasrError(f"{path}: not a model exported by tasr (no tasr metadata)")
    return values


class OnnxModel(Recognizer):
    """An exported model run by onnxruntime, with what the transcription path asks of a `SpeechRecognizer`.

        model = OnnxModel("exp/onnx")                         # model.onnx (int8=True: model.int8.onnx)
        result = model.transcribe("talk.flac", beam=10)       # tasr.Result, as SpeechRecognizer.transcribe
        feats, frames = model.features(waveforms, lengths)    # Kaldi fbank with the model's options
        log_probs, out_lengths = model.encode_features(feats, frames)   # CMVN + encoder + CTC head

    `features` gives raw fbank frames (the CMVN is inside the graph), which `encode_features` takes;
    `encoder` is the model's `models.encoder.Encoder` on the meta device (no weights): its
    receptive field, subsampling and output lengths. `threads` sets onnxruntime's intra-op
    threads (None: its default, every core). `stream` runs `streaming.onnx` from the same folder
    (`tasr export --streaming`), whose chunk size was fixed at export.
    """

    device = torch.device("cpu")  # where inputs go; onnxruntime runs on the CPU
    streams = False  # the graph is offline: long files go in windows (`Transcriber.can_stream`)

    def __init__(self, folder, int8: bool = False, threads: int | None = None):
        if os.path.isfile(folder):
            raise TasrError(f"{folder}: is a file; the ONNX runtimes take the folder written by "
                            f"`tasr export MODEL -o DIR` (holding {MODEL_FILE} and {TOKENS_FILE})")
        self.folder, self.int8, self.threads = folder, int8, threads
        self.path = os.path.join(folder, INT8_FILE if int8 else MODEL_FILE)
        self.metadata = read_metadata(self.path)
        self.session = session(self.path, threads)
        self.config = json.loads(self.metadata["tasr_config"])
        self.tokenizer = tokenizer_from_state(json.loads(self.metadata["tasr_tokenizer"]))
        self.sample_rate = int(self.metadata["sample_rate"])
        self.frontend = audio.Fbank(sample_rate=self.sample_rate, **(self.config.get("fbank") or {}))
        self.subsampling = int(self.metadata["subsampling_factor"])
        self.min_frames = int(self.metadata["min_frames"])
        encoder_config = {"input_dim": self.frontend.num_features,
                          "frame_shift_ms": self.frontend.frame_opts.frame_shift, **self.config["encoder"]}
        with torch.device("meta"):
            self.encoder = Encoder(**encoder_config)
        self._decoders = {}  # DecodingOptions -> decoder
        self._stream = None  # an OnnxStream whose session the streams share, once one is asked for

    def log_probs(self, feats, lengths):
        """feats [N, T, F] (T >= `min_frames`), lengths [N] frames -> (log_probs [N, T', V], out_lengths [N]) tensors."""
        feats = torch.as_tensor(feats, dtype=torch.float32).cpu()
        lengths = torch.as_tensor(lengths).long().cpu()
        if feats.dim() != 3 or feats.shape[1] < self.min_frames:
            raise TasrError(f"{self.path}: needs frames [N, T, F] with T >= {self.min_frames}, "
                            f"got {list(feats.shape)}")
        log_probs, out_lengths = self.session.run(
            list(OUTPUTS), {INPUTS[0]: feats.contiguous().numpy(), INPUTS[1]: lengths.numpy()})
        return torch.from_numpy(log_probs), torch.from_numpy(out_lengths)

    # ---- what the transcription path calls, as on a SpeechRecognizer -----------------------
    def features(self, waveforms: torch.Tensor, lengths: torch.Tensor | None = None):
        """waveforms [N, S] in [-1, 1] at `sample_rate`, lengths [N] samples -> (feats [N, T, F], frames [N])."""
        return self.frontend(waveforms.cpu(), None if lengths is None else lengths.cpu())

    def encode_features(self, feats: torch.Tensor, frame_lengths: torch.Tensor):
        """feats [N, T, F] from `features` (any T: shorter than `min_frames` is padded, as the
        encoder pads) -> (log_probs [N, T', V], out_lengths [N])."""
        if feats.shape[1] < self.min_frames:
            feats = nn.functional.pad(feats, (0, 0, 0, self.min_frames - feats.shape[1]))
        return self.log_probs(feats, frame_lengths)

    def __call__(self, waveforms: torch.Tensor, lengths: torch.Tensor):
        """waveforms [N, S], lengths [N] samples -> (log_probs [N, T', V], out_lengths [N])."""
        return self.encode_features(*self.features(waveforms, lengths))

    def transcribe_batch(self, waveforms: torch.Tensor, lengths: torch.Tensor, beam: int | None = None) -> list[str]:
        """Texts of waveforms [N, S] (lengths [N] samples) at `sample_rate` (greedy unless `beam`)."""
        log_probs, out_lengths = self(waveforms, lengths)
        return [self.tokenizer.decode(ids) for ids in self.decode(log_probs, out_lengths, beam=beam)]

    def log_prob_stream(self) -> OnnxStream:
        """Raw fbank frames in, CTC log-probs out, chunk by chunk, through the folder's streaming graph."""
        if self._stream is None:
            self._stream = OnnxStream(self.folder, int8=self.int8, threads=self.threads)
        return self._stream.new_stream()


def sherpa_feature_options(values: dict) -> dict:
    """Keyword arguments of sherpa-onnx's `FeatureExtractorConfig` for metadata `values`
    (TasrError naming what sherpa-onnx cannot follow)."""
    options = json.loads(values["fbank"])
    problems = sherpa_incompatibilities(options)
    if problems:
        raise TasrError(f"sherpa-onnx cannot compute this model's features: {'; '.join(problems)}")
    return {"sampling_rate": int(values["sample_rate"]), "feature_dim": options["num_mel_bins"],
            "low_freq": options["low_freq"], "high_freq": options["high_freq"], "dither": options["dither"],
            "normalize_samples": values["normalize_samples"] == "1", "snip_edges": options["snip_edges"]}


def sherpa_recognizer(folder, int8: bool = False, threads: int = 1):
    """A `sherpa_onnx.OfflineRecognizer` (greedy CTC) for an exported model, with its front-end options."""
    sherpa_onnx = require("sherpa_onnx")
    model = os.path.join(folder, INT8_FILE if int8 else MODEL_FILE)
    tokens = os.path.join(folder, TOKENS_FILE)
    if not os.path.isfile(tokens):
        raise TasrError(f"{tokens}: not found (written by tasr export beside {MODEL_FILE})")
    config = sherpa_onnx.OfflineRecognizerConfig(
        feat_config=sherpa_onnx.FeatureExtractorConfig(**sherpa_feature_options(read_metadata(model))),
        model_config=sherpa_onnx.OfflineModelConfig(
            zipformer_ctc=sherpa_onnx.OfflineZipformerCtcModelConfig(model=model), tokens=tokens,
            num_threads=threads, provider="cpu"),
        decoding_method="greedy_search")
    # As sherpa-onnx's own from_* constructors build it (they set no feature options but two).
    recognizer = sherpa_onnx.OfflineRecognizer.__new__(sherpa_onnx.OfflineRecognizer)
    recognizer.recognizer = sherpa_onnx.lib._sherpa_onnx.OfflineRecognizer(config)
    recognizer.config = config
    return recognizer


@contextlib.contextmanager
def _quiet_exporter():
    """No progress lines, warnings or notes about torchvision from the exporter and the quantiser."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "torch.export", "root")]
    levels = [logger.level for logger in loggers]
    with warnings.catch_warnings(), contextlib.redirect_stdout(open(os.devnull, "w")) as devnull:
        warnings.simplefilter("ignore")
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for logger, level in zip(loggers, levels):
                logger.setLevel(level)
            devnull.close()


def max_difference(model, onnx_model: "OnnxModel", seconds=(3.0, 1.3)) -> float:
    """Largest |log-prob difference| between `model` (PyTorch) and `onnx_model` over the valid
    frames of a seeded batch of noise, one waveform per entry of `seconds`."""
    generator = torch.Generator().manual_seed(0)
    lengths = torch.tensor([int(s * model.sample_rate) for s in seconds])
    waveforms = 0.1 * torch.randn(len(seconds), int(lengths.max()), generator=generator)
    with torch.inference_mode():
        feats, frames = model.features(waveforms, lengths)
        raw, _ = model.frontend(waveforms, lengths)
        reference, out_lengths = model.encode_features(feats, frames)
    log_probs, _ = onnx_model.log_probs(raw, frames)
    return max(float((log_probs[i, :n] - reference[i, :n]).abs().max()) for i, n in enumerate(out_lengths.tolist()))
