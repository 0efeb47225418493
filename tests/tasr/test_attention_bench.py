"""`tasr bench attention`: lengths, skips, fits, goals and the files it writes (tiny sizes)."""

import csv
import json

import pytest

from tasr.bench import attention as bench_attention
from tasr.cli import main
from tasr.errors import TasrError


def test_lengths_continue_a_geometric_series():
    assert bench_attention.parse_lengths("1000,2000,4000,...,262144") == [
        1000, 2000, 4000, 8000, 16000, 32000, 64000, 128000, 256000, 262144]
    assert bench_attention.parse_lengths("1024,2048,...,8192") == [1024, 2048, 4096, 8192]
    assert bench_attention.parse_lengths("300, 100,200") == [100, 200, 300]
    for bad in ("", "10,...", "a,b", "100,50,...,1000", "0,5"):
        with pytest.raises(TasrError, match="--lengths"):
            bench_attention.parse_lengths(bad)


def test_exponent_fit_recovers_known_slopes():
    results = [dict(backend="b", frames=t, status="ok", time_ms=0.5 * t**2, memory_mib=3.0 * t) for t in (1e3, 1e4, 1e5)]
    fit = bench_attention.fit_exponents(results, fit_from=1)["b"]
    assert fit["time"] == pytest.approx(2.0) and fit["memory"] == pytest.approx(1.0)


def test_quadratic_backends_are_skipped_with_what_they_would_need():
    settings = dict(left=4, right=1, heads=2, head_dim=8, batch=1, device="cpu", dtype="float32",
                    backward=False, threads=1, repeats=1, block_size=None, omp_wait_policy="inherit")
    earlier = [dict(backend="dense", frames=1000, status="ok", time_ms=1000.0, memory_mib=100.0)]
    reason = bench_attention.reason_to_skip(settings, "dense", 10**6, earlier, max_seconds=1e9)
    assert "needs ~" in reason and "GiB" in reason  # 100 MiB x 1000² = ~95 TiB
    reason = bench_attention.reason_to_skip(settings, "dense", 4000, earlier, max_seconds=10)
    assert "would take ~16 s" in reason  # 1 s x (4000/1000)²
    assert bench_attention.reason_to_skip(settings, "chunked", 4000, [], max_seconds=10) is None


def test_command_writes_table_csv_json_and_plot(tmp_path, capsys):
    out = tmp_path / "bench"
    status = main(["bench", "attention", "--lengths", "64,128", "--left", "4", "--right", "1",
                   "--heads", "2", "--head-dim", "8", "--backends", "dense,chunked,full", "--threads", "1",
                   "--repeats", "2", "--fit-from", "64", "--goal-speedup-at", "128", "--goal-speedup", "0",
                   "--goal-memory-at", "128", "--goal-memory-mib", "1e6", "--goal-exponent", "100",
                   "--out", str(out), "--check"])
    printed = capsys.readouterr().out
    assert status == 0
    assert "chunked max|diff|" in printed and "T counts encoder frames of 40 ms" in printed
    assert "time ~ T^" in printed and printed.count("PASSED") == 2  # 64..128 is too short to judge the exponent
    rows = list(csv.DictReader(open(out / "attention_cost.csv")))
    assert [(r["backend"], int(r["frames"])) for r in rows] == [
        (b, t) for b in ("dense", "chunked", "full") for t in (64, 128)]
    assert all(r["status"] == "ok" and float(r["time_ms"]) > 0 and float(r["memory_mib"]) >= 0 for r in rows)
    assert float(rows[0]["audio_seconds"]) == pytest.approx(64 * 0.04)
    report = json.loads((out / "attention_cost.json").read_text())
    assert set(report["fits"]) == {"dense", "chunked", "full"}
    assert (out / "attention_cost.png").read_bytes()[:4] == b"\x89PNG"


def test_a_missed_goal_fails_the_check(tmp_path, capsys):
    status = main(["bench", "attention", "--lengths", "32,64", "--left", "2", "--right", "0", "--heads", "1",
                   "--head-dim", "8", "--backends", "chunked", "--threads", "1", "--repeats", "1",
                   "--goal-memory-at", "64", "--goal-memory-mib", "-1", "--out", str(tmp_path), "--check"])
    assert status == 1
    assert "MISSED" in capsys.readouterr().out


def test_the_exponent_goal_is_judged_only_on_a_wide_fit():
    args = type("Args", (), dict(goal_speedup=60.0, goal_speedup_at=16384, goal_memory_mib=1024.0,
                                  goal_memory_at=262144, goal_exponent=1.15))
    wide = {"chunked": dict(time=1.3, frames=[4000, 262144])}
    assert any("exponent" in line and line.endswith("MISSED") for line in bench_attention.check_goals([], wide, args))
    narrow = {"chunked": dict(time=1.3, frames=[4000, 8000])}
    assert not any("exponent" in line for line in bench_attention.check_goals([], narrow, args))


def test_bad_flags_are_named(tmp_path, capsys):
    assert main(["bench", "attention", "--backends", "dense,turbo", "--out", str(tmp_path)]) == 2
    assert "unknown backend 'turbo'" in capsys.readouterr().err
    assert main(["bench", "attention", "--backends", "flex", "--backward", "--out", str(tmp_path)]) == 2
    assert "no backward on CPU" in capsys.readouterr().err
