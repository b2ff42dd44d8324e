"""Pure renderers of leaderboard tables: Markdown, HTML (one self-contained file), LaTeX, CSV, JSON."""

from __future__ import annotations

import base64
import csv
import datetime as _dt
import html
import io
import json
import math
import re
from pathlib import Path

import dparena
from dparena.leaderboard.aggregate import Cell, Table, baseline_entries
from dparena.leaderboard.samples import LEGEND as SAMPLES_LEGEND
from dparena.leaderboard.samples import Sample, page_name, samples_of

FORMATS = ("md", "html", "latex", "csv", "json")

LEGEND = (
    "Each cell: mean over seeds ± half-width of the 95% bootstrap CI (n = seeds), rank among the "
    "valid DP methods at that ε in parentheses. accountant: how the method's ε was composed "
    "(? = not recorded when the run was made). Non-private references are anchors, never ranked; "
    "INVALID rows overspent their budget, AUDIT-FAILED rows exceed their claimed ε at 95% "
    "confidence by the canary audit (Holm–Bonferroni over the store's audits; the "
    "audit/eps-lower-bound column is each audit's own bound) and AUDIT-ERROR rows' audit raised; "
    "none of these is ranked. A cell reading inf, -inf or nan holds a non-finite metric value: "
    "never ranked or plotted. \"0 valid rows\": the method ran within its budget but returned "
    "nothing that metric could score (an LM whose output never parsed)."
)


def fmt_value(x: float) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "nan"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    if abs(x) >= 100:
        return f"{x:.1f}"
    return f"{x:.3f}"


def cell_text(cell: Cell | None, with_rank: bool = True) -> str:
    if cell is None:
        return "no run"
    if cell.stat is None:
        return cell.empty
    s = cell.stat
    text = fmt_value(s.mean)
    if s.ci_low is not None and s.ci_high is not None:
        half = max(s.mean - s.ci_low, s.ci_high - s.mean)
        text += f" ±{fmt_value(half)}"
    if with_rank and cell.rank is not None:
        text += f" ({cell.rank})"
    return text


def cell_detail(cell: Cell | None) -> str:
    if cell is None or cell.stat is None:
        return cell.note if cell else ""
    s = cell.stat
    ci = f"95% CI [{fmt_value(s.ci_low)}, {fmt_value(s.ci_high)}]" if s.ci_low is not None else "no CI (n=1)"
    lost = f"; {cell.note}" if cell.note else ""  # runs without a value here, and why
    return f"mean {s.mean:.6g}, std {s.std:.3g}, n={s.n}, {ci}{lost}"


def header(col) -> str:
    return f"{col.name} {col.direction.arrow}"


def accountant_text(row) -> str:
    """The accountant cell: the row's accountant(s), "—" for references."""
    return row.accountant or "—"


def to_markdown(tables: list[Table], plots: list[str] | None = None,
                samples: list[Sample] | None = None) -> str:
    """The tables; ``plots`` are links to the figures, ``samples`` (``samples.write_samples``)
    add a line per table linking its samples page (:func:`samples_markdown`) and grids."""
    out = []
    for t in tables:
        out.append(f"### {_md_escape(t.title)}\n")
        if t.about:
            out.append(f"{_md_escape(t.about)}\n")
        cols = ["method"] + [_md_escape(header(c)) for c in t.columns] + ["accountant"]
        out.append("| " + " | ".join(cols) + " |")
        out.append("|" + "|".join(["---"] + ["---:"] * len(t.columns) + ["---"]) + "|")
        for row in t.rows:
            cells = []
            for c in t.columns:
                text = cell_text(row.cells.get(c.name))
                cell = row.cells.get(c.name)
                if cell is not None and cell.rank == 1:
                    text = f"**{text}**"
                cells.append(text)
            out.append("| " + " | ".join([_md_escape(row.display_label)] + cells
                                          + [_md_escape(accountant_text(row))]) + " |")
        notes = [f"- {row.label}: {row.note}" for row in t.rows if row.note]
        if notes:
            out.append("")
            out.extend(_md_escape(n) for n in notes)
        shown = samples_of(t, samples or [])
        if shown:
            page = page_name(t)
            grids = [f"[{_link_text(s.caption)}]({s.grid})" for s in shown if s.grid]
            out.append("")
            out.append(f"Samples of each row's first seed: [samples page]({page})"
                       + (" · grids: " + " · ".join(grids) if grids else ""))
        out.append("")
    out.append(f"_{LEGEND}_")
    if plots:
        out.append("")
        out.append("Plots: " + " · ".join(f"[{Path(p).stem}]({p})" for p in plots))
    return "\n".join(out) + "\n"


