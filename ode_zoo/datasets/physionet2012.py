"""PhysioNet/Computing in Cardiology Challenge 2012 (Silva et al. 2012): 8,000 ICU stays
of 48 hours, 41 irregularly sampled variables, in-hospital death — the Latent ODE
paper's (Rubanova et al. 2019) irregular time-series benchmark.

Files (`set-a.tar.gz`, `set-b.tar.gz`, `Outcomes-a.txt`, `Outcomes-b.txt`) are found
through `ode_zoo.datasets.data_files.find_data_file(name, "physionet2012")`: `data_dir`,
`$ODE_ZOO_DATA/physionet2012`, `$ODE_ZOO_DATA`, then the Keras cache. Each record file
holds `Time,Parameter,Value` rows (`HH:MM` since admission); −1 marks a missing value
and the `RecordID` row is not a variable.

Per patient, a time step is one distinct time (a minute, or a point of the
`round_hours` grid) at which at least one variable is observed; several observations of a
variable at one time step are averaged. Patients are sorted by RecordID. Splits by
RecordID: "test" RecordID % 5 == 0, "validation" RecordID % 10 == 1, "train" the rest,
"all" everything (1,593 / 778 / 5,629 / 8,000 patients; 213 / 97 / 812 / 1,122 deaths).

Parsing the tarballs (3.5 million observations) takes 5–10 s, so the parsed observations
are cached in `~/.keras/datasets/physionet2012_<md5 of the four files>.npz` (written
atomically; `$KERAS_HOME` moves it); later loads of "all" take about 1.5 s, mostly
filling the padded arrays (2 × 270 MB).

Example:
    >>> data = physionet2012("validation", round_hours=0.1)          # doctest: +SKIP
    >>> data.values.shape, data.labels.sum()                         # doctest: +SKIP
    ((778, 166, 41), 97)
    >>> ranges = variable_ranges()                                   # doctest: +SKIP
    >>> x = scale_values(data.values, data.mask, ranges)             # doctest: +SKIP
    >>> float(x.min()) >= 0.0 and float(x.max()) <= 1.0              # doctest: +SKIP
    True
"""
from __future__ import annotations

import hashlib
import os
import tarfile
import tempfile
import warnings
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional, Tuple

import numpy as np

from ode_zoo.datasets.data_files import find_data_file

FOLDER = "physionet2012"
SETS = (("set-a.tar.gz", "Outcomes-a.txt"), ("set-b.tar.gz", "Outcomes-b.txt"))
VARIABLES = ("Age", "Gender", "Height", "ICUType", "Weight", "Albumin", "ALP", "ALT", "AST",
             "Bilirubin", "BUN", "Cholesterol", "Creatinine", "DiasABP", "FiO2", "GCS",
             "Glucose", "HCO3", "HCT", "HR", "K", "Lactate", "Mg", "MAP", "MechVent", "Na",
             "NIDiasABP", "NIMAP", "NISysABP", "PaCO2", "PaO2", "pH", "Platelets", "RespRate",
             "SaO2", "SysABP", "Temp", "TroponinI", "TroponinT", "Urine", "WBC")
NUM_VARIABLES = len(VARIABLES)
SPLITS = ("train", "validation", "test", "all")
HOURS = 48.0
MISSING = -1.0
LABEL_COLUMN = "In-hospital_death"
CACHE_VERSION = 1          # bump when the parsed format or parsing rules change
_INDEX = {name: i for i, name in enumerate(VARIABLES)}


class PhysioNet2012(NamedTuple):
    """Padded irregular series of N patients, sorted by RecordID; T = the longest series.

    Attributes:
      record_ids: int64 [N].
      times: float32 [N, T], hours since admission, increasing along a row; after a
        row's `lengths[i]` steps it repeats the row's last time.
      values: float32 [N, T, 41] in the files' raw units, 0 where unobserved or padding.
      mask: float32 [N, T, 41], 1 where a value was observed.
      lengths: int64 [N], the number of time steps of each patient.
      labels: int64 [N], in-hospital death (1) or survival (0).
      variables: the 41 variable names, the order of the last axis.
    """
    record_ids: np.ndarray
    times: np.ndarray
    values: np.ndarray
    mask: np.ndarray
    lengths: np.ndarray
    labels: np.ndarray
    variables: Tuple[str, ...]


class VariableRanges(NamedTuple):
    """Per-variable float32 [41] minimum and maximum of the observed values."""
    minimum: np.ndarray
    maximum: np.ndarray


