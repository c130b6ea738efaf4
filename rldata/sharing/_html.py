"""The report page's HTML: one self-contained document (inline CSS, images as data URIs).

Nothing here fetches anything: no scripts, no fonts, no external stylesheets, so the page
opens offline, attached to a ticket or served from a bucket.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0;
       color: #1d232a; background: #f5f6f8; }
header { background: #1f3b57; color: #fff; padding: 18px 32px; }
header h1 { margin: 0; font-size: 22px; } header p { margin: 4px 0 0; opacity: .85; }
main { padding: 16px 32px 48px; max-width: 1280px; }
section { background: #fff; border-radius: 8px; padding: 12px 20px; margin: 16px 0;
          box-shadow: 0 1px 3px rgba(0,0,0,.08); }
h2 { font-size: 17px; margin: 6px 0 10px; }
table { border-collapse: collapse; margin: 4px 0 8px; }
th, td { text-align: left; padding: 3px 12px 3px 0; vertical-align: top;
         border-bottom: 1px solid #e6e8eb; }
th { color: #56616d; font-weight: 600; }
code { font: 12px ui-monospace, SFMono-Regular, Menlo, monospace; word-break: break-all; }
.plots { display: flex; flex-wrap: wrap; gap: 12px; }
figure.plot { margin: 0; flex: 1 1 520px; max-width: 620px; }
figure.plot img { width: 100%; height: auto; display: block; }
figcaption { color: #56616d; font-size: 12px; margin-top: 2px; }
.note { color: #56616d; font-size: 13px; }
pre { background: #f0f2f5; border-radius: 6px; padding: 8px 12px; margin: 4px 0 10px;
      overflow-x: auto; }
pre code { word-break: normal; white-space: pre; }
#description p { max-width: 80ch; }
"""


def esc(value: object) -> str:
    """HTML-escaped text of ``value``."""
    return html.escape(str(value), quote=True)


def table(header: Sequence[str] | None, rows: Iterable[Sequence[object]], *, code: int = -1) -> str:
    """A table; column ``code`` is set in monospace."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header) if header else ""
    body = []
    for row in rows:
        cells = [f"<code>{esc(c)}</code>" if i == code else esc(c) for i, c in enumerate(row)]
        body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return f"<table>{'<tr>' + head + '</tr>' if head else ''}{''.join(body)}</table>"


def figure(plot_id: str, png_b64: str, caption: str) -> str:
    """One embedded plot."""
    return (
        f'<figure class="plot" id="plot-{esc(plot_id)}">'
        f'<img alt="{esc(caption)}" src="data:image/png;base64,{png_b64}">'
        f"<figcaption>{esc(caption)}</figcaption></figure>"
    )


def section(title: str, body: str, *, section_id: str) -> str:
    """A titled card."""
    return f'<section id="{esc(section_id)}"><h2>{esc(title)}</h2>{body}</section>'


def page(title: str, subtitle: str, sections: Sequence[str]) -> str:
    """The whole document."""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body>"
        f"<header><h1>{esc(title)}</h1><p>{esc(subtitle)}</p></header>"
        f"<main>{''.join(sections)}</main></body></html>\n"
    )
