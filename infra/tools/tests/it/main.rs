//! Repository checks: the crate layering, test code kept out of deployed binaries, and the
//! provider table's checklist. One test binary.

mod benches;
mod layers;
mod providers;

use std::path::PathBuf;

/// The workspace root.
pub(crate) fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs cargo in the workspace root; its stdout, or a panic with its stderr.
pub(crate) fn cargo(args: &[&str]) -> String {
    let output =
        std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(args)
            .current_dir(root())
            .output()
            .expect("run cargo");
    assert!(
        output.status.success(),
        "cargo {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("cargo prints UTF-8")
}
