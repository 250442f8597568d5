//! The real `ferrolb-controller` and `ferrolb-speaker` binaries against the kube emulator,
//! in a small scenario that makes every labelled series exist (a pool, Services with and
//! without an address, a speaker with a peer that never answers, an invalid peer, a peer
//! whose password Secret is missing). Then:
//! - `promtool check metrics` accepts both scrapes;
//! - every metric the dashboard and the alert rules name is in the scrapes;
//! - the chart's RBAC grants every request the binaries sent (the emulator's journal), and
//!   nothing else except the allow-list in docs/security.md;
//! - every flag, environment variable, metric, CRD field and annotation the docs name exists.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

use ferrolb_deploy_tests::rbac::{Grants, Permission, Request};
use ferrolb_deploy_tests::{docs, metrics, parse_yaml_docs, paths, read, schema};
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams};
use kube_emulator::{Emulator, EmulatorConfig, Journal};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const NS: &str = "ferrolb-system";
const NODE: &str = "node-a";
const DEADLINE: Duration = Duration::from_secs(30);

/// GET over plain HTTP/1.1; the body, or `None` while the server is not up.
async fn http_get(addr: &str, path: &str) -> Option<String> {
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).await.ok()?;
    out.split_once("\r\n\r\n").map(|(_, body)| body.to_owned())
}

/// Polls `addr` + `path` until `ok(body)`, panicking with the last body after the deadline.
async fn wait_body(what: &str, addr: &str, path: &str, ok: impl Fn(&str) -> bool) -> String {
    let mut last = None;
    let r = tokio::time::timeout(DEADLINE, async {
        loop {
            if let Some(body) = http_get(addr, path).await {
                if ok(&body) {
                    return body;
                }
                last = Some(body);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    r.unwrap_or_else(|_| panic!("timed out waiting for {what}; last {path}:\n{last:?}"))
}

fn free_addr() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("127.0.0.1:{port}")
}

struct Running {
    child: tokio::process::Child,
    _dir: tempfile::TempDir,
}

/// Starts a workspace binary against `emu` with the environment a chart pod would give it.
fn spawn(emu: &Emulator, binary: &str, metrics_addr: &str, extra_env: &[(&str, &str)]) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    emu.write_kubeconfig(&kubeconfig).unwrap();
    let mut cmd = tokio::process::Command::new(paths::workspace_binary(binary).unwrap());
    cmd.env("KUBECONFIG", &kubeconfig)
        .env("POD_NAMESPACE", NS)
        .env("FERROLB_METRICS_ADDR", metrics_addr)
        .env("FERROLB_LOG_FORMAT", "json")
        .env("RUST_LOG", "warn")
        .env_remove("NODE_NAME")
        .kill_on_drop(true);
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    Running {
        child: cmd.spawn().unwrap(),
        _dir: dir,
    }
}

/// SIGTERM, then waits for a clean exit (both binaries release what they hold).
async fn stop(mut r: Running) {
    let pid = r.child.id().unwrap().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let exit = tokio::time::timeout(DEADLINE, r.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(exit.success(), "{exit:?}");
}

async fn emulator() -> Emulator {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    emu.apply_yaml_dir(paths::chart_dir().join("crds")).unwrap();
    emu
}

/// The controller: one pool with room, one with a single address and two Services that
/// want it (one is refused: `PoolExhausted`).
async fn controller_scenario() -> (String, Journal) {
    let emu = emulator().await;
    emu.apply_yaml(&format!(
        r#"
apiVersion: v1
kind: Namespace
metadata: {{name: {NS}}}
---
apiVersion: ferrolb.io/v1alpha1
kind: IPAddressPool
metadata: {{name: demo, namespace: {NS}}}
spec: {{addresses: ["192.0.2.0/28"]}}
---
apiVersion: ferrolb.io/v1alpha1
kind: IPAddressPool
metadata: {{name: tiny, namespace: {NS}}}
spec: {{addresses: ["198.51.100.7/32"], autoAssign: false}}
"#
    ))
    .unwrap();
    emu.clear_journal();
    let addr = free_addr();
    let ctl = spawn(
        &emu,
        "ferrolb-controller",
        &addr,
        &[
            ("POD_NAME", "ctl-0"),
            ("FERROLB_LEASE_DURATION", "4s"),
            ("FERROLB_RENEW_DEADLINE", "3s"),
            ("FERROLB_RETRY_PERIOD", "500ms"),
        ],
    );
    wait_body("the controller to lead", &addr, "/readyz", |b| {
        b.contains("leading")
    })
    .await;
    let svc = |name: &str, pool: Option<&str>| {
        let ann = pool
            .map(|p| format!("annotations: {{ferrolb.io/address-pool: {p}}}"))
            .unwrap_or_default();
        format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: default, {ann}}}\n\
             spec: {{type: LoadBalancer, selector: {{app: {name}}}, ports: [{{port: 80}}]}}\n---\n"
        )
    };
    emu.apply_yaml(&format!(
        "{}{}",
        svc("web", None),
        svc("tiny-a", Some("tiny"))
    ))
    .unwrap();
    wait_body("two allocations", &addr, "/metrics", |b| {
        b.contains("ferrolb_allocations_total 2")
    })
    .await;
    emu.apply_yaml(&svc("tiny-b", Some("tiny"))).unwrap();
    let scrape = wait_body("a PoolExhausted refusal", &addr, "/metrics", |b| {
        b.contains("ferrolb_allocation_failures_total{reason=\"PoolExhausted\"}")
            && b.contains("ferrolb_pool_addresses_in_use{pool=\"tiny\",family=\"IPv4\"} 1")
    })
    .await;
    stop(ctl).await;
    (scrape, emu.journal())
}

