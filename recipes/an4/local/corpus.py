"""Reading an AN4 copy: its transcription and fileids lists, and the audio files they name.

Two upstream layouts are read alike; ROOT is the folder holding `etc/` and `wav/`:
- CMU's `an4_sphere.tar.gz`: ROOT = an4/, audio `wav/<set>/<speaker>/<utt>.sph` (NIST SPHERE);
- the cmusphinx/an4 repository: audio `wav/<set>/<speaker>/<utt>.wav`.
`<set>` is an4_clstk (training, 948 utterances of 74 speakers) or an4test_clstk (test, 130 of 10).

`etc/an4_<split>.fileids` lists `<set>/<speaker>/<utt>` lines; `etc/an4_<split>.transcription`
lists `<s> TEXT </s> (<utt>)` lines in the training file and `TEXT (<utt>)` in the test file.
"""

import re
from dataclasses import dataclass
from pathlib import Path

import soundfile

SPLITS = ("train", "test")
AUDIO_SUFFIXES = (".wav", ".sph")
LINE = re.compile(r"^(?:<s>\s+)?(?P<text>.*?)(?:\s*</s>)?\s*\((?P<id>[^()\s]+)\)$")


class CorpusError(Exception):
    """An AN4 copy that is incomplete or unreadable; the message names the file and the reason."""


@dataclass
class Utterance:
    id: str
    audio: Path
    text: str
    speaker: str


def parse_transcription_line(line: str):
    """(utt id, TEXT) of one transcription line; raises ValueError for a line of another shape."""
    match = LINE.match(line.strip())
    if not match or not match.group("text").strip():
        raise ValueError(f"expected 'TEXT (utt-id)' or '<s> TEXT </s> (utt-id)', got {line.strip()!r}")
    return match.group("id"), " ".join(match.group("text").split()).upper()


def find_root(folder: Path) -> Path:
    """The AN4 root under `folder` (itself, or one level down as the archives unpack)."""
    for candidate in [folder, *sorted(p for p in folder.glob("*") if p.is_dir())]:
        if (candidate / "etc" / "an4_train.transcription").is_file():
            return candidate
    raise CorpusError(f"{folder}: no etc/an4_train.transcription here or one folder down: not an AN4 copy")


def utterances(root: Path, split: str) -> list[Utterance]:
    """Every utterance of `split` in fileids order; CorpusError names the first list line that cannot be used."""
    etc = root / "etc"
    fileids_path, transcription_path = etc / f"an4_{split}.fileids", etc / f"an4_{split}.transcription"
    texts = {}
    for number, line in enumerate(_lines(transcription_path), 1):
        if not line.strip():
            continue
        try:
            utt_id, text = parse_transcription_line(line)
        except ValueError as error:
            raise CorpusError(f"{transcription_path}:{number}: {error}") from None
        if utt_id in texts:
            raise CorpusError(f"{transcription_path}:{number}: utterance {utt_id} is listed twice")
        texts[utt_id] = text
    found = []
    for number, line in enumerate(_lines(fileids_path), 1):
        fileid = line.strip()
        if not fileid:
            continue
        parts = Path(fileid).parts
        utt_id = parts[-1]
        if utt_id not in texts:
            raise CorpusError(f"{fileids_path}:{number}: {fileid} has no line in {transcription_path.name}")
        audio = _audio_file(root / "wav" / fileid)
        if audio is None:
            raise CorpusError(f"{fileids_path}:{number}: audio of {utt_id} is missing "
                              f"({root / 'wav' / fileid}{{{','.join(AUDIO_SUFFIXES)}}})")
        found.append(Utterance(utt_id, audio, texts.pop(utt_id), parts[-2] if len(parts) > 1 else ""))
    if texts:
        raise CorpusError(f"{transcription_path}: {len(texts)} utterance(s) not in {fileids_path.name}, "
                          f"e.g. {next(iter(texts))}")
    return found


def duration(utterance: Utterance) -> float:
    """Seconds of audio; CorpusError when the file is not readable audio."""
    try:
        info = soundfile.info(utterance.audio)
    except (RuntimeError, soundfile.LibsndfileError) as error:
        raise CorpusError(f"{utterance.audio}: audio of {utterance.id} cannot be read ({error})") from None
    if info.frames == 0:
        raise CorpusError(f"{utterance.audio}: audio of {utterance.id} is empty")
    return round(info.frames / info.samplerate, 4)


def check(root: Path) -> dict:
    """{split: number of utterances} once every listed utterance is present and readable; else CorpusError."""
    counts = {}
    for split in SPLITS:
        listed = utterances(root, split)
        for utterance in listed:
            duration(utterance)
        counts[split] = len(listed)
    return counts


def _lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise CorpusError(f"{path}: {error.strerror}") from None
    except UnicodeDecodeError as error:
        raise CorpusError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from None


def _audio_file(stem: Path):
    for suffix in AUDIO_SUFFIXES:
        path = stem.with_name(stem.name + suffix)
        if path.is_file():
            return path
    return None
