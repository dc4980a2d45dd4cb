"""``symbol_run_failures``: a failed run is recorded against its symbols, and alerted."""

import dagster as dg

from resources.app_db import AppDatabase
from trading_assets.automation.alerts import failure_alert, post_alert
from trading_assets.automation.planning import ANALYSIS_ASSETS, EXECUTION_ASSETS, sensor_status
from trading_assets.core.config import AutomationSettings
from trading_assets.core.errors import root_error, step_error_text
from trading_assets.core.symbols import InvalidSymbolError, validate_symbol
from trading_assets.partitions import SYMBOLS_PARTITION
from trading_assets.run_tags import run_symbols

SYMBOL_ASSET_KEYS = {a.key for a in [*ANALYSIS_ASSETS, *EXECUTION_ASSETS]}


def failed_steps_of(context: dg.RunFailureSensorContext) -> tuple[dict[str, str], str]:
    """Each failed step with its root error type, and the errors' text for the app's table."""
    failed_steps: dict[str, str] = {}
    messages: list[str] = []
    for event in context.get_step_failure_events():
        error = root_error(event.step_failure_data.error)
        failed_steps[event.step_key or "run"] = error.cls_name if error else "error"
        if error is not None:
            messages.append(f"{event.step_key}: {step_error_text(error)[:500]}")
    return failed_steps, "; ".join(messages) or (context.failure_event.message or "run failed")


def record_run_failure(context: dg.RunFailureSensorContext, app_db: AppDatabase,
                       config: AutomationSettings) -> None:
    """Record the failed run against each of its symbols, then post the optional alert."""
    run = context.dagster_run
    # An in-process run (dg.materialize) records an empty selection: judge by its tags.
    if run.asset_selection and not set(run.asset_selection) & SYMBOL_ASSET_KEYS:
        return
    symbols = run_symbols(run.tags, list(context.instance.get_dynamic_partitions(
        SYMBOLS_PARTITION)))
    if not symbols:
        return
    failed_steps, error_text = failed_steps_of(context)
    asset = next(iter(failed_steps), "run")
    already = app_db.failed_symbols(run.run_id)
    recorded = 0
    for symbol in symbols:
        try:
            validate_symbol(symbol)
        except InvalidSymbolError:
            continue
        if symbol not in already:  # keep the symbol's own, more precise failure
            app_db.record_failure(run.run_id, symbol, asset, f"run failed: {error_text}")
            recorded += 1
    context.log.info(f"Run {run.run_id} failed for {len(symbols)} symbol(s); recorded "
                     f"{recorded} new failure(s).")
    post_alert(config.alert_webhook_url.get_secret_value(),
               failure_alert(run, symbols, failed_steps), config.alert_timeout_s, context.log)


def build_run_failure_sensor(config: AutomationSettings) -> dg.SensorDefinition:
    """The run-failure sensor, posting to `config.alert_webhook_url` when set."""

    # monitor_all_code_locations: runs the CLI and the Gradio app execute in-process (no daemon
    # up) carry no code-location origin; the asset filter above keeps it to ours.
    @dg.run_failure_sensor(
        name="symbol_run_failures",
        monitor_all_code_locations=True,
        default_status=sensor_status(config),
        description="Records a failed run against its symbols (shown in the app) and posts a "
                    "short alert to ALERT_WEBHOOK_URL when set.",
    )
    def symbol_run_failures(context: dg.RunFailureSensorContext, app_db: AppDatabase) -> None:
        record_run_failure(context, app_db, config)

    return symbol_run_failures
