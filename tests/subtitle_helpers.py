"""Strict SubRip and WebVTT parsers for the tests of the subtitles tasr writes."""

import re

SRT_TIME = r"(\d{2}):([0-5]\d):([0-5]\d),(\d{3})"
VTT_TIME = r"(\d{2}):([0-5]\d):([0-5]\d)\.(\d{3})"


def seconds(match_groups):
    h, m, s, ms = (int(g) for g in match_groups)
    return h * 3600 + m * 60 + s + ms / 1000


def parse_srt(text: str, duration: float):
    """Strict SubRip: numbered cues from 1, `HH:MM:SS,mmm --> HH:MM:SS,mmm`, 1-2 text lines, a
    blank line after each; times increasing, not overlapping, within [0, duration]."""
    cues = []
    if not text:
        return cues
    assert text.endswith("\n\n") and "\r" not in text
    for number, block in enumerate(text[:-2].split("\n\n"), 1):
        lines = block.split("\n")
        assert lines[0] == str(number), block
        m = re.fullmatch(SRT_TIME + " --> " + SRT_TIME, lines[1])
        assert m, lines[1]
        cues.append((seconds(m.groups()[:4]), seconds(m.groups()[4:]), lines[2:]))
    check_cues(cues, duration)
    return cues


def parse_vtt(text: str, duration: float):
    """Strict WebVTT (the subset we write): header, then cues of a timing line and 1-2 text lines."""
    assert text.startswith("WEBVTT\n\n")
    body = text[len("WEBVTT\n\n"):]
    cues = []
    if body:
        assert body.endswith("\n\n")
        for block in body[:-2].split("\n\n"):
            lines = block.split("\n")
            m = re.fullmatch(VTT_TIME + " --> " + VTT_TIME, lines[0])
            assert m, lines[0]
            assert not any("-->" in line for line in lines[1:])
            cues.append((seconds(m.groups()[:4]), seconds(m.groups()[4:]), lines[1:]))
    check_cues(cues, duration)
    return cues


def check_cues(cues, duration):
    previous_end = 0.0
    for start, end, lines in cues:
        assert previous_end <= start < end <= duration + 1e-3, (previous_end, start, end, duration)
        assert 1 <= len(lines) <= 2 and all(line.strip() for line in lines), lines
        assert all(len(line) <= 42 or " " not in line for line in lines), lines
        previous_end = end
