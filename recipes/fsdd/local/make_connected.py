"""Connected-digit utterances from FSDD's isolated digits (and, optionally, espeak-ng voices).

Each utterance joins 1..7 recordings of ONE speaker with random pauses, e.g. "three one
four"; everything is drawn from a seeded generator, so the same arguments give the same
set. FSDD's own split is kept: recordings with index 0-4 are its test part, 5-49 its train
part (--indices). Training sets may perturb each digit's speed (--perturb, which also
shifts its pitch and formants, like a new voice), cut its quiet start and end (--trim), and
add espeak-ng spoken digit strings (--espeak-num) for more voices.

Written: OUT_DIR/<id>.wav (8 kHz for FSDD, 16 kHz for espeak-ng) and MANIFEST (JSONL).
"""

import argparse
import random
import re
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import soundfile
import soxr

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
import tts  # noqa: E402
from tasr import data  # noqa: E402

WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
NAME = re.compile(r"^(\d)_([a-z]+)_(\d+)\.wav$")
RATE = 8000  # FSDD's sample rate


def recordings_folder(corpus: Path) -> Path:
    """The folder of FSDD's WAV files: `corpus`/recordings, or `corpus` itself."""
    return corpus / "recordings" if (corpus / "recordings").is_dir() else corpus


def recording_files(corpus: Path, speakers, indices) -> list[tuple[Path, int, str]]:
    """(path, digit, speaker) of the chosen speakers' recordings with the chosen indices, sorted by path."""
    found = []
    for path in sorted(recordings_folder(corpus).glob("*.wav")):
        match = NAME.match(path.name)
        if match and match.group(2) in speakers and int(match.group(3)) in indices:
            found.append((path, int(match.group(1)), match.group(2)))
    return found


def recordings(corpus: Path, speakers, indices) -> dict:
    """{speaker: {digit: [waveform float32 at 8 kHz]}} for the chosen speakers and indices."""
    table = defaultdict(lambda: defaultdict(list))
    for path, digit, speaker in recording_files(corpus, speakers, indices):
        waveform, rate = soundfile.read(str(path), dtype="float32")
        if rate != RATE:
            waveform = soxr.resample(waveform, rate, RATE)
        table[speaker][digit].append(waveform)
    missing = [s for s in speakers if len(table[s]) != 10]
    if missing:
        raise SystemExit(f"{recordings_folder(corpus)}: no recordings of every digit for speaker(s) {', '.join(missing)} "
                         f"with indices {min(indices)}-{max(indices)}")
    return table


def tilt(waveform, rng, amount):
    """A random first-order spectral tilt (y[n] = x[n] - a x[n-1], |a| <= amount), level kept:
    a cheap stand-in for another microphone and room."""
    from scipy.signal import lfilter

    a = rng.uniform(-amount, amount)
    out = lfilter([1.0, -a], [1.0], waveform).astype(np.float32)
    return out * (float(np.abs(waveform).max()) / max(1e-4, float(np.abs(out).max())))


def trim(waveform, start_db, end_db):
    """The recording from its first 10 ms frame within `start_db` of its loudest frame to its
    last frame within `end_db`. FSDD's recordings were trimmed like this, and some lost their
    weak consonants (many of yweweler's "six" start at the vowel); training digits cut at random
    levels teach the model to expect that."""
    frames = len(waveform) // 80  # 10 ms at 8 kHz
    if frames < 3:
        return waveform
    energy = 10 * np.log10(np.mean(waveform[:frames * 80].reshape(frames, 80) ** 2, axis=1) + 1e-10)
    first = np.flatnonzero(energy >= energy.max() - start_db)[0]
    last = np.flatnonzero(energy >= energy.max() - end_db)[-1]
    return waveform[first * 80:(last + 1) * 80]


