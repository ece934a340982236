//! Running the `carets` and `symphony` binaries, with the cargo target directory the
//! extensions use so the SDK is not rebuilt for every generated caret.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn shared_target() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir).join("extensions"),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../extensions/target"),
    }
}

pub fn carets(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_carets"))
        .args(args)
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", shared_target())
        .output()
        .unwrap_or_else(|e| panic!("running carets: {e}"))
}

/// The `symphony` binary of this workspace, next to `carets`. `cargo test --workspace` (what
/// `cargo xtask test` runs) builds it before any test runs; a nested `cargo build` here would
/// wait on the lock the outer cargo holds.
fn symphony_exe() -> PathBuf {
    let exe = Path::new(env!("CARGO_BIN_EXE_carets")).with_file_name(format!("symphony{}", std::env::consts::EXE_SUFFIX));
    assert!(exe.is_file(), "{} is missing: run `cargo build -p symphony` or `cargo xtask test`", exe.display());
    exe
}

/// Runs `symphony --home HOME ARGS` in `dir`.
pub fn symphony(home: &Path, args: &[&str], dir: &Path) -> Output {
    Command::new(symphony_exe())
        .arg("--home")
        .arg(home)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("running symphony: {e}"))
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The output of a command that must have succeeded: stdout, and stderr where progress goes.
#[track_caller]
pub fn ok(out: Output) -> (String, String) {
    assert!(out.status.success(), "stdout:\n{}\nstderr:\n{}", text(&out.stdout), text(&out.stderr));
    (text(&out.stdout), text(&out.stderr))
}
