//! `kubectl apply --server-side` of the rendered chart (every optional feature on, CRDs
//! included) and of the chart's examples against the kube emulator.
//!
//! The emulator serves only some built-in kinds (docs/emulator.md): workloads, RBAC and
//! PodDisruptionBudgets cannot be applied to it and are validated by
//! scripts/validate-chart.sh against the Kubernetes schemas instead. The prometheus-operator
//! kinds get minimal stand-in CRDs here, as a cluster running the operator would have.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use ferrolb_deploy_tests::{parse_yaml_docs, paths};
use kube_emulator::{Emulator, EmulatorConfig};
use serde_json::Value;

const NS: &str = "ferrolb-system";

/// Kinds the emulator (plus the stand-in CRDs) serves.
const APPLIED: [&str; 11] = [
    "CustomResourceDefinition",
    "ConfigMap",
    "Service",
    "IPAddressPool",
    "BGPPeer",
    "BGPAdvertisement",
    "SpeakerStatus",
    "ServiceMonitor",
    "PodMonitor",
    "PrometheusRule",
    "Secret",
];
/// Kinds the emulator does not serve; validated by scripts/validate-chart.sh.
const NOT_SERVED: [&str; 8] = [
    "Deployment",
    "DaemonSet",
    "PodDisruptionBudget",
    "ServiceAccount",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
];

fn stand_in_crd(plural: &str, kind: &str) -> String {
    format!(
        r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {{name: {plural}.monitoring.coreos.com}}
spec:
  group: monitoring.coreos.com
  scope: Namespaced
  names: {{plural: {plural}, singular: {singular}, kind: {kind}}}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          x-kubernetes-preserve-unknown-fields: true
---
"#,
        singular = kind.to_lowercase()
    )
}

fn kubectl() -> PathBuf {
    let pinned = paths::tool("kubectl-1.35");
    if pinned.is_absolute() {
        pinned
    } else {
        paths::tool("kubectl")
    }
}

fn kubectl_run(kubeconfig: &Path, args: &[&str]) -> String {
    let cache = tempfile::tempdir().unwrap();
    paths::run(
        Command::new(kubectl())
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .arg("--cache-dir")
            .arg(cache.path())
            .args(args),
    )
    .unwrap_or_else(|e| panic!("kubectl {args:?}: {e}"))
}

fn write_docs(path: &Path, docs: &[&Value]) {
    let text: String = docs
        .iter()
        .map(|d| format!("---\n{}\n", serde_json::to_string(d).unwrap()))
        .collect();
    std::fs::write(path, text).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rendered_chart_applies_server_side() {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    emu.apply_yaml(&format!(
        "apiVersion: v1\nkind: Namespace\nmetadata: {{name: {NS}}}\n---\n{}{}{}",
        stand_in_crd("servicemonitors", "ServiceMonitor"),
        stand_in_crd("podmonitors", "PodMonitor"),
        stand_in_crd("prometheusrules", "PrometheusRule"),
    ))
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    emu.write_kubeconfig(&kubeconfig).unwrap();

    let values = paths::chart_dir().join("ci/all-features-values.yaml");
    let rendered = paths::helm_template(NS, &[&values], true).unwrap();
    let docs = parse_yaml_docs("helm template", &rendered).unwrap();
    let kind = |d: &Value| d["kind"].as_str().unwrap_or("").to_owned();
    let kinds: BTreeSet<String> = docs.iter().map(kind).collect();
    for k in &kinds {
        assert!(
            APPLIED.contains(&k.as_str()) || NOT_SERVED.contains(&k.as_str()),
            "the chart renders a {k}: decide whether this test applies it"
        );
    }
    let (crds, rest): (Vec<&Value>, Vec<&Value>) = docs
        .iter()
        .filter(|d| APPLIED.contains(&kind(d).as_str()))
        .partition(|d| kind(d) == "CustomResourceDefinition");
    assert!(crds.len() >= 3, "the chart ships {} CRDs", crds.len());
    let crd_file = dir.path().join("crds.yaml");
    let rest_file = dir.path().join("rest.yaml");
    write_docs(&crd_file, &crds);
    write_docs(&rest_file, &rest);

    // CRDs first (discovery must know them before their objects are applied), then the rest,
    // twice: a second server-side apply of the same manifests must succeed unchanged.
    kubectl_run(
        &kubeconfig,
        &["apply", "--server-side", "-f", crd_file.to_str().unwrap()],
    );
    for _ in 0..2 {
        let out = kubectl_run(
            &kubeconfig,
            &["apply", "--server-side", "-f", rest_file.to_str().unwrap()],
        );
        assert_eq!(out.lines().count(), rest.len(), "{out}");
    }
    let examples = paths::chart_dir().join("examples");
    kubectl_run(
        &kubeconfig,
        &["apply", "--server-side", "-f", examples.to_str().unwrap()],
    );

    let names = kubectl_run(
        &kubeconfig,
        &[
            "get",
            "ipaddresspools.ferrolb.io,bgppeers.ferrolb.io,bgpadvertisements.ferrolb.io,prometheusrules.monitoring.coreos.com,configmaps",
            "-n",
            NS,
            "-o",
            "name",
        ],
    );
    for want in [
        "ipaddresspool.ferrolb.io/demo",
        "bgppeer.ferrolb.io/upstream",
        "bgpadvertisement.ferrolb.io/demo",
        "prometheusrule.monitoring.coreos.com/ferrolb",
        "configmap/ferrolb-dashboard",
    ] {
        assert!(
            names.lines().any(|l| l == want),
            "{want} missing in\n{names}"
        );
    }
    // The stored dashboard is the chart's file, byte for byte.
    let cm: Value = serde_json::from_str(&kubectl_run(
        &kubeconfig,
        &[
            "get",
            "configmap",
            "ferrolb-dashboard",
            "-n",
            NS,
            "-o",
            "json",
        ],
    ))
    .unwrap();
    let shipped =
        std::fs::read_to_string(paths::chart_dir().join("dashboards/ferrolb.json")).unwrap();
    assert_eq!(
        cm["data"]["ferrolb.json"].as_str().unwrap(),
        shipped.trim_end()
    );
    emu.shutdown().await;
}
