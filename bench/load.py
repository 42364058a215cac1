"""Load test of the explorer (issues 6 and 12): N concurrent gradio_client users against a local server.

    python -m bench.load [--scenario mixed|classroom|own-seeds|certify-purify] [--users 8,30] [--requests 2]
                         [--deadline 600] [--threads N] [--sessions N] [--nice N]

The app (the shipped digits model, on CPU) runs in a subprocess on a free 127.0.0.1 port: loopback
only, stopped at the end whatever happens; its torch threads are --threads, by default the app's own
choice (one per usable CPU but one, serving.ui.machine). For each user count, that many threads each open their
own gradio_client.Client; released together, each makes --requests requests in turn, alternating
purify (K=4, b=5) and certify (K=2, b=5, n0=10, n=50), half of the users starting with each. A
request is timed from submission until its final output is in and the images of all its frames are fetched
(each user over one kept-alive connection, as a browser; gradio_client saves no files: saving them took
the users' process 16-23 s of CPU per 60 requests, most of a core of this machine, which a class's own
machines would spend, not the server's). While it waits its status is polled, so a
request that queued shows the position the server gave it (0 = next in line). The server's resident
memory is read from /proc before the first request, when half are answered, after the last, and
every 0.2 s for the peak. Bounded: a request still unanswered after --deadline seconds is cancelled
and counted as an error. Prints Markdown: one row per user count, then any error messages.

Scenarios (--scenario):
- mixed (issue 6, the default): the alternating purify/certify users above, a different seed each.
- classroom (issue 12): every user sends the Purify view's own defaults (the first sample, K=8, b=10,
  sigma 0.5, seed 0, no attack), as a class following the teacher does. Next to the latencies it reports
  the server time per request (the run's wall time over the requests answered, and the server process's
  CPU time over them), the CPU time the users themselves (this process) took on the same machine, and
  the engine's own time per request: the same purification (input loading, bare classification, purify
  with the labels of every reverse step, which the view's grid and scrub slider show) timed in this process with
  the server's thread count, after the run, while the server is idle; and the ratio of the two CPU times.
- own-seeds: as classroom, but each request has its own seed, so no two requests are the same and every
  one is computed: the server's cost per computed request.
- certify-purify (issue 12): a Purify at the defaults on the idle server (three seeds, the median), then
  one Certify at the Certify view's defaults (n0=10, n=100, K=4, b=10, with the comparison runs), and
  while it runs, Purify requests with other seeds: their latency against the idle one (goal: within 3x).
  Seeds differ from request to request, so no answer is shared between them.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from densepure_viz.serving.api import CertifyRequest, PurifyRequest, arguments

SAMPLE = Path(__file__).resolve().parent.parent / "assets" / "samples" / "digits" / "test_0008_label3.png"
POLL = 0.2  # seconds between status polls of a waiting request (its answer is seen at once)
SERVER_START = 180  # seconds allowed for the server subprocess to answer


def purify_request(image, seed: int, model: str = "digits") -> PurifyRequest:
    """/purify: K=4 seeds, fast sampler with b=5 steps, no attack."""
    return PurifyRequest(image, model, sigma=0.5, seeds=4, sampler="fast", steps=5, seed=seed)


def certify_request(image, seed: int, model: str = "digits") -> CertifyRequest:
    """/certify: K=2, b=5, n0=10 selection and n=50 estimation draws, DensePure only."""
    return CertifyRequest(image, model, sigma=0.5, seeds=2, sampler="fast", steps=5, seed=seed, n0=10, n=50,
                          alpha=0.001, compare=False)


ENDPOINTS = {"purify": purify_request, "certify": certify_request}


def default_image() -> Path:
    """The app's first view's input: the first shipped sample (session.list_samples)."""
    from densepure_viz.serving.ui.session import list_samples

    return list_samples()[0].path


def default_purify_request(image, seed: int = 0, model: str = "digits") -> PurifyRequest:
    """/purify with the Purify view's defaults."""
    return PurifyRequest(image, model, seed=seed)


