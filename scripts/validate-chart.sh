#!/usr/bin/env bash
# Validates the Helm chart charts/ferrolb with real tools (installed by scripts/install-deps.sh
# into .tools/bin and .tools/venv):
#   - helm lint --strict, with default values and with every optional feature on
#     (charts/ferrolb/ci/all-features-values.yaml);
#   - helm template of both, validated against the Kubernetes 1.33 and 1.37 schemas
#     (kubernetes-validate --strict; any kind it has no schema for fails);
#   - our custom resources (the rendered config objects and charts/ferrolb/examples/) against
#     the generated CRD schemas, with unknown fields rejected (check-jsonschema);
#   - the monitoring.coreos.com objects against the subset schemas in tests/deploy/schemas;
#   - the alert rules: promtool check rules + promtool test rules, and the PrometheusRule
#     actually rendered by the chart checked the same way;
#   - the Grafana dashboard is valid JSON and names only ferrolb_ metrics the rules file
#     cross-check in tests/deploy verifies against real scrapes;
#   - yamllint on the rendered manifests and on the chart's plain YAML files.
# Exits non-zero on the first failure. Usage: scripts/validate-chart.sh [--keep DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
chart="$root/charts/ferrolb"
tools="$root/.tools"
export PATH="$tools/bin:$PATH"
py="$tools/venv/bin/python"

for t in helm promtool kubernetes-validate check-jsonschema yamllint; do
  if ! command -v "$t" >/dev/null; then
    echo "validate-chart: $t not found; run scripts/install-deps.sh first" >&2
    exit 1
  fi
done
[ -x "$py" ] || { echo "validate-chart: $py missing; run scripts/install-deps.sh" >&2; exit 1; }

out=$(mktemp -d)
if [ "${1:-}" = "--keep" ] && [ -n "${2:-}" ]; then
  out=$2
  rm -rf "$out"
  mkdir -p "$out"
else
  trap 'rm -rf "$out"' EXIT
fi
step() { printf -- '--> %s\n' "$*"; }
ns=ferrolb-system
all_values="$chart/ci/all-features-values.yaml"

step "helm lint --strict (defaults, all features)"
helm lint --strict "$chart" >/dev/null
helm lint --strict "$chart" -f "$all_values" >/dev/null

step "values.schema.json rejects a misspelt key and a bad value"
for bad in controller.replica=2 logFormat=xml; do
  if helm template ferrolb "$chart" --set "$bad" >/dev/null 2>&1; then
    echo "validate-chart: the values schema accepted --set $bad" >&2
    exit 1
  fi
done

for kv in 1.33.0 1.37.0; do
  step "helm template for Kubernetes $kv (defaults, all features)"
  helm template ferrolb "$chart" -n "$ns" --kube-version "$kv" --include-crds >"$out/default-$kv.yaml"
  helm template ferrolb "$chart" -n "$ns" --kube-version "$kv" --include-crds -f "$all_values" >"$out/all-$kv.yaml"
  for f in "$out/default-$kv.yaml" "$out/all-$kv.yaml"; do
    test -s "$f" || { echo "validate-chart: helm rendered nothing into $f" >&2; exit 1; }
  done
done

step "split rendered manifests: built-in kinds / ferrolb.io / monitoring.coreos.com"
"$py" - "$out" "$chart/crds" <<'EOF'
import json, os, sys, glob, yaml
out, crd_dir = sys.argv[1], sys.argv[2]

# CRD openAPIV3Schema -> JSON Schema that also rejects unknown fields (what the API server's
# strict field validation does) and understands `nullable`.
def strict(s, root=False):
    if not isinstance(s, dict):
        return s
    s = dict(s)
    if s.pop("nullable", False) and "type" in s:
        s["type"] = [s["type"], "null"]
    for k in ("properties",):
        if k in s:
            s[k] = {n: strict(v) for n, v in s[k].items()}
    if "items" in s:
        s["items"] = strict(s["items"])
    if isinstance(s.get("additionalProperties"), dict):
        s["additionalProperties"] = strict(s["additionalProperties"])
    if "properties" in s and "additionalProperties" not in s \
            and not s.get("x-kubernetes-preserve-unknown-fields"):
        s["additionalProperties"] = False
    return s

for path in sorted(glob.glob(os.path.join(crd_dir, "*.yaml"))):
    crd = yaml.safe_load(open(path))
    kind = crd["spec"]["names"]["kind"]
    group = crd["spec"]["group"]
    for v in crd["spec"]["versions"]:
        schema = strict(v["schema"]["openAPIV3Schema"])
        schema["properties"] = dict(schema.get("properties", {}))
        schema["properties"]["apiVersion"] = {"const": f"{group}/{v['name']}"}
        schema["properties"]["kind"] = {"const": kind}
        schema["properties"]["metadata"] = {"type": "object"}
        schema["required"] = sorted(set(schema.get("required", [])) | {"apiVersion", "kind", "metadata"})
        with open(os.path.join(out, f"schema-{kind}-{v['name']}.json"), "w") as f:
            json.dump(schema, f)

