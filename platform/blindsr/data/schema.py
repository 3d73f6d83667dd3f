"""THE Arrow schema of a task: its degradation + n aligned (LR, HR) patches; and of the stream's call rows.

``encode`` makes one Arrow row per task: ``task_id``, ``image_id`` (UTF-8 bytes), one numeric column per
``DegradationSpec`` field (and ``key_*`` for the keys of a CDSR query/key row), ``work_s``, ``window``, and
``lr`` (n, 3, h, w) / ``hr`` (n, 3, s·h, s·w) uint8 as Arrow fixed-shape tensors (zero-copy both ways). The stream
carries :func:`pack`'d *call rows*: the k tasks of one actor call (a train worker's step) in one Arrow row, every
column with the task axis first, so Ray Data can never mix two tasks' patches or split a step. docs/data.md.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args, get_origin, get_type_hints

import numpy as np
import pyarrow as pa

from blindsr.data.patches import Pixels, Task
from blindsr.degradations.spec import DegradationSpec

ID_BYTES = 128
SPEC_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(DegradationSpec))
_HINTS = get_type_hints(DegradationSpec)
CATEGORIES: dict[str, tuple[str, ...]] = {
    name: get_args(tp) for name, tp in _HINTS.items() if get_origin(tp) is Literal
}
# what ``sample_spec`` draws per task; the other fields are fixed by the DegradationConfig
KEY_FIELDS: tuple[str, ...] = ("kernel", "sigma", "lambda1", "lambda2", "theta", "noise", "jpeg_quality", "seed")


@dataclass
class TaskRow:
    """One row: a task, the id it was made from, and the keys' degradation when it differs (CDSR pairs)."""

    task_id: int
    task: Task
    key_spec: DegradationSpec | None = None  # degradation of lr[1:], None when it is task.spec
    work_s: float = 0.0


def _scalar_type(name: str) -> pa.DataType:
    if name in CATEGORIES:
        return pa.int8()
    if name == "seed":
        return pa.int64()
    return pa.float64() if _HINTS[name] is float else pa.int32()


def task_schema(n: int, h: int, w: int, scale: int, window: int = 0) -> pa.Schema:
    """The schema of rows with n patches of LR h × w at ×``scale`` (``window`` > 0: HR windows, no LR)."""
    fields = [pa.field("task_id", pa.int64()), pa.field("image_id", pa.fixed_shape_tensor(pa.uint8(), [ID_BYTES]))]
    fields += [pa.field(name, _scalar_type(name)) for name in SPEC_FIELDS]
    fields += [pa.field(f"key_{name}", _scalar_type(name)) for name in KEY_FIELDS]
    fields += [pa.field("work_s", pa.float32()), pa.field("window", pa.int32())]
    if not window:
        fields.append(pa.field("lr", pa.fixed_shape_tensor(pa.uint8(), [n, 3, h, w])))
    hr = [n, 3, h * scale + 2 * window, w * scale + 2 * window]
    fields.append(pa.field("hr", pa.fixed_shape_tensor(pa.uint8(), hr)))
    return pa.schema(fields)


def _code(name: str, value: Any) -> Any:
    return CATEGORIES[name].index(value) if name in CATEGORIES else value


def _uncode(name: str, value: Any) -> Any:
    return CATEGORIES[name][int(value)] if name in CATEGORIES else value


def encode_ids(ids: Sequence[str]) -> np.ndarray:
    """Image ids → (k, ID_BYTES) uint8, UTF-8 and zero-padded (longer ids keep their last ID_BYTES bytes)."""
    out = np.zeros((len(ids), ID_BYTES), np.uint8)
    for i, text in enumerate(ids):
        raw = text.encode()[-ID_BYTES:]
        out[i, : len(raw)] = np.frombuffer(raw, np.uint8)
    return out


