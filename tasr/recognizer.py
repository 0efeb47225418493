"""What the transcription path asks of a model, whatever runs it (PyTorch or onnxruntime).

`SpeechRecognizer` (tasr.model) and `OnnxModel` (tasr.export) both derive from `Recognizer`. It
is the one owner of time: every seconds <-> frames conversion goes through the front-end's frame
shift here. A subclass provides `frontend` (an `audio.Fbank`), `sample_rate` (Hz), `encoder`
(for its subsampling), `tokenizer`, `_decoders` (a dict, empty at first) and, to stream,
`log_prob_stream()` (raw fbank frames in, CTC log-probs out: `tasr.streaming`).
"""

import torch

from tasr.decoding import DecodingOptions, make_decoder
from tasr.transcription import stream, transcribe


class Recognizer:
    """Times, decoding and `transcribe` for a model with a front-end, an encoder and a tokenizer."""

    # ---- time ------------------------------------------------------------------------------
    @property
    def frame_shift_s(self) -> float:
        """Seconds between the front-end's frames (its frame_shift option, 10 ms by default)."""
        return self.frontend.frame_opts.window_shift / self.sample_rate

    @property
    def output_frame_s(self) -> float:
        """Seconds per output frame (log-prob frame): subsampling x the front-end's frame shift."""
        return self.encoder.subsampling * self.frame_shift_s

    @property
    def frame_ms(self) -> float:
        """Milliseconds per output frame."""
        return 1000 * self.output_frame_s

    def num_frames(self, num_samples: int) -> int:
        """Front-end frames of a waveform of `num_samples` samples."""
        return int(self.frontend.frame_lengths(torch.tensor([num_samples]))[0])

    # ---- decoding --------------------------------------------------------------------------
    def decoder(self, options: DecodingOptions):
        """The search `options` describe (`tasr.decoding.make_decoder`), built once per options."""
        if options not in self._decoders:
            self._decoders[options] = make_decoder(self.tokenizer, options)
        return self._decoders[options]

    def decode(self, log_probs, out_lengths, options: DecodingOptions | None = None, **settings):
        """Token-id lists from log_probs [B, T', V] (out_lengths [B]): greedy unless `options`
        (or `settings`, the fields of DecodingOptions, e.g. beam=10) say otherwise."""
        return self.decoder(options or DecodingOptions(**settings))(log_probs, out_lengths)

    transcribe = transcribe  # (audio, beam=None, ...) -> tasr.Result: `tasr.transcription.transcribe`
    stream = stream  # (chunks of samples) -> partial Results, then the final one: `tasr.transcription.stream`
