"""Reading sidecar JSON files into plain columns - no pandas, so it can start first.

:func:`read_columns` turns a folder (searched recursively; symlinked folders are not followed)
or a list of files into one list per column of :data:`COLUMNS`, one row per host x check, in
file order. :mod:`imds_helpers.fleet.report` builds its DataFrame from them. Files are read with
:func:`imds_helpers.fleet.sidecar.read_regular_file`: a ``*.json`` that is a symlink, a FIFO or a
device is an ``unreadable`` row naming what it is, never a hang or an endless read.

Parsing JSON is most of the work (a real sidecar is 20-25 KB), so a large folder is split
into contiguous chunks read by forked workers, one per CPU (Linux, from a single-threaded
process such as the CLI; a Jupyter kernel reads in one process). ``meanwhile`` runs in this
process while they work: ``imds-runbook report`` imports pandas there.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Iterable

from imds_helpers.fleet.sidecar import SIDECAR_SCHEMA, SidecarError, load_json_file, run_status_for, validate_sidecar
from imds_helpers.model.textsafe import terminal_safe

HOST_COLUMNS = ["host", "run_status", "verdict", "target", "notebook", "started_at",
                "duration_s", "ok", "warn", "fail", "skip", "failing_codes", "error",
                "path", "html"]
CHECK_COLUMNS = ["check_index", "check_id", "status", "code", "title", "fix", "elapsed_ms"]
COLUMNS = HOST_COLUMNS + CHECK_COLUMNS
PARALLEL_MIN_FILES = 2000   # below this, starting workers costs more than it saves
MAX_WORKERS = 8

Columns = dict[str, list[Any]]


def read_columns(source: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
                 meanwhile: Callable[[], object] | None = None) -> Columns:
    """Columns of every sidecar under ``source`` (see the module docstring).

    Named files are always reported, as ``unreadable`` when they are not sidecars; in a
    folder, JSON files that are not sidecars are skipped. Raises NotADirectoryError for a
    folder that does not exist.
    """
    if isinstance(source, (str, os.PathLike)):
        folder = os.path.abspath(os.fspath(source))
        if not os.path.isdir(folder):
            raise NotADirectoryError(folder)
        files, explicit = _scan(folder), False
    else:
        files = []
        for item in source:
            path = os.path.abspath(os.fspath(item))
            html = path[:-5] + ".html" if path.endswith(".json") else path + ".html"
            files.append((path, html if os.path.exists(html) else None))
        explicit = True
    return _read_all(files, explicit, meanwhile)


def _read_all(files: list[tuple[str, str | None]], explicit: bool,
              meanwhile: Callable[[], object] | None) -> Columns:
    import multiprocessing
    import threading

    workers = min(os.cpu_count() or 1, MAX_WORKERS)
    # fork only from a single-threaded process (the CLI): in a Jupyter kernel another thread
    # may hold a lock at fork time that a child would then wait on forever.
    if len(files) < PARALLEL_MIN_FILES or workers < 2 or threading.active_count() > 1 \
            or "fork" not in multiprocessing.get_all_start_methods():
        if meanwhile is not None:
            meanwhile()
        return _read_files(files, explicit)
    from concurrent.futures import ProcessPoolExecutor

    size = -(-len(files) // workers)
    chunks = [files[i:i + size] for i in range(0, len(files), size)]
    cols: Columns = {c: [] for c in COLUMNS}
    # fork: the workers need nothing but this module, and start in milliseconds.
    with ProcessPoolExecutor(max_workers=len(chunks), mp_context=multiprocessing.get_context("fork")) as pool:
        parts = [pool.submit(_read_files, chunk, explicit) for chunk in chunks]
        if meanwhile is not None:
            meanwhile()
        for part in parts:
            for col, values in part.result().items():
                cols[col].extend(values)
    return cols


def _read_files(files: list[tuple[str, str | None]], explicit: bool) -> Columns:
    cols: Columns = {c: [] for c in COLUMNS}
    for path, html in files:
        try:   # a regular file, not through a symlink, bounded (FIFOs and devices: a note)
            data = load_json_file(path)
        except SidecarError as err:
            _add_unreadable(cols, path, err.problem)
            continue
        if not explicit and (not isinstance(data, dict) or data.get("schema") != SIDECAR_SCHEMA):
            continue  # some other JSON file
        try:
            validate_sidecar(data, path)
        except SidecarError as err:
            _add_unreadable(cols, path, err.problem)
            continue
        _add_sidecar(cols, path, html, data)
    return cols


def _scan(folder: str) -> list[tuple[str, str | None]]:
    """(json path, sibling .html path or None) for every ``*.json`` under ``folder``."""
    found: list[tuple[str, str | None]] = []
    stack = [folder]
    while stack:
        directory = stack.pop()
        try:
            entries = list(os.scandir(directory))
        except OSError:
            continue
        names = {e.name for e in entries}
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                    continue
            except OSError:
                continue
            if entry.name.endswith(".json"):
                html = entry.name[:-5] + ".html"
                found.append((entry.path, os.path.join(directory, html) if html in names else None))
    found.sort()
    return found


def _add_sidecar(cols: Columns, path: str, html: str | None,
                 data: dict[str, Any]) -> None:
    run = data.get("run") if isinstance(data.get("run"), dict) else {}
    verdict = data["verdict"]
    tally = data["tally"]
    checks = data["checks"]
    failing = ", ".join(dict.fromkeys(
        str(c.get("code") or c["id"]) for c in checks if c["status"] in ("warn", "fail")))
    from_sidecar = (
        str(data["host"]), run.get("status") or run_status_for(verdict), verdict,
        data.get("target"), data.get("notebook"), data.get("started_at"),
        run.get("duration_s", data.get("duration_s")), tally.get("ok", 0),
        tally.get("warn", 0), tally.get("fail", 0), tally.get("skip", 0), failing,
        run.get("error"),
    )
    host_values = (*map(_safe, from_sidecar), path, html)     # the paths stay usable as links
    n = len(checks) or 1
    for col, value in zip(HOST_COLUMNS, host_values):
        cols[col].extend([value] * n)
    if not checks:
        for col in CHECK_COLUMNS:
            cols[col].append(None)
        return
    cols["check_index"].extend(range(n))
    cols["check_id"].extend([_safe(c["id"]) for c in checks])
    cols["status"].extend([c["status"] for c in checks])
    cols["code"].extend([_safe(c.get("code")) for c in checks])
    cols["title"].extend([_safe(c.get("title")) for c in checks])
    cols["fix"].extend([_safe(c.get("fix")) or None for c in checks])
    cols["elapsed_ms"].extend([c.get("elapsed_ms") for c in checks])


def _safe(value: Any) -> Any:
    """Text from a sidecar (outside input) with control characters as visible escapes: the
    frames are shown as they are too (the fleet notebook's tables, whose text form reaches a
    terminal), not only through the renderers, which escape again for their own format."""
    return terminal_safe(value) if isinstance(value, str) else value


def _add_unreadable(cols: Columns, path: str, problem: str) -> None:
    stem = os.path.splitext(os.path.basename(path))[0]
    row = dict.fromkeys(COLUMNS)
    row.update(host=_safe(stem), run_status="unreadable", error=_safe(problem), path=path,
               ok=0, warn=0, fail=0, skip=0, failing_codes="")
    for col in COLUMNS:
        cols[col].append(row[col])


__all__ = ["CHECK_COLUMNS", "COLUMNS", "HOST_COLUMNS", "PARALLEL_MIN_FILES", "read_columns"]