def samples_markdown(table: Table, samples: list[Sample]) -> str:
    """The samples page of one table (written as ``samples/<name>.md``, so grids are linked by
    file name): each ok row's grid, texts or rows, or the line saying why there are none."""
    out = [f"# Samples: {_md_escape(table.title)}", "", f"_{_md_escape(SAMPLES_LEGEND)}_", "",
           "[The leaderboard](../leaderboard.md)", ""]
    for s in samples_of(table, samples):
        out += [f"## {_md_escape(s.caption)}", ""]
        if s.note:
            out += [f"_{_md_escape(s.note)}_", ""]
        if s.why_none:
            out += [_md_escape(s.why_none), ""]
        if s.grid:
            out += [f"![samples of {_link_text(s.caption)}]({Path(s.grid).name})", ""]
        if s.texts:
            out += [f"{i}. " + (f"**{_md_inert(k)}**: " if k else "") + _md_inert(text)
                    for i, (k, text) in enumerate(s.texts, 1)]
            out.append("")
        if s.rows:
            out.append("| " + " | ".join(_md_inert(c) for c in s.columns) + " |")
            out.append("|" + "|".join(["---"] * len(s.columns)) + "|")
            out += ["| " + " | ".join(_md_inert(v) for v in row) + " |" for row in s.rows]
            out.append("")
    return "\n".join(out).rstrip("\n") + "\n"


def _link_text(text: str) -> str:
    """Text for a Markdown link's brackets."""
    return _md_escape(text).replace("[", "\\[").replace("]", "\\]")


def _md_escape(text: str) -> str:
    """Text for one Markdown table cell or line: backslashes and pipes escaped, HTML tags
    disarmed, line breaks as spaces."""
    text = " ".join(text.splitlines())
    return (text.replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;")
            .replace(">", "&gt;"))


_MD_SPECIAL = re.compile(r"([`*_{}\[\]()#+!~])")


def _md_inert(text: str) -> str:
    """Generated text (a sample text, a table cell of synthetic data) for a Markdown page: as
    :func:`_md_escape`, and every character Markdown would read as emphasis, a link, an image
    or code escaped, so the text shows as written and loads nothing."""
    return _MD_SPECIAL.sub(r"\\\1", _md_escape(text))


_SCRIPT = """
function sortBy(th) {
  const table = th.closest('table');
  const idx = Array.from(th.parentNode.children).indexOf(th);
  const asc = th.dataset.order !== 'asc';
  table.querySelectorAll('th').forEach(h => { h.dataset.order = ''; h.classList.remove('asc', 'desc'); });
  th.dataset.order = asc ? 'asc' : 'desc';
  th.classList.add(asc ? 'asc' : 'desc');
  const body = table.tBodies[0];
  const rows = Array.from(body.rows);
  const key = r => { const c = r.children[idx]; const v = c.dataset.v; return v === undefined || v === '' ? null : (isNaN(+v) ? v : +v); };
  rows.sort((a, b) => {
    const x = key(a), y = key(b);
    if (x === null && y === null) return 0;
    if (x === null) return 1;
    if (y === null) return -1;
    return (x < y ? -1 : x > y ? 1 : 0) * (asc ? 1 : -1);
  });
  rows.forEach(r => body.appendChild(r));
}
function showEps(value) {
  document.querySelectorAll('section.board').forEach(s => {
    s.hidden = !(value === 'all' || s.dataset.eps === value);
  });
}
"""


