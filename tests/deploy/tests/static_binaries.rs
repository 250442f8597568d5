//! The release static binaries need nothing from their image: each runs `--help` and
//! `--version` in an empty root directory holding only itself (what `FROM scratch` gives it).
//!
//! The binaries come from `docker/build-static.sh` (README command 2 runs it before the
//! tests): `<target>/x86_64-unknown-linux-gnu/release/`, or `FERROLB_STATIC_DIR`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use ferrolb_deploy_tests::paths;

const BINARIES: [&str; 2] = ["ferrolb-controller", "ferrolb-speaker"];

fn static_dir() -> PathBuf {
    std::env::var_os("FERROLB_STATIC_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| paths::target_dir().join("x86_64-unknown-linux-gnu/release"))
}

/// Runs `/NAME ARG` with `root` as `/`: chroot when we are root, else a user namespace.
fn run_in_root(root: &Path, name: &str, arg: &str) -> std::process::Output {
    let exe = format!("/{name}");
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    let mut cmd = if is_root {
        let mut c = Command::new(on_path("chroot"));
        c.arg(root).arg(&exe);
        c
    } else {
        let mut c = Command::new(on_path("unshare"));
        c.args(["--user", "--map-root-user", "--root"])
            .arg(root)
            .arg(&exe);
        c
    };
    cmd.arg(arg).env_clear().output().unwrap()
}

/// The absolute path of a program on this process's `PATH` (the child runs with an empty
/// environment, so it could not search one itself).
fn on_path(name: &str) -> PathBuf {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{name} not found"))
}

#[test]
fn static_binaries_run_in_an_empty_root() {
    let dir = static_dir();
    let mut report = Vec::new();
    for name in BINARIES {
        let bin = dir.join(name);
        assert!(
            bin.is_file(),
            "{} is missing: run docker/build-static.sh first (same CARGO_TARGET_DIR)",
            bin.display()
        );
        let root = tempfile::tempdir().unwrap();
        std::fs::copy(&bin, root.path().join(name)).unwrap();
        // The root really holds nothing else: no loader, no libc, no /etc.
        let entries: Vec<_> = std::fs::read_dir(root.path()).unwrap().collect();
        assert_eq!(entries.len(), 1);

        let help = run_in_root(root.path(), name, "--help");
        assert!(
            help.status.success(),
            "{name} --help in an empty root: {:?}\n{}",
            help.status,
            String::from_utf8_lossy(&help.stderr)
        );
        assert!(String::from_utf8_lossy(&help.stdout).contains("--metrics-addr"));
        let version = run_in_root(root.path(), name, "--version");
        assert!(
            version.status.success(),
            "{name} --version: {:?}",
            version.status
        );
        let v = String::from_utf8_lossy(&version.stdout);
        assert_eq!(v.trim(), format!("{name} {}", env!("CARGO_PKG_VERSION")));

        // A dynamically linked binary names an interpreter (PT_INTERP) the empty root lacks.
        let elf = std::fs::read(&bin).unwrap();
        assert!(!has_interpreter(&elf), "{name} asks for a dynamic loader");
        let size = std::fs::metadata(&bin).unwrap().len();
        report.push(format!("{name}: {:.1} MiB", size as f64 / 1048576.0));
    }
    println!("static release binaries: {}", report.join(", "));
}

/// Whether an ELF64 little-endian file has a `PT_INTERP` program header.
fn has_interpreter(elf: &[u8]) -> bool {
    assert_eq!(&elf[..4], b"\x7fELF", "not an ELF file");
    let u16_at = |o: usize| usize::from(u16::from_le_bytes([elf[o], elf[o + 1]]));
    let phoff = usize::try_from(u64::from_le_bytes(elf[0x20..0x28].try_into().unwrap())).unwrap();
    let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
    (0..phnum).any(|i| {
        let o = phoff + i * phentsize;
        u32::from_le_bytes(elf[o..o + 4].try_into().unwrap()) == 3
    })
}