/// The speaker: a Service with an address and a ready endpoint on this node, a peer that
/// answers (session up, UPDATEs sent), a peer that accepts TCP and never answers (the
/// session stays down), an invalid peer, and a peer whose password Secret does not exist.
async fn speaker_scenario() -> (String, Journal) {
    let router = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = router.local_addr().unwrap().port();
    // Holds every connection open without a byte in reply.
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = router.accept().await {
            held.push(s);
        }
    });
    let answering = tokio::net::TcpListener::bind("127.0.0.4:0").await.unwrap();
    let up_port = answering.local_addr().unwrap().port();
    let router_task = tokio::spawn(answering_router(answering));
    let emu = emulator().await;
    emu.apply_yaml(&format!(
        r#"
apiVersion: v1
kind: Namespace
metadata: {{name: {NS}}}
---
apiVersion: ferrolb.io/v1alpha1
kind: BGPPeer
metadata: {{name: answering, namespace: {NS}}}
spec: {{myASN: 64513, peerASN: 64512, peerAddress: 127.0.0.4, peerPort: {up_port}}}
---
apiVersion: v1
kind: Node
metadata: {{name: {NODE}, labels: {{kubernetes.io/hostname: {NODE}}}}}
---
apiVersion: ferrolb.io/v1alpha1
kind: IPAddressPool
metadata: {{name: demo, namespace: {NS}}}
spec: {{addresses: ["192.0.2.0/28"]}}
---
apiVersion: ferrolb.io/v1alpha1
kind: BGPPeer
metadata: {{name: upstream, namespace: {NS}}}
spec: {{myASN: 64513, peerASN: 64512, peerAddress: 127.0.0.1, peerPort: {port}}}
---
apiVersion: ferrolb.io/v1alpha1
kind: BGPPeer
metadata: {{name: secured, namespace: {NS}}}
spec:
  myASN: 64513
  peerASN: 64512
  peerAddress: 127.0.0.2
  peerPort: {port}
  passwordSecret: {{name: bgp-missing}}
---
apiVersion: ferrolb.io/v1alpha1
kind: BGPPeer
metadata: {{name: broken, namespace: {NS}}}
spec: {{myASN: 0, peerASN: 64512, peerAddress: 127.0.0.3}}
---
apiVersion: ferrolb.io/v1alpha1
kind: BGPAdvertisement
metadata: {{name: demo, namespace: {NS}}}
spec: {{ipAddressPools: [demo]}}
---
apiVersion: v1
kind: Service
metadata: {{name: web, namespace: default}}
spec: {{type: LoadBalancer, selector: {{app: web}}, ports: [{{port: 80}}]}}
status: {{loadBalancer: {{ingress: [{{ip: 192.0.2.1}}]}}}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-1
  namespace: default
  labels: {{kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{{port: 80, protocol: TCP}}]
endpoints:
  - addresses: [10.1.0.5]
    nodeName: {NODE}
    conditions: {{ready: true}}
"#
    ))
    .unwrap();
    let nodes: Api<Node> = Api::all(emu.client().await.unwrap());
    let status = json!({"status": {
        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
        "conditions": [{"type": "Ready", "status": "True"}],
    }});
    nodes
        .patch_status(NODE, &PatchParams::default(), &Patch::Merge(status))
        .await
        .unwrap();
    emu.clear_journal();
    let addr = free_addr();
    let spk = spawn(&emu, "ferrolb-speaker", &addr, &[("NODE_NAME", NODE)]);
    wait_body(
        "session-down, invalid-config and password series",
        &addr,
        "/metrics",
        |b| {
            b.contains("ferrolb_bgp_session_up{peer=\"upstream\"} 0")
                && b.contains("ferrolb_speaker_reconcile_errors_total{kind=\"invalidConfig\"}")
                && b.contains("ferrolb_speaker_reconcile_errors_total{kind=\"passwordSecret\"}")
                && b.contains("ferrolb_speaker_announced_service_ips 1")
                && b.contains("ferrolb_speaker_caches_synced 1")
                && b.contains("ferrolb_bgp_session_up{peer=\"answering\"} 1")
                && b.contains("ferrolb_bgp_updates_sent_total{peer=\"answering\"}")
        },
    )
    .await;
    // The last endpoint stops being ready: the speaker withdraws and says so in a
    // `Withdrawn` event (its first decision after start-up sends none).
    emu.apply_yaml(
        "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
         metadata: {name: web-1, namespace: default, labels: {kubernetes.io/service-name: web}}\n\
         addressType: IPv4\nports: [{port: 80, protocol: TCP}]\n\
         endpoints: [{addresses: [10.1.0.5], nodeName: node-a, conditions: {ready: false}}]\n",
    )
    .unwrap();
    tokio::time::timeout(DEADLINE, async {
        while !emu
            .journal()
            .entries
            .iter()
            .any(|e| e.resource == "events" && e.verb == "create")
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the speaker sent no event on withdrawal");
    let scrape = wait_body("the withdrawal", &addr, "/metrics", |b| {
        b.contains("ferrolb_speaker_announced_service_ips 0")
    })
    .await;
    tokio::time::timeout(DEADLINE, emu.wait_idle())
        .await
        .unwrap();
    stop(spk).await;
    silent.abort();
    router_task.abort();
    (scrape, emu.journal())
}

/// A BGP router on 127.0.0.1 that completes OPEN/KEEPALIVE and then answers keepalives
/// and swallows everything else, so the speaker's session is Established and it sends
/// UPDATEs.
async fn answering_router(listener: tokio::net::TcpListener) {
    use ferrolb_bgp::codec::{self, Capability, CodecOptions, Family, Message, Open, Received};
    async fn read_msg(s: &mut tokio::net::TcpStream) -> Option<Received> {
        let mut buf = vec![0u8; 19];
        s.read_exact(&mut buf).await.ok()?;
        let h = codec::peek_header(&buf).ok()??;
        buf.resize(h.length, 0);
        s.read_exact(&mut buf[19..]).await.ok()?;
        codec::decode(&buf, CodecOptions::FOUR_OCTET_AS).ok()
    }
    async fn send(s: &mut tokio::net::TcpStream, m: Message) {
        let _ = s
            .write_all(&m.encode(CodecOptions::FOUR_OCTET_AS).unwrap())
            .await;
    }
    while let Ok((mut s, _)) = listener.accept().await {
        tokio::spawn(async move {
            let Some(Received::Open(_)) = read_msg(&mut s).await else {
                return;
            };
            let ours = Open::new(
                64512,
                90,
                std::net::Ipv4Addr::new(127, 0, 0, 9),
                vec![
                    Capability::multiprotocol(Family::Ipv4Unicast),
                    Capability::RouteRefresh,
                ],
            );
            send(&mut s, Message::Open(ours)).await;
            send(&mut s, Message::Keepalive).await;
            while let Some(m) = read_msg(&mut s).await {
                if matches!(m, Received::Keepalive) {
                    send(&mut s, Message::Keepalive).await;
                }
            }
        });
    }
}

/// `promtool check metrics` on one scrape. Parse errors (exit 1) always fail. Lint findings
/// (exit 3) fail too, except one that is an artefact of the format: the binaries serve
/// OpenMetrics (what Prometheus negotiates), where a counter family `x` has samples
/// `x_total` and its `# HELP x`; promtool 2.42 reads the classic text format and reports
/// `x_total no help text`. That finding is accepted only when `# HELP x` is really there.
fn promtool_check(what: &str, scrape: &str) -> Option<String> {
    let mut child = std::process::Command::new(paths::tool("promtool"))
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (scripts/install-deps.sh installs it into .tools/bin)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(scrape.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let findings = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let openmetrics_artefact = |line: &str| {
        line.strip_suffix(" no help text")
            .and_then(|name| name.strip_suffix("_total"))
            .is_some_and(|family| scrape.contains(&format!("# HELP {family} ")))
    };
    let accepted = match out.status.code() {
        Some(0) => true,
        Some(3) => findings
            .lines()
            .filter(|l| !l.trim().is_empty())
            .all(openmetrics_artefact),
        _ => false,
    };
    (!accepted).then(|| {
        format!(
            "promtool check metrics rejected the {what} scrape ({}):\n{findings}",
            out.status
        )
    })
}

/// The permissions docs/security.md allows beyond what the scenario exercised:
/// rows `| controller|speaker | group | resource | verb | why |`.
fn allow_list() -> BTreeMap<String, BTreeSet<Permission>> {
    let text = read(&paths::repo_root().join("docs/security.md")).unwrap();
    let mut out: BTreeMap<String, BTreeSet<Permission>> = BTreeMap::new();
    for line in text.lines() {
        let cells: Vec<&str> = line
            .trim()
            .trim_matches('|')
            .split('|')
            .map(str::trim)
            .collect();
        if cells.len() != 5 || !matches!(cells[0], "controller" | "speaker") {
            continue;
        }
        let unquote = |s: &str| s.trim_matches('`').to_owned();
        let group = match unquote(cells[1]).as_str() {
            "core" | "\"\"" => String::new(),
            g => g.to_owned(),
        };
        for verb in cells[3].split(',') {
            out.entry(cells[0].to_owned()).or_default().insert((
                group.clone(),
                unquote(cells[2]),
                unquote(verb.trim()),
            ));
        }
    }
    out
}

fn check_rbac(
    who: &str,
    grants: &Grants,
    journal: &Journal,
    allowed_extra: &BTreeSet<Permission>,
    problems: &mut Vec<String>,
) {
    let requests: BTreeSet<Request> = journal
        .entries
        .iter()
        .filter_map(Request::from_journal)
        .collect();
    assert!(
        !requests.is_empty(),
        "the {who} sent no API request: the scenario is broken"
    );
    for r in &requests {
        if !grants.allows(r) {
            problems.push(format!("the chart does not let the {who} do {r:?}"));
        }
    }
    let used: BTreeSet<Permission> = requests.iter().map(Request::permission).collect();
    for p in grants.permissions() {
        if !used.contains(&p) && !allowed_extra.contains(&p) {
            problems.push(format!(
                "the chart grants the {who} {p:?}, which it never used here and docs/security.md does not justify"
            ));
        }
    }
    for p in allowed_extra {
        if !grants.permissions().contains(p) {
            problems.push(format!(
                "docs/security.md allows the {who} {p:?}, which the chart does not grant (stale row)"
            ));
        }
    }
}

fn help_text(binary: &str, args: &[&str]) -> String {
    let p = paths::workspace_binary(binary).unwrap();
    let out = std::process::Command::new(p)
        .args(args)
        .arg("--help")
        .env_remove("NODE_NAME")
        .output()
        .unwrap();
    assert!(out.status.success(), "{binary} {args:?} --help failed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn check_docs(exposed: &BTreeSet<String>, problems: &mut Vec<String>) {
    // The two daemons, and the `ferrolb explain` CLI (its binary is `ferrolb`).
    let help = [
        help_text("ferrolb-controller", &[]),
        help_text("ferrolb-speaker", &[]),
        help_text("ferrolb", &["explain"]),
    ]
    .join("\n");
    let mut fields = BTreeSet::new();
    for entry in std::fs::read_dir(paths::chart_dir().join("crds")).unwrap() {
        let path = entry.unwrap().path();
        for doc in parse_yaml_docs(&path.display().to_string(), &read(&path).unwrap()).unwrap() {
            fields.extend(schema::field_paths(&doc).into_iter().map(|(_, p)| p));
        }
    }
    // The CRD reference is complete: every schema field is listed (the insides of label
    // selectors and conditions are Kubernetes' own types and not repeated).
    let reference =
        docs::mentions(&read(&paths::repo_root().join("docs/crd-reference.md")).unwrap());
    for f in &fields {
        let standard = ["matchLabels", "matchExpressions", "conditions."]
            .iter()
            .any(|s| f.contains(s));
        if !standard && f.contains('.') && !reference.fields.contains(f) {
            problems.push(format!("docs/crd-reference.md does not describe `{f}`"));
        }
    }
    // Fields of the built-in kinds the docs talk about (Service, Node), from k8s-openapi.
    for kind_schema in [
        serde_json::to_value(schemars::schema_for!(k8s_openapi::api::core::v1::Service)).unwrap(),
        serde_json::to_value(schemars::schema_for!(k8s_openapi::api::core::v1::Node)).unwrap(),
    ] {
        let builtin = schema::json_schema_paths(&kind_schema);
        assert!(builtin.contains("spec.loadBalancerClass") || builtin.contains("spec.taints"));
        fields.extend(builtin);
    }
    let constants = read(&paths::repo_root().join("shared/src/constants.rs")).unwrap();
    let docs_dir = paths::repo_root().join("docs");
    let mut checked = 0;
    for entry in std::fs::read_dir(&docs_dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        // The emulator's page documents the emulator, not the product.
        if !name.ends_with(".md") || name == "emulator.md" {
            continue;
        }
        let m = docs::mentions(&read(&path).unwrap());
        for f in &m.flags {
            if !help.contains(&format!("{f} ")) && !help.contains(&format!("{f}\n")) {
                problems.push(format!(
                    "docs/{name} names flag `{f}`, which neither binary accepts"
                ));
            }
        }
        for e in &m.env {
            if !help.contains(&format!("env: {e}=")) {
                problems.push(format!(
                    "docs/{name} names `{e}`, which neither binary reads"
                ));
            }
        }
        for metric in &m.metrics {
            if !metrics::is_exposed(metric, exposed) {
                problems.push(format!(
                    "docs/{name} names metric `{metric}`, which no scrape has"
                ));
            }
        }
        for field in &m.fields {
            if !fields.contains(field) {
                problems.push(format!(
                    "docs/{name} names field `{field}`, which no CRD, Service or Node has"
                ));
            }
        }
        for a in &m.annotations {
            if !constants.contains(&format!("\"{a}\"")) {
                problems.push(format!(
                    "docs/{name} names annotation `{a}`, which the code does not read"
                ));
            }
        }
        checked +=
            m.flags.len() + m.env.len() + m.metrics.len() + m.fields.len() + m.annotations.len();
    }
    if checked < 50 {
        problems.push(format!(
            "the docs name only {checked} checkable things: parsing is broken"
        ));
    }
}

fn rendered_chart() -> Vec<Value> {
    let text = paths::helm_template(NS, &[], false).unwrap();
    parse_yaml_docs("helm template", &text).unwrap()
}

fn names_in_rules_and_dashboard() -> BTreeMap<String, BTreeSet<String>> {
    let chart = paths::chart_dir();
    let mut out = BTreeMap::new();
    let rules = read(&chart.join("rules/ferrolb-alerts.yaml")).unwrap();
    let rules = parse_yaml_docs("rules", &rules).unwrap();
    let mut names = BTreeSet::new();
    for group in rules[0]["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            names.extend(metrics::ferrolb_metric_names(
                rule["expr"].as_str().unwrap(),
            ));
        }
    }
    out.insert("rules/ferrolb-alerts.yaml".to_owned(), names);
    let dash: Value =
        serde_json::from_str(&read(&chart.join("dashboards/ferrolb.json")).unwrap()).unwrap();
    let mut names = BTreeSet::new();
    for panel in dash["panels"].as_array().unwrap() {
        for t in panel["targets"].as_array().unwrap() {
            names.extend(metrics::ferrolb_metric_names(t["expr"].as_str().unwrap()));
        }
    }
    out.insert("dashboards/ferrolb.json".to_owned(), names);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binaries_agree_with_chart_alerts_dashboard_and_docs() {
    let (ctl_scrape, ctl_journal) = controller_scenario().await;
    let (spk_scrape, spk_journal) = speaker_scenario().await;
    let mut problems = Vec::new();

    // 1. The exposition is valid for Prometheus.
    problems.extend(promtool_check("controller", &ctl_scrape));
    problems.extend(promtool_check("speaker", &spk_scrape));

    // 2. Every metric the alerts and the dashboard use exists.
    let mut exposed = metrics::exposed_names(&ctl_scrape);
    exposed.extend(metrics::exposed_names(&spk_scrape));
    for (file, names) in names_in_rules_and_dashboard() {
        assert!(!names.is_empty(), "{file} names no metric");
        for n in names {
            if !metrics::is_exposed(&n, &exposed) {
                problems.push(format!("{file} uses {n}, which neither binary exports"));
            }
        }
    }

    // 3. RBAC: everything used is granted; everything granted is used or justified.
    let manifests = rendered_chart();
    let allow = allow_list();
    let empty = BTreeSet::new();
    check_rbac(
        "controller",
        &Grants::for_service_account(&manifests, NS, "ferrolb-controller"),
        &ctl_journal,
        allow.get("controller").unwrap_or(&empty),
        &mut problems,
    );
    check_rbac(
        "speaker",
        &Grants::for_service_account(&manifests, NS, "ferrolb-speaker"),
        &spk_journal,
        allow.get("speaker").unwrap_or(&empty),
        &mut problems,
    );

    // 4. The docs name only what exists.
    check_docs(&exposed, &mut problems);

    // 5. The chart sets only environment variables the binaries read.
    let all_features = paths::chart_dir().join("ci/all-features-values.yaml");
    let rendered = paths::helm_template(NS, &[&all_features], false).unwrap();
    for workload in parse_yaml_docs("helm template", &rendered).unwrap() {
        let binary = match workload["kind"].as_str() {
            Some("Deployment") => "ferrolb-controller",
            Some("DaemonSet") => "ferrolb-speaker",
            _ => continue,
        };
        let help = help_text(binary, &[]);
        let containers = workload
            .pointer("/spec/template/spec/containers")
            .and_then(Value::as_array)
            .unwrap();
        for env in containers.iter().flat_map(|c| c["env"].as_array().unwrap()) {
            let name = env["name"].as_str().unwrap();
            // Read by the code rather than by clap: the downward-API defaults and the log
            // filter; and by the C library (the speaker's malloc tuning).
            let read_directly = match binary {
                "ferrolb-controller" => ["POD_NAMESPACE", "POD_NAME", "RUST_LOG"].contains(&name),
                _ => ["POD_NAMESPACE", "RUST_LOG", "GLIBC_TUNABLES"].contains(&name),
            };
            if !read_directly && !help.contains(&format!("env: {name}=")) {
                problems.push(format!(
                    "the chart sets {name} on {binary}, which does not read it"
                ));
            }
        }
    }

    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn the_rbac_check_catches_a_missing_rule() {
    // Guards against a vacuous RBAC comparison: the chart without the controller's
    // services/status rule must fail to authorize the status patch the controller sends.
    let mut manifests = rendered_chart();
    for m in &mut manifests {
        if m["kind"] == "ClusterRole" && m["metadata"]["name"] == "ferrolb-controller" {
            let rules = m["rules"].as_array_mut().unwrap();
            rules.retain(|r| r["resources"][0] != "services/status");
        }
    }
    let g = Grants::for_service_account(&manifests, NS, "ferrolb-controller");
    let patch = Request {
        verb: "patch".into(),
        group: String::new(),
        resource: "services/status".into(),
        namespace: Some("default".into()),
        name: Some("web".into()),
    };
    assert!(!g.allows(&patch));
    let g = Grants::for_service_account(&rendered_chart(), NS, "ferrolb-controller");
    assert!(g.allows(&patch));
}