def decode_ids(arr: np.ndarray) -> list[str]:
    """(k, ID_BYTES) uint8 → image ids."""
    return [bytes(row).rstrip(b"\0").decode(errors="replace") for row in np.asarray(arr, np.uint8)]


def encode(rows: Sequence[TaskRow], pixels: Pixels | None = None) -> pa.Table:
    """Task rows → an Arrow table of :func:`task_schema`: one stack copy of the pixels, then zero-copy; no copy
    with ``pixels``, the (lr or None, hr) buffers of shape (k, n, 3, h, w) whose slot i row i's pixels are.

    Raises:
        ValueError: no rows, pixels that are not uint8, patches of different shapes or scales, or a key
            degradation that differs from the row's in a field the sampler does not draw.
    """
    if not rows:
        raise ValueError("encode needs at least one task row")
    first = rows[0].task
    scale, window = first.spec.scale, first.window
    n, _, hh, ww = first.hr.shape
    h, w = (hh - 2 * window) // scale, (ww - 2 * window) // scale
    shape = (None if first.lr is None else first.lr.shape, first.hr.shape, scale, window)
    for r in rows:
        t = r.task
        if t.hr.dtype != np.uint8 or (t.lr is not None and t.lr.dtype != np.uint8):
            raise ValueError(f"task {r.task_id}: lr/hr must be uint8, got {getattr(t.lr, 'dtype', None)}/{t.hr.dtype}")
        if (None if t.lr is None else t.lr.shape, t.hr.shape, t.spec.scale, t.window) != shape:
            raise ValueError(
                f"task {r.task_id}: lr {getattr(t.lr, 'shape', None)} / hr {t.hr.shape} ×{t.spec.scale} window "
                f"{t.window} differ from the batch's first task (lr {shape[0]} / hr {shape[1]} ×{scale} w {window})"
            )
        if r.key_spec is not None:
            fixed = {k: v for k, v in r.key_spec.to_dict().items() if k not in KEY_FIELDS}
            if fixed != {k: v for k, v in r.task.spec.to_dict().items() if k not in KEY_FIELDS}:
                raise ValueError(
                    f"task {r.task_id}: key spec {r.key_spec} differs from {r.task.spec} beyond {KEY_FIELDS}"
                )
    schema = task_schema(n, h, w, scale, window)
    columns: dict[str, pa.Array] = {
        "task_id": pa.array([r.task_id for r in rows], pa.int64()),
        "image_id": pa.FixedShapeTensorArray.from_numpy_ndarray(encode_ids([r.task.image_id for r in rows])),
    }
    for name in SPEC_FIELDS:
        columns[name] = pa.array([_code(name, getattr(r.task.spec, name)) for r in rows], _scalar_type(name))
    for name in KEY_FIELDS:
        values = [_code(name, getattr(r.key_spec or r.task.spec, name)) for r in rows]
        columns[f"key_{name}"] = pa.array(values, _scalar_type(name))
    columns["work_s"] = pa.array([r.work_s for r in rows], pa.float32())
    columns["window"] = pa.array([r.task.window for r in rows], pa.int32())
    for j, name in enumerate(("lr", "hr")):
        if first.lr is None and name == "lr":
            continue
        arrays = [getattr(r.task, name) for r in rows]
        if pixels is None:
            stacked = np.ascontiguousarray(np.stack(arrays))  # Arrow's layout is C order
        elif not _slots_of(arrays, stacked := pixels[j]):
            raise ValueError(f"encode: the rows' {name} are not the slots of the given {name} buffer")
        columns[name] = pa.FixedShapeTensorArray.from_numpy_ndarray(stacked)
    return pa.Table.from_arrays([columns[f.name] for f in schema], schema=schema)


