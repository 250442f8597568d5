//! The demo `ferrolb-lab run` shows a newcomer: the demo configuration applied, a Service
//! with endpoints on two nodes gets an IP, the router learns it with both nodes as ECMP
//! next hops, one node's endpoint goes not ready and the router drops that next hop.

use std::net::IpAddr;
use std::time::Instant;

use crate::Error;
use crate::cluster::TrafficPolicy;
use crate::lab::{APP_NAMESPACE, DEADLINE, Lab};
use crate::router::{RoutePath, RouterKind};
use crate::topology::{API_ADDR, API_PORT, Port};

/// The demo Service's name.
pub const SERVICE: &str = "demo";

/// What the demo ended with.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The Service's IP.
    pub ip: IpAddr,
}

/// Prints a lab line.
fn say(msg: impl std::fmt::Display) {
    println!("lab: {msg}");
}

fn describe_paths(paths: &[RoutePath]) -> String {
    let hops: Vec<String> = paths
        .iter()
        .map(|p| match p.node() {
            Some((_, n)) => format!("{} (node-{n})", p.next_hop),
            None => p.next_hop.to_string(),
        })
        .collect();
    let mut s = format!("via {}", hops.join(", "));
    if let Some(p) = paths.first() {
        let asp: Vec<String> = p.as_path.iter().map(u32::to_string).collect();
        s += &format!("   [AS path {}", asp.join(" "));
        if !p.communities.is_empty() {
            s += &format!(", communities {}", p.communities.join(" "));
        }
        s += "]";
    }
    s
}

/// Runs the demo on a started lab.
pub async fn run(lab: &Lab) -> Result<Outcome, Error> {
    say(format!(
        "{} nodes (node-1..node-{n} at 10.0.0.11..{}), router {} at {} (AS 64500), API server at {API_ADDR}:{API_PORT}",
        lab.cfg.nodes,
        10 + lab.cfg.nodes,
        lab.router.kind.name(),
        Port::Ebgp.router_ip(),
        n = lab.cfg.nodes,
    ));
    say(format!(
        "running: kube emulator with ferrolb's CRDs, {} controller replicas, a speaker per node",
        lab.cfg.controllers
    ));
    lab.apply_examples().await?;
    say(
        "applied charts/ferrolb/examples: IPAddressPool demo, BGPPeer upstream, BGPAdvertisement demo",
    );
    lab.wait_sessions(lab.cfg.nodes).await?;
    say("every node has an Established BGP session with the router");

    let c = &lab.cluster;
    c.create_service(APP_NAMESPACE, SERVICE, TrafficPolicy::Local, &[], &[])
        .await?;
    let created = Instant::now();
    c.set_endpoints(APP_NAMESPACE, SERVICE, &[(1, true), (2, true)])
        .await?;
    say(format!(
        "created Service {APP_NAMESPACE}/{SERVICE} (type LoadBalancer, externalTrafficPolicy Local) with ready endpoints on node-1 and node-2"
    ));
    let ip = c.wait_service_ip(APP_NAMESPACE, SERVICE, DEADLINE).await?;
    say(format!(
        "the controller allocated {ip} ({} ms after the Service was created)",
        created.elapsed().as_millis()
    ));
    let prefix = Lab::host_prefix(ip);
    lab.wait_next_hops(&prefix, Port::Ebgp, &[1, 2]).await?;
    say(format!(
        "router has {prefix} {}   ({} ms after the Service was created)",
        describe_paths(&lab.router.paths(&prefix).await?),
        created.elapsed().as_millis()
    ));
    show_fib(lab, ip).await;

    say("marking node-2's endpoint not ready");
    let changed = Instant::now();
    c.set_endpoints(APP_NAMESPACE, SERVICE, &[(1, true), (2, false)])
        .await?;
    lab.wait_next_hops(&prefix, Port::Ebgp, &[1]).await?;
    let took = changed.elapsed();
    say(format!(
        "router has {prefix} {}   (node-2 withdrawn {} ms after its endpoint went not ready)",
        describe_paths(&lab.router.paths(&prefix).await?),
        took.as_millis()
    ));
    show_fib(lab, ip).await;
    Ok(Outcome { ip })
}

/// BIRD installs its routes in the router namespace's kernel table: show the ECMP route.
async fn show_fib(lab: &Lab, ip: IpAddr) {
    if lab.router.kind != RouterKind::Bird {
        return;
    }
    let ns = lab.topo.router();
    let ip = ip.to_string();
    if let Ok(out) = crate::sys::run(&["ip", "-n", &ns, "route", "show", &ip]).await {
        let text: Vec<&str> = out
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        if !text.is_empty() {
            say(format!("router's kernel route: {}", text.join(" | ")));
        }
    }
}

/// How to look around a running lab.
pub fn print_usage(lab: &Lab) {
    let router_cmd = match lab.router.kind {
        RouterKind::Bird => format!(
            "birdc -s {}/router/bird.ctl show route all",
            lab.dir.display()
        ),
        RouterKind::Frr => format!(
            "vtysh --vty_socket {}/router -d bgpd -c 'show bgp ipv4 unicast'",
            lab.dir.display()
        ),
    };
    let kubectl = std::env::var("FERROLB_LAB_KUBECTL").unwrap_or_else(|_| "kubectl".into());
    println!();
    println!("The lab is up. Try:");
    println!("  export KUBECONFIG={}", lab.kubeconfig.display());
    println!("  {kubectl} get svc,endpointslices,nodes -A");
    println!("  {kubectl} get ipaddresspools,bgppeers,bgpadvertisements -n ferrolb-system");
    println!("  {router_cmd}");
    println!("Logs: {}", lab.dir.display());
}
