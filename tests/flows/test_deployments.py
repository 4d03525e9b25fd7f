"""prefect.yaml parses, its entrypoints resolve to the flow objects, and its parameters fit them."""
from __future__ import annotations

import inspect
import json
from pathlib import Path

import jinja2
import pytest
import yaml
from prefect.flows import load_flow_from_entrypoint
from prefect.schedules import Cron

from prefect_dask import DaskTaskRunner

from flows.catalog import catalog_run
from flows.dask_cluster import catalog_run_dask
from flows.edit import edit_video

ROOT = Path(__file__).resolve().parents[2]
CONFIG = yaml.safe_load((ROOT / "prefect.yaml").read_text())
DEPLOYMENTS = {d["name"]: d for d in CONFIG["deployments"]}
FLOWS = {"flows/catalog.py:catalog_run": catalog_run, "flows/edit.py:edit_video": edit_video,
         "flows/dask_cluster.py:catalog_run_dask": catalog_run_dask}


def test_the_four_deployments_exist():
    assert set(DEPLOYMENTS) == {"nightly-catalog", "on-new-manifest", "edit-video", "catalog-on-dask"}
    assert CONFIG["pull"][0]["prefect.deployments.steps.set_working_directory"]["directory"] == "{{ $PWD }}"


@pytest.mark.parametrize("name", sorted(DEPLOYMENTS))
def test_entrypoints_resolve_and_parameters_are_flow_parameters(name, monkeypatch):
    d = DEPLOYMENTS[name]
    monkeypatch.chdir(ROOT)
    loaded = load_flow_from_entrypoint(d["entrypoint"])
    expected = FLOWS[d["entrypoint"]]
    assert loaded.name == expected.name and loaded.fn.__qualname__ == expected.fn.__qualname__
    assert d["work_pool"]["name"] == "foley-process"
    signature = inspect.signature(expected.fn)
    assert set(d.get("parameters", {})) <= set(signature.parameters)
    for trigger in d.get("triggers", []):
        assert set(trigger["parameters"]) <= set(signature.parameters)


def test_the_dask_deployment_runs_the_catalog_flow_on_a_dask_task_runner(monkeypatch):
    monkeypatch.chdir(ROOT)
    loaded = load_flow_from_entrypoint(DEPLOYMENTS["catalog-on-dask"]["entrypoint"])
    assert loaded.fn.__qualname__ == catalog_run.fn.__qualname__ and loaded.name == "catalog-run-dask"
    assert isinstance(loaded.task_runner, DaskTaskRunner)


def test_nightly_schedule_is_a_valid_cron():
    (schedule,) = DEPLOYMENTS["nightly-catalog"]["schedules"]
    Cron(schedule["cron"], timezone=schedule["timezone"])
    assert schedule["cron"] == "0 2 * * *" and schedule["active"]


def test_the_event_trigger_templates_the_manifest_into_the_run():
    (trigger,) = DEPLOYMENTS["on-new-manifest"]["triggers"]
    assert trigger["expect"] == ["foley.manifest.created"] and trigger["match"]["prefect.resource.id"] == "foley.manifest.*"
    event = {"event": "foley.manifest.created", "resource": {"prefect.resource.id": "foley.manifest.studio"},
             "payload": {"manifest_uri": "s3://cat/new.parquet"}}
    # Prefect wraps each single-expression template as `{{ (expr) | tojson }}` and parses the JSON.
    params = {k: json.loads(jinja2.Environment().from_string(v.replace("}}", "| tojson }}")).render(event=event))
              for k, v in trigger["parameters"].items()}
    assert params["manifest_uri"] == "s3://cat/new.parquet"
    assert params["storage_url"] == "file://./foley-out" and params["model"] == "demo" and params["steps"] == 25
    catalog_run.validate_parameters({**DEPLOYMENTS["on-new-manifest"].get("parameters", {}), **params})
