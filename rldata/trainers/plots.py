"""Learning curves of training runs (``rldata plot``), drawn with matplotlib (Agg backend).

Each run's ``metrics.csv`` evaluation rows give one curve: mean evaluation return
against environment steps (online runs) or updates (offline runs), with a band of one
standard deviation over the evaluation episodes. Several runs share one axis.
"""

from __future__ import annotations

import os
from pathlib import Path

from rldata import _untrusted as untrusted
from rldata.errors import ConfigError, MissingDependencyError
from rldata.stores.location.destination import inspect_destination, plan_destination
from rldata.stores.location.provable import generator_tag
from rldata.trainers.checkpoint import read_json
from rldata.trainers.loggers import read_metrics


def _curve(run: Path) -> tuple[str, list[float], list[float], list[float], str]:
    metrics = run / "metrics.csv"
    if not metrics.is_file():
        raise ConfigError(f"no training run at {str(run)!r} (expected {metrics})")
    rows = [r for r in read_metrics(metrics) if r.get("kind") == "eval"]
    online = any(_number(metrics, r, "env_steps", 0.0) > 0 for r in rows)
    xkey = "env_steps" if online else "updates"
    xs = [_number(metrics, r, xkey) for r in rows]
    mean = [_number(metrics, r, "eval_return_mean") for r in rows]
    std = [_number(metrics, r, "eval_return_std", 0.0) for r in rows]
    label = run.name
    config = run / "config.json"
    if os.path.lexists(config):  # a FIFO or device named config.json: refused, not skipped
        algo = read_json(config).get("algo")
        algo = algo if isinstance(algo, str) else None
        label = f"{run.name} ({algo})" if algo and algo not in run.name else run.name
    return _plain_text(label), xs, mean, std, xkey


def _number(path: Path, row: dict[str, str], key: str, default: float | None = None) -> float:
    """A metric cell as a float; a missing or non-numeric cell is one line naming it."""
    raw = row.get(key)
    if not raw and default is not None:
        return default
    try:
        return float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        shown = untrusted.escape(repr(raw))[:40]
        raise ConfigError(f"{path}: column {key!r} holds {shown}, not a number") from None


def _plain_text(text: str) -> str:
    """``text`` drawn literally by matplotlib: ``$`` would start mathtext (a malformed
    expression such as ``$\\frac{`` fails at draw time) and control characters are escaped."""
    return untrusted.escape(text).replace("$", r"\$")


def plot_runs(runs: list[str], out: str, *, force: bool = False) -> str:
    """Overlay the evaluation curves of ``runs`` in one PNG (or any matplotlib format) at ``out``.

    ``out`` goes through the destination policy
    (:func:`rldata.stores.location.destination.plan_destination`): it may not be, lie inside, or
    contain a run; an existing file is replaced only with ``force`` and only if rldata
    drew it (its generator mark in the image metadata); the image is drawn beside it and
    renamed into place.

    Raises:
        StoreExistsError: ``out`` exists (without ``force``, or not drawn by rldata).
        DestinationOverlapError: ``out`` is, lies inside, or contains a run directory.
        ConfigError: a run directory has no ``metrics.csv`` or no evaluation rows.
        MissingDependencyError: matplotlib is not installed.
    """
    if not runs:
        raise ConfigError("plot: give at least one run directory")
    inspect_destination(out, kind="file", sources=runs, force=force, what="plot")
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
    fmt = Path(out).suffix.lstrip(".").lower() or "png"
    key = {"png": "Software", "pdf": "Creator", "svg": "Creator", "ps": "Creator", "eps": "Creator"}
    meta = {key[fmt]: generator_tag("plot")} if fmt in key else None
    if fmt not in fig.canvas.get_supported_filetypes():
        plt.close(fig)
        known = ", ".join(sorted(fig.canvas.get_supported_filetypes()))
        raise ConfigError(
            f"plot --out {out!r}: unknown image format {fmt!r}; expected one of {known}"
        )
    try:
        with plan_destination(out, kind="file", sources=runs, force=force, what="plot") as stage:
            fig.savefig(stage, format=fmt, metadata=meta)
    finally:
        plt.close(fig)
    return out
