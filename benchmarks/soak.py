"""Soak: kill writers, damage stores and race readers against a writer; print the tally.

Four parts, each per backend, all seeded:

- **kills**: a writer process appends marked rows (each row's values encode its serial)
  and commits every 21 rows; it is SIGKILLed at a random moment (uniform in 0-300 ms of
  writing). Survived = the store opens and verifies, holds every row the writer reported
  committed (byte-exact, by the marks), and a resumed writer appends and commits.
- **fuzz**: single-bit flips, truncations, deletions and appended garbage in a random file
  of a copy of a sound store (``rldata.testing.faults``). Each case is detected (refused
  with one line) or harmless (every row, the episode table and the specs unchanged);
  silent (served different rows) and uncaught (another exception) are bugs.
- **readers**: one writer (a ring, so rows are overwritten) and 4 reader processes for
  ``--seconds``; readers sample rows and check every row's marks: torn rows, fill-value
  rows, fields of different lengths and reader errors are counted.

- **hostile**: a sound store's manifest and a run's ``config.json`` rewritten by random
  structural mutations (a value at a random path replaced by a hostile one: huge or negative
  numbers, NaN, control characters, module-naming env ids, traversal paths, 20,000-deep
  nesting, megabyte strings; keys dropped or added; the file swapped for a FIFO, a link to
  ``/dev/zero`` or a directory), then read through ``stores.open`` + ``stores.verify`` and
  ``TrainConfig.from_dict``. Each case is refused (one-line ``RldataError``) or served;
  ``uncaught`` (another exception), ``multi-line`` and ``hung`` (over 20 s) are bugs. The
  default test suite runs these families by construction (``tests/test_hostile_files.py``);
  this is the larger random run.

Usage::

    python benchmarks/soak.py                        # 200 kills, 5000 faults, 60 s readers
    python benchmarks/soak.py --kills 20 --faults 300 --seconds 5 --hostile 200  # a quick look
    python benchmarks/soak.py --parts hostile                                  # one part
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

import torch

from rldata import stores
from rldata.errors import RldataError, RowIndexError
from rldata.testing import faults
from rldata.testing.kills import _ctx, one_kill
from rldata.testing.ted_factory import marked_serial, ted_marked
from rldata.testing.writers import marked_writer


def kills(n: int, seed: int, tmp: Path) -> dict[str, int]:
    rng = random.Random(seed)
    out = {"kills": 0, "survived": 0}
    for i in range(n):
        root = tmp / f"kill-{i}"
        ok, why = one_kill(root, rng.choice([None, 64]), rng)
        out["kills"] += 1
        out["survived"] += ok
        if not ok:
            print(f"  kill {i}: {why}", file=sys.stderr)
        shutil.rmtree(root, ignore_errors=True)
    return out


def fuzz(backend: str, n: int, seed: int, tmp: Path) -> dict[str, int]:
    sound = tmp / f"sound-{backend}"
    with stores.create(sound, backend=backend) as w:
        for k in range(4):
            w.append(ted_marked(k * 200, 200))
            w.commit()

    def report(case: faults.Case, result: str, detail: str) -> None:
        if result in ("silent", "uncaught"):
            print(f"  {backend}: {case}: {result} {detail}", file=sys.stderr)

    return faults.run(sound, tmp / f"scratch-{backend}", n, seed, on_case=report)


def _reader(root: str, seconds: float, q: mp.Queue) -> None:
    tally: dict = {"reads": 0, "rows": 0, "torn": 0, "errors": 0, "refused": 0, "seen": []}
    end = time.monotonic() + seconds
    try:
        r = stores.open(root)
    except RldataError:
        tally["errors"] += 1
        q.put(tally)
        return
    while time.monotonic() < end:
        try:
            if r.refresh():
                tally["seen"].append((time.monotonic(), r.manifest["written"]))
            pos = r.readable()
            if pos.numel() == 0:
                continue
            pick = pos[torch.randint(0, pos.numel(), (32,))]
            rows = r.get(pick)
            lengths = {rows.get(k).shape[0] for k in rows.keys(True, True)}
            if lengths != {32}:
                tally["torn"] += 1
            try:
                serials = marked_serial(rows)
                if not torch.equal(serials % r.capacity, pick):
                    tally["torn"] += 1
            except Exception:  # marks that do not decode: a torn or fill-value row
                tally["torn"] += 1
            tally["reads"] += 1
            tally["rows"] += 32
        except RowIndexError:
            tally["refused"] += 1  # retired meanwhile: refused, never served
        except Exception:
            tally["errors"] += 1
    q.put(tally)


def _visibility(
    commits: list[tuple[float, int]], seen: list[tuple[float, int]], end: float
) -> list[float]:
    """Seconds from each commit (sampled) until this reader saw a manifest listing it."""
    out = []
    for t_commit, written in commits[::50]:
        if t_commit > end - 1.0:
            break
        t_seen = next((t for t, w in seen if w >= written and t >= t_commit - 1e-3), None)
        out.append(float("inf") if t_seen is None else max(0.0, t_seen - t_commit))
    return out


def readers(seconds: float, tmp: Path) -> dict:
    """1 writer (a ring) and 4 readers, two of them opening the store by a ``file://`` URL."""
    root = tmp / "readers"
    ctx = _ctx()
    conn, child = ctx.Pipe(duplex=False)
    writer = ctx.Process(target=marked_writer, args=(str(root), 512, 3, False, child))
    writer.start()
    child.close()
    conn.recv()
    q: mp.Queue = ctx.Queue()
    where = [str(root), str(root), root.as_uri(), root.as_uri()]
    procs = [ctx.Process(target=_reader, args=(w, seconds, q)) for w in where]
    for p in procs:
        p.start()
    commits: list[tuple[float, int]] = []
    results: list[dict] = []
    while len(results) < len(procs):
        while conn.poll():
            commits.append((time.monotonic(), conn.recv()))
        try:
            results.append(q.get(timeout=0.01))
        except Exception:
            continue
    end = time.monotonic()
    for p in procs:
        p.join()
    writer_alive = writer.is_alive()
    os.kill(writer.pid, signal.SIGKILL)
    writer.join()
    total = {k: sum(r[k] for r in results) for k in ("reads", "rows", "torn", "errors", "refused")}
    lags = [x for r in results for x in _visibility(commits, r["seen"], end - 0.0)]
    total["visible_max_s"] = max(lags) if lags else float("nan")
    total["visible_median_s"] = sorted(lags)[len(lags) // 2] if lags else float("nan")
    total["writer_failed"] = int(not writer_alive)
    return total


HOSTILE_VALUES: list[object] = [
    None,
    True,
    -1,
    0,
    2**63,
    -(2**63) - 1,
    1e308,
    float("nan"),
    float("inf"),
    "",
    "x" * 2**20,
    "\x1b]0;pwned\x07\x1b[2J",
    "ok\r\ncheck ok",
    "this:Pendulum-v1",
    "../../../../tmp/x",
    "/etc/passwd",
    [],
    {},
    [1, 2, 3],
    {"__class__": "os.system"},
    "\x00",
    1.5,
]


DEEP = "__rldata_soak_deep__"  # replaced by 20,000 nested lists once dumped (json cannot)


def _dumps(doc: object) -> str:
    import json

    return json.dumps(doc).replace(f'"{DEEP}"', "[" * 20000 + "0" + "]" * 20000)


def _mutate(doc: object, rng: random.Random) -> object:
    """``doc`` with one hostile change at a random place."""
    import copy

    doc = copy.deepcopy(doc)
    if not isinstance(doc, dict) or rng.random() < 0.05:
        return rng.choice([*HOSTILE_VALUES, DEEP])
    node: dict | list = doc
    for _ in range(rng.randint(0, 4)):  # walk down a few levels
        kids = list(node.items()) if isinstance(node, dict) else list(enumerate(node))
        kids = [(k, v) for k, v in kids if isinstance(v, (dict, list)) and v]
        if not kids:
            break
        node = rng.choice(kids)[1]
    keys = list(node.keys()) if isinstance(node, dict) else list(range(len(node)))
    if not keys:
        return doc
    key = rng.choice(keys)
    roll = rng.random()
    if roll < 0.15 and isinstance(node, dict):
        del node[key]
    elif roll < 0.25 and isinstance(node, dict):
        node[f"extra-{rng.randint(0, 9)}"] = rng.choice(HOSTILE_VALUES)
    elif roll < 0.3:
        node[key] = DEEP  # type: ignore[index]
    else:
        node[key] = rng.choice(HOSTILE_VALUES)  # type: ignore[index]
    return doc


def _special(path: Path, rng: random.Random) -> None:
    path.unlink()
    kind = rng.choice(["fifo", "zero", "dir"])
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "zero":
        path.symlink_to("/dev/zero")
    else:
        path.mkdir()


def _alarm(signum: int, frame: object) -> None:
    raise TimeoutError("hung")


def hostile(n: int, seed: int, tmp: Path) -> dict[str, int]:
    import json

    from rldata.trainers.config import TrainConfig

    rng = random.Random(seed)
    sound = tmp / "hostile-sound"
    with stores.create(sound, backend="memmap") as w:
        w.append(ted_marked(0, 60))
    manifest_name = "rldata.json"
    manifest = json.loads((sound / manifest_name).read_text())
    config = TrainConfig(algo="sac", env="Pendulum-v1").to_dict()
    tally = {"refused": 0, "served": 0, "uncaught": 0, "multi-line": 0, "hung": 0}
    signal.signal(signal.SIGALRM, _alarm)
    for i in range(n):
        target = rng.choice(["manifest", "config"])
        case = tmp / f"hostile-{i}"
        shutil.copytree(sound, case)
        path = case / (manifest_name if target == "manifest" else "config.json")
        if target == "config":
            path.write_text(json.dumps(config))
        if rng.random() < 0.1:
            _special(path, rng)
        else:
            base = manifest if target == "manifest" else config
            path.write_text(_dumps(_mutate(base, rng)))
        signal.alarm(20)
        try:
            if target == "manifest":
                s = stores.open(case)
                stores.verify(s)
                s.close()
            else:
                from rldata._untrusted import read_json

                TrainConfig.from_dict(read_json(path, what="config.json"))
            tally["served"] += 1
        except TimeoutError:
            tally["hung"] += 1
            print(f"  hostile {i} ({target}): hung", file=sys.stderr)
        except RldataError as err:
            one = "\n" not in str(err).strip()
            tally["refused" if one else "multi-line"] += 1
            if not one:
                print(f"  hostile {i} ({target}): multi-line: {err!s:.200}", file=sys.stderr)
        except Exception as err:  # noqa: BLE001  (a bug: counted and shown)
            tally["uncaught"] += 1
            print(f"  hostile {i} ({target}): {type(err).__name__}: {err!s:.200}", file=sys.stderr)
        finally:
            signal.alarm(0)
            shutil.rmtree(case, ignore_errors=True)
    return tally


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kills", type=int, default=200)
    ap.add_argument(
        "--faults", type=int, default=5000, help="fault cases in all, split over backends"
    )
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--hostile", type=int, default=2000, help="hostile run-file/manifest cases")
    ap.add_argument(
        "--parts", default="kills,fuzz,readers,hostile", help="comma-separated parts to run"
    )
    args = ap.parse_args()
    parts = set(args.parts.split(","))
    backends = [b for b in ("memmap", "zarr", "parquet") if b in stores.backends()]
    lines = ["| part | result | time |", "|---|---|---:|"]
    with tempfile.TemporaryDirectory(prefix="rldata-soak-") as d:
        tmp = Path(d)
        if "kills" in parts:
            t0 = time.perf_counter()
            k = kills(args.kills, args.seed, tmp)
            lines.append(
                f"| kills (memmap, append-only and ring) | survived {k['survived']} / "
                f"{k['kills']} | {time.perf_counter() - t0:.0f} s |"
            )
        for b in backends if "fuzz" in parts else []:
            t0 = time.perf_counter()
            t = fuzz(b, args.faults // len(backends), args.seed, tmp)
            lines.append(
                f"| fuzz {b} | detected {t['detected']}, harmless {t['harmless']} "
                f"(handled {t['detected'] + t['harmless']} / {sum(t.values())}); silent "
                f"{t['silent']}, uncaught {t['uncaught']} | {time.perf_counter() - t0:.0f} s |"
            )
        if "readers" in parts:
            r = readers(args.seconds, tmp)
            lines.append(
                f"| 1 writer + 4 readers (2 by file:// URL), {args.seconds:.0f} s (ring of 512) "
                f"| {r['reads']:,} reads, {r['rows']:,} rows; torn {r['torn']}, reader errors "
                f"{r['errors']}, refused (retired while read) {r['refused']}, writer failed "
                f"{r['writer_failed']}; a commit visible to every reader within "
                f"{r['visible_median_s'] * 1000:.0f} ms (median), "
                f"{r['visible_max_s'] * 1000:.0f} ms (max) | {args.seconds:.0f} s |"
            )
        if "hostile" in parts:
            t0 = time.perf_counter()
            h = hostile(args.hostile, args.seed, tmp)
            lines.append(
                f"| hostile manifests and config.json ({args.hostile} random mutations) | "
                f"refused {h['refused']}, served {h['served']}; uncaught {h['uncaught']}, "
                f"multi-line {h['multi-line']}, hung {h['hung']} | "
                f"{time.perf_counter() - t0:.0f} s |"
            )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
