#!/usr/bin/env bash
# tests/integration/deploy_helm.sh — the Helm chart (deploy/helm/outpost) and the container files, without
# helm or a cluster (neither is available from Debian's archive): scripts/helm-render.py renders the
# chart as `helm template` would, checked on its Go-template rules first; the reference's
# values-wsproxy.yaml renders verbatim into a wsproxy Deployment (args wsproxy server, the token from
# its Secret, TLS from coder.tls.secretNames, /healthz probes, seccomp Localhost, non-root) and a
# Service on 443; the metrics port and Service appear only with CODER_PROMETHEUS_ENABLE=true; without
# workspaceProxy it runs `outpost server`; yamllint accepts the chart and the output. The shipped seccomp
# profile is scripts/seccomp-io_uring.py's output, and the Dockerfile's entrypoint is the proxy.
. "$(dirname "$0")/../lib/common.sh"
CHART=$ROOT/deploy/helm/outpost
render() { python3 "$ROOT/scripts/helm-render.py" "$@"; }

# --- the renderer follows Go's template rules on the constructs the chart uses ---
mkdir -p "$T/c/templates"
printf 'apiVersion: v2\nname: t\nversion: 1.0.0\nappVersion: "9"\n' >"$T/c/Chart.yaml"
printf 'a: [x, y]\nm: {k2: 2, k1: 1}\ne: ""\nz: 0\n' >"$T/c/values.yaml"
cat >"$T/c/templates/t.yaml" <<'TPL'
{{- define "n" -}}[{{ . }}]{{- end -}}
trim: {{- "a" -}}   <{{ "b" }}>
range: {{ range $i, $v := .Values.a }}{{ if $i }},{{ end }}{{ $i }}={{ $v }}{{ end }}
map: {{ range $k, $v := .Values.m }}{{ $k }}{{ $v }} {{ end }}
falsy: {{ if .Values.e }}bad{{ else if .Values.z }}bad{{ else }}ok{{ end }}
with: {{ with .Values.m }}{{ .k1 }}{{ end }}{{ with .Values.e }}bad{{ end }}
pipe: {{ .Values.e | default "d" | quote }} {{ include "n" .Chart.AppVersion | nindent 2 }}
var: {{ $x := 1 }}{{ range .Values.a }}{{ $x = 2 }}{{ end }}{{ $x }}
TPL
render "$T/c" >"$T/t.out" 2>&1 || fail "render the rules chart: $(cat "$T/t.out")"
cat >"$T/t.want" <<'WANT'
---
# Source: t/templates/t.yaml
trim:a<b>
range: 0=x,1=y
map: k11 k22 
falsy: ok
with: 1
pipe: "d" 
  [9]
var: 2
WANT
diff -u "$T/t.want" "$T/t.out" || fail "the renderer departs from Go template semantics"
printf '{{ .Values.nope.deeper }}\n' >"$T/c/templates/bad.yaml"
render "$T/c" >"$T/bad.out" 2>&1 && fail "a nil field rendered silently"
grep -q 'bad.yaml:1: nil pointer' "$T/bad.out" || fail "error does not name the template: $(cat "$T/bad.out")"
ok "helm-render.py: trimming, range/if/with/else if, pipelines, include/nindent, variables, errors named"

# --- the reference's values-wsproxy.yaml, verbatim ---
render "$CHART" -f "$ROOT/tests/deploy/values-wsproxy.yaml" --release eu >"$T/wsproxy.yaml" 2>&1 ||
    fail "render: $(cat "$T/wsproxy.yaml")"
python3 - "$T/wsproxy.yaml" <<'PY' || fail "rendered wsproxy manifests"
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
kinds = sorted(d["kind"] for d in docs)
assert kinds == ["Deployment", "Service"], kinds
dep = next(d for d in docs if d["kind"] == "Deployment")
svc = next(d for d in docs if d["kind"] == "Service")
pod = dep["spec"]["template"]["spec"]
c = pod["containers"][0]
assert c["command"] == ["/usr/bin/outpost"] and c["args"] == ["wsproxy", "server"], (c["command"], c["args"])
env = {e["name"]: e for e in c["env"]}
assert env["CODER_PROXY_SESSION_TOKEN"]["valueFrom"]["secretKeyRef"] == {"key": "token", "name": "coder-workspace-proxy"}
assert env["CODER_PRIMARY_ACCESS_URL"]["value"] == "https://<url_of_coder_dashboard>"
assert env["CODER_WILDCARD_ACCESS_URL"]["value"] == "*.<app_suffix_of_proxy>"
assert env["CODER_TLS_ENABLE"]["value"] == "true"
assert env["CODER_TLS_CERT_FILE"]["value"] == "/etc/ssl/certs/coder/kubernetes-wsproxy-secret/tls.crt"
assert env["CODER_HTTP_ADDRESS"]["value"] == "0.0.0.0:8080"
assert env["CODER_WORKERS"]["value"] == "2"
mounts = {m["name"]: m for m in c["volumeMounts"]}
assert mounts["tls-kubernetes-wsproxy-secret"]["mountPath"] == "/etc/ssl/certs/coder/kubernetes-wsproxy-secret"
vols = {v["name"]: v for v in pod["volumes"]}
assert vols["tls-kubernetes-wsproxy-secret"]["secret"]["secretName"] == "kubernetes-wsproxy-secret"
for p in ("readinessProbe", "livenessProbe"):
    assert c[p]["httpGet"] == {"path": "/healthz", "port": "https", "scheme": "HTTPS"}, c[p]
