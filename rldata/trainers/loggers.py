"""Metrics: ``metrics.csv`` always, TensorBoard too when it is installed.

One CSV row per logged point, wide: ``kind`` (``train`` or ``eval``), the counters
(``env_steps``, ``updates``, ``wall_s``) and every metric seen so far as a column. A
metric that first appears later (the first evaluation, say) widens the file: it is
rewritten once with the new header, so the CSV is always rectangular and readable by
any CSV reader. A resumed run appends to the file it finds.
"""

from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path
from typing import Any

from rldata import _untrusted as untrusted
from rldata.errors import ConfigError
from rldata.trainers import files

COUNTERS = ["kind", "env_steps", "updates", "wall_s"]
METRICS_LIMIT = 256 * 2**20


class CSVLogger:
    """Append metric rows to ``path``; the header grows with new metric names."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.columns: list[str] = list(COUNTERS)
        self._rows: list[dict[str, Any]] = []

    def open(self) -> CSVLogger:
        """Read back an existing file (resume) so later rows extend it."""
        if self.path.is_file():
            header, self._rows = _read_csv(self.path)
            self.columns = header or list(COUNTERS)
        return self

    def log(self, row: dict[str, Any]) -> None:
        new = [k for k in row if k not in self.columns]
        self._rows.append({k: _fmt(v) for k, v in row.items()})
        if new:
            self.columns += new
            self._rewrite()
            return
        line = io.StringIO(newline="")
        csv.DictWriter(line, self.columns).writerow(self._rows[-1])
        files.append_text(self.path, line.getvalue())  # a full disk leaves no half row

    def _rewrite(self) -> None:
        text = io.StringIO(newline="")
        writer = csv.DictWriter(text, self.columns)
        writer.writeheader()
        writer.writerows(self._rows)
        files.write_text(self.path, text.getvalue())

    def close(self) -> None:
        pass


class TensorBoardLogger:
    """Scalars to TensorBoard under ``<run>/tensorboard`` (x axis: env steps, else updates)."""

    def __init__(self, logdir: str | os.PathLike) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(logdir))

    def log(self, row: dict[str, Any]) -> None:
        step = int(row.get("env_steps") or row.get("updates") or 0)
        kind = row.get("kind", "train")
        for k, v in row.items():
            if k in COUNTERS or not isinstance(v, (int, float)):
                continue
            self.writer.add_scalar(f"{kind}/{k}", v, step)

    def close(self) -> None:
        self.writer.close()


def tensorboard_available() -> bool:
    """Whether ``torch.utils.tensorboard`` can be used (the ``tensorboard`` package)."""
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        return False
    return True


class Loggers:
    """Every logger of a run, called together."""

    def __init__(self, run_dir: Path, tensorboard: bool) -> None:
        self.csv = CSVLogger(run_dir / "metrics.csv").open()
        self.others: list[Any] = []
        if tensorboard and tensorboard_available():
            self.others.append(TensorBoardLogger(run_dir / "tensorboard"))

    def log(self, row: dict[str, Any]) -> None:
        self.csv.log(row)
        for logger in self.others:
            logger.log(row)

    def close(self) -> None:
        for logger in [self.csv, *self.others]:
            logger.close()


def _fmt(v: Any) -> Any:
    if isinstance(v, float):
        return "" if math.isnan(v) else f"{v:.6g}"
    return v


def read_metrics(path: str | os.PathLike) -> list[dict[str, str]]:
    """The rows of a run's ``metrics.csv`` (strings, as written).

    Read through :mod:`rldata._untrusted` (a regular file within the size limit).

    Raises:
        ConfigError: not a regular file, too large, not UTF-8, or not a rectangular CSV.
    """
    return _read_csv(path)[1]


def _read_csv(path: str | os.PathLike) -> tuple[list[str], list[dict[str, str]]]:
    f = untrusted.text_stream(path, "metrics.csv", limit=METRICS_LIMIT, error=ConfigError)
    try:
        reader = csv.DictReader(f)
        header = list(reader.fieldnames or [])
        rows = list(reader)
    except csv.Error as exc:
        raise ConfigError(f"{path}: metrics.csv is not a valid CSV ({exc})") from None
    if header and (len(set(header)) != len(header) or "kind" not in header):
        raise ConfigError(f"{path}: metrics.csv header must name distinct columns with 'kind'")
    for i, row in enumerate(rows, start=2):
        if None in row or any(v is None for v in row.values()):
            raise ConfigError(f"{path}: line {i} of metrics.csv does not match its header")
    return header, rows
