"""Feature extraction speed: `tasr bench features [--seconds 120] [--repeats 7]`.

Computes 80-bin Kaldi log-mel features (25 ms / 10 ms, dither 0) of the same audio (FSDD
recordings joined up to `--seconds`, resampled to 16 kHz; random speech-like signals when the
data is missing) with:

  tasr batched      audio.Fbank on padded batches of --batch-size utterances (lengths given)
  tasr one-by-one   audio.fbank per utterance
  torchaudio        torchaudio.compliance.kaldi.fbank per utterance (it has no batching)
  kaldi-native-fbank  OnlineFbank per utterance
  librosa           melspectrogram + log per utterance (not Kaldi's features: speed only)

each on 1 CPU thread, then tasr batched on 2 threads, and on CUDA when there is a GPU (the same
batches, and a 64 x 20 s batch). Every method runs once to warm up, then `--repeats` rounds in
which each method runs once in turn (so a busy machine slows them all alike); the table shows
the median. Speed is seconds of audio per wall-clock second (x real time).

The command also checks that tasr's features equal torchaudio's (max abs difference <= 1e-3,
else it fails with exit status 2), and shows how far each float32 result is from torchaudio
computing in float64. With --min-speedup X it also fails when tasr batched on 1 thread is less
than X times as fast as torchaudio. A noise floor (--noise-floor) is added to the audio: FSDD is
8 kHz, so upsampled it has nothing above 4 kHz, and there every float32 implementation returns
its own rounding noise (they then differ by ~1e-3 in those bins). --profile prints where
tasr batched spends its time (torch.profiler, self CPU time per operator).
"""

import json
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch
import torchaudio.compliance.kaldi as kaldi
from tqdm import tqdm

from tasr import audio
from tasr.errors import TasrError

SAMPLE_RATE = 16000
TOLERANCE = 1e-3


def add_arguments(parser):
    default_data = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "fsdd"
    parser.add_argument("--data", default=str(default_data), help="FSDD folder (with recordings/*.wav); default %(default)s")
    parser.add_argument("--seconds", type=float, default=120.0, help="seconds of audio to process (default %(default)s)")
    parser.add_argument("--repeats", type=int, default=7, help="timed rounds; the median is shown (default %(default)s)")
    parser.add_argument(
        "--noise-floor", type=float, default=1e-3,
        help="std of white noise added to the audio, as a recording's noise floor (default %(default)s, -60 dBFS; "
             "0 keeps the raw upsampled FSDD, whose empty 4-8 kHz band is pure rounding noise for every float32 method)",
    )
    parser.add_argument("--batch-size", type=int, default=64, help="utterances per tasr batch (default %(default)s)")
    parser.add_argument("--skip", nargs="*", default=[], help="methods to leave out (e.g. librosa)")
    parser.add_argument("--min-speedup", type=float, default=0.0, help="fail unless tasr batched (1 thread) is this many times torchaudio's speed")
    parser.add_argument("--profile", action="store_true", help="print the operators tasr batched spends its time in")
    parser.add_argument("--json", help="also write the figures to this JSON file")


def load_audio(folder: str, seconds: float):
    """A list of 1-D float32 tensors at 16 kHz totalling >= `seconds`, and a description of the source."""

    recordings = sorted((Path(folder) / "recordings").glob("*.wav"))
    waves, total = [], 0.0
    if recordings:
        # take speakers and digits in turn so the lengths vary as in a real set
        recordings.sort(key=lambda p: (p.stem.split("_")[2], p.stem.split("_")[1], p.stem.split("_")[0]))
        for path in recordings:
            wave = audio.load(path, SAMPLE_RATE)
            waves.append(wave)
            total += wave.numel() / SAMPLE_RATE
            if total >= seconds:
                return waves, f"{len(waves)} FSDD recordings from {folder}, resampled 8 -> 16 kHz"
        raise TasrError(f"{folder}: only {total:.1f} s of audio, fewer than --seconds {seconds}")
    generator = torch.Generator().manual_seed(0)
    while total < seconds:
        n = int(SAMPLE_RATE * (0.5 + 2.5 * torch.rand((), generator=generator).item()))
        t = torch.arange(n) / SAMPLE_RATE
        pitch = 100 + 150 * torch.rand((), generator=generator)
        wave = 0.3 * torch.sin(2 * torch.pi * pitch * t) * torch.sin(torch.pi * t * 3).abs()
        waves.append((wave + 0.02 * torch.randn(n, generator=generator)).float())
        total += n / SAMPLE_RATE
    return waves, f"{len(waves)} synthetic utterances ({folder} has no recordings/*.wav)"