sc = c["securityContext"]
assert sc["seccompProfile"] == {"type": "Localhost", "localhostProfile": "profiles/outpost-seccomp-io_uring.json"}
assert sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"] is True and sc["capabilities"]["drop"] == ["ALL"]
assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 999
ports = {p["name"]: p["containerPort"] for p in c["ports"]}
assert ports == {"http": 8080, "https": 8443}, ports
assert {p["port"]: p["targetPort"] for p in svc["spec"]["ports"]} == {80: "http", 443: "https"}
assert svc["spec"]["selector"] == dep["spec"]["selector"]["matchLabels"]
assert dep["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"] == "wsproxy"
assert c["resources"]["limits"] and dep["spec"]["replicas"] == 1
PY
ok "values-wsproxy.yaml verbatim: wsproxy server, token from its Secret, TLS secret mounted, /healthz probes, seccomp Localhost, Service 80/443"

# --- metrics, replicas, and the primary ---
cat >"$T/more.yaml" <<'VAL'
coder:
  workspaceProxy: true
  replicaCount: 3
  env:
    - name: CODER_PROMETHEUS_ENABLE
      value: "true"
VAL
render "$CHART" -f "$ROOT/tests/deploy/values-wsproxy.yaml" -f "$T/more.yaml" --release eu >"$T/more.out" 2>&1 ||
    fail "render with metrics: $(cat "$T/more.out")"
render "$CHART" --release coder >"$T/primary.out" 2>&1 || fail "render the primary: $(cat "$T/primary.out")"
python3 - "$T/more.out" "$T/primary.out" <<'PY' || fail "metrics/primary manifests"
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
dep = next(d for d in docs if d["kind"] == "Deployment")
c = dep["spec"]["template"]["spec"]["containers"][0]
assert dep["spec"]["replicas"] == 3
assert {p["name"]: p["containerPort"] for p in c["ports"]}["prometheus-http"] == 2112
metrics = [d for d in docs if d["kind"] == "Service" and d["metadata"]["name"].endswith("-metrics")]
assert metrics and metrics[0]["spec"]["type"] == "ClusterIP" and metrics[0]["spec"]["ports"][0]["port"] == 2112
docs = [d for d in yaml.safe_load_all(open(sys.argv[2])) if d]
dep = next(d for d in docs if d["kind"] == "Deployment")
c = dep["spec"]["template"]["spec"]["containers"][0]
assert c["args"] == ["server"], c["args"]
assert "https" not in {p["name"] for p in c["ports"]}
assert c["readinessProbe"]["httpGet"]["port"] == "http"
assert not [d for d in docs if d["metadata"]["name"].endswith("-metrics")]
assert dep["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"] == "coder"
PY
ok "CODER_PROMETHEUS_ENABLE=true adds port 2112 and a ClusterIP metrics Service; replicas; workspaceProxy false runs outpost server"

command -v yamllint >/dev/null || fail "yamllint is not installed (scripts/deps.sh installs it)"
{
    cfg='{extends: default, rules: {line-length: {max: 130}, indentation: {indent-sequences: whatever}}}'
    for f in "$T/wsproxy.yaml" "$T/more.out" "$T/primary.out" "$CHART/values.yaml" "$CHART/Chart.yaml" \
        "$ROOT/tests/deploy/values-wsproxy.yaml"; do
        yamllint -f parsable -d "$cfg" "$f" >"$T/yamllint.log" 2>&1 || fail "yamllint $f: $(cat "$T/yamllint.log")"
    done
    ok "yamllint: the chart's values and the rendered manifests"
}

# --- container files ---
if [ -f /usr/share/containers/seccomp.json ]; then
    python3 "$ROOT/scripts/seccomp-io_uring.py" | diff -u "$ROOT/deploy/container/seccomp-io_uring.json" - >"$T/seccomp.diff" ||
        fail "deploy/container/seccomp-io_uring.json is not the script's output: $(head -n 20 "$T/seccomp.diff")"
fi
python3 - "$ROOT/deploy/container/seccomp-io_uring.json" <<'PY' || fail "seccomp profile"
import json, sys
p = json.load(open(sys.argv[1]))
assert p["defaultAction"] == "SCMP_ACT_ERRNO"
allowed = {n for r in p["syscalls"] if r["action"] == "SCMP_ACT_ALLOW" and not r.get("args") and not r.get("includes")
           for n in r["names"]}
for n in ("io_uring_setup", "io_uring_enter", "io_uring_register", "read", "write", "accept4", "epoll_wait"):
    assert n in allowed, n
denied = {n for r in p["syscalls"] if r["action"] != "SCMP_ACT_ALLOW" for n in r["names"]}
assert not denied & {"io_uring_setup", "io_uring_enter", "io_uring_register"}
PY
grep -qx 'ENTRYPOINT \["/usr/bin/outpost", "wsproxy", "server"\]' "$ROOT/deploy/container/Dockerfile" || fail "Dockerfile ENTRYPOINT"
grep -qx 'FROM debian:bookworm-slim' "$ROOT/deploy/container/Dockerfile" || fail "Dockerfile FROM"
ok "seccomp-io_uring.json = podman's default profile + the io_uring calls; Dockerfile FROM bookworm-slim, proxy entrypoint"
