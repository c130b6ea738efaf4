"""``rldata``: the command group and its console entry point (``rldata = "cli.main:main"``)."""

from __future__ import annotations

import click

from cli._errors import RldataGroup
from cli.collect import collect
from cli.convert import convert
from cli.inspect import info, verify
from cli.share import diff, merge, pull, push, report
from cli.train import evaluate, plot, train
from rldata import __version__


@click.group(cls=RldataGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="rldata")
def rldata() -> None:
    """Record RL experience into replay stores, inspect them, and train from them."""


rldata.add_command(collect)
rldata.add_command(convert)
rldata.add_command(info)
rldata.add_command(verify)
rldata.add_command(push)
rldata.add_command(pull)
rldata.add_command(diff)
rldata.add_command(merge)
rldata.add_command(report)
rldata.add_command(train)
rldata.add_command(evaluate)
rldata.add_command(plot)


def main() -> None:
    """Console entry point."""
    rldata(prog_name="rldata")


if __name__ == "__main__":
    main()
