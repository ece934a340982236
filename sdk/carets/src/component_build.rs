//! `carets build`: compiles a caret for wasm32-wasip2 in release and checks the component
//! against its manifest — world, API version, and that every import is declared.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;
use symphony_kernel::inspect::{self, World};
use symphony_kernel::manifest::{Manifest, MANIFEST_FILE};
use symphony_progress::{self as progress, Steps};

const TARGET: &str = "wasm32-wasip2";

fn ensure_target() -> Result<()> {
    let Ok(out) = Command::new("rustup").args(["target", "list", "--installed"]).output() else {
        return Ok(());
    };
    if String::from_utf8_lossy(&out.stdout).lines().any(|l| l.trim() == TARGET) {
        return Ok(());
    }
    eprintln!("installing the {TARGET} target (rustup target add {TARGET})");
    let status = Command::new("rustup").args(["target", "add", TARGET]).status().context("running rustup")?;
    if !status.success() {
        bail!("`rustup target add {TARGET}` failed; install the target and run `carets build` again");
    }
    Ok(())
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

/// Builds the caret in `dir`, validates it, writes it where its manifest says, and returns the
/// manifest it was checked against.
pub fn build(dir: &Path) -> Result<Manifest> {
    let manifest_path = dir.join(MANIFEST_FILE);
    let manifest = Manifest::load(&manifest_path)?;
    let steps = Steps::new(progress::Mode::detect(false), "build", 3);
    let cargo_text = std::fs::read_to_string(dir.join("Cargo.toml")).with_context(|| format!("{}/Cargo.toml", dir.display()))?;
    let cargo: CargoToml = toml::from_str(&cargo_text).with_context(|| format!("{}/Cargo.toml", dir.display()))?;
    let lib = cargo.lib.and_then(|l| l.name).unwrap_or_else(|| cargo.package.name.replace('-', "_"));
    ensure_target()?;

    steps.step(&format!("compiling {} for {TARGET} (cargo build --release)", manifest.id));
    let status = steps.suspend(|| {
        Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()))
            .current_dir(dir)
            .args(["build", "--release", "--target", TARGET])
            .status()
    });
    let status = status.context("running cargo")?;
    if !status.success() {
        bail!("cargo build failed (its errors are above)");
    }
    let target_dir = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| dir.join("target"), PathBuf::from);
    let built = target_dir.join(TARGET).join("release").join(format!("{lib}.wasm"));
    let bytes = std::fs::read(&built).with_context(|| format!("reading {}", built.display()))?;

    steps.step(&format!("checking the component ({}) against {}", progress::bytes(bytes.len() as u64), manifest_path.display()));
    let info = inspect::inspect(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", built.display()))?;
    match &info.world {
        World::Caret { .. } => {}
        World::Command => bail!("{} is a wasi:cli command, not a caret: it needs `[lib] crate-type = [\"cdylib\"]` and `symphony_caret::export!`", built.display()),
        World::Unknown => bail!("{} exports no Symphony world: call `symphony_caret::export!(YourType);` in src/lib.rs", built.display()),
    }
    symphony_kernel::registry::check_component(&manifest, &info).map_err(|e| match e {
        symphony_kernel::KernelError::UndeclaredImports { undeclared, .. } => anyhow::anyhow!(
            "the component imports what {} does not declare:\n{}\nadd the capability to `[capabilities] request` (a person still has to grant it)",
            manifest_path.display(),
            undeclared.iter().map(|(i, c)| format!("  {i}: declare a `{c}` capability")).collect::<Vec<_>>().join("\n")
        ),
        other => anyhow::Error::from(other),
    })?;

    let dest = dir.join(&manifest.component);
    steps.step(&format!("writing {}", dest.display()));
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::write(&dest, &bytes).with_context(|| format!("writing {}", dest.display()))?;
    steps.finish();
    println!(
        "built {} {} ({}, API {}): {} KiB -> {}",
        manifest.id,
        manifest.version,
        manifest.kind,
        manifest.api,
        bytes.len().div_ceil(1024),
        dest.display()
    );
    Ok(manifest)
}
