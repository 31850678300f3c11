import json
import logging

import pandas as pd
import pytest

from tests.conftest import TOY_SCHEMAS
from utils.store.artifacts import ArtifactError, ArtifactStore, handle_overwrite_policy, sha256_file
from utils.store.schema import SchemaError


@pytest.fixture
def store(tmp_path):
    return ArtifactStore(tmp_path, TOY_SCHEMAS)


def frame(*ns):
    return pd.DataFrame({"n": list(ns), "label": [chr(ord("a") + i) for i in range(len(ns))]})


def test_write_records_hash_rows_and_validator(store):
    record = store.write_frame("numbers", frame(1, 2))
    path = store.resolve_output_path("numbers")
    assert record.path == str(path) and path.name == "numbers.parquet"
    assert record.sha256 == sha256_file(path)
    assert record.rows == 2 and record.validator == "numbers@1.2.0"
    assert path.stat().st_mode & 0o777 == 0o644
    meta = json.loads(store.meta_path("numbers").read_text())
    assert meta["sha256"] == record.sha256
    assert store.read_frame("numbers")["n"].tolist() == [1, 2]


def test_failed_contract_leaves_previous_artifact_whole(store):
    good = store.write_frame("numbers", frame(1, 2))
    with pytest.raises(SchemaError, match="column 'n' has value -5 below minimum 0"):
        store.write_frame("numbers", frame(-5))
    assert store.verify("numbers") == good.sha256
    assert list(store.root.joinpath("data").glob(".numbers*tmp")) == []


def test_tampered_file_is_a_clear_error_naming_it(store):
    store.write_frame("numbers", frame(1))
    path = store.resolve_output_path("numbers")
    path.write_bytes(path.read_bytes() + b"x")
    with pytest.raises(ArtifactError,
                       match=r"numbers.parquet: SHA-256 mismatch .*re-run the module that makes 'numbers'"):
        store.read_frame("numbers")
    assert not store.is_valid("numbers")


def test_missing_artifact_and_corrupt_sidecar(store):
    with pytest.raises(ArtifactError, match="artifact 'numbers' is missing"):
        store.read_frame("numbers")
    store.write_frame("numbers", frame(1))
    store.meta_path("numbers").write_text("{")
    with pytest.raises(ArtifactError, match="unreadable sidecar"):
        store.verify("numbers")


def test_json_artifact_round_trip(store):
    record = store.write_json("summary", {"total": 4})
    assert store.read_json("summary") == {"total": 4}
    assert record.rows is None and record.path.endswith("summary.json")


def test_file_contract_kind_is_enforced(store):
    with pytest.raises(ArtifactError, match="contract kind is 'table', not 'file'"):
        store.write_file("numbers", b"raw")


@pytest.mark.parametrize("policy, exists, expected", [
    ("warn", False, "write"),
    ("warn", True, "write"),
    ("overwrite", True, "write"),
    ("skip", True, "keep-if-current"),  # the runner keeps it only when it is up to date (utils/engine/lineage.py)
    ("skip", False, "write"),
    ("fail", False, "write"),
])
def test_overwrite_policies(tmp_path, policy, exists, expected):
    path = tmp_path / "x.parquet"
    if exists:
        path.write_bytes(b"x")
    assert handle_overwrite_policy(path, policy) == expected


def test_fail_policy_refuses_and_warn_policy_warns_only_when_going_back_in_time(tmp_path):
    from tests.conftest import logged

    path = tmp_path / "x.parquet"
    path.write_bytes(b"old")
    with pytest.raises(ArtifactError, match="x.parquet: exists and overwrite policy is 'fail'"):
        handle_overwrite_policy(path, "fail")
    with logged("mlb.artifacts", logging.WARNING) as records:
        assert handle_overwrite_policy(path, "warn") == "write"
        assert records == []  # replacing yesterday's artifact is the nightly's job
        said = set()
        assert handle_overwrite_policy(path, "warn", newer=True, said=said) == "write"
        assert handle_overwrite_policy(path, "warn", newer=True, said=said) == "write"
    warnings = [r.getMessage() for r in records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # once a run, not once an artifact
    assert f"replacing {path}, which was written for a later as-of date" in warnings[0]


def test_a_cache_entry_linked_out_of_the_root_is_not_followed(tmp_path, caplog):
    """A planted link (entry and digest both pointing at files outside the cache) is discarded, not
    read; writing the entry again replaces the link and leaves the outside file alone."""
    import hashlib
    import logging

    from utils.store.artifacts import read_verified, write_verified

    outside = tmp_path / "outside.json"
    outside.write_bytes(b'{"poisoned": true}')
    (tmp_path / "outside.json.sha256").write_text(hashlib.sha256(outside.read_bytes()).hexdigest() + "\n")
    cache = tmp_path / "cache"
    cache.mkdir()
    entry = cache / "drift-baseline-expected-2024-0.json"
    entry.symlink_to(outside)
    (cache / "drift-baseline-expected-2024-0.json.sha256").symlink_to(tmp_path / "outside.json.sha256")
    with caplog.at_level(logging.WARNING):
        assert read_verified(entry) is None
    assert "symbolic link" in caplog.text
    write_verified(entry, b"{}")
    assert not entry.is_symlink() and read_verified(entry) == b"{}"
    assert outside.read_bytes() == b'{"poisoned": true}'
