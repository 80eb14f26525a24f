"""The execute request: process inputs, and how to return the outputs."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, ConfigDict, model_validator

from cas_xr.ogc._document import Document

__all__ = ["ProcessRequest", "StrictProcessRequest", "Subscriber"]

_REQUEST_FIELDS = ("inputs", "outputs", "response", "subscriber")


class Subscriber(Document):
    """Callback URLs of a job."""

    successUri: str | None = None
    inProgressUri: str | None = None
    failedUri: str | None = None


class ProcessRequest(Document):
    """An execute request.

    Keyword arguments that are not request fields are inputs, and a mapping without an
    ``inputs`` member is taken as the inputs: ``ProcessRequest(duration=2)`` and
    ``{"duration": 2}`` both mean ``ProcessRequest(inputs={"duration": 2})``. A service
    reads requests as :data:`StrictProcessRequest`, which refuses that form when an
    ``inputs`` member is there too.

    Parameters
    ----------
    inputs
        Input id -> value.
    outputs
        Which outputs to return, and how (server-specific; usually left out).
    response
        ``"raw"`` (the standard's default) or ``"document"`` (synchronous execution only).
    subscriber
        Callback URLs (``successUri``, ``inProgressUri``, ``failedUri``).

    Examples
    --------
    >>> ProcessRequest(duration=2).inputs
    {'duration': 2}
    >>> ProcessRequest.model_validate({"fail": True}).inputs
    {'fail': True}
    """

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "description": (
                "An execute request: inputs, and how to answer. Without an 'inputs' member,"
                " members other than 'outputs', 'response' and 'subscriber' are the inputs;"
                " beside 'inputs' they are refused."
            ),
            "additionalProperties": True,
        },
    )

    inputs: dict[str, Any] | None = None
    outputs: dict[str, Any] | None = None
    response: Literal["raw", "document"] | None = None
    subscriber: Subscriber | None = None

    @model_validator(mode="before")
    @classmethod
    def _extra_are_inputs(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        extra = {k: v for k, v in value.items() if k not in _REQUEST_FIELDS}
        if not extra:
            return value
        known = {k: v for k, v in value.items() if k in _REQUEST_FIELDS}
        return {**known, "inputs": {**(known.get("inputs") or {}), **extra}}

    def body(self) -> dict[str, Any]:
        """The JSON body to send."""
        return self.model_dump(mode="json", exclude_none=True)


def _refuse_other_members(value: Any) -> Any:
    if isinstance(value, dict) and "inputs" in value:
        other = [repr(name) for name in value if name not in _REQUEST_FIELDS]
        if other:
            are = "is not a member" if len(other) == 1 else "are not members"
            raise ValueError(
                f"{', '.join(other)} {are} of an execute request "
                f"({', '.join(_REQUEST_FIELDS)}); process inputs go under 'inputs'"
            )
    return value


#: A :class:`ProcessRequest` read from a JSON body: with an ``inputs`` member, the
#: standard's document, whose other members (not ``outputs``, ``response`` or
#: ``subscriber``) are refused rather than mixed in; without one, members other than those
#: three are the inputs, the body cuiman (gavicore's ``ProcessRequest(duration=2)``) and
#: ``request={"fail": True}`` send.
StrictProcessRequest = Annotated[ProcessRequest, BeforeValidator(_refuse_other_members)]
