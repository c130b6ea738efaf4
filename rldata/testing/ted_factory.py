"""TED batch factories for tests: small, deterministic, and always valid TED.

Every factory returns rows that satisfy the invariants a store checks
(``rldata.stores.verify``): within one trajectory the ``("next", obs)`` of row
``t`` equals ``obs`` of row ``t + 1``; ``done == terminated | truncated`` at the
root and under ``"next"``; ``("collector", "traj_ids")`` is int64 ``[N]``.

Examples:
    >>> td = ted_batch(episode_lengths=[3, 2], obs_shape=(3,), act_shape=(1,))
    >>> td.batch_size
    torch.Size([5])
    >>> td["collector", "traj_ids"].tolist()
    [0, 0, 0, 1, 1]
    >>> roll = ted_rollout(num_envs=2, steps=4)
    >>> roll.batch_size
    torch.Size([2, 4])
"""

from __future__ import annotations

from collections.abc import Sequence

import tensordict
import torch
from tensordict import TensorDict

from rldata.ted import TED_KEYS, TedKeys

__all__ = [
    "marked_serial",
    "ted_batch",
    "ted_episode",
    "ted_marked",
    "ted_rollout",
    "ted_transitions",
]


def ted_episode(
    length: int,
    *,
    traj_id: int = 0,
    obs_shape: Sequence[int] = (3,),
    act_shape: Sequence[int] = (1,),
    obs_dtype: torch.dtype = torch.float32,
    act_dtype: torch.dtype = torch.float32,
    truncated: bool = False,
    complete: bool = True,
    pixels_shape: Sequence[int] | None = None,
    extra: bool = False,
    seed: int | None = None,
    keys: TedKeys = TED_KEYS,
) -> TensorDict:
    """One episode of ``length`` TED rows ``[T]``.

    Args:
        length: number of transitions (>= 1).
        traj_id: the episode's ``("collector", "traj_ids")``.
        obs_shape / act_shape: per-row shapes of observation and action.
        obs_dtype / act_dtype: their dtypes (integer obs are drawn in ``[0, 255]``).
        truncated: end the episode by truncation instead of termination.
        complete: when False the last row does not end the episode (a cut segment,
            e.g. the rows of a still-running env at the end of a collection).
        pixels_shape: also add a ``"pixels"`` observation (uint8) of this shape.
        extra: also add a nested non-TED entry ``("info", "step")`` (int64 ``[T, 1]``)
            and a root ``"log_prob"`` (float32 ``[T]``), to test that extra keys round trip.
        seed: generator seed; default derives it from ``traj_id`` so data is reproducible.
        keys: TED key names.

    Returns:
        A TensorDict with ``batch_size=[length]``.
    """
    if length < 1:
        raise ValueError(f"ted_episode: length must be >= 1, got {length}")
    gen = torch.Generator().manual_seed(traj_id * 7919 + 17 if seed is None else seed)
    # states s_0 .. s_T: rows take s_t at the root and s_{t+1} under "next"
    states = _draw((length + 1, *obs_shape), obs_dtype, gen)
    last = torch.zeros(length, 1, dtype=torch.bool)
    if complete:
        last[-1] = True
    next_term = last & (not truncated)
    next_trunc = last & truncated
    false = torch.zeros(length, 1, dtype=torch.bool)
    nxt = {
        keys.observation: states[1:],
        keys.reward: torch.randn(length, 1, generator=gen),
        keys.done: next_term | next_trunc,
        keys.terminated: next_term,
        keys.truncated: next_trunc,
    }
    root = {
        keys.observation: states[:-1],
        keys.action: _draw((length, *act_shape), act_dtype, gen),
        keys.done: false.clone(),
        keys.terminated: false.clone(),
        keys.truncated: false.clone(),
    }
    td = TensorDict(root, batch_size=[length])
    td.set(keys.next, TensorDict(nxt, batch_size=[length]))
    td.set(keys.traj_ids, torch.full((length,), traj_id, dtype=torch.int64))
    if pixels_shape is not None:
        pix = _draw((length + 1, *pixels_shape), torch.uint8, gen)
        td.set("pixels", pix[:-1])
        td.set(keys.nxt("pixels"), pix[1:])
    if extra:
        td.set(("info", "step"), torch.arange(length, dtype=torch.int64).unsqueeze(-1))
        td.set("log_prob", torch.randn(length, generator=gen))
    return td


def ted_batch(
    episode_lengths: Sequence[int] = (5, 3),
    *,
    start_traj_id: int = 0,
    last_complete: bool = True,
    **kwargs,
) -> TensorDict:
    """Episodes of the given lengths, one after another, flattened to ``[sum(lengths)]``.

    Args:
        episode_lengths: length of each episode, in order; ids are consecutive from
            ``start_traj_id``.
        last_complete: when False the last episode is a cut segment (no done at its end).
        **kwargs: forwarded to :func:`ted_episode` (shapes, dtypes, ``pixels_shape``, ``extra``).
    """
    eps = [
        ted_episode(
            n,
            traj_id=start_traj_id + i,
            complete=last_complete or i < len(episode_lengths) - 1,
            **kwargs,
        )
        for i, n in enumerate(episode_lengths)
    ]
    return tensordict.cat(eps, 0)


