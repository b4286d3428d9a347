"""A small reader for MATLAB MAT-files of version 5 (the format of
`scipy.io.savemat` and MATLAB's `save -v6/-v7`): real numeric and logical
arrays of any rank, stored plainly or zlib-compressed.

What the zoo's data files hold is all it reads; cells, structs, strings,
sparse and complex arrays, and v7.3 files (HDF5) raise a `ValueError` saying so.

Example:
    >>> arrays = read_mat("mocap35.mat")                            # doctest: +SKIP
    >>> arrays["Xtr"].shape, arrays["Xtr"].dtype                     # doctest: +SKIP
    ((16, 300, 50), dtype('float64'))
"""
from __future__ import annotations

import os
import zlib
from pathlib import Path
from typing import Dict, Tuple, Union

import numpy as np

HEADER_BYTES = 128
_MATRIX, _COMPRESSED = 14, 15
# MAT data types (miINT8 ... miUINT64) as numpy dtypes without byte order.
_DATA_TYPES = {1: "i1", 2: "u1", 3: "i2", 4: "u2", 5: "i4", 6: "u4", 7: "f4", 9: "f8",
               12: "i8", 13: "u8"}
# MAT array classes (mxDOUBLE_CLASS ... mxUINT64_CLASS) as numpy dtypes.
_NUMERIC_CLASSES = {6: "f8", 7: "f4", 8: "i1", 9: "u1", 10: "i2", 11: "u2", 12: "i4", 13: "u4",
                    14: "i8", 15: "u8"}
_OTHER_CLASSES = {1: "cell", 2: "struct", 3: "object", 4: "char", 5: "sparse"}
_COMPLEX_FLAG, _LOGICAL_FLAG = 0x0800, 0x0200


def _read_tag(data: bytes, pos: int, order: str) -> Tuple[int, int, int, int]:
    """(data type, byte count, start of the data, start of the next element) of
    the element at `pos`; a small element packs type, count and data in 8 bytes."""
    first, second = np.frombuffer(data, order + "u4", 2, pos)
    if first >> 16:                                    # small data element format
        return int(first & 0xFFFF), int(first >> 16), pos + 4, pos + 8
    data_type, count = int(first), int(second)
    if pos + 8 + count > len(data):
        raise ValueError(f"element at byte {pos} runs past the end of the data (truncated file?)")
    padded = count if data_type == _COMPRESSED else count + (-count) % 8
    return data_type, count, pos + 8, pos + 8 + padded


def _numbers(data: bytes, pos: int, order: str) -> Tuple[np.ndarray, int]:
    """The numeric sub-element at `pos` as an array, and the next position."""
    data_type, count, start, end = _read_tag(data, pos, order)
    if data_type not in _DATA_TYPES:
        raise ValueError(f"unsupported MAT data type {data_type} at byte {pos}")
    dtype = np.dtype(order + _DATA_TYPES[data_type])
    return np.frombuffer(data, dtype, count // dtype.itemsize, start), end


def _matrix(body: bytes, order: str) -> Tuple[str, np.ndarray]:
    """Name and value of a miMATRIX element's body."""
    flags, pos = _numbers(body, 0, order)
    array_class, flag_bits = int(flags[0] & 0xFF), int(flags[0])
    dims, pos = _numbers(body, pos, order)
    name_bytes, pos = _numbers(body, pos, order)
    name = name_bytes.tobytes().decode("ascii")
    if array_class not in _NUMERIC_CLASSES:
        kind = _OTHER_CLASSES.get(array_class, f"class {array_class}")
        raise ValueError(f"variable {name!r} is a {kind} array; this reader handles real "
                         "numeric and logical arrays only")
    if flag_bits & _COMPLEX_FLAG:
        raise ValueError(f"variable {name!r} is complex; this reader handles real arrays only")
    real, _ = _numbers(body, pos, order)
    dtype = bool if flag_bits & _LOGICAL_FLAG else np.dtype(_NUMERIC_CLASSES[array_class])
    shape = tuple(int(d) for d in dims)
    if real.size != int(np.prod(shape)):
        raise ValueError(f"variable {name!r} holds {real.size} values for shape {shape}")
    return name, real.astype(dtype).reshape(shape, order="F")     # MATLAB is column-major


def _elements(data: bytes, order: str) -> Dict[str, np.ndarray]:
    arrays = {}
    pos = 0
    while pos < len(data):
        data_type, count, start, pos = _read_tag(data, pos, order)
        body = data[start:start + count]
        if data_type == _COMPRESSED:
            try:
                body = zlib.decompress(body)
            except zlib.error as e:
                raise ValueError(f"a compressed element is corrupt: {e}") from e
            arrays.update(_elements(body, order))
        elif data_type == _MATRIX:
            name, value = _matrix(body, order)
            arrays[name] = value
        else:
            raise ValueError(f"unexpected top-level data type {data_type}")
    return arrays


def read_mat(path: Union[str, os.PathLike]) -> Dict[str, np.ndarray]:
    """The variables of a MAT v5 file as numpy arrays (MATLAB's shapes and classes).

    Raises:
      ValueError: not a MAT v5 file (v7.3/HDF5 included), a truncated or corrupt
        file, or a variable this reader does not handle (named in the message).

    Example:
        >>> from pathlib import Path
        >>> _ = Path("not.mat").write_bytes(b"hello")
        >>> read_mat("not.mat")
        Traceback (most recent call last):
        ...
        ValueError: ... is not a MAT-file of version 5 ...
    """
    raw = Path(path).read_bytes()
    header = raw[:HEADER_BYTES]
    if len(raw) < HEADER_BYTES or not header.startswith(b"MATLAB"):
        raise ValueError(f"{path} is not a MAT-file of version 5 (no 'MATLAB' header).")
    if header[126:128] not in (b"IM", b"MI") or header[124:126] not in (b"\x00\x01", b"\x01\x00"):
        raise ValueError(f"{path} is not a MAT-file of version 5 (it may be v7.3, which is "
                         "HDF5: save it with -v7 or scipy.io.savemat instead).")
    order = "<" if header[126:128] == b"IM" else ">"
    try:
        return _elements(raw[HEADER_BYTES:], order)
    except ValueError as e:
        raise ValueError(f"MAT-file {path}: {e}") from None
