"""``rldata info PATH`` (a dataset card) and ``rldata verify PATH`` (trust it from the shell)."""

from __future__ import annotations

import json
from typing import Any

import click

from rldata import api
from rldata_cli._progress import quiet_option
from rldata_cli._terminal import echo


def _card_text(card: dict[str, Any]) -> list[str]:
    ret = card["return"]
    lines = [
        f"store        {card['path']}",
        f"backend      {card['backend']} (format {card['format_version']})",
        *(
            [f"shards       {len(card['shards'])} x {card['shard_backend']}"]
            if "shards" in card
            else []
        ),
        f"env          {card['env']['id']} {card['env']['kwargs'] or ''}".rstrip(),
        f"transitions  {card['transitions']:,}",
        f"episodes     {card['episodes']:,} ({card['finished_episodes']:,} finished)",
    ]
    if ret is not None:
        lines.append(
            f"return       min {ret['min']:.3f}  mean {ret['mean']:.3f}  max {ret['max']:.3f}"
        )
    lines += _metadata_text(card.get("metadata") or {})
    lines.append("schema")
    for key, entry in sorted((card["schema"] or {}).items()):
        lines.append(f"  {key:<24} {entry['dtype']:<8} {list(entry['shape'])}")
    if card["specs"]:
        lines.append("specs        " + json.dumps(card["specs"], sort_keys=True)[:400])
    lines.append("provenance")
    for key, value in sorted((card["provenance"] or {}).items()):
        if key not in _LABELS:  # shown above, cut to size
            lines.append(f"  {key:<24} {value}")
    if card.get("stats"):
        lines.append("statistics   (recorded at commit time; first features shown)")
        for key, st in card["stats"].items():
            mean = ", ".join(f"{x:.3g}" for x in st["mean"][:4])
            std = ", ".join(f"{x:.3g}" for x in st["std"][:4])
            lines.append(f"  {key:<24} mean [{mean}]  std [{std}]")
            qs = st.get("quantiles")
            if qs:
                shown = "  ".join(
                    f"p{round(float(q) * 100)} [{', '.join(_num(x) for x in v[:4])}]"
                    for q, v in qs.items()
                )
                lines.append(f"  {'':<24} {shown}")
    if card.get("actions_outside_spec") is not None:
        lines.append(f"actions      {card['actions_outside_spec']:,} rows outside the action spec")
    lines.append(f"digest       {card['content_digest']}")
    lines.append(f"check        {card['check']}")
    return lines


_LABELS = {
    "author": "author",
    "author_email": "email",
    "algorithm_name": "algorithm",
    "license": "license",
    "code_permalink": "code link",
    "description": "description",
}
_DESCRIPTION_LINES = 12


def _metadata_text(meta: dict[str, Any]) -> list[str]:
    """The dataset's descriptive metadata, one field a line (the description a line per
    line of it, at most ``_DESCRIPTION_LINES``); ``echo`` escapes what the lines hold."""
    lines = []
    for key, label in _LABELS.items():
        value = meta.get(key)
        if value is None:
            continue
        text = ", ".join(value) if isinstance(value, list) else str(value)
        parts = text.splitlines() or [""]
        if len(parts) > _DESCRIPTION_LINES:
            parts = [
                *parts[: _DESCRIPTION_LINES - 1],
                f"... ({len(parts) - _DESCRIPTION_LINES + 1} more lines)",
            ]
        lines.append(f"{label:<12} {parts[0]}")
        lines += [f"{'':<12} {p}" for p in parts[1:]]
    return lines


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.3g}"


@click.command()
@click.argument("path", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print the card as JSON.")
@quiet_option
def info(path: str, as_json: bool, quiet: bool) -> None:
    """Show the dataset card of the store at PATH."""
    card = api.dataset_card(path)
    # JSON: json.dumps escapes every control character itself (ensure_ascii)
    echo(json.dumps(card, indent=1, sort_keys=True).splitlines() if as_json else _card_text(card))
    if card["check"] != "ok":  # the card is shown, but a damaged store is not "fine"
        raise click.ClickException(f"{path}: checksum {card['check']}")


@click.command()
@click.argument("path", type=click.Path())
@quiet_option
def verify(path: str, quiet: bool) -> None:
    """Check checksums, schema, TED invariants and the env id of the store at PATH.

    Exits 1 on the first fault: an env id naming a module is one; an env id not registered
    with gymnasium here is a warning."""
    faults = api.verify(path)
    if faults:
        more = f" (and {len(faults) - 1} more faults)" if len(faults) > 1 else ""
        raise click.ClickException(f"{faults[0]}{more}")
    warnings = api.verify_warnings(path)
    for line in warnings:
        echo(f"warning: {line}", err=True)
    # only the counts: the card would hash every row again (its digest and integrity check)
    with api.open(path, verify=False, stream=False) as store:
        eps = store.episodes()
        rows, episodes = len(store), (eps.batch_size[0] if eps.batch_dims else 0)
    note = f" ({len(warnings)} warning{'s' * (len(warnings) > 1)})" if warnings else ""
    echo(f"ok{note}: {path} holds {rows:,} rows in {episodes:,} episodes")
