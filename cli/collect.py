"""``rldata collect ENV_ID --frames N --out PATH``: record a dataset from a gymnasium env."""

from __future__ import annotations

import click

from cli._progress import Bar, quiet_option
from rldata import api


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


@click.command()
@click.argument("env_id")
@click.option("--frames", type=int, required=True, help="Transitions to record.")
@click.option("--out", "out", type=click.Path(), required=True, help="Store path to write.")
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
@quiet_option
def collect(
    env_id: str,
    frames: int,
    out: str,
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
    quiet: bool,
) -> None:
    """Record FRAMES transitions of ENV_ID into the store at --out."""
    if backend not in _backends():
        raise click.ClickException(f"unknown backend {backend!r}; choose one of {_backends()}")
    with _Bar(frames, env_id, enabled=not quiet) as bar:
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
        )
    mean = "-" if summary.mean_return is None else f"{summary.mean_return:.3f}"
    click.echo(
        f"recorded {summary.frames} frames ({summary.episodes} finished episodes, mean return {mean}) "
        f"into {summary.path} [{summary.backend}]: {summary.store_rows} rows"
    )
