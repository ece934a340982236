//! Signing keys and `.caret` packages: `carets keygen`, `pack`, `sign`.

use anyhow::{bail, Context, Result};
use ed25519_dalek::SigningKey;
use std::path::{Path, PathBuf};
use symphony_kernel::inspect;
use symphony_kernel::manifest::{Manifest, MANIFEST_FILE};
use symphony_kernel::package::{self, hex, unhex, Package};
use symphony_progress::{self as progress, Steps};

/// A signing key file.
#[derive(serde::Serialize, serde::Deserialize)]
struct KeyFile {
    name: String,
    /// ed25519 secret key, hex.
    secret: String,
    /// The matching public key, hex.
    public: String,
}

pub fn load_key(path: &Path) -> Result<(SigningKey, String)> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading the key {}", path.display()))?;
    let file: KeyFile = serde_json::from_str(&text).with_context(|| format!("{} is not a key made by `carets keygen`", path.display()))?;
    let secret: [u8; 32] = unhex(&file.secret)
        .and_then(|b| b.try_into().ok())
        .with_context(|| format!("{}: the secret is not 64 hex digits", path.display()))?;
    Ok((SigningKey::from_bytes(&secret), file.name))
}

pub fn keygen(out: &Path, name: &str) -> Result<()> {
    if out.exists() {
        bail!("{} already exists; refusing to overwrite a key", out.display());
    }
    let key = package::generate_key()?;
    let public = hex(key.verifying_key().as_bytes());
    let file = KeyFile { name: name.to_owned(), secret: hex(&key.to_bytes()), public: public.clone() };
    let json = serde_json::to_vec_pretty(&file)?;
    write_private(out, &json)?;
    println!("secret key written to {} (keep it private)", out.display());
    println!("public key: {public}");
    println!("whoever installs your carets trusts it with: symphony trust add {public}");
    Ok(())
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(bytes).with_context(|| format!("writing {}", path.display()))
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

pub fn write_package(path: &Path, package: &Package) -> Result<()> {
    let tmp = path.with_extension("caret.tmp");
    std::fs::write(&tmp, package.to_tar()?).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

pub fn pack(dir: &Path, key: Option<&Path>, out: Option<PathBuf>) -> Result<()> {
    let manifest_path = dir.join(MANIFEST_FILE);
    let manifest_text = std::fs::read_to_string(&manifest_path).with_context(|| format!("reading {}", manifest_path.display()))?;
    let manifest = Manifest::parse(&manifest_text, &manifest_path)?;
    let steps = Steps::new(progress::Mode::detect(false), "pack", 3);
    let component_path = dir.join(&manifest.component);
    steps.step(&format!("checking {} against its manifest", component_path.display()));
    let component = std::fs::read(&component_path)
        .with_context(|| format!("{} is not built: run `carets build` first", component_path.display()))?;
    let info = inspect::inspect(&component).map_err(|e| anyhow::anyhow!("{}: {e}", component_path.display()))?;
    symphony_kernel::registry::check_component(&manifest, &info)?;
    let size = component.len() as u64;
    let mut package = Package { manifest_text, component, signature: None };
    match key {
        Some(key) => {
            let (key, name) = load_key(key)?;
            steps.step(&format!("hashing {} and signing as {name}", progress::bytes(size)));
            package.sign(&key, &name);
        }
        None => steps.step("not signing (no --key): installs will need --allow-unsigned"),
    }
    let out = out.unwrap_or_else(|| dir.join(format!("{}-{}.caret", manifest.id, manifest.version)));
    steps.step(&format!("writing {}", out.display()));
    write_package(&out, &package)?;
    steps.finish();
    let signed = package.signature.as_ref().map_or_else(|| "unsigned".to_owned(), |s| format!("signed by {}", s.signer));
    println!("packed {} {} ({signed}) -> {}", manifest.id, manifest.version, out.display());
    Ok(())
}
