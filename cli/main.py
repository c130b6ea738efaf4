"""``rldata``: the command group and its console entry point (``rldata = "rldata_cli.main:main"``).

Commands are imported when they run, not when the group is built: a command module pulls in
torch and the whole API (seconds), while ``rldata --help`` and ``--version`` need only names and
one line each (``benchmarks/bench_cli.py`` times it).
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import import_module

import click

from rldata import __version__
from rldata_cli._errors import RldataGroup
from rldata_cli._help import epilog

COMMANDS: dict[str, tuple[str, str]] = {
    # name: ("module:attribute", the first paragraph of the command's help, listed by --help)
    "collect": (
        "rldata_cli.collect:collect",
        "Record FRAMES transitions of ENV_ID into the store at --out.",
    ),
    "convert": ("rldata_cli.convert:convert", "Copy the dataset SRC into the new DST."),
    "info": ("rldata_cli.inspect:info", "Show the dataset card of the store at PATH."),
    "verify": (
        "rldata_cli.inspect:verify",
        "Check checksums, schema, TED invariants and the env id of the store at PATH.",
    ),
    "push": (
        "rldata_cli.share:push",
        "Publish the store at SRC to URL (s3://, gs://, file://, ...), verified and resumable.",
    ),
    "pull": ("rldata_cli.share:pull", "Fetch the store at URL into DST, verified and resumable."),
    "diff": (
        "rldata_cli.share:diff",
        "Compare stores A and B: schema, specs, then episodes only in A, only in B and shared.",
    ),
    "merge": (
        "rldata_cli.share:merge",
        "Merge the stores SOURCES into a new store at --out (trajectory ids renumbered).",
    ),
    "report": (
        "rldata_cli.share:report",
        "Write a self-contained HTML report (dataset card and plots) of the store at PATH_OR_URL.",
    ),
    "train": (
        "rldata_cli.train:train",
        "Train --algo from --dataset (offline), --env (online), or both (offline to online).",
    ),
    "eval": (
        "rldata_cli.train:evaluate",
        "Evaluate each run's policy deterministically on fixed seeds; print a results table.",
    ),
    "plot": ("rldata_cli.train:plot", "Draw the learning curves of RUNS, overlaid, into --out."),
}


@contextmanager
def _sigint_deferred() -> Iterator[None]:
    """Hold Ctrl-C back while a command module imports torch and numpy (seconds), and let
    it land once they are in: interrupted inside numpy's C init, the import failed the next
    time with ``ImportError: cannot load module more than once per process`` (a traceback),
    or torch aborted the process (SIGABRT). A held SIGINT is delivered when the block ends,
    as the ``KeyboardInterrupt`` click reports as ``Aborted!``."""
    if not hasattr(signal, "pthread_sigmask"):  # Windows: no signal masks
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


class LazyGroup(RldataGroup):
    """A group that lists its commands from :data:`COMMANDS` and imports one only to run it."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        spec = COMMANDS.get(cmd_name)
        if spec is None:
            return None
        module, attr = spec[0].split(":")
        with _sigint_deferred():
            command = getattr(import_module(module), attr)
        assert isinstance(command, click.Command)
        if command.epilog is None:  # every command's help ends with an example
            command.epilog = epilog(cmd_name)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, short) for name, (_, short) in COMMANDS.items()])


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="rldata")
def rldata() -> None:
    """Record RL experience into replay stores, inspect them, and train from them."""


def main() -> None:
    """Console entry point."""
    rldata(prog_name="rldata")


if __name__ == "__main__":
    main()
