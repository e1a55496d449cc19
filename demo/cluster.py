"""The demo's Deployment: replicas that are real processes, a stand-in server and a worker each.

A replica is started as the pod layout of docs/worker.md starts one: the stand-in (vLLM's part)
first, with its warm-up delay; the worker only once the stand-in answers ``/health`` 200 (the
native sidecar's startupProbe). It counts as ready when the worker says it consumes (Celery's
``ready.`` line). It is stopped as the kubelet stops a pod: SIGTERM to the worker, which stops
taking tasks, finishes those it holds and exits (Celery's warm shutdown), then SIGTERM to the
stand-in. Scale-down removes the youngest replicas first, so those still starting go before the
ones serving (the ReplicaSet controller's order: not ready before ready, then newest first).

Times here are wall seconds on the event loop's clock, read by the caller and passed in; the
processes themselves are the real ``python -m worker.standin`` and ``depthscale worker``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from demo.local_redis import free_port

HEALTH_EVERY_S = 0.05
"""Wall seconds between two ``/health`` probes or two looks at the worker's log while starting."""
STOP_DEADLINE_S = 60.0
"""Wall seconds a worker gets to drain after SIGTERM before it is killed (tasks are then
redelivered, never lost: the worker acks late)."""


@dataclass(frozen=True, slots=True)
class ReplicaSpec:
    """How every replica of one model is started.

    model:        the model name the stand-in serves and the worker's queue.
    slots:        stand-in batch slots (``--max-num-seqs``) and worker ``--concurrency``, >= 1.
    warmup_s:     stand-in warm-up, trace seconds (the stand-in multiplies it by ``time_scale``).
    time_scale:   the stand-in's multiplier on every latency, 1 / the demo's time compression.
    prefill_s:    stand-in seconds per prompt token before ``time_scale``.
    decode_s:     stand-in seconds per output token before ``time_scale``.
    broker_url:   the Celery broker; result_backend: where results go (a Redis database).
    """

    model: str
    slots: int
    warmup_s: float
    time_scale: float
    prefill_s: float
    decode_s: float
    broker_url: str
    result_backend: str


@dataclass
class Replica:
    """One replica's processes and its life: asked for at ``asked_s``, its stand-in at ``url``,
    its worker consuming from ``ready_s`` (None while starting), ``worker_start_s``: wall seconds from the stand-in's
    health to the worker's ready line (the process start the simulator does not model)."""

    index: int
    asked_s: float
    url: str = ""
    ready_s: float | None = None
    worker_start_s: float | None = None
    standin: asyncio.subprocess.Process | None = None
    worker: asyncio.subprocess.Process | None = None
    log_path: Path | None = None
    starting: asyncio.Task[None] | None = None
    error: str | None = None


@dataclass
class Deployment:
    """One model's replicas (``history``: every one started). ``scale_to`` starts or stops
    processes in the background; the count it sets is the Deployment's ``spec.replicas`` at
    once, as Kubernetes' is."""

    spec: ReplicaSpec
    workdir: Path
    replicas: list[Replica] = field(default_factory=list)
    history: list[Replica] = field(default_factory=list)
    stopping: set[asyncio.Task[None]] = field(default_factory=set)
    started: int = 0
    worker_starts_s: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def desired(self) -> int:
        return len(self.replicas)

    def ready(self) -> int:
        return sum(1 for r in self.replicas if r.ready_s is not None)

    def scale_to(self, count: int, now_s: float) -> None:
        """Set the replica count (>= 0): new replicas start now; removals take the youngest."""
        if count < 0:
            raise ValueError(f"replicas must be >= 0, got {count}")
        while len(self.replicas) < count:
            replica = Replica(self.started, now_s)
            self.started += 1
            replica.starting = asyncio.create_task(self._start(replica))
            self.replicas.append(replica)
            self.history.append(replica)
        while len(self.replicas) > count:
            replica = self.replicas.pop()
            task = asyncio.create_task(self._stop(replica))
            self.stopping.add(task)
            task.add_done_callback(self.stopping.discard)

    async def close(self) -> None:
        """Stop every replica (workers drain first) and wait until all have exited."""
        self.scale_to(0, 0.0)
        while self.stopping or any(r.starting and not r.starting.done() for r in self.history):
            await asyncio.gather(
                *[r.starting for r in self.history if r.starting], return_exceptions=True
            )
            await asyncio.gather(*list(self.stopping), return_exceptions=True)

    async def _start(self, replica: Replica) -> None:
        spec = self.spec
        loop = asyncio.get_running_loop()
        port = free_port()
        try:
            replica.standin = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "worker.standin", "--port", str(port),
                "--model", spec.model, "--max-num-seqs", str(spec.slots),
                "--warmup-seconds", repr(spec.warmup_s),
                "--time-scale", repr(spec.time_scale),
                "--prefill-seconds-per-token", repr(spec.prefill_s),
                "--decode-seconds-per-token", repr(spec.decode_s),
                "--max-model-len", str(2**30),
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
            )  # fmt: skip
            url = replica.url = f"http://127.0.0.1:{port}"
            while not await asyncio.to_thread(_healthy, url):
                if replica.standin.returncode is not None:
                    raise RuntimeError(f"stand-in exited with {replica.standin.returncode}")
                await asyncio.sleep(HEALTH_EVERY_S)
            healthy_at = loop.time()
            replica.log_path = self.workdir / f"{spec.model}-{replica.index}.log"
            env = {
                **os.environ,
                "DEPTHSCALE_BROKER_URL": spec.broker_url,
                "DEPTHSCALE_RESULT_BACKEND": spec.result_backend,
            }
            with replica.log_path.open("wb") as log:
                replica.worker = await asyncio.create_subprocess_exec(
                    sys.executable, "-c", "from scaler.cli import main; main()", "worker",
                    "--model", spec.model, "--concurrency", str(spec.slots),
                    "--vllm-url", url, "--hostname", f"{spec.model}-{replica.index}@%h",
                    stdout=log, stderr=asyncio.subprocess.STDOUT, env=env,
                )  # fmt: skip
            while " ready." not in replica.log_path.read_text(errors="replace"):
                if replica.worker.returncode is not None:
                    raise RuntimeError(f"worker exited with {replica.worker.returncode}")
                await asyncio.sleep(HEALTH_EVERY_S)
            replica.ready_s = loop.time()
            replica.worker_start_s = replica.ready_s - healthy_at
            self.worker_starts_s.append(replica.worker_start_s)
        except RuntimeError as exc:
            replica.error = f"{spec.model} replica {replica.index}: {exc}"
            self.errors.append(replica.error)

    async def _stop(self, replica: Replica) -> None:
        if replica.starting is not None and not replica.starting.done():
            replica.starting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await replica.starting
        if replica.worker is not None:
            await _terminate(replica.worker, STOP_DEADLINE_S)
        if replica.standin is not None:
            await _terminate(replica.standin, 10.0)


async def _terminate(process: asyncio.subprocess.Process, deadline_s: float) -> None:
    """SIGTERM, then wait for the exit; SIGKILL past ``deadline_s`` wall seconds."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), deadline_s)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/health", timeout=1.0) as response:
            return int(response.status) == 200
    except (urllib.error.URLError, OSError):
        return False


def workdir() -> tempfile.TemporaryDirectory[str]:
    """A temporary directory for the workers' logs, removed when the demo ends."""
    return tempfile.TemporaryDirectory(prefix="depthscale-demo-")
