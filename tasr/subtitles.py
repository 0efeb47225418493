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

import contextlib
import json
import os
import shutil
import tempfile
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
    segmenter = Segmenter(pause_s, max_line, max_lines, max_duration_s, min_show_s)
    segmenter.add(words, seen_s=0.0)  # nothing is final before the duration is known
    return segmenter.finish(duration)


class Segmenter:
    """`segment` for words that come a few at a time: `add(words)` returns the segments that no
    later word can change, `finish(duration)` the rest. A segment is final once the next one has
    begun well inside the audio seen so far (`seen_s`, which `add` is told)."""

    def __init__(self, pause_s: float = 0.5, max_line: int = 42, max_lines: int = 2, max_duration_s: float = 7.0,
                 min_show_s: float = 0.7):
        if max_lines not in (1, 2):
            raise ValueError("max_lines must be 1 or 2")
        self.pause_s, self.max_line, self.max_lines = pause_s, max_line, max_lines
        self.max_duration_s, self.min_show_s = max_duration_s, min_show_s
        self.groups = []  # word groups not yet given out as segments
        self.last = None  # the last segment made, held back while a later group may join it
        self.previous_end = 0.0  # end of the last segment given out or held

    def add(self, words: list[Word], seen_s: float = float("inf")) -> list[Segment]:
        """Add words (after those added before); returns the segments now final. `seen_s`: seconds
        of audio seen so far (the duration is at least that)."""
        for w in words:
            last = self.groups[-1] if self.groups else None
            if (last and w.start - last[-1].end < self.pause_s and w.end - last[0].start <= self.max_duration_s
                    and _fits(last + [w], self.max_line, self.max_lines)):
                last.append(w)
            else:
                self.groups.append([w])
        done = []
        while len(self.groups) > 1:  # a group is complete once the next one has begun
            group, after = self.groups[0], self.groups[1][0]
            start = max(group[0].start, self.previous_end)
            if max(start, group[-1].end, after.start) >= seen_s - 0.01:
                break  # near the end of what is known: the duration could still matter
            self.groups.pop(0)
            done += self._release()
            self.last = self._make(group, start, group[-1].end, min(start + self.min_show_s, after.start))
        return done

    def finish(self, duration: float) -> list[Segment]:
        """The remaining segments, for audio of `duration` seconds."""
        done = []
        for i, group in enumerate(self.groups):
            start = min(max(group[0].start, self.previous_end), duration)
            if start > duration - 0.001 and self.last is not None:  # no room left at the very end: join the last cue
                self.last.words += group
                self.last.lines = wrap(" ".join(w.text for w in self.last.words), self.max_line)
                continue
            start = min(start, max(0.0, duration - 0.001))
            end = min(max(group[-1].end, start), duration)
            next_start = self.groups[i + 1][0].start if i + 1 < len(self.groups) else duration
            done += self._release()
            self.last = self._make(group, start, end, min(start + self.min_show_s, next_start, duration))
        self.groups = []
        return done + self._release()

    def _make(self, group, start: float, end: float, shown_until: float) -> Segment:
        end = max(end, start, shown_until)
        self.previous_end = end
        return Segment(start, end, group, wrap(" ".join(w.text for w in group), self.max_line))

    def _release(self) -> list[Segment]:
        """The held-back segment, if any (a new one is about to be made)."""
        out, self.last = ([self.last] if self.last is not None else []), None
        return out


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


class TranscriptWriters:
    """The outputs of one recording written segment by segment, for recordings of any length:
    each file is a temporary one until `close`, which renames them all (an error, or `abort`,
    removes them: never a half file). The json file's header (duration, text) is known only at
    the end, so its text and segments wait in temporary files beside it.

        with TranscriptWriters({"srt": "a.srt", "json": "a.json"}, name) as out:
            out.write(segments)       # as they become final
            out.close(duration)
    """

    def __init__(self, paths: dict, name: str):
        self.name = name
        self.stack = contextlib.ExitStack()
        self.files = {fmt: self.stack.enter_context(atomic_write(path, encoding="utf-8", newline="\n"))
                      for fmt, path in paths.items()}
        self.spools = {}
        if "json" in self.files:
            directory = os.path.dirname(os.path.abspath(paths["json"]))
            self.spools = {part: self.stack.enter_context(tempfile.TemporaryFile("w+", encoding="utf-8", dir=directory))
                           for part in ("text", "segments")}
        if "vtt" in self.files:
            self.files["vtt"].write("WEBVTT\n\n")
        if "tsv" in self.files:
            self.files["tsv"].write("start\tend\ttext\n")
        self.count = 0

    def __enter__(self):
        return self

    def __exit__(self, *error):
        return self.stack.__exit__(*error)

    def write(self, segments: list[Segment]) -> None:
        for s in segments:
            self.count += 1
            for fmt, f in self.files.items():
                if fmt == "json":
                    text = json.dumps(s.text, ensure_ascii=False)[1:-1]
                    self.spools["text"].write(text if self.count == 1 else " " + text)
                    entry = {"id": self.count - 1, "start": round(s.start, 3), "end": round(s.end, 3), "text": s.text,
                             "words": [w.to_dict() for w in s.words]}
                    self.spools["segments"].write((",\n  " if self.count > 1 else "\n  ")
                                                  + json.dumps(entry, ensure_ascii=False))
                else:
                    f.write(SEGMENT_WRITERS[fmt](s, self.count))

    def close(self, duration: float) -> None:
        """Finish every file (json: its header, then its segments) and rename them into place."""
        if "json" in self.files:
            f = self.files["json"]
            f.write("{" + f'"audio": {json.dumps(self.name, ensure_ascii=False)}, "duration": {round(duration, 3)}, '
                    '"text": "')
            for part, closing in (("text", '",\n "segments": ['), ("segments", "\n ]\n}\n" if self.count else "]\n}\n")):
                spool = self.spools[part]
                spool.seek(0)
                shutil.copyfileobj(spool, f)
                f.write(closing)
        self.stack.close()


SEGMENT_WRITERS = {
    "txt": lambda s, i: s.text + "\n",
    "srt": lambda s, i: f"{i}\n{timestamp(s.start)} --> {timestamp(s.end)}\n" + "\n".join(s.lines) + "\n\n",
    "vtt": lambda s, i: f"{timestamp(s.start, '.')} --> {timestamp(s.end, '.')}\n" + "\n".join(s.lines) + "\n\n",
    "tsv": lambda s, i: f"{round(s.start * 1000)}\t{round(s.end * 1000)}\t{s.text.replace(chr(9), ' ')}\n",
}
