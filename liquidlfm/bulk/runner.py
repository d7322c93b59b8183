"""Running a bulk job on Ray: the driver plans shards, Ray Data streams the records through a pool of
actors, and the driver writes each shard as soon as all its records are back.

    driver: read + check records -> resolve the model once -> plan shards (skip finished ones)
            -> ray.data.from_items(pending records) .map_batches(Worker, ActorPoolStrategy(size=actors))
            -> iter_batches: collect results by shard -> write part-NNNNN.jsonl + manifest (atomically)

Only the driver writes the output, so the output folder needs to be reachable from the driver only
(not shared storage), and a result that arrives twice (a retried task) is dropped by record index:
every id is written exactly once. Actors are restarted by Ray when they die (max_restarts) and their
unfinished batch retried (max_task_retries); a job killed outright resumes from its finished shards.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

from .records import Record
from .store import MANIFEST, BulkError, OutputStore, _now, shard_name

__all__ = ["BulkResult", "init_ray", "run_job", "DEFAULT_SHARD_SIZE"]

DEFAULT_SHARD_SIZE = 1000
DEFAULT_MAX_RESTARTS = 4      # an actor that keeps dying (a record that crashes the process) ends the job
DEFAULT_MAX_TASK_RETRIES = 4  # rather than looping forever, Ray Data's own default


@dataclass
class BulkResult:
    """What a bulk job did. records/ok/errors/truncated: the whole output (this run and earlier ones);
    records_run, generated_tokens, seconds: this run only (throughput = records_run / seconds)."""
    out: Path
    status: str
    records: int
    ok: int
    errors: int
    truncated: int
    shards: int
    shards_resumed: int
    records_run: int
    generated_tokens: int
    seconds: float
    work_seconds: float = 0.0  # from the first batch's start to the last one's end (no Ray or model start-up)
    cpu_seconds: float = 0.0   # CPU time the actors spent on this run's batches (all their threads)
    manifest: Dict[str, Any] = field(repr=False, default_factory=dict)

    @property
    def records_per_s(self) -> float:
        return self.records_run / self.seconds if self.seconds > 0 else 0.0

    @property
    def tokens_per_s(self) -> float:
        return self.generated_tokens / self.seconds if self.seconds > 0 else 0.0

    @property
    def tokens_per_cpu_s(self) -> float:
        """Tokens per CPU-second (per core-second) of the actors: throughput per core, which a busy
        machine lowers less than the wall-clock figures."""
        return self.generated_tokens / self.cpu_seconds if self.cpu_seconds > 0 else 0.0

    @property
    def work_tokens_per_s(self) -> float:
        """Tokens per second while the actors were translating (start-up excluded)."""
        return self.generated_tokens / self.work_seconds if self.work_seconds > 0 else 0.0

    def summary(self) -> str:
        resumed = f", {self.shards_resumed} of {self.shards} shards already done" if self.shards_resumed else ""
        trunc = f", {self.truncated} cut at max_tokens" if self.truncated else ""
        work = (f"; while translating ({self.work_seconds:.1f} s, no start-up) {self.work_tokens_per_s:.1f} tokens/s"
                if self.work_seconds > 0 else "")
        return (f"{self.status}: {self.records} records in {self.out} ({self.ok} ok, {self.errors} errors{trunc})"
                f"{resumed}; this run {self.records_run} records in {self.seconds:.1f} s = "
                f"{self.records_per_s:.2f} records/s, {self.tokens_per_s:.1f} generated tokens/s{work}")

    __str__ = summary


# ---- Ray ----

def init_ray(address: Optional[str] = None, *, num_cpus: Optional[int] = None, **kwargs) -> bool:
    """Connect to Ray: the cluster at `address` ("auto", "ray://host:10001", "host:6379"), or, with
    address None, a local Ray on this machine (num_cpus: default all cores). Returns True if this
    call started or connected Ray (the caller shuts it down), False if Ray was already initialized.

    A local Ray's workers import the same liquidlfm as this process (also from a source checkout);
    on a cluster, liquidlfm must be installed on every node."""
    try:
        import ray
    except ImportError as e:
        raise BulkError(f"bulk jobs run on Ray, which is not installed ({e}): pip install 'liquidlfm[bulk]'") from None
    if ray.is_initialized():
        return False
    runtime_env = dict(kwargs.pop("runtime_env", None) or {})
    if address is None:
        import liquidlfm

        env_vars = dict(runtime_env.get("env_vars") or {})
        package_root = str(Path(liquidlfm.__file__).resolve().parents[1])
        pythonpath = os.environ.get("PYTHONPATH")
        env_vars.setdefault("PYTHONPATH", package_root + (os.pathsep + pythonpath if pythonpath else ""))
        runtime_env["env_vars"] = env_vars
        ray.init(num_cpus=num_cpus or os.cpu_count(), runtime_env=runtime_env, **kwargs)
    else:
        ray.init(address=address, runtime_env=runtime_env or None, **kwargs)
    return True


def _cluster_cpus() -> Tuple[float, float]:
    """(all CPUs of the cluster, the CPUs of its largest node)."""
    import ray

    per_node = [n.get("Resources", {}).get("CPU", 0.0) for n in ray.nodes() if n.get("Alive")]
    return float(sum(per_node)), float(max(per_node, default=0.0))


def _stream_results(items: List[dict], worker_class, ctor_kwargs: Dict[str, Any], *, actors: int,
                    cpus_per_actor: float, batch_size: int, max_restarts: int, max_task_retries: int,
                    progress: bool):
    """Yield result batches (dicts of columns) of items run through worker_class on a Ray actor pool."""
    import ray.data

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = bool(progress)
    # one block per batch (bounded): blocks are what the pool hands out, so small blocks keep every
    # actor busy and a retried task small
    n_blocks = max(1, min(math.ceil(len(items) / batch_size), 20000))
    ds = ray.data.from_items(items, override_num_blocks=n_blocks)
    remote = dict(max_restarts=max_restarts, max_task_retries=max_task_retries)
    with warnings.catch_warnings():
        # Ray Data takes an actor's restart and retry limits only as (deprecated) extra remote args;
        # its defaults are unlimited, which would retry a record that kills its worker forever
        warnings.filterwarnings("ignore", message=".*ray_remote_args.*deprecated")
        ds = ds.map_batches(worker_class, fn_constructor_kwargs=ctor_kwargs, batch_size=batch_size,
                            batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=actors),
                            num_cpus=cpus_per_actor, **remote)
    yield from ds.iter_batches(batch_size=None, batch_format="numpy")


# ---- the job ----

def _shards(records: List[Record], shard_size: int) -> List[List[int]]:
    return [list(range(s, min(s + shard_size, len(records)))) for s in range(0, len(records), shard_size)]


def _output_row(record: Record, result: Optional[dict], error: Optional[str]) -> dict:
    if error is not None:
        return {"id": record.id, "error": error}
    row = {"id": record.id}
    row.update(result or {})
    return row


def previous_shard_size(out) -> Optional[int]:
    """The shard size of the job in the folder out, if there is one."""
    try:
        m = json.loads((Path(out) / MANIFEST).read_text(encoding="utf-8"))
        size = m.get("shard_size") if isinstance(m, dict) else None
    except (OSError, ValueError):
        return None
    return size if isinstance(size, int) and size > 0 else None


def _positive(name: str, value, allow_none: bool = True):
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def run_job(*, task: str, records: List[Record], records_sha256: str, inputs: List[dict], out, model_info,
            options: Dict[str, Any], worker_class, worker_kwargs: Callable[[int], Dict[str, Any]],
            ray_address: Optional[str], actors: Optional[int], cpus_per_actor: Optional[float],
            batch_size: int, shard_size: Optional[int], overwrite: bool, progress: bool, run_info: Dict[str, Any],
            max_restarts: int = DEFAULT_MAX_RESTARTS, max_task_retries: int = DEFAULT_MAX_TASK_RETRIES,
            ray_init_args: Optional[Dict[str, Any]] = None, input_info: Optional[Dict[str, Any]] = None,
            default_shard_size: int = DEFAULT_SHARD_SIZE) -> BulkResult:
    """Run (or resume) one bulk job; see liquidlfm.bulk.translate for the arguments users give.
    worker_kwargs(n_threads) -> the worker's constructor arguments."""
    _positive("actors", actors)
    _positive("batch_size", batch_size, allow_none=False)
    _positive("shard_size", shard_size)
    if shard_size is None:  # a resumed job keeps its shards; a new one takes the task's default
        shard_size = previous_shard_size(out) or default_shard_size
    if cpus_per_actor is not None and not (isinstance(cpus_per_actor, (int, float)) and cpus_per_actor > 0):
        raise ValueError(f"cpus_per_actor must be a positive number, got {cpus_per_actor!r}")
    t_start = time.perf_counter()
    run_info = dict(run_info, started=_now())
    shards = _shards(records, shard_size)
    shard_ids = [[records[i].id for i in s] for s in shards]
    job = {"task": task, "model": model_info, "options": options, "inputs": inputs, "input": input_info or {},
           "records": len(records), "records_sha256": records_sha256, "shard_size": shard_size}
    with OutputStore(out) as store:
        done = set(store.start(job, shard_ids, overwrite=overwrite))
        resumed = len(done)
        pending_shards = [k for k in range(len(shards)) if k not in done]
        # per pending shard: the records still to run, and the rows known already (bad records)
        waiting: Dict[int, set] = {}
        rows: Dict[int, Dict[int, dict]] = {}
        tokens: Dict[int, int] = {}
        items: List[dict] = []
        for k in pending_shards:
            waiting[k], rows[k], tokens[k] = set(), {}, 0
            for i in shards[k]:
                r = records[i]
                if r.error is not None:
                    rows[k][i] = _output_row(r, None, r.error)
                else:
                    waiting[k].add(i)
                    items.append({"i": i, "text": r.text})
        total_records = len(records)
        records_run = 0
        gen_tokens = 0
        work = [math.inf, -math.inf]  # earliest batch start, latest batch end
        cpu_seconds = 0.0
        bar = _progress_bar(progress, total=total_records,
                            initial=sum(len(shards[k]) for k in done), desc=task)

        def flush(k: int) -> None:
            nonlocal records_run, gen_tokens
            ordered = [rows[k][i] for i in shards[k]]
            store.write_shard(k, ordered, first_record=shards[k][0], generated_tokens=tokens[k])
            records_run += len(ordered)
            gen_tokens += tokens[k]
            del waiting[k], rows[k], tokens[k]

        status, error = "done", None
        started_ray = False
        try:
            for k in list(pending_shards):
                if not waiting[k]:  # nothing to run (every record bad): written at once
                    if bar is not None:
                        bar.update(len(shards[k]))
                    flush(k)
            if items:
                n_actors, cpus, started_ray = _ray_plan(ray_address, actors, cpus_per_actor, ray_init_args)
                run_info = dict(run_info, actors=n_actors, cpus_per_actor=cpus)
                stream = _stream_results(items, worker_class, worker_kwargs(max(1, int(cpus))), actors=n_actors,
                                         cpus_per_actor=cpus, batch_size=batch_size, max_restarts=max_restarts,
                                         max_task_retries=max_task_retries, progress=progress)
                with contextlib.closing(stream):  # on an error or Ctrl-C: Ray Data stops the job's actors now
                    for batch in stream:
                        n_new = 0
                        if len(batch["i"]):
                            work[0] = min(work[0], float(batch["t0"].min()))
                            work[1] = max(work[1], float(batch["t1"].max()))
                        for i, res, err, ntok, cpu in zip(batch["i"].tolist(), batch["result"].tolist(),
                                                          batch["error"].tolist(), batch["tokens"].tolist(),
                                                          batch["cpu"].tolist()):
                            k = i // shard_size
                            if k not in waiting or i not in waiting[k]:
                                continue  # a result delivered again (a retried task): already have it
                            cpu_seconds += cpu
                            waiting[k].discard(i)
                            rows[k][i] = _output_row(records[i], json.loads(res) if not err else None, err or None)
                            tokens[k] += int(ntok)
                            n_new += 1
                            if not waiting[k]:
                                flush(k)
                        if bar is not None and n_new:
                            bar.update(n_new)
                            bar.set_postfix_str(_rate(gen_tokens + sum(tokens.values()), time.perf_counter() - t_start))
            if waiting:
                missing = sum(len(v) for v in waiting.values())
                raise BulkError(f"Ray returned no result for {missing} records (of shards "
                                f"{', '.join(str(k) for k in list(waiting)[:5])}); rerun to resume")
        except KeyboardInterrupt:
            status, error = "interrupted", "interrupted (Ctrl-C)"
            raise
        except BulkError as e:
            status, error = "failed", str(e)
            raise
        except BaseException as e:
            status, error = "failed", f"{type(e).__name__}: {e}"
            left = sum(1 for k in range(len(shards)) if shard_name(k) not in store.manifest["shards"])
            raise BulkError(f"the job failed ({error}); {len(shards) - left} of {len(shards)} shards are done and "
                            f"kept in {out}; rerun the same job to resume") from e
        finally:
            if bar is not None:
                bar.close()
            seconds = time.perf_counter() - t_start
            work_seconds = max(0.0, work[1] - work[0]) if work[1] > work[0] else 0.0
            run_info = dict(run_info, ended=_now(), status=status, records=records_run, generated_tokens=gen_tokens,
                            seconds=round(seconds, 3), work_seconds=round(work_seconds, 3),
                            cpu_seconds=round(cpu_seconds, 3),
                            records_per_s=round(records_run / seconds, 3) if seconds > 0 else None,
                            tokens_per_s=round(gen_tokens / seconds, 2) if seconds > 0 else None)
            store.manifest.setdefault("runs", []).append(run_info)
            store.finish(status, error)
            if started_ray:
                import ray

                ray.shutdown()
        c = store.counts
        return BulkResult(out=Path(out), status=status, records=c["records_done"], ok=c["ok"], errors=c["errors"],
                          truncated=c["truncated"], shards=len(shards), shards_resumed=resumed,
                          records_run=records_run, generated_tokens=gen_tokens, seconds=seconds,
                          work_seconds=work_seconds, cpu_seconds=cpu_seconds, manifest=json.loads(json.dumps(store.manifest)))


