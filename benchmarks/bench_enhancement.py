"""Speech-enhancement benchmark (Triantafyllopoulos et al. 2019): achieved GFLOP/s of the residual enhancer against
the machine's fp32 matmul rate (target >= 40 %), the real-time factor of whole-utterance enhancement, for the
paper-exact network (``configs/enhancement.yaml``, 64 base maps) and the CPU variant
(``configs/enhancement_cpu.yaml``, 8 base maps); and, given trained runs, their PESQ/STOI gains per SNR.

Run by hand, on an otherwise idle machine (say how loaded it was, ``uptime``, when quoting a figure):

    python benchmarks/bench_enhancement.py [--device cpu|cuda] [--seconds 2] [--runs RUN_DIR ...]

``RUN_DIR`` is a run folder holding ``enhancement_quality.json`` (written by the test after
``fit --config configs/enhancement_cpu.yaml``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from ser_lightning.models.networks import SpectralEnhancer

CONFIGS = {"paper (64 maps)": 64, "cpu variant (8 maps)": 8}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: object, device: torch.device, min_seconds: float = 2.0) -> float:
    """Mean seconds of one call of ``fn`` (after a warm-up), repeated for at least ``min_seconds``."""
    fn()
    _sync(device)
    calls, start = 0, time.perf_counter()
    while True:
        fn()
        calls += 1
        _sync(device)
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return elapsed / calls


def matmul_gflops(device: torch.device, size: int = 2048) -> float:
    """The fp32 matrix-multiply rate (GFLOP/s) of ``size`` x ``size`` products: the machine's practical peak."""
    a, b = torch.randn(size, size, device=device), torch.randn(size, size, device=device)
    return 2 * size**3 / timed(lambda: a @ b, device) / 1e9


def network_gflops(enhancer: SpectralEnhancer, batch: int, device: torch.device) -> float:
    """Achieved GFLOP/s of the network on ``batch`` contexts a call (inference)."""
    contexts = torch.randn(batch, 1, enhancer.n_freq, enhancer.context_frames, device=device)
    flops = enhancer.flops_per_frame() * batch
    with torch.inference_mode():
        return flops / timed(lambda: enhancer.net(contexts), device, min_seconds=1.0) / 1e9


def real_time_factor(enhancer: SpectralEnhancer, seconds: float, device: torch.device) -> float:
    """Processing time over audio time for whole-utterance enhancement (< 1: faster than real time)."""
    audio = torch.randn(1, round(seconds * enhancer.sample_rate), device=device) * 0.1
    with torch.inference_mode():
        return timed(lambda: enhancer(audio), device, min_seconds=1.0) / seconds


def quality_rows(run: Path) -> list[dict[str, object]]:
    """The per-SNR table of a run's ``enhancement_quality.json``."""
    summary = json.loads((run / "enhancement_quality.json").read_text())
    return [{"run": run.name, "build": summary["metric_builds"], **row} for row in summary["enhancement_quality"]]


def main() -> None:
    """Prints the cost table, and the quality table of ``--runs``."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seconds", type=float, default=2.0, help="audio per real-time-factor measurement")
    parser.add_argument("--paper-seconds", type=float, default=0.5, help="the same for the paper's (costly) network")
    parser.add_argument("--runs", nargs="*", type=Path, default=[], help="run folders with enhancement_quality.json")
    args = parser.parse_args()
    device = torch.device(args.device)
    peak = matmul_gflops(device)
    print(f"device {device} ({torch.get_num_threads()} threads); fp32 matmul 2048^3: {peak:.1f} GFLOP/s")
    print(f"{'config':<22}{'params':>11}{'GFLOP/frame':>13}{'batch':>7}{'GFLOP/s':>10}{'of matmul':>11}{'RTF':>8}")
    for name, channels in CONFIGS.items():
        chunk = 16 if channels >= 64 else 512
        enhancer = SpectralEnhancer(base_channels=channels, chunk_frames=chunk).to(device).eval()
        params = sum(p.numel() for p in enhancer.parameters())
        achieved = network_gflops(enhancer, chunk, device)
        rtf = real_time_factor(enhancer, args.paper_seconds if channels >= 64 else args.seconds, device)
        print(f"{name:<22}{params:>11,}{enhancer.flops_per_frame() / 1e9:>13.3f}{chunk:>7}{achieved:>10.1f}"
              f"{achieved / peak:>10.0%}{rtf:>8.2f}")  # fmt: skip
    for run in args.runs:
        rows = quality_rows(run)
        print(f"\n{run}: {rows[0]['build'] if rows else 'no rows'}")
        print(f"{'SNR dB':>7}{'n':>4}{'PESQ noisy':>12}{'enhanced':>10}{'gain':>8}{'STOI noisy':>12}{'enhanced':>10}"
              f"{'gain':>8}{'SI-SDR gain':>13}")  # fmt: skip
        for r in rows:
            print(f"{r['snr_db']:>7g}{r['count']:>4}{r['noisy_pesq']:>12.3f}{r['enhanced_pesq']:>10.3f}"
                  f"{r['pesq_gain']:>+8.3f}{r['noisy_stoi']:>12.3f}{r['enhanced_stoi']:>10.3f}{r['stoi_gain']:>+8.3f}"
                  f"{r['si_sdr_gain']:>+13.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
