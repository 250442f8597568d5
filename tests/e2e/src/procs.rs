//! Processes started inside a namespace, each logging to its own file, killed by pid when
//! dropped.

use std::ffi::OsString;
use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::Error;

/// One process running inside a network namespace.
#[derive(Debug)]
pub struct Proc {
    /// A short name for messages (`speaker node-1`).
    pub name: String,
    /// Its combined stdout/stderr.
    pub log: PathBuf,
    child: Child,
    exited: bool,
}

/// What to start.
#[derive(Debug, Clone)]
pub struct Spawn {
    /// Name for messages.
    pub name: String,
    /// Namespace to run in.
    pub netns: String,
    /// Program and arguments.
    pub argv: Vec<OsString>,
    /// Extra environment.
    pub env: Vec<(String, OsString)>,
    /// Log file.
    pub log: PathBuf,
}

impl Spawn {
    /// `argv` in `netns`, logging to `log`.
    pub fn new(name: &str, netns: &str, argv: &[&str], log: &Path) -> Spawn {
        Spawn {
            name: name.to_owned(),
            netns: netns.to_owned(),
            argv: argv.iter().map(OsString::from).collect(),
            env: Vec::new(),
            log: log.to_path_buf(),
        }
    }

    /// Adds an environment variable.
    pub fn env(mut self, key: &str, value: impl Into<OsString>) -> Spawn {
        self.env.push((key.to_owned(), value.into()));
        self
    }

    /// Starts it. The process gets its own process group (a Ctrl-C at the terminal reaches
    /// only the lab, which stops everything in order) and, where `setpriv` exists, dies
    /// with its parent even when the parent is killed outright.
    pub fn start(&self) -> Result<Proc, Error> {
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| Error::Process(format!("{}: {e}", self.log.display())))?;
        let err = log
            .try_clone()
            .map_err(|e| Error::Process(format!("{}: {e}", self.log.display())))?;
        let mut cmd = if crate::sys::find_program("setpriv").is_some() {
            let mut c = Command::new("setpriv");
            c.args(["--pdeathsig", "KILL", "--", "ip", "netns", "exec"]);
            c
        } else {
            let mut c = Command::new("ip");
            c.args(["netns", "exec"]);
            c
        };
        // `ip netns exec` (and setpriv) exec the program: the child's pid is the program's.
        cmd.arg(&self.netns)
            .args(&self.argv)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .process_group(0);
        let child = cmd
            .spawn()
            .map_err(|e| Error::Process(format!("starting {}: {e}", self.name)))?;
        Ok(Proc {
            name: self.name.clone(),
            log: self.log.clone(),
            child,
            exited: false,
        })
    }
}

impl Proc {
    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether it still runs (a stopped process counts as running).
    pub fn running(&mut self) -> bool {
        if self.exited {
            return false;
        }
        match self.child.try_wait() {
            Ok(None) => true,
            _ => {
                self.exited = true;
                false
            }
        }
    }

    /// Sends a signal.
    pub fn signal(&self, sig: Signal) -> Result<(), Error> {
        if self.exited {
            return Ok(());
        }
        crate::sys::signal(self.pid(), sig)
    }

    /// Sends `sig` and waits (without blocking the runtime) until the process has exited.
    pub async fn stop(&mut self, sig: Signal, deadline: Duration) -> Result<(), Error> {
        self.signal(sig)?;
        let start = Instant::now();
        while self.running() {
            if start.elapsed() > deadline {
                return Err(Error::Process(format!(
                    "{} did not exit within {deadline:?} of {sig}",
                    self.name
                )));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(())
    }

    /// The last `lines` lines of its log, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.log, lines)
    }

    /// Kills it (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        if !self.exited {
            let _ = self.child.kill();
            let _ = self.child.wait();
            self.exited = true;
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The last `lines` lines of a file.
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
