//! The `ferrolb-controller` binary end to end: flags from the environment, kubeconfig from
//! `KUBECONFIG`, HTTP endpoints, and a graceful SIGTERM that releases the Lease.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use serde_json::json;

async fn get(addr: &str, path: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).await.ok()?;
    Some(out)
}

#[tokio::test]
async fn binary_serves_and_releases_its_lease_on_sigterm() {
    let emu = emulator().await;
    pool(&emu, "p", &["192.0.2.0/28"], json!({}));
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    emu.write_kubeconfig(&kubeconfig).unwrap();
    // Port 0: the binary picks a free port and logs it, so no other test can take it
    // between a probe and the bind.
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_ferrolb-controller"))
        .env("KUBECONFIG", &kubeconfig)
        .env("FERROLB_METRICS_ADDR", "127.0.0.1:0")
        .env("POD_NAMESPACE", "ferrolb-system")
        .env("POD_NAME", "ctl-0")
        .env("FERROLB_LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .args([
            "--lease-duration",
            "4s",
            "--renew-deadline",
            "3s",
            "--retry-period",
            "500ms",
        ])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let addr = {
        use tokio::io::AsyncBufReadExt;
        let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let addr = tokio::time::timeout(DEADLINE, async {
            while let Some(line) = lines.next_line().await.unwrap() {
                let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                    continue;
                };
                if let Some(a) = v["fields"]["addr"].as_str() {
                    return a.to_owned();
                }
            }
            panic!("the controller exited without logging its HTTP address");
        })
        .await
        .expect("the controller logs its HTTP address");
        // Keep draining, so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        addr
    };
    wait_until("/readyz to report leading", || async {
        get(&addr, "/readyz")
            .await
            .is_some_and(|r| r.contains("ok: leading"))
    })
    .await;
    create(&emu, &lb_service("web", &[])).await;
    wait_ips(&emu, "web", |v| v.len() == 1).await;
    let metrics = get(&addr, "/metrics").await.unwrap();
    assert!(metrics.contains("ferrolb_allocations_total 1"), "{metrics}");

    let leases: Api<Lease> = Api::namespaced(emu.client().await.unwrap(), "ferrolb-system");
    let holder = |l: Lease| l.spec.and_then(|s| s.holder_identity);
    assert_eq!(
        holder(leases.get("ferrolb-controller").await.unwrap()).as_deref(),
        Some("ctl-0")
    );
    let pid = child.id().unwrap().to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = tokio::time::timeout(DEADLINE, child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(exit.success(), "{exit:?}");
    // Released: a standby could take over at once instead of waiting for expiry.
    assert_eq!(
        holder(leases.get("ferrolb-controller").await.unwrap()),
        None
    );
}

#[test]
fn binary_rejects_contradictory_flags() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ferrolb-controller"))
        .args(["--lease-duration", "5s", "--renew-deadline", "6s"])
        .env("KUBECONFIG", "/nonexistent")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--renew-deadline"), "{err}");
}
