//! The shipped `tally` caret's sources as a crate of their own, as an author would have them
//! on disk; shared by the `symphony dev` test and the hot-swap benchmark.

use std::path::{Path, PathBuf};

/// `extensions/` of this checkout.
pub fn extensions() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../extensions")
}

/// The cargo target directory the extensions are built in, shared so the SDK compiles once.
pub fn shared_target() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir).join("extensions"),
        None => extensions().join("target"),
    }
}

/// Writes tally's `src/lib.rs` and `Symphony.toml` into `dir` with a standalone `Cargo.toml`.
pub fn tally_crate(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir.join("src")).unwrap();
    let tally = extensions().join("tally");
    std::fs::copy(tally.join("src/lib.rs"), dir.join("src/lib.rs")).unwrap();
    std::fs::copy(tally.join("Symphony.toml"), dir.join("Symphony.toml")).unwrap();
    let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk/caret").canonicalize().unwrap();
    std::fs::write(
        dir.join("Cargo.toml"),
        format!(
            r#"[package]
name = "tally"
version = "0.1.0"
edition = "2024"

[lib]
crate-type = ["cdylib", "rlib"]

[dependencies]
symphony-caret = {{ path = {sdk:?}, features = ["operator"] }}
serde = {{ version = "1", features = ["derive"] }}
serde_json = "1"

[workspace]

[profile.release]
opt-level = "s"
lto = true
codegen-units = 1
strip = true
debug = false
"#,
            sdk = sdk.display().to_string()
        ),
    )
    .unwrap();
    dir.to_path_buf()
}
