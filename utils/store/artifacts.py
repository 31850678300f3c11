"""The artifact layer: contracts checked, writes atomic (and staged), hashes recorded and verified.

Modules ask for artifacts by name. Every write is checked against the artifact's contract,
written to a temp file and renamed into place, and recorded with its SHA-256 in a sidecar
`<file>.meta.json`; every read verifies that hash first. Paths come from the catalog. Inside
`staged_writes()` (the runner wraps every module in it) writes go to temporary names and are
renamed into place together only when the whole module succeeded, so a module's outputs are
replaced all at once or not at all.
"""
from __future__ import annotations

import contextvars
import datetime as dt
import hashlib
import io
import json
import logging
import os
import signal
import tempfile
import threading
import uuid
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

from utils.store.catalog import ArtifactError, Catalog
from utils.store.schema import Contract, SchemaError, validate_document, validate_frame

log = logging.getLogger("mlb.artifacts")


@dataclass(frozen=True)
class ArtifactRecord:
    name: str
    path: str
    sha256: str
    rows: int | None
    validator: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_temp(path: Path, payload: bytes) -> Path:
    """The payload in a fsynced temp file beside `path` (same file system, so a rename is atomic)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)  # mkstemp's 0600 would hide artifacts from a viewer run by another user
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:  # a full disk or a file-size limit: os.write's error names no file
        Path(tmp).unlink(missing_ok=True)
        raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)


def atomic_write_bytes(path: Path, payload: bytes) -> None:
    """Write to a temp file in the same folder, fsync, rename: readers see old or new, never half."""
    tmp = write_temp(Path(path), payload)
    try:
        os.replace(tmp, path)
    except OSError as exc:  # named by the file meant, not the temporary one (say, the path is a folder)
        tmp.unlink(missing_ok=True)
        raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_verified(path: Path, payload: bytes) -> None:
    """A cache entry: the bytes and, beside them, their SHA-256 (`<name>.sha256`), each atomically."""
    atomic_write_bytes(path, payload)
    atomic_write_bytes(_digest_file(path), f"{hashlib.sha256(payload).hexdigest()}\n".encode())


def read_verified(path: Path) -> bytes | None:
    """A cache entry's bytes if they match their recorded SHA-256; None (and a warning if it was there).
    An entry or digest that is a symbolic link is not followed (it could point out of the artifacts
    root); rebuilding it replaces the link."""
    if not path.exists() and not path.is_symlink():
        return None
    try:
        if path.is_symlink() or _digest_file(path).is_symlink():
            raise ValueError("a symbolic link; cache entries are never followed")
        payload = path.read_bytes()
        # the first word: a sidecar may also name its file ("<hex>  gl2023.zip", as sha256sum writes)
        if [hashlib.sha256(payload).hexdigest()] != _digest_file(path).read_text().split()[:1]:
            raise ValueError("SHA-256 does not match the one recorded with it")
        return payload
    except (OSError, ValueError) as exc:
        log.warning("%s: discarding a cache entry that does not verify (%s); rebuilding it", path,
                    " ".join(str(exc).split())[:160])
        return None


def _digest_file(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


@dataclass
class Staging:
    """One module's writes: temp files waiting to be renamed over their targets, in write order."""

    batch: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    pending: list[tuple[Path, Path]] = field(default_factory=list)

    def stage(self, path: Path, payload: bytes) -> None:
        """Write `payload` to a temp file beside `path`, to be renamed over it by `commit`."""
        self.pending.append((write_temp(path, payload), path))

    def commit(self) -> None:
        """Rename every staged file into place (payload before its sidecar), under COMMIT_LOCK.

        Every target is checked first (a folder planted at one would fail its rename after others
        were done), and on the main thread SIGINT/SIGTERM wait until the renames are over."""
        for _, final in self.pending:
            if final.is_dir() or final.is_symlink():
                raise ArtifactError(f"{final}: is a folder or a link, not an artifact file; nothing was replaced")
        main = threading.current_thread() is threading.main_thread()
        if main:
            blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        try:
            with COMMIT_LOCK:
                for tmp, final in self.pending:
                    os.replace(tmp, final)
                self.pending.clear()
        finally:
            if main:
                signal.pthread_sigmask(signal.SIG_SETMASK, blocked)

    def discard(self) -> None:
        for tmp, _ in self.pending:
            tmp.unlink(missing_ok=True)
        self.pending.clear()


# Held while a module's outputs are renamed into place; an interrupted run takes it before exiting,
# so no module is ever left half-replaced.
COMMIT_LOCK = threading.Lock()
_staging: contextvars.ContextVar[Staging | None] = contextvars.ContextVar("staging", default=None)


