//! "Why is / isn't this Service announced from node X": the pure part of `ferrolb explain`.
//!
//! [`explain`] takes the objects read from the cluster ([`Cluster`]) and runs, once per
//! node, the very decision the speaker on that node runs
//! ([`ferrolb_shared::announce::Decider`] over views built by the speaker's own helpers), so
//! the answer cannot drift from what the speakers do. [`Report`] is the result, printed as
//! a table ([`format_text`]) or JSON.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::Arc;

use ferrolb_shared::announce::{
    AdvertisementView, Decider, NodeView, Outcome, PeerView, PoolView, Reason, Snapshot,
    TrafficPolicy,
};
use ferrolb_shared::crd::{BGPAdvertisement, BGPPeer, IPAddressPool, SpeakerStatus};
use ferrolb_shared::validate::summarize;
use ferrolb_speaker::views::{ClassFilter, service_views};
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::ResourceExt;
use serde::Serialize;

/// Everything `explain` reads from the cluster.
#[derive(Clone, Debug, Default)]
pub struct Cluster {
    /// The Service asked about.
    pub service: Service,
    /// Its EndpointSlices (those labelled with its name).
    pub slices: Vec<EndpointSlice>,
    /// The nodes to explain for.
    pub nodes: Vec<Node>,
    /// `IPAddressPool`s of the configuration namespace.
    pub pools: Vec<IPAddressPool>,
    /// `BGPPeer`s of the configuration namespace.
    pub peers: Vec<BGPPeer>,
    /// `BGPAdvertisement`s of the configuration namespace.
    pub advertisements: Vec<BGPAdvertisement>,
    /// The speakers' per-node status objects (may be empty).
    pub speaker_statuses: Vec<SpeakerStatus>,
}

/// The answer for one Service.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// Namespace of the Service.
    pub namespace: String,
    /// Name of the Service.
    pub name: String,
    /// Why ferrolb does not handle this Service at all (not `type: LoadBalancer`, or
    /// another `loadBalancerClass`); `None` when it does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_handled: Option<String>,
    /// The addresses in the Service's `status.loadBalancer.ingress`.
    pub ips: Vec<String>,
    /// `Cluster` or `Local`.
    pub external_traffic_policy: String,
    /// Nodes with a ready endpoint of the Service.
    pub ready_endpoint_nodes: Vec<String>,
    /// Nodes with a serving (ready or terminating) endpoint.
    pub serving_endpoint_nodes: Vec<String>,
    /// Nodes that announce at least one address to at least one peer.
    pub announced_from: Vec<String>,
    /// One entry per node explained, by name.
    pub nodes: Vec<NodeReport>,
    /// Configuration problems that may make the answer differ from what runs.
    pub warnings: Vec<String>,
}

/// The answer on one node.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeReport {
    /// Node name.
    pub node: String,
    /// Whether the node announces any address of the Service.
    pub announced: bool,
    /// Whether the node's speaker has written a `SpeakerStatus`.
    pub speaker_status_found: bool,
    /// One line per (address, peer).
    pub lines: Vec<LineReport>,
}

/// One address towards one peer on one node.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LineReport {
    /// The Service address (absent when the Service has none yet).
    pub ip: Option<String>,
    /// The peer (absent when no `BGPPeer` exists).
    pub peer: Option<String>,
    /// The session's state from the node's `SpeakerStatus`, when it reports that peer.
    pub session: Option<SessionReport>,
    /// Whether the node announces the address to the peer.
    pub announced: bool,
    /// The routes announced (empty when not announced).
    pub routes: Vec<RouteReport>,
    /// The stable reason string when not announced (e.g. `noLocalEndpoints`).
    pub reason: Option<String>,
    /// The reason spelled out.
    pub reason_description: Option<String>,
}

/// A session as the node's `SpeakerStatus` shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionReport {
    /// FSM state, e.g. `Established`.
    pub state: String,
    /// When the session became Established (RFC 3339).
    pub established_since: Option<String>,
    /// Last error of the session.
    pub last_error: Option<String>,
}

/// One announced route.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteReport {
    /// The prefix (after aggregation).
    pub prefix: String,
    /// NEXT_HOP; `None`: the session's local address.
    pub next_hop: Option<String>,
    /// Standard communities, `high:low`.
    pub communities: Vec<String>,
    /// Large communities, `a:b:c`.
    pub large_communities: Vec<String>,
    /// LOCAL_PREF (iBGP only).
    pub local_pref: Option<u32>,
    /// The `BGPAdvertisement`s that produced the route.
    pub advertisements: Vec<String>,
}

