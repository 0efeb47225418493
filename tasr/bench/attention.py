"""Measure the cost of truncated self-attention against sequence length.

For each backend and length it times `truncated_attention` on random q, k, v [B, H, T, D]
(median of several runs after a warm-up) and measures the memory the call needs beyond its
inputs and output:

- CPU: each (backend, length) runs in a fresh child process; the peak resident set size
  (VmHWM, reset just before the call) minus the resident size while holding only the inputs,
  an output-sized tensor (and, with --backward, the upstream and input gradients);
- CUDA: torch.cuda.max_memory_allocated() minus the memory allocated for the same tensors.

Peers: `dense` (SDPA with a band mask, O(T²)), `chunked` (blocks against their key slice, O(T)),
`flex` (FlexAttention with a block-sparse mask), and `full` (plain SDPA over all frames,
flash kernels: the cost of not truncating). A point that would not fit in memory or would
take longer than --max-seconds is skipped, with what it would have needed.

Writes attention_cost.csv, attention_cost.json and attention_cost.png (log-log time and
memory against length, with the fitted scaling exponent of each backend) to --out.
"""

import csv
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from tasr.audio.options import FrameOptions
from tasr.models.attention import truncated_attention
from tasr.bench.child import run_in_child
from tasr.errors import TasrError

SUBSAMPLING = 4  # the encoder's usual subsampling (the default of models.encoder.Encoder)
FRAME_SECONDS = SUBSAMPLING * FrameOptions.frame_shift / 1000  # one encoder frame of the default front-end
PEERS = ("dense", "chunked", "flex", "full")


def add_arguments(parser):
    parser.add_argument("--lengths", default="1024,2048,4096,...,262144",
                        help="frame counts; 'a,b,...,z' continues the geometric series a, b, ... up to z "
                             "(default: %(default)s)")
    parser.add_argument("--left", type=int, default=64, help="past frames each frame sees (default: %(default)s)")
    parser.add_argument("--right", type=int, default=16, help="future frames each frame sees (default: %(default)s)")
    parser.add_argument("--heads", type=int, default=4, help="attention heads H (default: %(default)s)")
    parser.add_argument("--head-dim", type=int, default=64, help="channels per head D (default: %(default)s)")
    parser.add_argument("--batch", type=int, default=1, help="batch size B (default: %(default)s)")
    parser.add_argument("--backends", default=None,
                        help=f"comma-separated, from {', '.join(PEERS)} "
                             "(default: dense,chunked,full on CPU; dense,chunked,flex,full on CUDA)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="(default: %(default)s)")
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"),
                        help="(default: %(default)s)")
    parser.add_argument("--backward", action="store_true", help="time forward + backward instead of forward only")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: all cores)")
    parser.add_argument("--omp-wait-policy", default="passive", choices=("passive", "active", "inherit"),
                        help="OMP_WAIT_POLICY of the CPU child processes: 'passive' threads sleep while "
                             "waiting instead of spinning, which matters on a shared, busy CPU; 'inherit' "
                             "keeps this environment's setting (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per point, median reported (default: %(default)s)")
    parser.add_argument("--max-seconds", type=float, default=120.0,
                        help="skip a point predicted to take longer than this per run (default: %(default)s)")
    parser.add_argument("--block-size", type=int, default=None, help="query block of the chunked backend (default: automatic)")
    parser.add_argument("--fit-from", type=int, default=4000,
                        help="fit the scaling exponent on lengths >= this (default: %(default)s)")
    parser.add_argument("--out", default="bench_attention", help="folder for CSV, JSON and PNG (default: %(default)s)")
    parser.add_argument("--check", action="store_true",
                        help="exit with status 1 if a goal below is measured and missed")
    parser.add_argument("--goal-speedup", type=float, default=60.0,
                        help="goal: chunked at least this many times faster than dense ... (default: %(default)s)")
    parser.add_argument("--goal-speedup-at", type=int, default=16384, help="... at this length (default: %(default)s)")
    parser.add_argument("--goal-memory-mib", type=float, default=1024.0,
                        help="goal: chunked needs at most this much memory ... (default: %(default)s)")
    parser.add_argument("--goal-memory-at", type=int, default=262144, help="... at this length (default: %(default)s)")
    parser.add_argument("--goal-exponent", type=float, default=1.15,
                        help="goal: fitted time exponent of chunked at most this (default: %(default)s)")


