"""The small PNG chart of a benchmark run (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # the backend is chosen first

COLOURS = {"bare": "#9e9e9e", "full": "#2e7d32", "stock": "#c62828", "stock-lean": "#ef6c00"}


def write_chart(results: dict[str, Any], path: Path) -> None:
    """One panel per route: median requests/s per variant (min-max as error bars),
    each bar labelled with its ratio to the bare app of the same rounds."""
    routes = results["routes"]
    figure, axes = plt.subplots(1, len(routes), figsize=(3.4 * len(routes), 3.2), dpi=100)
    if len(routes) == 1:
        axes = [axes]
    for ax, (route, summary) in zip(axes, routes.items(), strict=True):
        variants = list(summary["variants"])
        medians = [summary["variants"][v]["requests_per_s"]["median"] for v in variants]
        lows = [
            m - summary["variants"][v]["requests_per_s"]["min"]
            for v, m in zip(variants, medians, strict=True)
        ]
        highs = [
            summary["variants"][v]["requests_per_s"]["max"] - m
            for v, m in zip(variants, medians, strict=True)
        ]
        bars = ax.bar(
            variants,
            medians,
            yerr=[lows, highs],
            capsize=3,
            color=[COLOURS.get(v, "#1565c0") for v in variants],
        )
        for bar, variant in zip(bars, variants, strict=True):
            ratio = summary["variants"][variant].get("ratio_to_bare")
            top = summary["variants"][variant]["requests_per_s"]["max"]  # above the error bar
            if ratio is not None and variant != "bare":
                ax.annotate(
                    f"{ratio:.2f}x",
                    (bar.get_x() + bar.get_width() / 2, top),
                    ha="center",
                    va="bottom",
                    fontsize=8,
                    xytext=(0, 2),
                    textcoords="offset points",
                )
        ax.set_title(route, fontsize=9)
        ax.set_ylabel("requests/s (median)", fontsize=8)
        ax.tick_params(labelsize=8)
    conditions = results["conditions"]
    figure.suptitle(
        f"Gunicorn, {conditions['workers']} workers, wrk -c{conditions['connections']}, "
        f"{conditions['rounds']} rounds of {conditions['duration_s']} s",
        fontsize=9,
    )
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
