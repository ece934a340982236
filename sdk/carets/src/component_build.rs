//! `carets build`: compiles a caret for wasm32-wasip2 in release and checks the component
//! against its manifest — world, API version, and that every import is declared.

use anyhow::{bail, Context, Result};
use carets::compile::{self, TARGET};
use std::path::Path;
use symphony_kernel::inspect::{self, World};
use symphony_kernel::manifest::{Manifest, MANIFEST_FILE};
use symphony_progress::{self as progress, Steps};

/// Builds the caret in `dir`, validates it, writes it where its manifest says, and returns the
/// manifest it was checked against.
pub fn build(dir: &Path) -> Result<Manifest> {
    let manifest_path = dir.join(MANIFEST_FILE);
    let manifest = Manifest::load(&manifest_path)?;
    let steps = Steps::new(progress::Mode::detect(false), "build", 3);
    compile::ensure_target()?;
    steps.step(&format!("compiling {} for {TARGET} (cargo build --release)", manifest.id));
    let compile::Compiled { path: built, bytes } = steps.suspend(|| compile::compile(dir, false))?;

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
