"""A model's training period: its knowledge cutoff, and which signal dates sit inside it.

A model may have read, in its training data, what prices did after a date before its cutoff:
a replayed signal on such a date can "predict" by remembering. Signals dated after the cutoff
are the honest test. LLM_TRAINING_CUTOFF sets the cutoff of LLM_MODEL; without it a small
table of published cutoffs is used, and an unknown model's cutoff stays unknown (never
guessed). The rules analyst has no training period.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

# Published knowledge cutoffs (OpenAI model pages). Dated snapshots such as
# "gpt-4o-mini-2024-07-18" match their family by prefix, as the price table does.
DEFAULT_CUTOFFS: dict[str, date] = {
    "gpt-4o": date(2023, 10, 1),
    "gpt-4o-mini": date(2023, 10, 1),
    "gpt-4.1": date(2024, 6, 1),
    "gpt-4.1-mini": date(2024, 6, 1),
    "gpt-4.1-nano": date(2024, 6, 1),
}
# The four periods the scorecard reports separately.
BEFORE = "before cutoff"
AFTER = "after cutoff"
UNKNOWN = "cutoff unknown"
NO_TRAINING = "no model"
PERIODS = (BEFORE, AFTER, UNKNOWN, NO_TRAINING)


def cutoff_for(model: str, configured: date | None = None) -> date | None:
    """The training cutoff of `model`: `configured` (LLM_TRAINING_CUTOFF) if set, else the
    table's entry (exact name, then the longest family prefix), else None (unknown)."""
    if configured is not None:
        return configured
    if model in DEFAULT_CUTOFFS:
        return DEFAULT_CUTOFFS[model]
    families = [name for name in DEFAULT_CUTOFFS if model.startswith(name + "-")]
    return DEFAULT_CUTOFFS[max(families, key=len)] if families else None


def training_period(provider: str, cutoff: date | None, bar_date: date) -> str:
    """BEFORE when the signal's date is on or before the cutoff (the model may know what came
    next), AFTER when it is later, UNKNOWN for a model without a known cutoff, NO_TRAINING
    for the rules analyst."""
    if provider == "rules":
        return NO_TRAINING
    if cutoff is None:
        return UNKNOWN
    return BEFORE if bar_date <= cutoff else AFTER


def replay_period_warning(model: str, cutoff: date | None, dates: Iterable[date]) -> str:
    """A warning for a replay of `model` on `dates`: how many sit inside its training period,
    or that its cutoff is unknown; "" when every date is after the cutoff."""
    days = sorted(dates)
    if not days:
        return ""
    if cutoff is None:
        return (f"WARNING: the training cutoff of {model} is unknown, so this replay cannot "
                "tell whether the model saw these dates' future in its training data. Set "
                "LLM_TRAINING_CUTOFF (YYYY-MM-DD).")
    inside = [d for d in days if d <= cutoff]
    if not inside:
        return ""
    return (f"WARNING: {len(inside)} of {len(days)} replay date(s) ({inside[0]} .. {inside[-1]}) "
            f"are on or before the training cutoff of {model} ({cutoff}): the model may have "
            "read what happened next. Judge it on the dates after the cutoff (scorecard table "
            "by_training_period).")
