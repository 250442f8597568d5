//! The Kubernetes API server of the lab: the kube emulator, in this process, on a thread of
//! its own that lives in the core namespace (so speakers and controllers reach it at
//! `10.0.0.2:6443`), plus a forwarder on `127.0.0.1` of the caller's namespace so the
//! tests and `kubectl` reach it too without any address being added outside the lab.

use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use kube_emulator::{Emulator, EmulatorConfig, Faults};
use serde_json::json;
use tokio::runtime::Handle;
use tokio::sync::oneshot;

use crate::Error;
use crate::topology::{API_ADDR, API_PORT};

/// The cluster IP range for IPv6 Services (a ULA, inside the lab only).
pub const SERVICE_CIDR_V6: &str = "fd00:96::/112";

/// A running API server.
pub struct ApiServer {
    /// `http://10.0.0.2:6443`, for processes in the lab's namespaces.
    pub lab_url: String,
    /// `http://127.0.0.1:PORT`, for this process and the user's kubectl.
    pub local_url: String,
    handle: Handle,
    faults: Faults,
    emulator: Arc<Emulator>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for ApiServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiServer")
            .field("lab_url", &self.lab_url)
            .field("local_url", &self.local_url)
            .finish()
    }
}

struct Started {
    handle: Handle,
    faults: Faults,
    emulator: Arc<Emulator>,
    lab_url: String,
}

impl ApiServer {
    /// Starts the emulator in namespace `core_ns` with every CRD in `crds` applied.
    pub fn start(core_ns: &str, crds: &Path) -> Result<ApiServer, Error> {
        // Bound here, before the thread changes namespace: this socket stays in ours.
        let local = StdListener::bind("127.0.0.1:0").map_err(|e| Error::Api(e.to_string()))?;
        local
            .set_nonblocking(true)
            .map_err(|e| Error::Api(e.to_string()))?;
        let local_addr = local.local_addr().map_err(|e| Error::Api(e.to_string()))?;
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<Started, Error>>();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let core_ns = core_ns.to_owned();
        let crds = crds.to_path_buf();
        let thread = std::thread::Builder::new()
            .name("lab-apiserver".into())
            .spawn(move || {
                let fail = |e: Error| {
                    let _ = ready_tx.send(Err(e));
                };
                let fail_tx = ready_tx.clone();
                if let Err(e) = crate::sys::enter_netns(&core_ns) {
                    return fail(e);
                }
                // Worker threads are created from this one, after setns: all in the core ns.
                let rt = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("lab-apiserver-rt")
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => return fail(Error::Api(e.to_string())),
                };
                let fail = move |e: Error| {
                    let _ = fail_tx.send(Err(e));
                };
                rt.block_on(async move {
                    let cfg = EmulatorConfig {
                        listen: SocketAddr::from((API_ADDR, API_PORT)),
                        // Dual-stack, IPv4 first: Services that name no family stay IPv4,
                        // and IPv6 or dual-stack Services are accepted.
                        service_cidrs: vec!["10.96.0.0/12".into(), SERVICE_CIDR_V6.into()],
                        ..EmulatorConfig::default()
                    };
                    let emu = match Emulator::start(cfg).await {
                        Ok(e) => e,
                        Err(e) => return fail(Error::Api(e.to_string())),
                    };
                    if let Err(e) = emu.apply_yaml_dir(&crds) {
                        return fail(Error::Api(format!("CRDs from {}: {e}", crds.display())));
                    }
                    let listener = match tokio::net::TcpListener::from_std(local) {
                        Ok(l) => l,
                        Err(e) => return fail(Error::Api(e.to_string())),
                    };
                    let target = emu.addr();
                    tokio::spawn(forward(listener, target));
                    let faults = emu.faults();
                    let emu = Arc::new(emu);
                    let _ = ready_tx.send(Ok(Started {
                        handle: Handle::current(),
                        faults: faults.clone(),
                        lab_url: emu.url(),
                        emulator: emu,
                    }));
                    let _ = stop_rx.await;
                    faults.stop().await;
                });
                rt.shutdown_timeout(Duration::from_secs(2));
            })
            .map_err(|e| Error::Api(e.to_string()))?;
        let started = ready_rx
            .recv_timeout(Duration::from_secs(30))
            .map_err(|e| Error::Api(format!("API server did not start: {e}")))??;
        Ok(ApiServer {
            lab_url: started.lab_url,
            local_url: format!("http://{local_addr}"),
            handle: started.handle,
            faults: started.faults,
            emulator: started.emulator,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// A kubeconfig (JSON, which kubectl reads) pointing at `url`.
    pub fn kubeconfig(url: &str) -> serde_json::Value {
        json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "ferrolb-lab", "cluster": {"server": url}}],
            "users": [{"name": "ferrolb-lab", "user": {"token": "ferrolb-lab"}}],
            "contexts": [{"name": "ferrolb-lab", "context": {"cluster": "ferrolb-lab", "user": "ferrolb-lab", "namespace": "default"}}],
            "current-context": "ferrolb-lab",
        })
    }

    /// Writes a kubeconfig for `url` to `path`.
    pub fn write_kubeconfig(url: &str, path: &Path) -> Result<(), Error> {
        let text = serde_json::to_string_pretty(&Self::kubeconfig(url))
            .map_err(|e| Error::Api(e.to_string()))?;
        std::fs::write(path, text).map_err(|e| Error::Api(format!("{}: {e}", path.display())))
    }

    /// A client for this process (through the local forwarder).
    pub async fn client(&self) -> Result<kube::Client, Error> {
        let kubeconfig: kube::config::Kubeconfig =
            serde_json::from_value(Self::kubeconfig(&self.local_url))
                .map_err(|e| Error::Api(e.to_string()))?;
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .map_err(|e| Error::Api(e.to_string()))?;
        kube::Client::try_from(config).map_err(|e| Error::Api(e.to_string()))
    }

    /// Stops the API server: the listener closes and every connection (watches included)
    /// drops; the stored objects are kept.
    pub async fn stop(&self) -> Result<(), Error> {
        let faults = self.faults.clone();
        self.handle
            .spawn(async move { faults.stop().await })
            .await
            .map_err(|e| Error::Api(e.to_string()))
    }

    /// Number of open watch streams (every client's watches are back once it is as high as
    /// before an outage).
    pub fn watch_count(&self) -> usize {
        self.emulator.watch_count()
    }

    /// Starts it again on the same address after [`Self::stop`].
    pub async fn resume(&self) -> Result<(), Error> {
        let faults = self.faults.clone();
        self.handle
            .spawn(async move { faults.start().await })
            .await
            .map_err(|e| Error::Api(e.to_string()))?
            .map_err(|e| Error::Api(e.to_string()))
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Forwards every connection accepted on `listener` to `target`.
async fn forward(listener: tokio::net::TcpListener, target: SocketAddr) {
    while let Ok((mut inbound, _)) = listener.accept().await {
        tokio::spawn(async move {
            // Refused while the API server is stopped: the client sees its connection close.
            if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            }
        });
    }
}
