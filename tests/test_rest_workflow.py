"""The paper's RESTWorkflow (Figure 14) against a real daemon."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
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


def test_cloudmesh_ccs_workflow_routes_work_as_its_curl_examples_send_them(
        daemon: Daemon) -> None:
    auth = {"Authorization": f"Bearer {daemon.token}", "accept": "application/json"}
    url = f"{daemon.url}/workflow/quick"
    yaml = b"workflow:\n  nodes:\n    a: {exec: 'echo a'}\n  dependencies: []\n"
    stored = httpx.post(f"{daemon.url}/workflow", params={"name": "quick"}, content=yaml,
                        headers={**auth, "Content-Type": "application/yaml"})
    assert stored.status_code == 201, stored.text
    got = httpx.get(url, headers=auth)
    assert got.status_code == 200 and "echo a" in got.json()["yaml"]
    # curl -X POST '.../workflow/NAME?job=myJob&kind=local&exec=...&retries=1'
    added = httpx.post(url, params={"job": "b", "kind": "local", "exec": "echo b",
                                    "retries": "1"}, headers=auth)
    assert added.status_code == 200 and added.json()["jobs"] == 2, added.text
    assert "echo b" in httpx.get(url, headers=auth).json()["yaml"]
    by_body = httpx.post(url, params={"job": "c"}, json={"exec": "echo c"}, headers=auth)
    assert by_body.json()["jobs"] == 3
    # curl -X DELETE '.../workflow/NAME?job=b'
    assert httpx.delete(url, params={"job": "b"}, headers=auth).json()["jobs"] == 2
    assert "echo b" not in httpx.get(url, headers=auth).json()["yaml"]
    assert httpx.delete(url, headers=auth).status_code == 204
    assert httpx.get(url, headers=auth).status_code == 404


def test_cloudmesh_ccs_workflow_routes_answer_json_errors(daemon: Daemon) -> None:
    auth = {"Authorization": f"Bearer {daemon.token}"}
    missing = f"{daemon.url}/workflow/nope"
    for response in (httpx.get(missing, headers=auth), httpx.delete(missing, headers=auth),
                     httpx.post(missing, params={"job": "x", "exec": "true"}, headers=auth)):
        assert response.status_code == 404 and "nope" in response.json()["error"]
    httpx.post(f"{daemon.url}/workflow", params={"name": "one"}, headers=auth,
               content=b"workflow:\n  nodes:\n    a: {exec: 'true'}\n")
    one = f"{daemon.url}/workflow/one"
    assert httpx.delete(one, params={"job": "zz"}, headers=auth).status_code == 404
    nameless = httpx.post(one, params={"exec": "true"}, headers=auth)
    assert nameless.status_code == 422 and "?job=NAME" in nameless.json()["error"]
    bad = httpx.post(one, params={"job": "x", "retries": "many"}, headers=auth)
    assert bad.status_code == 422 and "retries" in bad.json()["error"]
    assert httpx.get(one).status_code == 401  # the same auth as every route
