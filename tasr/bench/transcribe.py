"""Real-time factor of `tasr transcribe` on 10 s, 60 s and 600 s inputs, 1 and 2 CPU threads (and CUDA).

Each measurement runs in a fresh process (so that its peak memory is its own): load the model,
warm up on 1 s, then time the whole transcription of one input (front-end, encoder in
--max-frames windows, greedy decoding, word alignment, subtitle segments; not the file read).
RTF = wall time / audio duration. Peers in the same table: the same weights with FULL attention
(left/right None, one pass, memory quadratic in length) up to --full-max-s seconds of audio.

Without MODEL, a random-weight model with the "small" encoder of `models/encoder.py` is used
(speed does not depend on the weights). The input is --audio repeated to each duration, or
speech-like noise bursts with pauses. The command fails (exit 1) when the RTF of truncated
attention on the largest thread count exceeds --max-rtf.

Streaming, in a table of its own: the same model and inputs fed in --stream-chunk-ms chunks
through `model.stream` (as `tasr transcribe --streaming`: online front-end, the encoder's
caches, greedy partial text, then the final result), on 1 CPU thread, beside the offline RTF on
1 thread. Its latency is the chunk plus the model's look-ahead. The command also fails when
streaming is more than --max-stream-ratio times slower than offline. Beside the ratio, its floor
on this CPU: the encoder's linear layers alone on the chunks' frames, against the whole offline
transcription (a chunk's few frames make small matrix products that reread every weight).

Runtimes (--runtimes torch,onnxruntime,onnxruntime-int8,sherpa-onnx), in a table of their own:
the model exported by `tasr export --int8` and run offline on the same inputs and thread counts
by onnxruntime (fp32, int8 weights; `tasr transcribe --runtime ...`, the whole path with word
times) and by sherpa-onnx (its own fbank and greedy search, text only), beside PyTorch eager;
with the sizes of model.pt, model.onnx and model.int8.onnx. Whether int8 changes the WER is a
matter for `tasr decode`, not this table. `onnxruntime-stream` adds the streaming export
(`tasr export --streaming`, --stream-chunk-ms chunks) fed chunk by chunk through `OnnxModel.stream`
(as `tasr transcribe --runtime onnxruntime --streaming`); with `onnxruntime` beside it, the
streaming table also gives its ratio to onnxruntime offline, checked against --max-stream-ratio.
"""

import os
import resource
import sys
import tempfile
import time

import soundfile
import torch
from torch import nn

from tasr import audio
from tasr import export
from tasr import export_streaming
from tasr.onnx_runtime import STREAMING_FILE
from tasr.bench.child import run_in_child
from tasr.errors import TasrError
from tasr.model import SpeechRecognizer, load_file, load_model
from tasr.models.streaming import linear, stream_linear
from tasr.subtitles import FORMATS, TranscriptWriters
from tasr.text import CharTokenizer
from tasr.transcription import DEFAULT_MAX_FRAMES, Transcriber, read_blocks

SMALL = {"sample_rate": 16000, "fbank": {"num_mel_bins": 80},
         "encoder": {"block": "conformer", "d_model": 144, "n_heads": 4, "n_layers": 4, "ff_dim": 288,
                     "subsampling_channels": 32, "conv_kernel": 15, "left": 16, "right": 2, "dropout": 0.0}}
STREAM_THREADS = 1
RUNTIMES = ("torch", "onnxruntime", "onnxruntime-int8", "sherpa-onnx", "onnxruntime-stream")


