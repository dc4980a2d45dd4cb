"""Dagster code location: symbols in, reviewed trading signals and safe orders out."""

import warnings

# Features chosen on purpose and pinned by the tests: BackfillPolicy.single_run() on the assets
# (beta) and partitioned asset checks (preview). Filtered here, before any asset module is
# imported, so loading the definitions (code server, every run worker, the CLI) prints nothing.
warnings.filterwarnings("ignore", message=r"Parameter `backfill_policy` of function .* beta")
warnings.filterwarnings("ignore", message=r"Specifying a partitions_def on an AssetCheckSpec .*"
                                          r"preview")
