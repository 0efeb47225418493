"""Streaming recognition: audio chunks in, partial text out, final log-probs equal to offline.

    recognizer = StreamingRecognizer(model)
    for chunk in chunks:                    # waveform pieces [n] at model.sample_rate, any n
        partial = recognizer.accept(chunk)  # greedy text of everything decoded so far
    log_probs = recognizer.finish()         # [T', V]: what model(waveform) gives offline

The chunk goes through the online front-end (`audio.OnlineFbank`, same frames as offline) and
the model's log-prob stream (`model.log_prob_stream()`): for a `SpeechRecognizer`,
`EncoderLogProbs` (its CMVN, the encoder's stream `Encoder.stream()`, which carries each layer's
caches and emits the frames whose look-ahead has arrived, and the CTC head); for an exported
model (`tasr.export.OnnxModel`), the streaming graph in onnxruntime (`tasr.onnx_runtime.OnnxStream`).
So the log-probs, hence the final text, equal offline decoding, and the cost of a chunk is that of
its own frames, however long the stream has run.
"""

import torch

from tasr import audio
from tasr.models.ctc import BLANK
from tasr.models.streaming import linear, stream_linear
from tasr.text import WORD_BOUNDARY


class EncoderLogProbs:
    """Raw fbank frames [n, F] -> CTC log-probs [k, V] (CPU) through a `SpeechRecognizer`'s CMVN,
    encoder stream and CTC head (eval mode: no dropout); `finish()` gives the frames still waiting."""

    def __init__(self, model):
        self.cmvn = model.cmvn
        self.encoder = model.encoder.stream()
        self.head = stream_linear(model.ctc.linear)

    def _log_probs(self, encoded: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(linear(encoded, *self.head).float(), dim=-1).cpu()

    @torch.inference_mode()
    def accept(self, frames: torch.Tensor) -> torch.Tensor:
        return self._log_probs(self.encoder.feed(frames if self.cmvn is None else self.cmvn(frames)))

    @torch.inference_mode()
    def finish(self) -> torch.Tensor:
        return self._log_probs(self.encoder.flush())


class StreamingRecognizer:
    """One stream through a model (a `SpeechRecognizer` in eval mode or an `OnnxModel`); see the module docstring."""

    def __init__(self, model):
        self.model, self.device = model, model.device
        self.frontend = audio.OnlineFbank(model.sample_rate, **dict(model.config.get("fbank") or {})).to(self.device)
        if self.frontend.module.feat_opts.subtract_mean:
            raise ValueError("the model's front-end subtracts the utterance mean (subtract_mean), "
                             "which needs the whole utterance: it cannot stream")
        self.log_probs = model.log_prob_stream()
        self.pieces = []  # log-prob frames [k, V] so far
        self.tokens = []  # greedy tokens so far
        self.last = BLANK  # best token of the last frame (repeats across steps merge)
        self.word_starts = {i for i, token in enumerate(model.tokenizer.tokens) if token.startswith(WORD_BOUNDARY)}
        self.settled = (0, "")  # (tokens, their text) before the last word's first token
        self.decoded = (0, "")  # (tokens, text) of the last decoding

    def _take(self, log_probs) -> None:
        """Log-probs [k, V] (a tensor or an array) -> kept, with their greedy tokens."""
        if log_probs.shape[0] == 0:
            return
        log_probs = torch.as_tensor(log_probs)
        self.pieces.append(log_probs)
        for token in log_probs.argmax(dim=-1).tolist():
            if token != BLANK and token != self.last:
                self.tokens.append(token)
            self.last = token

    @property
    def text(self) -> str:
        """Greedy text of the frames decoded so far. Only the tokens of the last word are decoded
        again (when one was added), so a long stream costs no more per chunk than a short one."""
        if self.decoded[0] != len(self.tokens):
            decode = self.model.tokenizer.decode
            done, text = self.settled
            start = max((i for i in range(done, len(self.tokens)) if self.tokens[i] in self.word_starts), default=done)
            if start > done:  # words before `start` are complete: decode them once
                done, text = start, _join(text, decode(self.tokens[done:start]))
                self.settled = (done, text)
            self.decoded = (len(self.tokens), _join(text, decode(self.tokens[done:])))
        return self.decoded[1]

    @torch.inference_mode()
    def accept(self, chunk: torch.Tensor) -> str:
        """Add waveform samples [n]; returns the partial (greedy) text so far."""
        frames = self.frontend.accept_waveform(chunk.to(self.device))
        if frames.shape[0]:
            self._take(self.log_probs.accept(frames))
        return self.text

    @torch.inference_mode()
    def finish(self) -> torch.Tensor:
        """End of the stream: the log-probs [T', V] of the whole stream (CPU), as offline."""
        frames = self.frontend.input_finished()
        if frames.shape[0]:
            self._take(self.log_probs.accept(frames))
        self._take(self.log_probs.finish())
        if not self.pieces:
            return torch.zeros(0, self.model.tokenizer.vocab_size)
        return torch.cat(self.pieces)


def _join(text: str, more: str) -> str:
    """Two decoded pieces of text, a space between them where both have words."""
    return f"{text} {more}" if text and more else text or more
