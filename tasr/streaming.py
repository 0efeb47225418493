"""Streaming recognition: audio chunks in, partial text out, final log-probs equal to offline.

    recognizer = StreamingRecognizer(model)
    for chunk in chunks:                    # waveform pieces [n] at model.sample_rate, any n
        partial = recognizer.accept(chunk)  # greedy text of everything decoded so far
    log_probs = recognizer.finish()         # [T', V]: what model(waveform) gives offline

The chunk goes through the online front-end (`audio.OnlineFbank`, same frames as offline), the
model's CMVN, the encoder's stream (`Encoder.stream()`, which carries each layer's caches and
emits the frames whose look-ahead has arrived: `encoder.lookahead_ms` is the latency beyond the
chunk) and the CTC head. So the log-probs, hence the final text, equal offline decoding, and the
cost of a chunk is that of its own frames, however long the stream has run.
"""

import torch

from tasr import audio
from tasr.models.ctc import BLANK
from tasr.models.streaming import linear, stream_linear


class StreamingRecognizer:
    """One stream through a `SpeechRecognizer` (in eval mode); see the module docstring."""

    def __init__(self, model):
        self.model = model
        self.device = next(model.parameters()).device
        self.frontend = audio.OnlineFbank(model.sample_rate, **dict(model.config.get("fbank") or {})).to(self.device)
        if self.frontend.module.feat_opts.subtract_mean:
            raise ValueError("the model's front-end subtracts the utterance mean (subtract_mean), "
                             "which needs the whole utterance: it cannot stream")
        self.encoder = model.encoder.stream()
        self.head = stream_linear(model.ctc.linear)  # the CTC head's output layer (eval: no dropout)
        self.pieces = []  # log-prob frames [k, V] so far
        self.tokens = []  # greedy tokens so far
        self.last = BLANK  # best token of the last frame (repeats across steps merge)
        self.decoded = (0, "")  # (tokens, text) of the last decoding

    def _features(self, frames: torch.Tensor) -> torch.Tensor:
        return frames if self.model.cmvn is None else self.model.cmvn(frames)

    def _take(self, encoded: torch.Tensor) -> None:
        """Encodings [k, d] -> their log-probs and greedy tokens."""
        if encoded.shape[0] == 0:
            return
        log_probs = torch.log_softmax(linear(encoded, *self.head).float(), dim=-1).cpu()
        self.pieces.append(log_probs)
        for token in log_probs.argmax(dim=-1).tolist():
            if token != BLANK and token != self.last:
                self.tokens.append(token)
            self.last = token

    @property
    def text(self) -> str:
        """Greedy text of the frames decoded so far (decoded again only when a token was added)."""
        if self.decoded[0] != len(self.tokens):
            self.decoded = (len(self.tokens), self.model.tokenizer.decode(self.tokens))
        return self.decoded[1]

    @torch.inference_mode()
    def accept(self, chunk: torch.Tensor) -> str:
        """Add waveform samples [n]; returns the partial (greedy) text so far."""
        frames = self.frontend.accept_waveform(chunk.to(self.device))
        if frames.shape[0]:
            self._take(self.encoder.feed(self._features(frames)))
        return self.text

    @torch.inference_mode()
    def finish(self) -> torch.Tensor:
        """End of the stream: the log-probs [T', V] of the whole stream (CPU), as offline."""
        frames = self.frontend.input_finished()
        if frames.shape[0]:
            self._take(self.encoder.feed(self._features(frames)))
        self._take(self.encoder.flush())
        if not self.pieces:
            return torch.zeros(0, self.model.tokenizer.vocab_size)
        return torch.cat(self.pieces)
