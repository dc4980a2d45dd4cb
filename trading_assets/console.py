"""Terminal helpers shared by the CLI, replay and bench: argument types and plain tables."""

from __future__ import annotations

import argparse
from collections.abc import Sequence


def positive_int(raw: str) -> int:
    """An argparse type for counts: a whole number of 1 or more, else a clear usage error."""
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{raw} must be 1 or more")
    return value


def print_table(rows: list[dict[str, str]], columns: Sequence[str]) -> None:
    """Rows as left-aligned columns under a header line; every cell as plain text on one line
    (stored strings may hold terminal escape sequences or hyperlinks: core/text.py)."""
    from trading_assets.core.text import terminal_text

    cells = [{c: terminal_text(row.get(c, "")) for c in columns} for row in rows]
    widths = {c: max(len(c), *(len(r[c]) for r in cells)) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns))
    print("  ".join("-" * widths[c] for c in columns))
    for row in cells:
        print("  ".join(row[c].ljust(widths[c]) for c in columns))


def port_number(raw: str) -> int:
    """An argparse type for a TCP port: a whole number from 1 to 65535."""
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a port number (1-65535)")
    return value


def ticker(raw: str) -> str:
    """An argparse type for one symbol: the validated ticker, else the reason as a usage error."""
    from trading_assets.core.symbols import InvalidSymbolError, validate_symbol

    try:
        return validate_symbol(raw)
    except InvalidSymbolError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line: what is wrong and where the help is
    (argparse's default prints the whole usage block first)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see: {self.prog} --help)\n")