/// Why the speakers ignore a Service, or `None` when they handle it.
fn not_handled(service: &Service, class: &ClassFilter) -> Option<String> {
    if class.handles(service) {
        return None;
    }
    let spec = service.spec.as_ref();
    let ty = spec.and_then(|s| s.type_.as_deref()).unwrap_or("ClusterIP");
    if ty != "LoadBalancer" {
        return Some(format!(
            "the Service is of type {ty}, not LoadBalancer: ferrolb does not announce it"
        ));
    }
    let theirs = spec
        .and_then(|s| s.load_balancer_class.as_deref())
        .unwrap_or("(none)");
    let ours = class.lb_class.as_deref().unwrap_or("(none)");
    Some(format!(
        "the Service's loadBalancerClass is {theirs}; the speakers handle {ours}: another implementation owns it"
    ))
}

fn community(c: u32) -> String {
    format!("{}:{}", c >> 16, c & 0xFFFF)
}

/// The ferrolb objects as the speaker parses them. Invalid objects are left out and
/// reported: a speaker that saw an earlier valid version keeps using that one, which this
/// command cannot know.
fn config_views(
    cluster: &Cluster,
    warnings: &mut Vec<String>,
) -> (Vec<PoolView>, Vec<AdvertisementView>, Vec<PeerView>) {
    let mut warn = |kind: &str, name: String, errors: &[ferrolb_shared::validate::ConfigError]| {
        warnings.push(format!(
            "{kind} {name} is invalid and left out (a speaker that saw an earlier valid version keeps using it): {}",
            summarize(errors)
        ));
    };
    let mut pools = Vec::new();
    for p in &cluster.pools {
        match PoolView::from_object(p) {
            Ok(v) => pools.push(v),
            Err(e) => warn("IPAddressPool", p.name_any(), &e),
        }
    }
    let mut advertisements = Vec::new();
    for a in &cluster.advertisements {
        match AdvertisementView::from_object(a) {
            Ok(v) => advertisements.push(v),
            Err(e) => warn("BGPAdvertisement", a.name_any(), &e),
        }
    }
    let mut peers = Vec::new();
    for p in &cluster.peers {
        match PeerView::from_object(p) {
            Ok(v) => peers.push(v),
            Err(e) => warn("BGPPeer", p.name_any(), &e),
        }
    }
    (pools, advertisements, peers)
}

