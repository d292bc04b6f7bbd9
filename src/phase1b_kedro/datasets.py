"""Catalog datasets for record files, on any filesystem fsspec reaches, optionally versioned.

kedro-datasets' ``pandas.JSONDataset`` reads JSONL, but a DataFrame is lossy for these
records: absent keys become NaN, ``null`` scores become floats, nested ``messages``/``meta``
round-trip as objects and id strings that look numeric are re-typed. The stages pass lists
of plain dicts, so these small datasets keep the file format (one JSON object per line)
exactly. The raw input is handed over as a :class:`RawInput`, a handle that the sampling
stage reads in byte ranges (never the whole file in memory), so that it can quarantine bad
lines (invalid UTF-8, malformed JSON, truncated last line) with their line numbers.

Every dataset here follows the contract of kedro-datasets' own file datasets, through one
base class (:class:`FsspecFileDataset`): ``filepath`` is a local path or any fsspec URL
(``s3://``, ``gs://``, ``abfs://``, ``memory:///``, ``file://``), ``credentials`` and
``fs_args`` configure the filesystem, and ``versioned: true`` in the catalog stores each
save under ``<filepath>/<version>/<name>`` (Kedro's :class:`AbstractVersionedDataset`), so
``kedro run --load-versions`` and ``catalog.load(name, version=...)`` pick a version.
"""

from __future__ import annotations

import glob
import io
import os
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from copy import deepcopy
from pathlib import Path, PurePosixPath
from typing import IO, Any, TypeVar

try:
    import fcntl
except ImportError:  # not POSIX: a killed writer's temp file stays
    fcntl = None  # type: ignore[assignment]

import fsspec
import numpy as np
import orjson
from fsspec.implementations.local import LocalFileSystem
from kedro.io import AbstractVersionedDataset, DatasetError, Version
from kedro.io.core import VersionNotFoundError, get_filepath_str, get_protocol_and_path

_DI = TypeVar("_DI")
_DO = TypeVar("_DO")

OPT_NUMPY = orjson.OPT_SERIALIZE_NUMPY
_JSONL_OPTIONS = orjson.OPT_NON_STR_KEYS | OPT_NUMPY


def _filesystem_options(credentials: dict[str, Any] | None, fs_args: dict[str, Any] | None) -> dict[str, Any]:
    """The keyword arguments of ``fsspec.filesystem``: credentials and filesystem arguments together.

    Args:
        credentials (dict | None): Secrets for the filesystem (from ``credentials.yml``),
            e.g. ``{"key": ..., "secret": ...}`` for S3.
        fs_args (dict | None): Other filesystem arguments, without ``open_args_load`` /
            ``open_args_save`` (those go to ``open``).

    Returns:
        dict: One mapping of both.

    Raises:
        DatasetError: If a key is given in both, which would be ambiguous (kedro-datasets
            fails there too, with a ``TypeError`` from the filesystem call).
    """
    credentials, fs_args = credentials or {}, fs_args or {}
    if both := sorted(set(credentials) & set(fs_args)):
        raise DatasetError(f"{', '.join(both)} given in both credentials and fs_args; keep each key in one of them")
    return {**credentials, **fs_args}


