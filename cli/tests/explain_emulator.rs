//! `ferrolb explain` / `kubectl-ferrolb explain` as built binaries against the kube emulator:
//! five nodes, a few Services, the answer per node and peer, and the exit codes. Also runs
//! the real `kubectl` with the plugin on `PATH` when a kubectl is installed.

// Test helpers may unwrap: a failure is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Output;

use k8s_openapi::api::core::v1::Node;
use kube::Api;
use kube::api::{Patch, PatchParams};
use kube_emulator::{Emulator, EmulatorConfig};
use serde_json::{Value, json};

const NS: &str = "ferrolb-system";

/// node-a, node-b: Ready with endpoints of `web`; node-c: NotReady; node-d: excluded by
/// label; node-e: Ready, no endpoints.
const FIXTURES: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: ferrolb-system}
---
apiVersion: v1
kind: Namespace
metadata: {name: app}
---
apiVersion: v1
kind: Node
metadata: {name: node-a}
---
apiVersion: v1
kind: Node
metadata: {name: node-b}
---
apiVersion: v1
kind: Node
metadata: {name: node-c}
---
apiVersion: v1
kind: Node
metadata:
  name: node-d
  labels: {node.kubernetes.io/exclude-from-external-load-balancers: "true"}
---
apiVersion: v1
kind: Node
metadata: {name: node-e}
---
apiVersion: ferrolb.io/v1alpha1
kind: IPAddressPool
metadata: {name: pool, namespace: ferrolb-system}
spec: {addresses: ["192.0.2.0/24"]}
---
apiVersion: ferrolb.io/v1alpha1
kind: IPAddressPool
metadata: {name: unadvertised, namespace: ferrolb-system}
spec: {addresses: ["198.51.100.0/24"]}
---
apiVersion: ferrolb.io/v1alpha1
kind: BGPPeer
metadata: {name: tor, namespace: ferrolb-system}
spec: {myASN: 64512, peerASN: 64512, peerAddress: 10.0.0.1}
---
apiVersion: ferrolb.io/v1alpha1
kind: BGPAdvertisement
metadata: {name: main, namespace: ferrolb-system}
spec: {ipAddressPools: [pool], communities: ["64512:100"], localPref: 150}
---
apiVersion: ferrolb.io/v1alpha1
kind: SpeakerStatus
metadata: {name: node-a, namespace: ferrolb-system}
spec: {nodeName: node-a}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: app}
spec:
  type: LoadBalancer
  externalTrafficPolicy: Local
  ports: [{port: 80, protocol: TCP, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: other, namespace: app}
spec:
  type: LoadBalancer
  ports: [{port: 80, protocol: TCP, targetPort: 8080}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-abc
  namespace: app
  labels: {kubernetes.io/service-name: web}
addressType: IPv4
endpoints:
  - addresses: [10.1.0.5]
    nodeName: node-a
    conditions: {ready: true}
  - addresses: [10.1.0.6]
    nodeName: node-b
    conditions: {ready: true}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: other-abc
  namespace: app
  labels: {kubernetes.io/service-name: other}
addressType: IPv4
endpoints:
  - addresses: [10.1.0.7]
    nodeName: node-e
    conditions: {ready: true}
"#;

struct Lab {
    emu: Emulator,
    dir: tempfile::TempDir,
}

impl Lab {
    async fn start() -> Lab {
        let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
        emu.apply_yaml_dir(
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../charts/ferrolb/crds"),
        )
        .unwrap();
        emu.apply_yaml(FIXTURES).unwrap();
        let client = emu.client().await.unwrap();
        // Fixture status does not survive apply: write Node and Service status directly.
        let nodes: Api<Node> = Api::all(client.clone());
        for (name, ready) in [
            ("node-a", true),
            ("node-b", true),
            ("node-c", false),
            ("node-d", true),
            ("node-e", true),
        ] {
            let status = json!({"status": {"conditions": [
                {"type": "Ready", "status": if ready { "True" } else { "False" }}]}});
            nodes
                .patch_status(name, &PatchParams::default(), &Patch::Merge(status))
                .await
                .unwrap();
        }
        let services: Api<k8s_openapi::api::core::v1::Service> =
            Api::namespaced(client.clone(), "app");
        for (name, ip) in [("web", "192.0.2.10"), ("other", "198.51.100.5")] {
            let status = json!({"status": {"loadBalancer": {"ingress": [{"ip": ip}]}}});
            services
                .patch_status(name, &PatchParams::default(), &Patch::Merge(status))
                .await
                .unwrap();
        }
        // What node-a's speaker would have written.
        let statuses: Api<ferrolb_shared::crd::SpeakerStatus> = Api::namespaced(client.clone(), NS);
        let status = json!({"status": {"sessions": 1, "sessionsEstablished": 1,
            "peers": [{"name": "tor", "address": "10.0.0.1", "port": 179, "state": "Established",
                       "establishedSince": "2026-11-25T20:00:00Z", "prefixesAdvertised": 1}]}});
        statuses
            .patch_status("node-a", &PatchParams::default(), &Patch::Merge(status))
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        emu.write_kubeconfig(dir.path().join("kubeconfig")).unwrap();
        Lab { emu, dir }
    }

    fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }

    /// Runs a binary with `KUBECONFIG` pointing at the emulator.
    async fn run(&self, bin: &str, args: &[&str]) -> Output {
        tokio::process::Command::new(bin)
            .args(args)
            .env("KUBECONFIG", self.kubeconfig())
            .env_remove("FERROLB_NAMESPACE")
            .env_remove("FERROLB_LB_CLASS")
            .output()
            .await
            .unwrap()
    }
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// The reason (or "announced") of `node` towards peer `tor` in a JSON report.
fn outcome(report: &Value, node: &str) -> String {
    let n = report["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node"] == node)
        .unwrap_or_else(|| panic!("no node {node} in {report:#}"));
    let line = &n["lines"][0];
    assert_eq!(line["peer"], "tor");
    if line["announced"].as_bool().unwrap() {
        "announced".into()
    } else {
        line["reason"].as_str().unwrap().to_owned()
    }
}

#[tokio::test]
async fn explain_answers_per_node_and_peer() {
    let lab = Lab::start().await;
    let ferrolb = env!("CARGO_BIN_EXE_ferrolb");

    // JSON: every rule the fixture sets up.
    let out = lab
        .run(ferrolb, &["explain", "app/web", "-o", "json"])
        .await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["ips"], json!(["192.0.2.10"]));
    assert_eq!(report["announcedFrom"], json!(["node-a", "node-b"]));
    for (node, want) in [
        ("node-a", "announced"),
        ("node-b", "announced"),
        ("node-c", "nodeNotReady"),
        ("node-d", "nodeExcluded"),
        ("node-e", "noLocalEndpoints"),
    ] {
        assert_eq!(outcome(&report, node), want, "{node}");
    }
    let a = &report["nodes"][0]["lines"][0];
    assert_eq!(a["session"]["state"], "Established");
    assert_eq!(
        a["routes"],
        json!([{"prefix": "192.0.2.10/32", "nextHop": null, "communities": ["64512:100"],
                "largeCommunities": [], "localPref": 150, "advertisements": ["main"]}])
    );

    // Text: the same answer as a table.
    let out = lab.run(ferrolb, &["explain", "app/web"]).await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("announced from 2 of 5 nodes: node-a, node-b"),
        "{stdout}"
    );
    let row = |node: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(node))
            .unwrap_or_else(|| panic!("no row for {node}:\n{stdout}"))
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(
        row("node-a"),
        "node-a tor 192.0.2.10 Established announced 192.0.2.10/32 next-hop self, communities 64512:100, local-pref 150 (advertisements: main)"
    );
    assert!(row("node-e").starts_with("node-e tor 192.0.2.10 unknown noLocalEndpoints: "));
    assert!(row("node-c").contains("nodeNotReady: the node is not Ready"));

    // --node restricts; a pool no advertisement covers.
    let out = lab
        .run(
            ferrolb,
            &["explain", "app/other", "--node", "node-e", "-o", "json"],
        )
        .await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["nodes"].as_array().unwrap().len(), 1);
    assert_eq!(outcome(&report, "node-e"), "noAdvertisement");
    assert_eq!(report["announcedFrom"], json!([]));
}