def make_batches(waves, batch_size):
    """Padded batches `[B, N]` with lengths `[B]`, utterances sorted by length (as a data loader would)."""

    order = sorted(range(len(waves)), key=lambda i: waves[i].numel())
    batches = []
    for start in range(0, len(order), batch_size):
        chunk = [waves[i] for i in order[start : start + batch_size]]
        lengths = torch.tensor([w.numel() for w in chunk])
        padded = torch.zeros(len(chunk), int(lengths.max()))
        for row, wave in enumerate(chunk):
            padded[row, : wave.numel()] = wave
        batches.append((padded, lengths, [order[i] for i in range(start, start + len(chunk))]))
    return batches


def methods(waves, batches, skip, cuda):
    """name -> (threads, function computing everything, returning per-utterance features or None)."""

    frontend = audio.Fbank(SAMPLE_RATE)

    def tasr_batched(device="cpu"):
        def run():
            module = frontend.to(device)
            results = [module(padded.to(device), lengths.to(device)) for padded, lengths, _ in batches]
            if device != "cpu":
                torch.cuda.synchronize()
                return None
            return Batched(results)

        return run

    class Batched(list):
        """The batch outputs of tasr batched; `per_utterance()` (outside the timing) for the checks."""

        def per_utterance(self):
            out = [None] * len(waves)
            for (feats, frame_lengths), (_, _, index) in zip(self, batches):
                for row, i in enumerate(index):
                    out[i] = feats[row, : int(frame_lengths[row])]
            return out

    table = {
        "tasr batched": (1, tasr_batched()),
        "tasr one-by-one": (1, lambda: [audio.fbank(w, SAMPLE_RATE) for w in waves]),
        "torchaudio": (1, lambda: [kaldi.fbank(w.unsqueeze(0), num_mel_bins=80, dither=0.0, energy_floor=0.0) for w in waves]),
    }
    try:
        import kaldi_native_fbank as knf

        options = knf.FbankOptions()
        options.frame_opts.dither = 0.0
        options.mel_opts.num_bins = 80
        arrays = [w.numpy() for w in waves]

        def kaldi_native():
            out = []
            for samples in arrays:
                computer = knf.OnlineFbank(options)
                computer.accept_waveform(SAMPLE_RATE, samples)
                computer.input_finished()
                out.append(np.stack([computer.get_frame(i) for i in range(computer.num_frames_ready)]))
            return [torch.from_numpy(x) for x in out]

        table["kaldi-native-fbank"] = (1, kaldi_native)
    except ImportError:
        print("kaldi-native-fbank is not installed: skipped (pip install kaldi-native-fbank)")
    try:
        import librosa

        arrays = [w.numpy() for w in waves]

        def librosa_mel():
            for samples in arrays:
                mel = librosa.feature.melspectrogram(
                    y=samples, sr=SAMPLE_RATE, n_fft=512, win_length=400, hop_length=160, n_mels=80, center=False
                )
                np.log(np.maximum(mel, 1e-10))

        table["librosa"] = (1, librosa_mel)
    except ImportError:
        print("librosa is not installed: skipped")
    table["tasr batched, 2 threads"] = (2, tasr_batched())
    if cuda:
        table["tasr batched, CUDA"] = (None, tasr_batched("cuda"))
        big = torch.randn(64, 20 * SAMPLE_RATE, device="cuda") * 0.1

        def cuda_big():
            frontend.to("cuda")(big)
            torch.cuda.synchronize()

        table["tasr CUDA 64 x 20 s"] = (None, cuda_big)
    return {name: value for name, value in table.items() if name not in skip}


def max_difference(ours, reference):
    worst = 0.0
    for a, b in zip(ours, reference):
        if a.shape != b.shape:
            raise TasrError(f"frame counts differ: {tuple(a.shape)} vs {tuple(b.shape)}")
        if a.numel():
            worst = max(worst, (a.double() - b.double()).abs().max().item())
    return worst


