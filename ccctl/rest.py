"""The paper's RESTWorkflow (Figure 14): the Python API of a running daemon.

    from ccctl import RESTWorkflow
    rest = RESTWorkflow()
    rest.upload_workflow("examples/workflow-example/workflow-example.yaml")
    rest.run_workflow("workflow-example")
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from ccctl.client import Client


class RESTWorkflow:
    """Workflows on the daemon, with cloudmesh-cc's method names."""

    def __init__(self, client: Client | None = None) -> None:
        self.client = client or Client()

    def close(self) -> None:
        self.client.close()

    def upload_workflow(self, filename: str | Path, name: str | None = None) -> dict[str, Any]:
        """Upload a workflow YAML (with its scripts), a directory, or a .tar/.tar.gz."""
        from ccd.uploads import pack

        data, archive = pack(Path(filename))
        params = {"filename": archive, **({"name": name} if name else {})}
        result: dict[str, Any] = self.client.json("POST", "/api/v1/workflows", content=data,
                                                  params=params)
        return result

    def list_workflows(self) -> list[dict[str, Any]]:
        """Every workflow the daemon holds."""
        result: list[dict[str, Any]] = self.client.json("GET", "/api/v1/workflows")
        return result

    def get_workflow(self, workflow_name: str, job_name: str | None = None) -> dict[str, Any]:
        """A workflow with its YAML; with job_name, that job of its latest run (or None)."""
        workflow: dict[str, Any] = self.client.json("GET", f"/api/v1/workflows/{workflow_name}")
        if job_name is None:
            return workflow
        runs = self.client.json("GET", "/api/v1/runs", params={"workflow": workflow_name})
        if not runs:
            return {"name": job_name, "state": "ready"}
        run = self.client.json("GET", f"/api/v1/runs/{runs[0]['run']}")
        job: dict[str, Any] = next(j for j in run["jobs"] if j["name"] == job_name)
        return job

    def add_job(self, workflow_name: str, name: str, **fields: Any) -> dict[str, Any]:
        """Add or replace a job of a stored workflow (fields as in the YAML)."""
        result: dict[str, Any] = self.client.json(
            "PUT", f"/api/v1/workflows/{workflow_name}/jobs/{name}", json=fields)
        return result

    def delete_workflow(self, workflow_name: str, job_name: str | None = None) -> None:
        """Delete a workflow, or only one of its jobs."""
        if job_name is None:
            self.client.request("DELETE", f"/api/v1/workflows/{workflow_name}")
        else:
            self.client.request("DELETE", f"/api/v1/workflows/{workflow_name}/jobs/{job_name}")

    def run_workflow(self, workflow_name: str, wait: bool = False) -> dict[str, Any]:
        """Start a run; with wait, return it once it has ended."""
        run: dict[str, Any] = self.client.json("POST", "/api/v1/runs",
                                               json={"workflow": workflow_name})
        if wait:
            stream = self.client.events(f"/api/v1/runs/{run['run']}/events", after=0)
            with contextlib.closing(stream):
                for _, _, event in stream:
                    if event["job"] is None and event["state"] != "running":
                        break
            run = self.client.json("GET", f"/api/v1/runs/{run['run']}")
        return run