def to_html(tables: list[Table], title: str = "dparena leaderboard",
            plots: list[tuple[str, bytes]] | None = None,
            samples: list[Sample] | None = None) -> str:
    """One self-contained page: sortable tables, an ε selector, CI and n on hover, flagged rows.

    ``plots`` are (link, PNG bytes) pairs: the PNG is embedded, the link (e.g. the SVG) is kept.
    ``samples`` (``samples.write_samples``) add a Samples part to each table: image grids by
    their relative path (``samples/...png``, beside the page), texts and rows as escaped text.
    """
    e = html.escape
    eps_values = sorted({t.epsilon for t in tables})
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{e(title)}</title><style>",
        "body{font-family:system-ui,sans-serif;margin:2rem;color:#222}",
        "table{border-collapse:collapse;margin:0.5rem 0 2rem}",
        "th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}",
        "th{cursor:pointer;background:#f0f0f0}th.asc::after{content:' ▲'}th.desc::after{content:' ▼'}",
        "th:first-child,td:first-child{text-align:left}",
        "tr.reference td{background:#f4f4f8;font-style:italic}",
        "tr.invalid td,tr.failed td,tr.audit-failed td,tr.audit-error td{background:#fbeaea}",
        "td.accountant{text-align:left}.notes{color:#555;max-width:60rem}",
        ".flag{font-weight:bold;color:#a00}.ref{color:#555}",
        "td.best{font-weight:bold}.legend{color:#555;max-width:60rem}",
        "img.plot{max-width:32rem;margin:0.5rem}",
        ".samples h4{margin:0.8rem 0 0.2rem}.sample-note,.withheld{color:#555;margin:0.2rem 0}",
        "img.grid{image-rendering:pixelated;border:1px solid #ccc}",
        "ol.texts{max-width:60rem}.sample-rows{overflow-x:auto}",
        ".sample-rows th{cursor:auto}.sample-rows th,.sample-rows td{text-align:left}",
        ".sample-rows table{font-size:0.85em;margin:0.3rem 0}.sample-rows td{white-space:nowrap}",
        "</style></head><body>",
        f"<h1>{e(title)}</h1>",
        f"<p class='legend'>{e(LEGEND)}</p>",
        "<label>ε: <select id='eps-select' onchange='showEps(this.value)'>",
        "<option value='all'>all</option>",
        *[f"<option value='{e(_eps_key(x))}'>{e(f'{x:g}')}</option>" for x in eps_values],
        "</select></label>",
    ]
    for t in tables:
        parts.append(f"<section class='board' data-eps='{e(_eps_key(t.epsilon))}'>")
        about = f"<p class='about'>{e(t.about)}</p>" if t.about else ""
        parts.append(f"<h2>{e(t.title)}</h2>{about}<table><thead><tr><th onclick='sortBy(this)'>method</th>")
        parts += [f"<th onclick='sortBy(this)'>{e(header(c))}</th>" for c in t.columns]
        parts.append("<th onclick='sortBy(this)'>accountant</th>")
        parts.append("</tr></thead><tbody>")
        for row in t.rows:
            status = row.display_status
            if row.kind == "reference":
                cls, flag = "reference", "<span class='ref'>non-private reference</span>"
            elif status != "ok":
                cls, flag = status, f"<span class='flag'>{e(status.upper())}</span>"
            else:
                cls, flag = "ok", ""
            note = f" title='{e(row.note, quote=True)}'" if row.note else ""
            parts.append(f"<tr class='{cls}'><td data-v='{e(row.label, quote=True)}'{note}>"
                         f"{e(row.label)} {flag}</td>")
            for c in t.columns:
                cell = row.cells.get(c.name)
                best = " class='best'" if cell is not None and cell.rank == 1 else ""
                value = "" if cell is None or cell.stat is None else repr(cell.stat.mean)
                parts.append(f"<td{best} data-v='{value}' title='{e(cell_detail(cell), quote=True)}'>"
                             f"{e(cell_text(cell))}</td>")
            parts.append(f"<td class='accountant' data-v='{e(row.accountant, quote=True)}'>"
                         f"{e(accountant_text(row))}</td>")
            parts.append("</tr>")
        parts.append("</tbody></table>")
        notes = [f"<li>{e(row.label)}: {e(row.note)}</li>" for row in t.rows if row.note]
        if notes:
            parts.append("<ul class='notes'>" + "".join(notes) + "</ul>")
        shown = samples_of(t, samples or [])
        if shown:
            parts.append(_html_samples(shown))
        parts.append("</section>")
    if plots:
        parts.append("<h2>Quality against ε</h2><div>")
        parts += [f"<a href='{e(link, quote=True)}'><img class='plot' alt='{e(link, quote=True)}' "
                  f"src='data:image/png;base64,{base64.b64encode(png).decode()}'></a>"
                  for link, png in plots]
        parts.append("</div>")
    parts.append(f"<p class='legend'>generated by dparena {e(dparena.__version__)}</p>")
    parts.append(f"<script>{_SCRIPT}</script>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _html_samples(samples: list[Sample]) -> str:
    e = html.escape
    out = ["<div class='samples'><h3>Samples</h3>", f"<p class='legend'>{e(SAMPLES_LEGEND)}</p>"]
    for s in samples:
        out.append(f"<div class='sample'><h4>{e(s.caption)}</h4>")
        if s.note:
            out.append(f"<p class='sample-note'>{e(s.note)}</p>")
        if s.why_none:
            out.append(f"<p class='withheld'>{e(s.why_none)}</p>")
        if s.grid:
            out.append(f"<img class='grid' src='{e(s.grid, quote=True)}' "
                       f"alt='{e('samples of ' + s.caption, quote=True)}'>")
        if s.texts:
            out.append("<ol class='texts'>" + "".join(
                f"<li>{f'<b>{e(k)}</b>: ' if k else ''}{e(text)}</li>" for k, text in s.texts)
                + "</ol>")
        if s.rows:
            out.append("<div class='sample-rows'><table><thead><tr>"
                       + "".join(f"<th>{e(c)}</th>" for c in s.columns) + "</tr></thead><tbody>"
                       + "".join("<tr>" + "".join(f"<td>{e(v)}</td>" for v in row) + "</tr>"
                                 for row in s.rows) + "</tbody></table></div>")
        out.append("</div>")
    out.append("</div>")
    return "".join(out)


def _eps_key(eps: float) -> str:
    return "inf" if math.isinf(eps) else f"{eps:g}"


_LATEX_SPECIAL = {"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
                  "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                  "\\": r"\textbackslash{}", "<": r"\textless{}", ">": r"\textgreater{}",
                  "ε": r"$\varepsilon$", "δ": r"$\delta$", "∞": r"$\infty$", "±": r"$\pm$",
                  "↑": r"$\uparrow$", "↓": r"$\downarrow$", "—": "---", "–": "--",
                  "≥": r"$\geq$"}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def to_latex(tables: list[Table]) -> str:
    out = []
    for t in tables:
        out.append("\\begin{table}[t]\n\\centering")
        about = f" ({latex_escape(t.about)})" if t.about else ""
        out.append(f"\\caption{{{latex_escape(t.title)}{about}}}")
        out.append("\\begin{tabular}{l" + "r" * len(t.columns) + "l}\n\\toprule")
        out.append(" & ".join(["Method"] + [latex_escape(header(c)) for c in t.columns]
                              + ["Accountant"]) + " \\\\")
        out.append("\\midrule")
        for row in t.rows:
            cells = []
            for c in t.columns:
                cell = row.cells.get(c.name)
                text = latex_escape(cell_text(cell))
                cells.append(f"\\textbf{{{text}}}" if cell is not None and cell.rank == 1 else text)
            out.append(" & ".join([latex_escape(row.display_label)] + cells
                                  + [latex_escape(accountant_text(row))]) + " \\\\")
        out.append("\\bottomrule\n\\end{tabular}")
        notes = [f"{latex_escape(row.label)}: {latex_escape(row.note)}" for row in t.rows
                 if row.note]
        if notes:
            out.append("\\par\\smallskip{\\footnotesize " + "\\\\\n".join(notes) + "\\par}")
        out.append("\\end{table}\n")
    return "\n".join(out)


def to_csv(tables: list[Table]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["dataset", "epsilon", "delta", "label", "method", "kind", "status", "metric",
                "direction", "mean", "std", "n", "ci_low", "ci_high", "rank", "empty", "accountant",
                "note"])
    for t in tables:
        for row in t.rows:
            for c in t.columns:
                cell = row.cells.get(c.name)
                s = cell.stat if cell else None
                q = _csv_text
                w.writerow([
                    q(t.dataset), t.epsilon, "" if t.delta is None else t.delta, q(row.label),
                    q(row.method), row.kind, row.display_status, q(c.name), c.direction.value,
                    *(("", "", "", "", "") if s is None else
                      (s.mean, s.std, s.n, "" if s.ci_low is None else s.ci_low,
                       "" if s.ci_high is None else s.ci_high)),
                    "" if cell is None or cell.rank is None else cell.rank,
                    q("" if cell is None or s is not None else cell.empty),
                    q(row.accountant), q(row.note),
                ])
    return buf.getvalue()


def _csv_text(text: str) -> str:
    """A text cell a spreadsheet will not run: one starting with = + - @, a tab or a carriage
    return gets a leading single quote (OWASP's CSV-injection advice). Numbers are not text."""
    return f"'{text}" if text and text[0] in "=+-@\t\r" else text


def to_json(tables: list[Table]) -> str:
    doc = {
        "format": "dparena-leaderboard",
        "format_version": 1,
        "dparena": dparena.__version__,
        "generated": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "entries": [{k: _finite(v) for k, v in e.items()} for e in baseline_entries(tables)],
    }
    return json.dumps(doc, indent=1, allow_nan=False) + "\n"


def _finite(value):
    """JSON has no NaN or infinity: such values are written as null."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def render(tables: list[Table], fmt: str) -> str:
    if fmt == "md":
        return to_markdown(tables)
    if fmt == "html":
        return to_html(tables)
    if fmt == "latex":
        return to_latex(tables)
    if fmt == "csv":
        return to_csv(tables)
    if fmt == "json":
        return to_json(tables)
    raise ValueError(fmt)