def main(args):
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # numpy's BLAS (librosa's mel product) then uses its own thread count
        threadpool_limits = None

    if args.repeats < 1 or args.seconds <= 0 or args.batch_size < 1:
        raise TasrError("--repeats and --batch-size must be >= 1 and --seconds > 0")
    waves, source = load_audio(args.data, args.seconds)
    if args.noise_floor > 0:
        generator = torch.Generator().manual_seed(0)
        waves = [w + args.noise_floor * torch.randn(w.shape, generator=generator) for w in waves]
        source += f", noise floor std {args.noise_floor:g}"
    seconds = sum(w.numel() for w in waves) / SAMPLE_RATE
    batches = make_batches(waves, args.batch_size)
    cuda = torch.cuda.is_available()
    table = methods(waves, batches, set(args.skip), cuda)
    print(f"audio: {seconds:.1f} s, {source}; tasr batches of {args.batch_size}; {args.repeats} rounds; "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}")

    def run(name, keep=False):
        threads, function = table[name]
        torch.set_num_threads(threads or 1)
        limits = threadpool_limits(threads or 1) if threadpool_limits else None
        try:
            start = time.perf_counter()
            result = function()
            return time.perf_counter() - start, (result if keep else None)
        finally:
            if limits is not None:
                limits.unregister()

    outputs = {name: run(name, keep=True)[1] for name in table}  # warm-up, and the outputs to compare
    outputs = {name: out.per_utterance() if hasattr(out, "per_utterance") else out for name, out in outputs.items()}
    checks = {}
    if "torchaudio" in outputs:
        for name in ("tasr batched", "tasr one-by-one", "kaldi-native-fbank"):
            if outputs.get(name) is not None:
                checks[f"{name} vs torchaudio"] = max_difference(outputs[name], outputs["torchaudio"])
        # how far each float32 result is from the float64 one (torchaudio on float64 input)

        exact = [kaldi.fbank(w.double().unsqueeze(0), num_mel_bins=80, dither=0.0, energy_floor=0.0) for w in waves]
        for name in ("tasr batched", "torchaudio", "kaldi-native-fbank"):
            if outputs.get(name) is not None:
                checks[f"{name} vs torchaudio in float64"] = max_difference(outputs[name], exact)
    del outputs
    times = {name: [] for name in table}
    for _ in tqdm(range(args.repeats), desc="rounds", unit="round"):
        for name in table:
            times[name].append(run(name)[0])
    medians = {name: statistics.median(t) for name, t in times.items()}
    base = medians.get("torchaudio")
    width = max(len(name) for name in table)
    print(f"\n{'method'.ljust(width)}  threads  median s   x real time  vs torchaudio")
    for name, median in medians.items():
        threads = table[name][0] or "GPU"
        audio_seconds = 64 * 20 if name.endswith("64 x 20 s") else seconds
        ratio = f"{base / median * audio_seconds / seconds:12.2f}x" if base else ""
        print(f"{name.ljust(width)}  {str(threads):>7}  {median:8.4f}  {audio_seconds / median:12.0f}  {ratio}")
    print()
    for what, difference in checks.items():
        print(f"max abs difference, {what}: {difference:.2e} (log-mel; limit {TOLERANCE:g} for tasr)")
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        torch.set_num_threads(1)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            table["tasr batched"][1]()
        print("\nwhere tasr batched (1 thread) spends its time:")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=14))
    if args.json:
        figures = {"seconds": seconds, "source": source, "median_s": medians, "times_s": times, "max_abs_difference": checks}
        Path(args.json).write_text(json.dumps(figures, indent=2))
    speedup = base / medians["tasr batched"] if base and "tasr batched" in medians else None
    failures = [f"{what}: {d:.2e} > {TOLERANCE}" for what, d in checks.items() if what.endswith("vs torchaudio") and what.startswith("tasr") and d > TOLERANCE]
    if args.min_speedup and speedup is not None and speedup < args.min_speedup:
        failures.append(f"tasr batched is {speedup:.2f}x torchaudio, below --min-speedup {args.min_speedup}")
    summary = f"tasr batched (1 thread): {speedup:.2f}x torchaudio" if speedup else "done"
    if failures:
        raise TasrError(f"{summary}; FAILED: " + "; ".join(failures))
    print(summary + (f"; outputs agree within {TOLERANCE:g}" if checks else ""))
