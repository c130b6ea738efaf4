"""Store backends side by side: memmap, zarr, parquet, and Minari's own HDF5 writer and reader.

For N Pendulum-shaped and N HalfCheetah-shaped transitions (default one million each) it
measures, for each backend: write time (create, append in 65,536-row blocks, one commit),
size on disk (allocated blocks), open time (``stores.open`` with its default checksum
verification, and without), and sample(256) batches/s through ``rldata.load`` on a fresh
handle (first load: decoding included) and once warm (cached). Minari's side gets the same
episodes as numpy buffers: ``minari.create_dataset_from_buffers`` and
``minari.load_dataset``; rldata's export to Minari's layout is timed against it, from a
store already open (the same work as Minari's writer, which gets the rows in memory) and
as ``convert STORE minari:...``, which also checks the store's integrity (every stored
byte against its recorded SHA-256, as ``stores.open`` does, on a second handle in a thread
while it exports) and places the dataset only once that check passed.

Data: Pendulum rows follow Pendulum's own dynamics under uniform random actions (numpy,
5,000 episodes of 200 steps, vectorized); HalfCheetah rows have its shapes (17-dim
observations, 6-dim actions, 1,000-step episodes) with smooth AR(1) observations, since
simulating a million MuJoCo steps would dominate the run. Random floats would not
compress, and real observations do: say which one a size figure comes from.

Run:  python benchmarks/bench_stores.py [--rows 1000000] [--rounds 3] [--write]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from tensordict import TensorDict

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _report as rep  # noqa: E402

import rldata  # noqa: E402
import rldata.stores as stores  # noqa: E402
from rldata.stores.interop import minari_export  # noqa: E402
from rldata.stores.interop.convert import convert  # noqa: E402

BACKENDS = ["memmap", "zarr", "parquet"]
BLOCK = 1 << 16
BATCH = 256


# --- data -------------------------------------------------------------------------------------
def pendulum(rows: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Pendulum-v1's dynamics, vectorized over episodes of 200 steps (flat rows, episode-major)."""
    rng = np.random.default_rng(seed)
    t_len = 200
    e = -(-rows // t_len)
    th = rng.uniform(-np.pi, np.pi, e)
    thdot = rng.uniform(-1, 1, e)
    obs = np.empty((e, t_len + 1, 3), np.float32)
    act = rng.uniform(-2, 2, (e, t_len, 1)).astype(np.float32)
    rew = np.empty((e, t_len), np.float32)
    g, m, length, dt = 10.0, 1.0, 1.0, 0.05
    for t in range(t_len + 1):
        obs[:, t] = np.stack([np.cos(th), np.sin(th), thdot], -1)
        if t == t_len:
            break
        u = act[:, t, 0]
        norm = ((th + np.pi) % (2 * np.pi)) - np.pi
        rew[:, t] = -(norm**2 + 0.1 * thdot**2 + 0.001 * u**2)
        thdot = np.clip(
            thdot + (3 * g / (2 * length) * np.sin(th) + 3.0 / (m * length**2) * u) * dt, -8, 8
        )
        th = th + thdot * dt
    return _episodes(obs, act, rew, rows)


def halfcheetah(rows: int, seed: int = 1) -> dict[str, np.ndarray]:
    """HalfCheetah's shapes: smooth AR(1) observations [17], uniform actions [6], 1000-step episodes."""
    rng = np.random.default_rng(seed)
    t_len = 1000
    e = -(-rows // t_len)
    obs = np.empty((e, t_len + 1, 17), np.float32)
    x = rng.standard_normal((e, 17)).astype(np.float32)
    for t in range(t_len + 1):
        obs[:, t] = x
        x = 0.95 * x + 0.3 * rng.standard_normal((e, 17)).astype(np.float32)
    act = rng.uniform(-1, 1, (e, t_len, 6)).astype(np.float32)
    rew = (obs[:, 1:, 8] - 0.1 * (act**2).sum(-1)).astype(np.float32)
    return _episodes(obs, act, rew, rows)


def _episodes(
    obs: np.ndarray, act: np.ndarray, rew: np.ndarray, rows: int
) -> dict[str, np.ndarray]:
    e, t_len = rew.shape
    trunc = np.zeros((e, t_len), bool)
    trunc[:, -1] = True
    return {
        "obs": obs,
        "observation": obs[:, :-1].reshape(-1, obs.shape[-1])[:rows],
        "next.observation": obs[:, 1:].reshape(-1, obs.shape[-1])[:rows],
        "action": act.reshape(-1, act.shape[-1])[:rows],
        "next.reward": rew.reshape(-1, 1)[:rows],
        "next.truncated": trunc.reshape(-1, 1)[:rows],
        "traj": np.repeat(np.arange(e, dtype=np.int64), t_len)[:rows],
        "act": act,
        "rew": rew,
    }


def ted(d: dict[str, np.ndarray], a: int, b: int) -> TensorDict:
    n = b - a
    trunc = torch.from_numpy(d["next.truncated"][a:b])
    false = torch.zeros(n, 1, dtype=torch.bool)
    return TensorDict(
        {
            "observation": torch.from_numpy(d["observation"][a:b]),
            "action": torch.from_numpy(d["action"][a:b]),
            "done": false,
            "terminated": false,
            "truncated": false,
            "next": {
                "observation": torch.from_numpy(d["next.observation"][a:b]),
                "reward": torch.from_numpy(d["next.reward"][a:b]),
                "done": trunc,
                "terminated": false,
                "truncated": trunc,
            },
            "collector": {"traj_ids": torch.from_numpy(d["traj"][a:b])},
        },
        batch_size=[n],
    )


# --- measurements ----------------------------------------------------------------------------
def write(path: Path, backend: str, d: dict[str, np.ndarray], rows: int) -> float:
    shutil.rmtree(path, ignore_errors=True)
    batches = [ted(d, a, min(rows, a + BLOCK)) for a in range(0, rows, BLOCK)]
    t0 = time.perf_counter()
    with stores.create(path, backend=backend) as w:
        for b in batches:
            w.append(b)
    return time.perf_counter() - t0


def sample_rate(path: Path, seconds: float, first: bool) -> float:
    """sample(256) batches/s: ``first`` times a fresh handle from its first batch on."""
    torch.manual_seed(0)
    buffer = rldata.load(path, batch_size=BATCH)
    if not first:
        for _ in range(20):
            buffer.sample()
    n, t0 = 0, time.perf_counter()
    while True:
        buffer.sample()
        n += 1
        elapsed = time.perf_counter() - t0
        if (first and n >= 50) or (not first and elapsed >= seconds):
            return n / elapsed


def minari_buffers(d: dict[str, np.ndarray], rows: int) -> list:
    from minari.data_collector import EpisodeBuffer

    obs, act, rew = d["obs"], d["act"], d["rew"]
    t_len = rew.shape[1]
    out = []
    for i in range(-(-rows // t_len)):
        t = min(t_len, rows - i * t_len)
        trunc = np.zeros(t, bool)
        trunc[-1] = True
        out.append(
            EpisodeBuffer(
                id=i,
                observations=obs[i, : t + 1],
                actions=act[i, :t],
                rewards=rew[i, :t],
                terminations=np.zeros(t, bool),
                truncations=trunc,
            )
        )
    return out


def minari_write(
    name: str, d: dict[str, np.ndarray], rows: int, obs_dim: int, act_dim: int
) -> float:
    import gymnasium as gym
    import minari

    shutil.rmtree(Path(os.environ["MINARI_DATASETS_PATH"]) / name, ignore_errors=True)
    buffers = minari_buffers(d, rows)
    t0 = time.perf_counter()
    minari.create_dataset_from_buffers(
        name,
        buffers,
        observation_space=gym.spaces.Box(-np.inf, np.inf, (obs_dim,), np.float32),
        action_space=gym.spaces.Box(-1, 1, (act_dim,), np.float32),
        algorithm_name="random",
        code_permalink="-",
        author="-",
        author_email="-",
        description="bench",
    )
    return time.perf_counter() - t0


def export(store: Path, name: str) -> float:
    """``rldata convert STORE minari:NAME``: the store's integrity check included."""
    shutil.rmtree(Path(os.environ["MINARI_DATASETS_PATH"]) / name, ignore_errors=True)
    t0 = time.perf_counter()
    convert(store, f"minari:{name}")
    return time.perf_counter() - t0


def export_open(store: Path, name: str) -> float:
    """The export alone, from a store already open: like Minari's writer, the rows in hand."""
    root = Path(os.environ["MINARI_DATASETS_PATH"]) / name
    shutil.rmtree(root, ignore_errors=True)
    src = stores.open(store)
    t0 = time.perf_counter()
    minari_export.export(src, root / "data", name)
    minari_export.write_namespaces(name)
    return time.perf_counter() - t0


def minari_open(name: str) -> float:
    import minari

    t0 = time.perf_counter()
    minari.load_dataset(name)
    return time.perf_counter() - t0


# --- the run ------------------------------------------------------------------------------
def run(
    label: str, d: dict[str, np.ndarray], rows: int, n_rounds: int, seconds: float, tmp: Path
) -> tuple[str, dict]:
    obs_dim, act_dim = d["observation"].shape[1], d["action"].shape[1]
    theirs, ours = f"bench/{label.lower()}-minari-v0", f"bench/{label.lower()}-rldata-v0"
    res: dict[str, dict[str, list[float]]] = {b: {} for b in [*BACKENDS, "minari"]}

    def add(b: str, k: str, v: float) -> None:
        res[b].setdefault(k, []).append(v)

    for _ in range(n_rounds):
        for b in BACKENDS:
            path = tmp / f"{label}-{b}"
            add(b, "write", write(path, b, d, rows))
            add(b, "size", rep.disk_bytes(path))
            add(b, "open", rep.timed(lambda p=path: stores.open(p).close()))
            add(b, "open_noverify", rep.timed(lambda p=path: stores.open(p, verify=False).close()))
            add(b, "first", sample_rate(path, seconds, first=True))
            add(b, "cached", sample_rate(path, seconds, first=False))
        add("minari", "write", minari_write(theirs, d, rows, obs_dim, act_dim))
        add("minari", "size", rep.disk_bytes(Path(os.environ["MINARI_DATASETS_PATH"]) / theirs))
        add("minari", "open", minari_open(theirs))
        add("minari", "export", export(tmp / f"{label}-memmap", ours))
        add("minari", "export_open", export_open(tmp / f"{label}-memmap", ours))
    mm = res["memmap"]
    rows_out = []
    for b in BACKENDS:
        r = res[b]
        rows_out.append(
            [
                b,
                rep.spread(r["write"], "s"),
                f"{rep.med(r['size']) / 1e6:.1f} MB ({rep.med(r['size']) / rep.med(mm['size']):.2f}x)",
                rep.spread(r["open"], "s"),
                rep.spread(r["open_noverify"], "s"),
                rep.spread(r["first"]),
                rep.spread(r["cached"]),
                rep.spread(rep.per_round(r["cached"], mm["cached"]), "%"),
            ]
        )
    m = res["minari"]
    rows_out.append(
        [
            "Minari `create_dataset_from_buffers` / `load_dataset`",
            rep.spread(m["write"], "s"),
            f"{rep.med(m['size']) / 1e6:.1f} MB ({rep.med(m['size']) / rep.med(mm['size']):.2f}x)",
            rep.spread(m["open"], "s"),
            "–",
            "– (episodes only)",
            "–",
            "–",
        ]
    )
    for key, what in (
        ("export_open", "rldata export to Minari's layout, from an open store"),
        ("export", "rldata `convert STORE minari:…` (integrity check included)"),
    ):
        rows_out.append(
            [
                what,
                rep.spread(m[key], "s"),
                "–",
                "–",
                "–",
                "–",
                "–",
                f"{rep.spread(rep.per_round(m['write'], m[key]), 'x')} faster than Minari's writer",
            ]
        )
    head = [
        f"{label}, {rows:,} rows",
        "write s",
        "size on disk (vs memmap)",
        "open s (verified)",
        "open s (verify=False)",
        "sample(256)/s first load",
        "sample(256)/s cached",
        "cached vs memmap",
    ]
    return rep.table(head, rows_out), res


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=1.0, help="timing window of cached sampling")
    p.add_argument(
        "--write", action="store_true", help="write benchmarks/RESULTS-stores-backends.md"
    )
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-stores-"))
    os.environ["MINARI_DATASETS_PATH"] = str(tmp / "minari")
    try:
        tables = []
        for label, make in (("Pendulum", pendulum), ("HalfCheetah", halfcheetah)):
            body, _ = run(label, make(args.rows), args.rows, args.rounds, args.seconds, tmp)
            print(body + "\n", flush=True)
            tables.append(body)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if args.write:
        command = (
            f"python benchmarks/bench_stores.py --rows {args.rows} --rounds {args.rounds} --write"
        )
        rep.write_results(
            "stores-backends",
            "Store backends: memmap, zarr, parquet and Minari",
            command,
            [rep.region("stores-backends", "\n\n".join(tables))],
        )


if __name__ == "__main__":
    main()
