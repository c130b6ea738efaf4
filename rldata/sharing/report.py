"""``report(path_or_url, out)``: one self-contained HTML page describing a dataset.

The page holds what the dataset is (its description, author, license and code link, as
the store's provenance holds them), how to load it (Python and the CLI), the dataset card
(backend, size, transitions, episodes, provenance, digest), the schema, the specs with
their bounds in words ("each of 3 values in [-2, 2]", "integer in 0..2"), per-feature
statistics when the store records them, and plots: episode returns over recording order
and as a histogram, episode lengths, per-dimension histograms of observations, continuous
actions and rewards, discrete actions as bar charts of counts per index (one per
component of a multi-discrete action), and the share of terminated, truncated and
unfinished episodes. Plots are drawn by
matplotlib's Agg renderer and embedded as base64 PNG; the page loads nothing from the
network. Episode plots use the episode index (no pass over the rows); histograms use a
uniform sample of at most :data:`SAMPLE_ROWS` rows, which the page states, so a million-row
store reports in seconds.
"""

from __future__ import annotations

import base64
import io
import json
import math
import os
from pathlib import Path
from typing import Any

import torch

from rldata import ted
from rldata._untrusted import escape
from rldata.errors import MissingDependencyError
from rldata.sharing import _html as h
from rldata.sharing import objects as ob
from rldata.sharing.digest import digest_of
from rldata.sharing.source import open_source
from rldata.sharing.urls import is_url, redact
from rldata.stores.backend import blocks
from rldata.stores.format import schema as sch
from rldata.stores.interop import described
from rldata.stores.location.destination import inspect_destination, plan_destination
from rldata.stores.location.provable import generator_tag

SAMPLE_ROWS = 100_000
SAMPLE_BYTES = 256 << 20
"""Decoded bytes the histogram sample holds at most (fewer rows of wide, pixel rows)."""
MAX_PANELS = 12  # per-dimension panels per key; wider keys show the first ones
_K = ted.TED_KEYS
_FLAGS = {ted.key_name(k) for k in _K.flags}


def report(
    path_or_url: str | os.PathLike[str],
    out: str | os.PathLike[str] = "report.html",
    *,
    force: bool = False,
) -> str:
    """Write the report page of the store at ``path_or_url`` to ``out``; return its path.

    ``out`` goes through the destination policy
    (:func:`rldata.stores.location.destination.plan_destination`): it may not be, lie inside, or
    contain the store; an existing file is replaced only with ``force`` and only if it is
    a report rldata wrote (its generator mark); the page is written beside it and renamed
    into place.

    Raises:
        StoreNotFoundError: no store at ``path_or_url``.
        StoreExistsError: ``out`` exists (without ``force``, or is not an rldata report).
        DestinationOverlapError: ``out`` is, lies inside, or contains the store.
        MissingDependencyError: matplotlib is not installed (``pip install 'rldata[report]'``).
    """
    sources = [path_or_url]
    inspect_destination(out, kind="report", sources=sources, force=force, what="report")
    figure_cls = _matplotlib()
    name = redact(os.fspath(path_or_url))
    with open_source(path_or_url) as store:
        card = _card(store, name)
        stats_html = _stats_table(store)
        eps = store.episodes()
        sample, note = _sample(store)
        specs_json = store.manifest.get("specs")
        discrete = _discrete_actions(specs_json, store.schema or {})
        plots = (
            _episode_plots(figure_cls, eps)
            + _action_bars(figure_cls, discrete, sample)
            + _row_plots(figure_cls, store.schema or {}, sample, skip=set(discrete))
        )
        about = described.bounded(store.provenance)
    sections = [
        h.section("About this dataset", _about(about), section_id="about"),
        h.section("How to load this dataset", _load_snippet(name), section_id="load"),
        h.section("Dataset card", h.table(None, card, code=1), section_id="card"),
        h.section("Schema", _schema_table(store.schema or {}), section_id="schema"),
        h.section("Specs", _specs_table(specs_json), section_id="specs"),
        h.section("Statistics of every row", stats_html, section_id="stats"),
        h.section(
            "Plots",
            f'<p class="note" id="sampling-note">{h.esc(note)}</p>'
            f'<div class="plots">{"".join(plots)}</div>',
            section_id="plots",
        ),
    ]
    env = (store.manifest.get("env") or {}).get("id") or "unknown env"
    page = h.page(f"rldata report: {Path(name).name or name}", f"{name} · {env}", sections)
    mark = f'<meta name="generator" content="{h.esc(generator_tag("report"))}">'
    page = page.replace('<meta charset="utf-8">', '<meta charset="utf-8">' + mark, 1)
    with plan_destination(out, kind="report", sources=sources, force=force, what="report") as stage:
        stage.write_text(page, encoding="utf-8")
    return str(Path(out))


