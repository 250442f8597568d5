//! The whole lab: namespaces, API server, router, controllers and speakers, with the waits
//! the tests and the demo need. Dropping a [`Lab`] stops every process by pid and deletes
//! every namespace; [`install_signal_cleanup`] does the same on Ctrl-C / SIGTERM.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::Error;
use crate::apiserver::ApiServer;
use crate::bins::{self, Binaries};
use crate::cluster::Cluster;
use crate::procs::{Proc, Spawn};
use crate::router::{RoutePath, Router, RouterKind, Snapshot};
use crate::sys::wait_until;
use crate::topology::{self, Port, Topology, node_name};

/// Namespace of ferrolb's objects in the lab.
pub const SYSTEM_NAMESPACE: &str = "ferrolb-system";
/// Namespace of the lab's Services.
pub const APP_NAMESPACE: &str = "default";
/// Node label the lab sets: `a` on nodes 1 and 2, `b` on node 3 (for selector tests).
pub const RACK_LABEL: &str = "lab.ferrolb.io/rack";
/// The controller's Lease.
pub const LEASE_NAME: &str = "ferrolb-controller";
/// Generous default deadline for waits (the machine may be loaded).
pub const DEADLINE: Duration = Duration::from_secs(30);

/// The speaker's malloc tuning, as the chart's DaemonSet sets it in `GLIBC_TUNABLES`.
pub const SPEAKER_MALLOC_TUNABLES: &str = "glibc.malloc.mmap_threshold=131072";

/// How to build a lab.
#[derive(Clone, Debug)]
pub struct LabConfig {
    /// Router software.
    pub router: RouterKind,
    /// Number of nodes (each runs a speaker).
    pub nodes: usize,
    /// Controller replicas.
    pub controllers: usize,
    /// Namespace name prefix; default unique per process and call.
    pub prefix: Option<String>,
    /// State directory (logs, configs, kubeconfigs); default `$TMPDIR/<prefix>`.
    pub dir: Option<PathBuf>,
    /// The router's MD5 port password.
    pub md5_password: String,
    /// Run `cargo build` for the binaries first (see [`crate::bins`]).
    pub build: bool,
}

impl Default for LabConfig {
    fn default() -> Self {
        LabConfig {
            router: RouterKind::Bird,
            nodes: 3,
            controllers: 2,
            prefix: None,
            dir: None,
            md5_password: "ferrolb-lab-md5".into(),
            build: true,
        }
    }
}

/// A running lab.
#[derive(Debug)]
pub struct Lab {
    /// The configuration it was built from.
    pub cfg: LabConfig,
    /// State directory.
    pub dir: PathBuf,
    /// Kubeconfig for this process and the user's kubectl.
    pub kubeconfig: PathBuf,
    /// Kubeconfig for processes inside the lab.
    pub lab_kubeconfig: PathBuf,
    /// The cluster client and helpers.
    pub cluster: Cluster,
    /// The upstream router.
    pub router: Router,
    bins: Binaries,
    speakers: Vec<Option<Proc>>,
    controllers: Vec<Option<Proc>>,
    /// The API server (dropped after the processes, before the namespaces).
    pub api: ApiServer,
    /// The namespaces (dropped last).
    pub topo: Topology,
}

/// State directories of this process's labs, removed by the signal handler.
static LIVE_DIRS: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

/// Fails with a clear message when the lab cannot run here (not root, a router missing).
pub fn check_requirements(router: RouterKind) -> Result<(), Error> {
    if !crate::sys::is_root() {
        return Err(Error::Missing(
            "the lab needs root (network namespaces); run as root, or set FERROLB_E2E_SKIP=1 to skip".into(),
        ));
    }
    for p in router.programs().iter().chain(&["ip", "sysctl"]) {
        if crate::sys::find_program(p).is_none() {
            return Err(Error::Missing(format!(
                "{p} is not installed: run scripts/install-deps.sh as root (or set FERROLB_E2E_SKIP=1)"
            )));
        }
    }
    Ok(())
}

