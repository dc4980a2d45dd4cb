"""Bench section 3: model calls in flight against the loopback OpenAI-compatible peer."""

from __future__ import annotations

import os
from typing import Any

from trading_assets.bench.common import AS_OF, timed


def bench_llm(calls: int, delay_s: float, concurrency: int | None) -> dict[str, Any]:
    """`calls` analyses through OpenAIAnalyst.analyze_many against the loopback peer, each
    answered after `delay_s`: wall time beside the sequential time, and the most in flight."""
    from datetime import date

    from resources.llm_openai import OpenAIAnalyst
    from trading_assets.bench import llm_peer as peer
    from trading_assets.core.bars import simulate_bars
    from trading_assets.core.charts import ChartJob, render_job
    from trading_assets.core.indicators import indicator_frames
    from trading_assets.core.secrets import API_KEY_VARS

    bars = simulate_bars("CHART", date.fromisoformat(AS_OF))
    images = render_job(ChartJob("CHART", indicator_frames(bars), simulated=True))
    # Requests as llm_signal sends them: summaries, 50 bars and two real chart PNGs.
    requests = [peer.analysis_request(f"L{i:03d}").model_copy(
        update={"daily_chart_png": images["daily"].png, "weekly_chart_png": images["weekly"].png})
        for i in range(calls)]

    delay = {"s": 0.0}

    def respond(received: Any) -> Any:
        text = received.user_parts()[0]["text"]
        symbol = text.split("Symbol: ", 1)[1].split("\n", 1)[0].strip()
        return peer.answer(peer.signal_fields(symbol), delay_s=delay["s"])

    analyst = OpenAIAnalyst(model="gpt-4o-mini", max_retries=0, http_retries=0,
                            timeout_s=max(30.0, delay_s * 10),
                            **({"concurrency": concurrency} if concurrency else {}))
    saved = {name: os.environ.pop(name) for name in API_KEY_VARS if name in os.environ}
    try:  # the loopback server needs no key; a real one in the environment stays unsent
        with peer.OpenAIServer() as server:
            server.responder = respond
            analyst = analyst.model_copy(update={"base_url": server.base_url})
            # One immediate answer first: importing openai and instructor is start-up, not
            # concurrency.
            warm_up, _ = timed(lambda: analyst.analyze_many(requests[:1]))
            delay["s"] = delay_s
            server.max_in_flight = 0
            wall, outcomes = timed(lambda: analyst.analyze_many(requests))
            in_flight = server.max_in_flight
    finally:
        os.environ.update(saved)
    errors = [o.error for o in outcomes if not o.ok]
    return {
        "calls": calls, "delay_s": delay_s, "concurrency": analyst.concurrency,
        "wall_s": round(wall, 3), "sequential_s": round(calls * delay_s, 3),
        "speedup": round(calls * delay_s / wall, 1) if wall else None,
        "ok": len(outcomes) - len(errors), "errors": errors[:5], "max_in_flight": in_flight,
        "warm_up_s": round(warm_up, 3),
    }

