"""The HTML page of each API document: what the template of each resource is given.

Each view gets the JSON document the API answered for the same request (so that
authentication, limits and errors are the API's own) and returns the page.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from cas_xr.models import AggregationMethod
from cas_xr.ogc import ACTIVE, JobStatus
from cas_xr.service._state import ServiceState
from cas_xr.service._web._render import Renderer
from cas_xr.service._web._results import ATTRIBUTE_PROCESSES, attribute_rows, geometries_of
from cas_xr.service._web._svgmap import svg_map

__all__ = ["Views"]

_REFRESH_S = 2  # how often a page of running jobs reloads itself
_MAX_ROWS = 5000  # a results page shows this many rows; the downloads have them all
_PLACEHOLDERS: dict[str, Any] = {
    "string": "",
    "integer": 0,
    "number": 0,
    "boolean": False,
    "array": [],
    "object": {},
}


@cache
def _sample_features() -> list[dict[str, Any]]:
    from cas_xr.sample import sample_catchments_path

    features: list[dict[str, Any]] = json.loads(sample_catchments_path().read_text("utf-8"))[
        "features"
    ]
    return features


def example_request(process_id: str, inputs: Mapping[str, Any]) -> dict[str, Any]:
    """An execute request for a process (the sample catchments for the statistics ones)."""
    if process_id in ATTRIBUTE_PROCESSES:
        features = _sample_features()
        common = {"dataset_ids": ["sample:elevation"], "aggregation": AggregationMethod.MEAN}
        if process_id == "extract":
            return {"inputs": {"geometry": features[0]["geometry"], **common}}
        return {"inputs": {"geometries": [f["geometry"] for f in features[:2]], **common}}
    example = {}
    for name, described in inputs.items():
        schema = described.get("schema", {})
        if "default" in schema:
            example[name] = schema["default"]
        elif described.get("minOccurs", 1) > 0:
            example[name] = _PLACEHOLDERS.get(schema.get("type", "string"), "")
    return {"inputs": example}


def _schema_type(schema: Mapping[str, Any]) -> str:
    """A short description of a JSON schema's type ("array of string", "object"...)."""
    if "enum" in schema:
        return "one of " + ", ".join(map(str, schema["enum"]))
    if "type" in schema:
        kind = str(schema["type"])
        if kind == "array" and isinstance(schema.get("items"), Mapping):
            return f"array of {_schema_type(schema['items'])}"
        return kind
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return " or ".join(_schema_type(s) for s in schema[key])
    if "$ref" in schema:
        return str(schema["$ref"]).rpartition("/")[2]
    return "any"


class Views:
    """The pages of the API's resources.

    Parameters
    ----------
    renderer
        The template renderer.
    state
        The service state (a job's stored inputs give the results page its geometries).
    """

    def __init__(self, renderer: Renderer, state: ServiceState) -> None:
        self.renderer = renderer
        self.state = state

    def __repr__(self) -> str:
        return f"Views({self.renderer!r})"

    def landing(self, request: Request, doc: dict[str, Any]) -> Response:
        """The landing page."""
        return self.renderer.page(
            request, "landing.html", title=doc.get("title", "cas_xr"), doc=doc
        )

    def conformance(self, request: Request, doc: dict[str, Any]) -> Response:
        """The conformance classes."""
        return self.renderer.page(
            request, "conformance.html", title="Conformance", classes=doc.get("conformsTo", [])
        )

    def processes(self, request: Request, doc: dict[str, Any]) -> Response:
        """The process list."""
        return self.renderer.page(
            request,
            "processes.html",
            title="Processes",
            processes=doc.get("processes", []),
            runnable=ATTRIBUTE_PROCESSES,
        )

    def process(self, request: Request, doc: dict[str, Any]) -> Response:
        """A process description, with an example request."""
        inputs = doc.get("inputs", {})
        example = example_request(str(doc.get("id")), inputs)
        return self.renderer.page(
            request,
            "process.html",
            title=doc.get("title") or doc.get("id", "Process"),
            process=doc,
            inputs={k: {**v, "kind": _schema_type(v.get("schema", {}))} for k, v in inputs.items()},
            outputs={
                k: {**v, "kind": _schema_type(v.get("schema", {}))}
                for k, v in doc.get("outputs", {}).items()
            },
            example=json.dumps(example, indent=2),
            runnable=doc.get("id") in ATTRIBUTE_PROCESSES,
        )

    def jobs(self, request: Request, doc: dict[str, Any]) -> Response:
        """The job list: reloads itself while a listed job is queued or running."""
        jobs = doc.get("jobs", [])
        active = any(job.get("status") in ACTIVE for job in jobs)
        following = next((x["href"] for x in doc.get("links", []) if x.get("rel") == "next"), "")
        return self.renderer.page(
            request,
            "jobs.html",
            title="Jobs",
            jobs=jobs,
            next_href=following,
            first_page="after" in request.query_params,
            refresh=_REFRESH_S if active else 0,
        )

    def job(self, request: Request, doc: dict[str, Any]) -> Response:
        """A job's status: reloads itself until the job has finished."""
        active = doc.get("status") in ACTIVE
        return self.renderer.page(
            request,
            "job.html",
            title=f"Job {doc.get('jobID', '')}",
            job=doc,
            successful=doc.get("status") == JobStatus.SUCCESSFUL,
            refresh=_REFRESH_S if active else 0,
        )

    def results(self, request: Request, job_id: str, doc: dict[str, Any]) -> Response:
        """A job's results: an attribute table (and map), or each output as JSON."""
        record = self.state.store.get(job_id)
        process_id = record.process_id if record else ""
        values: dict[str, Any] = {"title": f"Results of {job_id}", "job_id": job_id}
        values["process_id"] = process_id
        if process_id not in ATTRIBUTE_PROCESSES or not isinstance(doc.get("response"), dict):
            outputs = {k: json.dumps(v, indent=2)[:200_000] for k, v in doc.items()}
            return self.renderer.page(request, "results_other.html", outputs=outputs, **values)
        inputs = self.state.store.inputs(job_id) or {}
        geometries = geometries_of(process_id, inputs)
        rows = attribute_rows(process_id, doc["response"], [label for label, _ in geometries])
        datasets = list(dict.fromkeys(row.dataset_id for row in rows))
        shown = request.query_params.get("dataset")
        shown = shown if shown in datasets else (datasets[0] if datasets else "")
        by_geometry = {r.geometry: r.value for r in rows if r.dataset_id == shown}
        numbers = {i: v if isinstance(v, int | float) else None for i, v in by_geometry.items()}
        crs = str(inputs.get("geometry_crs") or "EPSG:4326")
        batch = process_id == "batch-extract"
        warnings = (
            doc["response"].get("warnings", [])
            if not batch
            else [w for r in doc["response"].get("responses", []) for w in r.get("warnings", [])]
        )
        return self.renderer.page(
            request,
            "results.html",
            rows=rows[:_MAX_ROWS],
            total_rows=len(rows),
            batch=batch,
            datasets=datasets,
            shown=shown,
            warnings=warnings,
            map=svg_map(geometries, numbers, geographic=crs.upper() in ("EPSG:4326", "OGC:CRS84"))
            if batch and geometries
            else None,
            **values,
        )

    def problem(self, request: Request, status: int, doc: dict[str, Any]) -> Response:
        """An error page for a problem document."""
        return self.renderer.page(
            request,
            "problem.html",
            status_code=status,
            title=doc.get("title") or "Error",
            problem=doc,
        )
