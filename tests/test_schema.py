import json

import jsonschema
import numpy as np
import pandas as pd
import pytest

from tests.conftest import ROOT, TOY_SCHEMAS
from utils.store.schema import SchemaError, load_contract, validate_document, validate_frame


def toy():
    return load_contract(TOY_SCHEMAS, "numbers")


def rows_valid_by_jsonschema(contract, frame) -> list[bool]:
    validator = jsonschema.Draft202012Validator(contract.body["items"])
    records = json.loads(frame.to_json(orient="records"))
    return [validator.is_valid(r) for r in records]


@pytest.mark.parametrize("frame, ok", [
    (pd.DataFrame({"n": [0, 5], "label": ["a", "b"]}), True),
    (pd.DataFrame({"n": [-1], "label": ["a"]}), False),          # below minimum
    (pd.DataFrame({"n": [1], "label": ["AB"]}), False),          # pattern
    (pd.DataFrame({"n": [1.5], "label": ["a"]}), False),         # not an integer
    (pd.DataFrame({"n": [1], "label": ["a"], "x": [1]}), False), # additionalProperties
    (pd.DataFrame({"label": ["a"]}), False),                     # required
    (pd.DataFrame({"n": [1, 2], "label": pd.array(["a", "b"], dtype="string")}), True),  # string dtype
    (pd.DataFrame({"n": [1, 2], "label": ["a", 3]}), False),     # a number in an object column of strings
    (pd.DataFrame({"n": [1, 2], "label": ["a\n", "b"]}), True),  # Python's $ matches before a final newline
])
def test_column_checks_agree_with_jsonschema_row_checks(frame, ok):
    """The column-wise checker must say what jsonschema says of the same rows."""
    contract = toy()
    assert all(rows_valid_by_jsonschema(contract, frame)) is ok
    if ok:
        validate_frame(contract, frame)
    else:
        with pytest.raises(SchemaError):
            validate_frame(contract, frame)


def test_error_names_artifact_column_and_rule():
    with pytest.raises(SchemaError) as err:
        validate_frame(toy(), pd.DataFrame({"n": [3, -2], "label": ["a", "b"]}))
    assert str(err.value) == "numbers: column 'n' has value -2 below minimum 0"
    with pytest.raises(SchemaError, match="column 'n' has 1 null.*rule: not null"):
        validate_frame(toy(), pd.DataFrame({"n": pd.array([1, None], dtype="Int64"), "label": ["a", "b"]}))
    # each distinct value is searched once; the error names the first row's value that fails
    with pytest.raises(SchemaError) as err:
        labels = pd.array(["a", "Bc", "c", "Dd"], dtype="string")
        validate_frame(toy(), pd.DataFrame({"n": [1, 2, 3, 4], "label": labels}))
    assert str(err.value) == "numbers: column 'label' has value 'Bc' not matching pattern ^[a-z]$"
    with pytest.raises(SchemaError, match=r"duplicate key \{'label': 'a'\}"):
        validate_frame(toy(), pd.DataFrame({"n": [1, 2], "label": ["a", "a"]}))


def test_feature_contract_refuses_nan_and_infinity():
    contract = load_contract(ROOT / "schemas", "team_form_features")
    good = pd.DataFrame({"game_id": ["BOS202407140"], "form_home_rf_10": [4.5]})
    validate_frame(contract, good)
    with pytest.raises(SchemaError, match="form_home_rf_10.*null"):
        validate_frame(contract, good.assign(form_home_rf_10=[np.nan]))
    with pytest.raises(SchemaError, match="non-finite"):
        validate_frame(contract, good.assign(form_home_rf_10=[np.inf]))
    with pytest.raises(SchemaError, match="'stray' is not in the contract"):
        validate_frame(contract, good.assign(stray=[1.0]))


def test_every_shipped_schema_is_valid_json_schema_with_a_version():
    files = sorted((ROOT / "schemas").glob("*.schema.json"))
    assert len(files) >= 20
    for path in files:
        contract = load_contract(path.parent, path.name.removesuffix(".schema.json"))
        assert contract.name == path.name.removesuffix(".schema.json")
        assert contract.version.count(".") == 2


def test_json_documents_are_checked_by_jsonschema():
    contract = load_contract(TOY_SCHEMAS, "summary")
    validate_document(contract, {"total": 3})
    with pytest.raises(SchemaError, match="summary: total: -1 is less than the minimum of 0"):
        validate_document(contract, {"total": -1})
    with pytest.raises(SchemaError, match="contract is for a table"):
        validate_document(toy(), {"total": 1})


def test_missing_or_broken_schema_file_is_named(tmp_path):
    with pytest.raises(SchemaError, match="nothing.schema.json: no schema file"):
        load_contract(tmp_path, "nothing")
    (tmp_path / "bad.schema.json").write_text("{\n  oops")
    with pytest.raises(SchemaError, match=r"bad.schema.json:2: not valid JSON"):
        load_contract(tmp_path, "bad")


def test_an_artifact_name_that_is_a_path_is_refused_before_any_file_is_read(tmp_path):
    """A crafted manifest key ('../../x') made `restore` read a schema file outside the root before refusing."""
    outside = tmp_path / "x.schema.json"
    outside.write_text("{not json")
    schemas = tmp_path / "a" / "schemas"
    schemas.mkdir(parents=True)
    for name in ("../../x", "../x", "X", "a/b", ""):
        with pytest.raises(SchemaError, match="not an artifact name"):
            load_contract(schemas, name)


def test_every_contract_that_names_the_feature_prefixes_names_all_of_them():
    """The feature prefixes live in modules/models.py; a contract that spells them out (the model table,
    the model's feature list, the drift history) must spell every one, or a new module's features fail
    at the first run that writes them (the confirmed lineups' nine_* once did, at K)."""
    import re

    from modules.models import FEATURE_PREFIXES

    expected = "^(" + "|".join(p.rstrip("_") for p in FEATURE_PREFIXES) + ")_"
    found = {}
    for path in sorted((ROOT / "schemas").glob("*.schema.json")):
        for pattern in re.findall(r'"\^\(((?:[a-z]+\|)+[a-z]+)\)_"', path.read_text()):
            if "ctx" in pattern.split("|"):
                found[path.name] = "^(" + pattern + ")_"
    assert {"model_table.schema.json", "model_params.schema.json", "drift_history.schema.json"} <= set(found)
    assert {name: p for name, p in found.items() if p != expected} == {}
