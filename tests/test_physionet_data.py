"""PhysioNet 2012 loading: parsing rules on a tiny synthetic copy of the files, and the
real data (when present) — split rule, sizes, deaths, determinism."""
from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import pytest

from ode_zoo.datasets import physionet2012
from ode_zoo.datasets.physionet2012 import (VARIABLES, VariableRanges, in_split, scale_values,
                                            unscale_values, variable_ranges)

V = {name: i for i, name in enumerate(VARIABLES)}
H = 1.0 / 60.0                       # one minute in hours

# --- a tiny synthetic copy -------------------------------------------------------------

RECORDS_A = {
    132540: """00:00,RecordID,132540
00:00,Age,54
00:00,Gender,0
00:00,Height,-1
00:00,ICUType,4
00:00,Weight,-1
00:07,HR,73
00:07,HR,77
00:07,Temp,35.1
01:30,WBC,10.5
01:30,pH,7.4
48:00,Urine,100
""",
    132541: """00:00,RecordID,132541
00:00,Age,70
00:02,HR,80
00:04,HR,90
00:04,HR,96
00:05,HR,100
00:05,MechVent,1
00:08,HR,60
00:10,HR,50
02:00,Weight,-1
""",
}
RECORDS_B = {
    132542: """00:00,RecordID,132542
00:00,Age,30
10:00,Albumin,3
""",
}
OUTCOMES = {132540: 1, 132541: 0, 132542: 1}


def _write_tarball(path: Path, folder: str, records: dict) -> None:
    with tarfile.open(path, "w:gz") as archive:
        directory = tarfile.TarInfo(folder)
        directory.type = tarfile.DIRTYPE
        archive.addfile(directory)
        for record_id, body in records.items():
            data = ("Time,Parameter,Value\n" + body).encode()
            info = tarfile.TarInfo(f"{folder}/{record_id}.txt")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))


def _write_outcomes(path: Path, records: dict) -> None:
    rows = [f"{i},10,5,7,-1,{OUTCOMES[i]}" for i in records]
    path.write_text("RecordID,SAPS-I,SOFA,Length_of_stay,Survival,In-hospital_death\n"
                    + "\n".join(rows) + "\n")