#[tokio::test]
async fn missing_things_exit_1_with_a_clear_message() {
    let lab = Lab::start().await;
    let ferrolb = env!("CARGO_BIN_EXE_ferrolb");
    for (args, want) in [
        (
            &["explain", "app/missing"][..],
            "error: Service app/missing not found",
        ),
        (
            &["explain", "app/web", "--node", "node-z"][..],
            "error: Node node-z not found",
        ),
        (
            &["explain", "a/b/c"][..],
            "error: invalid Service \"a/b/c\"",
        ),
    ] {
        let out = lab.run(ferrolb, args).await;
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stdout}{stderr}");
        assert!(stderr.starts_with(want), "{args:?}: {stderr}");
        assert!(stdout.is_empty(), "{stdout}");
    }
    // An unreachable API server is an error too, not an empty answer.
    let dir = lab.dir.path().to_owned();
    lab.emu.shutdown().await;
    let out = tokio::process::Command::new(ferrolb)
        .args(["explain", "app/web"])
        .env("KUBECONFIG", dir.join("kubeconfig"))
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).1.starts_with("error: reading Service app/web"),
        "{}",
        text(&out).1
    );
}

/// A kubectl to run: the one `scripts/install-deps.sh` installs, else one on `PATH`.
fn kubectl() -> Option<PathBuf> {
    let pinned = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.tools/bin/kubectl-1.35");
    if pinned.is_file() {
        return Some(pinned);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("kubectl"))
            .find(|p| p.is_file())
    })
}

#[tokio::test]
async fn works_as_a_kubectl_plugin() {
    let lab = Lab::start().await;
    let plugin = Path::new(env!("CARGO_BIN_EXE_kubectl-ferrolb"));
    // The plugin binary on its own.
    let out = lab
        .run(
            plugin.to_str().unwrap(),
            &["explain", "app/web", "-o", "json"],
        )
        .await;
    assert!(out.status.success(), "{}", text(&out).1);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["announcedFrom"], json!(["node-a", "node-b"]));

    let Some(kubectl) = kubectl() else {
        eprintln!("no kubectl found; the plugin was tested as a binary only");
        return;
    };
    // Only the plugin's directory is added to PATH, in a directory of its own so kubectl
    // finds exactly this binary.
    let bin_dir = tempfile::tempdir().unwrap();
    std::fs::copy(plugin, bin_dir.path().join("kubectl-ferrolb")).unwrap();
    let path = std::env::join_paths(std::iter::once(bin_dir.path().to_owned()).chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))
    .unwrap();
    let out = tokio::process::Command::new(&kubectl)
        .args(["ferrolb", "explain", "app/web"])
        .env("KUBECONFIG", lab.kubeconfig())
        .env("PATH", &path)
        .output()
        .await
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(
        out.status.success(),
        "{} failed: {stderr}",
        kubectl.display()
    );
    assert!(
        stdout.contains("announced from 2 of 5 nodes: node-a, node-b"),
        "{stdout}"
    );
    let out = tokio::process::Command::new(&kubectl)
        .args(["ferrolb", "explain", "app/missing"])
        .env("KUBECONFIG", lab.kubeconfig())
        .env("PATH", &path)
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).1.contains("Service app/missing not found"));
}
