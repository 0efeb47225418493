"""`SpeechRecognizer`: the whole CTC model, from waveforms to log-probabilities, in one file.

    waveforms [B, N] --audio.Fbank--> feats [B, T, F] --GlobalCMVN (optional)--> normalised feats
      --SpecAugment (training only)--> --Encoder--> [B, T', d] --CTCHead--> log_probs [B, T', V]

It is built from a plain config dict (what a recipe's yaml holds) and a tokenizer:

    config = {
        "sample_rate": 16000,                # Hz the model expects; audio is resampled to it
        "fbank": {"num_mel_bins": 80},       # options of audio.Fbank (Kaldi names and defaults)
        "encoder": {...},                    # keyword arguments of models.encoder.Encoder
        "specaugment": {...} or None,        # keyword arguments of audio.SpecAugment
        "ctc_dropout": 0.0,                  # dropout before the output layer
    }

The model file (`save`/`load`) is one `torch.save` dict of plain values and tensors, so it loads
with `torch.load(weights_only=True)`, which never runs code from the file:

    {"format": "tasr-model", "version": 1, "config": {...}, "tokenizer": {...},
     "cmvn": CMVN state_dict or None, "state_dict": the model's weights (CMVN excluded),
     "info": {...} free-form (e.g. training steps)}
"""

import copy
import os
import pickle
import re
import warnings

import torch
from torch import nn

from tasr import audio
from tasr.models.ctc import CTCHead
from tasr.models.encoder import Encoder
from tasr.device import pick_device
from tasr.errors import TasrError
from tasr.files import atomic_write
from tasr.text import tokenizer_from_state
from tasr.recognizer import Recognizer
from tasr.streaming import EncoderLogProbs

FORMAT = "tasr-model"
VERSION = 1