@pytest.fixture
def tiny(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """ODE_ZOO_DATA with a 3-patient physionet2012/; the Keras cache in tmp_path."""
    folder = tmp_path / "data" / "physionet2012"
    folder.mkdir(parents=True)
    _write_tarball(folder / "set-a.tar.gz", "set-a", RECORDS_A)
    _write_tarball(folder / "set-b.tar.gz", "set-b", RECORDS_B)
    _write_outcomes(folder / "Outcomes-a.txt", RECORDS_A)
    _write_outcomes(folder / "Outcomes-b.txt", RECORDS_B)
    monkeypatch.setenv("ODE_ZOO_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    return folder


def test_times_missing_values_repeats_order_labels_and_padding(tiny):
    data = physionet2012("all")
    assert data.variables == VARIABLES and len(VARIABLES) == 41
    assert VARIABLES[:5] == ("Age", "Gender", "Height", "ICUType", "Weight")
    assert VARIABLES[-1] == "WBC" and VARIABLES[24] == "MechVent"
    assert data.record_ids.tolist() == [132540, 132541, 132542]
    assert data.labels.tolist() == [1, 0, 1]
    assert data.lengths.tolist() == [4, 6, 2]        # 02:00 holds only a −1: no time step
    assert data.values.shape == data.mask.shape == (3, 6, 41) and data.times.shape == (3, 6)
    assert {a.dtype for a in (data.times, data.values, data.mask)} == {np.dtype(np.float32)}
    np.testing.assert_allclose(data.times[0], [0, 7 * H, 1.5, 48, 48, 48], rtol=1e-6)
    np.testing.assert_allclose(data.times[1], [0, 2 * H, 4 * H, 5 * H, 8 * H, 10 * H],
                               rtol=1e-6)
    np.testing.assert_allclose(data.times[2], [0, 10, 10, 10, 10, 10])
    first = data.values[0]
    assert first[0, V["Age"]] == 54 and first[0, V["ICUType"]] == 4
    assert data.mask[0, 0, V["Gender"]] == 1 and first[0, V["Gender"]] == 0   # observed 0
    assert data.mask[0, 0, V["Height"]] == 0 and data.mask[0, 0, V["Weight"]] == 0
    assert data.mask[0, 0].sum() == 3                                         # Age, Gender, ICU
    assert first[1, V["HR"]] == 75 and data.mask[0, 1].sum() == 2             # (73 + 77) / 2
    assert first[1, V["Temp"]] == pytest.approx(35.1)
    assert first[2, V["pH"]] == pytest.approx(7.4) and first[2, V["WBC"]] == 10.5
    assert first[3, V["Urine"]] == 100
    assert data.values[1, 2, V["HR"]] == 93 and data.values[1, 3, V["MechVent"]] == 1
    assert data.values[2, 1, V["Albumin"]] == 3
    for row, length in enumerate(data.lengths):                               # padding
        assert data.mask[row, length:].sum() == 0 and data.values[row, length:].sum() == 0
    assert int(data.mask.sum()) == 17
    np.testing.assert_array_equal(data.values * (1 - data.mask), 0)


def test_rounding_merges_observations_averaging_each_variable(tiny):
    data = physionet2012("all", round_hours=0.1)
    assert data.lengths.tolist() == [4, 3, 2] and data.times.shape == (3, 4)
    np.testing.assert_allclose(data.times[1], [0.0, 0.1, 0.2, 0.2], rtol=1e-6)
    np.testing.assert_allclose(data.times[0], [0.0, 0.1, 1.5, 48.0], rtol=1e-6)   # 00:07
    merged = data.values[1]
    assert merged[0, V["Age"]] == 70 and merged[0, V["HR"]] == 80          # 00:00, 00:02
    assert merged[1, V["HR"]] == pytest.approx((90 + 96 + 100 + 60) / 4)   # 00:04–00:08
    assert merged[1, V["MechVent"]] == 1 and data.mask[1, 1].sum() == 2
    assert merged[2, V["HR"]] == 50                                        # 00:10
    assert data.mask[1, 3].sum() == 0
    coarse = physionet2012("all", round_hours=6.0)
    assert coarse.lengths.tolist() == [2, 1, 2]          # 0–1.5 h → 0, 48 h; 10 h → 12 h
    np.testing.assert_allclose(coarse.times, [[0, 48], [0, 0], [0, 12]])
    assert coarse.values[0, 0, V["HR"]] == 75 and coarse.values[0, 0, V["WBC"]] == 10.5
    assert coarse.values[1, 0, V["HR"]] == pytest.approx((80 + 90 + 96 + 100 + 60 + 50) / 6)
    assert coarse.values[2, 1, V["Albumin"]] == 3


def test_split_rule_and_split_padding(tiny):
    ids = np.arange(100, 140)
    test, validation, train = (in_split(ids, s) for s in ("test", "validation", "train"))
    np.testing.assert_array_equal(test, ids % 5 == 0)
    np.testing.assert_array_equal(validation, ids % 10 == 1)
    assert (test.astype(int) + validation + train == 1).all() and in_split(ids, "all").all()
    assert physionet2012("test").record_ids.tolist() == [132540]
    validation_data = physionet2012("validation")
    assert validation_data.record_ids.tolist() == [132541]
    train_data = physionet2012("train")
    assert train_data.record_ids.tolist() == [132542] and train_data.values.shape == (1, 2, 41)
    np.testing.assert_array_equal(validation_data.values[0],
                                  physionet2012("all").values[1])
    with pytest.raises(ValueError, match="available splits"):
        physionet2012("valid")
    with pytest.raises(ValueError, match="round_hours"):
        physionet2012("all", round_hours=0.0)


def test_missing_file_says_which_where_and_how(tiny, tmp_path):
    (tiny / "Outcomes-b.txt").unlink()
    with pytest.raises(FileNotFoundError) as error:
        physionet2012("all")
    message = str(error.value)
    assert "Outcomes-b.txt" in message and str(tiny) in message
    assert "ODE_ZOO_DATA" in message and "physionet2012/Outcomes-b.txt" in message


def test_malformed_lines_are_named(tiny):
    bad = dict(RECORDS_B)
    bad[132542] += "7:5x,HR,80\n"
    _write_tarball(tiny / "set-b.tar.gz", "set-b", bad)
    with pytest.raises(ValueError, match=r"set-b/132542.txt, line 5: time '7:5x'"):
        physionet2012("all", cache=False)
    bad[132542] = RECORDS_B[132542] + "01:00,Lactose,1\n"
    _write_tarball(tiny / "set-b.tar.gz", "set-b", bad)
    with pytest.raises(ValueError, match="unknown parameter 'Lactose'"):
        physionet2012("all", cache=False)


def test_cache_is_written_once_and_gives_the_same_arrays(tiny, tmp_path):
    fresh = physionet2012("all", cache=False)
    assert not (tmp_path / "keras").exists()
    first = physionet2012("all")
    cached = list((tmp_path / "keras" / "datasets").glob("physionet2012_*.npz"))
    assert len(cached) == 1 and not list(cached[0].parent.glob("*.tmp"))
    again = physionet2012("all")
    for a, b, c in zip(fresh, first, again):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
    cached[0].write_bytes(b"not an npz")                    # a corrupt cache is replaced
    with pytest.warns(UserWarning, match="unreadable"):
        repaired = physionet2012("all")
    with np.load(cached[0]) as archive:
        assert "record_ids" in archive
    (tiny / "Outcomes-a.txt").write_text((tiny / "Outcomes-a.txt").read_text() + "\n")
    physionet2012("all")                                     # new bytes: a new cache file
    assert len(list(cached[0].parent.glob("physionet2012_*.npz"))) == 2
    np.testing.assert_array_equal(repaired.values, fresh.values)


def test_variable_ranges_and_scaling(tiny):
    ranges = variable_ranges()
    assert ranges.minimum.shape == ranges.maximum.shape == (41,)
    assert (ranges.minimum[V["HR"]], ranges.maximum[V["HR"]]) == (50, 100)
    assert (ranges.minimum[V["Age"]], ranges.maximum[V["Age"]]) == (30, 70)
    assert ranges.minimum[V["Height"]] == ranges.maximum[V["Height"]] == 0   # never observed
    data = physionet2012("all", round_hours=0.1)
    scaled = scale_values(data.values, data.mask, ranges)
    assert scaled.dtype == np.float32 and scaled.min() >= 0 and scaled.max() <= 1
    assert scaled[1, 2, V["HR"]] == 0 and scaled[0, 0, V["Age"]] == pytest.approx(0.6)
    np.testing.assert_array_equal(scaled * (1 - data.mask), 0)
    np.testing.assert_allclose(unscale_values(scaled, data.mask, ranges), data.values,
                               rtol=1e-6)
    constant = VariableRanges(np.full(41, 2.0, np.float32), np.full(41, 2.0, np.float32))
    assert scale_values(np.full(41, 2.0, np.float32), np.ones(41), constant).max() == 0


# --- the real data ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def real_all(physionet_dir):
    """All 8,000 patients, loaded once (the first run parses and caches, 5–10 s)."""
    return physionet2012("all", data_dir=str(physionet_dir))


def _outcome_ids(path: Path) -> np.ndarray:
    return np.array([int(line.split(",")[0]) for line in path.read_text().splitlines()[1:]
                     if line.strip()])


def test_real_data_sizes_labels_and_times(physionet_dir, real_all):
    data = real_all
    assert data.record_ids.shape == (8000,) and len(np.unique(data.record_ids)) == 8000
    assert (np.diff(data.record_ids) > 0).all()
    assert data.values.shape[2] == 41 and data.variables == VARIABLES
    assert int(data.labels.sum()) == 554 + 568
    for name, deaths in (("Outcomes-a.txt", 554), ("Outcomes-b.txt", 568)):
        ids = _outcome_ids(physionet_dir / name)
        assert len(ids) == 4000
        assert int(data.labels[np.isin(data.record_ids, ids)].sum()) == deaths
    assert data.times.min() == 0 and data.times.max() == 48
    steps = np.arange(data.times.shape[1])[None, 1:] < data.lengths[:, None]
    assert (np.diff(data.times, axis=1)[steps] > 0).all()      # increasing while observed
    assert (np.diff(data.times, axis=1)[~steps] == 0).all()    # then the last time repeats
    assert (data.lengths >= 1).all() and data.lengths.max() == data.times.shape[1]
    assert (data.mask.sum(-1) > 0).sum() == data.lengths.sum()  # every step has a value
    np.testing.assert_array_equal(data.values * (1 - data.mask), 0)
    assert (data.mask[:, 0, V["Age"]] == 1).all()               # descriptors at time 0
    first = data.values[0]                                      # 132539, the first record
    assert data.record_ids[0] == 132539 and data.labels[0] == 0
    assert first[0, V["Age"]] == 54 and first[0, V["ICUType"]] == 4
    assert data.mask[0, 0, V["Height"]] == 0
    assert data.times[0, 1] == pytest.approx(7 * H)
    assert first[1, V["HR"]] == 73 and first[1, V["NIMAP"]] == pytest.approx(92.33)


def test_real_splits_follow_the_record_id_rule(physionet_dir, real_all):
    ids = real_all.record_ids
    seen = []
    for split, rule in (("test", ids % 5 == 0), ("validation", ids % 10 == 1),
                        ("train", (ids % 5 != 0) & (ids % 10 != 1))):
        part = physionet2012(split, data_dir=str(physionet_dir))
        np.testing.assert_array_equal(part.record_ids, ids[rule])
        np.testing.assert_array_equal(part.labels, real_all.labels[rule])
        length = part.times.shape[1]
        assert length == part.lengths.max()
        np.testing.assert_array_equal(part.values, real_all.values[rule, :length])
        seen.append(part.record_ids)
    assert sum(map(len, seen)) == 8000
    np.testing.assert_array_equal(np.sort(np.concatenate(seen)), ids)


def test_real_loading_is_deterministic_and_rounding_merges(physionet_dir, real_all):
    again = physionet2012("all", data_dir=str(physionet_dir))
    for a, b in zip(real_all, again):
        np.testing.assert_array_equal(a, b)
    rounded = physionet2012("all", data_dir=str(physionet_dir), round_hours=0.1)
    np.testing.assert_allclose(rounded.times * 10, np.rint(rounded.times * 10), atol=1e-4)
    assert rounded.times.max() == 48 and (rounded.lengths <= real_all.lengths).all()
    assert rounded.times.shape[1] < real_all.times.shape[1]
    assert rounded.mask.sum() < real_all.mask.sum()
    ranges = variable_ranges(data_dir=str(physionet_dir))
    scaled = scale_values(rounded.values, rounded.mask, ranges)
    assert scaled.min() >= 0 and scaled.max() <= 1
