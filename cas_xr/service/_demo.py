"""Demo processes for ``cas-xr serve --testing``: what the OGC client notebooks call.

``sleep_a_while`` sleeps, reporting progress (and fails on purpose at half time when
asked); ``primes_between`` lists prime numbers. Neither touches any data.
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from cas_xr.service._executor import JobContext, ProcessFailureError
from cas_xr.service._processes import Output, Process

__all__ = ["demo_processes"]

_TICK_S = 0.1


class SleepInputs(BaseModel):
    """The inputs of ``sleep_a_while``."""

    model_config = ConfigDict(extra="forbid")

    duration: float = Field(default=10, ge=0, le=3600)
    fail: bool = False


class PrimesInputs(BaseModel):
    """The inputs of ``primes_between``."""

    model_config = ConfigDict(extra="forbid")

    min_val: int = Field(default=0, ge=0)
    max_val: int = Field(default=100, ge=0, le=10_000_000)

    @model_validator(mode="after")
    def _check_order(self) -> PrimesInputs:
        if self.max_val < self.min_val:
            raise ValueError(f"max_val ({self.max_val}) is less than min_val ({self.min_val})")
        return self


def _sleep_a_while(inputs: SleepInputs, context: JobContext, options: Any) -> dict[str, Any]:
    started = time.monotonic()
    deadline = inputs.duration / 2 if inputs.fail else inputs.duration
    while (elapsed := time.monotonic() - started) < deadline:
        context.report(100 * elapsed / inputs.duration)
        context.sleep(min(_TICK_S, deadline - elapsed))
    if inputs.fail:
        raise ProcessFailureError(
            f"failed on purpose after {deadline:g} of {inputs.duration:g} s (fail=true)"
        )
    return {"return_value": time.monotonic() - started}


def _primes_between(inputs: PrimesInputs, context: JobContext, options: Any) -> dict[str, Any]:
    sieve = bytearray([1]) * (inputs.max_val + 1)
    sieve[: min(2, len(sieve))] = bytes(min(2, len(sieve)))
    for n in range(2, int(inputs.max_val**0.5) + 1):
        if sieve[n]:
            sieve[n * n :: n] = bytes(len(range(n * n, inputs.max_val + 1, n)))
    primes = [n for n in range(inputs.min_val, inputs.max_val + 1) if sieve[n]]
    return {"return_value": primes}


def demo_processes() -> list[Process]:
    """``sleep_a_while`` and ``primes_between``."""
    return [
        Process(
            id="sleep_a_while",
            title="Sleep for a while",
            description=(
                "Waits `duration` seconds, reporting progress, and returns the time it "
                "waited. With `fail` set it fails on purpose at half time."
            ),
            model=SleepInputs,
            outputs={"return_value": Output(float, "Seconds waited")},
            function=_sleep_a_while,
            input_docs={"duration": "Seconds to wait.", "fail": "Fail at half time."},
        ),
        Process(
            id="primes_between",
            title="Prime numbers",
            description="The prime numbers from `min_val` to `max_val` (both included).",
            model=PrimesInputs,
            outputs={"return_value": Output(list[int], "Prime numbers")},
            function=_primes_between,
            input_docs={"min_val": "The smallest number.", "max_val": "The largest number."},
        ),
    ]
