"""Training one run to completion: data, model and protocol from the run config; resumable; the
finished model saved and the run folder marked done (under a lock, so two processes never train the
same run at once)."""

from __future__ import annotations

from contextlib import nullcontext

import numpy as np
import torch

from bench.common.checkpoint import save_tensors
from bench.common.errors import HyperbenchError
from bench.data.loading import load_dataset
from bench.models.catalog import create_model, load_models
from bench.tasks.task import get_task
from bench.training import distributed
from bench.training.crops import training_crops
from bench.training.protocols import get_protocol
from bench.training.runs import RunDir


def train_run(rundir: RunDir, data_root=None) -> dict:
    """Train one run to completion (resuming if interrupted); returns its summary."""
    run = rundir.run.config
    if rundir.is_done:
        return rundir.summary()
    distributed.init_from_env()  # under torchrun: join the other processes of this run
    task = get_task(run["task"])
    load_models()  # plugins register their protocols when imported
    protocol = get_protocol(run["protocol"], run["model"])
    images = load_dataset(run["train_dataset"], data_root, colour=task.channels)
    rundir.data_root = data_root
    crops = training_crops(run, images, rundir.path.parent)  # a fixed store lives beside the runs folder
    torch.manual_seed(run["seed"])
    np.random.seed(run["seed"])
    model = create_model(run["model"], **run["model_kwargs"])
    main = distributed.is_main()  # data-parallel: rank 0 writes, the others only compute
    if main:
        rundir.create()  # only once inputs are known to be good: no empty run folders
    with rundir.training_lock() if main else nullcontext():  # a second process on the same run waits here, then finds it done
        if distributed.agree(rundir.is_done):
            return rundir.summary()
        if main:
            rundir.remove_stale_temp_files()  # left by a process killed while writing a checkpoint
        rundir.start_segment()  # after a resume, wall_s adds the earlier segments' time
        try:
            summary = protocol(model, rundir, crops)
        except HyperbenchError as exc:
            if main:
                rundir.log({"failed": exc.problem})  # the folder says why it is unfinished
            raise
        summary.update({"run_id": rundir.run.run_id, "wall_s": round(rundir.wall_s(), 2), "segments": rundir.segment,
                        "torch_threads": torch.get_num_threads()})
        if distributed.world_size() > 1:
            summary["processes"] = distributed.world_size()
        if main:
            save_tensors(rundir.model_file, model.state_dict(), {"run_id": rundir.run.run_id, "model": run["model"]})
            rundir.mark_done(summary)
            rundir.state_file.unlink(missing_ok=True)
    distributed.barrier()  # no rank moves on before the run is marked done
    return summary
