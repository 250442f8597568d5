//! The `crdgen` binary: writes the files, and `--check` names stale ones.

// Test helpers outside `#[test]` functions may unwrap too: a panic is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

const CRDGEN: &str = env!("CARGO_BIN_EXE_crdgen");

fn run(args: &[&str]) -> (bool, String) {
    let out = Command::new(CRDGEN).args(args).output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn writes_then_checks_then_names_the_stale_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();

    let (ok, text) = run(&["--check", "--out", d]);
    assert!(!ok, "check of an empty dir must fail:\n{text}");
    assert!(
        text.contains("ipaddresspools.ferrolb.io.yaml is missing"),
        "{text}"
    );

    let (ok, text) = run(&["--out", d]);
    assert!(ok, "{text}");
    let mut names: Vec<String> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "bgpadvertisements.ferrolb.io.yaml",
            "bgppeers.ferrolb.io.yaml",
            "ipaddresspools.ferrolb.io.yaml",
            "speakerstatuses.ferrolb.io.yaml"
        ]
    );

    let (ok, text) = run(&["--check", "--out", d]);
    assert!(ok, "fresh output must pass --check:\n{text}");

    let peers = dir.path().join("bgppeers.ferrolb.io.yaml");
    let edited = std::fs::read_to_string(&peers)
        .unwrap()
        .replace("bgpp", "peer");
    std::fs::write(&peers, edited).unwrap();
    let (ok, text) = run(&["--check", &format!("--out={d}")]);
    assert!(!ok, "edited file must fail --check");
    assert!(text.contains("bgppeers.ferrolb.io.yaml is stale"), "{text}");
    assert!(
        !text.contains("ipaddresspools"),
        "only the edited file is named:\n{text}"
    );
    assert!(
        text.contains("cargo run -p ferrolb-shared --bin crdgen"),
        "{text}"
    );

    // Regenerating repairs it and removes leftovers of removed CRDs.
    std::fs::write(dir.path().join("old.ferrolb.io.yaml"), "x").unwrap();
    std::fs::write(dir.path().join("README.md"), "kept").unwrap();
    let (ok, text) = run(&["--out", d]);
    assert!(ok, "{text}");
    assert!(!dir.path().join("old.ferrolb.io.yaml").exists());
    assert!(dir.path().join("README.md").exists());
    assert!(run(&["--check", "--out", d]).0);
}

#[test]
fn rejects_unknown_arguments() {
    let (ok, text) = run(&["--frobnicate"]);
    assert!(!ok);
    assert!(text.contains("usage: crdgen"), "{text}");
}
