"""deployments/prefect.yaml as written: the daily retrain's schedule and concurrency, and every
deployment's entrypoint importable, naming a flow whose name is the deployment's ``<flow>/`` prefix,
under a name and a description of its own. (``gc/weekly``'s schedule: tests/test_retention.py; the
scheduler really creating the 06:00 UTC runs: tests/test_integration_schedule.py; the run forms of
the deployed flows: tests/test_forms.py.)"""

import importlib
from pathlib import Path

import pytest
import yaml
from prefect import Flow

ROOT = Path(__file__).resolve().parents[1]
PREFECT_YAML = ROOT / "deployments" / "prefect.yaml"

# <flow name>/<deployment name> -> entrypoint: what README.md and deployments/README.md promise
EXPECTED = {
    "dea-daily/retrain": "flows/dea_daily.py:dea_daily",
    "gc/weekly": "flows/gc.py:gc_flow",
    "ingest/land-days": "flows/ingest.py:ingest_flow",
    "features/build-days": "flows/featurize.py:features_flow",
    "validate/gate-day": "flows/validate.py:validate_flow",
    "train/train-candidate": "flows/train.py:train_flow",
    "evaluate/score-candidate": "flows/evaluate.py:evaluate_flow",
    "register/register-candidate": "flows/register.py:register_flow",
    "backfill/date-range": "flows/backfill.py:backfill",
}


@pytest.fixture(scope="module")
def deployments() -> list[dict]:
    return yaml.safe_load(PREFECT_YAML.read_text())["deployments"]


def load_flow(entrypoint: str) -> Flow:
    path, _, name = entrypoint.partition(":")
    assert path.endswith(".py") and (ROOT / path).is_file(), entrypoint
    module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
    flow = getattr(module, name)
    assert isinstance(flow, Flow), f"{entrypoint} is a {type(flow).__name__}, not a Prefect flow"
    return flow


def test_the_daily_retrain_runs_at_six_utc_one_at_a_time(deployments):
    retrain = [d for d in deployments if d["name"] == "retrain"]
    assert len(retrain) == 1
    retrain = retrain[0]
    assert retrain["entrypoint"] == "flows/dea_daily.py:dea_daily"
    assert retrain["schedules"] == [{"cron": "0 6 * * *", "timezone": "UTC"}]
    assert retrain["concurrency_limit"] == {"limit": 1, "collision_strategy": "ENQUEUE"}
    assert retrain["parameters"] == {"dataset": "synthetic"}             # date empty: yesterday (UTC)
    assert retrain["work_pool"]["name"] == "dea-process"


def test_every_deployment_names_an_importable_flow_of_its_name(deployments):
    found = {}
    for d in deployments:
        flow = load_flow(d["entrypoint"])
        full = f"{flow.name}/{d['name']}"
        assert full not in found, f"two deployments named {full}"
        found[full] = d["entrypoint"]
        assert d["work_pool"]["name"] == "dea-process", full
        unknown = set(d.get("parameters") or {}) - set(flow.parameters.properties)
        assert not unknown, f"{full}: parameters {sorted(unknown)} are not parameters of {d['entrypoint']}"
    assert found == EXPECTED


def test_every_stage_of_dea_daily_has_an_unscheduled_deployment(deployments):
    from flows.dea_daily import STAGES

    flows = [(load_flow(d["entrypoint"]).name, d) for d in deployments]
    for name in (*STAGES, "backfill"):
        assert any(f == name and not d.get("schedules") for f, d in flows), f"{name}: no unscheduled deployment"


def test_every_deployment_has_a_name_and_a_description_of_its_own(deployments):
    names = [d["name"] for d in deployments]
    assert len(set(names)) == len(names), f"deployment names used twice: {sorted(n for n in names if names.count(n) > 1)}"
    descriptions = [(d.get("description") or "").strip() for d in deployments]
    assert all(descriptions), f"deployments without a description: {[n for n, t in zip(names, descriptions) if not t]}"
    assert len(set(descriptions)) == len(descriptions)
