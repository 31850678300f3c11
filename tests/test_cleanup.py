import datetime as dt

import yaml
from typer.testing import CliRunner

import pipeline
from utils.engine.cleanup import cleanup_runs

NOW = dt.datetime(2024, 7, 14, tzinfo=dt.timezone.utc)


def make_run(root, days_ago, ok=True, wrote=("games", "predictions")):
    started = NOW - dt.timedelta(days=days_ago)
    run_dir = root / "runs" / f"{started:%Y%m%dT%H%M%SZ}-abc123"
    run_dir.mkdir(parents=True)
    outputs = [{"name": n, "path": f"data/{n}.parquet", "sha256": "0" * 64, "validator": f"{n}@1"} for n in wrote]
    phases = {"A": {"module": "A", "name": "ingest", "status": "success" if ok else "failed",
                    "error": None if ok else "boom", "outputs": outputs if ok else []}}
    status = {"run_id": run_dir.name, "executor": "legacy", "started_at": started.isoformat(), "phases": phases}
    (run_dir / "phase_status.yaml").write_text(yaml.safe_dump(status))
    return run_dir


def test_expired_runs_go_but_the_latest_good_run_stays(tmp_path):
    latest_good = make_run(tmp_path, 200)  # the newest run that succeeded, though old
    failed_recent = make_run(tmp_path, 100, ok=False)
    older = make_run(tmp_path, 300)
    fresh = make_run(tmp_path, 5, ok=False)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "games.parquet").write_bytes(b"x")
    listed = cleanup_runs(tmp_path, 90, dry_run=True, now=NOW)
    assert listed == [older, failed_recent] and older.exists()
    assert cleanup_runs(tmp_path, 90, now=NOW) == [older, failed_recent]
    assert not older.exists() and not failed_recent.exists()
    assert latest_good.exists() and fresh.exists() and (tmp_path / "data" / "games.parquet").exists()


def test_cleanup_command(tmp_path):
    make_run(tmp_path, 4000)
    make_run(tmp_path, 3000)
    result = CliRunner().invoke(pipeline.app, ["cleanup", "--dry-run", "--set", f"paths.artifacts={tmp_path}"])
    assert result.exit_code == 0
    assert "would remove 1 run folder(s), 0 run log(s) and 0 cache entries older than 90 days" in result.output
    assert cleanup_runs(tmp_path / "nothing", 90) == []


def test_a_later_partial_run_does_not_cost_the_last_full_run(tmp_path):
    full = make_run(tmp_path, 200)  # wrote games and predictions
    partial = make_run(tmp_path, 150, wrote=("data_quality_report",))  # a later run of E alone
    assert cleanup_runs(tmp_path, 90, now=NOW) == []
    assert full.exists() and partial.exists()
    newer = make_run(tmp_path, 120, wrote=("games", "predictions"))
    assert cleanup_runs(tmp_path, 90, now=NOW) == [full]  # newer now holds the latest games and predictions
    assert partial.exists() and newer.exists()


def test_old_run_logs_go_and_cron_s_own_log_and_links_stay(tmp_path):
    from utils.engine.cleanup import cleanup_logs

    logs = tmp_path / "logs"
    logs.mkdir()
    old, kept = logs / "run-20240101.log", logs / "run-20240701.log"  # 195 and 13 days before NOW
    cron = logs / "cron.log"
    for path in (old, kept, cron):
        path.write_text("x\n")
    outside = tmp_path / "outside.log"
    outside.write_text("precious\n")
    (logs / "run-20230101.log").symlink_to(outside)
    assert cleanup_logs(tmp_path, 90, dry_run=True, now=NOW) == [old] and old.exists()
    assert cleanup_logs(tmp_path, 90, now=NOW) == [old]
    assert not old.exists() and kept.exists() and cron.exists() and outside.read_text() == "precious\n"


def test_derived_cache_entries_unused_for_the_retention_period_go_and_a_read_keeps_one(tmp_path):
    import os

    from utils.engine.cleanup import cleanup_cache
    from utils.store.cache import ContentCache

    models, parsed = ContentCache(tmp_path / "cache" / "models"), ContentCache(tmp_path / "cache" / "parsed")
    for name in ("fit-2023-04-01-aaaa.json", "fit-expected-2024-07-08-bbbb.json", "fit-expected-2024-07-01-cccc.json"):
        models.put(name, b"{}")
    parsed.put("ev2023-dddd.parquet", b"lines")
    parsed.put("glseasons1990to2018-eeee.parquet", b"a backtest's span of seasons")
    long_ago = (NOW - dt.timedelta(days=200)).timestamp()
    for path in [*(tmp_path / "cache" / "models").iterdir(), *(tmp_path / "cache" / "parsed").iterdir()]:
        os.utime(path, (long_ago, long_ago))
    (tmp_path / "cache" / "models" / "fit-expected-2024-07-08-bbbb.json").touch()  # written lately
    outside = tmp_path / "outside.json"
    outside.write_text("precious")
    (tmp_path / "cache" / "models" / "fit-linked.json").symlink_to(outside)
    # a backtest reads July 1st's fit today: its use keeps it
    assert models.get("fit-expected-2024-07-01-cccc.json") == b"{}"
    old = tmp_path / "cache" / "models" / "fit-2023-04-01-aaaa.json"
    now = dt.datetime.now(dt.timezone.utc)
    span = tmp_path / "cache" / "parsed" / "glseasons1990to2018-eeee.parquet"
    assert sorted(cleanup_cache(tmp_path, 90, dry_run=True, now=now)) == sorted([old, span]) and old.exists()
    assert sorted(cleanup_cache(tmp_path, 90, now=now)) == sorted([old, span])
    assert not old.exists() and not old.with_name(old.name + ".sha256").exists()
    assert not span.exists() and not span.with_name(span.name + ".sha256").exists()
    left = sorted(p.name for p in (tmp_path / "cache" / "models").iterdir() if not p.name.endswith(".sha256"))
    assert left == ["fit-expected-2024-07-01-cccc.json", "fit-expected-2024-07-08-bbbb.json", "fit-linked.json"]
    assert outside.read_text() == "precious"
    # the parsed seasons are not a derived cache (the seasons read together are): left, however old
    assert (tmp_path / "cache" / "parsed" / "ev2023-dddd.parquet").exists()


def test_a_linked_cache_folder_is_refused_and_nothing_behind_it_is_removed(tmp_path):
    import os

    import pytest

    from utils.engine.cleanup import cleanup_cache
    from utils.store.cache import ContentCache
    from utils.store.catalog import ArtifactError

    elsewhere = tmp_path / "elsewhere"
    ContentCache(elsewhere / "models").put("precious.json", b"{}")
    long_ago = (NOW - dt.timedelta(days=400)).timestamp()
    os.utime(elsewhere / "models" / "precious.json", (long_ago, long_ago))
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "cache").symlink_to(elsewhere)
    with pytest.raises(ArtifactError, match="is a symbolic link inside the artifacts root"):
        cleanup_cache(tmp_path / "root", 90)
    assert (elsewhere / "models" / "precious.json").exists()
