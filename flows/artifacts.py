"""Flow glue: what every flow run shows in the Prefect UI, a progress artifact over its steps and a result table."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from prefect.artifacts import create_progress_artifact, create_table_artifact, update_progress_artifact

T = TypeVar("T")


class RunProgress:
    """`<flow>-progress`: created at 0 % when the run starts, moved as each of its `steps` ends (one API call each);
    a run with nothing to do shows 100 % at once."""

    def __init__(self, flow: str, steps: int, what: str):
        self.steps, self.done, self.what = steps, 0, what
        self.id = create_progress_artifact(0.0 if steps else 100.0, key=f"{flow.replace('_', '-')}-progress",
                                           description=f"0 of {steps} {what}")

    def step(self, note: str = "") -> None:
        self.done += 1
        update_progress_artifact(self.id, 100.0 * self.done / max(self.steps, self.done),
                                 description=f"{self.done} of {self.steps} {self.what}" + (f": {note}" if note else ""))

    def follow(self, results: Iterable[T]) -> Iterator[T]:
        """The results as they come, a step for each."""
        for result in results:
            yield result
            self.step()


def result_table(flow: str, rows: list[dict[str, Any]], description: str) -> None:
    """`<flow>-result`: the run's result as a table (an empty one says so in a row)."""
    create_table_artifact(rows or [{"result": "nothing to do"}], key=f"{flow.replace('_', '-')}-result", description=description)
