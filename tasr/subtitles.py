"""Words cut into segments at pauses, and the writers of a `tasr.Result`: txt, json, srt, vtt, tsv.

Segments (one subtitle cue each) start a new one where
- the silence between two words is at least `pause_s` (0.5 s by default),
- the text would no longer fit `max_lines` lines of `max_line` characters (2 x 42, the usual
  broadcast limit), or
- the segment would last longer than `max_duration_s` (7 s).
A cue's text is wrapped into at most two balanced lines (a single word longer than a line stays
whole). Cue times never go backwards, never overlap, and stay within [0, duration]; a cue is
shown at least `min_show_s` (0.7 s) when the next one leaves room.

Formats (one file per input, `write_transcript`):
- txt: one line per segment;
- json: text, duration, segments with their words (start/end in seconds, confidence in [0, 1]);
- srt: SubRip, `HH:MM:SS,mmm --> HH:MM:SS,mmm`;
- vtt: WebVTT, `WEBVTT` header, `HH:MM:SS.mmm --> HH:MM:SS.mmm`;
- tsv: `start<TAB>end<TAB>text` per segment, times in integer milliseconds (as openai/whisper).
"""

import json
from dataclasses import dataclass

from tasr.files import atomic_write
from tasr.timestamps import Word

FORMATS = ("txt", "json", "srt", "vtt", "tsv")


@dataclass
class Segment:
    """Consecutive words shown together: `start`/`end` in seconds, `lines` as displayed."""

    start: float
    end: float
    words: list
    lines: list

    @property
    def text(self) -> str:
        return " ".join(w.text for w in self.words)


def wrap(text: str, max_line: int = 42) -> list[str]:
    """`text` as one line if it fits in `max_line` characters, else two lines split at the space
    that makes the longer line shortest (a caller keeps texts within two lines' worth)."""
    if len(text) <= max_line or " " not in text:
        return [text]
    words = text.split(" ")
    best = None
    for i in range(1, len(words)):
        first, second = " ".join(words[:i]), " ".join(words[i:])
        longest = max(len(first), len(second))
        if best is None or longest < best[0]:
            best = (longest, [first, second])
    return best[1]


def _fits(words, max_line: int, max_lines: int) -> bool:
    """Whether `words` can be shown in `max_lines` (1 or 2) lines of `max_line` characters."""
    if len(words) == 1:
        return True
    lines = wrap(" ".join(w.text for w in words), max_line)
    return len(lines) <= max_lines and all(len(line) <= max_line for line in lines)


def segment(words: list[Word], duration: float, pause_s: float = 0.5, max_line: int = 42,
            max_lines: int = 2, max_duration_s: float = 7.0, min_show_s: float = 0.7) -> list[Segment]:
    """Cut `words` (in time order) into `Segment`s; `duration` is the audio's length in seconds."""
    if max_lines not in (1, 2):
        raise ValueError("max_lines must be 1 or 2")
    groups = []
    for w in words:
        if groups:
            last = groups[-1]
            if (w.start - last[-1].end < pause_s and w.end - last[0].start <= max_duration_s
                    and _fits(last + [w], max_line, max_lines)):
                last.append(w)
                continue
        groups.append([w])
    segments = []
    for i, group in enumerate(groups):
        start = min(max(group[0].start, segments[-1].end if segments else 0.0), duration)
        if start > duration - 0.001 and segments:  # no room left at the very end: join the last cue
            last = segments[-1]
            last.words += group
            last.lines = wrap(" ".join(w.text for w in last.words), max_line)
            continue
        start = min(start, max(0.0, duration - 0.001))
        end = min(max(group[-1].end, start), duration)
        next_start = groups[i + 1][0].start if i + 1 < len(groups) else duration
        end = max(end, min(start + min_show_s, next_start, duration))
        segments.append(Segment(start, end, group, wrap(" ".join(w.text for w in group), max_line)))
    return segments


def timestamp(seconds: float, decimal: str = ",") -> str:
    """`HH:MM:SS,mmm` (SRT) or, with decimal=".", `HH:MM:SS.mmm` (WebVTT)."""
    ms = max(0, round(seconds * 1000))
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    secs, ms = divmod(ms, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{decimal}{ms:03d}"


def to_txt(t) -> str:
    if not t.segments:
        return (t.text + "\n") if t.text else ""
    return "".join(s.text + "\n" for s in t.segments)


def to_json(t) -> str:
    data = {
        "audio": t.name,
        "duration": round(t.duration, 3),
        "text": t.text,
        "segments": [
            {"id": i, "start": round(s.start, 3), "end": round(s.end, 3), "text": s.text,
             "words": [w.to_dict() for w in s.words]}
            for i, s in enumerate(t.segments)
        ],
    }
    return json.dumps(data, ensure_ascii=False, indent=1) + "\n"


def to_srt(t) -> str:
    return "".join(
        f"{i}\n{timestamp(s.start)} --> {timestamp(s.end)}\n" + "\n".join(s.lines) + "\n\n"
        for i, s in enumerate(t.segments, 1)
    )


def to_vtt(t) -> str:
    return "WEBVTT\n\n" + "".join(
        f"{timestamp(s.start, '.')} --> {timestamp(s.end, '.')}\n" + "\n".join(s.lines) + "\n\n"
        for s in t.segments
    )


def to_tsv(t) -> str:
    rows = ["start\tend\ttext\n"]
    for s in t.segments:
        text = s.text.replace("\t", " ")
        rows.append(f"{round(s.start * 1000)}\t{round(s.end * 1000)}\t{text}\n")
    return "".join(rows)


WRITERS = {"txt": to_txt, "json": to_json, "srt": to_srt, "vtt": to_vtt, "tsv": to_tsv}


def write_transcript(t, fmt: str, path) -> None:
    """Write `t` (a `tasr.Result`: name, duration, text, segments) as `fmt` to `path`, atomically
    (a temporary file in the same folder, then a rename)."""
    with atomic_write(path, encoding="utf-8", newline="\n") as f:
        f.write(WRITERS[fmt](t))
