"""The task catalog: every kind of work tasklab knows, as pure functions of a validated payload.

Each task type has three parts, kept side by side so they cannot drift apart:

* a pydantic model for its payload (the API validates a request with it and answers 422),
* a handler, ``handler(payload, context) -> result``, a pure function of the payload apart
  from the simulated delay and the progress it reports through ``context``,
* a simulated duration (the "seed"), multiplied by ``TASK_TIME_SCALE`` (0 in tests).

The mapping :data:`CATALOG` is the only way from a task type name to code. A client string is
looked up in this fixed table and never imported or evaluated: that is what keeps a queue that
carries names from becoming a remote code execution hole.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator


class TaskType(StrEnum):
    """The names a client may submit as ``task_type``."""

    TEXT_PROCESSING = "text_processing"
    AI_SUMMARIZATION = "ai_summarization"
    BATCH_PROCESSING = "batch_processing"
    IMAGE_PROCESSING = "image_processing"
    FIBONACCI = "fibonacci"
    COMPUTE = "compute"
    NOOP = "noop"
    FLAKY = "flaky"


class TaskError(Exception):
    """A handler's way to say an attempt failed; the message is stored in ``task.error``."""


class PermanentTaskError(TaskError):
    """A failure that no retry can fix (bad input, a rule broken): phases that retry skip it."""


class TransientTaskError(TaskError):
    """A failure that may pass on its own (a flaky dependency): worth another attempt."""


@dataclass
class TaskContext:
    """What a handler may know besides its payload.

    ``attempt`` counts from 1. ``time_scale`` stretches simulated work, ``report_progress`` takes
    a percentage (0–100) and is how a long task shows it is alive. Handlers stay pure: the
    context is their only window to the outside.
    """

    attempt: int = 1
    time_scale: float = 1.0
    report_progress: Callable[[int], object] = field(default=lambda percent: None)  # what it returns is ignored

    def simulate_work(self, seconds: float) -> None:
        """Stand in for real I/O or model latency, scaled so tests run at 0 s."""
        if seconds * self.time_scale > 0:
            time.sleep(seconds * self.time_scale)


class _Payload(BaseModel):
    # A typo in a field name is a client bug: say so (422) instead of silently ignoring it.
    # NaN and Infinity are not JSON (Python's parser lets them in): a payload holding one could
    # not be stored as JSON (PostgreSQL refuses it) nor returned, so it is refused at the door.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class TextProcessingPayload(_Payload):
    text: str = Field(min_length=1, max_length=100_000, examples=["The quick brown fox"])
    operation: Literal["analyze", "uppercase", "lowercase", "reverse"] = "analyze"


class SummarizationPayload(_Payload):
    text: str = Field(min_length=1, max_length=200_000)
    max_sentences: int = Field(default=2, ge=1, le=20)


#: The largest integer a float (and a JavaScript client) represents exactly, 2**53 - 1. A batch
#: sums its numbers as floats: beyond it an integer loses digits, and a few huge numbers add up to
#: infinity, which is not JSON: the result could not be stored or returned.
MAX_BATCH_NUMBER = 2**53 - 1


class BatchProcessingPayload(_Payload):
    items: list[int | float | str] = Field(min_length=1, max_length=10_000, examples=[[1, 2, 3, 4]])
    batch_size: int = Field(default=10, ge=1, le=1_000)

    @field_validator("items")
    @classmethod
    def numbers_add_up(cls, items: list[int | float | str]) -> list[int | float | str]:
        for index, item in enumerate(items):
            if isinstance(item, int | float) and abs(item) > MAX_BATCH_NUMBER:
                raise ValueError(
                    f"items[{index}] is beyond ±{MAX_BATCH_NUMBER} (2**53 - 1): the batch's sum would lose digits or overflow"
                )
        return items


class ImageProcessingPayload(_Payload):
    width: int = Field(ge=1, le=20_000, examples=[1920])
    height: int = Field(ge=1, le=20_000, examples=[1080])
    operation: Literal["resize", "thumbnail", "grayscale"] = "resize"
    scale: float = Field(default=0.5, gt=0, le=4)


