"""Every script in bench/ runs, on a tiny slice (a season or two, four teams' event files, a few
nights): a bench whose stage's inputs changed under it fails here, not in the next note's measurement.
These check that the scripts run and print their figures; the figures themselves belong to the notes."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow
# a two-season window, retrained every two months: every stage runs, nothing at full size
SMALL = ["data.first_season=2022", "model.train_seasons=1", "model.retrain_every_days=60",
         "monitoring.drift.baseline_seasons=1", "versioning.backend=none"]


def sets(*pairs: str) -> list[str]:
    return [arg for pair in pairs for arg in ("--set", pair)]


SMOKE = {  # script -> (its arguments on the tiny slice, a line its output must have)
    "bench_events.py": (lambda m, tmp: ["--events", str(m.parent / "events"), "--first", "2023", "--last", "2024",
                                        "--workers", "2"], "warm"),
    "probe_openmp.py": (lambda m, tmp: ["--busy", "0", "--rows", "2000", "--trees", "5"], "threads"),
    "bench_pipeline.py": (lambda m, tmp: ["--mirror", str(m), "--only", "nightly", *sets(*SMALL)],
                          "nightly_A_to_L_legacy"),
    "bench_scaleout.py": (lambda m, tmp: ["--seasons", "2023", "--mirror", str(m), *sets(*SMALL)], "byte_identical"),
    "bench_threads.py": (lambda m, tmp: ["--season", "2023", "--busy", "0", "--mirror", str(m), *sets(*SMALL)],
                         "busy"),
    "bench_alerts.py": (lambda m, tmp: ["--seasons", "2023", "--every", "30", "--root", str(tmp),
                                        *sets(f"sources.retrosheet.base_url={m}", *SMALL)], "detected in that run"),
    "bench_fits.py": (lambda m, tmp: ["--season", "2023", "--mirror", str(m), *sets(*SMALL)], "fits_cold"),
    "bench_backfill.py": (lambda m, tmp: ["--season", "2024", "--rate", "1000", "--mirror", str(m.parent)],
                          "the next night"),
}


def test_every_bench_script_has_a_smoke_run():
    assert set(SMOKE) == {p.name for p in (ROOT / "bench").glob("*.py") if p.name != "__init__.py"}


@pytest.mark.parametrize("script", sorted(SMOKE))
def test_the_bench_runs_on_a_tiny_slice(script, mirror, tmp_path):
    args, expected = SMOKE[script]
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / script), *args(mirror, tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=900, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert expected in proc.stdout, proc.stdout[-2000:]


def test_the_first_night_bench_runs_in_a_root_of_its_own(mirror, tmp_path):
    """`--only first_night`: one night in a new root, its parsed seasons copied from `--parsed-from`."""
    parsed = tmp_path / "parsed"
    parsed.mkdir()
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_pipeline.py"), "--mirror", str(mirror),
                           "--only", "first_night", "--as-of", "2023-04-05", "--parsed-from", str(parsed),
                           *sets(*SMALL)], cwd=ROOT, capture_output=True, text=True, timeout=900,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "first_night_2023-04-05_new_root" in proc.stdout and "peak_mb=" in proc.stdout, proc.stdout[-2000:]
