"""One recording of any length in bounded memory: blocks of samples in, final segments out.

    long = LongTranscription(model, spans, memory_bytes=128 * 2**20)
    for block in audio.stream_blocks(path, model.sample_rate, 30):
        writers.write(long.accept(block))           # the segments no later audio can change
    writers.write(long.finish())                     # the rest; long.duration, long.text

Each stage keeps only what its next output needs, whatever the length of the recording:

- the online front-end (`audio.OnlineFbank`, the offline frames) and the model's CMVN;
- the encoder's stream (`Encoder.stream()`: each layer's caches, no frame encoded twice), fed
  chunks of the most frames whose activations fit `memory_bytes` (`models.memory`);
- the CTC head's log-probs since the last cut: a cut falls in the middle of every pause (a run
  of at least `chunk_pause_s` of blanks, as `models.ctc.pause_chunks` cuts), so decoding chunk by
  chunk gives the tokens of the whole recording, greedy or beam. Without a pause for
  `MAX_PENDING_S`, greedy cuts where the best token changes (still exact), beam search cuts there
  too (it then decodes that stretch in two parts);
- the token spans of the word not yet complete (at most `MAX_WORD_TOKENS`), the words `tasr.timestamps.SoundSnapper` has not
  snapped yet (it keeps about 10 minutes of 10 ms energies) and the segments
  `tasr.subtitles.Segmenter` has not closed.

Word times are in seconds from the start of the recording. The result is the one of the whole
recording at once (`Transcriber.result`), to float rounding.
"""

import torch

from tasr import audio
from tasr.audio.energy import OnlineEnergy
from tasr.models.ctc import BLANK
from tasr.models.memory import frames_for_budget
from tasr.subtitles import Segmenter
from tasr.timestamps import SoundSnapper, word_starts, words_from_spans

MAX_PENDING_S = 600.0  # seconds of log-probs kept at most while waiting for a pause


