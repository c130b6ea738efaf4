"""Rendered frames as observations: TorchRL's ``GymEnv(id, from_pixels=True, pixels_only=...)``.

As in TorchRL, the env is made with ``render_mode="rgb_array"`` and each step's frame is
observed under ``"pixels"``: uint8 ``[H, W, 3]`` at the env's own render size (Pendulum:
500 x 500), neither resized nor transposed (TorchRL leaves that to transforms such as
``ToTensorImage`` and ``Resize``). ``pixels_only=False`` keeps the state beside the frame
under ``"observation"`` (gymnasium's ``AddRenderObservation``), as TorchRL does.

Examples:
    >>> env = PixelEnv("Pendulum-v1", pixels_only=False)  # doctest: +SKIP
    >>> sorted(env.observation_spec.keys())  # doctest: +SKIP
    ['observation', 'pixels']
"""

from __future__ import annotations

import functools
from typing import Any

from rldata.envs._make_errors import env_error
from rldata.envs.gym import GymWrapper
from rldata.errors import MissingDependencyError

PIXELS, STATE = "pixels", "observation"


class PixelEnv(GymWrapper):
    """A gymnasium env observed through its rendered rgb frames (``"pixels"``).

    Args:
        env_id: a registered gymnasium id whose env renders ``rgb_array`` frames.
        pixels_only: observe only ``"pixels"`` (TorchRL's default); ``False`` also keeps
            the env's own observation under ``"observation"``.
        num_envs: run ``n`` copies in a gymnasium vector env (``batch_size=[n]``).
        device: where output tensors live.
        vectorization_mode: gymnasium's ``"sync"`` or ``"async"`` for ``num_envs``.
        categorical_action_encoding: Discrete actions as indices instead of one-hot.
        **gym_kwargs: passed to ``gymnasium.make`` (``render_mode`` defaults to
            ``"rgb_array"``; some envs take ``width``/``height``).

    Raises:
        EnvNotFoundError: ``env_id`` is not registered.
        MissingDependencyError: the env's renderer (pygame for classic control) is missing.
    """

    def __init__(
        self,
        env_id: str,
        *,
        pixels_only: bool = True,
        num_envs: int | None = None,
        device: Any = None,
        vectorization_mode: str = "sync",
        categorical_action_encoding: bool = False,
        **gym_kwargs: Any,
    ) -> None:
        import gymnasium

        self.env_id = env_id
        self.num_envs = num_envs
        self.pixels_only = bool(pixels_only)
        self.gym_kwargs = dict(gym_kwargs)
        gym_kwargs.setdefault("render_mode", "rgb_array")
        env: Any = None
        try:
            env = _make(env_id, num_envs, vectorization_mode, self.pixels_only, gym_kwargs)
            # pixels only: the wrapper renders after each step; else the state and the frame
            # arrive together as a Dict observation (one entry per key)
            super().__init__(
                env,
                device=device,
                from_pixels=self.pixels_only,
                categorical_action_encoding=categorical_action_encoding,
            )
        except (gymnasium.error.Error, ImportError) as err:
            if env is not None:
                env.close()
            mapped = _pixel_error(env_id, err)
            if mapped is None:
                raise
            raise mapped from None

    def __repr__(self) -> str:
        n = f", num_envs={self.num_envs}" if self.num_envs else ""
        return f"PixelEnv({self.env_id!r}{n}, pixels_only={self.pixels_only}, device={self.device})"


def _make(
    env_id: str, num_envs: int | None, mode: str, pixels_only: bool, kwargs: dict[str, Any]
) -> Any:
    import gymnasium
    from gymnasium.vector import AutoresetMode
    from gymnasium.wrappers import AddRenderObservation

    wrappers = []
    if not pixels_only:
        wrappers.append(
            functools.partial(
                AddRenderObservation, render_only=False, render_key=PIXELS, obs_key=STATE
            )
        )
    if num_envs is None:
        env = gymnasium.make(env_id, **kwargs)
        for wrap in wrappers:
            env = wrap(env)
        return env
    return gymnasium.make_vec(
        env_id,
        num_envs=num_envs,
        vectorization_mode=mode,
        vector_kwargs={"autoreset_mode": AutoresetMode.DISABLED},
        wrappers=wrappers or None,
        **kwargs,
    )


def _pixel_error(env_id: str, err: BaseException) -> Exception | None:
    """One line for a renderer that is not installed; else what making the env says."""
    text = f"{err} {err.__cause__ or ''}".lower()
    if type(err).__name__ == "DependencyNotInstalled" and "pygame" in text:
        return MissingDependencyError(
            f"env {env_id!r} renders its pixels with pygame, which is not installed: "
            f"pip install 'rldata[pixels]'"
        )
    return env_error(env_id, err)
