"""``rldata info PATH`` (a dataset card) and ``rldata verify PATH`` (trust it from the shell)."""

from __future__ import annotations

import json
from typing import Any

import click

from rldata import stores


def dataset_card(path: str) -> dict[str, Any]:
    """What ``rldata info`` shows: size, episodes, returns, schema, specs, provenance, digest."""
    with stores.open(path) as store:
        episodes = store.episodes()
        returns = episodes["return"].double() if len(episodes) else None
        finished = (episodes["terminated"] | episodes["truncated"]) if len(episodes) else None
        manifest = store.manifest
        return {
            "path": str(store.path),
            "backend": store.backend,
            "format_version": manifest.get("format_version"),
            "transitions": len(store),
            "episodes": len(episodes),
            "finished_episodes": int(finished.sum()) if finished is not None else 0,
            "return": None
            if returns is None
            else {
                "min": float(returns.min()),
                "mean": float(returns.mean()),
                "max": float(returns.max()),
            },
            "env": {"id": store.env_id, "kwargs": store.env_kwargs},
            "schema": store.schema,
            "specs": manifest.get("specs"),
            "provenance": store.provenance,
            "content_digest": stores.content_digest(store),
        }


def _card_text(card: dict[str, Any]) -> str:
    ret = card["return"]
    lines = [
        f"store        {card['path']}",
        f"backend      {card['backend']} (format {card['format_version']})",
        f"env          {card['env']['id']} {card['env']['kwargs'] or ''}".rstrip(),
        f"transitions  {card['transitions']:,}",
        f"episodes     {card['episodes']:,} ({card['finished_episodes']:,} finished)",
    ]
    if ret is not None:
        lines.append(
            f"return       min {ret['min']:.3f}  mean {ret['mean']:.3f}  max {ret['max']:.3f}"
        )
    lines.append("schema")
    for key, entry in sorted((card["schema"] or {}).items()):
        lines.append(f"  {key:<24} {entry['dtype']:<8} {list(entry['shape'])}")
    if card["specs"]:
        lines.append("specs        " + json.dumps(card["specs"], sort_keys=True)[:400])
    lines.append("provenance")
    for key, value in sorted((card["provenance"] or {}).items()):
        lines.append(f"  {key:<24} {value}")
    lines.append(f"digest       {card['content_digest']}")
    return "\n".join(lines)


@click.command()
@click.argument("path", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print the card as JSON.")
def info(path: str, as_json: bool) -> None:
    """Show the dataset card of the store at PATH."""
    card = dataset_card(path)
    click.echo(json.dumps(card, indent=1, sort_keys=True) if as_json else _card_text(card))


@click.command()
@click.argument("path", type=click.Path())
def verify(path: str) -> None:
    """Check checksums, schema and TED invariants of the store at PATH; exit 1 on the first fault."""
    with stores.open(path) as store:
        fault = stores.first_fault(store)
        if fault is not None:
            raise click.ClickException(f"{path}: {fault}")
        click.echo(f"ok: {path} holds {len(store):,} rows in {len(store.episodes()):,} episodes")
