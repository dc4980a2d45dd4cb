"""The trading policy as a resource, so runs and sensors get the one configured TradingPolicy.

The rules themselves are pure (trading_assets/core/policy.py); this only carries the numbers
settings.py read from the environment into the orders asset, the approved_signals sensor and
the Gradio app, which therefore never disagree.
"""

import dagster as dg

from trading_assets.core.policy import TradingPolicy


class PolicyResource(dg.ConfigurableResource):
    """Approval staleness, sizing reserve and reconciliation grace (core/policy.py)."""

    approval_max_age_days: int = TradingPolicy.approval_max_age_days
    approval_max_move_pct: float = TradingPolicy.approval_max_move_pct
    cash_buffer_pct: float = TradingPolicy.cash_buffer_pct
    reconcile_grace_s: float = TradingPolicy.reconcile_grace_s

    @property
    def rules(self) -> TradingPolicy:
        return TradingPolicy(approval_max_age_days=self.approval_max_age_days,
                             approval_max_move_pct=self.approval_max_move_pct,
                             cash_buffer_pct=self.cash_buffer_pct,
                             reconcile_grace_s=self.reconcile_grace_s)
