"""Pixel observations: TorchRL's ``from_pixels`` / ``pixels_only`` on a real rendering env."""

from __future__ import annotations

import sys

import pytest
import torch

from rldata import api
from rldata.envs.pixels import PixelEnv
from rldata.errors import ConfigError, MissingDependencyError


@pytest.mark.parametrize("pixels_only", [True, False])
def test_frames_are_uint8_hwc_at_the_render_size(pixels_only):
    env = PixelEnv("Pendulum-v1", pixels_only=pixels_only)
    try:
        td = env.rollout(4)
    finally:
        env.close()
    keys = {"pixels"} if pixels_only else {"pixels", "observation"}
    assert set(env.observation_spec.keys()) == keys
    assert td["pixels"].shape == (4, 500, 500, 3) and td["pixels"].dtype == torch.uint8
    assert torch.equal(td["next", "pixels"][:-1], td["pixels"][1:])  # TED link holds
    assert not torch.equal(td["pixels"][0], td["pixels"][1])  # frames move
    if not pixels_only:
        assert td["observation"].shape == (4, 3)


def test_a_vector_env_renders_each_copy():
    env = PixelEnv("Pendulum-v1", pixels_only=False, num_envs=2)
    try:
        td = env.rollout(3)
    finally:
        env.close()
    assert td["pixels"].shape == (2, 3, 500, 500, 3) and td["observation"].shape == (2, 3, 3)


def test_missing_pygame_is_one_line_naming_the_extra(monkeypatch):
    for name in [m for m in sys.modules if m == "pygame" or m.startswith("pygame.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "pygame", None)  # import pygame raises ImportError
    with pytest.raises(MissingDependencyError, match=r"rldata\[pixels\]") as info:
        PixelEnv("Pendulum-v1")
    assert "\n" not in str(info.value) and "Pendulum-v1" in str(info.value)


def test_no_pixels_only_without_from_pixels_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="from_pixels"):
        api.collect("Pendulum-v1", frames=4, out=str(tmp_path / "s"), pixels_only=False)
    assert not (tmp_path / "s").exists()