def _matplotlib() -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise MissingDependencyError(
            "rldata report draws with matplotlib; install it with pip install 'rldata[report]'"
        ) from None
    return Figure


# --- the card ------------------------------------------------------------------------------------


def _card(store: Any, name: str) -> list[tuple[str, str]]:
    m = store.manifest
    eps = store.episodes()
    n = int(eps.batch_size[0]) if eps.batch_dims else 0
    rows = [
        ("store", name),
        ("backend", f"{store.backend} (format {m.get('format_version')})"),
        ("size", _bytes(_stored_bytes(Path(store.path)))),
        ("transitions", f"{len(store):,}"),
    ]
    if n:
        done = eps["terminated"] | eps["truncated"]
        ret = eps["return"].double()
        rows += [
            ("episodes", f"{n:,} ({int(done.sum()):,} finished)"),
            (
                "return",
                f"min {ret.min():.3f} · mean {ret.mean():.3f} · max {ret.max():.3f}",
            ),
            (
                "length",
                f"min {int(eps['length'].min())} · mean {eps['length'].double().mean():.1f} · max {int(eps['length'].max())}",
            ),
        ]
    else:
        rows.append(("episodes", "0"))
    env = m.get("env") or {}
    rows.append(("env", f"{env.get('id')} {json.dumps(env.get('kwargs') or {})}"))
    rows.append(
        (
            "capacity",
            "append-only" if store.capacity is None else f"ring of {store.capacity:,}",
        )
    )
    for key, value in sorted((m.get("provenance") or {}).items()):
        if key in described.FIELDS:  # shown, cut to size, under "About this dataset"
            continue
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        rows.append((f"provenance.{key}", _short(str(text), 600)))  # data: bounded
    rows.append(("content digest", digest_of(store)))
    return rows


def _stored_bytes(root: Path) -> int:
    """Bytes of the store's objects (what a push moves; sparse preallocation excluded)."""
    sizes = {
        p.relative_to(root).as_posix(): p.stat().st_size for p in root.rglob("*") if p.is_file()
    }
    manifests = {
        rel.rpartition("/")[0]: ob.parse_manifest((root / rel).read_bytes(), str(root / rel))
        for rel in sizes
        if rel.rpartition("/")[2] == ob.MANIFEST
    }
    return sum(ob.plan(sizes, manifests).values())


def _bytes(n: int) -> str:
    value, unit = float(n), 0
    while value >= 1000 and unit < 4:
        value, unit = value / 1000, unit + 1
    if unit == 0:
        return f"{n:,} B"
    return f"{value:,.1f} {('KB', 'MB', 'GB', 'TB')[unit - 1]} ({n:,} bytes)"


def _schema_table(schema: dict) -> str:
    rows = [(k, e["dtype"], str(list(e["shape"]))) for k, e in sorted(schema.items())]
    return h.table(("key", "dtype", "shape"), rows, code=0)


def _spec_leaves(specs: Any) -> dict[str, dict]:
    """The leaf specs of the manifest's spec JSON, by dotted key."""
    out: dict[str, dict] = {}

    def walk(node: Any, key: str) -> None:
        if not isinstance(node, dict):
            return
        if node.get("type") == "Composite":
            for child, sub in sorted((node.get("specs") or {}).items()):
                walk(sub, f"{key}.{child}" if key else child)
            return
        out[key] = node

    walk(specs, "")
    return out


def _specs_table(specs: Any) -> str:
    rows = [
        (key, str(node.get("type")), str(node.get("dtype")), str(node.get("shape")), in_words(node))
        for key, node in _spec_leaves(specs).items()
    ]
    if not rows:
        return '<p class="note">no specs recorded</p>'
    return h.table(("key", "type", "dtype", "shape", "values"), rows, code=0)


_INTS = ("int", "uint")


def in_words(node: dict) -> str:
    """A leaf spec's values in words: "each of 3 values in [-2, 2]", "integer in 0..2",
    "17 unbounded floats" (the spec JSON of :mod:`rldata.specs`; shown, never evaluated)."""
    try:
        return _short(_words(node))
    except (TypeError, ValueError, KeyError, AttributeError, OverflowError):
        return _short(json.dumps({k: v for k, v in node.items() if k != "type"}, sort_keys=True))


