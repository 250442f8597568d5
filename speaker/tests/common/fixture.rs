//! The Kubernetes side shared by the speaker's emulator tests: one Service `app/web` with
//! its address in the status and one ready endpoint on [`NODE`], one pool, one BGPPeer
//! pointing at a scripted router on 127.0.0.1 and one advertisement, all in an in-process
//! emulator with the chart's CRDs, plus the in-process speaker for [`NODE`].

use std::path::PathBuf;
use std::time::Duration;

use ferrolb_speaker::app::{Running, Settings, start};
use ferrolb_speaker::views::ClassFilter;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::api::{Patch, PatchParams};
use kube_emulator::{Emulator, EmulatorConfig};
use serde_json::json;

/// Generous deadline for anything a test waits on; normally reached in well under a second.
pub const DEADLINE: Duration = Duration::from_secs(30);
/// The node the speaker runs as.
pub const NODE: &str = "node-a";
/// The namespace of ferrolb's objects (and the speaker's `--namespace`).
pub const NS: &str = "ferrolb-system";
/// The Service's LoadBalancer address, as the prefix the speaker announces.
pub const SERVICE_IP: &str = "192.0.2.10/32";
/// The namespace of the Service and its EndpointSlice.
pub const APP_NS: &str = "app";
/// The Service's EndpointSlice.
pub const SLICE: &str = "web-abc";
/// The address of the Service's only endpoint.
pub const ENDPOINT_IP: &str = "10.1.0.5";

/// What differs between the tests' fixtures.
#[derive(Clone, Copy, Debug, Default)]
pub struct Fixture {
    /// The scripted router's port on 127.0.0.1 (the BGPPeer's `peerPort`).
    pub router_port: u16,
    /// The BGPPeer takes its TCP MD5 password from the Secret `bgp-password` (which the
    /// fixture does not create).
    pub password_secret: bool,
}

/// The chart's CRDs.
pub fn crds_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../charts/ferrolb/crds")
}

/// The fixture objects as multi-document YAML. The BGPPeer selects every node, the
/// advertisement adds the community 64512:100, and the Service has
/// `externalTrafficPolicy: Local`, so only the node with the ready endpoint announces it.
pub fn fixtures(f: Fixture) -> String {
    let port = f.router_port;
    let password = if f.password_secret {
        ", passwordSecret: {name: bgp-password}"
    } else {
        ""
    };
    format!(
        r#"
apiVersion: v1
kind: Namespace
metadata: {{name: {NS}}}
---
apiVersion: v1
kind: Namespace
metadata: {{name: {APP_NS}}}
---
apiVersion: v1
kind: Node
metadata:
  name: {NODE}
  labels: {{kubernetes.io/hostname: {NODE}}}
---
apiVersion: ferrolb.io/v1alpha1
kind: IPAddressPool
metadata: {{name: pool, namespace: {NS}}}
spec: {{addresses: ["192.0.2.0/24"]}}
---
apiVersion: ferrolb.io/v1alpha1
kind: BGPPeer
metadata: {{name: router, namespace: {NS}}}
spec: {{myASN: 64513, peerASN: 64512, peerAddress: 127.0.0.1, peerPort: {port}, holdTime: 90s, connectTime: 1s{password}}}
---
apiVersion: ferrolb.io/v1alpha1
kind: BGPAdvertisement
metadata: {{name: all, namespace: {NS}}}
spec: {{communities: ["64512:100"]}}
---
apiVersion: v1
kind: Service
metadata: {{name: web, namespace: {APP_NS}}}
spec:
  type: LoadBalancer
  externalTrafficPolicy: Local
  ports: [{{port: 80, protocol: TCP, targetPort: 8080}}]
status:
  loadBalancer: {{ingress: [{{ip: 192.0.2.10}}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: {SLICE}
  namespace: {APP_NS}
  labels: {{kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{{port: 8080, protocol: TCP}}]
endpoints:
  - addresses: [{ENDPOINT_IP}]
    nodeName: {NODE}
    conditions: {{ready: true}}
"#
    )
}

/// Starts an emulator holding the chart's CRDs and [`fixtures`], with [`NODE`] Ready and
/// an InternalIP, and returns it with a client for it. Also sets up the speaker's logging.
pub async fn start_emulator(f: Fixture) -> (Emulator, kube::Client) {
    start_emulator_with(&fixtures(f)).await
}

/// [`start_emulator`] with other objects (YAML, or a JSON array for thousands), which
/// must include the Node [`NODE`].
pub async fn start_emulator_with(objects: &str) -> (Emulator, kube::Client) {
    ferrolb_speaker::app::init_tracing(ferrolb_speaker::cli::LogFormat::Text);
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    emu.apply_yaml_dir(crds_dir()).unwrap();
    emu.apply_yaml(objects).unwrap();
    let client = emu.client().await.unwrap();
    // A fixture's Node status does not survive the emulator's apply: write it directly.
    let nodes: Api<Node> = Api::all(client.clone());
    let status = json!({"status": {
        "addresses": [{"type": "InternalIP", "address": "10.0.0.11"}],
        "conditions": [{"type": "Ready", "status": "True"}],
    }});
    nodes
        .patch_status(NODE, &PatchParams::default(), &Patch::Merge(status))
        .await
        .unwrap();
    (emu, client)
}

/// Starts the speaker in-process as [`NODE`] in [`NS`], with a short debounce so tests
/// see its decisions quickly.
pub async fn start_speaker(client: kube::Client) -> Running {
    start(
        client,
        Settings {
            node_name: NODE.into(),
            namespace: NS.into(),
            class: ClassFilter::default(),
            metrics_addr: "127.0.0.1:0".parse().unwrap(),
            debounce: Duration::from_millis(5),
        },
    )
    .await
    .unwrap()
}

/// Marks the Service's only endpoint ready (and serving) or not.
pub async fn set_endpoint_ready(client: &kube::Client, ready: bool) {
    let api: Api<EndpointSlice> = Api::namespaced(client.clone(), APP_NS);
    let patch = json!({"endpoints": [{"addresses": [ENDPOINT_IP], "nodeName": NODE,
                                      "conditions": {"ready": ready, "serving": ready}}]});
    api.patch(SLICE, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .unwrap();
}