class _Parsed(NamedTuple):
    """All observations, one row each (repeats not yet merged)."""
    record_ids: np.ndarray   # int64 [N], sorted
    labels: np.ndarray       # int64 [N]
    patient: np.ndarray      # int32 [M], index into record_ids
    minute: np.ndarray       # int32 [M], minutes since admission
    variable: np.ndarray     # int8 [M], index into VARIABLES
    value: np.ndarray        # float64 [M]


def in_split(record_ids: np.ndarray, split: str) -> np.ndarray:
    """Boolean [N]: which RecordIDs belong to `split` (one of `SPLITS`).

    Example:
        >>> in_split(np.array([132540, 132541, 132542]), "test").tolist()
        [True, False, False]
        >>> in_split(np.array([132540, 132541, 132542]), "validation").tolist()
        [False, True, False]
    """
    if split not in SPLITS:
        raise ValueError(f"Unknown PhysioNet 2012 split {split!r}; available splits are "
                         f"{list(SPLITS)}.")
    ids = np.asarray(record_ids, dtype=np.int64)
    test, validation = ids % 5 == 0, ids % 10 == 1
    return {"test": test, "validation": validation, "train": ~(test | validation),
            "all": np.ones(ids.shape, bool)}[split]


def _parse_time(text: str, where: str) -> int:
    hours, sep, minutes = text.partition(":")
    if not sep or not hours.isdigit() or not minutes.isdigit() or int(minutes) >= 60:
        raise ValueError(f"{where}: time {text!r} is not HH:MM.")
    return int(hours) * 60 + int(minutes)


def _parse_record(text: str, where: str, record_id: int, out: List[list], patient: int) -> None:
    """Append the observed (patient, minute, variable, value) rows of one record file."""
    lines = text.splitlines()
    if not lines or lines[0].strip() != "Time,Parameter,Value":
        raise ValueError(f"{where}: expected the header 'Time,Parameter,Value'.")
    patients, minutes, variables, values = out
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = line.split(",")
        if len(fields) != 3:
            raise ValueError(f"{where}, line {number}: expected Time,Parameter,Value, got "
                             f"{line!r}.")
        time, name, text_value = fields
        try:
            value = float(text_value)
        except ValueError:
            raise ValueError(f"{where}, line {number}: value {text_value!r} is not a number."
                             ) from None
        if name == "RecordID":
            if value != record_id:
                raise ValueError(f"{where}: RecordID {text_value} does not match the file "
                                 f"name.")
            continue
        if name not in _INDEX:
            raise ValueError(f"{where}, line {number}: unknown parameter {name!r}.")
        minute = _parse_time(time, f"{where}, line {number}")
        if value == MISSING:
            continue
        patients.append(patient)
        minutes.append(minute)
        variables.append(_INDEX[name])
        values.append(value)


def _read_outcomes(path: Path) -> Dict[int, int]:
    lines = path.read_text().splitlines()
    header = lines[0].strip().split(",") if lines else []
    if "RecordID" not in header or LABEL_COLUMN not in header:
        raise ValueError(f"{path}: expected a header with RecordID and {LABEL_COLUMN} "
                         f"columns, got {header}.")
    id_column, label_column = header.index("RecordID"), header.index(LABEL_COLUMN)
    labels = {}
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = line.strip().split(",")
        try:
            record_id, label = int(fields[id_column]), int(fields[label_column])
        except (ValueError, IndexError):
            raise ValueError(f"{path}, line {number}: cannot read RecordID and "
                             f"{LABEL_COLUMN} from {line!r}.") from None
        if label not in (0, 1):
            raise ValueError(f"{path}, line {number}: {LABEL_COLUMN} is {label}, not 0 or 1.")
        labels[record_id] = label
    return labels


