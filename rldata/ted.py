"""The TED row contract: key names, validation, ``step_mdp`` and episode bookkeeping.

TED (TorchRL Episode Data) stores one transition per row: the state at ``t`` at
the root, and what the step produced under ``"next"``. Everything in rldata that
reads or writes transitions (stores, samplers, losses, collectors) takes its key
names from :data:`TED_KEYS`, so a renamed key is changed in one place.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from tensordict import TensorDictBase

from rldata.errors import TedFormatError

NestedKey = str | tuple[str, ...]


@dataclass(frozen=True)
class TedKeys:
    """The names of the TED entries. Frozen: build a new one with ``dataclasses.replace``."""

    observation: NestedKey = "observation"
    action: NestedKey = "action"
    done: NestedKey = "done"
    terminated: NestedKey = "terminated"
    truncated: NestedKey = "truncated"
    next: str = "next"
    reward: NestedKey = "reward"
    traj_ids: NestedKey = ("collector", "traj_ids")

    @property
    def flags(self) -> tuple[NestedKey, ...]:
        """The three end-of-episode flags, ``done`` first."""
        return (self.done, self.terminated, self.truncated)

    def nxt(self, key: NestedKey) -> tuple[str, ...]:
        """The key under ``"next"``: ``nxt("reward") == ("next", "reward")``."""
        return (self.next, *_as_tuple(key))


TED_KEYS = TedKeys()
"""The default key set; use it unless your data renames keys."""


def _as_tuple(key: NestedKey) -> tuple[str, ...]:
    return (key,) if isinstance(key, str) else tuple(key)


def key_name(key: NestedKey) -> str:
    """A key as one readable string: ``("next", "reward")`` -> ``"next.reward"``."""
    return ".".join(_as_tuple(key))


# --- validation --------------------------------------------------------------------


def _require(td: TensorDictBase, key: NestedKey) -> torch.Tensor:
    value = td.get(key, None)
    if value is None:
        raise TedFormatError(
            f"TED key {key_name(key)!r} is missing; present keys: "
            f"{sorted(key_name(k) for k in td.keys(True, True))}"
        )
    return value


def _check(
    key: NestedKey, value: torch.Tensor, shape: Sequence[int], dtype: torch.dtype | None
) -> None:
    if tuple(value.shape) != tuple(shape):
        raise TedFormatError(
            f"TED key {key_name(key)!r}: expected shape {tuple(shape)}, got {tuple(value.shape)}"
        )
    if dtype is not None and value.dtype != dtype:
        raise TedFormatError(
            f"TED key {key_name(key)!r}: expected dtype {dtype}, got {value.dtype}"
        )


def validate(
    td: TensorDictBase,
    *,
    keys: TedKeys = TED_KEYS,
    observation_keys: Sequence[NestedKey] | None = None,
    require_traj_ids: bool = False,
) -> None:
    """Check that ``td`` is a batch of TED rows; raise :class:`TedFormatError` naming the fault.

    Args:
        td: a TensorDict with at least one batch dimension.
        keys: the key names to check.
        observation_keys: observation entries present at the root and under ``"next"``
            (default: ``[keys.observation]`` when present, else every root tensor that
            also appears under ``"next"`` and is not a flag).
        require_traj_ids: also require ``("collector", "traj_ids")`` of shape ``batch``.

    Raises:
        TedFormatError: a key is missing, or has the wrong shape or dtype.
    """
    if not isinstance(td, TensorDictBase):
        raise TedFormatError(f"expected a TensorDict of TED rows, got {type(td).__name__}")
    batch = tuple(td.batch_size)
    if len(batch) == 0:
        raise TedFormatError("TED rows need at least one batch dimension, got batch_size=[]")
    nxt = _require(td, keys.next)
    if not isinstance(nxt, TensorDictBase):
        raise TedFormatError(f"TED key {keys.next!r} must be a sub-TensorDict")
    for flag in keys.flags:
        _check(flag, _require(td, flag), (*batch, 1), torch.bool)
        _check(keys.nxt(flag), _require(td, keys.nxt(flag)), (*batch, 1), torch.bool)
    reward = _require(td, keys.nxt(keys.reward))
    if tuple(reward.shape[: len(batch)]) != batch or not reward.is_floating_point():
        raise TedFormatError(
            f"TED key {key_name(keys.nxt(keys.reward))!r}: expected a float tensor of shape "
            f"{(*batch, 1)}, got {tuple(reward.shape)} {reward.dtype}"
        )
    action = _require(td, keys.action)
    if tuple(action.shape[: len(batch)]) != batch:
        raise TedFormatError(
            f"TED key {key_name(keys.action)!r}: expected leading shape {batch}, got {tuple(action.shape)}"
        )
    for obs_key in _observation_keys(td, keys, observation_keys):
        obs = _require(td, obs_key)
        _check(keys.nxt(obs_key), _require(td, keys.nxt(obs_key)), obs.shape, obs.dtype)
    if require_traj_ids or td.get(keys.traj_ids, None) is not None:
        _check(keys.traj_ids, _require(td, keys.traj_ids), batch, torch.int64)


def _observation_keys(
    td: TensorDictBase, keys: TedKeys, given: Sequence[NestedKey] | None
) -> list[NestedKey]:
    if given is not None:
        return list(given)
    if td.get(keys.observation, None) is not None:
        return [keys.observation]
    reserved = {_as_tuple(k) for k in (*keys.flags, keys.reward, keys.action)}
    nxt = td.get(keys.next)
    return [
        k
        for k in td.keys(True, True)
        if _as_tuple(k)[0] not in (keys.next, "collector")
        and _as_tuple(k) not in reserved
        and nxt.get(k, None) is not None
    ]


# --- stepping the MDP --------------------------------------------------------------


def step_mdp(
    tensordict: TensorDictBase,
    next_tensordict: TensorDictBase | None = None,
    keep_other: bool = True,
    exclude_reward: bool = True,
    exclude_done: bool = False,
    exclude_action: bool = True,
    *,
    keys: TedKeys = TED_KEYS,
) -> TensorDictBase:
    """Move the ``"next"`` entries to the root: the input of the following step.

    Args:
        tensordict: a TED step output (root state, action, and ``"next"``).
        next_tensordict: if given, written in place and returned.
        keep_other: keep root entries that ``"next"`` does not replace
            (minus the action when ``exclude_action``).
        exclude_reward: drop the reward.
        exclude_done: drop ``done`` / ``terminated`` / ``truncated``.
        exclude_action: drop the action.

    Returns:
        The TensorDict for the next step, with the input's batch size and device.
    """
    nxt = tensordict.get(keys.next)
    out = nxt.empty()
    drop: set[tuple[str, ...]] = set()
    if exclude_reward:
        drop.add(_as_tuple(keys.reward))
    if exclude_done:
        drop.update(_as_tuple(k) for k in keys.flags)
    for key in nxt.keys(True, True):
        if _as_tuple(key) not in drop:
            out.set(key, nxt.get(key))
    if keep_other:
        root_drop = {_as_tuple(keys.next), _as_tuple(keys.reward)} | {
            _as_tuple(k) for k in keys.flags
        }
        if exclude_action:
            root_drop.add(_as_tuple(keys.action))
        for key in tensordict.keys(True, True):
            tkey = _as_tuple(key)
            if tkey[0] == keys.next or tkey in root_drop or out.get(key, None) is not None:
                continue
            out.set(key, tensordict.get(key))
    if next_tensordict is not None:
        next_tensordict.update(out)
        return next_tensordict
    return out


# --- episodes ----------------------------------------------------------------------


def episode_ends(td: TensorDictBase, *, keys: TedKeys = TED_KEYS) -> torch.Tensor:
    """Boolean mask ``[N]`` of rows that close an episode segment of a flat batch.

    A row ends a segment when its ``("next","done")`` is set, when the following
    row belongs to another trajectory id, or when it is the last row.
    """
    done = td.get(keys.nxt(keys.done)).reshape(-1)
    ends = done.clone()
    ids = td.get(keys.traj_ids, None)
    if ids is not None and ids.numel() > 1:
        ids = ids.reshape(-1)
        ends[:-1] |= ids[1:] != ids[:-1]
    if ends.numel():
        ends[-1] = True
    return ends


def episode_starts(td: TensorDictBase, *, keys: TedKeys = TED_KEYS) -> torch.Tensor:
    """Boolean mask ``[N]`` of rows that open an episode segment of a flat batch."""
    ends = episode_ends(td, keys=keys)
    starts = torch.zeros_like(ends)
    if starts.numel():
        starts[0] = True
        starts[1:] = ends[:-1]
    return starts


def segments(td: TensorDictBase, *, keys: TedKeys = TED_KEYS) -> list[tuple[int, int]]:
    """``(start, length)`` of each contiguous episode segment in a flat batch."""
    ends = torch.nonzero(episode_ends(td, keys=keys)).reshape(-1).tolist()
    out, start = [], 0
    for end in ends:
        out.append((start, end - start + 1))
        start = end + 1
    return out


def assign_traj_ids(next_done: torch.Tensor, start_id: int = 0) -> torch.Tensor:
    """Trajectory ids for rows ordered in time, from their ``("next","done")`` flags.

    ``next_done`` has shape ``[T]``, ``[T, 1]``, ``[B, T]`` or ``[B, T, 1]``. Each batch
    row (an environment) numbers its episodes in turn; ids are unique across the batch
    and start at ``start_id``. This is for building TED data from flags, e.g. when
    importing; collectors keep their own running counters.
    """
    flags = next_done
    if flags.dim() >= 1 and flags.shape[-1] == 1 and flags.dim() > 1:
        flags = flags.squeeze(-1)
    if flags.dim() == 1:
        flags = flags.unsqueeze(0)
    flags = flags.to(torch.int64)
    # episode index within each env: number of dones strictly before t
    local = torch.cumsum(flags, dim=-1) - flags
    per_env = local[:, -1] + 1  # episodes touched by each env
    offsets = torch.cumsum(per_env, 0) - per_env
    ids = local + offsets.unsqueeze(-1) + start_id
    return ids.reshape(
        next_done.shape[:-1]
        if next_done.dim() > 1 and next_done.shape[-1] == 1
        else next_done.shape
    )
