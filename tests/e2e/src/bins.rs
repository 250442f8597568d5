//! Where the `ferrolb-speaker` and `ferrolb-controller` binaries under test come from.
//!
//! Order: `$FERROLB_BIN_DIR` if set; otherwise the cargo profile directory this program
//! was built into (`target/debug` for `target/debug/deps/e2e-HASH` or
//! `target/debug/ferrolb-lab`). Unless `build` is false or `$FERROLB_E2E_NO_BUILD=1`,
//! `cargo build` brings them up to date there first (a no-op after
//! `cargo nextest run --workspace`, which builds every binary; under a plain
//! `cargo test -p ferrolb-e2e` it builds the two binaries once per test process).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::Error;

/// The binaries the lab runs.
#[derive(Clone, Debug)]
pub struct Binaries {
    /// `ferrolb-speaker`.
    pub speaker: PathBuf,
    /// `ferrolb-controller`.
    pub controller: PathBuf,
}

/// The workspace root (this crate lives in `tests/e2e`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The CRDs the API server starts with.
pub fn crds_dir() -> PathBuf {
    workspace_root().join("charts/ferrolb/crds")
}

/// The example configuration (pool, peer, advertisement).
pub fn examples_dir() -> PathBuf {
    workspace_root().join("charts/ferrolb/examples")
}

/// Finds (and, with `build`, first builds) the binaries. The build runs once per process.
pub fn locate(build: bool) -> Result<Binaries, Error> {
    static ONCE: OnceLock<Result<Binaries, String>> = OnceLock::new();
    ONCE.get_or_init(|| find(build).map_err(|e| e.to_string()))
        .clone()
        .map_err(Error::Missing)
}

fn find(build: bool) -> Result<Binaries, Error> {
    let dir = match std::env::var_os("FERROLB_BIN_DIR") {
        Some(d) => PathBuf::from(d),
        None => {
            let dir = profile_dir()?;
            let no_build = std::env::var("FERROLB_E2E_NO_BUILD").is_ok_and(|v| v == "1");
            if build && !no_build {
                cargo_build(&dir)?;
            }
            dir
        }
    };
    let bins = Binaries {
        speaker: dir.join("ferrolb-speaker"),
        controller: dir.join("ferrolb-controller"),
    };
    for b in [&bins.speaker, &bins.controller] {
        if !b.exists() {
            return Err(Error::Missing(format!(
                "{} not found (build it with `cargo build -p ferrolb-speaker -p ferrolb-controller`, \
                 or point FERROLB_BIN_DIR at a directory holding both)",
                b.display()
            )));
        }
    }
    Ok(bins)
}

/// `target/<profile>` of the running executable.
fn profile_dir() -> Result<PathBuf, Error> {
    let exe = std::env::current_exe().map_err(|e| Error::Missing(e.to_string()))?;
    let mut dir = exe
        .parent()
        .ok_or_else(|| Error::Missing("executable has no directory".into()))?
        .to_path_buf();
    if dir
        .file_name()
        .is_some_and(|n| n == "deps" || n == "examples")
    {
        dir.pop();
    }
    Ok(dir)
}

fn cargo_build(profile_dir: &Path) -> Result<(), Error> {
    let parent = profile_dir
        .parent()
        .ok_or_else(|| Error::Missing("no target directory".into()))?;
    // `target/<profile>`, or `target/<triple>/<profile>` for a `--target` build; cargo
    // marks the target directory's root with CACHEDIR.TAG.
    let (target_dir, triple) = match parent.parent() {
        Some(root)
            if !parent.join("CACHEDIR.TAG").exists() && root.join("CACHEDIR.TAG").exists() =>
        {
            (root, parent.file_name().and_then(|n| n.to_str()))
        }
        _ => (parent, None),
    };
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => "dev".to_owned(),
        Some(p) => p.to_owned(),
    };
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = std::process::Command::new(cargo);
    cmd.current_dir(workspace_root())
        .env("CARGO_TARGET_DIR", target_dir)
        .args([
            "build",
            "--quiet",
            "--profile",
            &profile,
            "-p",
            "ferrolb-speaker",
            "-p",
            "ferrolb-controller",
            "--bin",
            "ferrolb-speaker",
            "--bin",
            "ferrolb-controller",
        ]);
    if let Some(triple) = triple {
        cmd.args(["--target", triple]);
    }
    let out = cmd
        .output()
        .map_err(|e| Error::Missing(format!("running cargo: {e}")))?;
    if !out.status.success() {
        return Err(Error::Missing(format!(
            "cargo build of ferrolb-speaker/ferrolb-controller failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(())
}
