"""mailflow: bulk email delivery built as Prefect data pipelines over DuckDB and Polars."""

from importlib import resources
from pathlib import Path

__version__ = "0.1.0"


def _folder(package: str) -> Path:
    """A resource folder shipped inside the package (mapped from the repository's top level)."""
    return Path(str(resources.files(package)))  # installed unpacked, editable or from a wheel: a real folder


SQL_DIR = _folder("mailflow.sql")
TEMPLATES_DIR = _folder("mailflow.templates")
SAMPLES_DIR = _folder("mailflow.samples")
