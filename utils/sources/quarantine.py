"""Lines a source could not read, kept with where they came from and why (the `quarantine` artifact)."""
from __future__ import annotations

import pandas as pd

QUARANTINE_DTYPES = {"season": "Int64", "source": "string", "line_number": "Int64", "reason": "string",
                     "text": "string"}


def quarantine_frame(rows: list[dict]) -> pd.DataFrame:
    """Quarantined lines with the contract's dtypes, also when there are none (so seasons concatenate)."""
    return pd.DataFrame(rows, columns=list(QUARANTINE_DTYPES)).astype(QUARANTINE_DTYPES)


def line_dates(quarantine: pd.DataFrame) -> pd.Series:
    """The day of the game each quarantined line is about, where the line says it (NaT where not, or where
    it is not a day of the line's season): a game log's first field (yyyymmdd), an event file's game id
    (`id,TTTYYYYMMDDn`), a Stats API game's date in its reason ("game PK of YYYY-MM-DD ...")."""
    text = quarantine["text"].fillna("").astype(str)
    logged = text.str.extract(r'^"?(\d{8})"?,', expand=False)
    event = text.str.extract(r"^id,[A-Z0-9]{3}(\d{8})\d", expand=False)
    api = quarantine["reason"].fillna("").astype(str).str.extract(r"^game \d+ of (\d{4}-\d{2}-\d{2}) ", expand=False)
    day = pd.to_datetime(logged.fillna(event).fillna(api.str.replace("-", "", regex=False)), format="%Y%m%d",
                         errors="coerce")
    # a day of another year than the line's season is no day of its game (a mistyped date, the reason
    # it was quarantined): the line names no day
    return day.where(day.dt.year == quarantine["season"].astype("float64").to_numpy())


def quarantine_before(quarantine: pd.DataFrame, as_of) -> pd.DataFrame:
    """The quarantined lines a run for `as_of` may see: none about a game on or after it (its text can
    hold the result, and a replay must not depend on lines written after its day). A line that names no
    readable day is kept: it cannot be placed, and dropping it would hide the fault from E's report."""
    later = (line_dates(quarantine) >= pd.Timestamp(as_of)).to_numpy()
    return quarantine[~later].reset_index(drop=True) if later.any() else quarantine
