"""Reading the stored signal outcomes (outcomes/<SYMBOL>.parquet) back from the object store:
the signal_scorecard asset, replay's terminal scorecard and the app's Scorecard tab share it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from resources.object_store import ObjectNotFoundError, ObjectStore
from trading_assets.core.keys import outcomes_key
from trading_assets.core.outcomes import outcomes_frame

if TYPE_CHECKING:  # pandas loads when outcomes are read, not with the definitions
    import pandas as pd


def read_outcomes(store: ObjectStore, symbols: list[str]) -> pd.DataFrame:
    """All stored outcome rows of `symbols` (symbols never scored are left out)."""
    import pandas as pd

    frames = []
    for symbol in symbols:
        try:
            frames.append(store.read_frame(outcomes_key(symbol)))
        except ObjectNotFoundError:
            continue
    frames = [f for f in frames if not f.empty]
    return outcomes_frame(pd.concat(frames, ignore_index=True).to_dict("records")) if frames \
        else outcomes_frame([])
