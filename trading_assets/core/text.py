"""Untrusted text (what a model wrote, any stored string) made inert for where it is shown.

Markdown views (the Gradio app, the Dagster UI's metadata) would turn `![x](http://...)` into an
image the viewer's browser fetches, `[click](https://...)`, `[x][ref]` with `[ref]: url`,
`<https://...>` and a bare `https://...`, `www.` or `name@host` into live links, and `<img ...>`
into HTML. `inert_markdown` backslash-escapes exactly what starts those (brackets, angle
brackets, backticks and backslashes, the `:` of `://`, the `.` of `www.`, and `@`), which
CommonMark renders as the plain character, so the text reads as written and holds no link,
image or tag. Emphasis and the like are left alone: they cannot fetch or link anything. A
terminal would act on escape sequences (colours, cursor moves, OSC 8 hyperlinks):
`terminal_text` drops control characters.
"""

from __future__ import annotations

import re
import unicodedata

# Characters that open a link, image, autolink, HTML tag or code span, and the backslash
# (so the text cannot undo an escape); `|` too in table cells.
_OPENERS = re.compile(r"[\\\[\]<>`]")
_AUTOLINK = re.compile(r":(?=//)|(?i:(?<=\bwww))\.|@")
# C0 and C1 controls (ESC starts terminal sequences) and the bidirectional overrides that can
# make a line read differently from what it holds; tab and newline are kept where allowed.
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def inert_markdown(text: object, *, one_line: bool = False) -> str:
    """`text` as Markdown that renders as these characters and holds no link, image, autolink
    or HTML. `one_line` is for a table cell: line breaks become spaces and `|` is escaped."""
    clean = _drop_controls(str(text), keep_newlines=not one_line)
    out = _OPENERS.sub(lambda m: "\\" + m.group(0), clean)
    out = _AUTOLINK.sub(lambda m: "\\" + m.group(0), out)
    return out.replace("|", "\\|") if one_line else out


def markdown_code(text: object) -> str:
    """`text` as a fenced code block (shown verbatim, monospaced): for error output and
    transcripts, where the exact characters matter. The fence is longer than any run of
    backticks inside, so nothing in the text can close it."""
    body = _drop_controls(str(text), keep_newlines=True)
    longest = max((len(run) for run in re.findall(r"`+", body)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{body}\n{fence}"


def terminal_text(text: object) -> str:
    """`text` for one terminal line: control characters (escape sequences, hyperlinks, bells)
    and bidirectional overrides removed, line breaks and tabs as spaces."""
    return _drop_controls(str(text), keep_newlines=False)


def _drop_controls(text: str, *, keep_newlines: bool) -> str:
    out = []
    for ch in text:
        if ch in "\n\r\t":
            out.append("\n" if keep_newlines and ch == "\n" else " ")
        elif ch in _BIDI or unicodedata.category(ch) == "Cc":
            continue
        else:
            out.append(ch)
    return "".join(out)
