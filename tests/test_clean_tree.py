"""The heaviest paths leave the git work tree as they found it: instance files, data, MLflow
stores and Gradio's caches go to the configured folders, never into the checkout.

A run's event log once landed in the repository root (storage/index.db and run shards were
committed): an instance opened by path from a process without DAGSTER_HOME put its event log
under the working directory.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Caches any Python or pytest run writes; they say nothing about where the product writes.
_CACHES = ("__pycache__/", ".pytest_cache/", ".ruff_cache/")


def tree_status() -> set[str]:
    """`git status --porcelain`, ignored paths included (a write into an ignored folder such
    as storage/ counts too), without the interpreter's caches."""
    out = subprocess.run(["git", "status", "--porcelain", "--ignored"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    return {line for line in out.splitlines() if not line.endswith(_CACHES)}


@pytest.fixture
def checkout() -> set[str]:
    """The work tree's status before the test; skips outside a git checkout."""
    try:
        inside = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=ROOT,
                                capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        pytest.skip("git is not available")
    if inside.returncode != 0 or Path(inside.stdout.strip()).resolve() != ROOT:
        pytest.skip("not a git checkout")
    return tree_status()


# A process started in the checkout without DAGSTER_HOME that opens a home by its path (as the
# bench and tools do) and runs an asset in it: where its event log goes.
_OPEN_BY_PATH = """
import sys
import dagster as dg
from trading_assets.runs import home_config
from pathlib import Path

home = Path(sys.argv[1])
home.mkdir(parents=True)
(home / "dagster.yaml").write_text(home_config(home))

@dg.asset
def probe() -> None:
    pass

with dg.DagsterInstance.from_config(str(home)) as instance:
    assert dg.materialize([probe], instance=instance).success
"""


@pytest.mark.timeout(900)
def test_the_heaviest_paths_leave_the_work_tree_unchanged(
        checkout: set[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DAGSTER_", "TRADING_", "MLFLOW_", "GRADIO_", "LLM_", "IBKR_"))}
    # The CLI's demo over one symbol on the defaults (MLflow on, its local store), run from
    # the checkout; only the instance and data folders point outside it.
    demo_env = {**env, "DAGSTER_HOME": str(tmp_path / "home"),
                "TRADING_DATA_DIR": str(tmp_path / "data")}
    demo = subprocess.run([sys.executable, "-m", "trading_assets.cli", "demo", "--symbols",
                           "TSLA"], cwd=ROOT, env=demo_env, capture_output=True, text=True,
                          timeout=600)
    assert demo.returncode == 0, demo.stdout[-2000:] + demo.stderr[-2000:]
    opened = subprocess.run([sys.executable, "-c", _OPEN_BY_PATH, str(tmp_path / "by-path")],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert opened.returncode == 0, opened.stderr[-2000:]
    assert list((tmp_path / "by-path" / "storage").glob("*.db"))

    # The Gradio page built in the checkout, over the demo's instance and data.
    import dagster as dg

    from trading_assets.settings import build_resources
    from ui.app import build_app

    monkeypatch.chdir(ROOT)
    with dg.DagsterInstance.from_config(demo_env["DAGSTER_HOME"]) as instance:
        build_app(build_resources(demo_env), instance)

    changed = tree_status() ^ checkout
    assert not changed, f"the work tree changed: {sorted(changed)}"