def _ray_plan(ray_address, actors, cpus_per_actor, ray_init_args) -> Tuple[int, float, bool]:
    """Start or join Ray; (actors, CPUs per actor, whether this call started Ray)."""
    started = init_ray(ray_address, **dict(ray_init_args or {}))
    try:
        total, largest = _cluster_cpus()
        if total < 1:
            raise BulkError("the Ray cluster has no CPUs")
        n = actors or 1
        cpus = float(cpus_per_actor) if cpus_per_actor else max(1.0, min(largest, math.floor(total / n)))
        if cpus > largest:
            raise BulkError(f"cpus_per_actor={cpus:g} but the largest Ray node has {largest:g} CPUs")
        if n * cpus > total:
            raise BulkError(f"{n} actors x {cpus:g} CPUs need {n * cpus:g} CPUs; the Ray cluster has {total:g}")
        return n, cpus, started
    except BaseException:
        if started:
            import ray

            ray.shutdown()
        raise


def _rate(tokens: int, seconds: float) -> str:
    return f"{tokens / seconds:.1f} tok/s" if seconds > 0 else ""


def _progress_bar(progress: bool, *, total: int, initial: int, desc: str):
    if not progress:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="rec", desc=desc, file=sys.stderr, dynamic_ncols=True,
                smoothing=0.1)