def _slots_of(arrays: Sequence[np.ndarray], buffer: np.ndarray | None) -> bool:
    """Whether ``arrays[i]`` is ``buffer[i]`` (same memory and shape) for every i, and ``buffer`` C-contiguous."""
    ptr = lambda a: a.__array_interface__["data"][0]  # noqa: E731
    return (
        buffer is not None
        and buffer.flags.c_contiguous
        and len(buffer) == len(arrays)
        and all(a.shape == b.shape and ptr(a) == ptr(b) for a, b in zip(arrays, buffer, strict=True))
    )


def pack(table: pa.Table) -> pa.Table:
    """k task rows (:func:`encode`) → one call row: each column a tensor of the k tasks' values (zero-copy)."""
    columns = {}
    for name in table.column_names:
        arr = _column(table, name)
        columns[name] = pa.FixedShapeTensorArray.from_numpy_ndarray(np.ascontiguousarray(arr).reshape(1, *arr.shape))
    return pa.table(columns)


def _column(batch: pa.Table | Mapping[str, Any], name: str) -> np.ndarray:
    """One column as numpy, one entry per task (call rows flattened): zero-copy from a single-chunk Arrow column,
    a numpy array, or a CPU tensor."""
    if isinstance(batch, pa.Table):
        col = batch.column(name)
        arr = col.chunk(0) if col.num_chunks == 1 else col.combine_chunks()
        out = arr.to_numpy_ndarray() if isinstance(arr.type, pa.FixedShapeTensorType) else arr.to_numpy()
    elif name not in batch:
        raise KeyError(f"batch has no column {name!r}; columns: {', '.join(batch)}")
    else:
        value = batch[name]
        out = np.asarray(value.cpu() if hasattr(value, "cpu") else value)
    calls = _is_call(batch)
    return out.reshape(-1, *out.shape[2:]) if calls else out


def _is_call(batch: pa.Table | Mapping[str, Any]) -> bool:
    """Call rows have a task axis in every column: ``task_id`` is (rows, k), not (rows,)."""
    if isinstance(batch, pa.Table):
        return isinstance(batch.schema.field("task_id").type, pa.FixedShapeTensorType)
    return np.ndim(batch["task_id"]) == 2


def _num_rows(batch: pa.Table | Mapping[str, Any]) -> int:
    return len(_column(batch, "task_id"))


def decode_specs(batch: pa.Table | Mapping[str, Any], prefix: Literal["", "key_"] = "") -> list[DegradationSpec]:
    """The degradation of each row (``prefix="key_"``: of its key patches) from a table or a batch dict."""
    cols = {name: _column(batch, name) for name in SPEC_FIELDS}
    if prefix:
        cols.update({name: _column(batch, prefix + name) for name in KEY_FIELDS})
    return [
        DegradationSpec.from_dict({name: _uncode(name, cols[name][i]) for name in SPEC_FIELDS})
        for i in range(_num_rows(batch))
    ]


def decode(batch: pa.Table | Mapping[str, Any]) -> list[TaskRow]:
    """Rows of a table or a ``{column: array}`` batch (numpy, or CPU torch tensors) → TaskRows.

    ``lr``/``hr`` of each task are views into the batch (zero-copy for single-chunk tables and numpy batches).
    A row of HR windows (no ``lr`` column) decodes with ``lr=None`` and its ``window`` from the shapes.
    """
    specs, keys = decode_specs(batch), decode_specs(batch, "key_")
    names = batch.column_names if isinstance(batch, pa.Table) else list(batch)
    lr, hr = (_column(batch, "lr") if "lr" in names else None), _column(batch, "hr")
    window = _column(batch, "window")
    ids, task_ids, work = decode_ids(_column(batch, "image_id")), _column(batch, "task_id"), _column(batch, "work_s")
    return [
        TaskRow(
            task_id=int(task_ids[i]),
            task=Task(
                lr=None if lr is None else lr[i], hr=hr[i], spec=specs[i], image_id=ids[i], window=int(window[i])
            ),
            key_spec=None if keys[i] == specs[i] else keys[i],
            work_s=float(work[i]),
        )
        for i in range(len(specs))
    ]