def _parse(paths: Dict[str, Path]) -> _Parsed:
    """Read both sets and their outcomes (the slow part: 5–10 s for the real data)."""
    texts: Dict[int, Tuple[str, str]] = {}
    labels: Dict[int, int] = {}
    for tar_name, outcomes_name in SETS:
        outcomes = _read_outcomes(paths[outcomes_name])
        try:
            with tarfile.open(paths[tar_name], "r:gz") as archive:
                for member in archive:
                    if not (member.isfile() and member.name.endswith(".txt")):
                        continue
                    where = f"{paths[tar_name]}:{member.name}"
                    stem = Path(member.name).stem
                    if not stem.isdigit():
                        raise ValueError(f"{where}: record files are named <RecordID>.txt.")
                    record_id = int(stem)
                    if record_id in texts:
                        raise ValueError(f"{where}: RecordID {record_id} appears twice.")
                    if record_id not in outcomes:
                        raise ValueError(f"{where}: RecordID {record_id} has no row in "
                                         f"{paths[outcomes_name]}.")
                    texts[record_id] = (archive.extractfile(member).read().decode(), where)
                    labels[record_id] = outcomes[record_id]
        except (tarfile.TarError, OSError, EOFError) as e:
            raise ValueError(f"Cannot read {paths[tar_name]}: {e}. Replace it with the "
                             "original.") from e
    record_ids = np.array(sorted(texts), dtype=np.int64)
    out: List[list] = [[], [], [], []]
    for patient, record_id in enumerate(record_ids.tolist()):
        text, where = texts[record_id]
        _parse_record(text, where, record_id, out, patient)
    patients, minutes, variables, values = out
    return _Parsed(record_ids, np.array([labels[i] for i in record_ids.tolist()], np.int64),
                   np.array(patients, np.int32), np.array(minutes, np.int32),
                   np.array(variables, np.int8), np.array(values, np.float64))


def _cache_path(paths: Dict[str, Path]) -> Path:
    digest = hashlib.md5(f"v{CACHE_VERSION}".encode())
    for name in sorted(paths):
        digest.update(name.encode())
        digest.update(hashlib.md5(paths[name].read_bytes()).digest())
    keras_home = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))
    return keras_home / "datasets" / f"physionet2012_{digest.hexdigest()[:16]}.npz"


def _load_parsed(data_dir: Optional[str], cache: bool) -> _Parsed:
    paths = {name: find_data_file(name, FOLDER, data_dir) for pair in SETS for name in pair}
    if not cache:
        return _parse(paths)
    path = _cache_path(paths)
    if path.is_file():
        try:
            with np.load(path) as archive:
                return _Parsed(**{field: archive[field] for field in _Parsed._fields})
        except Exception as e:  # corrupt or foreign cache: parse again and replace it
            warnings.warn(f"Ignoring unreadable PhysioNet 2012 cache {path}: {e}.")
    parsed = _parse(paths)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".npz.tmp")
        try:
            with os.fdopen(handle, "wb") as f:
                np.savez(f, **parsed._asdict())
            os.chmod(temporary, 0o644)
            os.replace(temporary, path)
        finally:
            if os.path.exists(temporary):
                os.remove(temporary)
    except OSError as e:
        warnings.warn(f"Could not write the PhysioNet 2012 cache {path}: {e}.")
    return parsed


def _pad(parsed: _Parsed, keep: np.ndarray, round_hours: Optional[float]) -> PhysioNet2012:
    """Merge each patient's observations into time steps and pad them to [N, T, 41]."""
    n = int(keep.sum())
    position = np.cumsum(keep) - 1                       # patient index -> row in the split
    rows = keep[parsed.patient]
    patient = position[parsed.patient[rows]].astype(np.int64)
    minute, variable, value = parsed.minute[rows], parsed.variable[rows], parsed.value[rows]
    if round_hours is None:
        step_key, step_hours = minute.astype(np.int64), 1.0 / 60.0
    else:
        step_key = np.rint(minute / 60.0 / round_hours).astype(np.int64)
        step_hours = float(round_hours)
    width = int(step_key.max()) + 1 if step_key.size else 1
    steps, step_of = np.unique(patient * width + step_key, return_inverse=True)
    step_patient, step_times = steps // width, (steps % width) * step_hours
    lengths = np.bincount(step_patient, minlength=n).astype(np.int64)
    first = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    step_rank = np.arange(steps.size) - first[step_patient]
    cells, cell_of = np.unique(step_of.reshape(-1) * NUM_VARIABLES + variable,
                               return_inverse=True)
    means = (np.bincount(cell_of.reshape(-1), weights=value)
             / np.bincount(cell_of.reshape(-1)))
    cell_step, cell_variable = cells // NUM_VARIABLES, cells % NUM_VARIABLES
    longest = int(lengths.max()) if n else 0
    values = np.zeros((n, longest, NUM_VARIABLES), np.float32)
    mask = np.zeros((n, longest, NUM_VARIABLES), np.float32)
    flat = (step_patient[cell_step] * longest + step_rank[cell_step]) * NUM_VARIABLES
    flat += cell_variable
    values.reshape(-1)[flat] = means
    mask.reshape(-1)[flat] = 1.0
    last = np.minimum(np.arange(longest)[None, :], np.maximum(lengths, 1)[:, None] - 1)
    step_times = np.concatenate([step_times, [0.0]])    # patients without steps: time 0
    index = np.where(lengths[:, None] > 0, first[:, None] + last, steps.size)
    times = step_times[index].astype(np.float32)
    return PhysioNet2012(parsed.record_ids[keep], times, values, mask, lengths,
                         parsed.labels[keep], VARIABLES)