def ted_transitions(
    num_rows: int,
    *,
    episode_length: int = 10,
    start_traj_id: int = 0,
    **kwargs,
) -> TensorDict:
    """``num_rows`` rows cut into episodes of ``episode_length`` (the last one may be cut short).

    The quickest way to get "N valid TED rows"; rows continue from ``start_traj_id``.
    """
    if num_rows < 1:
        raise ValueError(f"ted_transitions: num_rows must be >= 1, got {num_rows}")
    full, rest = divmod(num_rows, episode_length)
    lengths = [episode_length] * full + ([rest] if rest else [])
    return ted_batch(lengths, start_traj_id=start_traj_id, last_complete=rest == 0, **kwargs)


def ted_rollout(
    num_envs: int = 2,
    steps: int = 8,
    *,
    episode_length: int = 5,
    start_traj_id: int = 0,
    **kwargs,
) -> TensorDict:
    """A batched-env rollout ``[num_envs, steps]`` as a collector yields it.

    Env ``b`` runs episodes of ``episode_length + b`` steps (so envs end at different
    times); its last episode is cut at ``steps``. Trajectory ids are unique across envs,
    numbered env by env from ``start_traj_id``. Flatten with ``td.reshape(-1)`` to get
    rows ordered by time within each trajectory.
    """
    rows, next_id = [], start_traj_id
    for b in range(num_envs):
        n = episode_length + b
        full, rest = divmod(steps, n)
        lengths = [n] * full + ([rest] if rest else [])
        rows.append(ted_batch(lengths, start_traj_id=next_id, last_complete=rest == 0, **kwargs))
        next_id += len(lengths)
    return tensordict.stack(rows, 0)


def ted_marked(
    start: int,
    num_rows: int,
    *,
    episode_length: int = 10,
    obs_dim: int = 3,
    keys: TedKeys = TED_KEYS,
) -> TensorDict:
    """Rows whose every entry encodes their serial ``s`` (``start <= s < start + num_rows``).

    Row ``s`` has observation ``s``, next observation ``s + 1``, action and reward ``s``,
    trajectory ``s // episode_length``, and ends its episode when ``(s + 1) % episode_length
    == 0``. Calls with consecutive ranges continue the same trajectories, so a reader can
    check any row it gets against :func:`marked_serial` (torn or stale rows show up) and
    rebuild the exact expected contents of a store.
    """
    s = torch.arange(start, start + num_rows, dtype=torch.int64)
    val = s.to(torch.float64).unsqueeze(-1)
    end = ((s + 1) % episode_length == 0).unsqueeze(-1)
    false = torch.zeros(num_rows, 1, dtype=torch.bool)
    td = TensorDict(
        {
            keys.observation: val.expand(num_rows, obs_dim).clone(),
            keys.action: val.float(),
            keys.done: false.clone(),
            keys.terminated: false.clone(),
            keys.truncated: false.clone(),
        },
        batch_size=[num_rows],
    )
    td.set(
        keys.next,
        TensorDict(
            {
                keys.observation: (val + 1).expand(num_rows, obs_dim).clone(),
                keys.reward: val.float(),
                keys.done: end.clone(),
                keys.terminated: end.clone(),
                keys.truncated: false.clone(),
            },
            batch_size=[num_rows],
        ),
    )
    td.set(keys.traj_ids, s // episode_length)
    return td


def marked_serial(td: TensorDict, keys: TedKeys = TED_KEYS) -> torch.Tensor:
    """The serial each row of :func:`ted_marked` data encodes; raises if a row is torn.

    Raises:
        AssertionError: some entry of a row disagrees with its observation.
    """
    obs = td.get(keys.observation)
    s = obs[..., 0].round().to(torch.int64)
    sv = s.to(torch.float64).unsqueeze(-1)
    ok = (
        (obs == sv).all(-1)
        & (td.get(keys.nxt(keys.observation)) == sv + 1).all(-1)
        & (td.get(keys.action).double() == sv).all(-1)
        & (td.get(keys.nxt(keys.reward)).double() == sv).all(-1)
    )
    if not bool(ok.all()):
        i = int((~ok).nonzero()[0])
        raise AssertionError(f"torn row at index {i}: {td[i]}")
    return s


def _draw(shape: tuple[int, ...], dtype: torch.dtype, gen: torch.Generator) -> torch.Tensor:
    if dtype.is_floating_point:
        return torch.randn(shape, generator=gen).to(dtype)
    if dtype == torch.bool:
        return torch.randint(0, 2, shape, generator=gen).bool()
    return torch.randint(0, 256, shape, generator=gen).to(dtype)


def episode_lengths(seed: int, total: int, longest: int) -> list[int]:
    """Episode lengths drawn in ``[1, longest)`` that sum to ``total`` (the last one cut
    short): episodes of every length cross every unit, chunk and part boundary."""
    import numpy as np

    rng = np.random.default_rng(seed)
    out: list[int] = []
    while sum(out) < total:
        out.append(int(rng.integers(1, longest)))
    out[-1] -= sum(out) - total
    return [n for n in out if n > 0]


def assert_same_bits(a: TensorDict, b: TensorDict) -> None:
    """Both TensorDicts hold the same keys, dtypes, shapes and bytes (NaN payloads and
    signed zeros included, which ``torch.equal`` on values would not tell apart)."""
    fa, fb = a.flatten_keys("."), b.flatten_keys(".")
    assert set(fa.keys()) == set(fb.keys())
    for k in fa.keys():  # noqa: SIM118 (iterating a TensorDict yields rows)
        x, y = fa[k].contiguous(), fb[k].contiguous()
        assert x.dtype == y.dtype and x.shape == y.shape, k
        if x.numel():  # an empty tensor has no bytes to compare (and no byte view)
            assert torch.equal(x.reshape(-1).view(torch.uint8), y.reshape(-1).view(torch.uint8)), k
