"""Write one JSONL manifest per LibriSpeech subset from its `*.trans.txt` files.

Layout read: CORPUS/<subset>/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt, each line
"<speaker>-<chapter>-<nnnn> TRANSCRIPT", next to <speaker>-<chapter>-<nnnn>.flac.
Written: OUT/<subset>.jsonl, lines {"id", "audio", "duration", "text", "speaker"} sorted by id.
A transcript line without its audio file, or an unreadable file, stops with its name.
"""

import argparse
import json
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import soundfile


def utterances(subset_dir: Path):
    """(id, audio path, text, speaker) for every transcript line under one subset folder."""
    transcripts = sorted(subset_dir.glob("*/*/*.trans.txt"))
    if not transcripts:
        raise SystemExit(f"{subset_dir}: no */*/*.trans.txt files: not a LibriSpeech subset folder")
    for transcript in transcripts:
        for number, line in enumerate(transcript.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            parts = line.split(None, 1)
            if len(parts) != 2:
                raise SystemExit(f"{transcript}:{number}: expected '<id> <text>', got {line!r}")
            utt_id, text = parts
            audio = transcript.parent / f"{utt_id}.flac"
            if not audio.is_file():
                raise SystemExit(f"{transcript}:{number}: audio file {audio} is missing")
            yield utt_id, audio, text.strip(), utt_id.split("-")[0]


def duration(path: Path) -> float:
    try:
        info = soundfile.info(str(path))
    except (RuntimeError, soundfile.LibsndfileError) as error:
        raise SystemExit(f"{path}: cannot read audio: {error}")
    return round(info.frames / info.samplerate, 4)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus-dir", required=True, type=Path, help="folder holding the subset folders")
    parser.add_argument("--subsets", required=True, help="comma-separated subset names")
    parser.add_argument("--out", required=True, type=Path, help="folder for <subset>.jsonl")
    parser.add_argument("--nj", type=int, default=2, help="parallel processes reading audio headers")
    args = parser.parse_args(argv)

    corpus = args.corpus_dir / "LibriSpeech" if (args.corpus_dir / "LibriSpeech").is_dir() else args.corpus_dir
    args.out.mkdir(parents=True, exist_ok=True)
    with ProcessPoolExecutor(max(1, args.nj)) as pool:
        for subset in args.subsets.split(","):
            rows = sorted(utterances(corpus / subset))
            durations = pool.map(duration, [audio for _, audio, _, _ in rows], chunksize=64)
            target = args.out / f"{subset}.jsonl"
            temporary = target.with_suffix(".jsonl.tmp")
            hours = 0.0
            with open(temporary, "w", encoding="utf-8") as file:
                for (utt_id, audio, text, speaker), seconds in zip(rows, durations):
                    record = {"id": utt_id, "audio": str(audio.resolve()), "duration": seconds,
                              "text": text, "speaker": speaker}
                    file.write(json.dumps(record, ensure_ascii=False) + "\n")
                    hours += seconds / 3600
            temporary.replace(target)
            print(f"{target}: {len(rows)} utterances, {hours:.2f} hours")
    return 0


if __name__ == "__main__":
    sys.exit(main())
