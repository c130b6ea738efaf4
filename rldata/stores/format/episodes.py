"""The episode index: contiguous segments of one trajectory, kept while rows are appended.

A segment is a run of consecutive rows (in write order) with the same trajectory id.
An episode usually is one segment; rows of batched environments flattened per batch
make an episode several segments with the same ``traj_id``. ``start`` is a serial
(the row's write count), so a ring maps it to position ``start % capacity``.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Callable

import numpy as np
import torch
from tensordict import TensorDict

from rldata import _untrusted as untrusted
from rldata.errors import CorruptStoreError, TedFormatError
from rldata.stores.format.checksums import committed_prefix

COLUMNS = ("traj_id", "start", "length", "return", "terminated", "truncated")

RewardSum = Callable[[int, int], float]
"""``reward_sum(a, b)``: sum of rewards of serials ``[a, b)``."""


class EpisodeIndex:
    """Segments table, columns :data:`COLUMNS`, in write order."""

    def __init__(self, columns: dict[str, list] | None = None) -> None:
        cols = columns or {}
        self.cols: dict[str, list] = {c: list(cols.get(c, [])) for c in COLUMNS}

    def __len__(self) -> int:
        return len(self.cols["traj_id"])

    def copy(self) -> EpisodeIndex:
        return EpisodeIndex(self.cols)

    def to_json(self) -> dict[str, list]:
        return {c: list(v) for c, v in self.cols.items()}

    def add(
        self,
        serial0: int,
        traj_ids: np.ndarray,
        done: np.ndarray,
        terminated: np.ndarray,
        truncated: np.ndarray,
        rewards: np.ndarray,
    ) -> None:
        """Record rows ``serial0 ..`` of one append (1-d arrays of equal length).

        Raises:
            TedFormatError: a trajectory id continues after its episode ended.
        """
        n = len(traj_ids)
        same = traj_ids[1:] == traj_ids[:-1]
        bad = np.flatnonzero(done[:-1] & same)
        if bad.size:
            i = int(bad[0])
            raise TedFormatError(
                f"key 'collector.traj_ids': trajectory {int(traj_ids[i])} continues at row "
                f"{i + 1} after its episode ended (next.done at row {i}); expected a new id"
            )
        starts = np.concatenate(([0], np.flatnonzero(~same) + 1))
        lengths = np.diff(np.concatenate((starts, [n])))
        ends = starts + lengths - 1
        returns = np.add.reduceat(rewards.astype(np.float64), starts)
        c = self.cols
        first = 0
        if len(self) and c["traj_id"][-1] == int(traj_ids[0]):
            last_end = c["start"][-1] + c["length"][-1]
            ended = c["terminated"][-1] or c["truncated"][-1]
            if ended:
                raise TedFormatError(
                    f"key 'collector.traj_ids': trajectory {int(traj_ids[0])} continues after "
                    f"its episode ended in an earlier write; expected a new id"
                )
            if last_end == serial0:
                c["length"][-1] += int(lengths[0])
                c["return"][-1] += float(returns[0])
                c["terminated"][-1] = bool(terminated[ends[0]])
                c["truncated"][-1] = bool(truncated[ends[0]])
                first = 1
        c["traj_id"].extend(traj_ids[starts[first:]].tolist())
        c["start"].extend((starts[first:] + serial0).tolist())
        c["length"].extend(lengths[first:].tolist())
        c["return"].extend(returns[first:].tolist())
        c["terminated"].extend(terminated[ends[first:]].tolist())
        c["truncated"].extend(truncated[ends[first:]].tolist())

    def clipped(self, start: int, end: int, reward_sum: RewardSum) -> EpisodeIndex:
        """The segments restricted to serials ``[start, end)``; clipped returns recomputed."""
        c = self.cols
        n = len(self)
        if n == 0 or (c["start"][0] >= start and c["start"][-1] + c["length"][-1] <= end):
            return self
        lo = bisect.bisect_right(c["start"], start) - 1
        lo = max(lo, 0)
        if c["start"][lo] + c["length"][lo] <= start:
            lo += 1
        hi = bisect.bisect_left(c["start"], end)
        out = EpisodeIndex({k: v[lo:hi] for k, v in c.items()})
        o = out.cols
        for i in {0, len(out) - 1} if len(out) else ():
            s, k = o["start"][i], o["length"][i]
            a, b = max(s, start), min(s + k, end)
            if (a, b) == (s, s + k):
                continue
            o["start"][i], o["length"][i] = a, b - a
            o["return"][i] = reward_sum(a, b)
            if b != s + k:
                o["terminated"][i] = o["truncated"][i] = False
        return out

    def segments(self, capacity: int | None) -> TensorDict:
        """The segments as a TensorDict ``[S]``; ``start`` is a row position."""
        c = self.cols
        start = torch.tensor(c["start"], dtype=torch.int64)
        if capacity is not None:
            start = start % capacity
        return TensorDict(
            {
                "traj_id": torch.tensor(c["traj_id"], dtype=torch.int64),
                "start": start,
                "length": torch.tensor(c["length"], dtype=torch.int64),
                "return": torch.tensor(c["return"], dtype=torch.float64),
                "terminated": torch.tensor(c["terminated"], dtype=torch.bool),
                "truncated": torch.tensor(c["truncated"], dtype=torch.bool),
            },
            batch_size=[len(self)],
        )

    def episodes(self, capacity: int | None) -> tuple[TensorDict, list[list[int]]]:
        """One row per trajectory id (in order of first row) and the segment numbers of each."""
        seg = self.segments(capacity)
        groups: dict[int, list[int]] = {}
        for i, t in enumerate(self.cols["traj_id"]):
            groups.setdefault(t, []).append(i)
        members = list(groups.values())
        first = torch.tensor([m[0] for m in members], dtype=torch.int64)
        last = torch.tensor([m[-1] for m in members], dtype=torch.int64)
        length = torch.tensor([sum(self.cols["length"][j] for j in m) for m in members])
        ret = torch.tensor(
            [sum(self.cols["return"][j] for j in m) for m in members], dtype=torch.float64
        )
        table = TensorDict(
            {
                "traj_id": seg["traj_id"][first],
                "start": seg["start"][first],
                "length": length.to(torch.int64),
                "return": ret,
                "terminated": seg["terminated"][last],
                "truncated": seg["truncated"][last],
            },
            batch_size=[len(members)],
        )
        return table, members


LOG = "episodes.log"
"""The appended episode index of an append-only store (format 1.4): one JSON line a commit."""


def log_line(index: EpisodeIndex, first: int) -> bytes:
    """The line a commit appends: segments ``first ..`` of ``index`` (the previous commit's
    last segment, which this commit may have grown, and the new ones)."""
    cols = {c: v[first:] for c, v in index.cols.items()}
    return json.dumps({"from": first, **cols}, separators=(",", ":")).encode() + b"\n"


def committed_log(data: bytes, ref: dict, where: object) -> bytes:
    """The first ``ref["bytes"]`` bytes of an episode log, checked against ``ref["sha256"]``
    (bytes past them are a crashed writer's line, never committed).

    Raises:
        CorruptStoreError: the file is shorter, or its committed bytes differ.
    """
    return committed_prefix(
        data, ref["bytes"], ref["sha256"], f"{where}: episode index {ref['path']}"
    )


def from_log(data: bytes, where: object) -> EpisodeIndex:
    """The index an episode log's committed lines describe: each line replaces the segments
    from its ``from`` on.

    Raises:
        CorruptStoreError: a line is not a JSON object of equal-length columns, or its
            ``from`` is past the segments before it.
    """
    body = b"[" + data.rstrip(b"\n").replace(b"\n", b",") + b"]" if data else b"[]"
    lines = untrusted.loads_json(body, where, "episode index", error=CorruptStoreError)
    cols: dict[str, list] = {c: [] for c in COLUMNS}
    for i, line in enumerate(lines):
        ok = isinstance(line, dict) and type(line.get("from")) is int
        ok = ok and all(isinstance(line.get(c), list) for c in COLUMNS)
        ok = (
            ok
            and len({len(line[c]) for c in COLUMNS}) == 1
            and 0 <= line["from"] <= len(cols["start"])
        )
        if not ok:
            raise CorruptStoreError(f"{where}: episode index line {i + 1} is malformed")
        for c in COLUMNS:
            del cols[c][line["from"] :]
            cols[c].extend(line[c])
    return EpisodeIndex(cols)