for name in sorted(os.listdir(out)):
    if not name.endswith(".yaml") or not name.startswith(("default-", "all-")):
        continue
    docs = [d for d in yaml.safe_load_all(open(os.path.join(out, name))) if d]
    stem = name[:-5]
    builtin, custom, monitoring = [], {}, {}
    for d in docs:
        group = d["apiVersion"].split("/")[0] if "/" in d["apiVersion"] else ""
        if group == "ferrolb.io":
            custom.setdefault(f"{d['kind']}-{d['apiVersion'].split('/')[1]}", []).append(d)
        elif group == "monitoring.coreos.com":
            monitoring.setdefault(d["kind"].lower(), []).append(d)
        else:
            builtin.append(d)
    with open(os.path.join(out, f"builtin.{stem}.yaml"), "w") as f:
        yaml.safe_dump_all(builtin, f, sort_keys=False)
    for key, items in list(custom.items()) + list(monitoring.items()):
        for i, d in enumerate(items):
            with open(os.path.join(out, f"cr__{stem}__{key}__{i}.json"), "w") as f:
                json.dump(d, f)
            if key == "prometheusrule":
                with open(os.path.join(out, f"rules.{stem}.{i}.yaml"), "w") as f:
                    yaml.safe_dump(d["spec"], f, sort_keys=False)
    print(f"    {name}: {len(builtin)} built-in, "
          f"{sum(map(len, custom.values()))} ferrolb.io, {sum(map(len, monitoring.values()))} monitoring")
EOF

for kv in 1.33.0 1.37.0; do
  step "kubernetes-validate -k $kv --strict (every built-in kind must have a schema)"
  set +e
  res=$(kubernetes-validate -k "$kv" --strict --quiet "$out/builtin.default-$kv.yaml" "$out/builtin.all-$kv.yaml" 2>&1)
  rc=$?
  set -e
  [ -n "$res" ] && echo "$res"
  if [ "$rc" -ne 0 ] || grep -q 'WARN' <<<"$res"; then
    echo "validate-chart: the rendered chart is not valid for Kubernetes $kv" >&2
    exit 1
  fi
done

step "custom resources against the generated CRD schemas (check-jsonschema)"
n=0
for f in "$out"/cr__*.json; do
  [ -e "$f" ] || continue
  key=$(basename "$f" | awk -F__ '{print $3}')   # e.g. IPAddressPool-v1alpha1 or podmonitor
  case $key in
    podmonitor | servicemonitor | prometheusrule) schema="$root/tests/deploy/schemas/$key.subset.schema.json" ;;
    *) schema="$out/schema-$key.json" ;;
  esac
  [ -e "$schema" ] || { echo "validate-chart: no schema for $key ($f)" >&2; exit 1; }
  check-jsonschema --schemafile "$schema" "$f" >/dev/null
  n=$((n + 1))
done
for f in "$chart"/examples/*.yaml; do
  "$py" - "$f" "$out/example.json" <<'EOF'
import json, sys, yaml
json.dump(yaml.safe_load(open(sys.argv[1])), open(sys.argv[2], "w"))
EOF
  kind=$("$py" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["kind"]+"-"+d["apiVersion"].split("/")[1])' "$out/example.json")
  check-jsonschema --schemafile "$out/schema-$kind.json" "$out/example.json" >/dev/null
  n=$((n + 1))
done
echo "    $n custom resources valid"
# The strict schemas really reject an unknown field (guards against a vacuous check).
echo '{"apiVersion":"ferrolb.io/v1alpha1","kind":"IPAddressPool","metadata":{"name":"x"},"spec":{"addresses":["192.0.2.0/24"],"autoAsign":true}}' >"$out/typo.json"
if check-jsonschema --schemafile "$out/schema-IPAddressPool-v1alpha1.json" "$out/typo.json" >/dev/null 2>&1; then
  echo "validate-chart: the CRD schema check accepted a misspelt field" >&2
  exit 1
fi

step "alert rules: promtool check rules + promtool test rules"
promtool check rules "$chart/rules/ferrolb-alerts.yaml" >/dev/null
(cd "$chart/rules" && promtool test rules ferrolb-alerts.test.yaml >/dev/null)
for f in "$out"/rules.all-*.yaml; do
  promtool check rules "$f" >/dev/null
  cmp -s <("$py" -c 'import sys,yaml,json; print(json.dumps(yaml.safe_load(open(sys.argv[1])),sort_keys=True))' "$f") \
    <("$py" -c 'import sys,yaml,json; print(json.dumps(yaml.safe_load(open(sys.argv[1])),sort_keys=True))' "$chart/rules/ferrolb-alerts.yaml") \
    || { echo "validate-chart: the rendered PrometheusRule differs from rules/ferrolb-alerts.yaml" >&2; exit 1; }
done

step "Grafana dashboard: JSON, shipped unchanged in the ConfigMap"
"$py" - "$chart/dashboards/ferrolb.json" "$out/all-1.33.0.yaml" <<'EOF'
import json, sys, yaml
dash = json.load(open(sys.argv[1]))
assert dash.get("panels"), "dashboard has no panels"
for p in dash["panels"]:
    for t in p.get("targets", []):
        assert "ferrolb_" in t["expr"], f"panel {p['title']!r}: query names no ferrolb metric"
cms = [d for d in yaml.safe_load_all(open(sys.argv[2]))
       if d and d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-dashboard")]
assert len(cms) == 1, "no dashboard ConfigMap rendered"
assert json.loads(cms[0]["data"]["ferrolb.json"]) == dash, "ConfigMap holds a different dashboard"
print(f"    {len(dash['panels'])} panels")
EOF

step "yamllint (rendered manifests and the chart's plain YAML)"
cat >"$out/yamllint.yaml" <<'EOF'
extends: default
rules:
  line-length: disable
  document-start: disable
  comments: {min-spaces-from-content: 1}
  indentation: {indent-sequences: whatever}
  truthy: {check-keys: false}
EOF
yamllint -s -c "$out/yamllint.yaml" "$out"/default-*.yaml "$out"/all-*.yaml \
  "$chart/Chart.yaml" "$chart/values.yaml" "$chart/ci" "$chart/rules" "$chart/examples"

echo "validate-chart: ok"
