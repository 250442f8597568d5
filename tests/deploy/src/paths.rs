//! Where the repository, its tools and the built binaries are.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::DeployTestError;

/// The repository root (two levels above this crate).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The chart directory.
pub fn chart_dir() -> PathBuf {
    repo_root().join("charts/ferrolb")
}

/// A tool installed by `scripts/install-deps.sh` into `.tools/bin`, else one on `PATH`.
pub fn tool(name: &str) -> PathBuf {
    let local = repo_root().join(".tools/bin").join(name);
    if local.exists() {
        local
    } else {
        PathBuf::from(name)
    }
}

/// The cargo profile directory the running test was built into (`<target>/debug`): test
/// executables live in its `deps/` subdirectory.
pub fn profile_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().and_then(Path::parent).map(Path::to_path_buf))
        .unwrap_or_else(|| repo_root().join("target/debug"))
}

/// The cargo target directory (`<target>`).
pub fn target_dir() -> PathBuf {
    profile_dir()
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| repo_root().join("target"))
}

/// A workspace binary built in the same profile as the running test. `cargo nextest run
/// --workspace` (README command 2) builds every binary first; alone, run
/// `cargo build -p ferrolb-controller -p ferrolb-speaker -p ferrolb-cli` before these tests.
pub fn workspace_binary(name: &str) -> Result<PathBuf, DeployTestError> {
    let p = profile_dir().join(name);
    if p.is_file() {
        Ok(p)
    } else {
        Err(DeployTestError::Tool {
            tool: name.to_owned(),
            message: format!(
                "{} not built; run `cargo build -p ferrolb-controller -p ferrolb-speaker -p ferrolb-cli` (same CARGO_TARGET_DIR) first",
                p.display()
            ),
        })
    }
}

/// Runs a command, returning stdout; a non-zero exit is an error carrying stderr.
pub fn run(cmd: &mut Command) -> Result<String, DeployTestError> {
    let tool = format!("{:?}", cmd.get_program());
    let out = cmd.output().map_err(|e| DeployTestError::Tool {
        tool: tool.clone(),
        message: e.to_string(),
    })?;
    if !out.status.success() {
        return Err(DeployTestError::Tool {
            tool,
            message: format!(
                "{}\n{}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `helm template` of the chart in namespace `namespace` with the given values files.
pub fn helm_template(
    namespace: &str,
    values: &[&Path],
    include_crds: bool,
) -> Result<String, DeployTestError> {
    let mut cmd = Command::new(tool("helm"));
    cmd.args(["template", "ferrolb"])
        .arg(chart_dir())
        .args(["--namespace", namespace]);
    if include_crds {
        cmd.arg("--include-crds");
    }
    for v in values {
        cmd.arg("-f").arg(v);
    }
    run(&mut cmd)
}
