"""Speak generated sentences with espeak-ng: train, dev and test sets plus one long test recording.

Written under OUT:
  <set>/<id>.wav      16 kHz 16-bit mono, one sentence each
  <set>.jsonl         manifest {"id", "audio", "duration", "text", "speaker"} (speaker = voice)
  long/long.wav       several minutes of continuous speech by one test voice (sentences
                      joined with 0.3-0.9 s pauses)
  long.jsonl          that recording as one utterance
  long_segments.jsonl its sentences as segments ("offset", "duration" in seconds)
Train and dev use TRAIN_VARIANTS voices; test and long use TEST_VARIANTS (never trained on).
Sentences of the test sets never occur in the training set.
"""

import argparse
import random
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import soxr

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
import tts  # noqa: E402
from sentences import sentence  # noqa: E402
from tasr import data  # noqa: E402

RATE = 16000


def render(job):
    """Speak one sentence and write it; returns the manifest record."""
    utt_id, text, voice, path = job
    waveform, rate = tts.speak(text, voice["voice"], voice["speed"], voice["pitch"])
    waveform = soxr.resample(waveform, rate, RATE)
    waveform = np.concatenate([np.zeros(int(0.1 * RATE), np.float32), waveform,
                               np.zeros(int(0.1 * RATE), np.float32)])
    tts.write(path, waveform * 0.9 / max(1e-4, float(np.abs(waveform).max())), RATE)
    return {"id": utt_id, "audio": str(Path(path).resolve()), "duration": round(len(waveform) / RATE, 4),
            "text": text, "speaker": voice["voice"]}


def make_set(name, count, test, rng, out, pool, avoid=frozenset()):
    folder = out / name
    folder.mkdir(parents=True, exist_ok=True)
    jobs, texts = [], set()
    while len(jobs) < count:
        text = sentence(rng)
        if text in avoid:
            continue
        texts.add(text)
        jobs.append((f"{name}-{len(jobs):05d}", text, tts.random_voice(rng, test), folder / f"{name}-{len(jobs):05d}.wav"))
    records = list(pool.map(render, jobs, chunksize=16))
    write_manifest(out / f"{name}.jsonl", records)
    hours = sum(r["duration"] for r in records) / 3600
    print(f"{name}: {len(records)} utterances, {hours * 60:.1f} minutes")
    return texts


def make_long(minutes, rng, out, avoid):
    """One test voice reading sentences for `minutes`, with pauses; manifests for it and its segments."""
    folder = out / "long"
    folder.mkdir(parents=True, exist_ok=True)
    voice = tts.random_voice(rng, test=True)
    voice["speed"] = 160
    pieces, segments, position = [np.zeros(int(0.5 * RATE), np.float32)], [], 0.5
    while position < minutes * 60:
        text = sentence(rng)
        if text in avoid:
            continue
        waveform, rate = tts.speak(text, voice["voice"], voice["speed"], voice["pitch"])
        waveform = soxr.resample(waveform, rate, RATE)
        waveform = 0.8 * waveform / max(1e-4, float(np.abs(waveform).max()))
        segments.append({"id": f"long-{len(segments):04d}", "offset": round(position, 4),
                         "duration": round(len(waveform) / RATE, 4), "text": text})
        pause = np.zeros(int(rng.uniform(0.3, 0.9) * RATE), np.float32)
        pieces += [waveform, pause]
        position += (len(waveform) + len(pause)) / RATE
    recording = np.concatenate(pieces)
    path = folder / "long.wav"
    tts.write(path, recording, RATE)
    speaker = voice["voice"]
    for segment in segments:
        segment.update(audio=str(path.resolve()), speaker=speaker)
    write_manifest(out / "long_segments.jsonl", segments)
    write_manifest(out / "long.jsonl", [{"id": "long", "audio": str(path.resolve()),
                                         "duration": round(len(recording) / RATE, 4),
                                         "text": " ".join(s["text"] for s in segments), "speaker": speaker}])
    print(f"long: {len(recording) / RATE / 60:.1f} minutes, {len(segments)} sentences, voice {voice['voice']}")


def write_manifest(path, records):
    data.write_manifest(path, records, relative_to_manifest=False)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--num-train", type=int, default=3000)
    parser.add_argument("--num-dev", type=int, default=200)
    parser.add_argument("--num-test", type=int, default=300)
    parser.add_argument("--long-minutes", type=float, default=5.0, help="length of the long test recording")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--nj", type=int, default=2)
    args = parser.parse_args(argv)
    tts.require_espeak()
    rng = random.Random(args.seed)
    with ProcessPoolExecutor(max(1, args.nj)) as pool:
        train_texts = make_set("train", args.num_train, False, rng, args.out, pool)
        make_set("dev", args.num_dev, False, rng, args.out, pool)
        make_set("test", args.num_test, True, rng, args.out, pool, avoid=frozenset(train_texts))
    if args.long_minutes > 0:
        make_long(args.long_minutes, rng, args.out, frozenset(train_texts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