class SpeechRecognizer(Recognizer, nn.Module):
    """Front-end + optional CMVN + SpecAugment (training only) + Encoder + CTC head.

    config: see the module docstring; tokenizer: from `tasr.text`; cmvn: an `audio.GlobalCMVN`
    with statistics (or None for none).
    """

    def __init__(self, config: dict, tokenizer, cmvn=None):
        super().__init__()
        self.config = copy.deepcopy(config)
        self.tokenizer = tokenizer
        unknown = set(config) - {"sample_rate", "fbank", "encoder", "specaugment", "ctc_dropout"}
        if unknown:
            raise TasrError(f"model config: unknown setting(s) {', '.join(sorted(unknown))} (expected sample_rate, "
                            "fbank, encoder, specaugment, ctc_dropout)")
        self.sample_rate = int(config.get("sample_rate", 16000))
        fbank_options = dict(config.get("fbank") or {})
        augment = config.get("specaugment")
        encoder_config = dict(config.get("encoder") or {})
        part = "fbank"
        try:
            self.frontend = audio.Fbank(sample_rate=self.sample_rate, **fbank_options)
            part = "specaugment"
            self.specaugment = audio.SpecAugment(**augment) if augment else None
            part = "encoder"
            encoder_config.setdefault("input_dim", self.frontend.num_features)
            shift_ms = self.frontend.frame_opts.frame_shift
            if encoder_config.setdefault("frame_shift_ms", shift_ms) != shift_ms:
                raise ValueError(f"frame_shift_ms {encoder_config['frame_shift_ms']} differs from the "
                                 f"front-end's frame_shift {shift_ms} (set it under fbank only)")
            self.encoder = Encoder(**encoder_config)
        except (TypeError, ValueError, ArithmeticError, RuntimeError) as error:  # torch: RuntimeError for bad sizes
            raise TasrError(f"model config, {part}: {error}") from None
        self.cmvn = cmvn
        self.ctc = CTCHead(self.encoder.d_model, tokenizer.vocab_size, config.get("ctc_dropout", 0.0))
        self._decoders = {}  # DecodingOptions -> decoder

    # ---- the parts -------------------------------------------------------------------------
    def features(self, waveforms: torch.Tensor, lengths: torch.Tensor):
        """waveforms [B, N] in [-1, 1] at `sample_rate`, lengths [B] samples -> (feats [B, T, F], frame_lengths [B]).

        Fbank, then CMVN when the model has it. No augmentation here (see `encode_features`).
        """
        feats, frame_lengths = self.frontend(waveforms, lengths)
        if self.cmvn is not None:
            feats = self.cmvn(feats, frame_lengths)
        return feats, frame_lengths

    def encode_features(self, feats: torch.Tensor, frame_lengths: torch.Tensor, intermediate: tuple = ()):
        """Normalised feats [B, T, F] (from `features`) -> (log_probs [B, T', V], out_lengths [B]).

        Applies SpecAugment first when the model is in training mode and has it. With
        `intermediate` block numbers, also the list of the CTC head's log_probs [B, T', V] on those
        blocks' outputs (intermediate CTC, Lee & Watanabe 2021).
        """
        if self.specaugment is not None and self.training:
            feats = self.specaugment(feats, frame_lengths)
        if not intermediate:
            encoded, out_lengths = self.encoder(feats, frame_lengths)
            return self.ctc(encoded), out_lengths
        encoded, out_lengths, taken = self.encoder(feats, frame_lengths, intermediate)
        return self.ctc(encoded), out_lengths, [self.ctc(x) for x in taken]

    def forward(self, waveforms: torch.Tensor, lengths: torch.Tensor, intermediate: tuple = ()):
        """waveforms [B, N], lengths [B] samples -> (log_probs [B, T', V], out_lengths [B]), and with
        `intermediate` the list of intermediate log_probs (`encode_features`)."""
        return self.encode_features(*self.features(waveforms, lengths), intermediate)

    @property
    def device(self) -> torch.device:
        """Where the weights are (inputs go there)."""
        return next(self.parameters()).device

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def describe(self) -> str:
        """A few lines saying what this model is."""
        enc = self.config.get("encoder") or {}
        e = self.encoder
        left, right = e.receptive_field()
        lookahead = "unlimited" if e.lookahead_ms is None else f"{e.lookahead_ms:.0f} ms"
        attention = f"left={enc.get('left')}, right={enc.get('right')}"
        return "\n".join([
            f"{enc.get('block', 'conformer')}-CTC, {len(e.blocks)} blocks, d_model={e.d_model}, "
            f"{self.num_parameters / 1e6:.2f}M parameters",
            f"attention context (subsampled frames): {attention}; subsampling {e.subsampling}x "
            f"({self.frame_ms:.0f} ms per output frame)",
            f"receptive field ({1000 * self.frame_shift_s:g} ms frames): left={left}, right={right}; "
            f"look-ahead {lookahead}",
            f"tokenizer: {self.tokenizer.kind}, {self.tokenizer.vocab_size} tokens (blank included); "
            f"input {self.sample_rate} Hz; CMVN {'yes' if self.cmvn is not None else 'no'}",
        ])

    # ---- transcription (see also `Recognizer`) ---------------------------------------------
    @torch.inference_mode()
    def transcribe_batch(self, waveforms: torch.Tensor, lengths: torch.Tensor, beam: int | None = None) -> list[str]:
        """Texts for waveforms [B, N] (lengths [B] samples) at the model's sample rate (in eval mode)."""
        device = next(self.parameters()).device
        was_training = self.training
        self.eval()
        try:
            log_probs, out_lengths = self(waveforms.to(device), lengths.to(device))
        finally:
            self.train(was_training)
        return [self.tokenizer.decode(ids) for ids in self.decode(log_probs, out_lengths, beam=beam)]

    def log_prob_stream(self) -> EncoderLogProbs:
        """Raw fbank frames in, CTC log-probs out, chunk by chunk (eval mode; `tasr.streaming`)."""
        return EncoderLogProbs(self)

    # ---- the model file --------------------------------------------------------------------
    def file_state(self, info: dict | None = None) -> dict:
        """Everything `from_file_state` needs, as plain values and CPU tensors."""
        weights = {k: v.detach().cpu() for k, v in self.state_dict().items() if not k.startswith("cmvn.")}
        cmvn = None if self.cmvn is None else {k: v.detach().cpu() for k, v in self.cmvn.state_dict().items()}
        return {"format": FORMAT, "version": VERSION, "config": copy.deepcopy(self.config),
                "tokenizer": self.tokenizer.to_state(), "cmvn": cmvn, "state_dict": weights,
                "info": dict(info or {})}

    @classmethod
    def from_file_state(cls, state: dict, strict: bool = True):
        """The model a `file_state()` dict describes (raises TasrError when it is not one)."""
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            raise TasrError("not a tasr model (no 'format': 'tasr-model' entry)")
        if state.get("version", 0) > VERSION:
            raise TasrError(f"model format version {state['version']} is newer than this tasr reads ({VERSION})")
        try:
            cmvn = None if state.get("cmvn") is None else audio.GlobalCMVN.from_state_dict(state["cmvn"])
        except (AttributeError, KeyError, TypeError, ValueError, RuntimeError) as error:
            raise TasrError(f"its CMVN statistics are not readable ({' '.join(str(error).split())})") from None
        try:
            model = cls(state["config"], tokenizer_from_state(state["tokenizer"]), cmvn)
            missing, unexpected = model.load_state_dict(state["state_dict"], strict=False)
        except (KeyError, TypeError, ValueError, RuntimeError) as error:
            raise TasrError(f"the model does not match its config ({error})") from None
        if cmvn is not None and (cmvn.num_features != model.frontend.num_features or float(cmvn.count) <= 0):
            raise TasrError(f"its CMVN statistics are not usable ({cmvn.num_features} features over "
                            f"{float(cmvn.count):.0f} frames; the front-end gives {model.frontend.num_features})")
        missing = [k for k in missing if not k.startswith("cmvn.")]
        if strict and (missing or unexpected):
            raise TasrError(f"the weights do not match the config: missing {missing[:5]}, unexpected {unexpected[:5]}")
        model.info = dict(state.get("info") or {})
        return model

    def save(self, path, info: dict | None = None) -> None:
        """Write the model file atomically (a temporary file in the same folder, then a rename)."""
        with atomic_write(path, "wb") as f:
            torch.save(self.file_state(info), f)

    @classmethod
    def load(cls, path, map_location="cpu"):
        """The model in `path` (written by `save`), in eval mode, on `map_location`."""
        state = load_file(path, map_location)
        try:
            model = cls.from_file_state(state)
        except TasrError as error:
            raise TasrError(f"{path}: {error}") from None
        return model.to(map_location).eval()


