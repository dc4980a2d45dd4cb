"""Every declared package earns its place: imported by the code, or listed in docs/layout.md's
Packages table with its role or the measured reason it was replaced or removed."""

import ast
import re
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CODE = ("trading_assets", "resources", "ui")
# The packages the product brief names: each has a row, whatever became of it.
BRIEF = ("dagster", "dagster-webserver", "dagster-postgres", "dagster-mlflow", "ib_insync",
         "pandas", "polars", "mplfinance", "ta", "instructor", "openai", "minio", "gradio")
STATUSES = {"imported", "used without import", "replaced", "removed", "bench extra"}


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(spec: str) -> str:
    return norm(re.split(r"[\s<>=!~\[;]", spec, maxsplit=1)[0])


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def runtime_dependencies() -> set[str]:
    return {requirement_name(spec) for spec in pyproject()["project"]["dependencies"]}


def packages_table() -> dict[str, tuple[str, str]]:
    """docs/layout.md "## Packages" rows: package -> (status, role or reason)."""
    text = (ROOT / "docs" / "layout.md").read_text()
    section = text.split("\n## Packages\n", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        match = re.match(r"\|\s*`([^`]+)`\s*\|\s*([^|]+?)\s*\|\s*(.+?)\s*\|\s*$", line)
        if match:
            rows[norm(match[1])] = (match[2], match[3])
    return rows


def imported_distributions() -> set[str]:
    """Distributions whose modules the code imports (lazy imports inside functions too)."""
    modules: set[str] = set()
    for folder in CODE:
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    modules.update(alias.name.split(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    modules.add(node.module.split(".")[0])
    by_module = packages_distributions()
    return {norm(dist) for module in modules for dist in by_module.get(module, [])}


def test_every_brief_package_and_every_dependency_has_a_row_with_a_reason() -> None:
    table = packages_table()
    missing = (set(map(norm, BRIEF)) | runtime_dependencies()) - set(table)
    assert not missing, f"docs/layout.md Packages table lacks {sorted(missing)}"
    for name, (status, reason) in table.items():
        assert status in STATUSES, (name, status)
        assert len(reason) > 20, f"{name}: say what it does here or why it went"


def test_a_dependency_nothing_imports_is_declared_only_with_its_reason() -> None:
    table, imported = packages_table(), imported_distributions()
    for name in runtime_dependencies():
        status = table[name][0]
        if name in imported:
            assert status == "imported", f"{name} is imported; the table says {status!r}"
        else:
            assert status == "used without import", \
                f"{name} is declared but nothing imports it; the table says {status!r}"


def test_replaced_and_removed_packages_are_not_runtime_dependencies() -> None:
    table, runtime = packages_table(), runtime_dependencies()
    gone = {name for name, (status, _) in table.items()
            if status in {"replaced", "removed", "bench extra"}}
    assert gone >= {"polars", "dagster-mlflow", "ib-insync", "mplfinance"}
    assert not gone & runtime


def test_mplfinance_is_a_bench_extra_that_the_dev_install_pulls_in() -> None:
    extras = pyproject()["project"]["optional-dependencies"]
    assert {requirement_name(spec) for spec in extras["bench"]} == {"mplfinance"}
    assert "trading-signals[bench]" in extras["dev"]


def test_rows_that_say_imported_are_really_imported() -> None:
    imported = imported_distributions()
    claimed = {name for name, (s, _) in packages_table().items() if s == "imported"}
    assert claimed <= imported, f"said imported but not: {sorted(claimed - imported)}"