def add_arguments(parser) -> None:
    parser.add_argument("model", metavar="MODEL", nargs="?",
                        help="model file (default: random weights, the small conformer of models/encoder.py)")
    parser.add_argument("--durations", type=float, nargs="+", default=[10, 60, 600], metavar="S",
                        help="input lengths in seconds (default 10 60 600)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], metavar="N", help="default 1 2")
    parser.add_argument("--audio", metavar="FILE", help="audio repeated to each duration (default: noise bursts)")
    parser.add_argument("--max-frames", type=int, default=None, metavar="N",
                        help="as in `tasr transcribe` (default: its default)")
    parser.add_argument("--full-max-s", type=float, default=60, metavar="S",
                        help="measure the full-attention peer up to this input length (default 60)")
    parser.add_argument("--no-cuda", action="store_true", help="skip CUDA even when present")
    parser.add_argument("--max-rtf", type=float, default=0.02,
                        help="fail when truncated attention on the most threads is slower than this (default 0.02)")
    parser.add_argument("--stream-chunk-ms", type=int, default=320, metavar="MS",
                        help="chunk of the streaming measurement, ms of audio (default 320; 0: no streaming)")
    parser.add_argument("--runtimes", default="torch", metavar="LIST",
                        help=f"comma-separated, of {', '.join(RUNTIMES)}: with any but torch, a table of the model "
                             "exported by `tasr export --int8` in each runtime, offline on --threads CPU threads, "
                             "and the files' sizes (default torch: no such table)")
    parser.add_argument("--file-durations", type=float, nargs="*", default=[3600], metavar="S",
                        help="lengths of generated 8 kHz wav files transcribed as `tasr transcribe` does (block by "
                             "block, outputs written), with peak RSS, on the most --threads (default 3600; "
                             "86400 for a day takes about half an hour; none: no such table)")
    parser.add_argument("--max-stream-ratio", type=float, default=1.5,
                        help="fail when streaming RTF exceeds this times offline RTF on 1 thread (default 1.5)")


def speechlike(seconds: float, rate: int, seed: int = 0) -> torch.Tensor:
    """Bursts of band-limited noise (0.3-0.7 s) with pauses (0.2-0.8 s) and a low noise floor."""
    g = torch.Generator().manual_seed(seed)
    n = int(seconds * rate)
    wave = 1e-3 * torch.randn(n, generator=g)
    t = 0
    while t < n:
        t += int(rate * (0.2 + 0.6 * torch.rand(1, generator=g).item()))
        length = int(rate * (0.3 + 0.4 * torch.rand(1, generator=g).item()))
        burst = torch.randn(length, generator=g)
        burst = torch.nn.functional.avg_pool1d(burst[None, None], 5, 1, 2)[0, 0] * torch.hann_window(length)
        wave[t:t + length] += 0.3 * burst[: max(0, min(length, n - t))]
        t += length
    return wave


def measure_transcription(spec: dict) -> dict:
    """In a child process: one timed transcription; the result dict."""
    try:
        torch.set_num_threads(spec["threads"])
        state = load_file(spec["model"])
        if spec["attention"] == "full":
            state["config"]["encoder"].update(left=None, right=None)
        model = SpeechRecognizer.from_file_state(state).to(spec["device"]).eval()
        rate = model.sample_rate
        wave = _input_wave(spec, rate)
        budget = spec["max_frames"] if spec["max_frames"] is not None else DEFAULT_MAX_FRAMES
        max_frames = None if spec["attention"] == "full" else budget
        _transcribe(model, wave[:rate], max_frames, spec.get("chunk_ms"))
        sync = torch.cuda.synchronize if spec["device"] == "cuda" else (lambda: None)
        sync()
        start = time.perf_counter()
        t = _transcribe(model, wave, max_frames, spec.get("chunk_ms"))
        sync()
        wall = time.perf_counter() - start
        result = {"wall": wall, "rtf": wall / spec["seconds"], "words": len(t.words),
                  "peak_rss_mb": peak_rss_mb()}
        if spec["device"] == "cuda":
            result["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
        return result
    except Exception as error:  # reported in the table, e.g. out of memory for full attention
        return {"error": f"{type(error).__name__}: {str(error).splitlines()[0][:80]}"}


def measure_linear_floor(spec: dict) -> dict:
    """In a child process: the seconds the encoder's linear layers (`nn.Linear` and 1x1 `nn.Conv1d`,
    in model order) take on spec["seconds"] of output frames fed spec["chunk_ms"] at a time, best of
    3. No streaming implementation of the model can take less: a chunk's few frames multiply every
    weight matrix anew (small, cache-cold matrix products)."""
    torch.set_num_threads(spec["threads"])
    model = SpeechRecognizer.load(spec["model"]).eval()
    weights = [stream_linear(m) for m in model.encoder.modules()
               if isinstance(m, nn.Linear) or (isinstance(m, nn.Conv1d) and m.kernel_size == (1,))]
    chunk = max(1, round(spec["chunk_ms"] / model.frame_ms))
    chunks = -(-round(spec["seconds"] / model.output_frame_s) // chunk)
    inputs = {w.shape[0]: torch.randn(chunk, w.shape[0]) for w, _ in weights}
    best = float("inf")
    for _ in range(3):  # the first also warms up
        start = time.perf_counter()
        for _ in range(chunks):
            for w, b in weights:
                linear(inputs[w.shape[0]], w, b)
        best = min(best, time.perf_counter() - start)
    return {"wall": best}


def _input_wave(spec: dict, rate: int) -> torch.Tensor:
    """The waveform [N] at `rate` of a measurement: --audio repeated to spec["seconds"], or `speechlike` noise."""
    if not spec["audio"]:
        return speechlike(spec["seconds"], rate)
    with soundfile.SoundFile(spec["audio"]) as f:  # read no more than needed (peak memory)
        data = f.read(min(f.frames, int(spec["seconds"] * f.samplerate) + 1), dtype="float32", always_2d=True)
        piece = audio.load((torch.from_numpy(data.T.copy()), f.samplerate), rate)
    return piece.repeat(int(spec["seconds"] * rate) // max(1, piece.shape[0]) + 1)[: int(spec["seconds"] * rate)]


def peak_rss_mb() -> float:
    """This process's peak resident memory in MB: VmHWM (getrusage's ru_maxrss would count the parent's
    peak at the fork that started it)."""
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _transcribe(model, wave, max_frames, chunk_ms=None):
    """The final `tasr.Result` of `wave`: offline, or with chunk_ms fed chunk by chunk through `model.stream`."""
    if not chunk_ms:
        return model.transcribe(wave, max_frames=max_frames)
    step = max(1, round(model.sample_rate * chunk_ms / 1000))
    *_, final = model.stream(wave[i:i + step] for i in range(0, wave.shape[0], step))
    return final


def measure(spec: dict, function: str = "measure_transcription") -> dict:
    """`function(spec)` of this module in a fresh process (`tasr.bench.child`): its result dict."""
    return run_in_child(f"tasr.bench.transcribe:{function}", spec)


def main(args) -> int:
    from tqdm import tqdm

    with tempfile.TemporaryDirectory() as tmp:
        model_path = args.model
        if model_path is None:
            torch.manual_seed(0)
            model_path = os.path.join(tmp, "random.pt")
            SpeechRecognizer(SMALL, CharTokenizer(list(" 'abcdefghijklmnopqrstuvwxyz"))).save(model_path)
        model = SpeechRecognizer.load(model_path)  # a clear error now for a bad file
        print(model.describe(), file=sys.stderr)
        devices = [("cpu", n) for n in args.threads]
        if torch.cuda.is_available() and not args.no_cuda:
            devices.append(("cuda", 1))
        specs = []
        for device, threads in devices:
            for seconds in args.durations:
                for attention in ("truncated", "full"):
                    if attention == "full" and seconds > args.full_max_s:
                        continue
                    specs.append({"model": model_path, "device": device, "threads": threads, "seconds": seconds,
                                  "attention": attention, "audio": args.audio, "max_frames": args.max_frames})
        specs += stream_specs(model, model_path, args, specs)
        runtimes, sizes = runtime_specs(model, model_path, args, tmp)
        rows = []
        for spec in tqdm(specs, desc="bench transcribe", unit="run", disable=None):
            rows.append((spec, measure(spec)))
        runtime_rows = [(spec, measure(spec, "measure_runtime"))
                        for spec in tqdm(runtimes, desc="bench runtimes", unit="run", disable=None)]
        file_rows = [(spec, measure(spec, "measure_file")) for spec in file_specs(model_path, args, tmp)]
        floors = {spec["seconds"]: measure(spec, "measure_linear_floor") for spec in specs if spec.get("chunk_ms")}

    streamed = [(spec, r) for spec, r in rows if spec.get("chunk_ms")]
    rows = [(spec, r) for spec, r in rows if not spec.get("chunk_ms")]
    print(f"{'device':<6} {'threads':>7} {'input s':>8} {'attention':<10} {'wall s':>8} {'RTF':>8} {'peak RSS MB':>11}")
    for spec, r in rows:
        head = f"{spec['device']:<6} {spec['threads']:>7} {spec['seconds']:>8g} {spec['attention']:<10}"
        if "error" in r:
            print(f"{head} failed: {r['error']}")
            continue
        gpu = f"  (GPU peak {r['peak_gpu_mb']:.0f} MB)" if "peak_gpu_mb" in r else ""
        print(f"{head} {r['wall']:>8.2f} {r['rtf']:>8.4f} {r['peak_rss_mb']:>11.0f}{gpu}")
    print(full_attention_note(model, max(args.durations)))
    offline_failed = check_offline(args, rows)
    stream_failed = print_streaming(model, args, stream_pairs(rows, streamed, floors, runtime_rows))
    print_runtimes(runtime_rows, sizes)
    print_files(file_rows)
    return 1 if offline_failed or stream_failed else 0


def check_offline(args, rows) -> bool:
    """The verdict on the table above: True when truncated attention on the CPU's largest thread
    count exceeds --max-rtf (the other tables are not checked against it)."""
    top = max(args.threads)
    checked = [(s, r) for s, r in rows if s["device"] == "cpu" and s["threads"] == top and s["attention"] == "truncated"]
    failed = [(s, r) for s, r in checked if "error" in r or r["rtf"] > args.max_rtf]
    if failed:
        worst = ", ".join(f"{s['seconds']:g} s: " + (r.get("error") or f"RTF {r['rtf']:.4f}") for s, r in failed)
        print(f"FAIL: offline real-time factor above {args.max_rtf} on {top} thread(s) ({worst})")
        return True
    print(f"ok: offline real-time factor at most {args.max_rtf} on {top} thread(s) for every input length")
    return False


def stream_specs(model, model_path, args, specs) -> list[dict]:
    """Streaming measurements on STREAM_THREADS CPU thread(s), and their offline peers where `specs` lack them."""
    if not args.stream_chunk_ms or None in model.encoder.receptive_field():
        return []
    new = []
    for seconds in args.durations:
        offline = {"model": model_path, "device": "cpu", "threads": STREAM_THREADS, "seconds": seconds,
                   "attention": "truncated", "audio": args.audio, "max_frames": args.max_frames}
        if offline not in specs:
            new.append(offline)
        new.append({**offline, "chunk_ms": args.stream_chunk_ms})
    return new


def stream_pairs(rows, streamed, floors, runtime_rows) -> list[tuple]:
    """(runtime, seconds, offline result, streaming result, linear floor result or None) on STREAM_THREADS
    thread(s): PyTorch's streaming runs beside its offline `rows` (floors: {seconds: `measure_linear_floor`
    result}), then onnxruntime-stream beside onnxruntime offline where --runtimes measured both."""
    offline = {s["seconds"]: r for s, r in rows
               if s["device"] == "cpu" and s["threads"] == STREAM_THREADS and s["attention"] == "truncated"}
    pairs = [("torch", spec["seconds"], offline.get(spec["seconds"], {"error": "no offline peer"}), r,
              floors[spec["seconds"]]) for spec, r in streamed]
    runs = {(s["runtime"], s["seconds"]): r for s, r in runtime_rows if s["threads"] == STREAM_THREADS}
    for (runtime, seconds), r in runs.items():
        if runtime == "onnxruntime-stream" and ("onnxruntime", seconds) in runs:
            pairs.append(("onnxruntime", seconds, runs[("onnxruntime", seconds)], r, None))
    return pairs


def print_streaming(model, args, pairs) -> bool:
    """The streaming table, each runtime's streaming beside its offline RTF on the same thread count
    (`stream_pairs`); True when a ratio exceeds --max-stream-ratio."""
    if not args.stream_chunk_ms:
        return False
    if not pairs:
        print("streaming: not measured, the model's attention context is unlimited (left or right None)")
        return False
    lookahead = model.encoder.lookahead_ms
    latency = args.stream_chunk_ms + lookahead
    print(f"\nstreaming on {STREAM_THREADS} CPU thread(s), {args.stream_chunk_ms} ms chunks; latency = chunk + "
          f"look-ahead {lookahead:g} ms = {latency:g} ms")
    print(f"{'runtime':<12} {'input s':>8} {'offline RTF':>11} {'stream RTF':>10} {'ratio':>6} {'linear floor':>12} "
          f"{'latency ms':>10} {'peak RSS MB':>11}")
    failed = []
    for runtime, seconds, peer, r, floor in pairs:
        head = f"{runtime:<12} {seconds:>8g}"
        error = r.get("error") or peer.get("error") or (floor or {}).get("error")
        if error:
            print(f"{head} failed: {error}")
            failed.append(f"{runtime} {seconds:g} s")
            continue
        ratio = r["rtf"] / peer["rtf"]
        if ratio > args.max_stream_ratio:
            failed.append(f"{runtime} {seconds:g} s")
        floor = "-" if floor is None else f"{floor['wall'] / peer['wall']:.2f}"
        print(f"{head} {peer['rtf']:>11.4f} {r['rtf']:>10.4f} {ratio:>6.2f} {floor:>12} "
              f"{latency:>10g} {r['peak_rss_mb']:>11.0f}")
    print("linear floor: the encoder's linear layers alone in PyTorch, on the chunks' frames, against the whole "
          "offline transcription (a lower bound on the ratio)")
    if failed:
        print(f"FAIL: streaming more than {args.max_stream_ratio}x offline RTF ({', '.join(failed)})")
        return True
    print(f"ok: streaming at most {args.max_stream_ratio}x offline RTF for every runtime and input length")
    return False


def runtime_specs(model, model_path, args, folder) -> tuple[list[dict], dict]:
    """Measurements of --runtimes (none unless one is not torch), with `model` exported under `folder`
    (fp32 and int8); and {file name: bytes} of model.pt and the exported files."""
    runtimes = [r.strip() for r in args.runtimes.split(",") if r.strip()]
    unknown = sorted(set(runtimes) - set(RUNTIMES))
    if unknown:
        raise TasrError(f"--runtimes: unknown {', '.join(unknown)} (choose from {', '.join(RUNTIMES)})")
    if set(runtimes) <= {"torch"}:
        return [], {}
    onnx = os.path.join(folder, "onnx")
    print(f"exporting to ONNX for {', '.join(runtimes)}", file=sys.stderr)
    written = export.export(model, onnx, int8=True)
    if "onnxruntime-stream" in runtimes:
        written[STREAMING_FILE] = export_streaming.export_streaming(
            model, onnx, args.stream_chunk_ms or export_streaming.DEFAULT_CHUNK_MS)
    sizes = {os.path.basename(model_path): os.path.getsize(model_path)}
    sizes.update((name, os.path.getsize(path)) for name, path in written.items() if name.endswith(".onnx"))
    specs = [{"model": model_path, "onnx": onnx, "runtime": runtime, "threads": threads, "seconds": seconds,
              "audio": args.audio, "max_frames": args.max_frames,
              "chunk_ms": args.stream_chunk_ms or export_streaming.DEFAULT_CHUNK_MS}
             for threads in args.threads for seconds in args.durations for runtime in runtimes]
    return specs, sizes


def measure_runtime(spec: dict) -> dict:
    """In a child process: one timed offline transcription in spec["runtime"] on spec["threads"] CPU threads."""
    try:
        torch.set_num_threads(spec["threads"])
        runtime, threads = spec["runtime"], spec["threads"]
        if runtime == "onnxruntime-stream":
            model = export.OnnxModel(spec["onnx"], threads=threads)
            rate = model.sample_rate

            def words(wave):  # `tasr transcribe --runtime onnxruntime --streaming`: partial texts, then the result
                return len(_transcribe(model, wave, None, spec["chunk_ms"]).words)
        elif runtime == "sherpa-onnx":
            recognizer = export.sherpa_recognizer(spec["onnx"], threads=threads)
            rate = int(export.read_metadata(os.path.join(spec["onnx"], export.MODEL_FILE))["sample_rate"])

            def words(wave):  # sherpa-onnx's own fbank and greedy search: text, no word times
                stream = recognizer.create_stream()
                stream.accept_waveform(rate, wave.numpy())
                recognizer.decode_stream(stream)
                return len(stream.result.text.split())
        else:
            if runtime == "torch":
                model = SpeechRecognizer.load(spec["model"])
            else:
                model = export.OnnxModel(spec["onnx"], int8=runtime == "onnxruntime-int8", threads=threads)
            rate = model.sample_rate
            budget = spec["max_frames"] if spec["max_frames"] is not None else DEFAULT_MAX_FRAMES

            def words(wave):  # the whole `tasr transcribe` path: windows, greedy, word times, segments
                return len(model.transcribe(wave, max_frames=budget).words)
        wave = _input_wave(spec, rate)
        words(wave[:rate])
        start = time.perf_counter()
        count = words(wave)
        wall = time.perf_counter() - start
        return {"wall": wall, "rtf": wall / spec["seconds"], "words": count, "peak_rss_mb": peak_rss_mb()}
    except Exception as error:
        return {"error": f"{type(error).__name__}: {str(error).splitlines()[0][:80]}"}


def print_runtimes(rows, sizes) -> None:
    """The --runtimes table, the exported files' sizes and the fastest runtime per thread count."""
    if not rows:
        return
    print("\nruntimes on the CPU, the same model and input (torch, onnxruntime: the whole offline transcription "
          "with word times; sherpa-onnx: its own fbank and greedy text; onnxruntime-stream: the streaming export "
          "chunk by chunk, partial texts, then the result with word times)")
    print(f"{'runtime':<18} {'threads':>7} {'input s':>8} {'wall s':>8} {'RTF':>8} {'peak RSS MB':>11} {'words':>6}")
    best = {}
    for spec, r in rows:
        head = f"{spec['runtime']:<18} {spec['threads']:>7} {spec['seconds']:>8g}"
        if "error" in r:
            print(f"{head} failed: {r['error']}")
            continue
        print(f"{head} {r['wall']:>8.2f} {r['rtf']:>8.4f} {r['peak_rss_mb']:>11.0f} {r['words']:>6}")
        key = (spec["threads"], spec["seconds"])
        if key not in best or r["rtf"] < best[key][1]:
            best[key] = (spec["runtime"], r["rtf"])
    print("files: " + ", ".join(f"{name} {_size(size)}" for name, size in sizes.items()))
    for (threads, seconds), (runtime, rtf) in sorted(best.items()):
        print(f"fastest on {threads} thread(s), {seconds:g} s: {runtime} (RTF {rtf:.4f})")


def full_attention_note(model, seconds: float) -> str:
    """What the attention scores of one layer take for `seconds` of audio, full vs truncated."""
    enc = model.encoder
    frames = seconds * 1000 / enc.frame_shift_ms / enc.subsampling
    block = enc.blocks[0]
    heads = block.attention.n_heads
    band = (block.left or 0) + (block.right or 0) + 1
    return (f"attention scores of one layer for {seconds:g} s ({frames:.0f} frames, {heads} heads, float32): "
            f"full attention {_size(frames ** 2 * heads * 4)} (quadratic), truncated (band of {band}) "
            f"{_size(frames * band * heads * 4)} (linear)")


def _size(num_bytes: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if num_bytes < 1024 or unit == "GiB":
            return f"{num_bytes:.1f} {unit}"
        num_bytes /= 1024


FILE_RATE = 8000  # Hz of the generated files (resampled to the model's rate as they are read)


def file_specs(model_path, args, folder) -> list[dict]:
    """Whole-file measurements: one generated wav per --file-durations, on the most --threads."""
    return [{"model": model_path, "threads": max(args.threads), "seconds": seconds, "folder": folder}
            for seconds in args.file_durations or []]


def write_speechlike_wav(path, seconds: float, rate: int = FILE_RATE, block_s: float = 600.0) -> None:
    """`speechlike` noise bursts as a 16-bit wav file, written block by block (memory: one block)."""
    import soundfile

    with soundfile.SoundFile(path, "w", rate, 1, "PCM_16") as f:
        for i, start in enumerate(range(0, int(seconds), int(block_s))):
            f.write(speechlike(min(block_s, seconds - start), rate, seed=i).clamp(-1, 1).numpy())


def measure_file(spec: dict) -> dict:
    """In a child process: a generated wav of spec["seconds"] transcribed as `tasr transcribe FILE -f all` does."""
    try:
        torch.set_num_threads(spec["threads"])
        model = load_model(spec["model"], "cpu")
        path = os.path.join(spec["folder"], f"speech-{spec['seconds']:g}s.wav")
        write_speechlike_wav(path, spec["seconds"])
        transcriber = Transcriber(model)
        outputs = {fmt: os.path.join(spec["folder"], f"out.{fmt}") for fmt in FORMATS}
        start = time.perf_counter()
        with TranscriptWriters(outputs, path) as writers:
            result = transcriber.bounded(read_blocks(path, model.sample_rate), path, writers, keep_segments=False)
        wall = time.perf_counter() - start
        os.unlink(path)
        return {"wall": wall, "rtf": wall / spec["seconds"], "peak_rss_mb": peak_rss_mb(),
                "characters": len(result.text)}
    except Exception as error:
        return {"error": f"{type(error).__name__}: {str(error).splitlines()[0][:80]}"}


def print_files(rows) -> None:
    """The whole-file table: RTF and peak RSS against the file's length."""
    if not rows:
        return
    print(f"\nfiles read block by block ({FILE_RATE} Hz wav, every output format), on {rows[0][0]['threads']} "
          f"CPU thread(s)")
    print(f"{'input s':>8} {'wall s':>8} {'RTF':>8} {'peak RSS MB':>11}")
    for spec, r in rows:
        if "error" in r:
            print(f"{spec['seconds']:>8g} failed: {r['error']}")
        else:
            print(f"{spec['seconds']:>8g} {r['wall']:>8.1f} {r['rtf']:>8.4f} {r['peak_rss_mb']:>11.0f}")
