"""Shared formatting for every tab: escaped text, Markdown cells and links, times, numbers,
the small input parsers the forms share, and PNG checks with a placeholder for a bad file."""

from __future__ import annotations

import html
import io
import math
import re
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from trading_assets.core.errors import error_text
from trading_assets.core.symbols import InvalidSymbolError, validate_symbol
from trading_assets.core.text import inert_markdown
from ui.config import UIError

if TYPE_CHECKING:
    from ui.config import UIContext

_RUN_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def escape(text: object) -> str:
    """Text from the database or a model inside Markdown: shown as written, never a link, an
    image or HTML (trading_assets/core/text.py)."""
    return inert_markdown(text)


def escape_html(text: object) -> str:
    """Text from the database or a model inside HTML (banners, toasts)."""
    return html.escape(str(text), quote=True)


def toast_text(markdown: str) -> str:
    """A status line written in Markdown (escaped by `escape`) as a toast's HTML: the same
    words, without the Markdown (bold marks, backslash escapes), HTML-escaped."""
    return escape_html(re.sub(r"\\(.)", r"\1", markdown.replace("**", "")))


def markdown_cell(text: object) -> str:
    """One Markdown table cell: escaped, on one line (pipes escaped too)."""
    return inert_markdown(text, one_line=True)


def when(moment: datetime | None) -> str:
    """A moment as `YYYY-MM-DD HH:MM UTC`, or "" when there is none."""
    if moment is None:
        return ""
    if moment.tzinfo is None:  # SQLite hands back naive datetimes that were stored as UTC
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def num(value: object, digits: int = 2) -> str:
    """A number for a Markdown table: "–" when missing or not finite, thousands separated."""
    if value is None:
        return "–"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return escape(value)
    if not math.isfinite(value):
        return "–"
    if abs(value) >= 100_000:
        return f"{value:,.0f}"
    return f"{value:,.{digits}f}"


def money(value: float | None) -> str:
    """An amount with two decimals, "–" when the broker did not report it."""
    return "–" if value is None else f"{value:,.2f}"


def run_link(run_id: str, url: str) -> str:
    """A Markdown link to a run, or the bare id when no UI address is known."""
    if not run_id:
        return ""
    if not _RUN_ID_RE.match(run_id):
        return markdown_cell(run_id)
    return f"[{run_id[:8]}]({url})" if url else f"`{run_id}`"


def mlflow_cell(ctx: UIContext, run_id: str) -> str:
    """A signal's MLflow run as a link, or "not logged"."""
    if not run_id:
        return "not logged"
    return run_link(run_id, ctx.mlflow_run_url(run_id))


def data_label(row: Any) -> str:
    """Where a signal's bars came from (the page's one SIMULATED banner does the shouting)."""
    return "simulated bars (not market data)" if row.simulated else row.data_source


def text_of(value: object) -> str:
    """A form value as stripped text ("" for None)."""
    return "" if value is None else str(value).strip()


def check_symbol(raw: object) -> str:
    """A typed symbol, validated (surrounding spaces ignored), or a UIError saying why not."""
    try:
        return validate_symbol(raw.strip(" ") if isinstance(raw, str) and raw.strip(" ") else raw)
    except InvalidSymbolError as exc:
        raise UIError(str(exc)) from exc


def parse_day(label: str, raw: object) -> date | None:
    """A YYYY-MM-DD form field as a date, None when blank, else a UIError naming the field."""
    text = text_of(raw)
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise UIError(f"{label} {text!r} is not a date; use YYYY-MM-DD.") from None


def checked_png(data: bytes, what: str) -> tuple[bytes, str]:
    """`data` and "" when it decodes as an image, else a placeholder PNG naming the reason and
    the reason: one corrupt chart file must not take the whole page down with it."""
    from PIL import Image, ImageDraw, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
        return data, ""
    except UnidentifiedImageError:
        reason = f"{what} could not be shown: the stored file is not an image."
    except Exception as exc:  # truncated, corrupt stream, decompression bomb ...
        reason = f"{what} could not be shown: {error_text(exc)}."
    placeholder = Image.new("RGB", (720, 80), "#f3f3f3")
    ImageDraw.Draw(placeholder).text((12, 32), reason[:110], fill="#a00000")
    buffer = io.BytesIO()
    placeholder.save(buffer, format="PNG")
    return buffer.getvalue(), reason


def pil_image(data: bytes | None) -> Any:
    """PNG bytes from the object store as a PIL image for gr.Image (the page never fetches a
    URL itself); a corrupt file shows as a placeholder naming the reason."""
    if data is None:
        return None
    from PIL import Image

    data, _ = checked_png(data, "The image")
    image = Image.open(io.BytesIO(data))
    image.load()
    return image