class FsspecFileDataset(AbstractVersionedDataset[_DI, _DO]):
    """One file on any fsspec filesystem, optionally versioned: what every dataset here shares.

    Subclasses implement ``load``/``save`` with :meth:`_open_for_load` and :meth:`_write`.
    Saves are atomic on the local filesystem (a temp file beside the target, then a
    rename, so a crash never leaves half a file); on other filesystems they are a plain
    write (object stores such as S3 or GCS publish an object only when its upload
    completes, and the memory filesystem when the file is closed).
    """

    _NOT_FOUND = "File not found: {where}"

    def __init__(self, filepath: str | os.PathLike, *, version: Version | None = None,
                 credentials: dict[str, Any] | None = None, fs_args: dict[str, Any] | None = None,
                 metadata: dict[str, Any] | None = None) -> None:
        """Args:
        filepath (str | os.PathLike): Local path (relative to the working directory) or
            fsspec URL: ``s3://bucket/key.jsonl``, ``memory:///dir/file.jsonl`` (three
            slashes: Kedro reads ``memory://dir/x`` as host ``dir``), ``file:///abs/path``.
        version (Version | None): Set by Kedro for ``versioned: true``; ``load=None`` means
            the latest version, ``save=None`` a new timestamp.
        credentials (dict | None): Passed to ``fsspec.filesystem`` (e.g. ``key``/``secret``
            for S3, ``token`` for GCS); from ``credentials.yml`` in the catalog.
        fs_args (dict | None): Other ``fsspec.filesystem`` arguments, plus
            ``open_args_load`` / ``open_args_save`` for the filesystem's ``open`` (the
            mode is always binary: ``rb`` / ``wb``).
        metadata (dict | None): Free-form metadata (kedro-viz layer etc.), ignored by Kedro.

        Raises:
            DatasetError: A key in both ``credentials`` and ``fs_args``; ``version`` with an
                HTTP(S) URL (not versionable).
        """
        fs_args = deepcopy(fs_args) or {}
        self._open_args_load: dict[str, Any] = fs_args.pop("open_args_load", {})
        self._open_args_save: dict[str, Any] = fs_args.pop("open_args_save", {})
        protocol, path = get_protocol_and_path(filepath, version)
        self._protocol = protocol
        self._storage_options = _filesystem_options(deepcopy(credentials), fs_args)
        self._fs = fsspec.filesystem(protocol, **self._storage_options)
        self.metadata = metadata
        super().__init__(filepath=PurePosixPath(path), version=version,
                         exists_function=self._fs.exists, glob_function=self._fs.glob)

    def _where(self, path: PurePosixPath | str) -> str:
        """``path`` as a user reads it in messages: a plain path locally, a URL elsewhere."""
        text = get_filepath_str(PurePosixPath(path), self._protocol)
        return text if self._protocol == "file" or "://" in text else f"{self._protocol}://{text}"

    def _load_path_if_present(self) -> str | None:
        """The file to load (the requested or latest version), or ``None`` if there is none."""
        try:
            path = get_filepath_str(self._get_load_path(), self._protocol)
        except VersionNotFoundError:
            return None
        return path if self._fs.isfile(path) else None

    def _existing_load_path(self) -> str:
        """The file to load.

        Raises:
            DatasetError: If it does not exist (``_NOT_FOUND`` names where it was looked for).
        """
        path = self._load_path_if_present()
        if path is None:
            try:
                wanted = self._get_load_path()
            except VersionNotFoundError:
                wanted = self._filepath
            raise DatasetError(self._NOT_FOUND.format(where=self._where(wanted)))
        return path

    def _pinned_load_version(self) -> bool:
        """Whether a specific version was asked for (``--load-versions``, ``version=``)."""
        return bool(self._version and self._version.load)

    def _open_for_load(self, path: str) -> IO[bytes]:
        """``path`` opened for binary reading, with ``open_args_load``."""
        return self._fs.open(path, **{**self._open_args_load, "mode": "rb"})

    def _write(self, write: Callable[[IO[bytes]], None]) -> None:
        """Call ``write(fh)`` on the save path: atomically on local disk, a plain write elsewhere."""
        path = get_filepath_str(self._get_save_path(), self._protocol)
        open_args = {**self._open_args_save, "mode": "wb"}
        if isinstance(self._fs, LocalFileSystem):
            _atomic_local_write(self._fs, path, write, open_args)
        else:
            with self._fs.open(path, **open_args) as fh:
                write(fh)
        self._invalidate_cache()

    def _exists(self) -> bool:
        """Whether the file (the requested or latest version) exists, on any filesystem."""
        return self._load_path_if_present() is not None

    def _describe(self) -> dict[str, Any]:
        """``filepath`` (without protocol, as kedro-datasets describe it), ``protocol``, ``version``."""
        return {"filepath": str(self._filepath), "protocol": self._protocol, "version": self._version}

    def _release(self) -> None:
        """Forget the resolved versions (the next load finds the latest again) and cached listings."""
        super()._release()
        self._invalidate_cache()

    def _invalidate_cache(self) -> None:
        """Drop the filesystem's listing cache for the file (object stores cache directory listings)."""
        self._fs.invalidate_cache(get_filepath_str(self._filepath, self._protocol))


