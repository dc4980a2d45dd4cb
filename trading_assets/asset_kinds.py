"""The asset graph's kind tags, true for the configured systems (computed when definitions load).

The decorators name what never changes (pandas, parquet, matplotlib); which model, broker,
tracking and store an asset talks to depends on the environment, so those kinds are set here
from the already-built resources: no "openai" tag while the rules analyst makes the signals.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import dagster as dg

# Kinds that depend on configuration: dropped from the decorators' set, then added back as
# the resources say.
CONFIGURED = frozenset({"openai", "python", "mlflow", "ibkr", "paper", "minio"})

_BY_RESOURCE: dict[str, Callable[[Any], set[str]]] = {
    "analyst": lambda analyst: {"openai" if analyst.provider == "openai" else "python"},
    "tracking": lambda tracking: {"mlflow"} if tracking.active else set(),
    "broker": lambda broker: {"ibkr" if broker.kind == "ibkr" else "paper"},
    "market_data": lambda market: {"ibkr"} if market.source == "ibkr" else set(),
    "store": lambda store: set() if store.is_local else {"minio"},
}
# The resources behind each asset's configured kinds.
_ASSET_RESOURCES: dict[str, tuple[str, ...]] = {
    "ohlcv": ("market_data", "store"),
    "indicators": ("store",),
    "charts": ("store",),
    "llm_signal": ("analyst", "tracking"),
    "orders": ("broker",),
    "portfolio": ("broker",),
    "signal_outcomes": ("store",),
    "signal_scorecard": ("tracking",),
}


def configured_kinds(asset: str, static: set[str], resources: Mapping[str, Any]) -> set[str]:
    """An asset's kinds: its fixed ones plus those its configured resources stand for."""
    kinds = set(static) - CONFIGURED
    for name in _ASSET_RESOURCES.get(asset, ()):
        kinds |= _BY_RESOURCE[name](resources[name])
    return kinds


def with_configured_kinds(assets: Sequence[dg.AssetsDefinition],
                          resources: Mapping[str, Any]) -> list[dg.AssetsDefinition]:
    """The assets with each spec's kinds set for `resources` (cheap: attribute reads only)."""

    def retag(spec: dg.AssetSpec) -> dg.AssetSpec:
        name = spec.key.to_user_string()
        if name not in _ASSET_RESOURCES:
            return spec
        return spec.replace_attributes(kinds=configured_kinds(name, set(spec.kinds), resources))

    return [asset.map_asset_specs(retag) for asset in assets]
