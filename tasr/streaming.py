"""Streaming recognition: audio chunks in, partial text out, final log-probs equal to offline.

    recognizer = StreamingRecognizer(model)
    for chunk in chunks:                    # waveform pieces [n] at model.sample_rate, any n
        partial = recognizer.accept(chunk)  # greedy text of everything decoded so far
    log_probs = recognizer.finish()         # [T', V]: what model(waveform) gives offline

The chunk goes through the online front-end (`audio.OnlineFbank`, same frames as offline) and
the model's CMVN, then `models.windowing.StreamingEncoder`: each step re-runs the encoder on the
left receptive field plus the new frames and keeps the output frames whose right context has
arrived (the model's look-ahead, `encoder.lookahead_ms`, is the latency beyond the chunk). So
the log-probs, hence the final text, equal offline decoding. The cost of a step is about
(receptive field + chunk) frames: larger chunks cost less per second of audio.
"""

import torch

import audio
from models.ctc import BLANK
from models.windowing import StreamingEncoder


class StreamingRecognizer:
    """One stream through a `SpeechRecognizer` (in eval mode); see the module docstring."""

    def __init__(self, model):
        self.model = model
        self.device = next(model.parameters()).device
        self.frontend = audio.OnlineFbank(model.sample_rate, **dict(model.config.get("fbank") or {})).to(self.device)
        if self.frontend.module.feat_opts.subtract_mean:
            raise ValueError("the model's front-end subtracts the utterance mean (subtract_mean), "
                             "which needs the whole utterance: it cannot stream")
        encoder = model.encoder
        self.encoder = StreamingEncoder(model.encode_features, encoder.output_lengths,
                                        encoder.receptive_field(), encoder.subsampling)
        self.pieces = []  # log-prob frames [k, V] so far
        self.tokens = []  # greedy tokens so far
        self.last = BLANK  # best token of the last frame (repeats across steps merge)

    def _features(self, frames: torch.Tensor) -> torch.Tensor:
        return frames if self.model.cmvn is None else self.model.cmvn(frames)

    def _take(self, log_probs) -> None:
        if log_probs is None or log_probs.shape[0] == 0:
            return
        log_probs = log_probs.float().cpu()
        self.pieces.append(log_probs)
        for token in log_probs.argmax(dim=-1).tolist():
            if token != BLANK and token != self.last:
                self.tokens.append(token)
            self.last = token

    @property
    def text(self) -> str:
        """Greedy text of the frames decoded so far."""
        return self.model.tokenizer.decode(self.tokens)

    @torch.inference_mode()
    def accept(self, chunk: torch.Tensor) -> str:
        """Add waveform samples [n]; returns the partial (greedy) text so far."""
        frames = self.frontend.accept_waveform(chunk.to(self.device))
        if frames.shape[0]:
            self._take(self.encoder.accept(self._features(frames)))
        return self.text

    @torch.inference_mode()
    def finish(self) -> torch.Tensor:
        """End of the stream: the log-probs [T', V] of the whole stream (CPU), as offline."""
        frames = self.frontend.input_finished()
        if frames.shape[0]:
            self._take(self.encoder.accept(self._features(frames)))
        if self.encoder.received:
            self._take(self.encoder.finish())
        if not self.pieces:
            return torch.zeros(0, self.model.tokenizer.vocab_size)
        return torch.cat(self.pieces)
