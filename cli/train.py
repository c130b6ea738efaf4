"""``rldata train | eval | plot``: train from stores or envs, evaluate a run, draw its curves.

Each ``rldata train`` option is one field of :class:`rldata.trainers.TrainConfig` and
takes its ``--help`` text from the field's docstring; an option left out keeps the
algorithm's default.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import click

from cli._progress import TrainBar, quiet_option
from cli._terminal import echo, escape
from rldata import api
from rldata.trainers import TrainConfig, check_resume_flags

_SKIP = {"hidden"}  # given as --hidden 256,256


def _option(f: dataclasses.Field, doc: str) -> Any:
    """The click option of one config field (``None`` default: the algorithm decides)."""
    name = "--" + f.name.replace("_", "-")
    kind = str(f.type)
    if kind.startswith("bool"):
        return click.option(f"{name}/--no-{name[2:]}", f.name, default=None, help=doc)
    typ: Any = int if kind.startswith("int") else float if kind.startswith("float") else str
    return click.option(name, f.name, type=typ, default=None, help=doc)


def _config_options(func: Any) -> Any:
    docs = TrainConfig.field_help()
    for f in reversed(dataclasses.fields(TrainConfig)):
        if f.name not in _SKIP:
            func = _option(f, docs.get(f.name, ""))(func)
    return func


@click.command()
@click.option("--out", required=True, type=click.Path(), help="Run directory to write.")
@click.option("--hidden", default=None, help="Hidden layer sizes, e.g. 256,256.")
@click.option("--resume", is_flag=True, help="Continue the interrupted run in --out.")
@click.option(
    "--force",
    is_flag=True,
    help="Replace the run in --out and the store at --store (swapped in when the run succeeds).",
)
@quiet_option
@_config_options
def train(
    out: str, hidden: str | None, resume: bool, force: bool, quiet: bool, **fields: Any
) -> None:
    """Train --algo from --dataset (offline), --env (online), or both (offline to online)."""
    given = {k: v for k, v in fields.items() if v is not None}
    if hidden is not None:
        try:
            given["hidden"] = [int(x) for x in hidden.split(",") if x.strip()]
        except ValueError:
            raise click.ClickException(
                f"--hidden: expected sizes like 256,256, got {hidden!r}"
            ) from None
    if resume:  # a flag that contradicts the run is refused, not silently ignored
        check_resume_flags(out, given)
    config = TrainConfig(**given)
    label = f"{config.algo} {config.env or config.dataset}"
    with TrainBar(label, enabled=not quiet) as bar:
        summary = api.train(config, out=out, resume=resume, force=force, progress=bar)
    echo(
        f"{summary.algo} ({summary.mode}): {summary.env_steps} env steps, {summary.updates} "
        f"updates in {summary.wall_s:.1f}s; eval return {summary.eval_return_mean:.1f} "
        f"± {summary.eval_return_std:.1f} on {summary.eval_env} -> {out}"
    )


@click.command("eval")
@click.argument("runs", nargs=-1, required=True, type=click.Path())
@click.option("--env", "env_id", default=None, help="Env id (default: each run's).")
@click.option("--episodes", type=int, default=5, show_default=True, help="Episodes to run.")
@click.option("--seed", type=int, default=None, help="Base seed (default: each run's).")
@quiet_option
def evaluate(
    runs: tuple[str, ...], env_id: str | None, episodes: int, seed: int | None, quiet: bool
) -> None:
    """Evaluate each run's policy deterministically on fixed seeds; print a results table."""
    results = [api.evaluate(run, env=env_id, episodes=episodes, seed=seed) for run in runs]
    results = [{k: escape(v) if isinstance(v, str) else v for k, v in r.items()} for r in results]
    for r in results:
        echo(
            f"{r['run']} on {r['env']}: return {r['mean']:.1f} ± {r['std']:.1f} "
            f"over {episodes} episodes"
        )
    if len(results) > 1:
        click.echo("")
        click.echo(results_table(results))  # every string in it escaped above


def results_table(results: list[dict[str, Any]]) -> str:
    """A markdown table of evaluated runs: how each was trained and what it returns."""

    def num(v: Any, fmt: str = "{:,}") -> str:
        return "-" if v is None else fmt.format(v)

    lines = [
        "| run | algo | mode | env steps | updates | train s | eval return |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['run']} | {r['algo'] or '-'} | {r['mode'] or '-'} | {num(r['env_steps'])} | "
            f"{num(r['updates'])} | {num(r['wall_s'], '{:.0f}')} | "
            f"{r['mean']:.1f} ± {r['std']:.1f} |"
        )
    return "\n".join(lines)


@click.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path())
@click.option("--out", required=True, type=click.Path(), help="Image to write (e.g. curves.png).")
@click.option("--force", is_flag=True, help="Replace an existing image rldata drew.")
@quiet_option
def plot(runs: tuple[str, ...], out: str, force: bool, quiet: bool) -> None:
    """Draw the learning curves of RUNS, overlaid, into --out."""
    path = api.plot(list(runs), out, force=force)
    echo(f"wrote {path}")
