"""Progress bars with loss and ETA (rich), quiet when HYPERBENCH_QUIET is set."""

from __future__ import annotations

import os
from contextlib import contextmanager

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class _Bar:
    def __init__(self, progress, task_id):
        self.progress, self.task_id = progress, task_id

    def update(self, completed: int, **fields):
        if self.progress is not None:
            self.progress.update(self.task_id, completed=completed, **fields)


@contextmanager
def progress_bar(label: str, total: int, completed: int = 0, show_loss: bool = True):
    if os.environ.get("HYPERBENCH_QUIET"):
        yield _Bar(None, None)
        return
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn()]
    if show_loss:
        columns.append(TextColumn("loss {task.fields[loss]:.4f}"))
    columns += [TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn()]
    with Progress(*columns, transient=False) as progress:
        task_id = progress.add_task(label, total=total, completed=completed, loss=float("nan"))
        yield _Bar(progress, task_id)