def _words(node: dict) -> str:
    kind, dtype = node.get("type"), str(node.get("dtype"))
    shape = [int(d) for d in node.get("shape") or []]
    count = math.prod(shape)
    integer = dtype.startswith(_INTS)
    many = f"{count:,}" + (f" ({'×'.join(map(str, shape))})" if len(shape) > 1 else "")
    noun = "integer" if integer else "value"
    if kind == "Bounded":
        low, high = _bounds(node["low"], count), _bounds(node["high"], count)
        ranges = [_range(lo, hi, integer) for lo, hi in zip(low, high)]
        if len(set(ranges)) == 1:
            if count == 1:
                return f"{noun} in {ranges[0]}"
            return f"each of {many} {noun}s in {ranges[0]}"
        shown = ", ".join(ranges[:6]) + (", …" if len(ranges) > 6 else "")
        return f"{many} {noun}s, each in its own range: {shown}"
    if kind == "Unbounded":
        what = "integer" if integer else ("boolean" if dtype == "bool" else "float")
        return f"{many} unbounded {what}{'s' * (count != 1)}"
    if kind == "Categorical":
        n = int(node["n"])
        if count == 1:
            return f"integer in 0..{n - 1}"
        return f"each of {many} integers in 0..{n - 1}"
    if kind == "OneHot":
        return f"one-hot vector of {int(node['n'])} (index 0..{int(node['n']) - 1})"
    if kind == "Binary":
        return f"{many} values, each 0 or 1"
    if kind in ("MultiCategorical", "MultiOneHot"):
        nvec = [int(n) for n in node["nvec"]]
        parts = ", ".join(f"0..{n - 1}" for n in nvec[:8]) + (", …" if len(nvec) > 8 else "")
        if kind == "MultiOneHot":
            return f"{len(nvec)} one-hot blocks (indices {parts})"
        return f"{len(nvec)} integers in {parts}"
    raise ValueError(kind)


def _bounds(data: dict, count: int) -> list[float]:
    if "fill" in data:
        return [float(data["fill"])] * count
    return [float(v) for v in data["values"]]


def _range(lo: float, hi: float, integer: bool) -> str:
    if integer and math.isfinite(lo) and math.isfinite(hi):
        return f"{int(lo)}..{int(hi)}"
    return f"[{_num(lo)}, {_num(hi)}]"


def _num(x: float) -> str:
    return "∞" if x == math.inf else "-∞" if x == -math.inf else f"{x:g}"


# --- what the dataset is, and how to load it --------------------------------------------------

_ABOUT = (
    ("author", "author"),
    ("author_email", "author email"),
    ("license", "license"),
    ("code_permalink", "code"),
    ("algorithm_name", "algorithm"),
)


def _about(meta: dict[str, Any]) -> str:
    """Description (paragraphs), author, license, code link: text only, control characters
    shown as escapes and HTML escaped (a link from a shared store is shown, not followed)."""
    desc = meta.get("description")
    paragraphs = [p for p in (desc or "").split("\n\n") if p.strip()]
    body = (
        "".join(
            "<p>" + "<br>".join(h.esc(escape(line)) for line in par.splitlines()) + "</p>"
            for par in paragraphs
        )
        if paragraphs
        else '<p class="note" id="no-description">The dataset has no description '
        "(rldata collect / convert --description sets one).</p>"
    )
    rows = [
        (label, escape(", ".join(v) if isinstance(v, list) else v))
        for key, label in _ABOUT
        if (v := meta.get(key)) is not None
    ]
    if "license" not in meta:
        rows.append(("license", "not stated"))
    return f'<div id="description">{body}</div>' + h.table(None, rows)


def _load_snippet(name: str) -> str:
    """Python and shell lines that open this dataset (the name quoted for each language)."""
    import shlex

    py = (
        "import rldata\n\n"
        f"buffer = rldata.load({name!r}, batch_size=256)  # a read-only replay buffer\n"
        "batch = buffer.sample()  # a TensorDict of 256 TED rows\n\n"
        f"with rldata.open({name!r}) as store:  # the store itself\n"
        "    episodes = store.episodes()  # one row per episode: return, length, ends\n"
    )
    q = shlex.quote(name)
    pull = f"rldata pull {q} DIR   # a verified local copy\n" if is_url(name) else ""
    sh = pull + (
        f"rldata info {q}     # this card in the terminal\n"
        f"rldata verify {q}   # check every checksum\n"
        f"rldata convert {q} minari:NAMESPACE/NAME-v0   # or a Minari dataset\n"
    )
    return (
        f'<p>Python</p><pre id="load-python"><code>{h.esc(py)}</code></pre>'
        f'<p>Command line</p><pre id="load-cli"><code>{h.esc(sh)}</code></pre>'
    )


