"""Lines a source could not read, kept with where they came from and why (the `quarantine` artifact)."""
from __future__ import annotations

import pandas as pd

QUARANTINE_DTYPES = {"season": "Int64", "source": "string", "line_number": "Int64", "reason": "string",
                     "text": "string"}


def quarantine_frame(rows: list[dict]) -> pd.DataFrame:
    """Quarantined lines with the contract's dtypes, also when there are none (so seasons concatenate)."""
    return pd.DataFrame(rows, columns=list(QUARANTINE_DTYPES)).astype(QUARANTINE_DTYPES)
