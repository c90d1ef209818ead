"""Check deploy/ offline, with no cluster: the run config against the ``bill_cycle`` job's k8s executor schema,
``dagster.yaml``'s storage, run launcher and run coordinator against their classes' config schemas, and the Job
that dagster-k8s builds for each step pod (the default and every ``per_step_k8s_config`` entry) against the
Kubernetes OpenAPI schema (``kubernetes-validate``), with every resource quantity parsed.

It needs the ``deploy`` extra (dagster-k8s, dagster-postgres) and the schema checker::

    pip install -e '.[deploy]' kubernetes-validate
    python deploy/validate_offline.py [--out FOLDER]   # FOLDER: the Jobs as YAML
"""

import argparse
import json
import os
import re
import sys
from pathlib import Path
from types import SimpleNamespace

import yaml

DEPLOY = Path(__file__).resolve().parent
KUBERNETES_VERSION = "1.32"
# a resource quantity (k8s.io/apimachinery resource.Quantity): a decimal number and a suffix, no space
QUANTITY = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+|Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E)?")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deploy", type=Path, default=DEPLOY, help="the folder of the files checked")
    parser.add_argument("--out", type=Path, help="write each step's Job here as YAML")
    args = parser.parse_args()
    os.environ["CDRBILL_EXECUTOR"] = "k8s"  # the code location picks dagster-k8s's executor
    os.environ.update({f"DAGSTER_PG_{key}": "unset" for key in ("HOST", "DB", "USER", "PASSWORD")})

    import dagster as dg
    import kubernetes
    import kubernetes_validate
    from dagster._config import process_config
    from dagster._core.run_coordinator import QueuedRunCoordinator
    from dagster_k8s import K8sRunLauncher
    from dagster_k8s.container_context import K8sContainerContext
    from dagster_k8s.job import UserDefinedDagsterK8sConfig, construct_dagster_k8s_job
    from dagster_postgres import DagsterPostgresStorage

    from assets.definitions import defs

    failures = 0
    run_config = yaml.safe_load((args.deploy / "run_config.k8s.yaml").read_text(encoding="utf-8"))
    job = defs.resolve_job_def("bill_cycle")
    checked = dg.validate_run_config(job, run_config)
    print(f"run_config.k8s.yaml: valid for bill_cycle with the {job.executor_def.name} executor: {bool(checked)}")
    instance = yaml.safe_load((args.deploy / "dagster.yaml").read_text(encoding="utf-8"))
    launcher = instance["run_launcher"]["config"]
    for name, cls, config in (
        ("run_launcher", K8sRunLauncher, launcher),
        ("storage.postgres", DagsterPostgresStorage, instance["storage"]["postgres"]),
        ("run_coordinator", QueuedRunCoordinator, instance["run_coordinator"]["config"]),
    ):
        outcome = process_config(cls.config_type(), config)
        failures += not outcome.success
        print(f"dagster.yaml {name}: {'valid' if outcome.success else outcome.errors}")

    executor = run_config["execution"]["config"]
    base = K8sContainerContext(
        namespace=executor["job_namespace"],
        env_vars=executor["env_vars"],
        volumes=executor["volumes"],
        volume_mounts=executor["volume_mounts"],
        run_k8s_config=UserDefinedDagsterK8sConfig.from_dict(executor["step_k8s_config"]),
    )
    defaults = SimpleNamespace(
        dagster_home=launcher["dagster_home"],
        instance_config_map=launcher["instance_config_map"],
        postgres_password_secret="dagster-postgresql-secret",
    )
    for op in ["(default)", *executor["per_step_k8s_config"]]:
        context = base
        if op != "(default)":
            override = UserDefinedDagsterK8sConfig.from_dict(executor["per_step_k8s_config"][op])
            context = base.merge(K8sContainerContext(run_k8s_config=override))
        name = "dagster-step-" + op.strip("()").replace("_", "-")
        built = construct_dagster_k8s_job(
            job_config=context.get_k8s_job_config("registry.example.com/cdrbill:0.1.0", defaults),
            args=["dagster", "api", "execute_step"],
            job_name=name,
            pod_name=name,
            component="step_worker",
            user_defined_k8s_config=context.run_k8s_config,
            labels={},
            env_vars=[],
        )
        manifest = kubernetes.client.ApiClient().sanitize_for_serialization(built)
        manifest.update(apiVersion="batch/v1", kind="Job")
        try:
            kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
            resources = manifest["spec"]["template"]["spec"]["containers"][0]["resources"]
            for quantities in resources.values():
                for quantity in quantities.values():  # the schema takes any string: the API server's grammar
                    if not QUANTITY.fullmatch(str(quantity)):
                        raise ValueError(f"resource quantity {quantity!r}: not a Kubernetes quantity (e.g. 2Gi, 500m)")
        except (kubernetes_validate.ValidationError, ValueError) as error:
            failures += 1
            print(f"Job for {op}: INVALID: {error}")
            continue
        if args.out:
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / f"{name}.yaml").write_text(yaml.safe_dump(manifest), encoding="utf-8")
        print(f"Job for {op}: a valid Kubernetes {KUBERNETES_VERSION} Job; resources {json.dumps(resources)}")
    return 1 if failures or not checked else 0


if __name__ == "__main__":
    sys.exit(main())