def _stats_table(store: Any) -> str:
    """Per-feature statistics the store recorded at commit time (``store.stats()``), if any."""
    stats = getattr(store, "stats", None)
    summary = stats() if callable(stats) else None
    if not summary:
        return '<p class="note">this store records no statistics</p>'
    rows = []
    for key, entry in sorted(summary.items()):
        qs = entry.get("quantiles") or {}
        cols = [entry.get(c) or [] for c in ("mean", "std", "min", "max")]
        cols += [qs.get(q) or [] for q in _QUANTILES]
        for d in range(min(len(cols[0]), MAX_PANELS)):
            cells = [_fmt(c[d]) if d < len(c) else "" for c in cols]
            rows.append((key, str(d), f"{int(entry.get('count', 0)):,}", *cells))
    note = (
        '<p class="note">From the per-episode records each commit writes: exact, no pass over '
        f"the rows (at most the first {MAX_PANELS} features of a key). Quantiles from the "
        "store's mergeable sketch: within 2% of the value of that rank.</p>"
    )
    head = ("key", "dim", "count", "mean", "std", "min", "max", "p5", "p50", "p95")
    return note + h.table(head, rows, code=0)


_QUANTILES = ("0.05", "0.5", "0.95")


def _fmt(x: Any) -> str:
    return "" if x is None else f"{float(x):.4g}"


