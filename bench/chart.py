"""The charts of bench/results/latest.md (matplotlib, written as PNG files; no display needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display on a bench machine

import matplotlib.pyplot as plt
from matplotlib.axes import Axes

from bench.load import Load

ADMITTED, REJECTED, REFERENCE = "tab:blue", "tab:red", "0.6"


def throughput_chart(rows: Sequence[tuple[str, Load]], baseline: Load, path: Path, title: str) -> None:
    """The results table as bars: requests/s (labelled with the ratio to the baseline), p50 and p99."""
    names = [name for name, _ in rows][::-1]
    loads = [load for _, load in rows][::-1]
    fig, (rps_ax, lat_ax) = plt.subplots(1, 2, figsize=(13, 0.55 * len(rows) + 1.6), sharey=True,
                                         gridspec_kw={"width_ratios": [3, 2]})
    bars = rps_ax.barh(names, [load.rps for load in loads], color="tab:blue")
    for bar, load in zip(bars, loads, strict=True):
        rps_ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2,
                    f" {load.rps:,.0f}  ({load.rps / baseline.rps:.2f}x)", va="center", fontsize=8)
    rps_ax.set_xlabel("requests/s (median of the rounds)")
    rps_ax.set_xlim(0, max(load.rps for load in loads) * 1.35)
    height = 0.38
    positions = range(len(names))
    lat_ax.barh([p + height / 2 for p in positions], [load.p50_ms for load in loads], height, label="p50",
                color="tab:green")
    lat_ax.barh([p - height / 2 for p in positions], [load.p99_ms for load in loads], height, label="p99",
                color="tab:orange")
    lat_ax.set_xlabel("latency, ms")
    lat_ax.legend(loc="upper right", fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _pair(ax: Axes, xs: Sequence[float], rows: Sequence[dict[str, Any]]) -> None:
    ax.plot(xs, [r["admitted_us"] for r in rows], "o-", color=ADMITTED, label="admitted")
    ax.plot(xs, [r["rejected_us"] for r in rows], "s--", color=REJECTED, label="rejected (bad signature)")


def _linear_reference(ax: Axes, xs: Sequence[float], ys: Sequence[float], at: int) -> None:
    """A line proportional to size through point ``at``: on log axes, a curve steeper than it grows
    worse than linearly."""
    ax.plot(xs, [ys[at] * x / xs[at] for x in xs], ":", color=REFERENCE, label="proportional to size")


def growth_chart(results: dict[str, Any], path: Path) -> None:
    """Four panels: latency against parameters, body size and key count; start-up against key count."""
    fig, axes = plt.subplots(2, 2, figsize=(12, 8.5))
    params = [r for r in results["request"] if r["kind"] == "params"]
    ax = axes[0][0]
    _pair(ax, [r["size"] for r in params], params)
    ax.set(title="GET: latency against parameters", xlabel="parameters", ylabel="µs per request")
    ax.set_ylim(bottom=0)

    bodies = [r for r in results["request"] if r["kind"] == "body"]
    xs = [r["bytes"] / 1024 for r in bodies]
    ax = axes[0][1]
    _pair(ax, xs, bodies)
    _linear_reference(ax, xs, [r["admitted_us"] for r in bodies], -1)
    ax.set(title="POST: latency against form body size", xlabel="body, KiB", ylabel="µs per request",
           xscale="log", yscale="log")

    keys = results["keys"]
    ax = axes[1][0]
    _pair(ax, [r["keys"] for r in keys], keys)
    ax.set(title="GET, 10 parameters: latency against access keys in the policy", xlabel="access keys",
           ylabel="µs per request", xscale="log")
    ax.set_ylim(bottom=0)

    ax = axes[1][1]
    loaded = [r for r in results["load"] if r.get("load_s")]
    if loaded:
        lx = [r["keys"] for r in loaded]
        ax.plot(lx, [r["load_s"] for r in loaded], "o-", color="tab:purple", label="load_policy (TOML) start-up")
        ax.plot(lx, [r["toml_s"] for r in loaded], "^-", color="tab:gray", label="of which tomllib parse")
        _linear_reference(ax, lx, [r["load_s"] for r in loaded], 0)
        failed = [r["keys"] for r in results["load"] if not r.get("load_s")]
        if failed:
            ax.axvline(failed[0], color=REJECTED, linestyle="--", label=f"{failed[0]:,} keys: not loaded in time")
    ax.plot([r["keys"] for r in keys], [max(r["build_s"], 1e-4) for r in keys], "D-", color="tab:olive",
            label="the same keys built in memory")
    ax.set(title="Start-up against access keys", xlabel="access keys", ylabel="seconds", xscale="log",
           yscale="log")
    for ax in (axes[0][0], axes[0][1], axes[1][0], axes[1][1]):
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("How the cost grows (in-process, memory store; medians)", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