def main(args):
    lengths = parse_lengths(args.lengths)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise TasrError("--device cuda: no CUDA GPU is visible to PyTorch")
    default = "dense,chunked,flex,full" if args.device == "cuda" else "dense,chunked,full"
    backends = [b.strip() for b in (args.backends or default).split(",") if b.strip()]
    for backend in backends:
        if backend not in PEERS:
            raise TasrError(f"--backends: unknown backend {backend!r}; expected some of {', '.join(PEERS)}")
    if "flex" in backends and args.device == "cpu" and args.backward:
        raise TasrError("--backends flex: FlexAttention has no backward on CPU; drop flex or --backward")
    if min(args.left, args.right) < 0 or min(args.heads, args.head_dim, args.batch) < 1:
        raise TasrError("--left/--right must be >= 0 and --heads/--head-dim/--batch >= 1")
    threads = args.threads or os.cpu_count()
    settings = dict(left=args.left, right=args.right, heads=args.heads, head_dim=args.head_dim,
                    batch=args.batch, device=args.device, dtype=args.dtype, backward=args.backward,
                    threads=threads, repeats=args.repeats, block_size=args.block_size,
                    omp_wait_policy=args.omp_wait_policy if args.device == "cpu" else None)

    print(describe(settings, lengths))
    errors = check_against_dense(settings, backends, min(lengths[0], 2000))
    print("Checked against dense on T=%d (mixed-length batch of 2): %s\n" % (
        min(lengths[0], 2000), ", ".join(f"{b} max|diff| {e:.1e}" for b, e in errors.items()) or "nothing to check"))

    results = []
    points = [(backend, T) for backend in backends for T in lengths]
    for backend, T in tqdm(points, desc="attention cost", unit="point", file=sys.stderr, disable=None):
        skip = reason_to_skip(settings, backend, T, results, args.max_seconds)
        if skip:
            results.append(dict(backend=backend, frames=T, status="skipped", note=skip))
            continue
        point = measure_in_child(settings, backend, T) if args.device == "cpu" else measure(settings, backend, T)
        results.append(dict(backend=backend, frames=T, **point))
    add_ratios(results, settings)
    fits = fit_exponents(results, args.fit_from)

    print(table(results))
    print(legend(settings))
    print(fit_lines(fits, args.fit_from))
    goals = check_goals(results, fits, args)
    for line in goals:
        print(line)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "attention_cost.csv", results)
    (out / "attention_cost.json").write_text(json.dumps(
        dict(settings=settings, lengths=lengths, fits=fits, results=results, goals=goals), indent=2) + "\n")
    plot(out / "attention_cost.png", results, fits, settings)
    measured = sum(r["status"] == "ok" for r in results)
    print(f"\n{measured} points measured, {len(results) - measured} skipped or failed; "
          f"wrote {out}/attention_cost.{{csv,json,png}}")
    if args.check and any(line.endswith("MISSED") for line in goals):
        return 1
    return 0


def parse_lengths(text: str) -> list[int]:
    """'1000,2000,4000,...,262144' -> [1000, 2000, 4000, ..., 256000, 262144]."""

    parts = [p.strip() for p in text.split(",") if p.strip()]
    try:
        if "..." in parts:
            i = parts.index("...")
            head, tail = [int(p) for p in parts[:i]], [int(p) for p in parts[i + 1:]]
            if len(head) < 2 or len(tail) != 1 or head[1] <= head[0] or head[0] < 1:
                raise ValueError
            ratio = head[1] / head[0]
            values = list(head)
            while round(values[-1] * ratio) < tail[0]:
                values.append(round(values[-1] * ratio))
            values.append(tail[0])
        else:
            values = [int(p) for p in parts]
    except ValueError:
        raise TasrError(f"--lengths {text!r}: expected frame counts like 1000,2000,4000 or 1000,2000,...,262144")
    if not values or min(values) < 1:
        raise TasrError(f"--lengths {text!r}: lengths must be positive")
    return sorted(set(values))


