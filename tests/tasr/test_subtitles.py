"""Segments, line wrapping and the five output formats, checked with strict parsers."""

import csv
import io
import json
import random

import pytest

from subtitle_helpers import parse_srt, parse_vtt
from tasr.subtitles import segment, timestamp, to_json, to_srt, to_tsv, to_txt, to_vtt, wrap, write_transcript
from tasr.timestamps import Word
from tasr.transcription import Result


def random_words(n, seed=0, duration=None):
    """n words with random lengths, durations and gaps (some long pauses), in time order."""
    rng = random.Random(seed)
    words, t = [], rng.uniform(0, 1)
    for _ in range(n):
        length = rng.choice([1, 2, 3, 5, 8, 12]) if rng.random() > 0.01 else 50
        start = t
        t += rng.uniform(0.1, 0.6)
        words.append(Word("x" * length, start, t, rng.random()))
        t += rng.choice([0.0, 0.05, 0.1, 0.2, 0.8, 2.0])
    return words, (duration or t + 0.3)


def test_wrap_balances_two_lines():
    assert wrap("short line") == ["short line"]
    lines = wrap("the quick brown fox jumps over the lazy dog and runs far away")
    assert len(lines) == 2 and all(len(line) <= 42 for line in lines)
    assert abs(len(lines[0]) - len(lines[1])) <= 8
    assert wrap("x" * 60) == ["x" * 60]  # one long word stays whole


def test_segments_break_at_pauses_and_fit_two_lines():
    words, duration = random_words(400)
    segments = segment(words, duration)
    assert [w for s in segments for w in s.words] == words  # nothing lost, order kept
    for s in segments:
        assert len(s.lines) <= 2
        assert all(len(line) <= 42 for line in s.lines) or len(s.words) == 1
        gaps = [b.start - a.end for a, b in zip(s.words, s.words[1:])]
        assert all(g < 0.5 for g in gaps)  # no pause inside a cue
    for a, b in zip(segments, segments[1:]):
        assert a.end <= b.start
        # a new cue starts at a pause, or because the text or the duration was full
        pause = b.words[0].start - a.words[-1].end >= 0.5
        full = len(wrap(a.text + " " + b.words[0].text)) > 2 or any(
            len(line) > 42 for line in wrap(a.text + " " + b.words[0].text))
        long = b.words[0].end - a.words[0].start > 7.0
        assert pause or full or long


def test_segment_times_stay_within_duration():
    # the last word runs past the end (frame rounding): times are clipped to the duration
    words = [Word("hello", 0.0, 0.5, 0.9), Word("world", 0.6, 1.25, 0.8)]
    segments = segment(words, duration=1.2)
    assert segments[-1].end <= 1.2
    assert segment([], 3.0) == []


def test_timestamp_formats():
    assert timestamp(3725.5) == "01:02:05,500"
    assert timestamp(0.0004, ".") == "00:00:00.000"
    assert timestamp(59.9996) == "00:01:00,000"


@pytest.fixture
def transcript():
    words, duration = random_words(300, seed=3)
    return Result("clip.wav", duration, " ".join(w.text for w in words), segment(words, duration))


def test_srt_and_vtt_parse_strictly(transcript):
    srt_cues = parse_srt(to_srt(transcript), transcript.duration)
    vtt_cues = parse_vtt(to_vtt(transcript), transcript.duration)
    assert len(srt_cues) == len(vtt_cues) == len(transcript.segments) > 10
    assert [c[:2] for c in srt_cues] == [c[:2] for c in vtt_cues]
    assert " ".join(" ".join(c[2]) for c in srt_cues) == transcript.text


def test_json_tsv_txt(transcript):
    data = json.loads(to_json(transcript))
    assert data["text"] == transcript.text and data["duration"] == round(transcript.duration, 3)
    words = [w for s in data["segments"] for w in s["words"]]
    assert len(words) == len(transcript.words)
    assert all(0 <= w["start"] <= w["end"] <= data["duration"] and 0 <= w["confidence"] <= 1 for w in words)
    rows = list(csv.reader(io.StringIO(to_tsv(transcript)), delimiter="\t"))
    assert rows[0] == ["start", "end", "text"]
    times = [(int(a), int(b)) for a, b, _ in rows[1:]]
    assert all(0 <= a < b <= round(transcript.duration * 1000) for a, b in times)
    assert all(b1 <= a2 for (_, b1), (a2, _) in zip(times, times[1:]))
    assert to_txt(transcript).splitlines() == [s.text for s in transcript.segments]


def test_empty_transcript_is_valid_everywhere(tmp_path):
    t = Result("silence.wav", 2.0, "", [])
    assert parse_srt(to_srt(t), 2.0) == [] and parse_vtt(to_vtt(t), 2.0) == []
    assert json.loads(to_json(t))["segments"] == []
    write_transcript(t, "txt", tmp_path / "a" / "silence.txt")
    assert (tmp_path / "a" / "silence.txt").read_text() == ""
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["silence.txt"]  # no temporary file left
