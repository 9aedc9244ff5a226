"""The layers hold: cli -> flows -> tasks -> mailflow core, and only the @task wrappers, the flows and the CLI import Prefect."""

from __future__ import annotations

# move_map: skip (the examples below import old module names on purpose)
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Repository folder -> the package it is installed as (pyproject's package-dir).
PACKAGES = {"mailflow": "mailflow", "tasks": "mailflow.tasks", "flows": "mailflow.flows"}


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([PACKAGES[parts[0]], *parts[1:]])


def imports(source: str) -> list[str]:
    """Every module a source imports, at module level or inside a function; `from a import b` also
    counts as `a.b` (b may be a module)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
            found += [f"{node.module}.{alias.name}" for alias in node.names]
    return found


def within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def layer(module: str) -> str:
    for package, name in (("mailflow.cli", "cli"), ("mailflow.flows", "flows"), ("mailflow.tasks", "tasks")):
        if within(module, package):
            return name
    return "core"


HIGHER = {"core": ("mailflow.tasks", "mailflow.flows", "mailflow.cli"), "tasks": ("mailflow.flows", "mailflow.cli"),
          "flows": ("mailflow.cli",), "cli": ()}


def may_import_prefect(module: str) -> bool:
    parts = module.split(".")
    is_task_wrappers = within(module, "mailflow.tasks") and len(parts) == 4 and parts[-1] == "tasks"
    return is_task_wrappers or layer(module) in ("flows", "cli")


def violations(root: Path = ROOT) -> list[str]:
    found = []
    for folder in PACKAGES:
        for path in sorted((root / folder).rglob("*.py")):
            module = module_name(path, root)
            for name in imports(path.read_text(encoding="utf-8")):
                where = f"{path.relative_to(root)} ({module}) imports {name}"
                if within(name, "tasks") or within(name, "flows"):
                    found.append(f"{where}: top-level tasks/flows are installed as mailflow.tasks/mailflow.flows")
                elif within(name, "mailflow.cli") and layer(module) != "cli":
                    found.append(f"{where}: nothing imports the CLI")
                elif any(within(name, higher) for higher in HIGHER[layer(module)]):
                    found.append(f"{where}: the {layer(module)} layer imports a higher one")
                elif within(name, "prefect") and not may_import_prefect(module):
                    found.append(f"{where}: only tasks/*/tasks.py, flows/ and mailflow/cli/ import Prefect")
    return found


def test_no_module_imports_a_higher_layer_and_only_the_wrappers_import_prefect():
    found = violations()
    assert not found, "layering broken:\n" + "\n".join(found)


def test_the_walk_sees_every_layer_and_prefect_where_it_is_allowed():
    modules = {module_name(p) for folder in PACKAGES for p in (ROOT / folder).rglob("*.py")}
    assert {"mailflow.settings", "mailflow.cli", "mailflow.tasks.send.tasks", "mailflow.flows.send_campaign"} <= modules
    wrappers = (ROOT / "tasks" / "send" / "tasks.py").read_text()
    assert "prefect" in imports(wrappers) and may_import_prefect("mailflow.tasks.send.tasks")


def test_each_kind_of_violation_is_reported_with_the_module_and_the_import(tmp_path):
    files = {
        "mailflow/settings.py": "from mailflow.tasks.core.warehouse import connect\n",
        "mailflow/home.py": "def f():\n    import prefect\n",
        "tasks/core/rules.py": "from mailflow.flows.demo import demo\n",
        "tasks/send/chunk.py": "from prefect import task\n",
        "tasks/send/tasks.py": "from prefect import task\nfrom mailflow.tasks.send.chunk import send_chunk\n",
        "flows/demo.py": "from mailflow import cli\n",
        "flows/ingest.py": "import tasks.ingest\n",
    }
    for name, source in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(source)
    found = violations(tmp_path)
    expected = [
        "flows/demo.py (mailflow.flows.demo) imports mailflow.cli: nothing imports the CLI",
        "flows/ingest.py (mailflow.flows.ingest) imports tasks.ingest: top-level",
        "mailflow/home.py (mailflow.home) imports prefect: only",
        "mailflow/settings.py (mailflow.settings) imports mailflow.tasks.core.warehouse: the core layer",
        "tasks/core/rules.py (mailflow.tasks.core.rules) imports mailflow.flows.demo: the tasks layer",
        "tasks/send/chunk.py (mailflow.tasks.send.chunk) imports prefect: only",
    ]
    for start in expected:
        assert any(line.startswith(start) for line in found), (start, found)
    assert not any(line.startswith("tasks/send/tasks.py") for line in found), found


def test_tests_and_bench_use_the_installed_names_too():
    found = [f"{path.relative_to(ROOT)} imports {name}"
             for folder in ("tests", "bench") for path in sorted((ROOT / folder).rglob("*.py"))
             if path.name != "test_layers.py"
             for name in imports(path.read_text(encoding="utf-8")) if within(name, "tasks") or within(name, "flows")]
    assert not found, "top-level tasks/flows are installed as mailflow.tasks/mailflow.flows:\n" + "\n".join(found)