def level_range(text: str) -> tuple[float, float]:
    """"6-30" -> (6.0, 30.0): a range of dB levels, LOW <= HIGH (an argparse type)."""
    try:
        low, high = (float(x) for x in text.split("-"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LOW-HIGH in dB such as 6-30, got {text!r}") from None
    if not 0 <= low <= high:
        raise argparse.ArgumentTypeError(f"expected 0 <= LOW <= HIGH, got {text!r}")
    return low, high


def connected(table, speaker, rng, nprng, min_digits, max_digits, perturb, noise_db, tilt_amount=0.0,
              trim_probability=0.0, edge_min=0.1, bare_probability=0.0, trim_db=(6.0, 30.0)):
    """(waveform, digits) for one utterance of `speaker`."""
    digits = [rng.randrange(10) for _ in range(rng.randint(min_digits, max_digits))]
    level = 10 ** (rng.uniform(-12, 0) / 20)  # overall loudness, -12..0 dB below a 0.5 peak
    bare = bare_probability and rng.random() < bare_probability  # no pause before the first and after the last digit
    pieces = [np.zeros(0 if bare else int(rng.uniform(edge_min, 0.3) * RATE), np.float32)]
    for digit in digits:
        piece = rng.choice(table[speaker][digit])
        if trim_probability and rng.random() < trim_probability:
            piece = trim(piece, rng.uniform(*trim_db), rng.uniform(*trim_db))
        if perturb:
            factor = rng.uniform(1 - perturb, 1 + perturb)
            piece = soxr.resample(piece, RATE * factor, RATE)  # speed and pitch by `factor`
        piece = piece / max(1e-4, float(np.abs(piece).max())) * 0.5 * level * rng.uniform(0.7, 1.0)
        pieces += [piece, np.zeros(int(rng.uniform(0.05, 0.35) * RATE), np.float32)]
    pieces[-1] = np.zeros(0 if bare else int(rng.uniform(edge_min, 0.3) * RATE), np.float32)
    waveform = np.concatenate(pieces)
    if tilt_amount:
        waveform = tilt(waveform, rng, tilt_amount)
    waveform += nprng.standard_normal(len(waveform)).astype(np.float32) * 0.5 * 10 ** (noise_db / 20)
    return waveform, digits


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus-dir", required=True, type=Path, help="FSDD copy (holding recordings/)")
    parser.add_argument("--speakers", required=True, help="comma-separated, e.g. george,jackson")
    parser.add_argument("--indices", default="0-49", help="recording indices to use, e.g. 5-49")
    parser.add_argument("--num", type=int, default=0, help="utterances to build from FSDD")
    parser.add_argument("--min-digits", type=int, default=1)
    parser.add_argument("--max-digits", type=int, default=7)
    parser.add_argument("--perturb", type=float, default=0.0, help="per-digit speed change, e.g. 0.15 for +-15%%")
    parser.add_argument("--tilt", type=float, default=0.0,
                        help="random spectral tilt per utterance, first-order filter coefficient up to this (e.g. 0.7)")
    parser.add_argument("--trim", type=float, default=0.0,
                        help="probability of cutting a digit's quiet start and end at a random level (e.g. 0.5)")
    parser.add_argument("--trim-db", type=level_range, default=(6.0, 30.0), metavar="LOW-HIGH",
                        help="range of the trim levels, dB under the loudest 10 ms frame, drawn uniformly")
    parser.add_argument("--edge-min", type=float, default=0.1,
                        help="shortest pause before the first and after the last digit, seconds (longest: 0.3)")
    parser.add_argument("--bare", type=float, default=0.0,
                        help="probability of no pause at all there: the utterance starts and ends with speech, "
                             "as FSDD's own files do")
    parser.add_argument("--noise-db", type=float, default=-70.0, help="background noise level, dB of full scale")
    parser.add_argument("--espeak-num", type=int, default=0, help="extra utterances spoken by espeak-ng")
    parser.add_argument("--as-recorded", action="store_true",
                        help="no new audio: a manifest of the speakers' recordings themselves, each once, as "
                             "recorded (their own level, noise and edges)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--name", help="utterance id prefix, e.g. train (not with --as-recorded)")
    parser.add_argument("--out-dir", type=Path, help="folder of the new WAV files (not with --as-recorded)")
    parser.add_argument("--manifest", required=True, type=Path)
    args = parser.parse_args(argv)
    if not args.as_recorded and (args.name is None or args.out_dir is None):
        parser.error("--name and --out-dir are required (unless --as-recorded)")

    first, last = (int(x) for x in args.indices.split("-"))
    speakers = args.speakers.split(",")
    if args.as_recorded:
        return write_manifest(args.manifest, [
            {"id": path.stem, "audio": str(path.resolve()), "duration": round(soundfile.info(str(path)).duration, 4),
             "text": WORDS[digit], "speaker": speaker}
            for path, digit, speaker in recording_files(args.corpus_dir, speakers, range(first, last + 1))])
    table = recordings(args.corpus_dir, speakers, range(first, last + 1))
    rng, nprng = random.Random(args.seed), np.random.default_rng(args.seed)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    records = []
    for n in range(args.num):
        speaker = speakers[n % len(speakers)]
        waveform, digits = connected(table, speaker, rng, nprng, args.min_digits, args.max_digits,
                                     args.perturb, args.noise_db, args.tilt, args.trim, args.edge_min, args.bare,
                                     args.trim_db)
        records.append(_write(args, f"{speaker}-{args.name}-{n:05d}", waveform, RATE, digits, speaker))
    if args.espeak_num:
        tts.require_espeak()
    for n in range(args.espeak_num):
        voice = tts.random_voice(rng, test=rng.random() < 0.3)  # any espeak-ng voice: the test speaker is human
        digits = [rng.randrange(10) for _ in range(rng.randint(args.min_digits, args.max_digits))]
        waveform, rate = tts.speak(" ".join(WORDS[d] for d in digits), voice["voice"], voice["speed"],
                                   voice["pitch"], gap_ms=rng.choice([0, 0, 50, 150]))
        waveform = soxr.resample(waveform, rate, 16000)
        waveform = waveform / max(1e-4, float(np.abs(waveform).max())) * 0.5 * 10 ** (rng.uniform(-12, 0) / 20)
        records.append(_write(args, f"espeak-{args.name}-{n:05d}", waveform, 16000, digits, voice["voice"]))
    return write_manifest(args.manifest, records)


def write_manifest(path: Path, records: list[dict]) -> int:
    """Write the records as JSONL (atomically) and say how much audio they hold."""
    data.write_manifest(path, records, relative_to_manifest=False)
    minutes = sum(r["duration"] for r in records) / 60
    print(f"{path}: {len(records)} utterances, {minutes:.1f} minutes")
    return 0


def _write(args, utt_id, waveform, rate, digits, speaker):
    path = args.out_dir / f"{utt_id}.wav"
    soundfile.write(str(path), np.clip(waveform, -1, 1), rate, subtype="PCM_16")
    return {"id": utt_id, "audio": str(path.resolve()), "duration": round(len(waveform) / rate, 4),
            "text": " ".join(WORDS[d] for d in digits), "speaker": speaker}


if __name__ == "__main__":
    sys.exit(main())