impl Lab {
    /// Builds and starts everything; the ferrolb configuration (pools, peers,
    /// advertisements) is left to the caller.
    pub async fn start(cfg: LabConfig) -> Result<Lab, Error> {
        check_requirements(cfg.router)?;
        topology::sweep_stale_test_namespaces();
        let bins = tokio::task::spawn_blocking({
            let build = cfg.build;
            move || bins::locate(build)
        })
        .await
        .map_err(|e| Error::Process(e.to_string()))??;
        let prefix = cfg.prefix.clone().unwrap_or_else(topology::unique_prefix);
        let dir = cfg
            .dir
            .clone()
            .unwrap_or_else(|| std::env::temp_dir().join(&prefix));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::Process(format!("{}: {e}", dir.display())))?;
        if cfg.dir.is_none()
            && let Ok(mut dirs) = LIVE_DIRS.lock()
        {
            dirs.push(dir.clone());
        }
        let topo = Topology::create(&prefix, cfg.nodes).await?;
        let api = ApiServer::start(&topo.core(), &bins::crds_dir())?;
        let kubeconfig = dir.join("kubeconfig");
        let lab_kubeconfig = dir.join("kubeconfig-lab");
        ApiServer::write_kubeconfig(&api.local_url, &kubeconfig)?;
        ApiServer::write_kubeconfig(&api.lab_url, &lab_kubeconfig)?;
        let cluster = Cluster::new(api.client().await?);
        cluster.namespace(SYSTEM_NAMESPACE).await?;
        cluster.namespace(APP_NAMESPACE).await?;
        for i in 1..=cfg.nodes {
            let rack = if i <= 2 { "a" } else { "b" };
            let labels = BTreeMap::from([(RACK_LABEL.to_owned(), rack.to_owned())]);
            cluster.create_node(i, &labels).await?;
        }
        let router_dir = dir.join("router");
        std::fs::create_dir_all(&router_dir)
            .map_err(|e| Error::Process(format!("{}: {e}", router_dir.display())))?;
        let router =
            Router::start(cfg.router, &topo.router(), &router_dir, &cfg.md5_password).await?;
        let mut lab = Lab {
            speakers: (0..cfg.nodes).map(|_| None).collect(),
            controllers: (0..cfg.controllers).map(|_| None).collect(),
            cfg,
            dir,
            kubeconfig,
            lab_kubeconfig,
            cluster,
            router,
            bins,
            api,
            topo,
        };
        for r in 0..lab.controllers.len() {
            lab.start_controller(r)?;
        }
        for i in 1..=lab.cfg.nodes {
            lab.start_speaker(i)?;
        }
        Ok(lab)
    }

    /// Controller replica `r`'s identity (`controller-a`, `controller-b`, ...).
    pub fn controller_identity(r: usize) -> String {
        let letter = char::from(b'a' + u8::try_from(r % 26).unwrap_or(0));
        format!("controller-{letter}")
    }

    /// Starts controller replica `r` (0-based) in the core namespace.
    pub fn start_controller(&mut self, r: usize) -> Result<(), Error> {
        let id = Self::controller_identity(r);
        let bin = self.bins.controller.to_string_lossy().into_owned();
        let spawn = Spawn::new(
            &id,
            &self.topo.core(),
            &[
                &bin,
                "--metrics-addr",
                "127.0.0.1:0",
                "--identity",
                &id,
                "--lease-namespace",
                SYSTEM_NAMESPACE,
                // Short leases so a replica that is gone is replaced in seconds.
                "--lease-duration",
                "6s",
                "--renew-deadline",
                "4s",
                "--retry-period",
                "1s",
            ],
            &self.dir.join(format!("{id}.log")),
        )
        .env("KUBECONFIG", &self.lab_kubeconfig)
        .env("POD_NAMESPACE", SYSTEM_NAMESPACE);
        let proc = spawn.start()?;
        if let Some(slot) = self.controllers.get_mut(r) {
            *slot = Some(proc);
        }
        Ok(())
    }

    /// Stops controller replica `r` with `sig` and waits for it to exit.
    pub async fn stop_controller(&mut self, r: usize, sig: Signal) -> Result<(), Error> {
        if let Some(mut p) = self.controllers.get_mut(r).and_then(Option::take) {
            p.stop(sig, DEADLINE).await?;
        }
        Ok(())
    }

    /// Starts node `i`'s speaker (1-based) in its namespace.
    pub fn start_speaker(&mut self, i: usize) -> Result<(), Error> {
        let name = node_name(i);
        let bin = self.bins.speaker.to_string_lossy().into_owned();
        let spawn = Spawn::new(
            &format!("speaker {name}"),
            &self.topo.node(i),
            &[
                &bin,
                "--node-name",
                &name,
                "--metrics-addr",
                "127.0.0.1:7473",
                "--namespace",
                SYSTEM_NAMESPACE,
            ],
            &self.dir.join(format!("speaker-{name}.log")),
        )
        .env("KUBECONFIG", &self.lab_kubeconfig)
        .env("RUST_LOG", "info")
        // As the chart's DaemonSet sets it (see charts/ferrolb/templates/speaker.yaml).
        .env("GLIBC_TUNABLES", SPEAKER_MALLOC_TUNABLES);
        let proc = spawn.start()?;
        if let Some(slot) = self.speakers.get_mut(i - 1) {
            *slot = Some(proc);
        }
        Ok(())
    }

    /// Node `i`'s speaker process, if started.
    pub fn speaker(&self, i: usize) -> Option<&Proc> {
        self.speakers
            .get(i.wrapping_sub(1))
            .and_then(Option::as_ref)
    }

    /// Sends `sig` to node `i`'s speaker without waiting (SIGSTOP/SIGCONT freeze and thaw).
    pub fn signal_speaker(&self, i: usize, sig: Signal) -> Result<(), Error> {
        match self.speaker(i) {
            Some(p) => p.signal(sig),
            None => Err(Error::Process(format!("no speaker on node-{i}"))),
        }
    }

    /// Stops node `i`'s speaker with `sig` and waits until it has exited.
    pub async fn stop_speaker(&mut self, i: usize, sig: Signal) -> Result<(), Error> {
        if let Some(mut p) = self
            .speakers
            .get_mut(i.wrapping_sub(1))
            .and_then(Option::take)
        {
            p.stop(sig, DEADLINE).await?;
        }
        Ok(())
    }

    /// Applies every example in `charts/ferrolb/examples` (demo pool, peer, advertisement).
    pub async fn apply_examples(&self) -> Result<(), Error> {
        let dir = bins::examples_dir();
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map_err(|e| Error::Api(format!("{}: {e}", dir.display())))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
            .collect();
        files.sort();
        for f in files {
            let text = std::fs::read_to_string(&f)
                .map_err(|e| Error::Api(format!("{}: {e}", f.display())))?;
            self.cluster.apply_yaml(&text).await?;
        }
        Ok(())
    }

    /// Node indices whose path for `prefix` arrived on `port`.
    pub async fn next_hops(&self, prefix: &str, port: Port) -> Result<BTreeSet<usize>, Error> {
        Ok(self
            .router
            .paths(prefix)
            .await?
            .iter()
            .filter_map(RoutePath::node)
            .filter(|(p, _)| *p == port)
            .map(|(_, n)| n)
            .collect())
    }

    /// Waits until the router's next hops for `prefix` on `port` are exactly the nodes in
    /// `nodes`; returns how long that took.
    pub async fn wait_next_hops(
        &self,
        prefix: &str,
        port: Port,
        nodes: &[usize],
    ) -> Result<Duration, Error> {
        let want: BTreeSet<usize> = nodes.iter().copied().collect();
        let start = Instant::now();
        let got = wait_until(
            &format!("router next hops for {prefix} via {port:?} to be nodes {want:?}"),
            DEADLINE,
            Duration::from_millis(10),
            || async { Ok((self.next_hops(prefix, port).await? == want).then_some(())) },
        )
        .await;
        match got {
            Ok(()) => Ok(start.elapsed()),
            Err(e) => {
                let now = self.router.paths(prefix).await.unwrap_or_default();
                Err(Error::Router(format!("{e}; router holds {now:?}")))
            }
        }
    }

    /// Waits until the router holds a path for `prefix` on `port` satisfying `check`
    /// (for every node listed); returns the paths.
    pub async fn wait_paths(
        &self,
        what: &str,
        prefix: &str,
        check: impl Fn(&[RoutePath]) -> bool,
    ) -> Result<Vec<RoutePath>, Error> {
        let r = wait_until(what, DEADLINE, Duration::from_millis(20), || async {
            let paths = self.router.paths(prefix).await?;
            Ok(check(&paths).then_some(paths))
        })
        .await;
        match r {
            Ok(p) => Ok(p),
            Err(e) => {
                let now = self.router.paths(prefix).await.unwrap_or_default();
                Err(Error::Router(format!("{e}; router holds {now:?}")))
            }
        }
    }

    /// Waits until the router has `n` established sessions.
    pub async fn wait_sessions(&self, n: usize) -> Result<(), Error> {
        wait_until(
            &format!("{n} established BGP sessions at the router"),
            DEADLINE,
            Duration::from_millis(20),
            || async {
                let s = self.router.sessions().await?;
                Ok((s.iter().filter(|s| s.established).count() == n).then_some(()))
            },
        )
        .await
    }

    /// Checks that the router's routes and sessions do not change at all for `quiet`
    /// (polled every 200 ms); returns the snapshot.
    pub async fn assert_router_quiet(&self, quiet: Duration) -> Result<Snapshot, Error> {
        let before = self.router.snapshot().await?;
        let start = Instant::now();
        while start.elapsed() < quiet {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let now = self.router.snapshot().await?;
            if now != before {
                return Err(Error::Router(format!(
                    "the router changed after {:?}:\nbefore {before:?}\nnow    {now:?}",
                    start.elapsed()
                )));
            }
        }
        Ok(before)
    }

    /// The `/32` prefix of a Service IP.
    pub fn host_prefix(ip: IpAddr) -> String {
        match ip {
            IpAddr::V4(v4) => format!("{v4}/32"),
            IpAddr::V6(v6) => format!("{v6}/128"),
        }
    }

    /// The lab's state directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Log tails of every process, for failure reports.
    pub fn logs(&self, lines: usize) -> String {
        let mut s = String::new();
        for p in self.controllers.iter().chain(&self.speakers).flatten() {
            s += &format!(
                "--- {} ({})\n{}\n",
                p.name,
                p.log.display(),
                p.log_tail(lines)
            );
        }
        s += &format!("--- router\n{}\n", self.router.log_tail(lines));
        s
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "lab {} failed; state kept in {}\n{}",
                self.topo.prefix,
                self.dir.display(),
                self.logs(15)
            );
        }
        for p in self
            .speakers
            .iter_mut()
            .chain(&mut self.controllers)
            .flatten()
        {
            p.kill();
        }
        self.topo.destroy();
        if let Ok(mut dirs) = LIVE_DIRS.lock() {
            dirs.retain(|d| *d != self.dir);
        }
        if !std::thread::panicking() && self.cfg.dir.is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// On SIGINT, SIGTERM or SIGHUP: kill everything in this process's lab namespaces, delete
