//! Small system helpers: running commands, entering a network namespace, process state,
//! waiting on a condition with a deadline.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use crate::Error;

/// Runs a command and returns its stdout; a non-zero exit is an error carrying stderr.
pub async fn run(args: &[&str]) -> Result<String, Error> {
    let out = output(args).await?;
    if !out.status.success() {
        return Err(Error::Command {
            command: args.join(" "),
            detail: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs a command and returns whatever it printed, whatever its exit status.
pub async fn output(args: &[&str]) -> Result<Output, Error> {
    let (first, rest) = args.split_first().ok_or_else(|| Error::Command {
        command: String::new(),
        detail: "empty command".into(),
    })?;
    tokio::process::Command::new(first)
        .args(rest)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| Error::Command {
            command: args.join(" "),
            detail: e.to_string(),
        })
}

/// The blocking twin of [`run`], for `Drop` and start-up code outside any runtime.
pub fn run_blocking(args: &[&str]) -> Result<String, Error> {
    let (first, rest) = args.split_first().ok_or_else(|| Error::Command {
        command: String::new(),
        detail: "empty command".into(),
    })?;
    let out = std::process::Command::new(first)
        .args(rest)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| Error::Command {
            command: args.join(" "),
            detail: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(Error::Command {
            command: args.join(" "),
            detail: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Moves the calling thread into network namespace `ns` (as created by `ip netns add`).
/// Threads it creates afterwards inherit the namespace; other threads are unaffected.
pub fn enter_netns(ns: &str) -> Result<(), Error> {
    let path = format!("/run/netns/{ns}");
    let file = std::fs::File::open(&path).map_err(|e| Error::Netns {
        ns: ns.to_owned(),
        detail: e.to_string(),
    })?;
    nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| Error::Netns {
        ns: ns.to_owned(),
        detail: e.to_string(),
    })
}

/// The one-letter state of a process from /proc (R, S, T, Z, ...); `None` once it is gone.
/// PID 1 on some machines reaps late, so `kill -0` is no guide to whether a process runs.
pub fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// Resident set size of a process in KiB, from /proc.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Sends `signal` to `pid`; a process already gone is not an error.
pub fn signal(pid: u32, signal: nix::sys::signal::Signal) -> Result<(), Error> {
    let raw = i32::try_from(pid).map_err(|_| Error::Process(format!("bad pid {pid}")))?;
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(raw), signal) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
        Err(e) => Err(Error::Process(format!("kill -{signal} {pid}: {e}"))),
    }
}

/// Whether the current process runs as root (network namespaces need it).
pub fn is_root() -> bool {
    nix::unistd::Uid::effective().is_root()
}

/// The first of `candidates` that is an executable file, searching `$PATH` and the sbin
/// directories for bare names.
pub fn find_program(name: &str) -> Option<PathBuf> {
    let p = Path::new(name);
    if p.is_absolute() {
        return p.exists().then(|| p.to_path_buf());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|f| f.exists())
}

/// Polls `check` every `every` until it returns `Some`, or fails after `deadline` with
/// `what` and the last `describe()` in the message.
pub async fn wait_until<T, F, Fut>(
    what: &str,
    deadline: Duration,
    every: Duration,
    mut check: F,
) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>, Error>>,
{
    let start = Instant::now();
    let mut last_error = None;
    loop {
        match check().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last_error = Some(e.to_string()),
        }
        if start.elapsed() >= deadline {
            return Err(Error::Timeout {
                what: what.to_owned(),
                after: deadline,
                last_error,
            });
        }
        tokio::time::sleep(every).await;
    }
}
