"""Learning curves of training runs (``rldata plot``), drawn with matplotlib (Agg backend).

Each run's ``metrics.csv`` evaluation rows give one curve: mean evaluation return
against environment steps (online runs) or updates (offline runs), with a band of one
standard deviation over the evaluation episodes. Several runs share one axis.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from rldata.errors import ConfigError, MissingDependencyError
from rldata.trainers.loggers import read_metrics


def _curve(run: Path) -> tuple[str, list[float], list[float], list[float], str]:
    metrics = run / "metrics.csv"
    if not metrics.is_file():
        raise ConfigError(f"no training run at {str(run)!r} (expected {metrics})")
    rows = [r for r in read_metrics(metrics) if r.get("kind") == "eval"]
    online = any(float(r.get("env_steps") or 0) > 0 for r in rows)
    xkey = "env_steps" if online else "updates"
    xs = [float(r[xkey]) for r in rows]
    mean = [float(r["eval_return_mean"]) for r in rows]
    std = [float(r.get("eval_return_std") or 0.0) for r in rows]
    label = run.name
    config = run / "config.json"
    if config.is_file():
        algo = json.loads(config.read_text()).get("algo")
        label = f"{run.name} ({algo})" if algo and algo not in run.name else run.name
    return label, xs, mean, std, xkey


def plot_runs(runs: list[str], out: str) -> str:
    """Overlay the evaluation curves of ``runs`` in one PNG (or any matplotlib format) at ``out``.

    Raises:
        ConfigError: a run directory has no ``metrics.csv`` or no evaluation rows.
        MissingDependencyError: matplotlib is not installed.
    """
    if not runs:
        raise ConfigError("plot: give at least one run directory")
    curves = [_curve(Path(r)) for r in runs]  # every input checked before drawing
    for (_, xs, *_), run in zip(curves, runs):
        if not xs:
            raise ConfigError(f"run {run!r} has no evaluation rows in metrics.csv")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise MissingDependencyError(
            "rldata plot needs matplotlib: pip install matplotlib"
        ) from None
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    xkeys = set()
    for label, xs, mean, std, xkey in curves:
        xkeys.add(xkey)
        (line,) = ax.plot(xs, mean, marker="o", markersize=3, label=label)
        lo = [m - s for m, s in zip(mean, std)]
        hi = [m + s for m, s in zip(mean, std)]
        ax.fill_between(xs, lo, hi, color=line.get_color(), alpha=0.15)
    ax.set_xlabel(" / ".join(sorted(xkeys)).replace("_", " "))
    ax.set_ylabel("evaluation return (mean ± std)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    out_dir = os.path.dirname(os.path.abspath(out))
    os.makedirs(out_dir, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out
