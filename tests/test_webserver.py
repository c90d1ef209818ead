"""The real Dagster webserver serves the cdrbill code location: asset graph, job and schedule over GraphQL.

Starts ``python -m dagster_webserver -m assets.definitions`` as a subprocess (its own session, a throwaway
``DAGSTER_HOME`` and ``CDRBILL_HOME``), asks ``/graphql`` for the asset graph and the workspace, then stops
it with SIGINT, as Ctrl-C would, and checks that it and the code server it spawned are gone.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from assets.cli import DAGSTER_YAML
from tests.test_definitions import STAGES

PROJECT_ROOT = Path(__file__).resolve().parents[1]
LOCATION = "assets.definitions"
READY_TIMEOUT_S = 90.0
SHUTDOWN_TIMEOUT_S = 30.0
PORT_ATTEMPTS = 3

EXPECTED_GROUPS = STAGES  # asset → group, as the definitions declare them
ASSETS_WITH_CHECKS = {"mediated_usage", "rated_usage", "invoices"}

ASSET_GRAPH_QUERY = """
query CdrbillAssetGraph {
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name
        loadStatus
        locationOrLoadError {
          __typename
          ... on RepositoryLocation {
            name
            repositories {
              name
              jobs { name }
              schedules { name }
            }
          }
          ... on PythonError { message stack }
        }
      }
    }
    ... on PythonError { message stack }
  }
  assetNodes {
    assetKey { path }
    groupName
    description
    isPartitioned
    partitionDefinition { type name description }
    jobNames
    hasAssetChecks
  }
}
"""

# Never send requests for 127.0.0.1 through an HTTP(S)_PROXY from the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _restore_default_sigint() -> None:
    """In the child, before exec: SIGINT must not be inherited as ignored (Python then never sees it)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _tail(path: Path, limit: int = 8000) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "<no output>"
    return text if len(text) <= limit else "...\n" + text[-limit:]


def _graphql(port: int, query: str, timeout: float = 30.0) -> dict[str, Any]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json", "Accept": "application/json"},
        method="POST",
    )
    with _OPENER.open(request, timeout=timeout) as response:
        return json.loads(response.read())


def _location_entry(payload: dict[str, Any]) -> dict[str, Any] | None:
    workspace = (payload.get("data") or {}).get("workspaceOrError") or {}
    for entry in workspace.get("locationEntries") or []:
        if entry["name"] == LOCATION:
            return entry
    return None


def _live_group_members(pgid: int) -> list[str]:
    """Processes (not zombies) still in the process group, as ``pid cmdline`` strings (Linux /proc)."""
    proc = Path("/proc")
    if not proc.is_dir():
        return []
    alive = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            # fields after "(comm)": state ppid pgrp ...
            state, _ppid, pgrp = stat.rsplit(")", 1)[1].split()[:3]
            if int(pgrp) != pgid or state == "Z":
                continue
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError, IndexError):
            continue
        alive.append(f"{entry.name} {cmdline.strip()}")
    return alive


class Webserver:
    def __init__(self, proc: subprocess.Popen[bytes], port: int, stderr_path: Path, stdout_path: Path):
        self.proc = proc
        self.port = port
        self.stderr_path = stderr_path
        self.stdout_path = stdout_path

    def logs(self) -> str:
        return (
            f"--- webserver stderr ({self.stderr_path}) ---\n{_tail(self.stderr_path)}\n"
            f"--- webserver stdout ({self.stdout_path}) ---\n{_tail(self.stdout_path)}"
        )


def _launch(tmp_path: Path, env: dict[str, str], attempt: int) -> Webserver:
    port = _free_port()
    stderr_path = tmp_path / f"webserver-{attempt}.stderr.log"
    stdout_path = tmp_path / f"webserver-{attempt}.stdout.log"
    with stderr_path.open("wb") as err, stdout_path.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dagster_webserver", "-m", LOCATION, "-h", "127.0.0.1", "-p", str(port)],
            cwd=PROJECT_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
            preexec_fn=_restore_default_sigint,
        )
    return Webserver(proc, port, stderr_path, stdout_path)


def _wait_until_loaded(server: Webserver, deadline: float) -> dict[str, Any] | None:
    """Poll until the code location is LOADED; None if the process died before answering."""
    last_error = "no answer yet"
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            return None
        try:
            payload = _graphql(server.port, ASSET_GRAPH_QUERY, timeout=10.0)
        except (urllib.error.URLError, ConnectionError, TimeoutError, json.JSONDecodeError) as exc:
            last_error = repr(exc)
        else:
            entry = _location_entry(payload)
            if entry is not None and entry["loadStatus"] == "LOADED":
                return payload
            last_error = f"location not loaded yet: {json.dumps(entry or payload)[:500]}"
        time.sleep(0.5)
    pytest.fail(f"webserver not ready within {READY_TIMEOUT_S:.0f} s ({last_error})\n{server.logs()}")


