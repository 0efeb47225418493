"""A miniature AN4 in either upstream layout, from real utterances of an AN4 copy (corpora.an4)."""

import sys
from pathlib import Path

import pytest
import soundfile

import corpora

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "an4"
AN4 = corpora.an4.root
sys.path.insert(0, str(RECIPE / "local"))
import corpus  # noqa: E402  (recipes/an4/local/corpus.py)

needs_an4 = pytest.mark.usefixtures("an4_root")

# speaker: utterances taken from the real corpus (the first N of that speaker)
MINI = {"train": {"fash": 3, "fbbh": 3, "mblw": 3, "mcen": 3}, "test": {"fcaw": 3}}


def make_mini_an4(out: Path, layout: str, sizes: dict = MINI) -> Path:
    """An AN4 copy at out/<top>, returning its root (the folder holding etc/ and wav/): the first
    `sizes[split][speaker]` utterances of each speaker.

    layout "sphere": as CMU's an4_sphere.tar.gz (an4/etc, an4/wav/<set>/<speaker>/<utt>.sph, NIST
    SPHERE written with soundfile); "wav": as the cmusphinx/an4 repository's archive (WAV files).
    Training transcription lines are `<s> TEXT </s> (utt-id)`, test lines `TEXT (utt-id)`.
    """
    top = "an4" if layout == "sphere" else "an4-b567d132"
    root = out / top
    suffix, kind = (".sph", "NIST") if layout == "sphere" else (".wav", "WAV")
    (root / "etc").mkdir(parents=True)
    for split, speakers in sizes.items():
        fileids, lines = [], []
        for utterance in corpus.utterances(AN4, split):
            if speakers.get(utterance.speaker, 0) == 0:
                continue
            speakers = {**speakers, utterance.speaker: speakers[utterance.speaker] - 1}
            fileid = "/".join(utterance.audio.relative_to(AN4 / "wav").with_suffix("").parts)
            target = root / "wav" / (fileid + suffix)
            target.parent.mkdir(parents=True, exist_ok=True)
            wave, rate = soundfile.read(utterance.audio, dtype="int16")
            soundfile.write(target, wave, rate, format=kind, subtype="PCM_16")
            fileids.append(fileid)
            text = f"<s> {utterance.text} </s>" if split == "train" else utterance.text
            lines.append(f"{text} ({utterance.id})")
        (root / "etc" / f"an4_{split}.fileids").write_text("\n".join(fileids) + "\n")
        (root / "etc" / f"an4_{split}.transcription").write_text("\n".join(lines) + "\n")
    return root
