"""The artifact layer: the one place that maps an artifact name to a file.

Modules ask for artifacts by name. Every write is checked against the artifact's contract,
written to a temp file and renamed into place, and recorded with its SHA-256 in a sidecar
`<file>.meta.json`; every read verifies that hash first.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import logging
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from utils.schema import Contract, SchemaError, load_contract, validate_document, validate_frame

log = logging.getLogger("mlb.artifacts")


class ArtifactError(RuntimeError):
    """A missing, corrupt or forbidden-to-overwrite artifact; the message names the file."""


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


def atomic_write_bytes(path: Path, payload: bytes) -> None:
    """Write to a temp file in the same folder, fsync, rename: readers see old or new, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)  # mkstemp's 0600 would hide artifacts from a viewer run by another user
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def handle_overwrite_policy(path: Path, policy: str, valid: bool | None = None) -> str:
    """What to do with an existing output: 'write' or 'skip'. Raises ArtifactError under 'fail'.

    `valid` says whether the present file matches its recorded hash (None: not checked);
    'skip' keeps only a present, hash-valid artifact.
    """
    path = Path(path)
    if not path.exists():
        return "write"
    if policy == "fail":
        raise ArtifactError(f"{path}: exists and overwrite policy is 'fail'")
    if policy == "skip":
        return "skip" if valid else "write"
    if policy == "warn":
        log.warning("overwriting %s", path)
    return "write"


class ArtifactStore:
    """Artifacts under one root: `<root>/data/<name>.parquet|.json` plus a `.meta.json` sidecar."""

    def __init__(self, root: Path | str, schema_dir: Path | str, as_of: dt.date | None = None):
        self.root = Path(root)
        self.schema_dir = Path(schema_dir)
        self.as_of = as_of

    @classmethod
    def from_config(cls, cfg) -> ArtifactStore:
        return cls(cfg.paths.artifacts, cfg.paths.schemas, cfg.run.as_of)

    def contract(self, name: str) -> Contract:
        return load_contract(self.schema_dir, name)

    def resolve_output_path(self, name: str) -> Path:
        return self.root / "data" / f"{name}{self.contract(name).suffix}"

    def meta_path(self, name: str) -> Path:
        path = self.resolve_output_path(name)
        return path.with_name(path.name + ".meta.json")

    def meta(self, name: str) -> dict[str, Any] | None:
        try:
            return json.loads(self.meta_path(name).read_text())
        except FileNotFoundError:
            return None
        except json.JSONDecodeError:
            raise ArtifactError(f"{self.meta_path(name)}: unreadable sidecar; re-run the module that makes '{name}'") from None

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
        path = self.resolve_output_path(name)
        meta = self.meta(name)
        if not path.exists() or meta is None:
            raise ArtifactError(f"{path}: artifact '{name}' is missing; run the module that makes it")
        actual = sha256_file(path)
        if actual != meta["sha256"]:
            raise ArtifactError(
                f"{path}: SHA-256 mismatch (recorded {meta['sha256'][:12]}…, found {actual[:12]}…); "
                f"the file changed after it was written: re-run the module that makes '{name}'"
            )
        return actual

    def read_frame(self, name: str, columns: list[str] | None = None):
        import pandas as pd

        self.verify(name)
        return pd.read_parquet(self.resolve_output_path(name), columns=columns)

    def read_json(self, name: str) -> Any:
        self.verify(name)
        return json.loads(self.resolve_output_path(name).read_text())

    def read_if_present(self, name: str) -> Any:
        """The artifact (a frame or a JSON document) when this pipeline has a contract for it and a
        hash-valid copy exists; None otherwise. For readers that show what is there (metrics, viewer)."""
        try:
            kind = self.contract(name).kind
            return self.read_frame(name) if kind == "table" else self.read_json(name)
        except (ArtifactError, SchemaError):
            return None

    def _commit(self, name: str, contract: Contract, payload: bytes, rows: int | None) -> ArtifactRecord:
        path = self.resolve_output_path(name)
        digest = hashlib.sha256(payload).hexdigest()
        atomic_write_bytes(path, payload)
        meta = {
            "name": name,
            "sha256": digest,
            "rows": rows,
            "validator": contract.validator,
            "as_of": self.as_of.isoformat() if self.as_of else None,
            "written_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        }
        atomic_write_text(self.meta_path(name), json.dumps(meta, indent=1))
        return ArtifactRecord(name, str(path), digest, rows, contract.validator)

    def write_frame(self, name: str, frame) -> ArtifactRecord:
        """Validate against the contract, then write atomically; the old file survives any failure."""
        contract = self.contract(name)
        validate_frame(contract, frame)
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False, engine="pyarrow", compression="zstd")
        return self._commit(name, contract, buffer.getvalue(), len(frame))

    def write_json(self, name: str, document: Any) -> ArtifactRecord:
        contract = self.contract(name)
        validate_document(contract, document)
        payload = (json.dumps(document, indent=1, sort_keys=True, default=str) + "\n").encode()
        rows = len(document) if isinstance(document, list) else None
        return self._commit(name, contract, payload, rows)

    def write_file(self, name: str, payload: bytes) -> ArtifactRecord:
        """An opaque artifact (e.g. a LightGBM model file) whose contract only names it."""
        contract = self.contract(name)
        if contract.kind != "file":
            raise ArtifactError(f"{name}: contract kind is '{contract.kind}', not 'file'")
        return self._commit(name, contract, payload, None)

    def read_bytes(self, name: str) -> bytes:
        self.verify(name)
        return self.resolve_output_path(name).read_bytes()
