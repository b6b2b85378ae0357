"""The local points-of-interest file (config `poi.file`): CSV with header `name,category,lat,lon`.

Bad rows (wrong column count, empty name, unparseable or out-of-range coordinates) are skipped
and counted, never fatal. Categories are folded to the canonical intent categories through
`canonical_category` (so a file may say "gas_station" or "Petrol"), and `nearest` finds the
closest POI of a category by great-circle (haversine) distance.
"""

from __future__ import annotations

import csv
import logging
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

EARTH_RADIUS_M = 6_371_008.8
REQUIRED_COLUMNS = ("name", "category", "lat", "lon")


@dataclass(frozen=True, slots=True)
class Poi:
    name: str
    category: str
    lat: float
    lon: float


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi = phi2 - phi1
    dlmb = math.radians(lon2 - lon1)
    a = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlmb / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def _identity(category: str) -> str:
    return " ".join(category.strip().lower().replace("_", " ").split())


@dataclass
class PoiIndex:
    """POIs grouped by canonical category."""

    path: str = ""
    by_category: dict[str, list[Poi]] = field(default_factory=dict)
    skipped_rows: int = 0

    @classmethod
    def load(cls, csv_path: str | Path, canonical_category: Callable[[str], str | None] | None = None) -> PoiIndex:
        """Read the CSV; raises OSError if the file cannot be read, ValueError if the header is wrong."""
        path = Path(csv_path).expanduser()
        with path.open(newline="", encoding="utf-8-sig") as fh:
            return cls.from_rows(csv.reader(fh), canonical_category, str(path))

    @classmethod
    def from_rows(
        cls,
        rows: Iterable[list[str]],
        canonical_category: Callable[[str], str | None] | None = None,
        path: str = "",
    ) -> PoiIndex:
        canon = canonical_category or _identity
        it = iter(rows)
        header = [h.strip().lower() for h in next(it, [])]
        missing = [c for c in REQUIRED_COLUMNS if c not in header]
        if missing:
            raise ValueError(f"POI file {path or '<rows>'}: header must include {', '.join(REQUIRED_COLUMNS)}")
        col = {name: header.index(name) for name in REQUIRED_COLUMNS}
        index = cls(path=path)
        for row in it:
            if not row or all(not cell.strip() for cell in row):
                continue
            poi = _parse_row(row, col, canon)
            if poi is None:
                index.skipped_rows += 1
                continue
            index.by_category.setdefault(poi.category, []).append(poi)
        if index.skipped_rows:
            log.warning("POI file %s: skipped %d bad rows", path or "<rows>", index.skipped_rows)
        return index

    def __len__(self) -> int:
        return sum(len(v) for v in self.by_category.values())

    @property
    def categories(self) -> frozenset[str]:
        return frozenset(self.by_category)

    def nearest(self, category: str, lat: float, lon: float) -> tuple[Poi, float] | None:
        """The closest POI of a canonical category and its distance in metres, or None."""
        best: tuple[Poi, float] | None = None
        for poi in self.by_category.get(category, ()):
            d = haversine_m(lat, lon, poi.lat, poi.lon)
            if best is None or d < best[1]:
                best = (poi, d)
        return best


def _parse_row(row: list[str], col: dict[str, int], canon: Callable[[str], str | None]) -> Poi | None:
    if len(row) <= max(col.values()):
        return None
    name = " ".join(row[col["name"]].split())
    category = canon(row[col["category"]])
    if not name or not category:
        return None
    try:
        lat = float(row[col["lat"]])
        lon = float(row[col["lon"]])
    except ValueError:
        return None
    if not (math.isfinite(lat) and math.isfinite(lon) and -90 <= lat <= 90 and -180 <= lon <= 180):
        return None
    return Poi(name=name[:200], category=category, lat=lat, lon=lon)


def load_poi_index(path: str, canonical_category: Callable[[str], str | None] | None = None) -> PoiIndex | None:
    """The index, or None (with one warning) when no file is configured or it cannot be read."""
    if not path:
        return None
    try:
        return PoiIndex.load(path, canonical_category)
    except (OSError, ValueError, csv.Error) as err:
        log.warning("POI file %s not usable: %s", path, err)
        return None
