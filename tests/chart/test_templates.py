"""Rendering assertions for each template: what `helm template` prints for given values."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from tests.chart.rendering import (
    CHART_DIR,
    FULLNAME,
    RELEASE,
    helm_binary,
    render,
    render_error,
)

pytestmark = pytest.mark.chart

SELECTOR = {"app.kubernetes.io/name": "fastapi-app", "app.kubernetes.io/instance": RELEASE}
# On PostgreSQL the chart wants API tokens (or auth.allowAnonymousWrites).
DB = {"databaseUrl": "postgresql://u:p@db:5432/app", "apiTokens": "t0ken=alice"}


# --- names and labels ---------------------------------------------------------------


def test_default_objects_and_standard_labels() -> None:
    result = render()
    assert result.kinds() == {
        "ServiceAccount",
        "ConfigMap",
        "Service",
        "Deployment",
        "PodDisruptionBudget",
        "Pod",
    }
    for obj in result.objects():
        labels = obj["metadata"]["labels"]
        assert labels["helm.sh/chart"] == "fastapi-app-0.1.0"
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert labels["app.kubernetes.io/version"] == "0.1.0"
        assert obj["metadata"]["namespace"] == "default"
        if obj["kind"] != "Pod":
            assert obj["metadata"]["name"] == FULLNAME
            assert SELECTOR.items() <= labels.items()


def test_name_overrides() -> None:
    assert render({"nameOverride": "orders"}).one("Service")["metadata"]["name"] == "demo-orders"
    full = render({"fullnameOverride": "orders-api"})
    assert {o["metadata"]["name"] for o in full.objects() if o["kind"] != "Pod"} == {"orders-api"}
    assert full.one("Deployment")["spec"]["selector"]["matchLabels"] == SELECTOR


def test_objects_land_in_the_release_namespace() -> None:
    result = render(args=["--namespace", "shop"])
    assert {o["metadata"]["namespace"] for o in result.objects()} == {"shop"}


# --- Deployment -----------------------------------------------------------------------


def test_image_reference_tag_digest_pull_policy_and_secrets() -> None:
    assert render().app_container()["image"] == "fastapi-app:0.1.0"
    digest = "sha256:" + "ab" * 32
    result = render(
        {
            "image": {
                "repository": "r.example/app",
                "tag": "1.2.3",
                "digest": digest,
                "pullPolicy": "Always",
            },
            "imagePullSecrets": ["regcred", {"name": "other"}],
        }
    )
    container = result.app_container()
    assert container["image"] == f"r.example/app:1.2.3@{digest}"
    assert container["imagePullPolicy"] == "Always"
    assert result.pod_spec()["imagePullSecrets"] == [{"name": "regcred"}, {"name": "other"}]


def test_rollout_keeps_full_capacity() -> None:
    spec = render().one("Deployment")["spec"]
    # The defaults are the single-pod demo (embedded SQLite); more pods need DATABASE_URL.
    assert spec["replicas"] == 1
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }
    assert spec["minReadySeconds"] == 5
    assert spec["selector"]["matchLabels"] == SELECTOR
    custom = render({"rollout": {"maxSurge": "25%", "minReadySeconds": 0}}).one("Deployment")
    assert custom["spec"]["strategy"]["rollingUpdate"]["maxSurge"] == "25%"
    assert custom["spec"]["minReadySeconds"] == 0


def test_probes_hit_the_health_routes_and_readiness_fails_fast() -> None:
    container = render().app_container()
    assert container["startupProbe"]["httpGet"] == {"path": "/health/startup", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/health/live", "port": "http"}
    readiness = container["readinessProbe"]
    assert readiness["httpGet"] == {"path": "/health/ready", "port": "http"}
    # A draining pod (503 on /health/ready) is out of the endpoints within a few seconds,
    # well inside the default drain of 30 s.
    assert readiness["periodSeconds"] * readiness["failureThreshold"] <= 5
    # Liveness is lenient: it must never restart a pod in the middle of its drain.
    liveness = container["livenessProbe"]
    assert liveness["periodSeconds"] * liveness["failureThreshold"] >= 30


def test_probe_timings_are_overridable() -> None:
    values = {
        "startupProbe": {"failureThreshold": 90, "periodSeconds": 1},
        "readinessProbe": {
            "periodSeconds": 1,
            "failureThreshold": 1,
            "timeoutSeconds": 2,
            "initialDelaySeconds": 3,
            "successThreshold": 2,
        },
        "livenessProbe": {"path": "/health/live", "periodSeconds": 20, "timeoutSeconds": 5},
    }
    container = render(values).app_container()
    assert container["startupProbe"]["failureThreshold"] == 90
    assert container["startupProbe"]["periodSeconds"] == 1
    readiness = container["readinessProbe"]
    assert (readiness["periodSeconds"], readiness["failureThreshold"]) == (1, 1)
    assert (readiness["timeoutSeconds"], readiness["initialDelaySeconds"]) == (2, 3)
    assert readiness["successThreshold"] == 2
    assert container["livenessProbe"]["periodSeconds"] == 20
    assert container["livenessProbe"]["timeoutSeconds"] == 5


def test_security_defaults() -> None:
    result = render()
    pod = result.pod_spec()
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "runAsGroup": 10001,
        "fsGroup": 10001,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert pod["automountServiceAccountToken"] is False
    assert pod["serviceAccountName"] == FULLNAME
    container = result.app_container()
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["runAsNonRoot"] is True
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
    assert pod["volumes"] == [{"name": "tmp", "emptyDir": {"sizeLimit": "128Mi"}}]
    resources = container["resources"]
    assert set(resources["requests"]) == {"cpu", "memory"}
    assert set(resources["limits"]) == {"cpu", "memory"}


def test_port_and_environment_wiring() -> None:
    result = render({"containerPort": 9000, "config": {"webConcurrency": None}})
    container = result.app_container()
    assert container["ports"] == [
        {"name": "http", "containerPort": 9000, "protocol": "TCP"},
        {"name": "metrics", "containerPort": 9464, "protocol": "TCP"},
    ]
    assert container["envFrom"] == [{"configMapRef": {"name": FULLNAME}}]
    env = result.env()
    assert env["PORT"] == "9000"
    assert "WEB_CONCURRENCY" not in env
    assert result.pod_spec()["enableServiceLinks"] is False


def test_topology_spread_across_nodes_and_zones_by_default() -> None:
    hostname, zone = render().pod_spec()["topologySpreadConstraints"]
    assert hostname["topologyKey"] == "kubernetes.io/hostname"
    assert zone["topologyKey"] == "topology.kubernetes.io/zone"
    for constraint in (hostname, zone):
        assert constraint["maxSkew"] == 1
        assert constraint["whenUnsatisfiable"] == "ScheduleAnyway"
        assert constraint["labelSelector"] == {"matchLabels": SELECTOR}
        assert constraint["matchLabelKeys"] == ["pod-template-hash"]
    assert "topologySpreadConstraints" not in render({"topologySpreadConstraints": []}).pod_spec()


def test_topology_spread_constraints_are_the_users_list() -> None:
    own_selector = {"matchLabels": {"team": "orders"}}
    values = {
        "topologySpreadConstraints": [
            {
                "maxSkew": 2,
                "topologyKey": "kubernetes.io/hostname",
                "whenUnsatisfiable": "DoNotSchedule",
            },
            {
                "maxSkew": 1,
                "topologyKey": "topology.kubernetes.io/zone",
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": own_selector,
                "minDomains": 3,
            },
        ]
    }
    first, second = render(values).pod_spec()["topologySpreadConstraints"]
    assert first == {
        "maxSkew": 2,
        "topologyKey": "kubernetes.io/hostname",
        "whenUnsatisfiable": "DoNotSchedule",
        "labelSelector": {"matchLabels": SELECTOR},
        "matchLabelKeys": ["pod-template-hash"],
    }
    # An entry with its own labelSelector is left as written.
    assert second["labelSelector"] == own_selector and "matchLabelKeys" not in second
    assert second["minDomains"] == 3


def test_scheduling_and_pod_metadata_pass_through() -> None:
    values: dict[str, Any] = {
        "nodeSelector": {"pool": "web"},
        "tolerations": [
            {"key": "dedicated", "operator": "Equal", "value": "web", "effect": "NoSchedule"}
        ],
        "affinity": {"nodeAffinity": {}},
        "priorityClassName": "high",
        "podAnnotations": {"team": "orders"},
        "podLabels": {"tier": "api"},
    }
    result = render(values)
    pod = result.pod_spec()
    assert pod["nodeSelector"] == {"pool": "web"}
    assert pod["tolerations"] == values["tolerations"]
    assert pod["affinity"] == {"nodeAffinity": {}}
    assert pod["priorityClassName"] == "high"
    metadata = result.one("Deployment")["spec"]["template"]["metadata"]
    assert metadata["annotations"]["team"] == "orders"
    assert metadata["labels"]["tier"] == "api"


def test_checksums_roll_the_pods_when_the_environment_changes() -> None:
    def checksums(values: dict[str, Any]) -> dict[str, str]:
        annotations = render(values).one("Deployment")["spec"]["template"]["metadata"]
        return {k: v for k, v in annotations["annotations"].items() if k.startswith("checksum/")}

    base = checksums({})
    assert set(base) == {"checksum/config", "checksum/secret"}
    assert (
        checksums({"config": {"logLevel": "debug"}})["checksum/config"] != base["checksum/config"]
    )
    # G is in the pod spec itself: a change rolls the pods without touching the ConfigMap.
    assert checksums({"shutdown": {"gracePeriodSeconds": 31}}) == base
    assert (
        render({"shutdown": {"gracePeriodSeconds": 31}}).pod_env()["GRACE_PERIOD_SECONDS"] == "31"
    )
    changed = checksums({"secret": {"adminToken": "t0ken"}})
    assert changed["checksum/secret"] != base["checksum/secret"]
    assert changed["checksum/config"] == base["checksum/config"]
    assert "checksum/secret" not in checksums({"secret": {"existingSecret": "creds"}})


def test_extra_env_is_appended() -> None:
    extra = [
        {"name": "FEATURE_X", "value": "on"},
        {
            "name": "OTEL_EXPORTER_OTLP_HEADERS",
            "valueFrom": {"secretKeyRef": {"name": "otel", "key": "headers"}},
        },
    ]
    env = render({"extraEnv": extra}).app_container()["env"]
    assert env[-2:] == extra
    assert [e["name"] for e in env[:-2]] == [
        "GRACE_PERIOD_SECONDS",
        "SHUTDOWN_CLEANUP_SECONDS",
        "SHUTDOWN_DELAY_SECONDS",
        "APP_VERSION",
    ]


def test_extra_env_from_follows_the_config_map() -> None:
    sources = [
        {"secretRef": {"name": "otel-headers"}},
        {"configMapRef": {"name": "flags"}, "prefix": "FF_"},
    ]
    container = render({"extraEnvFrom": sources}).app_container()
    assert container["envFrom"] == [{"configMapRef": {"name": FULLNAME}}, *sources]


# --- ConfigMap and Secret ------------------------------------------------------------


def test_configmap_holds_the_non_secret_environment() -> None:
    assert render().config() == {
        "SERVICE_NAME": "api",
        "LOG_LEVEL": "info",
        "PORT": "8000",
        "SLOW_REQUEST_MS": "500",
        "WEB_CONCURRENCY": "2",
        "READINESS_REQUIRES": "database",
        "METRICS_ENABLED": "true",
        "METRICS_PORT": "9464",
        "DEMO_ROUTES": "false",
    }
    # The shutdown numbers (and the version) are in the pod spec, next to
    # terminationGracePeriodSeconds: per pod, not shared by a rollout's old and new pods.
    assert render().pod_env() == {
        "APP_VERSION": "0.1.0",
        "GRACE_PERIOD_SECONDS": "30",
        "SHUTDOWN_CLEANUP_SECONDS": "5",
        "SHUTDOWN_DELAY_SECONDS": "0",
    }
    env = render(
        {
            "config": {
                "serviceName": "orders",
                "logLevel": "warning",
                "slowRequestMs": 250,
                "forwardedAllowIps": "*",
                "opentelemetry": {
                    "serviceName": "orders",
                    "exporterOtlpEndpoint": "http://collector:4318",
                    "tracesSampler": "parentbased_traceidratio",
                    "tracesSamplerArg": "0.25",
                    "resourceAttributes": "env=prod",
                },
            },
            "shutdown": {"retryAfterSeconds": 7, "delaySeconds": 2},
        }
    ).env()
    assert env["SERVICE_NAME"] == "orders"
    assert env["LOG_LEVEL"] == "warning"
    assert env["SLOW_REQUEST_MS"] == "250"
    assert env["FORWARDED_ALLOW_IPS"] == "*"
    assert env["RETRY_AFTER_SECONDS"] == "7"
    assert "RETRY_AFTER_SECONDS" not in render({"shutdown": {"retryAfterSeconds": 7}}).config()
    assert env["SHUTDOWN_DELAY_SECONDS"] == "2"
    assert env["OTEL_SERVICE_NAME"] == "orders"
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://collector:4318"
    assert env["OTEL_TRACES_SAMPLER"] == "parentbased_traceidratio"
    assert env["OTEL_TRACES_SAMPLER_ARG"] == "0.25"
    assert env["OTEL_RESOURCE_ATTRIBUTES"] == "env=prod"


def test_no_secret_object_when_no_secret_value_is_set() -> None:
    result = render()
    assert result.find("Secret") == []
    assert result.secret_refs() == {}


def test_chart_managed_secret_feeds_only_the_variables_that_are_set() -> None:
    result = render({"secret": {**DB, "adminToken": "s3cret"}})
    # The release's Secret (the migration Job's hook Secret is tests/chart/test_migrations.py's).
    (secret,) = [s for s in result.find("Secret") if s["metadata"]["name"] == FULLNAME]
    assert secret["type"] == "Opaque"
    assert set(secret["data"]) == {"DATABASE_URL", "ADMIN_TOKEN", "API_TOKENS"}
    assert result.secret_refs() == {
        "ADMIN_TOKEN": {"name": FULLNAME, "key": "ADMIN_TOKEN", "optional": False},
        "API_TOKENS": {"name": FULLNAME, "key": "API_TOKENS", "optional": False},
        "DATABASE_URL": {"name": FULLNAME, "key": "DATABASE_URL", "optional": False},
    }
    # Nothing secret leaks into the ConfigMap or the pod spec.
    assert "s3cret" not in str(result.one("ConfigMap")) + str(result.one("Deployment"))


def test_existing_secret_is_read_with_its_own_key_names() -> None:
    result = render(
        {"secret": {"existingSecret": "creds", "existingSecretKeys": {"databaseUrl": "db-url"}}}
    )
    assert result.find("Secret") == []
    env = result.secret_refs()
    # DATABASE_URL is never optional: a Secret without it stops the pod instead of letting
    # it run on the embedded SQLite; the other keys may be missing (variable unset).
    assert env["DATABASE_URL"] == {"name": "creds", "key": "db-url", "optional": False}
    assert env["REDIS_URL"] == {"name": "creds", "key": "REDIS_URL", "optional": True}
    assert set(env) == {"DATABASE_URL", "REDIS_URL", "ADMIN_TOKEN", "API_TOKENS"}


def test_writes_on_postgresql_need_api_tokens_or_the_explicit_opt_out() -> None:
    """The chart fails closed on PostgreSQL without API tokens (tests/chart/test_bad_values.py);
    these values render."""
    pg = "postgresql://u:p@db:5432/app"
    open_writes = {"auth": {"allowAnonymousWrites": True}}
    assert render({"secret": {"databaseUrl": pg}, **open_writes}).secret_refs().keys() == {
        "DATABASE_URL"
    }
    tokens_from = {"name": "api-tokens", "key": "pairs"}
    from_ref = render({"secret": {"databaseUrl": pg, "apiTokensFrom": tokens_from}})
    assert from_ref.secret_refs()["API_TOKENS"] == {**tokens_from, "optional": False}
    # SQLite (the embedded file, or a SQLite URL) is a single-pod demo: no tokens needed.
    render()
    render({"secret": {"databaseUrl": "sqlite:////tmp/app.sqlite3"}})
    # An existing Secret cannot be read at render time: its API_TOKENS key becomes required,
    # so a Secret without it stops the pod, unless anonymous writes are chosen.
    existing = {"secret": {"existingSecret": "creds"}}
    required = render(existing).secret_refs()["API_TOKENS"]
    assert required == {"name": "creds", "key": "API_TOKENS", "optional": False}
    chosen = render({**existing, **open_writes}).secret_refs()["API_TOKENS"]
    assert chosen == {"name": "creds", "key": "API_TOKENS", "optional": True}


def test_demo_routes_are_off_unless_enabled() -> None:
    assert render().config()["DEMO_ROUTES"] == "false"
    assert render({"demoRoutes": {"enabled": True}}).config()["DEMO_ROUTES"] == "true"


def test_each_secret_variable_can_come_from_its_own_secret() -> None:
    """secret.<var>From {name, key}: an operator's Secret (CloudNativePG, External Secrets) as
    it is, per variable, winning over existingSecret; never optional."""
    result = render(
        {
            "replicaCount": 3,
            "secret": {
                "existingSecret": "app-env",
                "databaseUrlFrom": {"name": "orders-db-app", "key": "uri"},
                "redisUrlFrom": {"name": "redis-auth", "key": "url"},
            },
        }
    )
    env = result.secret_refs()
    assert env["DATABASE_URL"] == {"name": "orders-db-app", "key": "uri", "optional": False}
    assert env["REDIS_URL"] == {"name": "redis-auth", "key": "url", "optional": False}
    assert env["ADMIN_TOKEN"] == {"name": "app-env", "key": "ADMIN_TOKEN", "optional": True}
    only_db = render(
        {
            "replicaCount": 2,
            "secret": {"databaseUrlFrom": {"name": "d", "key": "k"}},
            "auth": {"allowAnonymousWrites": True},
        }
    )
    assert only_db.secret_refs() == {"DATABASE_URL": {"name": "d", "key": "k", "optional": False}}
    assert only_db.find("Secret") == []


def test_the_default_is_a_single_pod_demo_on_sqlite_and_more_pods_need_a_database() -> None:
    demo = render()
    assert demo.one("Deployment")["spec"]["replicas"] == 1
    assert "DATABASE_URL" not in demo.secret_refs()
    scaled = render({"replicaCount": 3, "secret": DB, "database": {"allowEmbeddedSqlite": False}})
    assert scaled.one("Deployment")["spec"]["replicas"] == 3
    assert scaled.secret_refs()["DATABASE_URL"]["optional"] is False


def test_readiness_requires_is_passed_to_the_app() -> None:
    values = {
        "readiness": {"requires": "database,redis"},
        "secret": {"redisUrl": "redis://r:6379/0"},
    }
    assert render(values).config()["READINESS_REQUIRES"] == "database,redis"
    existing = {"readiness": {"requires": "database,redis"}, "secret": {"existingSecret": "env"}}
    assert render(existing).config()["READINESS_REQUIRES"] == "database,redis"


def test_probe_timeouts_leave_a_second_over_the_apps_check_timeout() -> None:
    container = render().app_container()
    assert container["readinessProbe"]["timeoutSeconds"] >= 2
    assert container["startupProbe"]["timeoutSeconds"] >= 2


# --- Service and ServiceAccount ------------------------------------------------------


def test_service_forwards_to_the_named_port() -> None:
    service = render({"service": {"port": 8080, "annotations": {"a": "b"}}}).one("Service")
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["selector"] == SELECTOR
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"}
    ]
    assert service["metadata"]["annotations"]["a"] == "b"


def test_service_account_mounts_no_token() -> None:
    account = render({"serviceAccount": {"annotations": {"role": "x"}}}).one("ServiceAccount")
    assert account["automountServiceAccountToken"] is False
    assert account["metadata"]["annotations"]["role"] == "x"
    result = render({"serviceAccount": {"create": False, "name": "shared"}})
    assert result.find("ServiceAccount") == []
    assert result.pod_spec()["serviceAccountName"] == "shared"
    assert render({"serviceAccount": {"name": "own"}}).pod_spec()["serviceAccountName"] == "own"


# --- HPA and PDB -----------------------------------------------------------------------


def test_hpa_replaces_the_replica_count() -> None:
    assert render().find("HorizontalPodAutoscaler") == []
    result = render(
        {
            "secret": DB,
            "autoscaling": {
                "enabled": True,
                "minReplicas": 3,
                "maxReplicas": 9,
                "targetMemoryUtilizationPercentage": 80,
            },
        }
    )
    # The HPA owns the count: no replicas for helm or a GitOps controller to reset
    # (tests/chart/test_gitops.py renders it under helm install too).
    assert "replicas" not in result.one("Deployment")["spec"]
    hpa = result.one("HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": FULLNAME,
    }
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 9)
    metrics = {m["resource"]["name"]: m["resource"]["target"] for m in hpa["spec"]["metrics"]}
    assert metrics == {
        "cpu": {"type": "Utilization", "averageUtilization": 70},
        "memory": {"type": "Utilization", "averageUtilization": 80},
    }
    assert hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 300


def test_pdb_whenever_enabled_one_pod_included() -> None:
    pdb = render({"replicaCount": 2, "secret": DB}).one("PodDisruptionBudget")
    assert pdb["apiVersion"] == "policy/v1"
    assert pdb["spec"] == {
        "maxUnavailable": 1,
        "unhealthyPodEvictionPolicy": "AlwaysAllow",
        "selector": {"matchLabels": SELECTOR},
    }
    # One pod: rendered too (maxUnavailable 1 lets it go), so helm template, Argo CD and an
    # HPA with minReplicas 1 all see the same objects.
    single = render({"replicaCount": 1}).one("PodDisruptionBudget")
    assert single["spec"]["maxUnavailable"] == 1
    hpa_one = render(
        {"secret": DB, "autoscaling": {"enabled": True, "minReplicas": 1}},
        args=("--is-upgrade",),
    )
    assert hpa_one.one("PodDisruptionBudget")["spec"]["maxUnavailable"] == 1
    assert render({"podDisruptionBudget": {"enabled": False}}).find("PodDisruptionBudget") == []
    scaled = render(
        {"replicaCount": 1, "secret": DB, "autoscaling": {"enabled": True, "minReplicas": 2}}
    )
    assert len(scaled.find("PodDisruptionBudget")) == 1
    three = render({"replicaCount": 3, "secret": DB, "podDisruptionBudget": {"minAvailable": 2}})
    assert three.one("PodDisruptionBudget")["spec"]["minAvailable"] == 2
    assert "maxUnavailable" not in three.one("PodDisruptionBudget")["spec"]


# --- NetworkPolicy, Ingress, metrics ---------------------------------------------------


def test_network_policy_admits_only_the_app_port() -> None:
    assert render().find("NetworkPolicy") == []
    open_policy = render({"networkPolicy": {"enabled": True}}).one("NetworkPolicy")
    assert open_policy["spec"]["podSelector"] == {"matchLabels": SELECTOR}
    assert open_policy["spec"]["policyTypes"] == ["Ingress"]
    assert open_policy["spec"]["ingress"] == [{"ports": [{"port": "http", "protocol": "TCP"}]}]
    peer = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress"}}}
    egress = [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}], "ports": [{"port": 5432}]}]
    result = render(
        {
            "networkPolicy": {
                "enabled": True,
                "allowedFrom": [peer],
                "restrictEgress": True,
                "egress": egress,
            }
        }
    )
    policy = result.one("NetworkPolicy")["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    client = {"podSelector": {"matchLabels": {f"{FULLNAME}-client": "true"}}}
    assert policy["ingress"][0]["from"] == [peer, client]
    assert policy["egress"][0]["ports"] == [
        {"port": 53, "protocol": "UDP"},
        {"port": 53, "protocol": "TCP"},
    ]
    assert policy["egress"][1:] == egress
    # The helm test pod carries the client label, so the policy lets it check readiness.
    assert result.one("Pod")["metadata"]["labels"][f"{FULLNAME}-client"] == "true"


def test_ingress_routes_hosts_to_the_service() -> None:
    assert render().find("Ingress") == []
    ingress = render(
        {
            "ingress": {
                "enabled": True,
                "className": "nginx",
                "hosts": [
                    {"host": "api.example.com", "paths": [{"path": "/", "pathType": "Prefix"}]}
                ],
                "tls": [{"secretName": "tls", "hosts": ["api.example.com"]}],
            }
        }
    ).one("Ingress")
    assert ingress["apiVersion"] == "networking.k8s.io/v1"
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["spec"]["tls"] == [{"secretName": "tls", "hosts": ["api.example.com"]}]
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] == "api.example.com"
    assert rule["http"]["paths"] == [
        {
            "path": "/",
            "pathType": "Prefix",
            "backend": {"service": {"name": FULLNAME, "port": {"name": "http"}}},
        }
    ]


MONITORING_CRDS = (
    "--api-versions",
    "monitoring.coreos.com/v1/ServiceMonitor",
    "--api-versions",
    "monitoring.coreos.com/v1/PrometheusRule",
)


def test_metrics_port_env_and_version() -> None:
    result = render({"image": {"tag": "1.4.2"}})
    ports = {p["name"]: p["containerPort"] for p in result.app_container()["ports"]}
    assert ports == {"http": 8000, "metrics": 9464}
    assert result.env()["METRICS_ENABLED"] == "true" and result.env()["METRICS_PORT"] == "9464"
    assert result.pod_env()["APP_VERSION"] == "1.4.2"
    # The API's Service never carries the metrics port.
    assert [p["name"] for p in result.one("Service")["spec"]["ports"]] == ["http"]
    off = render({"metrics": {"enabled": False}})
    assert [p["name"] for p in off.app_container()["ports"]] == ["http"]
    assert off.env()["METRICS_ENABLED"] == "false" and "METRICS_PORT" not in off.env()


def test_service_monitor_renders_without_the_crd_and_scrapes_the_metrics_port() -> None:
    values = {
        "metrics": {
            "serviceMonitor": {
                "enabled": True,
                "labels": {"release": "prom"},
                "interval": "15s",
                "namespace": "monitoring",
                "relabelings": [{"targetLabel": "team", "replacement": "api"}],
            }
        }
    }
    assert render().find("ServiceMonitor") == []
    # With or without the CRD among --api-versions (Argo CD passes the cluster's, helm
    # template none): the same objects; the CRDs are the cluster's (NOTES.txt).
    without = render(values)
    result = render(values, args=MONITORING_CRDS)
    assert without.objects() == result.objects()
    monitor = result.one("ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["namespace"] == "monitoring"
    assert monitor["metadata"]["labels"]["release"] == "prom"
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["default"]}
    selector = {**SELECTOR, "app.kubernetes.io/component": "metrics"}
    assert monitor["spec"]["selector"] == {"matchLabels": selector}
    assert monitor["spec"]["endpoints"] == [
        {
            "port": "metrics",
            "path": "/metrics",
            "interval": "15s",
            "scrapeTimeout": "10s",
            "relabelings": [{"targetLabel": "team", "replacement": "api"}],
        }
    ]
    services = {s["metadata"]["name"]: s for s in result.find("Service")}
    metrics_service = services[f"{FULLNAME}-metrics"]
    assert metrics_service["spec"]["type"] == "ClusterIP"
    assert metrics_service["metadata"]["labels"]["app.kubernetes.io/component"] == "metrics"
    assert metrics_service["spec"]["ports"] == [
        {"name": "metrics", "port": 9464, "targetPort": "metrics", "protocol": "TCP"}
    ]


def test_network_policy_admits_prometheus_to_the_metrics_port_only() -> None:
    policy = render({"networkPolicy": {"enabled": True, "prometheusNamespace": "monitoring"}}).one(
        "NetworkPolicy"
    )
    assert policy["spec"]["ingress"] == [
        {"ports": [{"port": "http", "protocol": "TCP"}]},
        {
            "ports": [{"port": "metrics", "protocol": "TCP"}],
            "from": [
                {
                    "namespaceSelector": {
                        "matchLabels": {"kubernetes.io/metadata.name": "monitoring"}
                    }
                }
            ],
        },
    ]


def test_prometheus_rule_renders_with_and_without_the_crd() -> None:
    values = {"metrics": {"prometheusRule": {"enabled": True, "labels": {"role": "alerts"}}}}
    assert render(values).one("PrometheusRule") == render(values, args=MONITORING_CRDS).one(
        "PrometheusRule"
    )
    rule = render(values, args=MONITORING_CRDS).one("PrometheusRule")
    assert rule["metadata"]["labels"]["role"] == "alerts"
    alerts = [r["alert"] for g in rule["spec"]["groups"] for r in g["rules"] if "alert" in r]
    assert alerts == [
        "FastapiAppHighErrorRatio",
        "FastapiAppHighLatencyP99",
        "FastapiAppRequestsCutByGracePeriod",
        "FastapiAppErrorBudgetFastBurn",
        "FastapiAppErrorBudgetSlowBurn",
    ]


# --- helm test pod and NOTES ---------------------------------------------------------------


def test_helm_test_pod_checks_readiness_through_the_service_with_the_app_image() -> None:
    result = render({"image": {"repository": "r.example/app", "tag": "9"}})
    pod = result.one("Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert not SELECTOR.items() <= pod["metadata"]["labels"].items(), "must not join the Service"
    (container,) = pod["spec"]["containers"]
    assert container["image"] == result.app_container()["image"] == "r.example/app:9"
    assert container["command"][-1] == f"http://{FULLNAME}:80/health/ready"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["spec"]["restartPolicy"] == "Never"
    assert render({"tests": {"enabled": False}}).find("Pod") == []
    # commonLabels may restate the name (its own value): the test pod still never carries it.
    restated = render({"commonLabels": {"app.kubernetes.io/name": "fastapi-app", "team": "a"}})
    labels = restated.one("Pod")["metadata"]["labels"]
    assert "app.kubernetes.io/name" not in labels and labels["team"] == "a"


def test_helm_test_script_is_valid_python() -> None:
    script = render().one("Pod")["spec"]["containers"][0]["command"][2]
    compile(script, "helm-test", "exec")


def test_notes_state_the_timeline() -> None:
    """NOTES.txt needs an install; helm v4 renders it client-side without a cluster."""
    helm4 = helm_binary("helm4")
    proc = subprocess.run(
        [
            helm4,
            "install",
            RELEASE,
            str(CHART_DIR),
            "--dry-run=client",
            "--set",
            "shutdown.preStopSeconds=10",
            "--set",
            "shutdown.gracePeriodSeconds=60",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    notes = proc.stdout.split("NOTES:", 1)[1]
    assert "preStop sleeps 10 s" in notes
    assert "drain up to 60 s" in notes
    # Drain over at P + G, cleanup done by P + G + C, SIGKILL at T = P + G + C + 5.
    assert "t<=70s  drain over" in notes
    assert "t<=75s  cleanup done" in notes
    assert "t=80s   terminationGracePeriodSeconds" in notes
    assert "embedded SQLite" in notes
    assert f"helm test {RELEASE}" in notes


def test_cross_value_failures_say_what_to_change() -> None:
    assert "extraEnv sets GRACE_PERIOD_SECONDS" in render_error(
        {"extraEnv": [{"name": "GRACE_PERIOD_SECONDS", "value": "5"}]}
    )
