"""A Zarr store named by an asset of a STAC collection (e.g. Daymet on Planetary Computer).

Data cubes such as Planetary Computer's ``daymet-daily-na`` are one Zarr store for the
whole collection, published as a collection-level asset with ``xarray:open_kwargs`` and
``xarray:storage_options``. This source reads the collection from the STAC API
(``{endpoint}/collections/{collection}``, with the settings' retries and deadline, cached
for ``metadata_cache_ttl_s``), signs the asset when asked (``sign: planetary_computer``,
at each open, so tokens never sit in a cache), and opens the store lazily with
:class:`~cas_xr.sources.LocalSource` (xarray + Dask, fsspec for the URL).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cas_xr.config import SettingsBoundCache
from cas_xr.errors import (
    MissingDependencyError,
    ProviderDefinitionError,
    SourceError,
    validation_problems,
)
from cas_xr.sources._http import fetch, public_url
from cas_xr.sources._local import LocalSource

if TYPE_CHECKING:
    import pystac
    import xarray as xr

    from cas_xr.models import TimeRange
    from cas_xr.sources._definitions import DatasetDefinition, ProviderDefinition

__all__ = ["StacZarrOptions", "StacZarrSource", "from_definition"]

_COLLECTIONS: SettingsBoundCache[dict[str, Any]] = SettingsBoundCache(
    lambda s: (s.metadata_cache_ttl_s, 64)
)


class StacZarrOptions(BaseModel):
    """The ``options`` of a ``stac_zarr`` provider or dataset (provider YAML files).

    Attributes
    ----------
    sign
        ``"planetary_computer"`` signs the asset with the optional ``planetary-computer``
        package (a SAS token in the ``xarray:storage_options`` of ``abfs://`` assets).
    storage_options
        fsspec options over the asset's ``xarray:storage_options``.
    """

    model_config = ConfigDict(extra="forbid")

    sign: Literal["planetary_computer"] | None = None
    storage_options: dict[str, Any] = Field(default_factory=dict)


@dataclass(frozen=True)
class StacZarrSource:
    """One variable of the Zarr store of a STAC collection's asset.

    Parameters
    ----------
    endpoint
        Root URL of the STAC API.
    collection
        Collection id.
    asset
        Key of the collection-level asset holding the store (e.g. ``zarr-abfs``).
    array
        The store's variable to read (e.g. ``prcp``).
    provider
        Provider slug, for error messages and provenance.
    crs
        CRS to assume when the store declares none (never guessed otherwise).
    nodata
        Nodata value where the store declares none.
    temporal
        Whether the ``time`` dimension is kept.
    storage_options
        fsspec options over the asset's ``xarray:storage_options``.
    sign
        Whether to sign the asset with ``planetary_computer.sign`` before opening.
    """

    protocol: ClassVar[str] = "stac_zarr"
    endpoint: str
    collection: str
    asset: str
    array: str | None = None
    provider: str = ""
    crs: str | None = None
    nodata: float | None = None
    temporal: bool = False
    storage_options: Mapping[str, Any] = field(default_factory=dict)
    sign: bool = False

    @property
    def collection_url(self) -> str:
        """Where the STAC API serves the collection."""
        return f"{self.endpoint.rstrip('/')}/collections/{self.collection}"

    def _error(self, message: str, *, kind: str) -> SourceError:
        return SourceError(message, provider=self.provider, url=self.collection_url, kind=kind)

    def collection_document(self) -> dict[str, Any]:
        """The collection's JSON (cached for ``metadata_cache_ttl_s``).

        Raises
        ------
        SourceError
            If the API cannot be reached, answers with an error or not with JSON.
        """
        cache = _COLLECTIONS.current()
        document = cache.get(self.collection_url)
        if document is None:
            response = fetch(self.collection_url, provider=self.provider)
            try:
                document = response.json()
            except ValueError as err:
                raise self._error(f"the collection is not JSON: {err}", kind="source") from err
            if not isinstance(document, dict) or document.get("type") != "Collection":
                raise self._error("the answer is not a STAC collection", kind="source")
            cache.set(self.collection_url, document)
        return document

    def stac_asset(self) -> pystac.Asset:
        """The collection's asset holding the store, signed if asked (not cached).

        Raises
        ------
        SourceError
            ``kind="definition"`` if the collection has no such asset.
        """
        import pystac

        collection = pystac.Collection.from_dict(
            self.collection_document(), href=self.collection_url, preserve_dict=True
        )
        asset = collection.assets.get(self.asset)
        if asset is None:
            raise self._error(
                f"collection {self.collection!r} has no asset {self.asset!r}; its assets are "
                f"{sorted(collection.assets)}",
                kind="definition",
            )
        asset = asset.clone()
        asset.href = asset.get_absolute_href() or asset.href
        if self.sign:
            import planetary_computer

            asset = planetary_computer.sign(asset)
        return asset

    def open(
        self,
        *,
        bbox: tuple[float, float, float, float] | None = None,
        time_range: TimeRange | None = None,
        chunks: int | None = None,
    ) -> xr.DataArray:
        """Open the variable over ``bbox`` and ``time_range``, lazily (the store's chunks).

        See :meth:`cas_xr.sources.LocalSource.open` for the parameters, the result and
        the errors; the collection's errors are :class:`~cas_xr.errors.SourceError` too.
        """
        asset = self.stac_asset()
        _require_filesystem(asset.href, f"collection {self.collection!r}, asset {self.asset!r}")
        store_options = dict(asset.extra_fields.get("xarray:storage_options") or {})
        open_kwargs = asset.extra_fields.get("xarray:open_kwargs") or {}
        store = LocalSource(
            path=asset.href,
            format="zarr",
            provider=self.provider,
            protocol=self.protocol,
            array=self.array,
            crs=self.crs,
            nodata=self.nodata,
            temporal=self.temporal,
            storage_options={**store_options, **self.storage_options},
            consolidated=open_kwargs.get("consolidated"),
        )
        da = store.open(bbox=bbox, time_range=time_range, chunks=chunks)
        da.attrs["cas_provenance"] = {
            "protocol": self.protocol,
            "endpoint": self.endpoint,
            "collection": self.collection,
            "asset": self.asset,
            "href": public_url(asset.href),
        }
        return da


#: the extra that installs the filesystem of a URL scheme (Planetary Computer's Zarr stores)
_EXTRAS = {"abfs": "planetary", "az": "planetary"}


def _require_filesystem(href: str, what: str) -> None:
    """Raise if the fsspec filesystem of ``href``'s scheme needs a package not installed."""
    import fsspec

    scheme = href.split("://", 1)[0] if "://" in href else "file"
    try:
        fsspec.get_filesystem_class(scheme)
    except ImportError as err:
        extra = _EXTRAS.get(scheme)
        hint = f" (or pip install 'cas-xr[{extra}]')" if extra else ""
        raise MissingDependencyError(
            f"{what} is a {scheme}:// store, which fsspec cannot read: {err}{hint}"
        ) from None
    except ValueError:
        return  # a scheme fsspec does not know: opening the store says so


def from_definition(provider: ProviderDefinition, dataset: DatasetDefinition) -> StacZarrSource:
    """The source of ``dataset`` of a ``stac_zarr`` provider (catalog factory).

    Raises
    ------
    ProviderDefinitionError
        If the merged ``options`` do not match :class:`StacZarrOptions`.
    MissingDependencyError
        If ``sign: planetary_computer`` and the package is not installed.
    """
    try:
        options = StacZarrOptions.model_validate(provider.options_for(dataset))
    except ValidationError as err:
        problems = validation_problems(err, "options")
        raise ProviderDefinitionError(
            f"invalid stac_zarr options of dataset {dataset.name!r} of provider "
            f"{provider.slug!r}: {problems}"
        ) from None
    if options.sign == "planetary_computer":
        try:
            import planetary_computer  # noqa: F401
        except ImportError:
            raise MissingDependencyError(
                "sign: planetary_computer needs the planetary-computer package: "
                "pip install planetary-computer (or pip install 'cas-xr[planetary]', which "
                "also installs adlfs for Planetary Computer's abfs:// Zarr stores)"
            ) from None
    return StacZarrSource(
        endpoint=provider.endpoint,
        collection=dataset.collection or dataset.name,
        asset=dataset.asset,
        array=dataset.array,
        provider=provider.slug,
        crs=dataset.crs if "crs" in dataset.model_fields_set else None,
        nodata=dataset.variables[0].nodata_value,
        temporal=dataset.is_temporal,
        storage_options=options.storage_options,
        sign=options.sign is not None,
    )
