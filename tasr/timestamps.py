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


def words_from_spans(spans, tokenizer, frame_s: float, offset_s: float = 0.0, pause_s: float = 0.3) -> list[Word]:
    """Group token spans (`models.ctc.TokenSpan`: token, start, end, score; in time order) into `Word`s.

    `offset_s` is added to every time (the spans' frame 0 is at `offset_s` seconds).
    """
    pieces = tokenizer.tokens
    pause = max(1, round(pause_s / frame_s))
    groups, previous = [], None  # lists of spans, one per word
    for span in spans:
        piece = pieces[span.token] if 0 <= span.token < len(pieces) else ""
        if piece.startswith(WORD_BOUNDARY) or previous is None or span.start - previous.end >= pause:
            groups.append([])
        previous = span
        if piece != WORD_BOUNDARY:  # a space on its own (character tokenizer) only separates
            groups[-1].append(span)
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
                  max_start_s: float = 0.5) -> list[Word]:
    """Widen each word (in place, and returned) to the sound around it; `db` from `audio.energy_db`
    (one value every `hop_s` seconds)."""
    if not words or db.numel() == 0:
        return words
    loud = (db > sound_threshold(db)).tolist()
    T = len(loud)
    for i, w in enumerate(words):
        previous_end = words[i - 1].end if i else 0.0
        next_start = words[i + 1].start if i + 1 < len(words) else T * hop_s
        t, limit = min(round(w.start / hop_s), T), max(round(max(previous_end, w.start - max_start_s) / hop_s), 0)
        while t > limit and loud[t - 1]:
            t -= 1
        w.start = min(w.start, t * hop_s)
        t, limit = max(round(w.end / hop_s), 0), min(round(min(next_start, w.end + max_end_s) / hop_s), T)
        while t < limit and loud[t]:
            t += 1
        w.end = max(w.end, t * hop_s)
    return words