class FibonacciPayload(_Payload):
    # Beyond a few thousand the number dwarfs the row it is stored in: cap it.
    n: int = Field(ge=0, le=1_000, examples=[10])


class ComputePayload(_Payload):
    # One CPU-bound loop; 50 million keeps even the largest request in the seconds range.
    n: int = Field(default=1_000_000, ge=0, le=200_000_000)


class NoopPayload(_Payload):
    pass


class FlakyPayload(_Payload):
    fail_times: int = Field(default=2, ge=0, le=100, description="Attempts that fail before one succeeds.")
    permanent: bool = Field(default=False, description="Fail with a PermanentTaskError instead.")


def text_processing(payload: TextProcessingPayload, context: TaskContext) -> dict[str, Any]:
    """Word and character statistics, or a simple transformation of the text."""
    context.simulate_work(3.0)
    text = payload.text
    if payload.operation == "uppercase":
        return {"operation": "uppercase", "text": text.upper()}
    if payload.operation == "lowercase":
        return {"operation": "lowercase", "text": text.lower()}
    if payload.operation == "reverse":
        return {"operation": "reverse", "text": text[::-1]}
    words = re.findall(r"\w+", text.lower())
    return {
        "operation": "analyze",
        "word_count": len(words),
        "char_count": len(text),
        "unique_words": len(set(words)),
        "most_common": [word for word, _ in Counter(words).most_common(3)],
    }


def ai_summarization(payload: SummarizationPayload, context: TaskContext) -> dict[str, Any]:
    """An extractive summary: the sentences whose words are most frequent in the whole text."""
    context.simulate_work(5.0)
    sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+", payload.text.strip()) if s.strip()]
    frequencies = Counter(re.findall(r"\w+", payload.text.lower()))

    def score(sentence: str) -> float:
        words = re.findall(r"\w+", sentence.lower())
        return sum(frequencies[w] for w in words) / (len(words) or 1)

    best = sorted(range(len(sentences)), key=lambda i: score(sentences[i]), reverse=True)
    keep = sorted(best[: payload.max_sentences])  # in their original order, to read naturally
    return {
        "summary": " ".join(sentences[i] for i in keep),
        "sentences_in": len(sentences),
        "sentences_out": len(keep),
    }