/// them and the labs' state directories, and exit 130. Installed once per process; the tests call it so a Ctrl-C during
/// `cargo test` or a nextest timeout leaves nothing behind.
pub fn install_signal_cleanup() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = std::thread::Builder::new()
            .name("lab-signals".into())
            .spawn(|| {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                rt.block_on(async {
                    use tokio::signal::unix::{SignalKind, signal};
                    let (Ok(mut int), Ok(mut term), Ok(mut hup)) = (
                        signal(SignalKind::interrupt()),
                        signal(SignalKind::terminate()),
                        signal(SignalKind::hangup()),
                    ) else {
                        return;
                    };
                    tokio::select! {
                        _ = int.recv() => {}
                        _ = term.recv() => {}
                        _ = hup.recv() => {}
                    }
                    topology::destroy_all_live();
                    if let Ok(dirs) = LIVE_DIRS.lock() {
                        for d in dirs.iter() {
                            let _ = std::fs::remove_dir_all(d);
                        }
                    }
                    std::process::exit(130);
                });
            });
    });
}

/// The lab for one end-to-end test: `None` (the test passes without running) only when
/// `FERROLB_E2E_SKIP=1`; otherwise a lab, or a panic saying why it cannot run here (no
/// root, no router), so a machine that cannot run the tests never passes them silently.
#[allow(clippy::panic)]
pub async fn for_test(router: RouterKind) -> Option<Lab> {
    if std::env::var("FERROLB_E2E_SKIP").is_ok_and(|v| v == "1") {
        eprintln!("FERROLB_E2E_SKIP=1: end-to-end test skipped");
        return None;
    }
    install_signal_cleanup();
    let cfg = LabConfig {
        router,
        ..LabConfig::default()
    };
    match Lab::start(cfg).await {
        Ok(lab) => Some(lab),
        Err(e) => panic!(
            "cannot start the {} lab: {e}\n(set FERROLB_E2E_SKIP=1 to skip the end-to-end tests)",
            router.name()
        ),
    }
}
