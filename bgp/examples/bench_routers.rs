//! Benchmark: Established → all N /32 in the router's RIB, for N = 10k and
//! 100k, into BIRD and into FRR, from `ferrolb-bgp announce` and, side by
//! side in the same topology, from `gobgpd`. Run with `bgp/bench/run.sh`
//! (root; builds the release binary first).
//!
//! Both senders are timed the same way: from the router's own log line
//! for the session going Established (BIRD `debug { states }`, FRR
//! `log-neighbor-changes`, millisecond timestamps) to the first poll of a
//! tight loop that finds all N routes in the router's RIB (each poll takes
//! a few ms; vtysh ~10 ms). gobgpd gets its routes (`gobgp mrt inject`)
//! before it has a neighbour, so they are all waiting when its session
//! comes up.
//!
//! Options: `--runs K` (default 3, median reported), `--sizes 10000,100000`,
//! `--routers bird,frr`, `--bin PATH` (default: `ferrolb-bgp` beside the
//! examples directory).

// A benchmark driver: a failure is a crash with a message.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::*;

const LIMIT: Duration = Duration::from_secs(120);

/// A TABLE_DUMP_V2 MRT file (RFC 6396) with `n` /32s from 10.128.0.0,
/// ORIGIN IGP, empty AS_PATH, NEXT_HOP the node (gobgpd puts its own ASN
/// and address in when it advertises them over eBGP).
fn mrt_file(n: u32) -> Vec<u8> {
    fn record(out: &mut Vec<u8>, subtype: u16, body: &[u8]) {
        out.extend(0u32.to_be_bytes()); // timestamp
        out.extend(13u16.to_be_bytes()); // TABLE_DUMP_V2
        out.extend(subtype.to_be_bytes());
        out.extend((body.len() as u32).to_be_bytes());
        out.extend(body);
    }
    let node: std::net::Ipv4Addr = NODE_IP.parse().unwrap();
    let mut out = Vec::new();
    // PEER_INDEX_TABLE: collector id, empty view name, one peer (AS4, IPv4).
    let mut peers = Vec::new();
    peers.extend(node.octets());
    peers.extend(0u16.to_be_bytes());
    peers.extend(1u16.to_be_bytes());
    peers.push(0x02);
    peers.extend(node.octets());
    peers.extend(node.octets());
    peers.extend(NODE_AS.to_be_bytes());
    record(&mut out, 1, &peers);
    let mut attrs = vec![0x40, 1, 1, 0, 0x40, 2, 0, 0x40, 3, 4];
    attrs.extend(node.octets());
    let base = u32::from(std::net::Ipv4Addr::new(10, 128, 0, 0));
    // `gobgp mrt inject` drops the last few hundred records it reads: end
    // with repeats of the first routes (harmless) so every route gets in.
    for i in (0..n).chain(0..n.min(4096)) {
        let mut rib = Vec::new();
        rib.extend(i.to_be_bytes());
        rib.push(32);
        rib.extend((base + i).to_be_bytes());
        rib.extend(1u16.to_be_bytes());
        rib.extend(0u16.to_be_bytes()); // peer index
        rib.extend(0u32.to_be_bytes()); // originated
        rib.extend((attrs.len() as u16).to_be_bytes());
        rib.extend(&attrs);
        record(&mut out, 2, &rib);
    }
    out
}

fn prefix_file(n: u32) -> String {
    host_routes("10.128.0.0".parse().unwrap(), n)
}

/// From the router's own log line for Established (millisecond
/// timestamps) to the first poll showing all `n` routes.
fn time_to_rib(t: &Topo, n: usize) -> Duration {
    let start = Instant::now();
    loop {
        let c = t.route_count(false);
        if c >= n {
            break;
        }
        assert!(start.elapsed() < LIMIT, "only {c} of {n} routes");
    }
    let done = time_of_day();
    let up = wait_for("Established in the router's log", DEADLINE, || {
        t.established_logged_at()
    });
    let took = done - up;
    assert!(
        (0.0..LIMIT.as_secs_f64()).contains(&took),
        "Established logged at {up}, routes complete at {done}: clocks disagree"
    );
    Duration::from_secs_f64(took)
}

