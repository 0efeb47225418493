"""Speech from espeak-ng: many voices (accent + variant), speeds and pitches, disjoint train/test voices.

A voice is an English accent (`en-us`, `en-gb-scotland`, ...) with a variant (`m3`, `f2`,
`klatt`, ...): `espeak-ng -v en-us+m3`. Training and test sets draw their variants from
disjoint lists (TRAIN_VARIANTS, TEST_VARIANTS), so that a test voice is never heard in
training; accents are shared because they change pronunciation, not the speaker.
"""

import random
import shutil
import subprocess

import numpy as np
import soundfile

ACCENTS = ["en-us", "en-gb", "en-gb-x-rp", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-gbcwmd",
           "en-029", "en-us-nyc"]
TRAIN_VARIANTS = ["m1", "m2", "m3", "m4", "m5", "m6", "f1", "f2", "f3", "klatt", "klatt2", "klatt3",
                  "Alex", "Andy", "adam", "aunty", "belinda", "benjamin", "boris", "caleb", "david",
                  "edward", "Gene", "iven", "john", "linda", "Mike", "norbert", "paul", "quincy",
                  "rob", "robert", "steph", "travis", "victor", "zac", "Michael", "Andrea"]
TEST_VARIANTS = ["m7", "f4", "f5", "klatt4", "Annie", "Lee", "max", "steph3", "shelby", "ed"]
SPEEDS = (120, 200)  # words per minute, drawn uniformly
PITCHES = (20, 80)  # espeak-ng pitch 0..99, drawn uniformly


def require_espeak() -> str:
    path = shutil.which("espeak-ng")
    if path is None:
        raise SystemExit("espeak-ng is not installed: run 'sudo apt-get install espeak-ng' (Debian/Ubuntu) "
                         "or 'brew install espeak-ng' (macOS)")
    return path


def random_voice(rng: random.Random, test: bool) -> dict:
    """{"voice": "en-gb+m3", "speed": wpm, "pitch": 0..99} drawn from the train or test variants."""
    variants = TEST_VARIANTS if test else TRAIN_VARIANTS
    return {"voice": f"{rng.choice(ACCENTS)}+{rng.choice(variants)}",
            "speed": rng.randint(*SPEEDS), "pitch": rng.randint(*PITCHES)}


def speak(text: str, voice: str = "en-us", speed: int = 160, pitch: int = 50, gap_ms: int = 0):
    """(waveform float32 [N] in [-1, 1], sample rate) for `text` spoken by espeak-ng.

    `gap_ms` is the pause espeak-ng leaves between words (-g, in units of 10 ms).
    """
    command = ["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "--stdout"]
    if gap_ms:
        command += ["-g", str(max(1, gap_ms // 10))]
    result = subprocess.run(command + ["--", text], capture_output=True, check=False)
    if result.returncode != 0 or not result.stdout:
        raise RuntimeError(f"espeak-ng -v {voice} failed on {text!r}: {result.stderr.decode(errors='replace')}")
    # espeak-ng streams a WAV header with unknown (0xFFFFFFFF) sizes: read the PCM after it.
    data = result.stdout
    rate = int.from_bytes(data[24:28], "little")
    start = data.find(b"data") + 8
    samples = np.frombuffer(data[start:start + (len(data) - start) // 2 * 2], dtype="<i2")
    return samples.astype(np.float32) / 32768.0, rate


def write(path, waveform, rate) -> None:
    """16-bit PCM WAV (or FLAC by extension)."""
    soundfile.write(str(path), np.clip(waveform, -1.0, 1.0), rate, subtype="PCM_16")