@contextmanager
def staged_writes() -> Iterator[Staging]:
    """Artifact writes inside this block are staged; the caller commits them (`Staging.commit`)
    once everything succeeded. Leaving the block without committing discards them."""
    staging = Staging()
    token = _staging.set(staging)
    try:
        yield staging
    finally:
        _staging.reset(token)
        staging.discard()


def handle_overwrite_policy(path: Path, policy: str, newer: bool = False, said: set | None = None) -> str:
    """What the policy allows for an existing output: 'write', or 'keep-if-current' under 'skip' (the
    runner then keeps it only when it is up to date). Raises ArtifactError under 'fail'. Under 'warn',
    replacing yesterday's artifact is the nightly's job and stays quiet; replacing one written for a
    later as-of date (`newer`: a replay over the current night's outputs) is worth a warning, once per
    run (`said` remembers it; the rest go to INFO)."""
    path = Path(path)
    if not path.exists():
        return "write"
    if policy == "fail":
        raise ArtifactError(f"{path}: exists and overwrite policy is 'fail'")
    if policy == "skip":
        return "keep-if-current"
    if policy == "warn" and newer:
        level = logging.INFO if said is not None and said else logging.WARNING
        log.log(level, "replacing %s, which was written for a later as-of date%s", path,
                "" if level == logging.INFO else " (a replay over newer artifacts; further ones are logged at INFO)")
        if said is not None:
            said.add(path)
    return "write"


def csv_text(frame) -> str:
    """A table as the store writes CSV: dates as YYYY-MM-DD, nulls empty, floats in full precision."""
    return frame.to_csv(index=False, lineterminator="\n", date_format="%Y-%m-%d")


def json_text(document: Any) -> str:
    """A JSON document as the store writes it."""
    return json.dumps(document, indent=1, sort_keys=True, default=str) + "\n"


def parquet_bytes(frame) -> bytes:
    """A table artifact's bytes: Parquet, zstd, no index."""
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False, engine="pyarrow", compression="zstd")
    return buffer.getvalue()