def describe(s, lengths) -> str:
    window = s["left"] + s["right"] + 1
    longest = lengths[-1] * FRAME_SECONDS
    where = s["device"]
    if s["device"] == "cpu":
        policy = s["omp_wait_policy"] if s["omp_wait_policy"] != "inherit" else os.environ.get("OMP_WAIT_POLICY", "default")
        where = f"cpu ({s['threads']} threads, OMP_WAIT_POLICY {policy}, one child process per point)"
    return (
        f"Truncated self-attention cost against length: B={s['batch']}, H={s['heads']}, D={s['head_dim']}, "
        f"left={s['left']}, right={s['right']} (each frame sees {window} frames), {s['dtype']}, {where}, "
        f"{'forward + backward' if s['backward'] else 'forward only'}.\n"
        f"T counts encoder frames of {FRAME_SECONDS * 1000:.0f} ms ({FrameOptions.frame_shift:g} ms features after "
        f"{SUBSAMPLING}x subsampling): "
        f"T={lengths[-1]} is {format_audio(longest)} of audio."
    )


def format_audio(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def make_inputs(s, T, batch=None, seed=0):
    generator = torch.Generator().manual_seed(seed)
    dtype = getattr(torch, s["dtype"])
    shape = (batch or s["batch"], s["heads"], T, s["head_dim"])
    return [torch.randn(shape, generator=generator).to(s["device"], dtype).requires_grad_(s["backward"])
            for _ in range(3)]


def attention_call(s, backend):
    """A function (q, k, v, lengths) -> out for a peer backend."""

    if backend == "full":
        return lambda q, k, v, lengths=None: F.scaled_dot_product_attention(q, k, v)
    options = dict(block_size=s["block_size"]) if backend == "chunked" else {}
    return lambda q, k, v, lengths=None: truncated_attention(
        q, k, v, s["left"], s["right"], lengths, backend=backend, **options)


def check_against_dense(s, backends, T) -> dict:
    """Max |output difference| of each truncated backend against dense, on a padded batch of 2."""

    q, k, v = make_inputs(s, T, batch=2, seed=1)
    lengths = torch.tensor([T, max(1, T // 2 + 1)], device=q.device)
    with torch.no_grad():
        reference = attention_call(s, "dense")(q, k, v, lengths).float()
        return {b: (attention_call(s, b)(q, k, v, lengths).float() - reference).abs().max().item()
                for b in backends if b not in ("dense", "full")}


def reason_to_skip(s, backend, T, results, max_seconds):
    """Why (backend, T) should not run (too much memory or time), from earlier points; else None."""

    earlier = [r for r in results if r["backend"] == backend and r["status"] == "ok"]
    quadratic = backend == "dense" or (backend == "full")
    if backend == "dense":
        needed = estimate_dense_bytes(s, T, earlier)
        available = available_bytes(s["device"])
        if needed > 0.7 * available:
            return (f"needs ~{needed / 2**30:.1f} GiB (score mask and matrix, {'measured' if earlier else 'estimated'} "
                    f"as T²), {available / 2**30:.1f} GiB available")
    if earlier:
        last = earlier[-1]
        exponent = 2.0 if quadratic else 1.0
        if len(earlier) >= 2:
            a, b = earlier[-2], earlier[-1]
            exponent = max(exponent, math.log(b["time_ms"] / a["time_ms"]) / math.log(b["frames"] / a["frames"]))
        predicted = last["time_ms"] / 1000 * (T / last["frames"]) ** exponent
        if predicted > max_seconds:
            return f"would take ~{predicted:.0f} s per run (> --max-seconds {max_seconds:g})"
    if s["device"] == "cuda":
        torch.cuda.empty_cache()
    return None


def estimate_dense_bytes(s, T, earlier):
    """Memory of the dense backend at T: scaled as T² from the largest measured point, else ~8 bytes/entry."""
    if earlier and earlier[-1].get("memory_mib"):
        last = earlier[-1]
        return last["memory_mib"] * 2**20 * (T / last["frames"]) ** 2
    per_entry = (12 if s["backward"] else 6) * s["batch"]
    if s["device"] == "cuda":  # SDPA's memory-efficient kernel with a mask: the mask plus the float bias
        per_entry = s["batch"] * (2 + 2 * s["heads"] * (2 if s["backward"] else 1))
    return per_entry * T * T


def available_bytes(device) -> int:
    if device == "cuda":
        return torch.cuda.mem_get_info()[0]
    with open("/proc/meminfo") as f:
        info = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in f}
    return info.get("MemAvailable", info["MemFree"])


def measure_in_child(s, backend, T) -> dict:
    """Run `measure` in a fresh Python process, so its peak memory is this point's alone."""
    env = dict(os.environ)
    if s["omp_wait_policy"] not in (None, "inherit"):
        env["OMP_WAIT_POLICY"] = s["omp_wait_policy"].upper()
    result = run_in_child("tasr.bench.attention:measure_request", dict(settings=s, backend=backend, frames=T), env=env)
    return dict(status="failed", note=result["error"]) if "error" in result else result


def measure_request(request) -> dict:
    """`measure` of a request {"settings", "backend", "frames"} (what `measure_in_child` sends)."""
    return measure(request["settings"], request["backend"], request["frames"])


def measure(s, backend, T) -> dict:
    """Median time (ms) and extra peak memory (MiB) of one backend at length T, in this process."""

    if s["device"] == "cpu":
        torch.set_num_threads(s["threads"])
    cuda = s["device"] == "cuda"
    call = attention_call(s, backend)
    q, k, v = make_inputs(s, T)
    upstream = torch.randn_like(q) if s["backward"] else None

    def run():
        out = call(q, k, v)
        if s["backward"]:
            out.backward(upstream)
            q.grad = k.grad = v.grad = None
        if cuda:
            torch.cuda.synchronize()

    try:
        # Hold what the baseline counts: an output-sized tensor (and the three input gradients).
        held = [torch.ones_like(q) for _ in range(4 if s["backward"] else 1)]
        baseline = memory_now(cuda)
        del held
        reset_peak(cuda)
        times, cpu_times = [], []
        start, cpu_start = time.perf_counter(), time.process_time()
        run()  # warm-up (compilation, allocator); kept as the measurement if it is slow
        first, first_cpu = time.perf_counter() - start, time.process_time() - cpu_start
        if first > 5.0:
            times.append(first)
            cpu_times.append(first_cpu)
        else:
            for _ in range(s["repeats"]):
                start, cpu_start = time.perf_counter(), time.process_time()
                run()
                times.append(time.perf_counter() - start)
                cpu_times.append(time.process_time() - cpu_start)
        peak = peak_memory(cuda)
    except torch.OutOfMemoryError:
        return dict(status="failed", note="out of memory")
    return dict(status="ok", time_ms=statistics.median(times) * 1000, runs=len(times),
                times_ms=[t * 1000 for t in times],
                cpu_ms=None if cuda else statistics.median(cpu_times) * 1000,
                memory_mib=max(0.0, (peak - baseline) / 2**20))


def memory_now(cuda: bool) -> int:
    if cuda:
        torch.cuda.synchronize()
        return torch.cuda.memory_allocated()
    return _proc_status("VmRSS")


def reset_peak(cuda: bool):
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    else:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # Linux: resets the peak resident set size (VmHWM) to the current size


def peak_memory(cuda: bool) -> int:
    return torch.cuda.max_memory_allocated() if cuda else _proc_status("VmHWM")


def _proc_status(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def useful_flops(s, T) -> float:
    """Multiply-adds x2 of the band itself: 4·B·H·T·D·(left+right+1) forward, x3 with backward."""
    window = min(s["left"], T - 1) + min(s["right"], T - 1) + 1
    return 4 * s["batch"] * s["heads"] * T * s["head_dim"] * window * (3 if s["backward"] else 1)


def add_ratios(results, s):
    by_key = {(r["backend"], r["frames"]): r for r in results if r["status"] == "ok"}
    for r in results:
        if r["status"] != "ok":
            continue
        r["audio_seconds"] = r["frames"] * FRAME_SECONDS
        r["useful_gflops"] = useful_flops(s, r["frames"]) / (r["time_ms"] / 1000) / 1e9
        for peer in ("dense", "full"):
            other = by_key.get((peer, r["frames"]))
            r[f"speedup_vs_{peer}"] = other["time_ms"] / r["time_ms"] if other else None


def fit_exponents(results, fit_from) -> dict:
    """Least-squares slope of log(time) and log(memory) against log(T), per backend, for T >= fit_from."""
    fits = {}
    for backend in dict.fromkeys(r["backend"] for r in results):
        points = [r for r in results if r["backend"] == backend and r["status"] == "ok" and r["frames"] >= fit_from]
        if len(points) < 2:
            continue
        x = [math.log(r["frames"]) for r in points]
        fit = dict(frames=[points[0]["frames"], points[-1]["frames"]], points=len(points))
        fit["time"] = _slope(x, [math.log(r["time_ms"]) for r in points])
        cpu = [r.get("cpu_ms") for r in points]
        fit["cpu_time"] = _slope(x, [math.log(c) for c in cpu]) if all(cpu) else None
        memory = [r["memory_mib"] for r in points]
        fit["memory"] = _slope(x, [math.log(m) for m in memory]) if min(memory) > 0.5 else None
        fits[backend] = fit
    return fits


def _slope(x, y) -> float:
    mx, my = sum(x) / len(x), sum(y) / len(y)
    return sum((a - mx) * (b - my) for a, b in zip(x, y)) / sum((a - mx) ** 2 for a in x)


def table(results) -> str:
    header = (f"{'backend':8} {'T':>7} {'audio':>8} {'time ms':>10} {'cpu ms':>10} {'mem MiB':>9} {'GFLOP/s':>8} "
              f"{'vs dense':>9} {'vs full':>8}  note")
    lines = [header, "-" * len(header)]
    for r in results:
        audio = format_audio(r["frames"] * FRAME_SECONDS)
        if r["status"] != "ok":
            lines.append(f"{r['backend']:8} {r['frames']:>7} {audio:>8} {'-':>10} {'-':>10} {'-':>9} {'-':>8} {'-':>9} "
                         f"{'-':>8}  {r['status']}: {r['note']}")
            continue
        ratio = lambda x: f"{x:.1f}x" if x else "-"  # noqa: E731
        cpu = f"{r['cpu_ms']:.2f}" if r.get("cpu_ms") else "-"
        lines.append(f"{r['backend']:8} {r['frames']:>7} {audio:>8} {r['time_ms']:>10.2f} {cpu:>10} {r['memory_mib']:>9.1f} "
                     f"{r['useful_gflops']:>8.2f} {ratio(r['speedup_vs_dense']):>9} {ratio(r['speedup_vs_full']):>8}")
    return "\n".join(lines)


def legend(s) -> str:
    memory = ("peak resident memory of a child process during the call minus its resident memory holding "
              "only q, k, v and an output-sized tensor" if s["device"] == "cpu" else
              "torch.cuda.max_memory_allocated() during the call minus memory allocated for q, k, v and the output")
    if s["backward"]:
        memory += " (and the upstream and input gradients)"
    return (
        "\nT: encoder frames; audio: T x 40 ms. time ms: median wall-clock time of one call"
        f"{' (forward + backward)' if s['backward'] else ''} over the runs after a warm-up.\n"
        "cpu ms: median CPU time of the process over the same runs (all threads; on a shared CPU it tells\n"
        "  work apart from waiting for a core).\n"
        f"mem MiB: {memory}.\n"
        "GFLOP/s: useful work only, 4·B·H·T·D·(left+right+1) per forward (x3 with backward), divided by the time.\n"
        "vs dense / vs full: how many times faster than the dense band-masked SDPA / full-attention SDPA at the same T.\n"
        "dense and full cost O(T²); chunked and flex should cost O(T): see the fitted exponents."
    )


def fit_lines(fits, fit_from) -> str:
    if not fits:
        return f"\nNo backend has two measured points with T >= {fit_from}: no exponent fitted."
    lines = [f"\nScaling exponents (slope of log cost against log T, least squares over the measured T >= {fit_from}):"]
    for backend, fit in fits.items():
        memory = f"{fit['memory']:.2f}" if fit["memory"] is not None else "n/a (too small to fit)"
        cpu = f", cpu time ~ T^{fit['cpu_time']:.2f}" if fit.get("cpu_time") is not None else ""
        lines.append(f"  {backend:8} time ~ T^{fit['time']:.2f}{cpu}, memory ~ T^{memory}  "
                     f"({fit['points']} points, T={fit['frames'][0]}..{fit['frames'][1]})")
    return "\n".join(lines)


MIN_FIT_SPAN = 16  # the exponent goal is judged on fits from T to at least 16 T


def check_goals(results, fits, args) -> list[str]:
    """The goals set by the flags, where this run measured what they need: 'goal ...: measured ... PASSED|MISSED'."""
    ok = {(r["backend"], r["frames"]): r for r in results if r["status"] == "ok"}

    def at(backend, T):  # the measured point at T, or at the nearest length within 10%
        near = [f for (b, f) in ok if b == backend and abs(f - T) <= 0.1 * T]
        return ok[(backend, min(near, key=lambda f: abs(f - T)))] if near else None

    lines = []
    chunked, dense = at("chunked", args.goal_speedup_at), at("dense", args.goal_speedup_at)
    if chunked and dense and chunked["frames"] == dense["frames"]:
        ratio = dense["time_ms"] / chunked["time_ms"]
        lines.append(f"goal: chunked >= {args.goal_speedup:g}x faster than dense at T={args.goal_speedup_at}: "
                     f"measured {ratio:.1f}x at T={chunked['frames']}  {'PASSED' if ratio >= args.goal_speedup else 'MISSED'}")
    chunked = at("chunked", args.goal_memory_at)
    if chunked:
        memory = chunked["memory_mib"]
        lines.append(f"goal: chunked needs <= {args.goal_memory_mib:g} MiB at T={args.goal_memory_at}: "
                     f"measured {memory:.1f} MiB at T={chunked['frames']}  "
                     f"{'PASSED' if memory <= args.goal_memory_mib else 'MISSED'}")
    # The exponent goal is about 4k..256k frames: a fit over less than 16x in T does not judge it.
    if "chunked" in fits and fits["chunked"]["frames"][1] >= MIN_FIT_SPAN * fits["chunked"]["frames"][0]:
        exponent = fits["chunked"]["time"]
        lines.append(f"goal: chunked time exponent <= {args.goal_exponent:g}: measured {exponent:.2f}  "
                     f"{'PASSED' if exponent <= args.goal_exponent else 'MISSED'}")
    if lines:
        lines.insert(0, "")
    return lines


def write_csv(path, results):
    columns = ["backend", "frames", "audio_seconds", "status", "time_ms", "cpu_ms", "memory_mib", "useful_gflops",
               "speedup_vs_dense", "speedup_vs_full", "runs", "times_ms", "note"]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for r in results:
            row = dict(r, audio_seconds=r["frames"] * FRAME_SECONDS)
            if "times_ms" in row:
                row["times_ms"] = " ".join(f"{t:.3f}" for t in row["times_ms"])
            writer.writerow(row)


def plot(path, results, fits, s):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (time_axis, memory_axis) = plt.subplots(1, 2, figsize=(12, 4.8))
    for backend in dict.fromkeys(r["backend"] for r in results):
        points = [r for r in results if r["backend"] == backend and r["status"] == "ok"]
        if not points:
            continue
        fit = fits.get(backend)
        frames = [r["frames"] for r in points]
        label = backend + (f" (T^{fit['time']:.2f})" if fit else "")
        time_axis.loglog(frames, [r["time_ms"] for r in points], "o-", label=label)
        memory = [(r["frames"], r["memory_mib"]) for r in points if r["memory_mib"] > 0]
        if memory:
            label = backend + (f" (T^{fit['memory']:.2f})" if fit and fit["memory"] is not None else "")
            memory_axis.loglog(*zip(*memory), "o-", label=label)
    for axis, name in ((time_axis, "time per call (ms)"), (memory_axis, "memory beyond inputs and output (MiB)")):
        axis.set_xlabel(f"T, encoder frames ({FRAME_SECONDS * 1000:.0f} ms each)")
        axis.set_ylabel(name)
        axis.grid(True, which="both", alpha=0.3)
        axis.legend()
        minutes = axis.secondary_xaxis("top", functions=(lambda t: t * FRAME_SECONDS / 60,
                                                         lambda m: m * 60 / FRAME_SECONDS))
        minutes.set_xlabel("minutes of audio")
    figure.suptitle(f"Truncated attention, left={s['left']} right={s['right']}, B={s['batch']} H={s['heads']} "
                    f"D={s['head_dim']}, {s['dtype']}, {s['device']}, "
                    f"{'forward+backward' if s['backward'] else 'forward'}; slopes fitted on the larger T")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