def _short(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- plots ---------------------------------------------------------------------------------------


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)  # constrained layout: no second "tight" draw
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _episode_plots(figure_cls: Any, eps: Any) -> list[str]:
    n = int(eps.batch_size[0]) if eps.batch_dims else 0
    if n == 0:
        return []
    ret = eps["return"].double().numpy()
    length = eps["length"].numpy()
    out = []

    fig = figure_cls(figsize=(6.2, 3.2), layout="constrained")
    ax = fig.subplots()
    ax.plot(range(n), ret, ".", ms=4, alpha=0.7, color="#2b6cb0", label="episode")
    w = max(1, n // 25)
    if n >= 2 * w > 2:
        smooth = torch.tensor(ret).unfold(0, w, 1).mean(-1).numpy()
        ax.plot(range(w - 1, n), smooth, color="#c05621", lw=1.6, label=f"mean of {w}")
    ax.set(
        xlabel="episode (recording order)",
        ylabel="return",
        title="Episode returns over recording",
    )
    ax.legend(loc="best", fontsize=8)
    out.append(h.figure("returns-over-time", _png(fig), "Episode returns in recording order"))

    fig = figure_cls(figsize=(6.2, 3.2), layout="constrained")
    ax = fig.subplots()
    ax.hist(ret, bins=min(50, max(5, n // 4)), color="#2b6cb0")
    ax.set(xlabel="return", ylabel="episodes", title="Episode returns")
    out.append(h.figure("returns-hist", _png(fig), "Histogram of episode returns"))

    fig = figure_cls(figsize=(6.2, 3.2), layout="constrained")
    ax = fig.subplots()
    ax.hist(length, bins=min(50, max(5, n // 4)), color="#2f855a")
    ax.set(xlabel="length (steps)", ylabel="episodes", title="Episode lengths")
    out.append(h.figure("lengths", _png(fig), "Histogram of episode lengths"))

    term = eps["terminated"].reshape(-1)
    trunc = eps["truncated"].reshape(-1) & ~term
    rest = ~(term | trunc)
    counts = [int(term.sum()), int(trunc.sum()), int(rest.sum())]
    fig = figure_cls(figsize=(6.2, 2.4), layout="constrained")
    ax = fig.subplots()
    labels = ["terminated", "truncated", "unfinished"]
    bars = ax.barh(labels, counts, color=["#c53030", "#d69e2e", "#a0aec0"])
    for bar, c in zip(bars, counts):
        ax.text(
            bar.get_width(),
            bar.get_y() + bar.get_height() / 2,
            f" {c} ({100 * c / n:.0f}%)",
            va="center",
            fontsize=9,
        )
    ax.set(xlabel="episodes", title="How episodes ended")
    ax.set_xlim(0, max(counts) * 1.25 + 1)
    out.append(h.figure("ends", _png(fig), "Share of terminated vs truncated episodes"))
    return out


def _sample(store: Any) -> tuple[Any, str]:
    """At most :data:`SAMPLE_ROWS` rows (and :data:`SAMPLE_BYTES` of decoded rows), read a
    block at a time: no tensor of every position, no whole decoded column."""
    n = len(store)
    if n == 0 or store.schema is None:
        return None, "The store holds no rows: no histograms."
    width = sum(sch.row_bytes(e) for e in store.schema.values())
    k = max(1, min(SAMPLE_ROWS, SAMPLE_BYTES // max(1, width)))
    if n <= k:
        parts = [b.rows for b in blocks.row_blocks(store)]
        rows = torch.cat(parts) if len(parts) > 1 else parts[0]  # type: ignore[arg-type]
        return rows, f"Histograms use all {n:,} rows."
    pick = _pick(n, k, torch.Generator().manual_seed(0))
    note = (
        f"Histograms use a uniform random sample of {k:,} of the {n:,} rows (seed 0); "
        "episode plots use every episode."
    )
    return _gather(store, pick), note


def _pick(n: int, k: int, gen: torch.Generator) -> torch.Tensor:
    """``k`` distinct offsets of ``[0, n)``, sorted, uniform; memory ``O(k)`` once ``n`` is
    well above ``k`` (draws with replacement, keeping the distinct ones)."""
    if n <= 4 * k:
        return torch.sort(torch.randperm(n, generator=gen)[:k]).values
    got = torch.empty(0, dtype=torch.long)
    while got.numel() < k:
        got = torch.unique(torch.cat([got, torch.randint(n, (k + k // 4,), generator=gen)]))
    return torch.sort(got[torch.randperm(got.numel(), generator=gen)[:k]]).values


def _gather(store: Any, pick: torch.Tensor) -> Any:
    """The rows at readable offsets ``pick`` (sorted), read at most one block at a time: by
    position for a row table (its runs of positions, by arithmetic), else by streaming."""
    step = blocks.block_rows(store)
    if blocks._is_row_table(store):
        pos, base = [], 0
        for a, b in blocks.runs(store):
            lo, hi = torch.searchsorted(pick, torch.tensor([base, base + b - a])).tolist()
            pos.append(pick[lo:hi] - base + a)
            base += b - a
        positions = torch.cat(pos)
        parts = [store.get(positions[i : i + step]) for i in range(0, positions.numel(), step)]
    else:
        parts = []
        for blk in blocks.row_blocks(store):
            lo, hi = torch.searchsorted(
                pick, torch.tensor([blk.offset, blk.offset + blk.n])
            ).tolist()
            if hi > lo:
                parts.append(blk.rows[pick[lo:hi] - blk.offset])
    return torch.cat(parts) if len(parts) > 1 else parts[0]


def _row_keys(schema: dict) -> list[tuple[str, str]]:
    obs = [
        k
        for k in sorted(schema)
        if f"{_K.next}.{k}" in schema and k not in _FLAGS and not k.startswith(f"{_K.next}.")
    ]
    keys = [(k, "observation") for k in obs]
    for k, what in (
        (ted.key_name(_K.action), "action"),
        (ted.key_name(_K.nxt(_K.reward)), "reward"),
    ):
        if k in schema:
            keys.append((k, what))
    return keys


def _row_plots(
    figure_cls: Any, schema: dict, sample: Any, skip: set[str] | frozenset[str] = frozenset()
) -> list[str]:
    if sample is None:
        return []
    out = []
    colors = {"observation": "#2b6cb0", "action": "#805ad5", "reward": "#c05621"}
    for key, what in _row_keys(schema):
        if key in skip:  # a discrete action: drawn as a bar chart of counts
            continue
        values = sample.get(sch.key_tuple(key))
        flat = values.reshape(values.shape[0], -1).double()
        dims = flat.shape[1]
        if dims == 0:
            continue
        if dims > 4 * MAX_PANELS:  # images and other wide keys: one histogram of all values
            panels, caption = (
                [("all values", flat.reshape(-1))],
                f"{key}: all {dims} values pooled",
            )
        else:
            shown = min(dims, MAX_PANELS)
            panels = [(f"dim {d}", flat[:, d]) for d in range(shown)]
            caption = f"{key}: per-dimension histograms" + (
                f" (first {shown} of {dims} dims)" if shown < dims else ""
            )
        cols = min(4, len(panels))
        rows = math.ceil(len(panels) / cols)
        fig = figure_cls(figsize=(6.2, 2.0 * rows + 0.6), layout="constrained")
        axes = fig.subplots(rows, cols, squeeze=False)
        for ax, (label, v) in zip(axes.flat, panels):
            finite = v[torch.isfinite(v)].numpy()
            ax.hist(finite, bins=40, color=colors[what])
            ax.set_title(label, fontsize=9)
            ax.tick_params(labelsize=7)
        for ax in list(axes.flat)[len(panels) :]:
            ax.set_visible(False)
        fig.suptitle(f"{what} · {key}" if what != key else key, fontsize=10)
        out.append(h.figure(f"hist-{key.replace('.', '-')}", _png(fig), caption))
    return out


_DISCRETE = ("Categorical", "OneHot", "MultiCategorical", "MultiOneHot")


def _discrete_actions(specs: Any, schema: dict) -> dict[str, dict]:
    """The stored action keys whose spec is discrete (index or one-hot), with their spec."""
    act = ted.key_name(_K.action)
    return {
        key: node
        for key, node in _spec_leaves(specs).items()
        if (key == act or key.startswith(act + "."))
        and key in schema
        and node.get("type") in _DISCRETE
    }


def action_counts(node: dict, values: torch.Tensor) -> list[torch.Tensor]:
    """Counts per action index, one tensor per component (one for a Discrete action; one
    per entry of a MultiDiscrete), from stored index or one-hot rows; an index outside the
    spec is not counted."""
    kind = node["type"]
    rows = values.shape[0]
    if kind == "Categorical":
        return [_bincount(values.reshape(rows, -1).reshape(-1), int(node["n"]))]
    if kind == "OneHot":
        return [_bincount(values.reshape(rows, -1).argmax(-1), int(node["n"]))]
    nvec = [int(n) for n in node["nvec"]]
    flat = values.reshape(rows, -1)
    if kind == "MultiCategorical":
        return [_bincount(flat[:, i], n) for i, n in enumerate(nvec)]
    blocks = torch.split(flat, nvec, dim=-1)  # MultiOneHot: one block per component
    return [_bincount(b.argmax(-1), n) for b, n in zip(blocks, nvec)]


def _bincount(index: torch.Tensor, n: int) -> torch.Tensor:
    index = index.long().reshape(-1)
    index = index[(index >= 0) & (index < n)]
    return torch.bincount(index, minlength=n)[:n]


def _action_bars(figure_cls: Any, discrete: dict[str, dict], sample: Any) -> list[str]:
    """A bar chart of counts per action index for each discrete action key (a panel per
    component of a multi-discrete action, at most :data:`MAX_PANELS`)."""
    if sample is None:
        return []
    out = []
    for key, node in discrete.items():
        counts = action_counts(node, sample.get(sch.key_tuple(key)))
        shown = counts[:MAX_PANELS]
        cols = min(4, len(shown))
        rows = math.ceil(len(shown) / cols)
        fig = figure_cls(figsize=(6.2, 2.2 * rows + 0.6), layout="constrained")
        axes = fig.subplots(rows, cols, squeeze=False)
        for i, (ax, c) in enumerate(zip(axes.flat, shown)):
            ax.bar(range(len(c)), c.numpy(), color="#805ad5")
            ax.set_xticks(range(len(c)) if len(c) <= 20 else [])
            ax.tick_params(labelsize=7)
            ax.set(xlabel="action index", ylabel="rows" if i % cols == 0 else None)
            if len(counts) > 1:
                ax.set_title(f"component {i}", fontsize=9)
        for ax in list(axes.flat)[len(shown) :]:
            ax.set_visible(False)
        name = key if key == ted.key_name(_K.action) else f"action · {key}"
        fig.suptitle(f"{name}: counts per index", fontsize=10)
        per = "per component " if len(counts) > 1 else ""
        more = (
            f" (first {len(shown)} of {len(counts)} components)" if len(shown) < len(counts) else ""
        )
        caption = f"{key}: how often each action index was taken, {per}in the rows the histograms use{more}"
        out.append(h.figure(f"actions-{key.replace('.', '-')}", _png(fig), caption))
    return out