fn ours(bin: &str, kind: Kind, n: u32, run: usize) -> Duration {
    let mut t = Topo::new(&format!("bo{run}"));
    t.start_router(kind, &RouterOpts::default());
    fs::write(t.path("prefixes"), prefix_file(n)).unwrap();
    let pf = t.path("prefixes");
    t.announce(
        bin,
        "ours",
        &[
            "--local-as",
            "64513",
            "--peer-as",
            "64512",
            "--peer",
            ROUTER_IP,
            "--source",
            NODE_IP,
            "--prefix-file",
            &pf,
        ],
    );
    time_to_rib(&t, n as usize)
}

fn gobgpd(kind: Kind, n: u32, run: usize) -> Duration {
    let mut t = Topo::new(&format!("bg{run}"));
    t.start_router(kind, &RouterOpts::default());
    let conf =
        format!("[global.config]\n  as = {NODE_AS}\n  router-id = \"{NODE_IP}\"\n  port = -1\n");
    fs::write(t.path("sender.toml"), conf).unwrap();
    fs::write(t.path("routes.mrt"), mrt_file(n)).unwrap();
    let (conf, api) = (
        t.path("sender.toml"),
        format!("unix://{}", t.path("sender.sock")),
    );
    let ns = t.node_ns();
    t.spawn(
        &ns,
        &[
            "gobgpd",
            "-f",
            &conf,
            "-p",
            "--pprof-disable",
            "--api-hosts",
            &api,
        ],
        "sender",
    );
    let cli = |args: &[&str]| {
        let mut a = vec!["gobgp", "--target", &api];
        a.extend_from_slice(args);
        output(&a)
    };
    wait_for("sender API", DEADLINE, || {
        cli(&["global"]).contains("AS:").then_some(())
    });
    let mrt = t.path("routes.mrt");
    // `mrt inject` may drop the tail silently: repeat until all are in.
    let count = || {
        cli(&["global", "rib", "summary", "-a", "ipv4"])
            .split("Destination: ")
            .nth(1)
            .and_then(|x| x.split(',').next()?.trim().parse::<u32>().ok())
            .unwrap_or(0)
    };
    for _ in 0..5 {
        cli(&["mrt", "inject", "global", &mrt]);
        if count() == n {
            break;
        }
    }
    assert_eq!(count(), n, "gobgpd did not take all routes");
    let out = cli(&["neighbor", "add", ROUTER_IP, "as", "64512"]);
    assert!(!out.contains("rror"), "{out}");
    time_to_rib(&t, n as usize)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut runs = 3;
    let mut sizes = vec![10_000u32, 100_000];
    let mut routers = vec![Kind::Bird, Kind::Frr];
    let mut bin: PathBuf = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("ferrolb-bgp");
    while let Some(a) = args.next() {
        let v = args.next().expect("a value after each option");
        match a.as_str() {
            "--runs" => runs = v.parse().unwrap(),
            "--sizes" => sizes = v.split(',').map(|s| s.parse().unwrap()).collect(),
            "--routers" => {
                routers = v
                    .split(',')
                    .map(|r| match r {
                        "bird" => Kind::Bird,
                        "frr" => Kind::Frr,
                        _ => panic!("router {r}: bird or frr"),
                    })
                    .collect()
            }
            "--bin" => bin = v.into(),
            _ => panic!("unknown option {a}"),
        }
    }
    require(&[
        "bird",
        "birdc",
        "/usr/lib/frr/bgpd",
        "vtysh",
        "gobgpd",
        "gobgp",
    ]);
    assert!(bin.exists(), "{} missing: build it first", bin.display());
    let bin = bin.to_string_lossy().into_owned();
    println!("Established -> all N /32 in the router's RIB (median of {runs} runs)\n");
    println!("| router | N | ferrolb-bgp | gobgpd | ratio |");
    println!("| --- | --- | --- | --- | --- |");
    for &kind in &routers {
        for &n in &sizes {
            let (mut a, mut b) = (Vec::new(), Vec::new());
            for run in 0..runs {
                a.push(ours(&bin, kind, n, run));
                b.push(gobgpd(kind, n, run));
                eprintln!(
                    "{kind:?} {n} run {run}: ours {:.3} s, gobgpd {:.3} s",
                    a[run].as_secs_f64(),
                    b[run].as_secs_f64()
                );
            }
            let (a, b) = (median(a), median(b));
            println!(
                "| {kind:?} | {n} | {:.3} s | {:.3} s | {:.2} |",
                a.as_secs_f64(),
                b.as_secs_f64(),
                a.as_secs_f64() / b.as_secs_f64()
            );
        }
    }
}
