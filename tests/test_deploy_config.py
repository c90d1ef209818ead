"""The Kubernetes deployment files (deploy/) parse and name jobs, settings, tags and resources that exist; no
cluster is used; dagster-k8s and the Kubernetes schema check the step pods offline."""

import shutil
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import yaml
from dagster._core.execution.api import create_execution_plan

from assets.definitions import defs
from assets.executors import bill_cycle_executor
from assets.resources import EXECUTOR_ENV, HOME_TAG
from pipeline.settings import Settings

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"


def load(name: str) -> dict:
    return yaml.safe_load((DEPLOY / name).read_text(encoding="utf-8"))


def test_the_instance_runs_on_postgres_and_kubernetes_one_bill_run_per_home():
    for instance in (load("dagster.yaml"),):
        assert "postgres_db" in instance["storage"]["postgres"]
        assert instance["run_launcher"]["class"] == "K8sRunLauncher"
        assert f"{EXECUTOR_ENV}=k8s" in instance["run_launcher"]["config"]["env_vars"]
        limits = instance["run_coordinator"]["config"]["tag_concurrency_limits"]
        assert limits == [{"key": HOME_TAG, "value": {"applyLimitPerUniqueValue": True}, "limit": 1}]
    values = load("values.yaml")
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    assert deployment["dagsterApiGrpcArgs"] == ["-m", "assets.definitions"]
    assert {"name": EXECUTOR_ENV, "value": "k8s"} in deployment["env"]
    queue = values["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    assert queue["tagConcurrencyLimits"][0]["key"] == HOME_TAG
    # every cycle job carries the tag the queue limits
    for name in ("bill_cycle", "approve_cycle", "recycle_suspense"):
        assert HOME_TAG in defs.resolve_job_def(name).tags


def test_the_run_config_names_existing_ops_resources_and_settings():
    config = load("run_config.k8s.yaml")
    job = defs.resolve_job_def("bill_cycle")
    assert set(config["resources"]) <= set(job.resource_defs)
    assert set(config["ops"]) <= {node.name for node in job.graph.nodes}
    assert config["execution"]["config"]["max_concurrent"] >= 1
    # pod sizes per op: every name is an op of the job (dagster-k8s matches a step by its op's name), and a
    # request never exceeds its limit
    ops = {step.node_handle.name for step in create_execution_plan(job).steps}
    per_op = config["execution"]["config"]["per_step_k8s_config"]
    assert set(per_op) <= ops and {"rate_market_shard", "mediated_usage", "render_market_shard"} <= set(per_op)
    for pod in [config["execution"]["config"]["step_k8s_config"], *per_op.values()]:
        resources = pod["container_config"]["resources"]
        assert _mebibytes(resources["requests"]["memory"]) <= _mebibytes(resources["limits"]["memory"])
    text = (DEPLOY / "run_config.k8s.yaml").read_text() + (DEPLOY / "README.md").read_text()
    assert "market_shards" in text and "market_shards" in {f.name for f in fields(Settings)}


def _mebibytes(quantity: str) -> int:
    """A Kubernetes memory quantity in Mi (``Gi`` or ``Mi`` only: what deploy/ uses)."""
    return int(quantity.removesuffix("Gi")) * 1024 if quantity.endswith("Gi") else int(quantity.removesuffix("Mi"))


def test_the_executor_is_chosen_by_the_environment():
    assert bill_cycle_executor({}).name == "cdrbill"
    try:
        bill_cycle_executor({EXECUTOR_ENV: "slurm"})
    except ValueError as error:
        assert "CDRBILL_EXECUTOR='slurm'" in str(error)
    else:
        raise AssertionError("an unknown executor must be refused")


def offline_check(deploy: Path, out: Path) -> subprocess.CompletedProcess:
    """deploy/validate_offline.py on a folder of deploy files: dagster-k8s builds each step's Job, the Kubernetes
    schema checks it (the ``deploy`` extra and kubernetes-validate are in the ``dev`` extra)."""
    command = [sys.executable, str(DEPLOY / "validate_offline.py"), "--deploy", str(deploy), "--out", str(out)]
    return subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)


def test_every_step_pod_is_a_valid_kubernetes_job_sized_as_the_run_config_says(tmp_path):
    result = offline_check(DEPLOY, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    executor = load("run_config.k8s.yaml")["execution"]["config"]
    per_step = executor["per_step_k8s_config"]
    jobs = {path.stem: yaml.safe_load(path.read_text(encoding="utf-8")) for path in tmp_path.glob("*.yaml")}
    assert set(jobs) == {"dagster-step-default"} | {"dagster-step-" + op.replace("_", "-") for op in per_step}
    for op, sizes in [("default", executor["step_k8s_config"]), *per_step.items()]:
        job = jobs["dagster-step-" + op.replace("_", "-")]
        assert job["kind"] == "Job"
        (container,) = job["spec"]["template"]["spec"]["containers"]
        assert container["resources"] == sizes["container_config"]["resources"]


def test_a_pod_size_kubernetes_cannot_read_fails_the_offline_check(tmp_path):
    broken = tmp_path / "deploy"
    shutil.copytree(DEPLOY, broken)
    run_config = broken / "run_config.k8s.yaml"
    text = run_config.read_text(encoding="utf-8")
    assert "limits: {memory: 3Gi}" in text
    run_config.write_text(text.replace("limits: {memory: 3Gi}", "limits: {memory: 3 GiB}"), encoding="utf-8")
    result = offline_check(broken, tmp_path / "jobs")
    assert result.returncode == 1
    assert "Job for (default): INVALID: resource quantity '3 GiB'" in result.stdout
