"""Ray Tune schedules a sweep's runs: each a trial of a function trainable with the resources it asks
for (``--cpus-per-run``, fractional ``--gpus-per-run``), as many at once as the cluster holds, a dead
worker's run retried once, a tqdm bar over the finished runs instead of Tune's tables. The datasets
the runs' recipes make are built first, once each, as Ray tasks.

Local by default (Ray starts in this process, on this machine's cores); ``address`` joins a running
Ray cluster. A sweep resumes through its run folders, not through Tune's experiment state: started
again it hands Tune only the runs without an evaluation, each resuming from its rmdt checkpoints, so a
sweep file that gained tasks or seeds still continues what it shares with the old one. Tune's own
files go to a fresh experiment folder under the sweep's ``tune/`` per start.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from pathlib import Path
from unittest import mock

import ray
from ray import tune

from rmdt.atomic import write_text
from rmdt.progress import progress_bar
from rmdt.sweep.spec import Run
from rmdt.sweep.trainable import error_path, tune_trainable

# In every worker: Tune must not move a trial into its own folder, so relative paths of overrides
# (data.root=...) mean what they mean where the sweep was started.
WORKER_ENV = {"RAY_CHDIR_TO_TRIAL_DIR": "0"}


def start_ray(address: str | None = None, cpus: int | None = None) -> bool:
    """Starts Ray in this process (on ``cpus`` cores, default all) or joins the cluster at ``address``;
    False when Ray was already running here (the caller that started it shuts it down)."""
    if ray.is_initialized():
        return False
    common = dict(runtime_env={"env_vars": WORKER_ENV}, log_to_driver=False, logging_level=logging.WARNING)
    if address:
        ray.init(address=address, **common)
    else:  # "local": a Ray of its own even when RAY_ADDRESS or a `ray start` cluster is about
        ray.init(address="local", num_cpus=cpus or os.cpu_count(), include_dashboard=False, **common)
    return True


def check_fits(cpus_per_run: float, gpus_per_run: float) -> None:
    """A run asking for more than any node has would wait forever: say so instead."""
    nodes = [node["Resources"] for node in ray.nodes() if node.get("Alive")]
    for name, wanted in (("CPU", cpus_per_run), ("GPU", gpus_per_run)):
        most = max((resources.get(name, 0) for resources in nodes), default=0)
        if wanted > most:
            raise SystemExit(f"--{name.lower()}s-per-run {wanted:g}: no Ray node has that many {name}s "
                             f"(the most on one node: {most:g})")


class ProgressBar(tune.Callback):
    """One tqdm step per finished run (evaluated, or failed for good), counting runs retried and failed."""

    def __init__(self, total: int, initial: int) -> None:
        self.bar = progress_bar(total=total, initial=initial, unit="run", desc="sweep")
        self.failed = self.retried = 0

    def __getstate__(self) -> dict:  # Tune pickles its callbacks with the experiment; a bar's stream does not
        return {key: value for key, value in self.__dict__.items() if key != "bar"}

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.bar.update()

    def on_trial_recover(self, iteration, trials, trial, **info):
        self.retried += 1
        self.bar.set_postfix(failed=self.failed, retried=self.retried)

    def on_trial_error(self, iteration, trials, trial, **info):
        self.failed += 1
        self.bar.set_postfix(failed=self.failed, retried=self.retried)
        self.bar.update()

    def on_experiment_end(self, trials, **info):
        self.bar.close()


@ray.remote(num_cpus=1)
def _build_dataset(recipe: str, args: dict, root: str | None) -> str:
    from rmdt.envs.registry import ENVS

    return ENVS.recipe(recipe).build(**args, root=root)


def build_datasets(runs: list[Run]) -> None:
    """Builds each distinct dataset the runs' recipes name once, as Ray tasks, before any run starts:
    else every run of a task would build the same dataset at the same time (correct, as builds are
    atomic, but a build each). A build that fails is left to the runs, which fail with its error."""
    from rmdt.config import load_config

    wanted, seen = set(), set()
    for run in runs:
        settings = (run.config, tuple(o for o in run.overrides if not o.startswith("seed=")))
        if settings not in seen:
            seen.add(settings)
            data = load_config(run.config, list(run.overrides)).data
            if data.recipe is not None:
                wanted.add((data.recipe, json.dumps(data.recipe_args, sort_keys=True), data.root))
    for build in [_build_dataset.remote(recipe, json.loads(args), root) for recipe, args, root in sorted(wanted)]:
        with contextlib.suppress(ray.exceptions.RayError):
            ray.get(build)


def _trial_name(trial) -> str:
    return trial.config["run"]


def run_with_tune(runs: list[Run], runs_dir: Path, tune_dir: Path, cpus_per_run: float = 1, gpus_per_run: float = 0,
                  done: int = 0) -> None:
    """Trains and evaluates ``runs`` as Tune trials on the running Ray (``start_ray``); ``done``: runs of
    the sweep finished before, for the bar. A run that failed twice gets its error in its folder
    (``error_path``); one that finished has it removed."""
    check_fits(cpus_per_run, gpus_per_run)
    build_datasets(runs)
    threads = max(1, int(cpus_per_run))
    trainable = tune.with_resources(
        tune.with_parameters(tune_trainable, runs={run.name: run for run in runs}, runs_dir=str(runs_dir.resolve())),
        {"cpu": cpus_per_run, "gpu": gpus_per_run})
    tuner = tune.Tuner(
        trainable,
        param_space={"run": tune.grid_search([run.name for run in runs]), "threads": threads, "gpus": gpus_per_run},
        # reuse_actors: a worker process trains one run after another, so a run does not pay for a fresh
        # Python importing torch and rmdt (each run sets its seed, threads and Accelerate state itself)
        tune_config=tune.TuneConfig(trial_name_creator=_trial_name, trial_dirname_creator=_trial_name,
                                    reuse_actors=True),
        run_config=tune.RunConfig(storage_path=str(tune_dir.resolve()), name=time.strftime("%Y%m%d-%H%M%S"),
                                  verbose=0, failure_config=tune.FailureConfig(max_failures=1),
                                  callbacks=[ProgressBar(done + len(runs), done)]))
    # Tune's legacy reporter prints nothing at verbosity 0 (the newer one always prints its experiment
    # header and trial errors); the variable is read by fit() in this process
    with mock.patch.dict(os.environ, {"RAY_AIR_NEW_OUTPUT": "0"}):
        results = tuner.fit()
    for result in results:
        run_dir = runs_dir / Path(result.path).name  # the trial's folder is named after its run
        if result.error is not None:
            write_text(error_path(run_dir), str(result.error))
        else:
            error_path(run_dir).unlink(missing_ok=True)