/// Explains the Service of `cluster` on each of its nodes.
pub fn explain(cluster: &Cluster, class: &ClassFilter) -> Report {
    let service = &cluster.service;
    let mut warnings = Vec::new();
    let (pools, advertisements, peers) = config_views(cluster, &mut warnings);
    let services = [Arc::new(service.clone())];
    let slices: Vec<Arc<EndpointSlice>> = cluster.slices.iter().cloned().map(Arc::new).collect();
    // `service_views` applies the class filter: empty when the speakers ignore the Service.
    let view = service_views(&services, &slices, class).into_iter().next();
    let fallback = ferrolb_shared::announce::ServiceView::from_service(service, Default::default());
    let shown = view.as_ref().unwrap_or(&fallback);
    let mut report = Report {
        namespace: service.namespace().unwrap_or_default(),
        name: service.name_any(),
        not_handled: not_handled(service, class),
        ips: {
            let mut ips: Vec<_> = shown.ips.clone();
            ips.sort();
            ips.dedup();
            ips.iter().map(ToString::to_string).collect()
        },
        external_traffic_policy: match shown.traffic_policy {
            TrafficPolicy::Cluster => "Cluster",
            TrafficPolicy::Local => "Local",
        }
        .to_owned(),
        ready_endpoint_nodes: shown.endpoints.ready_nodes.iter().cloned().collect(),
        serving_endpoint_nodes: shown.endpoints.serving_nodes.iter().cloned().collect(),
        announced_from: Vec::new(),
        nodes: Vec::new(),
        warnings: Vec::new(),
    };
    let Some(view) = view else {
        report.warnings = warnings;
        return report;
    };
    let statuses: BTreeMap<&str, &SpeakerStatus> = cluster
        .speaker_statuses
        .iter()
        .map(|s| (s.spec.node_name.as_str(), s))
        .collect();
    let mut nodes: Vec<&Node> = cluster.nodes.iter().collect();
    nodes.sort_by_key(|n| n.name_any());
    for node in nodes {
        let node_view = NodeView::from_node(node);
        let snapshot = Snapshot {
            node: &node_view,
            pools: &pools,
            advertisements: &advertisements,
            peers: &peers,
            services: std::slice::from_ref(&view),
        };
        let decider = Decider::new(&snapshot);
        let decision = decider.decide_service(&view);
        let decisions = decider.decisions([(view.key.clone(), decision)].into());
        let status = statuses.get(node_view.name.as_str()).copied();
        let session = |peer: &str| -> Option<SessionReport> {
            let p = status?
                .status
                .as_ref()?
                .peers
                .iter()
                .find(|p| p.name == peer)?;
            Some(SessionReport {
                state: p.state.to_string(),
                established_since: p.established_since.as_ref().map(|t| t.0.to_string()),
                last_error: p.last_error.clone(),
            })
        };
        let lines: Vec<LineReport> = decisions
            .explain(&view.key)
            .map(|e| e.lines)
            .unwrap_or_default()
            .into_iter()
            .map(|l| {
                let (routes, reason) = match &l.outcome {
                    Outcome::Announced(a) => (
                        a.iter()
                            .map(|a| RouteReport {
                                prefix: a.route.prefix.to_string(),
                                next_hop: a.route.next_hop.map(|h| h.to_string()),
                                communities: a
                                    .route
                                    .communities
                                    .iter()
                                    .map(|c| community(*c))
                                    .collect(),
                                large_communities: a
                                    .route
                                    .large_communities
                                    .iter()
                                    .map(|[x, y, z]| format!("{x}:{y}:{z}"))
                                    .collect(),
                                local_pref: a.route.local_pref,
                                advertisements: a
                                    .advertisements
                                    .iter()
                                    .map(|n| n.to_string())
                                    .collect(),
                            })
                            .collect(),
                        None,
                    ),
                    Outcome::NotAnnounced(r) => (Vec::new(), Some(*r)),
                };
                LineReport {
                    ip: l.ip.map(|ip| ip.to_string()),
                    session: l.peer.as_deref().and_then(session),
                    peer: l.peer.map(|p| p.to_string()),
                    announced: l.outcome.is_announced(),
                    routes,
                    reason: reason.map(|r| r.as_str().to_owned()),
                    reason_description: reason.map(|r: Reason| r.description().to_owned()),
                }
            })
            .collect();
        let announced = lines.iter().any(|l| l.announced);
        if announced {
            report.announced_from.push(node_view.name.clone());
        }
        report.nodes.push(NodeReport {
            node: node_view.name,
            announced,
            speaker_status_found: status.is_some(),
            lines,
        });
    }
    report.warnings = warnings;
    report
}

/// The route as one line: `192.0.2.10/32 next-hop self, communities 64512:100, local-pref
/// 200 (advertisements: all)`.
fn route_text(r: &RouteReport) -> String {
    let mut out = format!(
        "{} next-hop {}",
        r.prefix,
        r.next_hop.as_deref().unwrap_or("self")
    );
    if !r.communities.is_empty() {
        let _ = write!(out, ", communities {}", r.communities.join(" "));
    }
    if !r.large_communities.is_empty() {
        let _ = write!(out, ", large-communities {}", r.large_communities.join(" "));
    }
    if let Some(lp) = r.local_pref {
        let _ = write!(out, ", local-pref {lp}");
    }
    let _ = write!(out, " (advertisements: {})", r.advertisements.join(", "));
    out
}

fn list_or_none(v: &[String]) -> String {
    if v.is_empty() {
        "none".to_owned()
    } else {
        v.join(", ")
    }
}

