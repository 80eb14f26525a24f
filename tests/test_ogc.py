"""The OGC API - Processes documents: one definition (cas_xr.ogc) that service and client share."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import subprocess
import sys
import typing
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import httpx
import pydantic
import pytest

import cas_xr
from cas_xr import ogc
from cas_xr.client import Client, ProcessRequest
from cas_xr.errors import CasError
from tests.test_service_support import threaded_service

PACKAGE = Path(cas_xr.__file__).parent
CONTRACT = ("cas_xr.models", "cas_xr.errors", "cas_xr.config")
DOCUMENTS = [getattr(ogc, name) for name in ogc.__all__ if inspect.isclass(getattr(ogc, name))]


def _modules(package: str) -> list[ModuleType]:
    root = importlib.import_module(package)
    names = [info.name for info in pkgutil.walk_packages(root.__path__, package + ".")]
    return [root, *(importlib.import_module(name) for name in names)]


def _cas_imports(package: str) -> dict[str, set[str]]:
    """The cas_xr modules each module of ``package`` imports (from its source)."""
    found = {}
    for path in sorted((PACKAGE / package.removeprefix("cas_xr.")).rglob("*.py")):
        names = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module)
        found[path.name] = {n for n in names if n == "cas_xr" or n.startswith("cas_xr.")}
    return found


def _within(name: str, packages: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


def test_ogc_imports_nothing_of_cas_xr_but_the_contract():
    imports = _cas_imports("cas_xr.ogc")
    assert "_jobs.py" in imports  # the scan found the package
    outside = {f: sorted(n for n in names if not _within(n, ("cas_xr.ogc", *CONTRACT)))
               for f, names in imports.items()}  # fmt: skip
    assert not any(outside.values()), outside


def test_client_imports_only_the_documents_and_the_contract():
    allowed = ("cas_xr.client", "cas_xr.ogc", *CONTRACT)
    outside = {f: sorted(n for n in names if not _within(n, allowed))
               for f, names in _cas_imports("cas_xr.client").items()}  # fmt: skip
    assert not any(outside.values()), outside


@pytest.mark.parametrize("package", ["cas_xr.service", "cas_xr.client"])
def test_front_ends_define_no_document_of_their_own(package: str):
    """Every OGC document a module of the service or client holds is cas_xr.ogc's."""
    names = {cls.__name__ for cls in DOCUMENTS} | {"LandingPage", "Execute"}
    for module in _modules(package):
        for name, value in vars(module).items():
            if not inspect.isclass(value):
                continue
            assert value.__module__.startswith("cas_xr.ogc") or value.__name__ not in names, (
                f"{module.__name__}.{name} is defined in {value.__module__}, not cas_xr.ogc"
            )
            if name in ogc.__all__:
                assert value is getattr(ogc, name), f"{module.__name__}.{name}"


def test_the_service_answers_and_the_client_reads_the_same_classes():
    from fastapi.routing import APIRoute

    from cas_xr.service import create_app
    from cas_xr.service._routes import api_routes, public_routes

    app = create_app(cas_xr.Settings(jobs_db=":memory:"), testing=True)
    models = {
        f"{sorted(route.methods)[0]} {route.path}": route.response_model
        for route in [*public_routes().routes, *api_routes(app.state.cas).routes]
        if isinstance(route, APIRoute)
    }
    assert models == {
        "GET /": ogc.Capabilities,
        "GET /conformance": ogc.ConformanceDeclaration,
        "GET /processes": ogc.ProcessList,
        "GET /processes/{processID}": ogc.ProcessDescription,
        "POST /processes/{processID}/execution": ogc.StatusInfo,
        "GET /jobs": ogc.JobList,
        "GET /jobs/{jobId}": ogc.StatusInfo,
        "DELETE /jobs/{jobId}": ogc.StatusInfo,
        "GET /jobs/{jobId}/results": ogc.JobResults,
        "GET /jobs/{jobId}/results/{outputId}": None,  # a file (a result by reference)
    }
    returns = {
        name: typing.get_type_hints(getattr(Client, name))["return"]
        for name in ("get_capabilities", "get_conformance", "get_processes", "get_process",
                     "execute_process", "get_jobs", "get_job", "dismiss_job", "get_job_results")
    }  # fmt: skip
    assert set(returns.values()) == set(models.values()) - {None}
    assert ProcessRequest is ogc.ProcessRequest


@pytest.fixture(scope="module")
def service_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from cas_xr.service import create_app

    jobs_db = str(tmp_path_factory.mktemp("ogc") / "jobs.sqlite")
    with threaded_service(create_app(cas_xr.Settings(jobs_db=jobs_db), testing=True)) as url:
        yield url


