"""EnvBase: the TensorDict-in, TED-out environment contract every rldata env follows.

``reset()`` returns the root of a TED row (observations and the three done flags),
``step(td)`` reads ``td["action"]`` and writes what the step produced under
``td["next"]``; ``rollout`` runs the one step loop (:mod:`rldata.envs._loop`) that
collectors run too, so a rollout and a collector's batch are the same rows.
Subclasses only fill in specs and three private hooks (``_reset``, ``_step``,
``_set_seed``); everything else, including partial resets of batched envs, lives here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from tensordict import TensorDictBase

from rldata.envs._gym_loop import FastLayout
from rldata.envs._loop import make_loop
from rldata.envs._policy import writes_only_action
from rldata.envs._run import Run
from rldata.envs._sampling import ActionStream, make_sampler
from rldata.envs._td import get as _get
from rldata.envs._td import items as _items
from rldata.envs._td import make_td, set_fast
from rldata.errors import ConfigError, EnvClosedError, TedFormatError
from rldata.specs import Categorical, Composite, TensorSpec
from rldata.ted import TED_KEYS

Policy = Callable[[TensorDictBase], TensorDictBase]

RESET_KEY = "_reset"
"""Boolean ``[*batch, 1]`` entry of a TensorDict given to ``reset``: which sub-envs to reset."""

_MAX_SEED = 2**32 - 1


def next_seed(seed: int) -> int:
    """The seed to hand to the next environment or worker after ``seed`` (deterministic)."""
    return int(np.random.default_rng(int(seed) % (2**63)).integers(0, _MAX_SEED))


def _put(td: TensorDictBase, key: str, value: Any, built_for: torch.Size) -> TensorDictBase:
    """``td[key] = value``; unchecked when ``value`` was built for ``td``'s batch size."""
    if td.batch_size == built_for:
        set_fast(td, key, value)
    else:
        td.set(key, value)
    return td


def _plain_root(root: TensorDictBase, observation_keys: list) -> bool:
    """Only the observations and three unset done flags: what a fresh reset gives."""
    keys = set(root.keys(True, True))
    if keys != {*observation_keys, *TED_KEYS.flags}:
        return False
    return not any(bool(root.get(k).any()) for k in TED_KEYS.flags)


def done_spec_for(batch_size: torch.Size, device: torch.device | None) -> Composite:
    """The standard ``done`` / ``terminated`` / ``truncated`` spec: bool ``[*batch, 1]`` each."""
    shape = (*batch_size, 1)
    flags = {k: Categorical(2, shape, device=device, dtype=torch.bool) for k in TED_KEYS.flags}
    return Composite(flags, shape=batch_size, device=device)  # type: ignore[arg-type]


