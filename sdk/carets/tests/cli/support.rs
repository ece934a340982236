//! Running the `carets` binary with the cargo target directory the extensions use, so the SDK
//! is not rebuilt for every generated caret.

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

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}