def _atomic_local_write(fs: LocalFileSystem, path: str, write: Callable[[IO[bytes]], None],
                        open_args: dict[str, Any]) -> None:
    """Call ``write(fh)`` on a temp file beside ``path``, then rename it into place.

    The temp file is created by ``open`` (not ``mkstemp``), so the result gets the usual
    permissions (``0o666`` less the umask) rather than ``mkstemp``'s owner-only ``0o600``.

    Raises:
        NotADirectoryError: A parent of ``path`` is a file (e.g. ``versioned: true`` on a
            dataset saved before without versions; Kedro turns this into an explanation).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_abandoned_temps(target)
    tmp = target.parent / f".{target.name}.{uuid.uuid4().hex}.tmp"
    try:
        with fs.open(str(tmp), **open_args) as fh:
            if fcntl is not None:  # held while writing: see _remove_abandoned_temps
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            write(fh)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


#: A temp file this old that no writer holds locked was left by a killed run.
_ABANDONED_AFTER_S = 60.0


def _remove_abandoned_temps(target: Path) -> None:
    """Remove the temp files of ``target`` (``.<name>.<hex>.tmp``) that a killed run left: a
    live writer holds its temp file locked (``flock``) while it writes, so one that is
    :func:`unlocked` and over a minute old is a dead writer's. The lock, not a pid, decides, so
    that a writer in another container sharing the directory counts as live."""
    if fcntl is None:
        return
    for stale in target.parent.glob(f".{glob.escape(target.name)}.*.tmp"):
        try:
            old = time.time() - stale.stat().st_mtime >= _ABANDONED_AFTER_S
        except OSError:  # gone meanwhile
            continue
        if old and unlocked(str(stale)):
            stale.unlink(missing_ok=True)


def unlocked(path: str) -> bool:
    """Whether ``path`` exists and nobody holds it locked (``flock``, POSIX): the process that
    held it while it worked is gone. ``False`` where it cannot be opened or locks are not
    available."""
    if fcntl is None:
        return False
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:  # held
        return False
    finally:
        os.close(fd)


class RawInput:
    """The raw input file, read in byte ranges: a path and a size, never the contents.

    Built by :class:`RawJSONLinesDataset` for a file (any fsspec URL), or from ``bytes``
    (tests, notebooks). Worker processes open their own handle on the same file.
    """

    def __init__(self, path: str | None = None, protocol: str = "file", size: int | None = None,
                 data: bytes | None = None, storage_options: dict[str, Any] | None = None) -> None:
        """Args:
        path (str | None): The file's path (without protocol), or ``None`` for in-memory ``data``.
        protocol (str): fsspec protocol of ``path``.
        size (int | None): The file's size in bytes (looked up when not given).
        data (bytes | None): In-memory contents instead of a file.
        storage_options (dict | None): ``fsspec.filesystem`` arguments (credentials and
            ``fs_args``), so that each worker process can open the file itself.
        """
        self.path, self.protocol, self.data = path, protocol, data
        self._storage_options = storage_options or {}
        if data is None:
            size = size if size is not None else self._fs().size(path)
        self.size = len(data) if data is not None else int(size)

    @classmethod
    def of(cls, raw: RawInput | bytes) -> RawInput:
        """Accept either a handle or plain bytes."""
        return raw if isinstance(raw, RawInput) else cls(data=bytes(raw))

    def _fs(self) -> fsspec.AbstractFileSystem:
        return fsspec.filesystem(self.protocol, **self._storage_options)

    def open(self) -> IO[bytes]:
        """A binary file object positioned at the start."""
        if self.data is not None:
            return io.BytesIO(self.data)
        return self._fs().open(self.path, "rb")

    def __repr__(self) -> str:
        where = f"{self.protocol}://{self.path}" if self.data is None else "<bytes>"
        return f"RawInput({where}, {self.size} bytes)"


class _RawInputDataset(FsspecFileDataset[None, _DO]):
    """A read-only input file: a missing file is an error that says where to point the catalog."""

    _NOT_FOUND = "Input file not found: {where} (set raw_prompts.filepath in the catalog)"

    def save(self, data: None) -> None:
        """Raw input is read-only.

        Raises:
            DatasetError: Always.
        """
        raise DatasetError(f"{self._where(self._filepath)} is a read-only input")


class RawJSONLinesDataset(_RawInputDataset[RawInput]):
    """Read-only: the raw JSONL input as a :class:`RawInput` handle (any fsspec URL).

    Only the size is read at load time (and the first non-blank bytes, to reject an empty
    file): the sampling stage streams the file itself, in byte ranges per worker.
    """

    def load(self) -> RawInput:
        """The handle.

        Raises:
            DatasetError: If the file is missing, holds only whitespace, is compressed (or
                ``open_args_load`` asks for decompression), or is UTF-16/32: the stage reads
                UTF-8 JSON Lines in byte ranges and by offset, which those do not allow.
        """
        path = self._existing_load_path()
        where = self._where(path)
        if self._open_args_load.get("compression"):
            raise DatasetError(f"{where}: raw_prompts cannot be read through compression="
                               f"{self._open_args_load['compression']!r} (sampling reads the file in byte ranges and "
                               "by offset); decompress it once (e.g. `gzip -dc FILE > FILE.jsonl`) and point filepath at the result")
        raw = RawInput(path, self._protocol, self._fs.size(path), storage_options=self._storage_options)
        with raw.open() as fh:
            head = fh.read(1 << 20)
            _check_encoding(head, where)
            _check_json_array(head, where)
            if b"\r" in head and b"\n" not in head and len(head.split(b"\r")) > 2:
                raise DatasetError(f"{where} ends its lines with CR only (classic Mac OS), not LF: convert it once "
                                   "(`tr '\\r' '\\n' < FILE > FILE.jsonl`) and point raw_prompts.filepath at the result")
            if head.strip():
                return raw
            while block := fh.read(1 << 20):
                if block.strip():
                    return raw
        raise DatasetError(f"Input file is empty (nothing but blank lines): {where}")


#: Leading bytes of files sampling cannot read in byte ranges: (magic, what it is, how to convert).
_NOT_JSONL = (
    # The commands write next to FILE whatever its name (gunzip -k refuses a name without .gz).
    (b"\x1f\x8b", "gzip-compressed", "gzip -dc FILE > FILE.jsonl"),
    (b"\x28\xb5\x2f\xfd", "zstd-compressed", "zstd -dc FILE > FILE.jsonl"),
    (b"BZh", "bzip2-compressed", "bzip2 -dc FILE > FILE.jsonl"),
    (b"\xfd7zXZ\x00", "xz-compressed", "xz -dc FILE > FILE.jsonl"),
    (b"PK\x03\x04", "a zip archive", "unzip -p FILE > FILE.jsonl"),
    # Byte-order marks: UTF-32LE's starts with UTF-16LE's, so it comes first.
    (b"\xff\xfe\x00\x00", "UTF-32 text", "iconv -f UTF-32 -t UTF-8 FILE > FILE.utf8"),
    (b"\x00\x00\xfe\xff", "UTF-32 text", "iconv -f UTF-32 -t UTF-8 FILE > FILE.utf8"),
    (b"\xff\xfe", "UTF-16 text", "iconv -f UTF-16 -t UTF-8 FILE > FILE.utf8"),
    (b"\xfe\xff", "UTF-16 text", "iconv -f UTF-16 -t UTF-8 FILE > FILE.utf8"),
)


def _nul_layout(sample: bytes) -> tuple[str, str] | None:
    """UTF-16 or UTF-32 text without a byte-order mark, told by where its NUL bytes fall
    (JSON text in UTF-8 holds none; mostly-ASCII JSON in UTF-16 has one in every other byte,
    in UTF-32 three in every four)."""
    sample = sample[:len(sample) // 4 * 4]
    if len(sample) < 4 or sample.count(0) * 3 < len(sample):
        return None
    zeros = [sample[i::4].count(0) / (len(sample) // 4) for i in range(4)]
    if min(zeros[1:]) > 0.9 and zeros[0] < 0.5:
        return "UTF-32 text (no byte-order mark)", "iconv -f UTF-32LE -t UTF-8 FILE > FILE.utf8"
    if min(zeros[:3]) > 0.9 and zeros[3] < 0.5:
        return "UTF-32 text (no byte-order mark)", "iconv -f UTF-32BE -t UTF-8 FILE > FILE.utf8"
    little = sample[1::2].count(0) > sample[::2].count(0)
    return "UTF-16 text (no byte-order mark)", f"iconv -f UTF-16{'LE' if little else 'BE'} -t UTF-8 FILE > FILE.utf8"


def _check_json_array(head: bytes, where: str) -> None:
    """Stop with a clear error for a file that is one JSON document holding an array (a
    pretty-printed export, or one object per line between ``[`` and ``]``): its first line
    opens the array and is not a JSON value of its own, which no JSON Lines file does.

    Raises:
        DatasetError: Naming the conversion (``jq -c '.[]'``).
    """
    lines = [line.strip() for line in head.removeprefix(b"\xef\xbb\xbf").split(b"\n")[:50] if line.strip()]
    if not lines or not lines[0].startswith(b"["):
        return
    try:
        orjson.loads(lines[0])
        return  # a complete value: a JSON Lines file whose first line is an array (quarantined, not refused)
    except orjson.JSONDecodeError:
        pass
    fix = "jq -c '.[]' FILE > FILE.jsonl"
    if lines[0] == b"[" and len(lines) > 1 and not lines[1].endswith(b","):
        try:  # JSON Lines wrapped in [ and ] without commas: jq cannot read that
            orjson.loads(lines[1])
            fix = "sed '1d;$d' FILE > FILE.jsonl"
        except orjson.JSONDecodeError:
            pass
    raise DatasetError(f"{where} looks like one JSON array (its first line opens an array that later lines "
                       f"continue), not JSON Lines (one object per line): convert it once "
                       f"(`{fix}`) and point raw_prompts.filepath at the result")


def _check_encoding(head: bytes, where: str) -> None:
    """Stop with a clear error for a compressed or non-UTF-8 file (by its first bytes).

    Raises:
        DatasetError: Naming what the file is and how to convert it.
    """
    found = next(((what, fix) for magic, what, fix in _NOT_JSONL if head.startswith(magic)), None)
    if found is None:
        found = _nul_layout(head[:4096])
    if found is not None:
        what, fix = found
        raise DatasetError(f"{where} is {what}, not UTF-8 JSON Lines: sampling reads the file in byte ranges "
                           f"and by offset; convert it once (`{fix}`) and point raw_prompts.filepath at the result")


class RawBytesDataset(_RawInputDataset[bytes]):
    """Read-only: loads a small file's bytes unchanged (tests, small inputs)."""

    def load(self) -> bytes:
        """The file's bytes.

        Raises:
            DatasetError: If the file is missing or holds only whitespace.
        """
        path = self._existing_load_path()
        with self._open_for_load(path) as fh:
            data = fh.read()
        if not data.strip():
            raise DatasetError(f"Input file is empty (nothing but blank lines): {self._where(path)}")
        return data