class EnvBase:
    """Base of every rldata environment: TensorDicts in, TED rows out.

    A loop written against this class (a collector, an evaluator) may use:

    - ``batch_size`` (``torch.Size``, ``[]`` or ``[n]``), ``device``,
      ``observation_spec`` (Composite of the root entries a reset/step produces, besides the
      flags), ``action_spec`` (leaf spec of ``"action"``), ``reward_spec`` (leaf spec of
      ``("next", "reward")``), ``done_spec`` (Composite of the three flags);
    - ``reset(td=None)``: a fresh root. Given a TensorDict holding a boolean ``"_reset"``
      of shape ``[*batch, 1]``, only those sub-envs restart; the other rows keep the values
      ``td`` holds for them (zeros where ``td`` holds none);
    - ``rand_action(td=None)``, ``step(td)`` (adds ``"next"``, returns ``td``);
    - ``step_and_maybe_reset(td) -> (td_with_next, next_root)``: one step, the ``"next"``
      entries moved to the root, and finished sub-envs reset in that root. The finished
      transition stays intact in ``td_with_next["next"]``. This is the fast path for loops;
    - ``step_mdp(td)``: the root of the following step (``"next"`` moved up, reward and
      action dropped), cheaper than :func:`rldata.ted.step_mdp`;
    - ``rollout(...)``, ``set_seed(seed) -> next seed``, ``close()``, ``is_closed``;
    - for loops that bypass TensorDicts: ``GymWrapper.gym_env`` (the gymnasium env) and
      ``SerialEnv.envs`` (the sub-envs); ``TransformedEnv.base_env`` and ``.transform``.

    The loop these methods are made for::

        td = env.reset()
        for _ in range(steps):
            td = policy(td)                          # or env.rand_action(td)
            row, td = env.step_and_maybe_reset(td)   # row: one TED row per sub-env
            rows.append(row)
        batch = torch.stack(rows, dim=env.batch_dims)  # [*batch, T]

    Subclasses set ``batch_size``, ``device`` and the four specs in ``__init__`` and
    implement ``_reset(td | None) -> root td``, ``_step(td) -> next td``,
    ``_set_seed(seed) -> next seed | None`` and ``_close()``.
    """

    action_key: str = "action"
    reward_key: str = "reward"

    def __init__(self, batch_size: torch.Size | tuple[int, ...] = (), device: Any = None) -> None:
        self.batch_size = torch.Size(batch_size)
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self._closed = False
        self._generator = torch.Generator()
        self._generator.seed()
        self._sampler: tuple[int, ActionStream] | None = None

    # -- specs -----------------------------------------------------------------------
    observation_spec: Composite
    action_spec: TensorSpec
    reward_spec: TensorSpec
    done_spec: Composite

    @property
    def observation_keys(self) -> list:
        """Leaf keys of ``observation_spec`` (what ``reset`` and ``"next"`` hold besides flags)."""
        return self.observation_spec.keys(True, True)

    @property
    def done_keys(self) -> list:
        return self.done_spec.keys(True, True)

    @property
    def batch_dims(self) -> int:
        return len(self.batch_size)

    @property
    def is_closed(self) -> bool:
        return self._closed

    # -- hooks for subclasses ----------------------------------------------------------------
    def _reset(self, tensordict: TensorDictBase | None) -> TensorDictBase:
        raise NotImplementedError

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        raise NotImplementedError

    def _set_seed(self, seed: int) -> int | None:
        raise NotImplementedError

    def _close(self) -> None:
        pass

    def _fast_layout(self) -> FastLayout | None:
        """The gymnasium envs behind this env and their layout, if the step loop may step
        them in numpy (:mod:`rldata.envs._gym_loop`) and get exactly what ``step`` gives.

        None (the default) keeps the generic TensorDict path.
        """
        return None

    # -- public API -------------------------------------------------------------------------
    def _assert_open(self, what: str) -> None:
        if self.is_closed:
            raise EnvClosedError(f"{what}() called on {type(self).__name__} after close()")

    def _get_action(self, tensordict: TensorDictBase) -> torch.Tensor:
        action = _get(tensordict, self.action_key)
        if action is None:
            raise TedFormatError(
                f"step() needs an {self.action_key!r} entry; given keys: "
                f"{sorted(str(k) for k in tensordict.keys(True, True))}"
            )
        return action

    def reset(self, tensordict: TensorDictBase | None = None) -> TensorDictBase:
        """A fresh root TensorDict; a ``"_reset"`` mask in ``tensordict`` restarts only those rows.

        Entries of ``tensordict`` that the reset does not produce (e.g. a recurrent state
        the caller set) are carried over, except ``"_reset"``, ``"next"`` and the action.
        """
        self._assert_open("reset")
        if tensordict is not None:
            mask = tensordict.get(RESET_KEY, None)
            if mask is not None and not bool(mask.any()):
                return tensordict.exclude(RESET_KEY)  # no row asked for a reset
        out = self._reset(tensordict)
        if tensordict is not None:
            skip = {RESET_KEY, TED_KEYS.next, self.action_key}
            for key, value in tensordict.items():
                if key not in skip and out.get(key, None) is None:
                    out.set(key, value)
        return out

    def step(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Apply ``tensordict["action"]``; write the result under ``"next"`` and return ``tensordict``."""
        self._assert_open("step")
        nxt = self._step(tensordict)
        return _put(tensordict, TED_KEYS.next, nxt, nxt.batch_size)

    def step_mdp(self, tensordict: TensorDictBase) -> TensorDictBase:
        """The root for the next step: ``"next"`` entries moved up, reward and action dropped.

        Other root entries (e.g. ``loc``/``scale`` a policy wrote) are kept, as
        :func:`rldata.ted.step_mdp` does with its defaults. Tensors are shared, not copied.
        """
        nxt = _get(tensordict, TED_KEYS.next)
        src = dict(_items(nxt))
        src.pop(self.reward_key, None)
        skip = (TED_KEYS.next, self.action_key, RESET_KEY)
        for key, value in _items(tensordict):
            if key not in src and key not in skip:
                src[key] = value
        return make_td(src, tensordict.batch_size, tensordict.device)

    def step_and_maybe_reset(
        self, tensordict: TensorDictBase
    ) -> tuple[TensorDictBase, TensorDictBase]:
        """Step, move to the next root, and reset the sub-envs that finished.

        Returns:
            ``(tensordict_with_next, next_root)``: the TED row just produced (its ``"next"``
            keeps the final observation of a finished episode) and the root to feed the
            policy next (reset observations in the rows that finished).
        """
        tensordict = self.step(tensordict)
        root = self.step_mdp(tensordict)
        done = _get(root, TED_KEYS.done)
        if done.numel() == 1:
            if bool(done):
                root = self.reset(root)
        elif bool(done.any()):
            root.set(RESET_KEY, done.clone())
            root = self.reset(root)
            root = root.exclude(RESET_KEY)
        return tensordict, root

    def action_stream(self) -> ActionStream:
        """The stream ``rand_action`` draws from: call it for the next random action.

        One stream per ``set_seed``; loops that step the simulator themselves draw from it
        so that their random actions are exactly ``rand_action``'s.
        """
        spec = self.action_spec
        if self._sampler is None or self._sampler[0] != id(spec):
            self._sampler = (id(spec), make_sampler(spec, self._generator))
            self._sampler_spec = spec  # keep the spec alive so its id stays unique
        return self._sampler[1]

    def rand_action(self, tensordict: TensorDictBase | None = None) -> TensorDictBase:
        """Write a uniformly random ``"action"`` (from the env's own seeded generator)."""
        action = self.action_stream()()
        if tensordict is None:
            return make_td({self.action_key: action}, self.batch_size, self.device)
        return _put(tensordict, self.action_key, action, self.batch_size)

    def set_seed(self, seed: int) -> int:
        """Seed the environment (next reset) and its random actions; return the next seed.

        Two rollouts after the same ``set_seed`` are identical. The returned seed is
        what to give the next environment so that several envs do not share one stream.
        """
        self._assert_open("set_seed")
        self._generator.manual_seed(int(seed) % (2**63))
        self._sampler = None  # drop random actions drawn ahead from the old stream
        given = self._set_seed(int(seed))
        return next_seed(seed) if given is None else given

    def close(self) -> None:
        """Release the simulator (or workers); later calls raise :class:`EnvClosedError`."""
        if not self._closed:
            self._close()
        self._closed = True

    def rollout(
        self,
        max_steps: int,
        policy: Policy | None = None,
        auto_reset: bool = True,
        break_when_any_done: bool = True,
        tensordict: TensorDictBase | None = None,
        *,
        callback: Callable[[EnvBase, TensorDictBase], object] | None = None,
    ) -> TensorDictBase:
        """Run ``policy`` (random actions when None) for up to ``max_steps`` steps.

        Args:
            max_steps: number of steps.
            policy: ``td -> td`` writing ``"action"``; None draws random actions.
            auto_reset: reset first (with ``tensordict`` as reset input when given).
            break_when_any_done: stop after the first step where any sub-env is done;
                otherwise finished sub-envs reset themselves and the rollout goes on.
            tensordict: the starting root when ``auto_reset=False``.
            callback: called as ``callback(env, td)`` after each step.

        Returns:
            TED rows stacked to ``[T]``, or ``[*batch, T]`` for batched envs.
        """
        self._assert_open("rollout")
        if max_steps < 1:
            raise ConfigError(f"rollout(max_steps=...) must be >= 1, got {max_steps}")
        if auto_reset:
            td = self.reset(tensordict)
        elif tensordict is None:
            raise ConfigError("rollout(auto_reset=False) needs tensordict=<the root to start from>")
        else:
            td = tensordict
        # the fast path needs the plain root a reset gives (no extra entries, no flag set)
        # and a policy whose only output is the action (the rollout keeps all of them)
        plain = (
            auto_reset
            and callback is None
            and writes_only_action(policy)
            and _plain_root(td, self.observation_keys)
        )
        loop = make_loop(self, policy, fast=plain)
        loop.reset(td, None)
        return loop.rollout(
            Run(max_steps, break_when_any_done=break_when_any_done, callback=callback)
        )

    # -- helpers for batched subclasses -------------------------------------------------------
    def _reset_mask(self, tensordict: TensorDictBase | None) -> torch.Tensor | None:
        """The ``[*batch]`` bool mask of rows to reset, or None for all of them."""
        if tensordict is None:
            return None
        mask = tensordict.get(RESET_KEY, None)
        if mask is None:
            return None
        mask = mask.reshape(self.batch_size).to(torch.bool)
        return None if bool(mask.all()) else mask

    def __enter__(self) -> EnvBase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(batch_size={tuple(self.batch_size)}, device={self.device}, "
            f"observation_keys={self.observation_keys})"
        )
