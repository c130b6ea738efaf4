"""``rldata collect ENV_ID --frames N --out PATH``: record a dataset from a gymnasium env."""

from __future__ import annotations

import json
import math
import os
import re
from typing import Any

import click

from rldata import _untrusted as untrusted
from rldata import api
from rldata.errors import ConfigError
from rldata_cli._errors import as_flag
from rldata_cli._metadata import metadata_kwargs, metadata_options
from rldata_cli._progress import Bar, quiet_option


def default_out(env_id: str) -> str:
    """``datasets/<env id>``, every character outside ``[A-Za-z0-9._-]`` as ``_``
    (``ALE/Pong-v5`` -> ``datasets/ALE_Pong-v5``)."""
    name = re.sub(r"[^A-Za-z0-9._-]", "_", env_id).strip(".") or "env"
    return os.path.join("datasets", name)


def parse_env_kwargs(text: str | None) -> dict[str, Any] | None:
    """``--env-kwargs``: one JSON object (string keys), or a one-line error naming it."""
    if text is None:
        return None
    try:  # depth-checked, NaN / Infinity refused: the kwargs go into the manifest's strict JSON
        value = untrusted.loads_json(text, "JSON", "text", finite=True, error=click.ClickException)
    except click.ClickException as err:
        raise click.ClickException(
            f"--env-kwargs: expected one JSON object such as '{{\"g\": 9.81}}', got "
            f"{text[:200]!r} ({err.message})"
        ) from None
    if not _finite(value):  # 1e999 parses as inf
        raise click.ClickException(
            f"--env-kwargs: numbers must be finite (the manifest is strict JSON), got {text[:200]!r}"
        )
    if not isinstance(value, dict):
        raise click.ClickException(
            f"--env-kwargs: expected a JSON object such as '{{\"g\": 9.81}}', got a JSON "
            f"{type(value).__name__}: {text!r}"
        )
    return value


def _finite(value: Any) -> bool:
    """No float in ``value`` (JSON, nested) is NaN or infinite."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    if isinstance(value, list):
        return all(_finite(v) for v in value)
    return True


def _backends() -> list[str]:
    return api.writable_backends()


class _Bar(Bar):
    """Frames recorded, frames/s, episodes and mean return."""

    def __init__(self, total: int, label: str, enabled: bool) -> None:
        super().__init__(label, total=total, unit="frames", enabled=enabled)

    def __call__(self, stats: api.RecordStats) -> None:
        ret = "-" if stats.mean_return is None else f"{stats.mean_return:.2f}"
        extra = [f"{stats.fps:,.0f} frames/s", f"{stats.episodes} episodes", f"mean return {ret}"]
        self.update(stats.frames, extra=extra)


NUMERIC = ("frames", "num_envs", "workers", "seed", "commit_every")
"""The numeric options, each checked against its range by :func:`rldata.api.collect`."""


@click.command()
@click.argument("env_id")
@click.option("--frames", type=int, required=True, help="Transitions to record.")
@click.option(
    "--out",
    "out",
    type=click.Path(),
    default=None,
    help="Store path to write.  [default: datasets/ENV_ID, the id's '/' and ':' as '_']",
)
@click.option(
    "--env-kwargs",
    "env_kwargs_json",
    default=None,
    metavar="JSON",
    help="Keyword arguments for gymnasium.make, one JSON object, e.g. '{\"g\": 9.81}'; "
    "recorded in the manifest (env.kwargs).",
)
@click.option(
    "--backend",
    default="memmap",
    show_default=True,
    help="Store backend: memmap, zarr or parquet (the registered writable backends).",
)
@click.option(
    "--policy",
    default="random",
    show_default=True,
    help="'random', a policy checkpoint saved by rldata, or a training run directory (rldata train --out).",
)
@click.option(
    "--num-envs",
    type=int,
    default=1,
    show_default=True,
    help="Envs per worker (a vector env when > 1).",
)
@click.option(
    "--workers",
    type=int,
    default=1,
    show_default=True,
    help="Worker processes (Ray actors with --ray).",
)
@click.option(
    "--ray", "use_ray", is_flag=True, help="Collect with Ray actors, each recording its own shard."
)
@click.option("--seed", type=int, default=None, help="Seed for envs and random actions.")
@click.option(
    "--commit-every",
    type=int,
    default=api.DEFAULT_COMMIT_EVERY,
    show_default=True,
    help="Frames between commits.",
)
@click.option(
    "--resume", is_flag=True, help="Append to an existing store; trajectory ids continue."
)
@click.option("--force", is_flag=True, help="Replace an existing store.")
@click.option(
    "--from-pixels",
    is_flag=True,
    help="Observe rendered rgb frames under 'pixels' (uint8 [H, W, 3], as TorchRL's from_pixels).",
)
@click.option(
    "--pixels-only/--no-pixels-only",
    default=True,
    show_default=True,
    help="With --from-pixels: keep only the pixels, or also the state under 'observation'.",
)
@click.option(
    "--one-hot-actions",
    "one_hot",
    is_flag=True,
    help="Store Discrete actions one-hot (default: int64 indices).",
)
@metadata_options
@quiet_option
def collect(
    env_id: str,
    frames: int,
    out: str | None,
    backend: str,
    policy: str,
    num_envs: int,
    workers: int,
    use_ray: bool,
    seed: int | None,
    commit_every: int,
    resume: bool,
    force: bool,
    from_pixels: bool,
    pixels_only: bool,
    one_hot: bool,
    env_kwargs_json: str | None,
    authors: tuple[str, ...],
    description: str | None,
    license_: str | None,
    code_link: str | None,
    quiet: bool,
) -> None:
    """Record FRAMES transitions of ENV_ID into the store at --out."""
    env_kwargs = parse_env_kwargs(env_kwargs_json)
    if out is None:
        out = default_out(env_id)
    if backend not in _backends():
        raise click.ClickException(f"unknown backend {backend!r}; choose one of {_backends()}")
    with _Bar(frames, env_id, enabled=not quiet) as bar:
        try:
            summary = api.collect(
                env_id,
                frames=frames,
                out=out,
                backend=backend,
                policy=policy,
                num_envs=num_envs,
                workers=workers,
                ray=use_ray,
                seed=seed,
                commit_every=commit_every,
                resume=resume,
                force=force,
                progress=bar,
                from_pixels=from_pixels,
                pixels_only=pixels_only,
                one_hot=one_hot,
                env_kwargs=env_kwargs,
                **metadata_kwargs(authors, description, license_, code_link),
            )
        except ConfigError as err:  # a number out of its range is named as the flag
            raise as_flag(err, NUMERIC) from None
        except TypeError as err:  # gymnasium.make: the env does not take one of the kwargs
            if env_kwargs is None or "unexpected keyword argument" not in str(err):
                raise
            raise click.ClickException(
                f"--env-kwargs {json.dumps(env_kwargs)}: {env_id} does not take them: "
                f"{str(err).splitlines()[0]}"
            ) from None
    mean = "-" if summary.mean_return is None else f"{summary.mean_return:.3f}"
    click.echo(
        f"recorded {summary.frames} frames ({summary.episodes} finished episodes, mean return {mean}) "
        f"into {summary.path} [{summary.backend}]: {summary.store_rows} rows"
    )
