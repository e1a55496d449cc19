"""One `depthscale worker` at full concurrency: memory, CPU per task and tasks per second.

A private redis-server (broker and result backend, or result backend only with --broker
rabbitmq, on a vhost made for the run on 127.0.0.1:5672), the stand-in replica with --slots batch
slots of one second each (--tokens × 0.05 s), one worker with --concurrency threads, and the
client helper submitting --tasks chat requests, then waiting for each answer.

Printed: the worker's resident memory idle and at its peak, its threads, CPU seconds per task
(from /proc), tasks per second from the first submit to the last answer against the slots'
ceiling (slots / seconds per request), and the most requests the replica held at once.

    python benchmarks/worker_throughput.py [--broker redis|rabbitmq] [--tasks 2000]
        [--concurrency 256] [--slots 256] [--tokens 20]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from worker.client import Client  # noqa: E402

DECODE_SECONDS_PER_TOKEN = 0.05


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, deadline_s: float = 20) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on port {port} after {deadline_s:g} s")


def proc_status(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def max_held(records: list[dict[str, float]]) -> int:
    events = sorted([(r["start_s"], 1) for r in records] + [(r["end_s"], -1) for r in records])
    held = most = 0
    for _, step in events:
        held += step
        most = max(most, held)
    return most


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--broker", choices=["redis", "rabbitmq"], default="redis")
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--slots", type=int, default=256)
    parser.add_argument("--tokens", type=int, default=20)
    args = parser.parse_args()

    redis_server = shutil.which("redis-server", path="/usr/sbin:/usr/bin") or "redis-server"
    redis_port, standin_port = free_port(), free_port()
    started: list[subprocess.Popen[bytes]] = []
    vhost = None
    try:
        started.append(subprocess.Popen(
            [redis_server, "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"], stdout=subprocess.DEVNULL,
        ))  # fmt: skip
        started.append(subprocess.Popen(
            [sys.executable, "-m", "worker.standin", "--port", str(standin_port), "--model", "m1",
             "--max-num-seqs", str(args.slots),
             "--decode-seconds-per-token", str(DECODE_SECONDS_PER_TOKEN)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT,
        ))  # fmt: skip
        wait_for_port(redis_port)
        wait_for_port(standin_port)
        backend = f"redis://127.0.0.1:{redis_port}/1"
        if args.broker == "redis":
            broker = f"redis://127.0.0.1:{redis_port}/0"
        else:
            vhost = f"depthscale-bench-{uuid.uuid4().hex[:8]}"
            for command in (["add_vhost", vhost],
                            ["set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"]):  # fmt: skip
                subprocess.run(["rabbitmqctl", *command], check=True, capture_output=True)
            broker = f"amqp://guest:guest@127.0.0.1:5672/{vhost}"

        env = {**os.environ, "DEPTHSCALE_BROKER_URL": broker, "DEPTHSCALE_RESULT_BACKEND": backend}
        worker = subprocess.Popen(
            [sys.executable, "-c", "from scaler.cli import main; main()", "worker",
             "--model", "m1", "--concurrency", str(args.concurrency),
             "--vllm-url", f"http://127.0.0.1:{standin_port}", "--loglevel", "WARNING"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=ROOT,
        )  # fmt: skip
        started.append(worker)
        client = Client(broker, backend)
        # One answered request: the worker is up and its first thread's client exists.
        client.wait(client.submit("m1", {"prompt": "warm up", "max_tokens": 1},
                                  endpoint="completions"), timeout_s=60)  # fmt: skip
        idle_rss = proc_status(worker.pid, "VmRSS") // 1024
        cpu_before = cpu_seconds(worker.pid)

        body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": args.tokens}
        start = time.monotonic()
        task_ids = [client.submit("m1", body) for _ in range(args.tasks)]
        submitted = time.monotonic() - start
        peak_rss = idle_rss
        for index, task_id in enumerate(task_ids):
            if index % 100 == 0:
                peak_rss = max(peak_rss, proc_status(worker.pid, "VmRSS") // 1024)
            client.wait(task_id, timeout_s=300)
        elapsed = time.monotonic() - start
        cpu = cpu_seconds(worker.pid) - cpu_before
        url = f"http://127.0.0.1:{standin_port}/standin/log"
        with urllib.request.urlopen(url, timeout=10) as response:
            records = [r for r in json.load(response) if r["status"] == 200]
        seconds_per_request = args.tokens * DECODE_SECONDS_PER_TOKEN
        print(f"broker {args.broker}, {args.tasks} tasks, concurrency {args.concurrency}, "
              f"{args.slots} slots of {seconds_per_request:g} s; load {os.getloadavg()[0]:.1f}")  # fmt: skip
        print(f"submitted in {submitted:.1f} s; all answered in {elapsed:.1f} s: "
              f"{args.tasks / elapsed:.0f} tasks/s (ceiling {args.slots / seconds_per_request:.0f})")  # fmt: skip
        print(f"worker: {cpu / args.tasks * 1000:.1f} ms CPU per task, RSS {idle_rss} MiB idle, "
              f"{peak_rss} MiB peak, {proc_status(worker.pid, 'Threads')} threads")  # fmt: skip
        print(f"replica: {len(records) - 1} requests served, at most {max_held(records)} at once")
        client.close()
    finally:
        for process in reversed(started):
            process.kill()
            process.wait()
        if vhost is not None:
            subprocess.run(["rabbitmqctl", "delete_vhost", vhost], capture_output=True)


if __name__ == "__main__":
    main()