@pytest.mark.slow
def test_webserver_serves_the_cdrbill_asset_graph(tmp_path: Path) -> None:
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text(DAGSTER_YAML)  # the instance settings `cdrbill ui` writes
    cdrbill_home = tmp_path / "cdrbill_home"
    cdrbill_home.mkdir()

    env = {k: v for k, v in os.environ.items() if not k.startswith("DAGSTER_WEBSERVER_")}
    env.update(
        DAGSTER_HOME=str(dagster_home),
        CDRBILL_HOME=str(cdrbill_home),
        PYTHONUNBUFFERED="1",
        DAGSTER_DISABLE_TELEMETRY="1",
    )

    started = time.monotonic()
    deadline = started + READY_TIMEOUT_S
    server: Webserver | None = None
    launched: list[Webserver] = []
    payload: dict[str, Any] | None = None
    try:
        # A port found free can be taken before the server binds it: start again on another one.
        for attempt in range(1, PORT_ATTEMPTS + 1):
            server = _launch(tmp_path, env, attempt)
            launched.append(server)
            payload = _wait_until_loaded(server, deadline)
            if payload is not None:
                break
            logs = server.logs()
            if "address already in use" not in logs.lower() or attempt == PORT_ATTEMPTS:
                pytest.fail(f"webserver exited early with code {server.proc.returncode}\n{logs}")
        assert server is not None and payload is not None
        ready_s = time.monotonic() - started

        try:
            assert "errors" not in payload, json.dumps(payload["errors"], indent=1)

            # the workspace: the location loaded, with the bill_cycle job and the monthly_bill_run schedule
            entry = _location_entry(payload)
            assert entry is not None
            location = entry["locationOrLoadError"]
            assert location["__typename"] == "RepositoryLocation", json.dumps(location, indent=1)
            jobs = {job["name"] for repo in location["repositories"] for job in repo["jobs"]}
            schedules = {s["name"] for repo in location["repositories"] for s in repo["schedules"]}
            assert "bill_cycle" in jobs, jobs
            assert "monthly_bill_run" in schedules, schedules

            # the asset graph: every asset, in its group, described, partitioned by month
            nodes = {"/".join(node["assetKey"]["path"]): node for node in payload["data"]["assetNodes"]}
            missing = sorted(set(EXPECTED_GROUPS) - set(nodes))
            assert not missing, f"assets missing from the webserver: {missing} (got {sorted(nodes)})"
            for name, group in EXPECTED_GROUPS.items():
                node = nodes[name]
                assert node["groupName"] == group, (name, node["groupName"])
                assert (node["description"] or "").strip(), f"{name} has no description"
                assert node["isPartitioned"], f"{name} is not partitioned"
                partitions = node["partitionDefinition"]
                assert partitions is not None and partitions["type"] == "TIME_WINDOW", (name, partitions)
                assert "Monthly" in partitions["description"], (name, partitions)
                # recycling and the reports (started after each publication): their own jobs
                job = {"recycled_suspense": "recycle_suspense", "reports": "cycle_reports"}.get(
                    group if group == "reports" else name, "bill_cycle"
                )
                assert job in node["jobNames"], (name, node["jobNames"])
            for name in ASSETS_WITH_CHECKS:
                assert nodes[name]["hasAssetChecks"], f"{name} has no asset checks"
        except BaseException:
            print(server.logs())
            raise

        # a clean stop: SIGINT to the webserver, which must exit and take its code server with it
        pgid = server.proc.pid  # start_new_session: the server leads its own process group
        stop_started = time.monotonic()
        server.proc.send_signal(signal.SIGINT)
        try:
            server.proc.wait(timeout=SHUTDOWN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"webserver still running {SHUTDOWN_TIMEOUT_S:.0f} s after SIGINT\n{server.logs()}")
        stop_s = time.monotonic() - stop_started
        # 0, or death by the SIGINT itself if the server re-raises it after its graceful shutdown
        assert server.proc.returncode in (0, -signal.SIGINT, 128 + signal.SIGINT), (
            f"webserver exited with code {server.proc.returncode} after SIGINT\n{server.logs()}"
        )
        survivors = _live_group_members(pgid)
        survivors_deadline = time.monotonic() + 15.0
        while survivors and time.monotonic() < survivors_deadline:
            time.sleep(0.2)
            survivors = _live_group_members(pgid)
        assert not survivors, f"left running after the webserver exited: {survivors}\n{server.logs()}"
        print(
            f"webserver on port {server.port}: ready in {ready_s:.1f} s, stopped in {stop_s:.1f} s "
            f"(exit code {server.proc.returncode})"
        )
    finally:
        # whatever the outcome, nothing started here may outlive the test
        for started_server in launched:
            if started_server.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(started_server.proc.pid, signal.SIGKILL)
                started_server.proc.wait(timeout=10)
            for member in _live_group_members(started_server.proc.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(member.split()[0]), signal.SIGKILL)