class JSONLinesDataset(FsspecFileDataset[list[dict], list[dict]]):
    """A list of dicts stored as JSON Lines (UTF-8, one object per line).

    Loading streams the file line by line. There are no ``load_args``/``save_args``: the
    format has nothing to choose (orjson, fixed options), which keeps outputs
    byte-identical run to run. Saves are atomic on local disk and a plain write elsewhere
    (see :class:`FsspecFileDataset`).
    """

    def __init__(self, filepath: str | os.PathLike, *, missing_ok: bool = False, version: Version | None = None,
                 credentials: dict[str, Any] | None = None, fs_args: dict[str, Any] | None = None,
                 metadata: dict[str, Any] | None = None) -> None:
        """Args:
        filepath (str | os.PathLike): Local path or fsspec URL (see :class:`FsspecFileDataset`).
        missing_ok (bool): Load a missing file (or, versioned, no version at all) as an
            empty list, for optional inputs such as human labels. A version asked for by
            name that does not exist is still an error.
        version (Version | None): Set by Kedro for ``versioned: true``.
        credentials (dict | None): ``fsspec.filesystem`` credentials.
        fs_args (dict | None): Other ``fsspec.filesystem`` arguments and ``open_args_*``.
        metadata (dict | None): Free-form metadata (kedro-viz layer etc.), ignored by Kedro.
        """
        super().__init__(filepath, version=version, credentials=credentials, fs_args=fs_args, metadata=metadata)
        self._missing_ok = missing_ok

    def load(self) -> list[dict]:
        """Parse every non-blank line.

        Raises:
            DatasetError: The file is missing (and not ``missing_ok``), or a line is not
                valid JSON (the message names the file and the line number).
        """
        path = self._load_path_if_present()
        if path is None and self._missing_ok and not self._pinned_load_version():
            return []
        path = path or self._existing_load_path()
        with self._open_for_load(path) as fh:
            return list(_parse_lines(fh, self._where(path)))

    def save(self, data: list[dict]) -> None:
        """Write one JSON object per line (numpy values and non-string keys allowed)."""
        self._write(lambda fh: _write_lines(fh, data))