/// The report as text: a summary, then a table with one row per node, address and peer.
pub fn format_text(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Service {}/{}", report.namespace, report.name);
    if let Some(why) = &report.not_handled {
        let _ = writeln!(out, "  not handled: {why}");
        for w in &report.warnings {
            let _ = writeln!(out, "warning: {w}");
        }
        return out;
    }
    let _ = writeln!(out, "  addresses: {}", list_or_none(&report.ips));
    let _ = writeln!(
        out,
        "  externalTrafficPolicy: {}",
        report.external_traffic_policy
    );
    let _ = writeln!(
        out,
        "  ready endpoints on: {}",
        list_or_none(&report.ready_endpoint_nodes)
    );
    let terminating: Vec<String> = report
        .serving_endpoint_nodes
        .iter()
        .filter(|n| !report.ready_endpoint_nodes.contains(n))
        .cloned()
        .collect();
    if !terminating.is_empty() {
        let _ = writeln!(
            out,
            "  terminating (still serving) endpoints on: {}",
            terminating.join(", ")
        );
    }
    let _ = writeln!(
        out,
        "  announced from {} of {} nodes: {}",
        report.announced_from.len(),
        report.nodes.len(),
        list_or_none(&report.announced_from)
    );
    let mut rows: Vec<[String; 5]> = vec![[
        "NODE".into(),
        "PEER".into(),
        "ADDRESS".into(),
        "SESSION".into(),
        "RESULT".into(),
    ]];
    for n in &report.nodes {
        for l in &n.lines {
            let session = match (&l.session, &l.peer, n.speaker_status_found) {
                (Some(s), _, _) => s.state.clone(),
                (None, None, _) => "-".into(),
                (None, Some(_), true) => "-".into(),
                (None, Some(_), false) => "unknown".into(),
            };
            let result = if l.announced {
                let routes: Vec<String> = l.routes.iter().map(route_text).collect();
                format!("announced {}", routes.join("; "))
            } else {
                format!(
                    "{}: {}",
                    l.reason.as_deref().unwrap_or("notAnnounced"),
                    l.reason_description.as_deref().unwrap_or("")
                )
            };
            rows.push([
                n.node.clone(),
                l.peer.clone().unwrap_or_else(|| "-".into()),
                l.ip.clone().unwrap_or_else(|| "-".into()),
                session,
                result,
            ]);
        }
    }
    if report.nodes.is_empty() {
        let _ = writeln!(out, "no nodes");
    } else {
        out.push('\n');
        let mut widths = [0usize; 4];
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row.iter()) {
                *w = (*w).max(cell.chars().count());
            }
        }
        for row in &rows {
            for (w, cell) in widths.iter().zip(row.iter()) {
                let _ = write!(out, "{cell:<w$}   ", w = *w);
            }
            let _ = writeln!(out, "{}", row[4]);
        }
    }
    let errors: BTreeSet<(String, String, String)> = report
        .nodes
        .iter()
        .flat_map(|n| {
            n.lines.iter().filter_map(|l| {
                let s = l.session.as_ref()?;
                if s.state == "Established" {
                    return None;
                }
                Some((n.node.clone(), l.peer.clone()?, s.last_error.clone()?))
            })
        })
        .collect();
    if !errors.is_empty() {
        out.push('\n');
        for (node, peer, error) in errors {
            let _ = writeln!(out, "session {node} -> {peer} is down; last error: {error}");
        }
    }
    for w in &report.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
        serde_json::from_value(v).unwrap()
    }

    fn node(name: &str, ready: bool, labels: serde_json::Value) -> Node {
        obj(json!({
            "metadata": {"name": name, "labels": labels},
            "status": {"conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]},
        }))
    }

    fn cluster(policy: &str) -> Cluster {
        Cluster {
            service: obj(json!({
                "metadata": {"namespace": "app", "name": "web"},
                "spec": {"type": "LoadBalancer", "externalTrafficPolicy": policy},
                "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}]}},
            })),
            slices: vec![obj(json!({
                "metadata": {"namespace": "app", "name": "web-1",
                             "labels": {"kubernetes.io/service-name": "web"}},
                "addressType": "IPv4",
                "endpoints": [{"addresses": ["10.1.0.5"], "nodeName": "a", "conditions": {"ready": true}}],
            }))],
            nodes: vec![
                node("b", true, json!({})),
                node("a", true, json!({})),
                node("c", false, json!({})),
            ],
            pools: vec![obj(json!({"metadata": {"name": "pool"},
                                   "spec": {"addresses": ["192.0.2.0/24"]}}))],
            peers: vec![obj(json!({"metadata": {"name": "tor"},
                                   "spec": {"myASN": 64512, "peerASN": 64512, "peerAddress": "192.0.2.254"}}))],
            advertisements: vec![obj(json!({"metadata": {"name": "all"},
                                            "spec": {"communities": ["64512:100"], "localPref": 200}}))],
            speaker_statuses: vec![obj(json!({
                "metadata": {"name": "a", "namespace": "ferrolb-system"},
                "spec": {"nodeName": "a"},
                "status": {"peers": [{"name": "tor", "address": "192.0.2.254", "port": 179,
                                       "state": "Established", "establishedSince": "2026-11-25T20:00:00Z"}]},
            }))],
        }
    }

    #[test]
    fn local_policy_is_announced_only_where_endpoints_are() {
        let r = explain(&cluster("Local"), &ClassFilter::default());
        assert_eq!(r.announced_from, ["a"]);
        assert_eq!(r.ips, ["192.0.2.10"]);
        let by_node: BTreeMap<&str, &NodeReport> =
            r.nodes.iter().map(|n| (n.node.as_str(), n)).collect();
        let a = &by_node["a"].lines[0];
        assert!(a.announced);
        assert_eq!(a.session.as_ref().unwrap().state, "Established");
        assert_eq!(
            a.routes,
            [RouteReport {
                prefix: "192.0.2.10/32".into(),
                next_hop: None,
                communities: vec!["64512:100".into()],
                large_communities: vec![],
                local_pref: Some(200),
                advertisements: vec!["all".into()],
            }]
        );
        assert_eq!(
            by_node["b"].lines[0].reason.as_deref(),
            Some("noLocalEndpoints")
        );
        assert_eq!(
            by_node["c"].lines[0].reason.as_deref(),
            Some("nodeNotReady")
        );
        assert!(!by_node["b"].speaker_status_found);
    }

    #[test]
    fn text_has_a_summary_and_one_aligned_row_per_node_and_peer() {
        let text = format_text(&explain(&cluster("Local"), &ClassFilter::default()));
        let expected = "\
Service app/web
  addresses: 192.0.2.10
  externalTrafficPolicy: Local
  ready endpoints on: a
  announced from 1 of 3 nodes: a

NODE   PEER   ADDRESS      SESSION       RESULT
a      tor    192.0.2.10   Established   announced 192.0.2.10/32 next-hop self, communities 64512:100, local-pref 200 (advertisements: all)
b      tor    192.0.2.10   unknown       noLocalEndpoints: externalTrafficPolicy is Local and this node has no ready or serving endpoint
c      tor    192.0.2.10   unknown       nodeNotReady: the node is not Ready
";
        assert_eq!(text, expected);
    }

    #[test]
    fn cluster_policy_announces_from_every_ready_node() {
        let r = explain(&cluster("Cluster"), &ClassFilter::default());
        assert_eq!(r.announced_from, ["a", "b"]);
    }

    #[test]
    fn services_of_other_kinds_or_classes_are_reported_as_not_handled() {
        let mut c = cluster("Cluster");
        c.service.spec.as_mut().unwrap().type_ = Some("NodePort".into());
        let r = explain(&c, &ClassFilter::default());
        assert!(r.nodes.is_empty());
        assert!(r.not_handled.as_deref().unwrap().contains("NodePort"));
        let text = format_text(&r);
        assert!(
            text.contains("not handled: the Service is of type NodePort"),
            "{text}"
        );

        let mut c = cluster("Cluster");
        c.service.spec.as_mut().unwrap().load_balancer_class = Some("other.io/lb".into());
        let r = explain(&c, &ClassFilter::default());
        assert!(r.not_handled.as_deref().unwrap().contains("other.io/lb"));
    }

    #[test]
    fn invalid_objects_are_left_out_with_a_warning() {
        let mut c = cluster("Cluster");
        c.advertisements = vec![obj(json!({"metadata": {"name": "bad"},
                                           "spec": {"aggregationLength": 99}}))];
        let r = explain(&c, &ClassFilter::default());
        assert!(r.announced_from.is_empty());
        assert_eq!(
            r.nodes[0].lines[0].reason.as_deref(),
            Some("noAdvertisement")
        );
        assert!(
            r.warnings[0].contains("BGPAdvertisement bad is invalid"),
            "{:?}",
            r.warnings
        );
        assert!(format_text(&r).contains("warning: BGPAdvertisement bad is invalid"));
    }

    #[test]
    fn down_sessions_show_their_last_error() {
        let mut c = cluster("Local");
        c.speaker_statuses[0].status.as_mut().unwrap().peers[0].state =
            ferrolb_shared::crd::SessionState::Active;
        c.speaker_statuses[0].status.as_mut().unwrap().peers[0].last_error =
            Some("received Cease/Administrative Shutdown (6/2)".into());
        let text = format_text(&explain(&c, &ClassFilter::default()));
        assert!(
            text.contains(
                "session a -> tor is down; last error: received Cease/Administrative Shutdown (6/2)"
            ),
            "{text}"
        );
    }
}
