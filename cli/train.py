"""``rldata train | eval | plot``: train from stores or envs, evaluate a run, draw its curves.

Each ``rldata train`` option is one field of :class:`rldata.trainers.TrainConfig` and
takes its ``--help`` text from the field's docstring; an option left out keeps the
algorithm's default.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import click
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from cli._terminal import echo, escape
from rldata import api
from rldata.trainers import TrainConfig, TrainProgress

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


class _Bar:
    """A rich progress bar: steps/s, last evaluation return, losses."""

    def __init__(self, label: str, enabled: bool) -> None:
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.completed:,.0f}/{task.total:,.0f} {task.fields[unit]}"),
            TextColumn("{task.fields[rate]:,.0f}/s"),
            TextColumn("eval {task.fields[ret]}"),
            TextColumn("{task.fields[losses]}"),
            TimeElapsedColumn(),
            disable=not enabled,
        )
        self.label = label
        self.task: Any = None

    def __call__(self, p: TrainProgress) -> None:
        if self.task is None:  # only once every input was checked and training began
            self.task = self.progress.add_task(
                self.label, total=p.total, unit=p.unit, rate=0.0, ret="-", losses=""
            )
            self.progress.start()
        losses = " ".join(f"{k[5:]} {v:.3g}" for k, v in p.losses.items())
        ret = "-" if p.last_eval is None else f"{p.last_eval:.1f}"
        self.progress.update(
            self.task, completed=p.done, total=p.total, rate=p.per_s, ret=ret, losses=losses
        )

    def __enter__(self) -> _Bar:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.task is not None:
            self.progress.stop()


@click.command()
@click.option("--out", required=True, type=click.Path(), help="Run directory to write.")
@click.option("--hidden", default=None, help="Hidden layer sizes, e.g. 256,256.")
@click.option("--resume", is_flag=True, help="Continue the interrupted run in --out.")
@click.option(
    "--force",
    is_flag=True,
    help="Replace the run in --out and the store at --store (swapped in when the run succeeds).",
)
@click.option("--quiet", is_flag=True, help="No progress bar.")
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
    config = TrainConfig(**given)
    label = f"{config.algo} {config.env or config.dataset}"
    with _Bar(label, enabled=not quiet) as bar:
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
def evaluate(runs: tuple[str, ...], env_id: str | None, episodes: int, seed: int | None) -> None:
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
def plot(runs: tuple[str, ...], out: str, force: bool) -> None:
    """Draw the learning curves of RUNS, overlaid, into --out."""
    path = api.plot(list(runs), out, force=force)
    echo(f"wrote {path}")