def default_certify_request(image, seed: int = 0, model: str = "digits") -> CertifyRequest:
    """/certify with the Certify view's defaults (CERTIFY_PURIFIER, CLASSROOM, the comparison runs, no target)."""
    return CertifyRequest(image, model, seed=seed)


Plan = Callable[[int, int, Any, str], tuple[str, Any]]  # (user, request index, image, model) -> (endpoint, request)


def mixed_plan(user: int, i: int, image, model: str) -> tuple[str, Any]:
    """Issue 6's users: alternating endpoints, half of the users starting with each, a seed per request."""
    endpoint = list(ENDPOINTS)[(user + i) % 2]
    return endpoint, ENDPOINTS[endpoint](image, seed=user * 100 + i, model=model)


def classroom_plan(user: int, i: int, image, model: str) -> tuple[str, Any]:
    """Issue 12's class: every request is the Purify view's defaults."""
    return "purify", default_purify_request(image, model=model)


def own_seeds_plan(user: int, i: int, image, model: str) -> tuple[str, Any]:
    """A class where each request has its own seed: the Purify view's defaults otherwise, nothing to share."""
    return "purify", default_purify_request(image, seed=1 + user * 100 + i, model=model)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds process `pid` has used (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    """Resident memory of process `pid` in MiB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


@dataclass
class Request:
    """One answered (or failed) request."""

    endpoint: str  # "purify" or "certify"
    latency: float  # seconds from submission to the final output (or the failure)
    ok: bool  # answered with outputs
    error: str = ""  # the message when not ok
    position: int | None = None  # highest queue position reported while it waited (None: never queued)


@dataclass
class Run:
    """One load run: every request, the wall time and the server's memory."""

    users: int
    requests_per_user: int
    requests: list[Request] = field(default_factory=list)
    wall: float = 0.0  # seconds from release to the last answer
    rss_start: float = 0.0  # MiB, before the first request (model loaded, warmed up)
    rss_mid: float = 0.0  # MiB, when half of the requests were answered
    rss_end: float = 0.0  # MiB, after the last answer
    rss_peak: float = 0.0  # MiB, highest sample during the run
    load_start: float = 0.0  # the machine's 1-minute load average at the release
    load_end: float = 0.0  # ... after the last answer
    server_cpu: float = 0.0  # CPU seconds the server used from the release to the last answer
    client_cpu: float = 0.0  # CPU seconds this process (the users) used meanwhile

    @property
    def errors(self) -> int:
        return sum(not r.ok for r in self.requests)


def _where(exc: BaseException) -> str:
    """The innermost gradio_client function on the exception's traceback (where the failure surfaced)."""
    import traceback

    frames = [f for f in traceback.extract_tb(exc.__traceback__) if "gradio_client" in f.filename]
    for cause in (exc.__cause__, exc.__context__):
        if cause is not None:
            frames += [f for f in traceback.extract_tb(cause.__traceback__) if "gradio_client" in f.filename]
    return frames[-1].name if frames else "the load script"


def file_urls(value: Any) -> set[str]:
    """The URLs of the files (images) in an endpoint's frames, as gradio_client returns them without downloading."""
    if isinstance(value, dict):
        url = value.get("url")
        return ({url} if isinstance(url, str) and url.startswith("http") else set()).union(
            *(file_urls(v) for v in value.values()))
    if isinstance(value, (list, tuple)):
        return set().union(*(file_urls(v) for v in value))
    return set()


def fetch(files, url: str) -> None:
    """GET one file over the kept-alive connection; like a browser, retry once on a fresh connection when the server
    closed the idle one just as the request left (uvicorn's keep-alive timeout racing the next request)."""
    import httpx

    try:
        files.get(url).raise_for_status()
    except httpx.RemoteProtocolError:
        files.get(url).raise_for_status()


def _request(client, endpoint: str, request, deadline: float, files=None) -> Request:
    """Submit one request and wait for its final output, noting the highest queue position shown; then fetch the
    files of every frame with `files` (an httpx.Client), as a browser shows them."""
    from gradio_client.utils import Status

    begin = time.monotonic()
    position = None
    try:
        job = client.submit(**arguments(request), api_name=f"/{endpoint}")
        while True:
            try:
                job.result(timeout=POLL)  # returns the moment it is answered
                break
            except TimeoutError:  # not yet (concurrent.futures.TimeoutError)
                pass
            status = job.status()
            if status.code == Status.IN_QUEUE and status.rank is not None:
                position = max(position or 0, status.rank)
            if time.monotonic() > deadline:
                job.cancel()
                raise RuntimeError("not answered before the deadline")
        for url in sorted(file_urls(job.outputs())) if files is not None else ():
            fetch(files, url)
        return Request(endpoint, time.monotonic() - begin, True, position=position)
    except Exception as exc:  # noqa: BLE001 - every failure is a counted error
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return Request(endpoint, time.monotonic() - begin, False,
                       f"{type(exc).__name__} in {_where(exc)}: {message[:200]}", position)


def _user(url: str, user: int, count: int, image_path: Path, model: str, start: threading.Barrier,
          deadline: float, record, plan: Plan) -> None:
    """One user: its own client; `count` requests in turn, as `plan` says.

    The client does not save the outputs' files (gradio_client's download_files=False); the user fetches each
    frame's images over one kept-alive connection, as a browser on a student's own machine would: the server
    serves every file, and this machine is spared the writing (which took a core of the users' process)."""
    import httpx
    from gradio_client import Client, handle_file

    client, failure = None, ""
    files = httpx.Client(timeout=60)
    try:
        client = Client(url, verbose=False, download_files=False)
        image = handle_file(str(image_path))
    except Exception as exc:  # noqa: BLE001 - a user that cannot connect fails all its requests
        failure = f"{type(exc).__name__} while connecting: {str(exc)[:200]}"
    finally:
        start.wait()  # released with the others even when the client failed to connect
    if client is None:
        for i in range(count):
            record(Request(plan(user, i, None, model)[0], 0.0, False, failure))
        files.close()
        return
    try:
        for i in range(count):
            record(_request(client, *plan(user, i, image, model), deadline, files))
    finally:
        client.close()
        files.close()


def run_users(url: str, users: int, requests: int, pid: int, deadline_s: float = 600.0,
              image: Path = SAMPLE, model: str = "digits", plan: Plan = mixed_plan) -> Run:
    """`users` concurrent clients making `requests` requests each against the app at `url` (server pid `pid`)."""
    run = Run(users, requests)
    total = users * requests
    lock = threading.Lock()
    samples: list[float] = []
    stop = threading.Event()

    def record(request: Request) -> None:
        with lock:
            run.requests.append(request)
            if len(run.requests) == max(1, total // 2):
                run.rss_mid = rss_mib(pid)

    def sample() -> None:
        while not stop.wait(0.2):
            samples.append(rss_mib(pid))

    start = threading.Barrier(users + 1)
    deadline = time.monotonic() + deadline_s
    threads = [threading.Thread(target=_user, args=(url, u, requests, image, model, start, deadline, record, plan),
                                daemon=True)
               for u in range(users)]
    for t in threads:
        t.start()
    start.wait()  # every client connected: release them together
    run.rss_start = rss_mib(pid)
    run.load_start = os.getloadavg()[0]
    server_cpu, client_cpu = cpu_seconds(pid), cpu_seconds(os.getpid())
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    began = time.monotonic()
    for t in threads:
        t.join(timeout=max(0.0, deadline - time.monotonic()) + 30)
    run.wall = time.monotonic() - began
    stop.set()
    sampler.join()
    run.rss_end = rss_mib(pid)
    run.load_end = os.getloadavg()[0]
    run.server_cpu, run.client_cpu = cpu_seconds(pid) - server_cpu, cpu_seconds(os.getpid()) - client_cpu
    run.rss_peak = max(samples + [run.rss_start, run.rss_end, run.rss_mid])
    missing = total - len(run.requests)
    run.requests += [Request("?", run.wall, False, "no answer (client thread did not finish)")] * missing
    return run


def _pct(values: list[float], q: float) -> str:
    return f"{np.percentile(values, q):.2f}" if values else "-"


def table(runs: list[Run]) -> str:
    """Markdown: one row per run, then the distinct error messages."""
    head = ("| users x requests | answered | errors | wall s | throughput req/s | p50 s | p95 s | max s "
            "| purify p50 / p95 s | certify p50 / p95 s | queued (position shown) | max position "
            "| server RSS start / mid / end / peak MiB |")

    def row(r: Run, ok: list[float], queued: list[Request]) -> str:
        by = {e: [q.latency for q in r.requests if q.ok and q.endpoint == e] for e in ENDPOINTS}
        return (f"| {r.users} x {r.requests_per_user} | {len(ok)}/{len(r.requests)} | {r.errors} | {r.wall:.1f} "
                f"| {len(ok) / r.wall if r.wall else 0:.2f} | {_pct(ok, 50)} | {_pct(ok, 95)} | {max(ok, default=0):.2f} "
                f"| {_pct(by['purify'], 50)} / {_pct(by['purify'], 95)} | {_pct(by['certify'], 50)} / {_pct(by['certify'], 95)} "
                f"| {len(queued)} | {max((q.position for q in queued), default='-')} "
                f"| {r.rss_start:.0f} / {r.rss_mid:.0f} / {r.rss_end:.0f} / {r.rss_peak:.0f} |")

    return _markdown(head, runs, row)


def _markdown(head: str, runs: list[Run], row: Callable[[Run, list[float], list[Request]], str]) -> str:
    """A Markdown table: `head`, then row(run, answered latencies, requests shown a queue position) per run, then the
    distinct error messages of all runs."""
    rows = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in runs:
        rows.append(row(r, [q.latency for q in r.requests if q.ok], [q for q in r.requests if q.position is not None]))
    errors = sorted({q.error for r in runs for q in r.requests if not q.ok})
    return "\n".join(rows + (["", "Errors:"] + [f"- {e}" for e in errors] if errors else []))


def engine_seconds(image: Path, threads: int, repeats: int = 5, model: str = "digits") -> float:
    """Median seconds of the engine work behind one default Purify, timed in this process.

    The work the handler asks of the engine: load and convert the file, classify it, purify (K seeded
    reverse chains, their labels and the vote) with the classifier's labels of each reverse step's predicted x0
    (the view labels every step it keeps for the scrub slider: all of them up to 100). No grids, figures or
    Gradio. The first run warms up.
    """
    import torch

    from densepure_viz.models.registry import load_models
    from densepure_viz.engine.purify import PurifyConfig, purify_stream
    from densepure_viz.attacks.prepare import run_prepare

    torch.set_num_threads(threads)
    models = load_models(model, device="cpu")
    times, cfg = [], PurifyConfig()
    for _ in range(repeats + 1):
        begin = time.perf_counter()
        prep = run_prepare(models, str(image), None)
        for _ in purify_stream(models, prep.purifier_input, cfg, seed=0, label_steps=range(len(cfg.plan(models)[1]))):
            pass
        times.append(time.perf_counter() - begin)
    return float(np.median(times[1:]))


def classroom_table(runs: list[Run], engine: float) -> str:
    """Markdown: latencies, errors, and the server's time per request against the engine's own."""
    head = ("| users x requests | answered | errors | wall s | p50 s | p95 s | max s | queued (position shown) "
            "| max position | server s / request (wall) | server CPU s / request | engine s / request "
            "| server CPU / engine | server / engine (wall) | users' CPU s | load avg start / end |")

    def row(r: Run, ok: list[float], queued: list[Request]) -> str:
        per = r.wall / len(ok) if ok else float("nan")
        cpu = r.server_cpu / max(len(ok), 1)
        return (f"| {r.users} x {r.requests_per_user} | {len(ok)}/{len(r.requests)} | {r.errors} | {r.wall:.1f} "
                f"| {_pct(ok, 50)} | {_pct(ok, 95)} | {max(ok, default=0):.2f} | {len(queued)} "
                f"| {max((q.position for q in queued), default='-')} | {per:.3f} | {cpu:.3f} "
                f"| {engine:.3f} | {cpu / engine:.2f} | {per / engine:.2f} | {r.client_cpu:.1f} "
                f"| {r.load_start:.2f} / {r.load_end:.2f} |")

    return _markdown(head, runs, row)


@dataclass
class Contention:
    """Purify latencies on the idle server and while a Certify runs."""

    idle: list[Request]  # Purify at the defaults (other seeds), nothing else running
    busy: list[Request]  # the same while the Certify runs
    overlapped: list[bool]  # per busy request: the Certify was still running when it was answered
    certify: Request  # the Certify itself
    load: tuple[float, float]  # 1-minute load average at the start and the end

    def table(self) -> str:
        idle = float(np.median([r.latency for r in self.idle if r.ok] or [np.nan]))
        busy = [r.latency for r in self.busy if r.ok]
        errors = sum(not r.ok for r in self.idle + self.busy + [self.certify])
        head = ("| Purify idle s (median of 3) | Purify during Certify s | during / idle (max) | answered while "
                "the Certify ran | Certify s | errors | load avg start / end |")
        row = (f"| {idle:.2f} | {' / '.join(f'{b:.2f}' for b in busy)} | {max(busy, default=np.nan) / idle:.2f} "
               f"| {sum(self.overlapped)}/{len(self.busy)} | {self.certify.latency:.1f} | {errors} "
               f"| {self.load[0]:.2f} / {self.load[1]:.2f} |")
        messages = sorted({r.error for r in self.idle + self.busy + [self.certify] if not r.ok})
        return "\n".join([head, "|" + "---|" * (head.count("|") - 1), row] + ([""] + messages if messages else []))


def run_contention(url: str, image_path: Path, deadline_s: float, model: str = "digits", repeats: int = 3) -> Contention:
    """Purify on the idle server, then Purify while one Certify at the defaults runs (module docstring)."""
    from gradio_client import Client, handle_file
    from gradio_client.utils import Status

    deadline = time.monotonic() + deadline_s
    load_start = os.getloadavg()[0]
    student, teacher = Client(url, verbose=False), Client(url, verbose=False)
    image = handle_file(str(image_path))
    try:
        idle = [_request(student, "purify", default_purify_request(image, seed=1 + i, model=model), deadline)
                for i in range(repeats)]
        begin = time.monotonic()
        job = teacher.submit(**arguments(default_certify_request(image, model=model)), api_name="/certify")
        while not job.done() and job.status().code != Status.PROCESSING and time.monotonic() < deadline:
            time.sleep(POLL)
        time.sleep(1.0)  # well into the certification
        busy, overlapped = [], []
        for i in range(repeats):
            busy.append(_request(student, "purify", default_purify_request(image, seed=11 + i, model=model), deadline))
            overlapped.append(not job.done())
        try:
            job.result(timeout=max(1.0, deadline - time.monotonic()))
            certify = Request("certify", time.monotonic() - begin, True)
        except Exception as exc:  # noqa: BLE001 - counted as an error
            certify = Request("certify", time.monotonic() - begin, False, f"{type(exc).__name__}: {str(exc)[:200]}")
    finally:
        student.close()
        teacher.close()
    return Contention(idle, busy, overlapped, certify, (load_start, os.getloadavg()[0]))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(port: int, threads: int | None, sessions: int | None = None) -> None:
    """The app with the shipped digits model on 127.0.0.1:port, CPU, `threads` torch threads (None: the app's) (blocks).

    sessions: Gradio's session capacity, if not the app's own (launch_options).
    """
    from densepure_viz.serving.ui import build_app
    from densepure_viz.serving.ui.app import launch_options
    from densepure_viz.serving.ui.machine import size_torch_threads

    size_torch_threads(threads)
    options = launch_options() | ({"state_session_capacity": sessions} if sessions else {})
    build_app(names=("digits",), device="cpu").launch(server_name="127.0.0.1", server_port=port, quiet=True, **options)


def _wait_for(url: str, proc: subprocess.Popen, timeout: float) -> None:
    import httpx

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with status {proc.returncode}")
        try:
            if httpx.get(url + "config", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"the server did not answer within {timeout:.0f} s")


def warm_up(url: str) -> None:
    """One request of each kind, so the model is loaded before memory is measured."""
    from gradio_client import Client, handle_file

    client = Client(url, verbose=False)
    try:
        for endpoint, request in ENDPOINTS.items():
            client.predict(**arguments(request(handle_file(str(SAMPLE)), seed=0)), api_name=f"/{endpoint}")
    finally:
        client.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", choices=("mixed", "classroom", "own-seeds", "certify-purify"), default="mixed",
                        help="mixed: alternating purify/certify; classroom: everyone sends the Purify defaults; "
                             "own-seeds: the same with a seed per request; "
                             "certify-purify: Purify latency while a Certify runs")
    parser.add_argument("--users", default="8,30", help="comma-separated concurrent user counts")
    parser.add_argument("--requests", type=int, default=2, help="requests per user")
    parser.add_argument("--deadline", type=float, default=600, help="seconds allowed per user count")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads in the server (default: the app's, one per CPU it may use but one)")
    parser.add_argument("--sessions", type=int, default=None,
                        help="sessions the server keeps in memory (default: the app's SESSION_CAPACITY)")
    parser.add_argument("--nice", type=int, default=0,
                        help="lower the users' own CPU priority by this much once the server has started "
                             "(the server keeps its own): users and server share this machine's cores")
    parser.add_argument("--serve", type=int, default=None, help=argparse.SUPPRESS)  # internal: run the server
    args = parser.parse_args(argv)
    if args.serve is not None:
        serve(args.serve, args.threads, args.sessions)
        return 0
    if args.threads is None:
        from densepure_viz.serving.ui.machine import compute_threads

        args.threads = compute_threads()  # what the app's main sets (machine.size_torch_threads)
    users = [int(u) for u in args.users.split(",")]
    if max(users) * args.requests > 2000 or args.deadline > 3600:
        parser.error("keep the load bounded: at most 2000 requests and an hour per run")
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    # Gradio's own cache folder: other Gradio servers on this machine share /tmp/gradio and delete their files
    # (named by content, so also ours) when they stop, which a download in flight then misses (403).
    cache = tempfile.mkdtemp(prefix="bench-load-gradio-")
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "GRADIO_ANALYTICS_ENABLED": "False",
           "GRADIO_TEMP_DIR": cache}
    command = [sys.executable, "-m", "bench.load", "--serve", str(port), "--threads", str(args.threads)]
    command += ["--sessions", str(args.sessions)] if args.sessions else []
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if args.nice:
        os.nice(args.nice)  # the users yield the CPU to the server, as browsers on other machines would
    image = SAMPLE if args.scenario == "mixed" else default_image()
    try:
        _wait_for(url, proc, SERVER_START)
        warm_up(url)
        if args.scenario == "certify-purify":
            contention = run_contention(url, image, args.deadline)
        else:
            plan = {"classroom": classroom_plan, "own-seeds": own_seeds_plan}.get(args.scenario, mixed_plan)
            runs = [run_users(url, u, args.requests, proc.pid, args.deadline, image, plan=plan) for u in users]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(cache, ignore_errors=True)
    print(f"Load test, {datetime.date.today()}: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, "
          f"server on CPU with {args.threads} torch thread(s), shipped digits model; loopback only.\n")
    sessions = f" --sessions {args.sessions}" if args.sessions else ""
    nice = f" --nice {args.nice}" if args.nice else ""
    print(f"Command: `python -m bench.load --scenario {args.scenario} --users {args.users} --requests {args.requests} "
          f"--threads {args.threads}{sessions}{nice}`\n")
    if args.scenario == "certify-purify":
        print(contention.table())
        return 0 if all(r.ok for r in contention.idle + contention.busy + [contention.certify]) else 1
    if args.scenario in ("classroom", "own-seeds"):
        print(classroom_table(runs, engine_seconds(image, args.threads)))
    else:
        print(table(runs))
    return 0 if all(r.errors == 0 for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
