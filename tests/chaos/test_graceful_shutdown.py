"""SIGTERM to a worker (a deploy, `docker stop`) in the middle of a job: the worker
journals the model call it has in flight, hands the job back — lease released, next
slice published — and exits at once; another worker finishes the job without paying for
any call twice. With a ``drain_seconds`` shorter than the call, the call is given up
(counted as lost) rather than holding the shutdown."""

from __future__ import annotations

import multiprocessing
import signal
import time
from pathlib import Path

import pytest

from ponder.config import Settings
from ponder.llm.base import SampleRequest, SampleResult
from ponder.llm.profiles import ModelProfile
from ponder.localproc import wait_http_ok
from ponder.sim.model import SimProvider
from tests.chaos.helpers import Probe, api_client, best_of_n_body, submit, wait_job, wait_until
from tests.jobs_helpers import CountingProvider, create_job, load_job, run_until_done
from tests.stack import Stack, running_stack
from worker.runner import WorkerServices, run_slice
from worker.shutdown import ShutdownFlag

pytestmark = pytest.mark.chaos

LATENCY_MS = 2000  # per model call, while the first worker runs the job
N = 12  # calls: ~24 s of work, far more than the shutdown may take


def restart_sim_without_latency(stack: Stack) -> None:
    """Let the rest of the job run fast (the simulated model's answers do not depend on
    its latency)."""
    port = stack.sim_url.rsplit(":", 1)[1]
    stack.kill9("sim")
    stack.start("sim", "sim", "serve", "--port", port)
    wait_http_ok(f"{stack.sim_url}/healthz", [stack.procs["sim"]])


@pytest.mark.parametrize(
    ("drain_seconds", "lost"),
    [(30.0, 0), (0.3, 1)],
    ids=["call-in-flight-is-journaled", "drain-timeout-gives-up-the-call"],
)
def test_sigterm_hands_the_job_back_at_once(
    drain_seconds: float, lost: int, pg_url: str, queue_name: str, tmp_path: Path
) -> None:
    # No beat: the hand-off must publish the job's next slice itself.
    with running_stack(
        pg_url,
        queue_name,
        tmp_path,
        sim_args=("--latency-ms", str(LATENCY_MS)),
        workers=0,
    ) as stack:
        first = stack.start(
            "worker",
            "worker",
            "--concurrency",
            "1",
            env={"PONDER_DRAIN_SECONDS": str(drain_seconds)},
        )
        probe = Probe(pg_url)
        with api_client(stack, stack.new_key("chaos")) as client:
            job_id = submit(client, best_of_n_body(n=N, max_calls=N + 2))
            wait_until(
                lambda: (
                    probe.samples(job_id, "done") >= 1 and probe.samples(job_id, "pending") == 1
                ),
                "a model call in flight after one journaled call",
                stack,
            )
            journaled_before = probe.samples(job_id, "done")
            sent = time.monotonic()
            first.send_signal(signal.SIGTERM)  # to the main worker process only, as docker does
            first.wait(timeout=60)
            took = time.monotonic() - sent

            # At once: the call in flight (up to 2 s) ends, and the worker goes; it waits
            # neither for the lease to expire, nor for the 60 s slice to end, nor for the
            # whole 30 s drain. 20 s tells those apart with room for a loaded machine.
            row = probe.job(job_id)
            assert first.returncode == 0, stack.logs()
            assert took < 20, f"the worker took {took:.1f} s to stop\n{stack.logs()}"
            assert row.status == "running"
            assert row.lease_owner is None and row.lease_expires_at is None
            assert probe.samples(job_id, "pending") == 0
            assert row.lost_calls == lost
            # the call in flight at the SIGTERM was journaled (or given up and counted)
            assert probe.samples(job_id, "done") == journaled_before + 1 - lost

            restart_sim_without_latency(stack)
            stack.start("worker2", "worker", "--concurrency", "1")
            job = wait_job(client, job_id, stack)
        row = probe.job(job_id)
        kinds = probe.event_kinds(job_id)
        done = probe.samples(job_id, "done")
        probe.close()

    assert job["status"] == "completed", job
    assert done == N
    assert row.recoveries == 0  # a hand-off, not a recovery from a lost worker
    assert row.lost_calls == lost
    assert row.usage_calls == done + row.lost_calls  # no journaled call was paid twice
    assert kinds[0] == "started" and "resumed" in kinds and kinds[-1] == "completed"


# ---- the same, in one process (no Celery): what the slice does once the flag is up


def _wait_for_flag(flag: ShutdownFlag) -> None:
    deadline = time.monotonic() + 10
    while not flag.is_set():
        if time.monotonic() > deadline:
            raise SystemExit(1)
        time.sleep(0.01)


def test_the_flag_set_in_the_parent_is_seen_by_a_child_forked_before() -> None:
    flag = ShutdownFlag()
    child = multiprocessing.get_context("fork").Process(target=_wait_for_flag, args=(flag,))
    child.start()
    flag.set()
    child.join(timeout=20)
    assert child.exitcode == 0


def test_a_stopping_worker_does_not_claim_the_job(sqlite_settings: Settings) -> None:
    job_id = create_job(sqlite_settings)
    svc = WorkerServices(sqlite_settings)
    outcome = run_slice(svc, job_id, "w", stopping=lambda: True)
    svc.close()
    assert outcome.kind == "handoff" and outcome.requeue  # published again, for another
    job = load_job(sqlite_settings, job_id)
    assert job.status == "queued" and job.attempt == 0 and job.lease_owner is None


def test_a_stop_mid_slice_journals_the_call_in_flight_and_hands_off(
    sqlite_settings: Settings,
) -> None:
    flag = ShutdownFlag()
    providers: list[CountingProvider] = []

    class StopDuringSecondCall(CountingProvider):
        async def sample(self, request: SampleRequest) -> SampleResult:
            if self.calls == 1:
                flag.set()  # SIGTERM arrives while this call is in flight
            return await super().sample(request)

    def factory(profile: ModelProfile) -> CountingProvider:
        providers.append(StopDuringSecondCall(SimProvider(profile.name)))
        return providers[-1]

    job_id = create_job(
        sqlite_settings,
        strategy={
            "name": "best_of_n",
            "params": {"n": 6, "batch_size": 1, "max_tokens": 96, "stop_when_verified": False},
        },
    )
    svc = WorkerServices(sqlite_settings, provider_factory=factory)
    outcome = run_slice(svc, job_id, "stopping", stopping=flag.is_set)
    handed_off = load_job(sqlite_settings, job_id)
    run_until_done(svc, job_id)  # another worker, not stopping
    svc.close()
    job = load_job(sqlite_settings, job_id)

    assert outcome.kind == "handoff" and outcome.detail == "worker shutting down"
    assert handed_off.lease_owner is None and handed_off.usage_calls == 2
    assert job.status == "completed" and job.recoveries == 0 and job.lost_calls == 0
    assert providers[0].calls == 6 == job.usage_calls  # the two calls were not made again
