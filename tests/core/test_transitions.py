"""The state machine, on each phase's own ``transitions.py``: legal moves happen once, illegal ones are
refused, races have one winner; from phase 3 on, retries, cancellation and the operator's retry."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from types import ModuleType

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from shared.models import Task, TaskCreate, TaskStatus
from shared.tasks import TaskType
from tests.core.phases import phase_module, phase_params


@pytest.fixture(params=phase_params())
def transitions(request: pytest.FixtureRequest) -> ModuleType:
    """The phase's own state machine."""
    return phase_module(request.param, "transitions")


@pytest.fixture(params=phase_params(first=3))
def retry_transitions(request: pytest.FixtureRequest) -> ModuleType:
    """The state machine of a phase with retries and cancellation (3 on)."""
    return phase_module(request.param, "transitions")


@pytest.fixture
def task_id(empty_store: Engine) -> uuid.UUID:
    with Session(empty_store) as session:
        task = Task.model_validate(TaskCreate(task_type=TaskType.NOOP, payload={}))
        session.add(task)
        session.commit()
        return task.id


def status_of(engine: Engine, task_id: uuid.UUID) -> TaskStatus:
    with Session(engine) as session:
        task = session.get(Task, task_id)
        assert task is not None
        return TaskStatus(task.status)


def test_a_new_task_is_pending(empty_store: Engine, task_id: uuid.UUID, transitions: ModuleType) -> None:
    assert status_of(empty_store, task_id) is TaskStatus.PENDING


def test_claiming_counts_the_attempt_and_stamps_the_worker(
    empty_store: Engine, task_id: uuid.UUID, transitions: ModuleType
) -> None:
    with Session(empty_store) as session:
        assert transitions.mark_running(session, task_id, worker="w1")
        task = session.get(Task, task_id)
        assert task is not None
        session.refresh(task)
        assert (task.status, task.attempts, task.worker) == ("running", 1, "w1")
        assert task.started_at is not None and task.started_at.tzinfo is not None


def test_a_task_can_be_claimed_only_once(empty_store: Engine, task_id: uuid.UUID, transitions: ModuleType) -> None:
    with Session(empty_store) as session:
        assert transitions.mark_running(session, task_id)
        assert not transitions.mark_running(session, task_id)


def test_completed_is_final(empty_store: Engine, task_id: uuid.UUID, transitions: ModuleType) -> None:
    with Session(empty_store) as session:
        transitions.mark_running(session, task_id)
        assert transitions.mark_completed(session, task_id, 42)

        assert not transitions.mark_failed(session, task_id, "too late")
        assert not transitions.mark_running(session, task_id)
    assert status_of(empty_store, task_id) is TaskStatus.COMPLETED


def test_a_completed_task_cannot_be_cancelled(empty_store: Engine, task_id: uuid.UUID, retry_transitions: ModuleType) -> None:
    with Session(empty_store) as session:
        retry_transitions.mark_running(session, task_id)
        retry_transitions.mark_completed(session, task_id, 42)
        assert not retry_transitions.mark_cancelled(session, task_id)
    assert status_of(empty_store, task_id) is TaskStatus.COMPLETED


def test_a_pending_task_cannot_complete_without_running(empty_store: Engine, task_id: uuid.UUID, transitions: ModuleType) -> None:
    with Session(empty_store) as session:
        assert not transitions.mark_completed(session, task_id, 1)
    assert status_of(empty_store, task_id) is TaskStatus.PENDING


def test_asking_for_an_illegal_source_raises(empty_store: Engine, task_id: uuid.UUID, transitions: ModuleType) -> None:
    with Session(empty_store) as session, pytest.raises(transitions.IllegalTransition):
        transitions.transition(session, task_id, TaskStatus.RUNNING, only_from=[TaskStatus.COMPLETED])


@pytest.mark.parametrize("phase", phase_params(last=2))
def test_without_retries_the_final_statuses_have_no_way_out(phase: int) -> None:
    """Phases 1 and 2: completed and failed are final; phase 3 adds the operator's retry (next test)."""
    allowed = phase_module(phase, "transitions").ALLOWED_TRANSITIONS
    assert allowed[TaskStatus.COMPLETED] == frozenset()
    assert allowed[TaskStatus.FAILED] == frozenset()


def test_final_statuses_have_no_way_out_but_an_operator_retry(retry_transitions: ModuleType) -> None:
    allowed = retry_transitions.ALLOWED_TRANSITIONS
    assert allowed[TaskStatus.COMPLETED] == frozenset()
    assert allowed[TaskStatus.CANCELLED] == frozenset()
    assert allowed[TaskStatus.FAILED] == {TaskStatus.PENDING}


def test_concurrent_claims_have_exactly_one_winner(empty_store: Engine, task_id: uuid.UUID, transitions: ModuleType) -> None:
    """Eight threads, each with its own connection, race to claim one task."""

    def claim(_: int) -> bool:
        with Session(empty_store) as session:
            return bool(transitions.mark_running(session, task_id))

    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(claim, range(8)))

    assert outcomes.count(True) == 1