def batch_processing(payload: BatchProcessingPayload, context: TaskContext) -> dict[str, Any]:
    """Process items batch by batch, reporting progress after each batch."""
    batches = [payload.items[i : i + payload.batch_size] for i in range(0, len(payload.items), payload.batch_size)]
    numeric_total = 0.0
    for done, batch in enumerate(batches, start=1):
        context.simulate_work(4.0 / len(batches))
        numeric_total += sum(x for x in batch if isinstance(x, (int, float)))
        context.report_progress(done * 100 // len(batches))
    return {"processed": len(payload.items), "batches": len(batches), "numeric_total": numeric_total}


def image_processing(payload: ImageProcessingPayload, context: TaskContext) -> dict[str, Any]:
    """The geometry an image operation would produce (no pixels: the lesson is the queue)."""
    context.simulate_work(4.0)
    if payload.operation == "thumbnail":
        ratio = min(128 / payload.width, 128 / payload.height, 1.0)
    elif payload.operation == "resize":
        ratio = payload.scale
    else:
        ratio = 1.0
    return {
        "operation": payload.operation,
        "input": [payload.width, payload.height],
        "output": [max(1, round(payload.width * ratio)), max(1, round(payload.height * ratio))],
        "mode": "L" if payload.operation == "grayscale" else "RGB",
    }


def fibonacci(payload: FibonacciPayload, context: TaskContext) -> int:
    """The n-th Fibonacci number, iteratively (fib(0) = 0, fib(10) = 55)."""
    context.simulate_work(1.0)
    a, b = 0, 1
    for _ in range(payload.n):
        a, b = b, a + b
    return a


def compute(payload: ComputePayload, context: TaskContext) -> int:
    """Real CPU work: the sum of range(n), by a loop on purpose (n = 1,000,000 → 499999500000)."""
    total = 0
    for i in range(payload.n):
        total += i
    return total


def noop(payload: NoopPayload, context: TaskContext) -> None:
    """Does nothing at once: what the benchmarks use to measure the queue itself."""
    return None


def flaky(payload: FlakyPayload, context: TaskContext) -> dict[str, Any]:
    """Fails its first ``fail_times`` attempts, then succeeds: the retry lessons' test subject."""
    context.simulate_work(1.0)
    if context.attempt <= payload.fail_times:
        message = f"flaky: attempt {context.attempt} fails on purpose ({payload.fail_times} planned)"
        raise PermanentTaskError(message) if payload.permanent else TransientTaskError(message)
    return {"succeeded_on_attempt": context.attempt}


@dataclass(frozen=True)
class TaskDefinition:
    """One row of the catalog: how to validate, run and describe a task type.

    ``example`` and ``example_result`` document the type (the demo submits the example and
    checks the result; a test proves the handler really produces it).
    """

    payload_model: type[BaseModel]
    handler: Callable[[Any, TaskContext], Any]
    seed_seconds: float
    example: dict[str, Any]
    example_result: Any


_SUMMARY_TEXT = "Queues decouple work. Workers consume jobs from queues. Retries hide faults."

CATALOG: dict[TaskType, TaskDefinition] = {
    TaskType.TEXT_PROCESSING: TaskDefinition(
        TextProcessingPayload,
        text_processing,
        3.0,
        example={"text": "The quick brown fox jumps over the lazy dog"},
        example_result={
            "operation": "analyze",
            "word_count": 9,
            "char_count": 43,
            "unique_words": 8,
            "most_common": ["the", "quick", "brown"],
        },
    ),
    TaskType.AI_SUMMARIZATION: TaskDefinition(
        SummarizationPayload,
        ai_summarization,
        5.0,
        example={"text": _SUMMARY_TEXT, "max_sentences": 1},
        example_result={"summary": "Queues decouple work.", "sentences_in": 3, "sentences_out": 1},
    ),
    TaskType.BATCH_PROCESSING: TaskDefinition(
        BatchProcessingPayload,
        batch_processing,
        4.0,
        example={"items": list(range(1, 21)), "batch_size": 5},
        example_result={"processed": 20, "batches": 4, "numeric_total": 210.0},
    ),
    TaskType.IMAGE_PROCESSING: TaskDefinition(
        ImageProcessingPayload,
        image_processing,
        4.0,
        example={"width": 1920, "height": 1080, "operation": "thumbnail"},
        example_result={"operation": "thumbnail", "input": [1920, 1080], "output": [128, 72], "mode": "RGB"},
    ),
    TaskType.FIBONACCI: TaskDefinition(FibonacciPayload, fibonacci, 1.0, example={"n": 10}, example_result=55),
    TaskType.COMPUTE: TaskDefinition(ComputePayload, compute, 0.0, example={"n": 1_000_000}, example_result=499_999_500_000),
    TaskType.NOOP: TaskDefinition(NoopPayload, noop, 0.0, example={}, example_result=None),
    TaskType.FLAKY: TaskDefinition(
        FlakyPayload, flaky, 1.0, example={"fail_times": 0}, example_result={"succeeded_on_attempt": 1}
    ),
}


def validate_payload(task_type: TaskType | str, payload: dict[str, Any]) -> dict[str, Any]:
    """Check a payload against its type's model; return it normalized (defaults filled in).

    Raises ``pydantic.ValidationError`` (the API turns it into 422) or ``KeyError`` for a type
    that is not in the catalog.
    """
    definition = CATALOG[TaskType(task_type)]
    return definition.payload_model.model_validate(payload).model_dump(mode="json")


def run_task(task_type: TaskType | str, payload: dict[str, Any], context: TaskContext) -> Any:
    """Run one attempt of a task: look the handler up in the fixed catalog and call it.

    A payload that no longer validates (stored by an older version, say) can never succeed, so
    it surfaces as a :class:`PermanentTaskError` rather than a crash.
    """
    try:
        task_type = TaskType(task_type)
        definition = CATALOG[task_type]
        validated = definition.payload_model.model_validate(payload)
    except (ValueError, ValidationError) as exc:
        raise PermanentTaskError(f"invalid {task_type!s} task: {exc}") from exc
    return definition.handler(validated, context)
