"""mailflow: bulk email delivery built as Prefect data pipelines over DuckDB and Polars."""

from pathlib import Path

__version__ = "0.1.0"

# The repository root holds sql/, templates/ and data/samples/ beside the packages
# (the project is installed editable, as the Makefile does).
ROOT = Path(__file__).resolve().parent.parent
SQL_DIR = ROOT / "sql"
TEMPLATES_DIR = ROOT / "templates"
SAMPLES_DIR = ROOT / "data" / "samples"
