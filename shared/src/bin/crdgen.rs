//! Writes the ferrolb CRDs, rendered from the Rust types, into the Helm chart.
//!
//! ```text
//! cargo run -p ferrolb-shared --bin crdgen              # write charts/ferrolb/crds/*.yaml
//! cargo run -p ferrolb-shared --bin crdgen -- --check   # fail if the committed files are stale
//! cargo run -p ferrolb-shared --bin crdgen -- --out DIR # write elsewhere
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use ferrolb_shared::crd::{CRD_FILE_SUFFIX, Drift, crd_drift, render_crd_files};

const USAGE: &str = "usage: crdgen [--out DIR] [--check]\n\
  --out DIR  directory of the CRD files (default: charts/ferrolb/crds of the workspace)\n\
  --check    do not write; exit 1 and name every stale file if DIR differs from the types";

fn default_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/ferrolb/crds");
    // Canonical paths read better in messages; fall back when the directory is not there yet.
    dir.canonicalize().unwrap_or(dir)
}

struct Args {
    out: PathBuf,
    check: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut out = None;
    let mut check = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--check" => check = true,
            "--out" => out = Some(PathBuf::from(args.next().ok_or("--out needs a directory")?)),
            s if s.starts_with("--out=") => out = Some(PathBuf::from(&s["--out=".len()..])),
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Args {
        out: out.unwrap_or_else(default_dir),
        check,
    })
}

fn read_existing(dir: &Path) -> std::io::Result<BTreeMap<String, String>> {
    let mut existing = BTreeMap::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(existing),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(CRD_FILE_SUFFIX) {
            existing.insert(name, std::fs::read_to_string(entry.path())?);
        }
    }
    Ok(existing)
}

fn run(args: &Args) -> Result<bool, String> {
    let files = render_crd_files().map_err(|e| e.to_string())?;
    let dir = &args.out;
    let existing = read_existing(dir).map_err(|e| format!("reading {}: {e}", dir.display()))?;
    let drift = crd_drift(&files, &existing);
    if args.check {
        for d in &drift {
            eprintln!("crdgen: {}: {d}", dir.display());
        }
        if !drift.is_empty() {
            eprintln!("crdgen: run `cargo run -p ferrolb-shared --bin crdgen` to regenerate");
        }
        return Ok(drift.is_empty());
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    for file in &files {
        let path = dir.join(&file.file_name);
        std::fs::write(&path, &file.contents)
            .map_err(|e| format!("writing {}: {e}", path.display()))?;
        println!("wrote {}", path.display());
    }
    for d in &drift {
        if let Drift::Extra(name) = d {
            let path = dir.join(name);
            std::fs::remove_file(&path).map_err(|e| format!("removing {}: {e}", path.display()))?;
            println!("removed {}", path.display());
        }
    }
    Ok(true)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(msg) => {
            if !msg.is_empty() {
                eprintln!("crdgen: {msg}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(msg) => {
            eprintln!("crdgen: {msg}");
            ExitCode::FAILURE
        }
    }
}
