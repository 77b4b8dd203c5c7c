"""The Prefect UI's run form of every deployed flow, as its parameter schema describes it: every
parameter and every field of the nested parameter models has help text and is labelled by its own
name; ``dataset`` is a drop-down of the shipped specs, ``train.model`` one of the model registry,
and ``date`` says that empty means yesterday. (The deployments themselves: tests/test_deployments.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from prefect import Flow
from prefect.exceptions import ParameterTypeError
from prefect.utilities.callables import parameter_schema

from test_deployments import PREFECT_YAML, load_flow

ROOT = Path(__file__).resolve().parents[1]
ENTRYPOINTS = sorted({d["entrypoint"] for d in yaml.safe_load(PREFECT_YAML.read_text())["deployments"]})
SHIPPED_SPECS = sorted(p.stem for p in (ROOT / "deployments" / "configs").glob("*.yaml"))
WITH_TRAIN = {"dea-daily", "train", "evaluate", "register", "backfill"}   # flows whose form has `train`
WITHOUT_DATE = {"backfill", "gc"}                                         # a range of dates; no date at all


@pytest.fixture(scope="module", params=ENTRYPOINTS)
def flow(request) -> Flow:
    return load_flow(request.param)


@pytest.fixture(scope="module")
def schema(flow) -> dict:
    """The schema `prefect deploy` sends the server (cli/deploy: ``parameter_schema(flow)``)."""
    return parameter_schema(flow).model_dump()


def forms(schema: dict):
    """(where, properties) of the form and of every nested model's form."""
    yield "parameters", schema["properties"]
    for name, definition in schema["definitions"].items():
        if "properties" in definition:
            yield name, definition["properties"]


def test_every_deployment_entrypoint_is_checked():
    assert len(ENTRYPOINTS) == 9


def test_every_parameter_and_field_has_help_text(schema):
    missing = [f"{where}.{name}" for where, props in forms(schema) for name, p in props.items()
               if not (p.get("description") or "").strip()]
    assert not missing, f"no help text: {missing}"


def test_the_nested_forms_are_those_of_the_parameter_models(schema):
    nested = {"train": "TrainConfig", "promotion": "Promotion", "cluster": "DaskParams"}
    assert set(schema["definitions"]) == {model for name, model in nested.items() if name in schema["properties"]}


def test_every_label_is_the_parameter_name(schema):
    wrong = {f"{where}.{name}": p.get("title") for where, props in forms(schema) for name, p in props.items()
             if p.get("title") != name}
    assert not wrong, f"labels that are not the names (pydantic's 'Lr', 'Bf16 Cpu'): {wrong}"


def test_dataset_is_a_drop_down_of_the_shipped_specs(schema):
    assert schema["properties"]["dataset"]["enum"] == SHIPPED_SPECS
    assert "synthetic" in SHIPPED_SPECS and schema["properties"]["dataset"]["default"] == "synthetic"


def test_train_model_is_a_drop_down_of_the_model_registry(flow, schema):
    from dea_model.models import REGISTRY

    if flow.name not in WITH_TRAIN:
        assert "train" not in schema["properties"]
        return
    model = schema["definitions"]["TrainConfig"]["properties"]["model"]
    assert model["enum"] == sorted(REGISTRY) and len(REGISTRY) == 10
    assert model["default"] in model["enum"]


def test_date_says_that_empty_means_yesterday(flow, schema):
    if flow.name in WITHOUT_DATE:
        assert "date" not in schema["properties"]
        return
    date = schema["properties"]["date"]
    assert "empty = yesterday" in date["description"] and date["default"] is None


def test_the_form_sends_plain_strings_and_a_typo_fails_before_any_stage():
    from flows.dea_daily import dea_daily
    from flows.params import DAILY_TRAIN

    sent = dea_daily.validate_parameters({"dataset": "movielens", "train": {"model": "fm", "epochs": 1}})
    assert sent["dataset"] == "movielens" and sent["train"].model == "fm" and type(sent["train"].model) is str
    assert dea_daily.validate_parameters({"train": DAILY_TRAIN})["train"] == DAILY_TRAIN
    with pytest.raises(ParameterTypeError, match=r"unknown model 'fmm'; available: afm, autoint, dea"):
        dea_daily.validate_parameters({"train": {"model": "fmm"}})
    # Python callers may name a spec by its path (benchmarks/soak.py: `dea run --dataset <path>.yaml`)
    assert dea_daily.validate_parameters({"dataset": "/tmp/my.yaml"})["dataset"] == "/tmp/my.yaml"


def test_an_unknown_dataset_fails_on_the_flows_first_line_naming_the_known_ones():
    from features.spec import available_specs
    from flows.params import Day

    with pytest.raises(ValueError, match=r"no dataset spec .*synthtic\.yaml; known datasets: \[") as info:
        Day.open("synthtic", "2026-01-05")
    assert all(name in str(info.value) for name in available_specs())


def test_the_daily_defaults_read_the_same_in_the_form_the_help_and_the_readme():
    """One source (flows.defaults): the form's default `train`, `dea run --help` and the README agree."""
    from pathlib import Path

    from flows.cli import build_parser
    from flows.dea_daily import dea_daily
    from flows.params import DAILY_TRAIN

    form = dea_daily.parameters.model_dump()["properties"]["train"]["default"]
    assert {k: form[k] for k in ("model", "epochs", "patience", "batch_size", "lr", "min_id_count")} == \
        {"model": "dea", "epochs": DAILY_TRAIN.epochs, "patience": 1, "batch_size": DAILY_TRAIN.batch_size, "lr": 3e-3,
         "min_id_count": 1}
    run = build_parser()._subparsers._group_actions[0].choices["run"].format_help()
    assert f"(default: {DAILY_TRAIN.epochs}; the daily retrain trains in batches of {DAILY_TRAIN.batch_size} at lr" \
        in " ".join(run.split())
    assert f"with a training vocabulary: min_id_count={DAILY_TRAIN.min_id_count}," in " ".join(run.split())
    readme = " ".join((Path(__file__).resolve().parents[1] / "README.md").read_text().split())
    assert f"DEA, {DAILY_TRAIN.epochs} epochs in batches of {DAILY_TRAIN.batch_size}" in readme
