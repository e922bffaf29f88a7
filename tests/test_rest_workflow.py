"""The paper's RESTWorkflow (Figure 14) against a real daemon."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ROOT, Daemon

from ccctl import RESTWorkflow
from ccctl.client import Client
from ccd.errors import ClientError


@pytest.fixture
def rest(daemon: Daemon, monkeypatch: pytest.MonkeyPatch) -> Iterator[RESTWorkflow]:
    for key in ("XDG_RUNTIME_DIR", "XDG_CONFIG_HOME"):
        monkeypatch.setenv(key, daemon.env[key])
    monkeypatch.delenv("CCD_URL", raising=False)
    client = RESTWorkflow(Client())
    yield client
    client.close()


def test_upload_list_run_add_job_and_delete(rest: RESTWorkflow, tmp_path: Path) -> None:
    example = shutil.copytree(ROOT / "examples" / "workflow-example", tmp_path / "example")
    assert rest.upload_workflow(example / "workflow-example.yaml")["jobs"] == 5
    assert [w["name"] for w in rest.list_workflows()] == ["workflow-example"]
    run = rest.run_workflow("workflow-example", wait=True)
    assert run["state"] == "done"
    assert rest.get_workflow("workflow-example", job_name="compute")["state"] == "done"
    assert rest.add_job("workflow-example", "extra", exec="echo extra")["jobs"] == 6
    assert "extra" in rest.get_workflow("workflow-example")["yaml"]
    rest.delete_workflow("workflow-example", job_name="extra")
    run = rest.run_workflow("workflow-example", wait=True)  # scripts survived the edits
    assert run["state"] == "done" and len(run["jobs"]) == 5
    rest.delete_workflow("workflow-example")
    assert rest.list_workflows() == []


def test_errors_are_client_errors_with_the_servers_message(rest: RESTWorkflow) -> None:
    with pytest.raises(ClientError, match="no workflow 'nope'"):
        rest.run_workflow("nope")
