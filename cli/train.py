"""``rldata train | eval | plot``: train from stores or envs, evaluate a run, draw its curves.

Each ``rldata train`` option is one field of :class:`rldata.trainers.TrainConfig` and
takes its ``--help`` text from the field's docstring; an option left out keeps the
algorithm's default.
"""

from __future__ import annotations

import dataclasses
import difflib
from typing import Any

import click

from rldata import _untrusted as untrusted
from rldata import api
from rldata.errors import ConfigError
from rldata.trainers import ALGORITHMS, TrainConfig, check_resume_flags
from rldata.trainers.config import GENERAL_DEFAULTS
from rldata_cli._errors import as_flag
from rldata_cli._help import GroupedOption, SectionedCommand
from rldata_cli._progress import TrainBar, quiet_option
from rldata_cli._terminal import echo, escape

RUN = "run"  # the section of the options that are not config fields


def _plain(doc: str) -> str:
    """A field docstring as help text: no reST markup, one line."""
    return " ".join(doc.replace("``", "").replace(":class:", "").replace("`", "").split())


def _shown_default(f: dataclasses.Field) -> str | None:
    """What ``--help`` shows as a field's default. The option itself defaults to None, so a
    flag left out is told apart from one given (``--resume``, ``--config``)."""
    if f.default is not None and f.default is not dataclasses.MISSING:
        return str(f.default).lower() if isinstance(f.default, bool) else str(f.default)
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return ",".join(str(x) for x in f.default_factory())  # type: ignore[misc]
    general = GENERAL_DEFAULTS.get(f.name)
    if general is not None:
        return f"{general}, or the algorithm's"
    return "the algorithm's" if any(f.name in a.defaults for a in ALGORITHMS.values()) else None


def _option(f: dataclasses.Field, doc: str, group: str) -> Any:
    """The click option of one config field (``None`` default: the algorithm decides)."""
    name = "--" + f.name.replace("_", "-")
    kind = str(f.type)
    common: dict[str, Any] = {
        "cls": GroupedOption,
        "group": group,
        "default": None,
        "help": _plain(doc),
    }
    shown = _shown_default(f)
    if f.name == "algo":
        common["help"] = "The algorithm."
    if f.name == "hidden":
        common["help"] += " Comma-separated, e.g. 256,256."
    if shown is not None:
        common["help"] += f"  [default: {shown}]"
    if f.name == "hidden":
        return click.option(name, f.name, metavar="SIZES", **common)
    if f.name == "algo":
        # the choices as the metavar; an unknown name stays TrainConfig's one-line error
        choices = "[" + "|".join(sorted(ALGORITHMS)) + "]"
        return click.option(name, f.name, type=str, metavar=choices, **common)
    if kind.startswith("bool"):
        return click.option(f"{name}/--no-{name[2:]}", f.name, **common)
    typ: Any = int if kind.startswith("int") else float if kind.startswith("float") else str
    return click.option(name, f.name, type=typ, **common)


def _config_options(func: Any) -> Any:
    docs = TrainConfig.field_help()
    groups = TrainConfig.field_groups()
    for f in reversed(dataclasses.fields(TrainConfig)):
        func = _option(f, docs.get(f.name, ""), groups.get(f.name, "options"))(func)
    return func


CONFIG_LIMIT = 1 << 20
"""The largest ``--config`` file read: a flat list of train options is a few hundred bytes."""


def read_config_file(path: str) -> dict[str, Any]:
    """The fields a ``--config`` TOML file sets (flat ``key = value``, keys are the field
    names, e.g. ``batch_size = 256``); an unknown key is one line naming it."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        raise click.ClickException(
            f"--config {path}: reading TOML needs Python 3.11 or newer (tomllib)"
        ) from None
    try:  # a regular file of at most CONFIG_LIMIT bytes of UTF-8: a FIFO would block forever
        text = untrusted.read_text(path, "--config file", limit=CONFIG_LIMIT)
    except OSError as err:
        raise click.ClickException(f"--config {path}: {err.strerror or err}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise click.ClickException(f"--config {path}: not valid TOML: {err}") from None
    except RecursionError:  # tomllib recurses once per nested array or inline table
        raise click.ClickException(
            f"--config {path}: values nested too deeply; the file holds flat key = value lines"
        ) from None
    names = [f.name for f in dataclasses.fields(TrainConfig)]
    for key in data:
        if key not in names:
            close = difflib.get_close_matches(key.replace("-", "_"), names, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise click.ClickException(
                f"--config {path}: unknown key {key!r}{hint}; keys are the train options "
                "with '_' for '-', e.g. batch_size = 256"
            )
    return data


@click.command(cls=SectionedCommand)
@click.option(
    "--out",
    cls=GroupedOption,
    group=RUN,
    required=True,
    type=click.Path(),
    help="Run directory to write.",
)
@click.option(
    "--config",
    "config_file",
    cls=GroupedOption,
    group=RUN,
    default=None,
    type=click.Path(dir_okay=False),
    metavar="TOML",
    help="Read the options from a TOML file (key = value, e.g. batch_size = 256); flags "
    "given here override it; the merged config is written to the run's config.json.",
)
@click.option(
    "--resume",
    cls=GroupedOption,
    group=RUN,
    is_flag=True,
    help="Continue the interrupted run in --out (only --frames / --steps may change).",
)
@click.option(
    "--force",
    cls=GroupedOption,
    group=RUN,
    is_flag=True,
    help="Replace the run in --out and the store at --store (swapped in when the run succeeds).",
)
@click.option(
    "--quiet",
    cls=GroupedOption,
    group=RUN,
    is_flag=True,
    help="No progress display on stderr (results still print on stdout).",
)
@_config_options
def train(
    out: str, config_file: str | None, resume: bool, force: bool, quiet: bool, **fields: Any
) -> None:
    """Train --algo from --dataset (offline), --env (online), or both (offline to online).

    An option left out takes the algorithm's default."""
    hidden = fields.pop("hidden")
    given = read_config_file(config_file) if config_file is not None else {}
    given.update({k: v for k, v in fields.items() if v is not None})  # flags override the file
    if hidden is not None:
        try:
            given["hidden"] = [int(x) for x in hidden.split(",") if x.strip()]
        except ValueError:
            raise click.ClickException(
                f"--hidden: expected sizes like 256,256, got {hidden!r}"
            ) from None
    if resume:  # a flag that contradicts the run is refused, not silently ignored
        check_resume_flags(out, given)
    try:
        config = TrainConfig(**given)
    except ConfigError as err:  # a flag out of its range is named as the flag
        raise as_flag(err, [k for k, v in fields.items() if v is not None]) from None
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
    try:
        results = [api.evaluate(run, env=env_id, episodes=episodes, seed=seed) for run in runs]
    except ConfigError as err:
        raise as_flag(err, ("episodes", "seed")) from None
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
