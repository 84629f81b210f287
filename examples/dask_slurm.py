"""A Dask cluster on Slurm for `polytune run --scheduler-file scheduler.json` (dask-jobqueue).

Run it on the login node, from a directory on the shared filesystem (the workers must see the
group directory at the same path), and leave it running while polytune runs:

    pip install 'polytune[dask]' dask-jobqueue
    python examples/dask_slurm.py --jobs 4 --cores 4 --memory 16GB --walltime 04:00:00 &
    polytune run group.yaml --scheduler-file scheduler.json --concurrency 16

Each Slurm job is one Dask worker with ``--cores`` threads: one thread = one experiment at a
time. For GPUs, ask for one GPU per job (``--gpu``) and give the worker one thread, so each
experiment gets the job's GPU alone. Ctrl-C (or the end of the walltime) releases the jobs; a
worker job that ends mid-experiment makes that experiment ``lost`` and polytune reruns it.
"""

from __future__ import annotations

import argparse
import json
import signal
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=2, help="Slurm jobs (= Dask workers)")
    ap.add_argument("--cores", type=int, default=4, help="threads per worker")
    ap.add_argument("--memory", default="16GB")
    ap.add_argument("--walltime", default="04:00:00")
    ap.add_argument("--queue", default=None, help="Slurm partition")
    ap.add_argument("--account", default=None)
    ap.add_argument("--gpu", action="store_true", help="one GPU per job (--gres=gpu:1)")
    ap.add_argument("--scheduler-file", default="scheduler.json")
    args = ap.parse_args()

    from dask_jobqueue import SLURMCluster

    cluster = SLURMCluster(
        cores=args.cores,
        processes=1,
        memory=args.memory,
        walltime=args.walltime,
        queue=args.queue,
        account=args.account,
        job_extra_directives=["--gres=gpu:1"] if args.gpu else [],
        # Give experiments time to stop cleanly when a job reaches its walltime.
        worker_extra_args=["--lifetime", "-5m", "--lifetime-stagger", "1m"],
        scheduler_options={"dashboard_address": ":8787"},
    )
    cluster.scale(jobs=args.jobs)
    # What `Client(scheduler_file=...)` reads (the format `dask scheduler --scheduler-file` writes).
    with open(args.scheduler_file, "w", encoding="utf-8") as f:
        json.dump({"type": "Scheduler", "address": cluster.scheduler_address}, f)
    print(f"scheduler {cluster.scheduler_address}; wrote {args.scheduler_file}")
    print(cluster.job_script())
    stop = False

    def on_signal(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    while not stop:
        time.sleep(1)
    cluster.close()


if __name__ == "__main__":
    main()
