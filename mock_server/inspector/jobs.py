"""The jobs as the inspector shows them: state, progression, ending and links.

Reading a job here never counts as a status poll (``Progression.due`` is not called) and never
processes it: the page only looks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mock_server.jobs import JobState, JobTimeline

if TYPE_CHECKING:
    from mock_server.backend import BriaBackend
    from mock_server.jobs import Job


def job_view(job: Job, backend: BriaBackend) -> dict[str, Any]:
    """One job: its state, how far it has progressed, how it ended and where its result is."""
    now = backend.clock.now()
    outcome = job.outcome
    view: dict[str, Any] = {
        "request_id": job.request_id,
        "endpoint": job.endpoint,
        "namespace": job.owner,
        "age": round(now - job.created_at, 3),
        "sync": job.sync,
        "polls": job.polls,
        "state": outcome.state.value if outcome else JobState.IN_PROGRESS.value,
        "progress": None if outcome else _progress(job, backend, now),
        "status_url": f"/bria-mock/jobs/{job.request_id}",
        "result_url": None,
        "error": outcome.error.as_object() if outcome and outcome.error else None,
    }
    if outcome is not None and outcome.result is not None and "image_url" in outcome.result:  # (it made an image)
        view["result_url"] = f"/bria-mock/jobs/{job.request_id}/result.png"
    return view


def status_body(job: Job, backend: BriaBackend) -> dict[str, Any]:
    """What the status service would say now, without counting a poll (IN_PROGRESS until processed)."""
    if job.outcome is None:
        return {"request_id": job.request_id, "status": JobState.IN_PROGRESS.value}
    return backend.status_body(job.request_id, job.outcome)


def _progress(job: Job, backend: BriaBackend, now: float) -> dict[str, Any]:
    """Polls and seconds still needed before a poll reports the ending (a rule's timeline overrides)."""
    timeline = job.timeline or JobTimeline()
    polls = backend.progression.polls if timeline.polls is None else timeline.polls
    seconds = backend.progression.seconds if timeline.seconds is None else timeline.seconds
    ending = timeline.ending.state.value if timeline.ending else JobState.COMPLETED.value
    return {
        "forever": timeline.forever,
        "polls_left": max(0, polls - job.polls),
        "seconds_left": round(max(0.0, seconds - (now - job.created_at)), 3),
        "ending": ending,
    }