class LongTranscription:
    """See the module docstring. `spans(log_probs [T, V]) -> token spans` decodes one stretch
    between pauses (`Transcriber.spans`); raises ValueError when the model cannot stream."""

    def __init__(self, model, spans, memory_bytes: int, pause_s: float = 0.3, chunk_pause_s: float = 0.4,
                 snap: bool = True):
        self.model, self.decode_spans, self.pause_s, self.snap = model, spans, pause_s, snap
        self.device = next(model.parameters()).device
        self.frontend = audio.OnlineFbank(model.sample_rate, **dict(model.config.get("fbank") or {})).to(self.device)
        if self.frontend.module.feat_opts.subtract_mean:
            raise ValueError("the model's front-end subtracts the utterance mean, which needs the whole input")
        encoder = model.encoder
        self.encoder = encoder.stream()
        carried = encoder.subsample.right_context + encoder.subsampling  # input frames the stream holds back
        self.chunk = max(1, frames_for_budget(encoder, memory_bytes, self.frontend.num_features) - carried)
        self.feats = []  # feature frames not yet encoded, [n, F] pieces
        self.num_feats = 0
        self.min_pause = max(1, round(chunk_pause_s / model.output_frame_s))
        self.max_pending = round(MAX_PENDING_S / model.output_frame_s)
        self.log_probs = torch.zeros(0, model.tokenizer.vocab_size)  # output frames from `cut` on
        self.cut = 0
        self.spans = []  # token spans of the word not yet complete
        self.energy = OnlineEnergy(model.sample_rate)
        self.snapper = SoundSnapper()
        self.segmenter = Segmenter()
        self.samples = 0
        self.words = []  # word texts, for `text`

    @property
    def duration(self) -> float:
        """Seconds of audio received."""
        return self.samples / self.model.sample_rate

    @property
    def text(self) -> str:
        return " ".join(self.words)

    @torch.inference_mode()
    def accept(self, block: torch.Tensor) -> list:
        """Samples [n] at the model's rate -> the `Segment`s final now."""
        self.samples += block.shape[0]
        self._features(self.frontend.accept_waveform(block.to(self.device)))
        self.snapper.add_energies(self.energy.accept(block))
        return self._segments(self._words(final=False))

    @torch.inference_mode()
    def finish(self) -> list:
        """End of the recording: the remaining `Segment`s."""
        self._features(self.frontend.input_finished(), last=True)
        self.snapper.add_energies(self.energy.finish())
        words = self._words(final=True)
        if self.snap:
            self.snapper.add_words(words)
            words = self.snapper.finish()
        duration = self.duration
        for w in words:  # the last frames can reach past the end of the audio by a fraction of a frame
            w.start, w.end = min(w.start, duration), min(w.end, duration)
        self.words += [w.text for w in words]
        return self.segmenter.add(words, seen_s=0.0) + self.segmenter.finish(duration)

    def _features(self, frames: torch.Tensor, last: bool = False) -> None:
        """New feature frames [n, F] -> encoded chunk by chunk -> log-probs."""
        if frames.shape[0]:
            self.feats.append(frames if self.model.cmvn is None else self.model.cmvn(frames))
            self.num_feats += frames.shape[0]
        if self.num_feats < self.chunk and not last:
            return
        feats = torch.cat(self.feats) if len(self.feats) > 1 else self.feats[0] if self.feats else None
        whole = self.num_feats if last else self.num_feats // self.chunk * self.chunk
        for start in range(0, whole, self.chunk):
            self._encoded(self.encoder.feed(feats[start:start + self.chunk]))
        self.feats = [feats[whole:]] if feats is not None and whole < self.num_feats else []
        self.num_feats -= whole
        if last:
            self._encoded(self.encoder.flush())

    def _encoded(self, encoded: torch.Tensor) -> None:
        if encoded.shape[0]:
            self.log_probs = torch.cat((self.log_probs, self.model.ctc(encoded[None])[0].float().cpu()))

    def _words(self, final: bool) -> list:
        """Decode the log-probs up to the last cut; returns the new complete words (not snapped when
        `final` is False they go to the snapper and come back snapped as they are ready)."""
        stop = len(self.log_probs) if final else self._last_cut()
        if stop > 0:
            spans = self.decode_spans(self.log_probs[:stop])
            for s in spans:
                s.start, s.end = s.start + self.cut, s.end + self.cut
            self.spans += spans
            self.log_probs, self.cut = self.log_probs[stop:], self.cut + stop
        tokens, frame_s = self.model.tokenizer, self.model.output_frame_s
        if final:
            words, self.spans = words_from_spans(self.spans, tokens, frame_s, pause_s=self.pause_s), []
            return words
        begin = self._last_word_start()
        words = words_from_spans(self.spans[:begin], tokens, frame_s, pause_s=self.pause_s)
        self.spans = self.spans[begin:]
        if not self.snap:
            self.words += [w.text for w in words]
            return words
        self.snapper.add_words(words)
        ready = self.snapper.ready()
        self.words += [w.text for w in ready]
        return ready

    def _segments(self, words: list) -> list:
        return self.segmenter.add(words, seen_s=self.duration)

    def _last_cut(self) -> int:
        """Frames of `log_probs` before the last cut that later frames cannot move (0: none)."""
        best = self.log_probs.argmax(dim=-1)
        blank = best == BLANK
        values, counts = torch.unique_consecutive(blank, return_counts=True)
        cut, position = 0, 0
        for is_blank, count in zip(values.tolist()[:-1], counts.tolist()[:-1]):  # the last run may go on
            if is_blank and count >= self.min_pause and position > 0:  # the first run: the recording's start or a cut's rest
                cut = position + count // 2
            position += count
        if cut == 0 and len(best) > self.max_pending:
            changes = torch.nonzero(best[1:] != best[:-1])
            cut = int(changes[-1]) + 1 if len(changes) else 0
        return cut

    def _last_word_start(self) -> int:
        """Index in `spans` of the last span that starts a word (the spans before it are complete words)."""
        starts = word_starts(self.spans, self.model.tokenizer, self.model.output_frame_s, self.pause_s)
        return starts[-1] if starts else 0