def load_model(path, device="auto") -> SpeechRecognizer:
    """The model in the file `path`, in eval mode, on `device` (auto, cpu, cuda or cuda:N)."""
    return SpeechRecognizer.load(path, map_location=pick_device(device))


def load_file(path, map_location="cpu", what="model file"):
    """torch.load(weights_only=True) with one-line errors that name the file (a tasr `what`) and the reason."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise TasrError(f"{path}: {what} not found")
    if os.path.isdir(path):
        raise TasrError(f"{path}: is a folder, not a {what}")
    with open(path, "rb") as f:
        magic = f.read(4)
    if not magic.startswith(b"PK"):  # torch.save files are zip archives
        raise TasrError(f"{path}: not a tasr {what} (not a PyTorch zip archive)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's notes on foreign pickle protocols
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:  # torch's text suggests weights_only=False: never pass that on
        raise TasrError(f"{path}: not a tasr {what} (it holds Python objects other than plain values "
                        "and tensors, which are not loaded for safety)") from None
    except Exception as error:  # zip/EOF/OS errors for truncated or damaged files
        reason = re.sub(r"\[enforce fail at [^]]*\]", "", str(error)).strip(" .\n")  # torch's C++ source lines
        reason = reason.splitlines()[0].split(". ")[0] if reason else "not laid out as torch.save writes"
        if "weights_only" in reason:
            reason = "it cannot be read as plain values and tensors"
        raise TasrError(f"{path}: not a readable tasr {what}, truncated or damaged "
                        f"({type(error).__name__}: {reason})") from None