class ArtifactStore:
    """Artifacts under one root: `<root>/data/<name>.parquet|.json` plus a `.meta.json` sidecar."""

    def __init__(self, root: Path | str, schema_dir: Path | str, as_of: dt.date | None = None,
                 cache_root: Path | str | None = None):
        self.catalog = Catalog(root, schema_dir, cache_root)
        self.root = self.catalog.root
        self.schema_dir = self.catalog.schema_dir
        self.as_of = as_of

    @classmethod
    def from_config(cls, cfg) -> ArtifactStore:
        return cls(cfg.paths.artifacts, cfg.paths.schemas, cfg.run.as_of, cfg.paths.cache_root)

    def cache_dir(self, name: str) -> Path:
        return self.catalog.cache(name)

    def contract(self, name: str) -> Contract:
        return self.catalog.contract(name)

    def resolve_output_path(self, name: str) -> Path:
        return self.catalog.artifact(name)

    def meta_path(self, name: str) -> Path:
        return self.catalog.sidecar(name)

    def meta(self, name: str) -> dict[str, Any] | None:
        """The sidecar, or None when there is none; ArtifactError when it is not an object with a SHA-256."""
        try:
            meta = json.loads(self.meta_path(name).read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError, RecursionError):  # a folder, unreadable, not JSON, nested beyond reason
            meta = None
        if not isinstance(meta, dict) or not isinstance(meta.get("sha256"), str):
            raise ArtifactError(f"{self.meta_path(name)}: unreadable sidecar (no recorded SHA-256); "
                                f"re-run the module that makes '{name}'")
        return meta

    def valid_hash(self, name: str) -> str | None:
        """The artifact's SHA-256 if it is present and matches its sidecar; None otherwise."""
        try:
            return self.verify(name)
        except ArtifactError:
            return None

    def is_valid(self, name: str) -> bool:
        return self.valid_hash(name) is not None

    def verify(self, name: str) -> str:
        """The artifact's SHA-256 if the file matches its sidecar; ArtifactError otherwise."""
        return self._verified_bytes(name, keep=False)[1]

    def _verified_bytes(self, name: str, keep: bool = True) -> tuple[bytes | None, str]:
        """(the file's bytes when `keep`, its SHA-256) after checking it against the sidecar: one read,
        so what is parsed is exactly what was hashed."""
        path = self.resolve_output_path(name)
        meta = self.meta(name)
        if not path.exists() or meta is None:
            raise ArtifactError(f"{path}: artifact '{name}' is missing; run the module that makes it")
        try:
            payload = path.read_bytes() if keep else None
            actual = hashlib.sha256(payload).hexdigest() if keep else sha256_file(path)
        except OSError as exc:
            raise ArtifactError(f"{path}: cannot read artifact '{name}' ({exc.strerror or exc})") from None
        if actual != meta["sha256"]:
            raise ArtifactError(
                f"{path}: SHA-256 mismatch (recorded {meta['sha256'][:12]}…, found {actual[:12]}…); "
                f"the file changed after it was written: re-run the module that makes '{name}'"
            )
        return payload, actual

    def load(self, name: str, columns: list[str] | None = None) -> tuple[Any, str]:
        """(the artifact as its contract's kind says: a frame, a JSON document or bytes, its SHA-256)."""
        payload, digest = self._verified_bytes(name)
        kind = self.contract(name).kind
        if kind in ("table", "csv"):
            import pandas as pd

            if kind == "csv":
                return pd.read_csv(io.BytesIO(payload), usecols=columns, keep_default_na=False, na_values=[""],
                                   dtype=str), digest
            return pd.read_parquet(io.BytesIO(payload), columns=columns), digest
        return (json.loads(payload) if kind == "json" else payload), digest

    def read(self, name: str) -> Any:
        return self.load(name)[0]

    def read_frame(self, name: str, columns: list[str] | None = None):
        return self.load(name, columns)[0]

    read_json = read

    def read_if_present(self, name: str) -> Any:
        """The artifact (a frame, a JSON document or bytes) when this pipeline has a contract for it and
        a hash-valid copy written under that contract's version exists; None otherwise. For readers that
        show what is there (metrics, viewer): a copy an older version of the pipeline wrote, left by a
        run that failed before replacing it, is not read as if it had today's shape."""
        try:
            meta, current = self.meta(name), self.contract(name).validator
            if meta is not None and meta.get("validator", current) != current:
                return None
            return self.read(name)
        except (ArtifactError, SchemaError):
            return None

    def _commit(self, name: str, contract: Contract, payload: bytes, rows: int | None,
                lineage: dict | None) -> ArtifactRecord:
        path, meta_path = self.resolve_output_path(name), self.meta_path(name)
        digest = hashlib.sha256(payload).hexdigest()
        staging = _staging.get()
        meta = {
            "name": name,
            "sha256": digest,
            "rows": rows,
            "validator": contract.validator,
            "as_of": self.as_of.isoformat() if self.as_of else None,
            "written_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "batch": staging.batch if staging else None,
            # what it was made from (input hashes, parameters, code version): 'skip' keeps it only if unchanged
            "lineage": lineage,
        }
        sidecar = json.dumps(meta, indent=1).encode()
        if staging is None:
            atomic_write_bytes(path, payload)
            atomic_write_bytes(meta_path, sidecar)
        else:
            staging.stage(path, payload)
            staging.stage(meta_path, sidecar)
        return ArtifactRecord(name, str(path), digest, rows, contract.validator)

    def write_frame(self, name: str, frame, lineage: dict | None = None) -> ArtifactRecord:
        """Validate against the contract, then write atomically; the old file survives any failure."""
        contract = self.contract(name)
        validate_frame(contract, frame)
        return self._commit(name, contract, parquet_bytes(frame), len(frame), lineage)

    def write_csv(self, name: str, frame, lineage: dict | None = None) -> ArtifactRecord:
        """A table for tools that read CSV: validated as a table, dates as YYYY-MM-DD, nulls empty."""
        contract = self.contract(name)
        validate_frame(contract, frame)
        return self._commit(name, contract, csv_text(frame).encode(), len(frame), lineage)

    def write_json(self, name: str, document: Any, lineage: dict | None = None) -> ArtifactRecord:
        contract = self.contract(name)
        validate_document(contract, document)
        payload = json_text(document).encode()
        rows = len(document) if isinstance(document, list) else None
        return self._commit(name, contract, payload, rows, lineage)

    def write_file(self, name: str, payload: bytes, lineage: dict | None = None) -> ArtifactRecord:
        """An opaque artifact (e.g. a LightGBM model file) whose contract only names it."""
        contract = self.contract(name)
        if contract.kind != "file":
            raise ArtifactError(f"{name}: contract kind is '{contract.kind}', not 'file'")
        return self._commit(name, contract, payload, None, lineage)

    def read_bytes(self, name: str) -> bytes:
        return self._verified_bytes(name)[0]

    def write(self, name: str, value: Any, lineage: dict | None = None) -> ArtifactRecord:
        """Write a frame, a JSON document or bytes, as the artifact's contract says it is."""
        kind = self.contract(name).kind
        writer = {"table": self.write_frame, "csv": self.write_csv, "json": self.write_json,
                  "file": self.write_file}[kind]
        return writer(name, value, lineage)
