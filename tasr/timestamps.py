"""Words with start/end times (seconds) and a confidence, from CTC token spans.

A CTC model emits each token on one or a few frames (its "span": found by the greedy path, or by
forced alignment of beam-search tokens, `models.ctc.align`); a word is a run of tokens between
word boundaries. Token strings follow `tasr.text`: a piece that starts with "▁" begins a new
word, and the character tokenizer's space is the token "▁" on its own. A pause (only blanks) of
at least `pause_s` between two tokens also ends a word, for models that do not emit a word
boundary across silence (e.g. trained on isolated words).

Times: frame `f` of the encoder output covers `[f * frame_s, (f + 1) * frame_s)` seconds, where
`frame_s` is the model's `output_frame_s` (subsampling x the front-end's frame shift: 40 ms for
the usual 4x of 10 ms frames). A word starts where its first token's span starts and ends where
its last token's span ends. Its confidence is the mean, over its
tokens, of the token's probability averaged over the frames of its span (in [0, 1]).

CTC emits each token as a spike of one or two frames somewhere inside its sound: a character
model's first letter comes near the word's start but its last letter well before the sound dies
away (150-250 ms on FSDD digits), and a model whose words are single BPE tokens spikes near
the word's end (250 ms after its start, median, on FSDD). `snap_to_sound` therefore moves each
word's edges outwards to the edges of the sound around it (frame energy above a threshold set
from the recording's own noise floor and peak level), never past the neighbouring words, by
at most `max_start_s` and `max_end_s` (0.5 s): the way subtitle tools snap ASR timestamps to
loudness. Words in continuous speech simply keep their CTC edges where the sound goes on.
"""

from dataclasses import dataclass

import torch

from tasr.text import WORD_BOUNDARY

MAX_WORD_TOKENS = 1000  # a run of more tokens without a boundary (an untrained model) is cut into words of this many
SNAP_REGION_S = 300.0  # seconds of audio whose energies set the threshold of sound for the words in them


@dataclass
class Word:
    """One recognised word: `text`, `start`/`end` in seconds, `confidence` in [0, 1]."""

    text: str
    start: float
    end: float
    confidence: float

    def to_dict(self) -> dict:
        return {"word": self.text, "start": round(self.start, 3), "end": round(self.end, 3),
                "confidence": round(self.confidence, 4)}


def word_starts(spans, tokenizer, frame_s: float, pause_s: float = 0.3) -> list[int]:
    """Indices of the spans that begin a word: a piece starting with "▁", a pause of `pause_s`
    before it, the first span, or a word already `MAX_WORD_TOKENS` long."""
    pieces = tokenizer.tokens
    pause = max(1, round(pause_s / frame_s))
    starts, previous, length = [], None, 0
    for i, span in enumerate(spans):
        piece = pieces[span.token] if 0 <= span.token < len(pieces) else ""
        if (piece.startswith(WORD_BOUNDARY) or previous is None or span.start - previous.end >= pause
                or length >= MAX_WORD_TOKENS):
            starts.append(i)
            length = 0
        previous = span
        length += piece != WORD_BOUNDARY  # a space on its own (character tokenizer) only separates
    return starts


def words_from_spans(spans, tokenizer, frame_s: float, offset_s: float = 0.0, pause_s: float = 0.3) -> list[Word]:
    """Group token spans (`models.ctc.TokenSpan`: token, start, end, score; in time order) into `Word`s.

    `offset_s` is added to every time (the spans' frame 0 is at `offset_s` seconds).
    """
    pieces = tokenizer.tokens
    bounds = word_starts(spans, tokenizer, frame_s, pause_s) + [len(spans)]
    groups = [[s for s in spans[a:b] if (pieces[s.token] if 0 <= s.token < len(pieces) else "") != WORD_BOUNDARY]
              for a, b in zip(bounds[:-1], bounds[1:])]
    words = []
    for group in groups:
        if not group:
            continue
        text = tokenizer.decode([s.token for s in group]).strip()
        if not text:
            continue
        words.append(Word(
            text=text,
            start=offset_s + group[0].start * frame_s,
            end=offset_s + group[-1].end * frame_s,
            confidence=sum(s.score for s in group) / len(group),
        ))
    return words