def physionet2012(split: str = "train", data_dir: Optional[str] = None,
                  round_hours: Optional[float] = None, cache: bool = True) -> PhysioNet2012:
    """The patients of `split` ("train", "validation", "test" or "all") as padded series.

    Args:
      split: by RecordID — "test" % 5 == 0, "validation" % 10 == 1, "train" the rest.
      data_dir: a directory holding the four files, searched before `$ODE_ZOO_DATA`.
      round_hours: if given (e.g. 0.1, as the Latent ODE code does), times are rounded to
        the nearest multiple of it and observations that then share a time are merged,
        averaging each variable over all its observations at that time.
      cache: read / write the parsed files' cache in the Keras cache directory.

    Raises:
      FileNotFoundError: a file is missing; the message names it, where it looked and
        how to point ODE_ZOO_DATA at it.
      ValueError: an unknown split, a bad `round_hours` or a malformed file (named).

    Example:
        >>> data = physionet2012("test")                             # doctest: +SKIP
        >>> data.values.shape, data.lengths.max(), data.labels.mean()  # doctest: +SKIP
        ((1593, 203, 41), 203, 0.13...)
    """
    if split not in SPLITS:
        raise ValueError(f"Unknown PhysioNet 2012 split {split!r}; available splits are "
                         f"{list(SPLITS)}.")
    if round_hours is not None and not (np.isfinite(round_hours) and round_hours > 0):
        raise ValueError(f"round_hours must be a positive number of hours or None, got "
                         f"{round_hours!r}.")
    parsed = _load_parsed(data_dir, cache)
    return _pad(parsed, in_split(parsed.record_ids, split), round_hours)


def variable_ranges(data_dir: Optional[str] = None, cache: bool = True) -> VariableRanges:
    """Minimum and maximum of each variable's observed values over all 8,000 patients.

    Averaging repeats or rounding times keeps values inside these ranges. A variable
    never observed gets the range [0, 0].

    Example:
        >>> ranges = variable_ranges()                               # doctest: +SKIP
        >>> float(ranges.maximum[VARIABLES.index("Age")])            # doctest: +SKIP
        90.0
    """
    parsed = _load_parsed(data_dir, cache)
    minimum = np.full(NUM_VARIABLES, np.inf)
    maximum = np.full(NUM_VARIABLES, -np.inf)
    np.minimum.at(minimum, parsed.variable.astype(np.int64), parsed.value)
    np.maximum.at(maximum, parsed.variable.astype(np.int64), parsed.value)
    never = ~np.isfinite(minimum)
    minimum[never], maximum[never] = 0.0, 0.0
    return VariableRanges(minimum.astype(np.float32), maximum.astype(np.float32))


def _span(ranges: VariableRanges) -> Tuple[np.ndarray, np.ndarray]:
    minimum = np.asarray(ranges.minimum, np.float32)
    span = np.asarray(ranges.maximum, np.float32) - minimum
    return minimum, np.where(span > 0, span, np.float32(1.0)).astype(np.float32)


def scale_values(values, mask, ranges: VariableRanges):
    """Values [..., 41] scaled to [0, 1] by `(v - minimum) / (maximum - minimum)`, 0 where
    `mask` is 0. A constant variable (maximum == minimum, e.g. MechVent, always 1) is only
    shifted, so it scales to 0 and only its mask tells that it was observed.

    Plain arithmetic, so numpy arrays and TensorFlow tensors both work. (The Latent ODE
    code divides by the maximum rather than the span; with the min-max span every
    observed value lands in [0, 1].)

    Example:
        >>> ranges = VariableRanges(np.zeros(41, np.float32), np.full(41, 4.0, np.float32))
        >>> v, m = np.full((1, 41), 2.0, np.float32), np.ones((1, 41), np.float32)
        >>> m[0, 1] = 0.0
        >>> scale_values(v, m, ranges)[0, :3].tolist()
        [0.5, 0.0, 0.5]
        >>> unscale_values(scale_values(v, m, ranges), m, ranges)[0, :3].tolist()
        [2.0, 0.0, 2.0]
    """
    minimum, span = _span(ranges)
    return (values - minimum) / span * mask


def unscale_values(scaled, mask, ranges: VariableRanges):
    """The inverse of `scale_values`: raw units, 0 where `mask` is 0."""
    minimum, span = _span(ranges)
    return (scaled * span + minimum) * mask
