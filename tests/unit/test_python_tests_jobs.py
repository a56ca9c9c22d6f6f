"""python_tests inside a job: a model that answers with hostile code (scripted at the
model boundary) cannot hurt the worker; every attack is a failed candidate with a clear
reason and the job goes on to verify the honest answer."""

from __future__ import annotations

from sqlalchemy import select

from ponder.config import Settings
from ponder.llm.base import Completion, SampleRequest, SampleResult, Usage
from ponder.tables import JobEvent
from tests.jobs_helpers import create_job, load_job, run_until_done
from worker.runner import WorkerServices

ATTACKS = [
    "```python\ndef add(a, b):\n    while True:\n        pass\n```",
    "```python\nimport os\nwhile True:\n    os.fork()\n```",
    "```python\nx = bytearray(10**10)\n```",
    "```python\nopen('big', 'wb').write(b'0' * 10**9)\n```",
    "```python\nimport socket\nsocket.create_connection(('192.0.2.1', 80), timeout=2)\n```",
    "```python\nprint('x' * 50_000_000)\n```",
]
HONEST = "```python\ndef add(a, b):\n    return a + b\n```"
TESTS = "from candidate import add\n\ndef test_add():\n    assert add(2, 3) == 5\n"


class ScriptedModel:
    """Answers the n-th sample with the n-th script (the model boundary is the fake)."""

    name = "scripted"

    def __init__(self) -> None:
        self.answers = [*ATTACKS, HONEST]
        self.i = 0

    async def sample(self, request: SampleRequest) -> SampleResult:
        out = []
        for _ in range(request.n):
            out.append(Completion(self.answers[min(self.i, len(self.answers) - 1)]))
            self.i += 1
        return SampleResult(out, Usage(prompt_tokens=20, completion_tokens=30 * request.n))

    async def aclose(self) -> None:
        pass


def test_hostile_candidates_fail_and_the_job_goes_on(sqlite_settings: Settings) -> None:
    job_id = create_job(
        sqlite_settings,
        problem={"prompt": "Write add(a, b) in Python."},
        verifier={"type": "python_tests", "tests": TESTS, "timeout_s": 2, "memory_mb": 128},
        strategy={"name": "best_of_n", "params": {"n": 7, "batch_size": 1, "max_tokens": 64}},
    )
    svc = WorkerServices(sqlite_settings, provider_factory=lambda profile: ScriptedModel())
    run_until_done(svc, job_id)
    job = load_job(sqlite_settings, job_id)
    with svc.sessions() as s:
        candidates = [
            e.data
            for e in s.execute(select(JobEvent).where(JobEvent.job_id == job_id)).scalars()
            if e.kind == "candidate"
        ]
    svc.close()
    assert job.status == "completed", job.error
    assert job.stop_reason == "verified"
    assert job.result is not None and "return a + b" in job.result["answer"]
    assert len(candidates) == 7
    for attack in candidates[:6]:
        assert attack["passed"] is False
        assert attack["feedback"], attack
    assert candidates[6]["passed"] is True