def _parse_lines(fh: Iterable[bytes], where: str) -> Iterator[dict]:
    """Each non-blank line of ``fh`` parsed as JSON.

    Raises:
        DatasetError: ``<where>:<line>: malformed JSON (...)`` for the first bad line.
    """
    for lineno, line in enumerate(fh, start=1):
        if not line.strip():
            continue
        try:
            yield orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise DatasetError(f"{where}:{lineno}: malformed JSON ({exc})") from exc


def _write_lines(fh: IO[bytes], records: Iterable[dict]) -> None:
    """Write each record as one line of JSON."""
    for record in records:
        fh.write(orjson.dumps(record, option=_JSONL_OPTIONS))
        fh.write(b"\n")


class NpzDataset(FsspecFileDataset[dict[str, Any], dict[str, np.ndarray]]):
    """A dict of numpy arrays (e.g. ``ids`` and ``vectors``) in one ``.npz`` file.

    Strings are stored as unicode arrays, never pickled objects, so loading needs no
    ``allow_pickle`` (and there is no ``load_args`` to turn it on). Saves are atomic on
    local disk and a plain write elsewhere (see :class:`FsspecFileDataset`).
    """

    SAVE_ARGS = frozenset({"compress"})

    def __init__(self, filepath: str | os.PathLike, *, save_args: dict[str, Any] | None = None,
                 version: Version | None = None, credentials: dict[str, Any] | None = None,
                 fs_args: dict[str, Any] | None = None, metadata: dict[str, Any] | None = None) -> None:
        """Args:
        filepath (str | os.PathLike): Local path or fsspec URL (see :class:`FsspecFileDataset`).
        save_args (dict | None): ``compress: true`` writes a deflated archive
            (``numpy.savez_compressed``: smaller on object stores, slower to write).
        version (Version | None): Set by Kedro for ``versioned: true``.
        credentials (dict | None): ``fsspec.filesystem`` credentials.
        fs_args (dict | None): Other ``fsspec.filesystem`` arguments and ``open_args_*``.
        metadata (dict | None): Free-form metadata (kedro-viz layer etc.), ignored by Kedro.

        Raises:
            DatasetError: An unknown ``save_args`` key (a typo would otherwise be ignored).
        """
        super().__init__(filepath, version=version, credentials=credentials, fs_args=fs_args, metadata=metadata)
        self._save_args = dict(save_args or {})
        if unknown := sorted(set(self._save_args) - self.SAVE_ARGS):
            raise DatasetError(f"NpzDataset save_args: unknown {', '.join(unknown)} (known: compress)")

    def load(self) -> dict[str, np.ndarray]:
        """The arrays by name.

        Raises:
            DatasetError: If the file is missing.
        """
        with self._open_for_load(self._existing_load_path()) as fh, np.load(fh, allow_pickle=False) as data:
            return {name: data[name] for name in data.files}

    def save(self, data: dict[str, Any]) -> None:
        """Write the arrays (lists are converted)."""
        arrays = {name: np.asarray(value) for name, value in data.items()}
        savez = np.savez_compressed if self._save_args.get("compress") else np.savez
        self._write(lambda fh: savez(fh, **arrays))

    def _describe(self) -> dict[str, Any]:
        """The base description plus ``save_args``."""
        return {**super()._describe(), "save_args": self._save_args}