def sound_threshold(db: torch.Tensor) -> float:
    """dB above which a frame counts as sound: 6 dB over the noise floor (10th percentile) or
    50 dB under the peak (99th percentile), whichever is higher."""
    if db.numel() == 0:
        return 0.0
    floor, peak = torch.quantile(db[:: max(1, db.numel() // 100_000)], torch.tensor([0.1, 0.99])).tolist()
    return max(floor + 6.0, peak - 50.0)


def snap_to_sound(words: list[Word], db: torch.Tensor, hop_s: float = 0.01, max_end_s: float = 0.5,
                  max_start_s: float = 0.5, region_s: float = SNAP_REGION_S) -> list[Word]:
    """Widen each word (in place, and returned) to the sound around it; `db` from `audio.energy_db`
    (one value every `hop_s` seconds). The same as a `SoundSnapper` fed the words and energies."""
    snapper = SoundSnapper(hop_s, max_end_s, max_start_s, region_s)
    snapper.add_energies(db)
    snapper.add_words(words)
    snapper.finish()
    return words


class SoundSnapper:
    """`snap_to_sound` for a recording of any length: words and energies in as they come (in time
    order), each word snapped once what it needs has arrived, in bounded memory.

    The threshold of sound (`sound_threshold`) is set per region of `region_s` seconds
    (0-300 s, 300-600 s, ...; the last one is the recording's last `region_s` seconds), from the
    region of the word's start: a recording's noise floor drifts over hours. A word is snapped
    once its region is complete, the next word is known and the energies past its end have come;
    the energies kept are those of about two regions.

        snapper = SoundSnapper()
        for db, words in pieces:
            snapper.add_energies(db); snapper.add_words(words)
            done = snapper.ready()        # the words snapped now (the same objects, in place)
        done = snapper.finish()
    """

    def __init__(self, hop_s: float = 0.01, max_end_s: float = 0.5, max_start_s: float = 0.5,
                 region_s: float = SNAP_REGION_S):
        self.hop_s, self.max_end_s, self.max_start_s = hop_s, max_end_s, max_start_s
        self.region = max(1, round(region_s / hop_s))  # frames per region
        self.db = torch.zeros(0)  # energies from frame `offset` on
        self.offset = 0
        self.thresholds = {}  # region index -> threshold, for complete regions
        self.pending = []  # words not snapped yet
        self.previous_end = 0.0  # end of the last word snapped
        self.finished = False

    @property
    def num_frames(self) -> int:
        """Energy frames received so far."""
        return self.offset + self.db.shape[0]

    def add_energies(self, db: torch.Tensor) -> None:
        self.db = torch.cat((self.db, db.float().cpu()))

    def add_words(self, words: list[Word]) -> None:
        self.pending += words

    def ready(self) -> list[Word]:
        """The pending words that can be snapped now, snapped."""
        done = []
        while len(self.pending) > 1:
            w, after = self.pending[0], self.pending[1]
            region = self._region(w)
            limit = round(min(after.start, w.end + self.max_end_s) / self.hop_s) + 1
            if (region + 1) * self.region > self.num_frames or limit > self.num_frames:
                break
            self._snap(w, after.start, self._threshold(region))
            done.append(self.pending.pop(0))
        self._trim()
        return done

    def finish(self) -> list[Word]:
        """End of the recording: every pending word, snapped."""
        self.finished = True
        T = self.num_frames
        done = []
        while self.pending:
            w = self.pending[0]
            next_start = self.pending[1].start if len(self.pending) > 1 else T * self.hop_s
            region = self._region(w)
            full = (region + 1) * self.region <= T
            self._snap(w, next_start, self._threshold(region) if full else self._last_threshold())
            done.append(self.pending.pop(0))
        return done

    def _region(self, w: Word) -> int:
        return max(0, int(w.start / self.hop_s)) // self.region

    def _threshold(self, region: int) -> float:
        if region not in self.thresholds:
            a = region * self.region - self.offset
            self.thresholds[region] = sound_threshold(self.db[a:a + self.region])
        return self.thresholds[region]

    def _last_threshold(self) -> float:
        """The threshold of the recording's last region (its last `region` frames)."""
        return sound_threshold(self.db[max(0, self.num_frames - self.region) - self.offset:])

    def _snap(self, w: Word, next_start: float, threshold: float) -> None:
        """Move the edges of `w` outwards while the frames next to them are above `threshold`."""
        hop, T = self.hop_s, self.num_frames
        if T == 0:
            return

        def loud(t):
            return bool(self.db[t - self.offset] > threshold)

        t = min(round(w.start / hop), T)
        limit = max(round(max(self.previous_end, w.start - self.max_start_s) / hop), 0, self.offset)
        while t > limit and loud(t - 1):
            t -= 1
        w.start = min(w.start, t * hop)
        t, limit = max(round(w.end / hop), 0), min(round(min(next_start, w.end + self.max_end_s) / hop), T)
        while t < limit and loud(t):
            t += 1
        w.end = max(w.end, t * hop)
        self.previous_end = w.end

    def _trim(self) -> None:
        """Forget energies no pending word, region threshold or last region can need."""
        keep = self.num_frames - self.region
        if self.pending:
            w = self.pending[0]
            start = round(max(self.previous_end, w.start - self.max_start_s) / self.hop_s) - 1
            keep = min(keep, self._region(w) * self.region, start)
        keep = max(keep, self.offset)
        if keep > self.offset:
            self.db = self.db[keep - self.offset:]
            self.offset = keep