def test_the_client_reads_back_exactly_what_the_service_wrote(service_url: str):
    with Client(api_url=service_url) as client, httpx.Client(base_url=service_url) as http:
        job = client.execute_process("primes_between", {"max_val": 10})
        status = client.wait_for_job(job.jobID, timeout=30)
        assert status.status is ogc.JobStatus.SUCCESSFUL and status.status.value == "successful"
        read = {
            "": client.get_capabilities(),
            "conformance": client.get_conformance(),
            "processes": client.get_processes(),
            "processes/extract": client.get_process("extract"),
            f"jobs/{job.jobID}": client.get_job(job.jobID),
            "jobs": client.get_jobs(),
            f"jobs/{job.jobID}/results": client.get_job_results(job.jobID),
        }
        for path, document in read.items():
            written = http.get(path).json()
            assert document.model_dump(mode="json", by_alias=True, exclude_none=True) == written


def test_documents_keep_unknown_members_and_the_standards_defaults():
    status = ogc.StatusInfo.model_validate(
        {"jobID": "j", "status": "failed", "x-extension": {"a": 1}}
    )
    assert status.status is ogc.JobStatus.FAILED and status.done
    assert status.type == "process" and status.links == []
    assert status.model_dump(by_alias=True)["x-extension"] == {"a": 1}
    for state in ogc.JobStatus:  # known states are members (cuiman's `status.value` works)
        known = ogc.StatusInfo.model_validate({"jobID": "j", "status": state.value}).status
        assert known is state
    unknown = ogc.StatusInfo.model_validate({"jobID": "j", "status": "paused"})
    assert unknown.status == "paused" and type(unknown.status) is str and not unknown.done
    with pytest.raises(pydantic.ValidationError, match="status"):
        ogc.StatusInfo.model_validate({"jobID": "j", "status": 3})
    described = ogc.InputDescription.model_validate({"schema": {"type": "number"}})
    assert (described.minOccurs, described.maxOccurs) == (1, 1)
    assert described.schema_ == {"type": "number"}
    assert set(ogc.JobStatus) == ogc.ACTIVE | ogc.FINAL and not ogc.ACTIVE & ogc.FINAL


def test_a_service_reads_requests_strictly_a_caller_builds_them_freely():
    strict = pydantic.TypeAdapter(ogc.StrictProcessRequest)
    assert strict.validate_python({"inputs": {"a": 1}, "response": "document"}).inputs == {"a": 1}
    with pytest.raises(pydantic.ValidationError, match="'a', 'b' are not members"):
        strict.validate_python({"inputs": {"c": 3}, "a": 1, "b": 2})
    # without 'inputs', other members are the inputs (what cuiman's ProcessRequest sends)
    loose = strict.validate_python({"response": "raw", "a": 1, "b": 2})
    assert (loose.inputs, loose.response) == ({"a": 1, "b": 2}, "raw")
    assert ogc.ProcessRequest.model_validate({"a": 1}).inputs == {"a": 1}
    with pytest.raises(pydantic.ValidationError, match="response"):
        strict.validate_python({"response": "neither"})


@pytest.mark.parametrize("package", ["cas_xr.service", "cas_xr.client", "cas_xr.ogc"])
def test_errors_of_the_front_ends_are_cas_errors(package: str):
    errors = {
        cls
        for module in _modules(package)
        for cls in vars(module).values()
        if inspect.isclass(cls)
        and issubclass(cls, Exception)
        and cls.__module__.startswith(package)
    }
    assert package == "cas_xr.ogc" or errors
    assert [cls for cls in errors if not issubclass(cls, CasError)] == []


def test_service_input_errors_keep_value_error():
    from cas_xr.service._problems import InvalidInputError, RasterNotServedError

    assert issubclass(InvalidInputError, ValueError)
    assert issubclass(RasterNotServedError, ValueError)


def test_ogc_loads_without_the_rest_of_cas_xr():
    """In a fresh interpreter, with the cas_xr package's own __init__ left out."""
    code = (
        "import importlib.util, sys, types\n"
        "spec = importlib.util.find_spec('cas_xr')\n"
        "pkg = types.ModuleType('cas_xr'); pkg.__path__ = list(spec.submodule_search_locations)\n"
        "sys.modules['cas_xr'] = pkg\n"
        "import cas_xr.ogc, cas_xr.client\n"
        "print(sorted(m for m in sys.modules if m.startswith('cas_xr.') and not "
        "m.startswith(('cas_xr.ogc', 'cas_xr.client'))))\n"
        "print(sorted(m for m in ('xarray', 'dask', 'numpy', 'rasterio', 'yaml') "
        "if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded, heavy = out.stdout.splitlines()
    assert heavy == "[]"
    assert all(_within(m, CONTRACT) for m in ast.literal_eval(loaded)), loaded
