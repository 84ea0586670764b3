"""The cohort QC report: one self-contained HTML page, one row per image, openable from disk without a server.

Each row: subject, image, status (with the failure's reason), review flags, the sagittal QC and the level chart
(linked by relative paths, so the page works wherever the derivatives folder is copied), warnings, time taken.
Filters (plain JavaScript, no external file): text (subject or image), status, and flag ("any flag" or one code).
Rows carry `data-status` and `data-flags` attributes (space-separated flag codes), which the filters read and
tests can check.
"""

from __future__ import annotations

import html
from typing import Dict, List, Optional

_STYLE = """
body{font-family:system-ui,sans-serif;margin:1em;color:#222}
table{border-collapse:collapse;width:100%}
th,td{border-bottom:1px solid #ccc;padding:6px;vertical-align:top;text-align:left}
td img{max-height:340px;max-width:420px}
.status-done{color:#1a7f37}.status-skipped{color:#555}.status-failed{color:#b42318;font-weight:bold}
.status-not-run{color:#9a6700}.status div{font-weight:normal;color:#222}
.group-figures img{max-height:360px;margin-right:1em}
.flag{display:inline-block;background:#fff3cd;border:1px solid #e0b000;border-radius:3px;padding:1px 4px;margin:1px;
font-size:85%}
.controls{margin:0.5em 0 1em 0;display:flex;gap:1em;flex-wrap:wrap}
.summary span{margin-right:1.5em}
"""

_SCRIPT = """
function applyFilters(){
  var text=document.getElementById('filter-text').value.toLowerCase();
  var status=document.getElementById('filter-status').value;
  var flag=document.getElementById('filter-flag').value;
  var rows=document.querySelectorAll('tr.subject');var shown=0;
  rows.forEach(function(r){
    var ok=(!text||r.dataset.search.indexOf(text)>=0)&&(status==='all'||r.dataset.status===status);
    var flags=r.dataset.flags?r.dataset.flags.split(' '):[];
    if(flag==='flagged'){ok=ok&&flags.length>0;}else if(flag!=='all'){ok=ok&&flags.indexOf(flag)>=0;}
    r.style.display=ok?'':'none';if(ok){shown++;}
  });
  document.getElementById('shown-count').textContent=shown;
}
"""


def _e(value) -> str:
    return html.escape(str(value), quote=True)


def _row(entry: dict) -> str:
    flags = entry.get("flags") or []
    codes = " ".join(flag["code"] for flag in flags)
    status = entry["status"]
    reason = f"<div>{_e(entry['reason'])}</div>" if entry.get("reason") else ""
    flag_html = "".join(f'<span class="flag" title="{_e(f["text"])}">{_e(f["code"])}</span>' for f in flags)
    flag_text = "".join(f"<li>{_e(f['text'])}</li>" for f in flags)
    figures = entry.get("figures") or {}
    cells = []
    for name in ("qc_sagittal", "level_chart"):
        path = figures.get(name)
        cells.append(f'<td><a href="{_e(path)}"><img loading="lazy" src="{_e(path)}" alt="{_e(name)} of '
                     f'{_e(entry["image"])}" class="{name}"></a></td>' if path else '<td class="no-figure">-</td>')
    warnings = entry.get("warnings") or []
    warn_html = (f"<details><summary>{len(warnings)} warning(s)</summary><ul>"
                 + "".join(f"<li>{_e(w)}</li>" for w in warnings) + "</ul></details>") if warnings else ""
    search = f"{entry['participant_id']} {entry['image']}".lower()
    return (f'<tr class="subject" data-status="{_e(status)}" data-flags="{_e(codes)}" data-search="{_e(search)}">'
            f'<td class="participant">{_e(entry["participant_id"])}<div><small>{_e(entry["image"])}</small></div></td>'
            f'<td class="status status-{_e(status)}">{_e(status)}{reason}'
            f'<div><small>{entry.get("seconds", 0.0):.1f} s; landmarks: {_e(entry.get("landmarks", ""))}</small>'
            f'</div></td>'
            f'<td class="flags">{flag_html}<ul>{flag_text}</ul>{warn_html}</td>' + "".join(cells) + "</tr>")


def qc_report_html(entries: List[dict], title: str = "RootletSeg QC report",
                   group_links: Optional[Dict[str, str]] = None) -> str:
    """The report page. entries: dicts with participant_id, image, status, reason, seconds, flags ([{code, text}]),
    warnings, landmarks, figures ({"qc_sagittal": relative path, "level_chart": relative path})."""
    counts = {s: sum(1 for e in entries if e["status"] == s) for s in ("done", "skipped", "failed", "not-run")}
    flagged = sum(1 for e in entries if e.get("flags"))
    codes = sorted({f["code"] for e in entries for f in e.get("flags") or []})
    flag_options = "".join(f'<option value="{_e(c)}">{_e(c)}</option>' for c in codes)
    links = "".join(f'<li><a href="{_e(path)}">{_e(name)}</a></li>' for name, path in sorted((group_links or {}).items()))
    group_figures = "".join(f'<a href="{_e(path)}"><img src="{_e(path)}" alt="{_e(name)}"></a>'
                            for name, path in sorted((group_links or {}).items()) if path.endswith(".png"))
    summary = "".join(f'<span class="count-{s}">{s}: {n}</span>' for s, n in counts.items())
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title><style>{_STYLE}</style></head>
<body>
<h1>{_e(title)}</h1>
<p class="summary">{summary}<span class="count-flagged">flagged: {flagged}</span>
<span>shown: <b id="shown-count">{len(entries)}</b></span></p>
<p>Spinal levels from rootlets as in Krejci et al., Scientific Reports 2026 (doi 10.1038/s41598-026-49164-0).
Flags mark what needs a look; they are heuristics, not verdicts.</p>
{f'<h2>Group Bland–Altman</h2><ul class="group-links">{links}</ul>' if links else ''}
{f'<div class="group-figures">{group_figures}</div>' if group_figures else ''}
<div class="controls">
<label>Subject or image <input id="filter-text" type="search" oninput="applyFilters()"></label>
<label>Status <select id="filter-status" onchange="applyFilters()"><option value="all">all</option>
<option value="done">done</option><option value="skipped">skipped</option><option value="failed">failed</option>
<option value="not-run">not-run</option></select></label>
<label>Flags <select id="filter-flag" onchange="applyFilters()"><option value="all">all</option>
<option value="flagged">any flag</option>{flag_options}</select></label>
</div>
<table id="subjects"><thead><tr><th>Subject</th><th>Status</th><th>Flags</th><th>Sagittal QC</th>
<th>Levels</th></tr></thead>
<tbody>
{''.join(_row(e) for e in entries)}
</tbody></table>
<script>{_SCRIPT}</script>
</body></html>
"""
