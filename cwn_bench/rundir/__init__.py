"""The run directory's format, in one place: file names, readers and writers.

Torch-free and on the ground floor (it imports only :mod:`cwn_bench.config`, ``errors``
and ``atomic``), so that train, launch (submit, status) and report all read and write the
same files the same way and bad content is handled once: every problem is one line
naming the file (and the line).

::

    <runs_root>/<name>-<sweep hash 8>/      a sweep dir
        sweep.json                          :mod:`.sweepjson`
        code/<n>/, jobs/                    code snapshots, submitit's files (SWEEP_SKIP)
        <run name>/                         a run dir (a plain file name, see config.check_name)
            run.json                        :mod:`.runjson`
            metrics.jsonl                   :mod:`.metrics`
            .lock                           :mod:`.lock`
            checkpoints/ckpt-<step>.pt      written by cwn_bench.train.checkpoint (torch)

Modules: :mod:`.files` (tolerant JSON / JSON-lines readers, :class:`~.files.Problem`),
:mod:`.runjson`, :mod:`.metrics`, :mod:`.sweepjson`, :mod:`.lock`.
"""

RUN_JSON = "run.json"
METRICS = "metrics.jsonl"
SWEEP_JSON = "sweep.json"
LOCK = ".lock"
CHECKPOINTS = "checkpoints"
RUN_FILES = (RUN_JSON, METRICS)  # either one makes a folder a run dir
SWEEP_SKIP = ("code", "jobs")  # a sweep dir's code snapshots and submitit logs: no runs in there
