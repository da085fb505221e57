"""The fields of a captured environment (``run.json["env"]``, a bench file's env line)
that a reader needs to reproduce a result; every one is optional."""

from __future__ import annotations

from typing import Any


def _get(env: dict[str, Any], dotted: str) -> Any:
    value: Any = env
    for part in dotted.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def device_name(env: dict[str, Any]) -> str:
    """A bench header's ``card`` (the CPU model for ``cpu``); else the first GPU's name
    (``"NVIDIA H100 80GB HBM3"``), else the CPU model, else ""."""
    card = env.get("card")
    if card == "cpu":
        return str(env.get("cpu") or card)
    if card:
        return str(card)
    gpu = env.get("gpu")  # run.json: {"names": [...]}; bench files written before "card": the name
    names = gpu.get("names") if isinstance(gpu, dict) else gpu
    if isinstance(names, list) and names:
        return str(names[0])
    if isinstance(names, str) and names:
        return names
    return str(env.get("cpu") or "")


def _text(value: Any) -> str:
    if value is None:
        return ""
    return ",".join(map(str, value)) if isinstance(value, list) else str(value)


def short_commit(commit: Any, dirty: Any) -> str:
    """A git commit cut to 12 characters, ``+dirty`` when its tree had uncommitted
    changes; "" when there is none."""
    text = _text(commit)[:12]
    return text + "+dirty" if text and dirty else text


def env_summary(env: dict[str, Any], attempts: list[Any]) -> dict[str, str]:
    """Versions, card, hosts, git commit and SLURM ids of run.json's ``env`` (nested
    ``git`` and ``gpu`` as :func:`cwn_bench.sysinfo.environment` writes them) as short
    strings ("" if absent).
    ``attempts`` is run.json's list of starts (one per requeue or resume), each with its
    own ``slurm`` ids; restarts = starts - 1 (else SLURM_RESTART_COUNT)."""
    starts = [a for a in attempts if isinstance(a, dict)]
    jobs = [_text(_get(a, "slurm.SLURM_JOB_ID")) for a in starts] or [_text(_get(env, "slurm.SLURM_JOB_ID"))]
    array = _text(_get(env, "slurm.SLURM_ARRAY_JOB_ID"))
    task = _text(_get(env, "slurm.SLURM_ARRAY_TASK_ID"))
    return {
        "git_commit": short_commit(_get(env, "git.commit"), _get(env, "git.dirty")),
        "hostnames": _text(env.get("hostnames")),
        "slurm_job_id": ",".join(dict.fromkeys(j for j in jobs if j)),
        "slurm_array": f"{array}_{task}" if array and task else array,
        "restarts": str(len(starts) - 1) if starts else _text(_get(env, "slurm.SLURM_RESTART_COUNT")),
        "device": device_name(env),
        "gpu_driver": _text(_get(env, "gpu.driver")),
        "torch": _text(env.get("torch")),
        "cuda": _text(env.get("cuda")),
        "cudnn": _text(env.get("cudnn")),
        "dali": _text(env.get("dali")),
        "python": _text(env.get("python")),
    }
