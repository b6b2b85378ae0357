"""POI CSV loading and nearest-of-category search."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_slm.intent.respond import canonical_category
from edge_slm.nav.poi import PoiIndex, haversine_m, load_poi_index

CSV = """name,category,lat,lon
Shell Main St,fuel,52.5200,13.4100
Aral Far Away,gas station,52.6000,13.5000
Ionity,charging,52.5300,13.4000
Broken row,fuel,not-a-number,13.4
,fuel,52.52,13.41
Too,few
Pole,fuel,95,13.4
Cafe Uno,Coffee Shop,52.5201,13.4049
Toilet,restroom,52.52,13.40
"""


def test_haversine_known_distance() -> None:
    # one degree of latitude is about 111.2 km
    assert haversine_m(0.0, 0.0, 1.0, 0.0) == pytest.approx(111_195, rel=1e-3)
    assert haversine_m(52.52, 13.405, 52.52, 13.405) == 0.0


def test_load_skips_and_counts_bad_rows(tmp_path: Path) -> None:
    path = tmp_path / "pois.csv"
    path.write_text(CSV)
    index = PoiIndex.load(path, canonical_category)
    assert index.skipped_rows == 4
    assert len(index) == 5
    assert index.categories == {"fuel", "charging", "coffee", "restroom"}


def test_nearest_of_category(tmp_path: Path) -> None:
    path = tmp_path / "pois.csv"
    path.write_text(CSV)
    index = PoiIndex.load(path, canonical_category)
    found = index.nearest("fuel", 52.52, 13.405)
    assert found is not None
    poi, metres = found
    assert poi.name == "Shell Main St"
    assert metres == pytest.approx(haversine_m(52.52, 13.405, 52.52, 13.41))
    assert index.nearest("hospital", 52.52, 13.405) is None


def test_header_required(tmp_path: Path) -> None:
    path = tmp_path / "pois.csv"
    path.write_text("title,kind,x,y\nA,fuel,1,2\n")
    with pytest.raises(ValueError):
        PoiIndex.load(path)
    assert load_poi_index(str(path)) is None


def test_missing_file_is_none(tmp_path: Path) -> None:
    assert load_poi_index(str(tmp_path / "missing.csv")) is None
    assert load_poi_index("") is None


def test_header_order_and_extra_columns() -> None:
    rows = [["lat", "lon", "name", "category", "note"], ["52.5", "13.4", "X", "hotel", "nice"]]
    index = PoiIndex.from_rows(rows, canonical_category)
    assert index.nearest("hotel", 52.5, 13.4) is not None


def test_sample_file_loads_every_category() -> None:
    sample = Path(__file__).resolve().parents[1] / "data" / "pois_sample.csv"
    index = PoiIndex.load(sample, canonical_category)
    assert index.skipped_rows == 0
    assert index.categories == {"fuel", "charging", "parking", "restaurant", "coffee", "hospital", "pharmacy",
                                "hotel", "atm", "supermarket"}  # fmt: skip
