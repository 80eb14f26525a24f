"""Processes: what they take (a pydantic model), what they give, and how they run.

A process description is generated from the input model and the output types, as
OpenAPI 3.0 schema objects. Inputs are checked when a job is created, before any work:
unknown names, ill-typed values, limits and dataset ids each get a 400 problem that
names them.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict

import cas_xr as cas
from cas_xr.errors import LimitExceededError
from cas_xr.frontends import batch_extract_reporting, extract_together, run_sync
from cas_xr.models import (
    AttributeRequest,
    AttributeResponse,
    BatchAttributeRequest,
    BatchAttributeResponse,
    Dataset,
    OutputMode,
    split_dataset_id,
)
from cas_xr.ogc import (
    REL,
    InputDescription,
    Link,
    OutputDescription,
    ProcessDescription,
    ProcessSummary,
)
from cas_xr.service._executor import JobContext
from cas_xr.service._options import ServiceOptions
from cas_xr.service._problems import InvalidInputError, RasterNotServedError
from cas_xr.service._schema import type_schema

__all__ = ["Output", "Process", "cas_processes", "check_datasets"]

_RASTER_INPUTS = frozenset({"bbox", "target_resolution", "resampling"})
#: The most geometries a BatchAttributeRequest holds (CAS's model).
_BATCH_MAX = next(
    m.max_length for m in BatchAttributeRequest.model_fields["geometries"].metadata
    if hasattr(m, "max_length")
)  # fmt: skip


@dataclass(frozen=True)
class Output:
    """One output of a process: its type (for the schema) and words."""

    annotation: Any
    title: str
    description: str = ""


@dataclass(frozen=True)
class Process:
    """A process the service runs.

    Parameters
    ----------
    id, title, description
        What the process is called and does.
    model
        The pydantic model of the inputs: each field is an input.
    outputs
        Output id -> :class:`Output`.
    function
        ``function(inputs, context, options) -> {output id: JSON value}``.
    check
        ``check(inputs, options)`` raises if validated inputs may not run here (limits,
        unknown dataset ids).
    hidden
        Model fields that are not inputs of the process.
    input_docs
        Input id -> description.
    transmission
        How outputs can be sent: ``"value"``, and ``"reference"`` for file outputs (a
        download link).
    precheck
        ``precheck(raw_inputs, options)`` raises before validation (e.g. to refuse raster
        output with a clear problem rather than as an unknown input, or too many
        geometries as a limit rather than as an invalid input).
    batch_key, batch_function
        Jobs whose validated inputs have equal ``batch_key(inputs)`` and are queued at
        the same time run as one ``batch_function([inputs, ...], options)`` giving each
        job's outputs in order (None: each job runs alone).
    """

    id: str
    title: str
    description: str
    model: type[BaseModel]
    outputs: Mapping[str, Output]
    function: Callable[[Any, JobContext, ServiceOptions], dict[str, Any]]
    check: Callable[[Any, ServiceOptions], None] | None = None
    hidden: frozenset[str] = frozenset()
    input_docs: Mapping[str, str] = field(default_factory=dict)
    precheck: Callable[[Mapping[str, Any], ServiceOptions], None] | None = None
    transmission: tuple[str, ...] = ("value",)
    batch_key: Callable[[Any], Hashable] | None = None
    batch_function: Callable[[Sequence[Any], ServiceOptions], list[dict[str, Any]]] | None = None

    @property
    def input_names(self) -> list[str]:
        """The input ids, in model order."""
        return [name for name in self.model.model_fields if name not in self.hidden]

    def validate(self, inputs: Mapping[str, Any], options: ServiceOptions) -> Any:
        """Check ``inputs`` and return the validated model.

        Raises
        ------
        InvalidInputError
            For unknown inputs.
        pydantic.ValidationError
            For missing or ill-typed inputs (the error locations name them).
        RasterNotServedError, LimitExceededError, UnknownProviderError
            From the process's own checks.
        """
        if self.precheck is not None:
            self.precheck(inputs, options)
        unknown = sorted(set(inputs) - set(self.input_names))
        if unknown:
            raise InvalidInputError(
                f"process {self.id!r} has no input(s) {', '.join(map(repr, unknown))}; "
                f"its inputs are {', '.join(self.input_names)}"
            )
        parsed = self.model.model_validate(dict(inputs))
        if self.check is not None:
            self.check(parsed, options)
        return parsed

    def transmissions(self, outputs: Mapping[str, Any] | None) -> dict[str, str]:
        """Output id -> transmission mode, from an execute request's ``outputs``.

        Raises
        ------
        InvalidInputError
            For an unknown output id, or a mode this process does not offer.
        """
        modes = {}
        for output_id, asked in (outputs or {}).items():
            if output_id not in self.outputs:
                raise InvalidInputError(
                    f"process {self.id!r} has no output {output_id!r}; its outputs are "
                    f"{', '.join(self.outputs)}"
                )
            mode = asked.get("transmissionMode", "value") if isinstance(asked, Mapping) else None
            if mode not in self.transmission:
                raise InvalidInputError(
                    f"output {output_id!r}: transmissionMode {mode!r} is not offered; use "
                    f"{' or '.join(map(repr, self.transmission))}"
                )
            modes[output_id] = mode
        return modes

    def summary(self, job_control: list[str], base_url: str) -> ProcessSummary:
        """The entry of ``/processes``."""
        return ProcessSummary.model_validate(self._summary_fields(job_control, base_url))

    def description_document(self, job_control: list[str], base_url: str) -> ProcessDescription:
        """The process description of ``/processes/{id}``."""
        schema = type_schema(self.model)
        required = set(schema.get("required", []))
        inputs = {}
        for name in self.input_names:
            prop = dict(schema["properties"][name])
            title = prop.pop("title", name.replace("_", " ").title())
            inputs[name] = InputDescription(
                title=title,
                description=self.input_docs.get(name, prop.get("description", "")),
                schema_=prop,
                minOccurs=1 if name in required else 0,
            )
        outputs = {
            name: OutputDescription(
                title=out.title, description=out.description, schema_=type_schema(out.annotation)
            )
            for name, out in self.outputs.items()
        }
        return ProcessDescription.model_validate(
            {**self._summary_fields(job_control, base_url), "inputs": inputs, "outputs": outputs}
        )

    def _summary_fields(self, job_control: list[str], base_url: str) -> dict[str, Any]:
        href = f"{base_url}processes/{self.id}"
        return {
            "id": self.id,
            "title": self.title,
            "description": self.description,
            "version": cas.__version__,
            "jobControlOptions": job_control,
            "outputTransmission": list(self.transmission),
            "links": [
                Link(href=href, rel="self", type="application/json", title="process description"),
                Link(
                    href=f"{href}/execution",
                    rel=REL["execute"],
                    type="application/json",
                    title="execute",
                ),
            ],
        }


# -- checks -------------------------------------------------------------------------------


def _precheck_request(inputs: Mapping[str, Any], options: ServiceOptions) -> None:
    """Refuse raster output, and more geometries than a request may hold, before validation."""
    asked = sorted(_RASTER_INPUTS & set(inputs))
    if inputs.get("output") == OutputMode.RASTER.value or asked:
        what = f"input(s) {', '.join(asked)}" if asked else "output='raster'"
        raise RasterNotServedError(
            f"raster output is not served over HTTP ({what}); this service computes "
            "statistics only: call cas_xr.extract_raster(dataset_id, bbox, output_dir) "
            "in-process for a GeoTIFF"
        )
    geometries = inputs.get("geometries")
    most = min(options.max_geometries_per_request, _BATCH_MAX)
    if isinstance(geometries, list) and len(geometries) > most:
        raise LimitExceededError(
            f"{len(geometries)} geometries, more than a batch-extract request may hold "
            f"({most}: max_geometries_per_request, and at most {_BATCH_MAX}); split the "
            "request"
        )


def _check_request(
    request: AttributeRequest | BatchAttributeRequest, options: ServiceOptions
) -> None:
    geometries = (
        request.geometries if isinstance(request, BatchAttributeRequest) else [request.geometry]
    )
    check_datasets(request.dataset_ids, options)
    for i, geom in enumerate(geometries):
        if geom.n_vertices > options.max_polygon_vertices:
            raise LimitExceededError(
                f"geometry {i} has {geom.n_vertices} vertices, more than max_polygon_vertices "
                f"({options.max_polygon_vertices}); simplify it"
            )


def check_datasets(dataset_ids: Sequence[str], options: ServiceOptions) -> None:
    """Refuse too many dataset ids, and unknown ones, before the job exists."""
    if len(dataset_ids) > options.max_datasets_per_request:
        raise LimitExceededError(
            f"{len(dataset_ids)} datasets requested, more than max_datasets_per_request "
            f"({options.max_datasets_per_request}); split the request"
        )
    for dataset_id in dataset_ids:
        provider, name = split_dataset_id(dataset_id)
        cas.get_connector(provider).dataset(name)


# -- functions ----------------------------------------------------------------------------


def _extract(request: AttributeRequest, context: JobContext, options: ServiceOptions) -> dict:
    context.check()
    return {"response": cas.extract_sync(request).model_dump(mode="json")}


def _extract_key(request: AttributeRequest) -> Hashable:
    """What ``extract`` jobs computed together share: everything but the geometry."""
    return request.model_dump_json(exclude={"geometry"})


def _extract_together(requests: Sequence[AttributeRequest], options: ServiceOptions) -> list[dict]:
    responses = run_sync(extract_together(requests), awaitable="extract_together")
    return [{"response": r.model_dump(mode="json")} for r in responses]


def _batch_extract(
    request: BatchAttributeRequest, context: JobContext, options: ServiceOptions
) -> dict:
    """Run the batch through the engine, as the facade does, reporting its progress."""

    def report(done: int, total: int) -> None:
        if done < total:  # 100 is for the finished job
            context.report(100 * done / total, f"{done} of {total} results done")

    context.check()
    response = run_sync(batch_extract_reporting(request, report), awaitable="batch_extract")
    return {"response": response.model_dump(mode="json")}


class ListDatasetsInputs(BaseModel):
    """The inputs of ``list-datasets``."""

    model_config = ConfigDict(extra="forbid")

    provider: str | None = None


def _check_list(inputs: ListDatasetsInputs, options: ServiceOptions) -> None:
    if inputs.provider is not None:
        cas.get_connector(inputs.provider)


def _list_datasets(inputs: ListDatasetsInputs, context: JobContext, options: Any) -> dict:
    datasets = cas.list_datasets(inputs.provider)
    return {"datasets": [ds.model_dump(mode="json") for ds in datasets]}


_REQUEST_DOCS = {
    "dataset_ids": "Dataset ids such as 'sample:elevation' (`list-datasets` lists them).",
    "time_range": "Time steps to use for temporal datasets (default: the latest step).",
    "aggregation": "The statistic to compute.",
    "target_crs": "The output CRS of raster mode (unused: statistics only).",
    "geometry_crs": "The CRS of the input coordinates.",
    "geometry": (
        "A GeoJSON Point, MultiPoint, LineString, MultiLineString, Polygon, MultiPolygon or "
        "a GeometryCollection of one of these kinds (or a Feature)."
    ),
    "geometries": (
        "GeoJSON geometries as 'geometry' takes them (or Features): points, lines, polygons."
    ),
    "output": "'stats' (the default); 'raster' is refused: rasters are not served over HTTP.",
}


def _statistics_process(
    process_id: str,
    title: str,
    description: str,
    model: type[BaseModel],
    output: Output,
    function: Callable[[Any, JobContext, ServiceOptions], dict[str, Any]],
    **batching: Any,
) -> Process:
    """A process over a facade request model: limits and dataset ids checked, rasters refused."""
    return Process(
        id=process_id,
        title=title,
        description=description,
        model=model,
        outputs={"response": output},
        function=function,
        check=_check_request,
        hidden=_RASTER_INPUTS,
        input_docs=_REQUEST_DOCS,
        precheck=_precheck_request,
        **batching,
    )


def cas_processes() -> list[Process]:
    """The processes over the cas_xr facade: ``extract``, ``batch-extract``, ``list-datasets``."""
    return [
        _statistics_process(
            "extract",
            "Zonal statistics of one geometry",
            "Statistics of one geometry for one or more datasets, with units, quality flags, "
            "coverage and provenance (the facade's extract()).",
            AttributeRequest,
            Output(AttributeResponse, "Attribute response"),
            _extract,
            batch_key=_extract_key,
            batch_function=_extract_together,
        ),
        _statistics_process(
            "batch-extract",
            "Zonal statistics of many geometries",
            "Statistics of up to 1,000 geometries for one or more datasets (the facade's "
            "batch_extract()); reports progress as groups of geometries are computed.",
            BatchAttributeRequest,
            Output(BatchAttributeResponse, "Batch attribute response"),
            _batch_extract,
        ),
        Process(
            id="list-datasets",
            title="List datasets",
            description="Metadata of every dataset, or of one provider's datasets.",
            model=ListDatasetsInputs,
            outputs={"datasets": Output(list[Dataset], "Datasets")},
            function=_list_datasets,
            check=_check_list,
            input_docs={"provider": "A provider slug (default: every provider)."},
        ),
    ]
