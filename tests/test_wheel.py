"""The built wheel works on its own: installed into a fresh virtualenv outside the repository, `mailflow demo` runs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

from mailflow import SAMPLES_DIR
from mailflow.tasks.demo.setup import REJECTED_DOMAIN

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.integration, pytest.mark.slow]
# What the wheel is built from; tests, bench, caches and virtualenvs stay behind.
LEFT_OUT = shutil.ignore_patterns(".git", ".venv", "tests", "bench", "build", "dist", "*.egg-info", "__pycache__",
                                  ".pytest_cache", ".hypothesis", "data")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """Built from a copy of the sources (a build writes build/ and *.egg-info beside them), with the
    same build backend resolution `make setup` used for the editable install."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "src"
    shutil.copytree(ROOT, source, ignore=LEFT_OUT)
    shutil.copytree(ROOT / "data" / "samples", source / "data" / "samples", ignore=LEFT_OUT)
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(work / "dist"),
                           str(source)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    [built] = (work / "dist").glob("mailflow-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """A fresh virtualenv holding only the wheel; its dependencies come from this test run's environment
    through a .pth file naming its site-packages (plain paths: that folder's own .pth files, among them
    the editable install's finder, are not run), so nothing is downloaded."""
    env_dir = tmp_path_factory.mktemp("venv") / "env"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    # Installed before the .pth exists: pip then sees an empty environment and touches nothing else.
    done = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps",
                           "--no-index", str(wheel)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    site = Path(subprocess.check_output([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                        text=True).strip())
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site / "_mailflow_test_dependencies.pth").write_text("\n".join(sorted(ours)) + "\n")
    return env_dir


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MAILFLOW_", "PYTHON"))}
    return env | {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"} | extra


def test_the_wheel_ships_sql_templates_and_samples_under_mailflow_only(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops == {"mailflow", wheel.name.split("-")[0] + "-" + wheel.name.split("-")[1] + ".dist-info"}, tops
    for needed in ("mailflow/sql/schema/001_init.sql", "mailflow/sql/queries/plan.sql",
                   "mailflow/sql/views/campaign_stats.sql", "mailflow/sql/checks/assert_unique_subscriber_email.sql",
                   "mailflow/sql/segments/engaged_90d.sql",
                   "mailflow/templates/newsletter.html.j2", "mailflow/samples/subscribers.csv",
                   "mailflow/samples/campaign.yaml", "mailflow/tasks/send/tasks.py", "mailflow/flows/demo.py",
                   "mailflow/cli/__main__.py"):
        assert needed in names, needed


def test_the_installed_wheel_runs_the_demo_from_an_empty_directory(installed, tmp_path):
    cwd = tmp_path / "empty"
    cwd.mkdir()
    env = clean_env(PREFECT_HOME=str(tmp_path / "prefect"))
    probe = subprocess.run([installed / "bin" / "python", "-c",
                            "import importlib.util, mailflow; print(mailflow.__file__); "
                            "print(importlib.util.find_spec('tasks'), importlib.util.find_spec('flows'))"],
                           cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert probe.returncode == 0, probe.stderr
    where, top_level = probe.stdout.splitlines()
    assert where.startswith(str(installed)), "the wheel's mailflow runs, not the repository's"
    assert top_level == "None None", "no top-level tasks/flows packages are installed"

    home = tmp_path / "home"
    out = subprocess.run([installed / "bin" / "mailflow", "--home", str(home), "--json", "demo"], cwd=cwd, env=env,
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    total = result["report"]["total"]
    rejected = sum(1 for line in (SAMPLES_DIR / "subscribers.csv").read_text().splitlines()
                   if f"@{REJECTED_DOMAIN}," in line)
    mailed = result["planned"]["audience_size"]
    assert total["audience"] == mailed + result["planned"]["holdout"] and mailed > 2000
    assert 0 < total["bounced"] <= rejected  # but those of the holdout
    assert total["delivered"] + total["bounced"] == mailed and total["pending"] == 0
    assert result["aggregated"]["deliveries"] == mailed
    assert [p.name for p in cwd.iterdir()] == [], "the demo writes only to its home"
