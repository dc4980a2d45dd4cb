"""Gradio pieces every tab shares: the guard that turns refusals into a status line and a toast,
the done/not-done lines, and the red SIMULATED banner."""

import functools
import logging
from collections.abc import Callable
from typing import Any

import gradio as gr

from ui.config import UIError
from ui.format import escape, escape_html

log = logging.getLogger(__name__)

_BANNER_STYLE = ("background:#b91c1c;color:#fff;font-weight:700;padding:10px 14px;"
                 "border-radius:6px;font-size:1.05em;letter-spacing:.01em")
# Every event is private: the page is the only client, not an API.
PRIVATE: dict[str, Any] = {"api_visibility": "private"}
# Markdown that shows stored or model text: no LaTeX ($$...$$ would be typeset by KaTeX even
# around escaped text, since escapes are undone before it looks).
STORED_TEXT: dict[str, Any] = {"latex_delimiters": []}


def banner(text: str, kind: str = "simulated") -> str:
    """The red warning banner (HTML): simulated data, or `kind` (its CSS class `<kind>-banner`,
    so a page's one SIMULATED notice stays countable)."""
    return f'<div class="{kind}-banner" style="{_BANNER_STYLE}">⚠ {escape_html(text)}</div>'


def done(message: str) -> str:
    """A status line for an action that happened (`message` is already safe Markdown)."""
    return f"**Done:** {message}"


def refusal(message: str) -> str:
    """A status line for an action refused or failed; nothing was written."""
    return f"**Not done:** {escape(message)}"


def guarded(n_outputs: int) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Turn UIError and surprises into a status line (first output) and a toast; skip the rest."""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except UIError as exc:
                message = str(exc)
            except Exception as exc:  # never a stack trace in the page: it goes to the log
                log.exception("%s failed", fn.__name__)
                message = (f"Unexpected error ({type(exc).__name__}): {exc}. The details are "
                           "in the app's log.")
            gr.Warning(escape_html(message), title="Not done")
            if n_outputs == 1:
                return refusal(message)
            return (refusal(message), *[gr.skip() for _ in range(n_outputs - 1)])

        return wrapper

    return decorate
