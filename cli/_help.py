"""``--help`` that teaches: options in sections, defaults and choices shown, an example each.

:class:`SectionedCommand` lists a command's options under headings taken from each option's
``group`` (a :class:`GroupedOption`); :data:`EXAMPLES` gives every command of
``rldata_cli.main.COMMANDS`` the example its help ends with (set by the group when it loads one).
"""

from __future__ import annotations

from typing import Any

import click

__all__ = ["EXAMPLES", "GroupedOption", "SectionedCommand", "epilog"]

EXAMPLES: dict[str, list[str]] = {
    "collect": [
        "rldata collect Pendulum-v1 --frames 2000 --seed 0",
        "rldata collect Pendulum-v1 --frames 2000 --env-kwargs '{\"g\": 9.81}' --out datasets/g981",
    ],
    "convert": ["rldata convert datasets/pendulum minari:rldata/pendulum-v0"],
    "info": ["rldata info datasets/pendulum"],
    "verify": ["rldata verify datasets/pendulum"],
    "push": ["rldata push datasets/pendulum s3://team/pendulum"],
    "pull": ["rldata pull s3://team/pendulum datasets/pendulum-b"],
    "diff": ["rldata diff datasets/pendulum datasets/pendulum-b  # exit 1 when they differ"],
    "merge": ["rldata merge datasets/a datasets/b --out datasets/ab"],
    "report": ["rldata report datasets/pendulum --out report.html"],
    "train": [
        "rldata train --algo sac --env Pendulum-v1 --frames 5000 --out runs/sac",
        "rldata train --algo iql --dataset datasets/pendulum --steps 3000 --out runs/iql",
        "rldata train --config run.toml --seed 1 --out runs/seed1   # flags override the file",
    ],
    "eval": ["rldata eval runs/sac runs/iql --episodes 10"],
    "plot": ["rldata plot runs/sac runs/iql --out runs/curves.png"],
}


def epilog(name: str) -> str:
    """The example block a command's help ends with (``\\b``: click keeps its lines)."""
    lines = EXAMPLES[name]
    head = "Example:" if len(lines) == 1 else "Examples:"
    return "\b\n" + head + "\n" + "\n".join(f"  {line}" for line in lines)


class GroupedOption(click.Option):
    """A click option that names the help section it is listed under (``group=``)."""

    def __init__(self, *args: Any, group: str = "options", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.group = group


class SectionedCommand(click.Command):
    """A command whose ``--help`` lists options under one heading per group, in the order
    the groups first appear."""

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        sections: dict[str, list[tuple[str, str]]] = {}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            group = getattr(param, "group", "options")
            sections.setdefault(group, []).append(record)
        for group, records in sections.items():
            with formatter.section(group[:1].upper() + group[1:]):
                formatter.write_dl(records)
