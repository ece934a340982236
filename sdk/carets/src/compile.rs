//! Compiling a caret crate for wasm32-wasip2 in release: the target installed when missing,
//! the component's path found from the crate's `Cargo.toml`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The target every caret is built for.
pub const TARGET: &str = "wasm32-wasip2";

/// Why a caret did not compile.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    #[error("{path}: {reason}")]
    CargoToml { path: PathBuf, reason: String },
    #[error("`rustup target add {TARGET}` failed; install the target and try again")]
    Target,
    #[error("running {program}: {source}")]
    Spawn { program: String, source: std::io::Error },
    /// cargo's own diagnostics, when they were captured (else they went to the terminal).
    #[error("cargo build failed{}", if .diagnostics.is_empty() { " (its errors are above)".to_owned() } else { format!(":\n{}", .diagnostics) })]
    Cargo { diagnostics: String },
    #[error("reading {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
}

/// A compiled component.
#[derive(Debug)]
pub struct Compiled {
    /// Where cargo left it.
    pub path: PathBuf,
    pub bytes: Vec<u8>,
}

#[derive(serde::Deserialize)]
struct CargoToml {
    package: CargoPackage,
    #[serde(default)]
    lib: Option<LibSection>,
}

#[derive(serde::Deserialize)]
struct CargoPackage {
    name: String,
}

#[derive(serde::Deserialize)]
struct LibSection {
    name: Option<String>,
}

/// Installs the wasm32-wasip2 target with rustup when it is missing (no rustup: assume the
/// toolchain has it; cargo will say otherwise).
pub fn ensure_target() -> Result<(), CompileError> {
    let Ok(out) = Command::new("rustup").args(["target", "list", "--installed"]).output() else {
        return Ok(());
    };
    if String::from_utf8_lossy(&out.stdout).lines().any(|l| l.trim() == TARGET) {
        return Ok(());
    }
    eprintln!("installing the {TARGET} target (rustup target add {TARGET})");
    let status = Command::new("rustup")
        .args(["target", "add", TARGET])
        .status()
        .map_err(|source| CompileError::Spawn { program: "rustup".to_owned(), source })?;
    if !status.success() {
        return Err(CompileError::Target);
    }
    Ok(())
}

/// The file name cargo gives the crate's component.
fn artifact_name(dir: &Path) -> Result<String, CompileError> {
    let path = dir.join("Cargo.toml");
    let text = std::fs::read_to_string(&path).map_err(|source| CompileError::Read { path: path.clone(), source })?;
    let cargo: CargoToml = toml::from_str(&text).map_err(|e| CompileError::CargoToml { path, reason: e.to_string() })?;
    let lib = cargo.lib.and_then(|l| l.name).unwrap_or_else(|| cargo.package.name.replace('-', "_"));
    Ok(format!("{lib}.wasm"))
}

/// Runs `cargo build --release --target wasm32-wasip2` in `dir`. With `capture`, cargo's
/// diagnostics are kept for the error (for tools that report rather than stream them).
pub fn compile(dir: &Path, capture: bool) -> Result<Compiled, CompileError> {
    let artifact = artifact_name(dir)?;
    ensure_target()?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut cmd = Command::new(&cargo);
    cmd.current_dir(dir).args(["build", "--release", "--target", TARGET]);
    let (ok, diagnostics) = if capture {
        let out = cmd
            .args(["--quiet", "--color", "never"])
            .stdin(Stdio::null())
            .output()
            .map_err(|source| CompileError::Spawn { program: cargo.clone(), source })?;
        (out.status.success(), String::from_utf8_lossy(&out.stderr).trim().to_owned())
    } else {
        let status = cmd.status().map_err(|source| CompileError::Spawn { program: cargo.clone(), source })?;
        (status.success(), String::new())
    };
    if !ok {
        return Err(CompileError::Cargo { diagnostics });
    }
    let target_dir = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| dir.join("target"), PathBuf::from);
    let path = target_dir.join(TARGET).join("release").join(artifact);
    let bytes = std::fs::read(&path).map_err(|source| CompileError::Read { path: path.clone(), source })?;
    Ok(Compiled { path, bytes })
}
