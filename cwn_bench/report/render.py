"""Render a table of strings as Markdown, LaTeX (booktabs) or HTML. Tables reach this
module already formatted (see :mod:`sections`); this module only escapes and lays out."""

from __future__ import annotations

import html
import re

import pandas as pd

_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


_MD_SPECIAL = re.compile(r"([\\`*\[\]|])")


def md_escape(text: object) -> str:
    """``text`` as inert Markdown on one line: HTML escaped (a run name holding ``<script>``
    stays text), the characters of links, code, emphasis and table cells (``[ ] ` * |
    \\``) backslash-escaped, line breaks as spaces (a newline would end a table row)."""
    one_line = " ".join(str(text).splitlines())
    return _MD_SPECIAL.sub(r"\\\1", html.escape(one_line, quote=False))


def markdown(table: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table, every cell through :func:`md_escape`."""
    def row(cells: list[str]) -> str:
        return "| " + " | ".join(md_escape(c) for c in cells) + " |"

    lines = [row(list(table.columns)), row(["---"] * len(table.columns))]
    lines += [row(list(values)) for values in table.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def latex_escape(text: str) -> str:
    escaped = re.sub(r"[\\&%$#_{}~^]", lambda m: _LATEX_SPECIAL[m.group()], str(text))
    return escaped.replace("±", r"$\pm$")


def latex(table: pd.DataFrame, caption: str) -> str:
    """A booktabs ``tabular`` (needs ``\\usepackage{booktabs}``); text columns left,
    numeric-looking columns right aligned."""
    numeric = [bool(len(table)) and table[c].astype(str).str.fullmatch(r"[-+\d.,% ±x]*").all() for c in table]
    spec = "".join("r" if n else "l" for n in numeric)
    body = [" & ".join(latex_escape(c) for c in values) + r" \\" for values in table.itertuples(index=False)]
    return "\n".join([
        f"% {caption}", "% requires \\usepackage{booktabs}", f"\\begin{{tabular}}{{{spec}}}", r"\toprule",
        " & ".join(latex_escape(c) for c in table.columns) + r" \\", r"\midrule", *body, r"\bottomrule",
        r"\end{tabular}", ""])


def html_table(table: pd.DataFrame) -> str:
    return table.to_html(index=False, escape=True, border=0, na_rep="")


def html_page(title: str, body: list[str]) -> str:
    """A self-contained page (no scripts, no external resources)."""
    style = ("body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse;margin:.5em 0 1.5em;font-size:90%}"
             "th,td{padding:.2em .6em;border-bottom:1px solid #ddd;text-align:left}"
             "img{max-width:100%}code{background:#f4f4f4}")
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head>\n<body>\n" + "\n".join(body) + "\n</body></html>\n")
