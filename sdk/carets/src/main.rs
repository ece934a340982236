//! `carets`: the caret developer's tool. `carets new` scaffolds a caret that builds as
//! generated; `carets build` compiles it for wasm32-wasip2 and checks the component against
//! its manifest — world, API version, and that every import is declared; `keygen`, `pack`,
//! `sign` and `verify` make and check signed `.caret` packages.

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use symphony_kernel::inspect::{self, World};
use ed25519_dalek::SigningKey;
use symphony_kernel::manifest::{is_valid_id, Manifest, MANIFEST_FILE};
use symphony_kernel::package::{self, hex, unhex, Package};
use symphony_kernel::package_index::PackageIndex;

const TARGET: &str = "wasm32-wasip2";

#[derive(Parser, Debug)]
#[command(name = "carets", version, about = "Scaffold, build and validate Symphony carets")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Kind {
    Operator,
    Instrument,
    Motif,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Operator => "operator",
            Kind::Instrument => "instrument",
            Kind::Motif => "motif",
        }
    }
    fn template(self) -> &'static str {
        match self {
            Kind::Operator => include_str!("../templates/operator.rs"),
            Kind::Instrument => include_str!("../templates/instrument.rs"),
            Kind::Motif => include_str!("../templates/motif.rs"),
        }
    }
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Create a new caret crate that builds as generated.
    New {
        /// The caret id: lower-case letters, digits and `-`.
        name: String,
        #[arg(long, value_enum)]
        kind: Kind,
        /// Where to create it (default: the current directory).
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// Path of the `symphony-caret` SDK crate (default: the one this tool was built from).
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
    /// Build the caret in DIR for wasm32-wasip2 and validate the component.
    Build {
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
    /// Make a signing key; prints the public key others add with `symphony trust add`.
    Keygen {
        /// Where to write the secret key (kept private: mode 0600).
        #[arg(long, default_value = "caret-signing.key")]
        out: PathBuf,
        /// Your name as signer, shown to whoever installs your carets.
        #[arg(long)]
        name: String,
    },
    /// Pack the built caret in DIR into a `.caret` package, signed when --key is given.
    Pack {
        #[arg(default_value = ".")]
        dir: PathBuf,
        #[arg(long)]
        key: Option<PathBuf>,
        /// The package file (default: `<id>-<version>.caret` in DIR).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Sign (or re-sign) a `.caret` package.
    Sign {
        package: PathBuf,
        #[arg(long)]
        key: PathBuf,
    },
    /// Check a package: contents against the signed hash, and the signature.
    Verify { package: PathBuf },
    /// Publish a signed package to a registry directory.
    Publish {
        package: PathBuf,
        #[arg(long)]
        registry: PathBuf,
    },
    /// Yank a published version (`ID@VERSION`): new installs will not choose it.
    Yank {
        spec: String,
        #[arg(long)]
        registry: PathBuf,
        /// Restore a yanked version.
        #[arg(long)]
        undo: bool,
    },
}

/// A signing key file.
#[derive(serde::Serialize, serde::Deserialize)]
struct KeyFile {
    name: String,
    /// ed25519 secret key, hex.
    secret: String,
    /// The matching public key, hex.
    public: String,
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Cmd::New { name, kind, dir, sdk } => new(&name, kind, &dir, sdk),
        Cmd::Build { dir } => build(&dir),
        Cmd::Keygen { out, name } => keygen(&out, &name),
        Cmd::Pack { dir, key, out } => pack(&dir, key.as_deref(), out),
        Cmd::Sign { package: path, key } => {
            let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            let mut package = Package::from_tar(&bytes, &path)?;
            let (key, name) = load_key(&key)?;
            package.sign(&key, &name);
            write_package(&path, &package)?;
            println!("signed {} as {name} ({})", path.display(), hex(key.verifying_key().as_bytes()));
            Ok(())
        }
        Cmd::Publish { package: path, registry } => {
            let e = PackageIndex::new(registry).publish(&path)?;
            println!("published {} {} (signed by {}) -> {}", e.id, e.version, e.signer, e.file.display());
            Ok(())
        }
        Cmd::Yank { spec, registry, undo } => {
            let Some((id, version)) = spec.split_once('@') else {
                bail!("give `ID@VERSION`, e.g. `my-caret@0.1.0`");
            };
            let e = PackageIndex::new(registry).set_yanked(id, version, !undo)?;
            println!("{} {} is {}", e.id, e.version, if e.yanked { "yanked" } else { "available again" });
            Ok(())
        }
        Cmd::Verify { package: path } => {
            let verified = package::open(&path)?;
            let m = &verified.manifest;
            println!("{} {} ({}, API {}), content {}", m.id, m.version, m.kind, m.api, verified.content_hash);
            match verified.signed_by {
                Some((key, signer)) => println!("signed by {signer} with key {key}: signature valid"),
                None => bail!("{} is not signed", path.display()),
            }
            Ok(())
        }
    }
}

fn load_key(path: &Path) -> Result<(SigningKey, String)> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading the key {}", path.display()))?;
    let file: KeyFile = serde_json::from_str(&text).with_context(|| format!("{} is not a key made by `carets keygen`", path.display()))?;
    let secret: [u8; 32] = unhex(&file.secret)
        .and_then(|b| b.try_into().ok())
        .with_context(|| format!("{}: the secret is not 64 hex digits", path.display()))?;
    Ok((SigningKey::from_bytes(&secret), file.name))
}

fn keygen(out: &Path, name: &str) -> Result<()> {
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

fn write_package(path: &Path, package: &Package) -> Result<()> {
    let tmp = path.with_extension("caret.tmp");
    std::fs::write(&tmp, package.to_tar()?).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

fn pack(dir: &Path, key: Option<&Path>, out: Option<PathBuf>) -> Result<()> {
    let manifest_path = dir.join(MANIFEST_FILE);
    let manifest_text = std::fs::read_to_string(&manifest_path).with_context(|| format!("reading {}", manifest_path.display()))?;
    let manifest = Manifest::parse(&manifest_text, &manifest_path)?;
    let component_path = dir.join(&manifest.component);
    let component = std::fs::read(&component_path)
        .with_context(|| format!("{} is not built: run `carets build` first", component_path.display()))?;
    let info = inspect::inspect(&component).map_err(|e| anyhow::anyhow!("{}: {e}", component_path.display()))?;
    symphony_kernel::registry::check_component(&manifest, &info)?;
    let mut package = Package { manifest_text, component, signature: None };
    if let Some(key) = key {
        let (key, name) = load_key(key)?;
        package.sign(&key, &name);
    }
    let out = out.unwrap_or_else(|| dir.join(format!("{}-{}.caret", manifest.id, manifest.version)));
    write_package(&out, &package)?;
    let signed = package.signature.as_ref().map_or_else(|| "unsigned".to_owned(), |s| format!("signed by {}", s.signer));
    println!("packed {} {} ({signed}) -> {}", manifest.id, manifest.version, out.display());
    Ok(())
}

fn type_name(id: &str) -> String {
    id.split('-')
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map(|c| c.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
        })
        .collect()
}

fn default_sdk() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("caret")
}

fn new(name: &str, kind: Kind, parent: &Path, sdk: Option<PathBuf>) -> Result<()> {
    if !is_valid_id(name) {
        bail!("`{name}` is not a valid caret id: use 2-64 lower-case letters, digits and `-`, starting with a letter");
    }
    let dir = parent.join(name);
    if dir.exists() {
        bail!("{} already exists; pick another name or remove it", dir.display());
    }
    let sdk = sdk.unwrap_or_else(default_sdk);
    let sdk = sdk.canonicalize().with_context(|| format!("the SDK crate at {} (pass --sdk)", sdk.display()))?;
    let lib = name.replace('-', "_");
    std::fs::create_dir_all(dir.join("src")).with_context(|| format!("creating {}", dir.display()))?;
    let cargo = format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
crate-type = ["cdylib", "rlib"]

[dependencies]
symphony-caret = {{ path = {sdk:?}, features = ["{kind}"] }}

# A caret is its own workspace, even when created inside another one.
[workspace]

[profile.release]
opt-level = "s"
lto = true
codegen-units = 1
strip = true
debug = false
"#,
        sdk = sdk.display().to_string(),
        kind = kind.name(),
    );
    let manifest = format!(
        r#"[caret]
id = "{name}"
name = "{title}"
version = "0.1.0"
kind = "{kind}"
api = "{api}"
component = "build/{lib}.wasm"
description = "A new {kind}"
authors = []

[capabilities]
# What the caret asks for; a person grants it, or part of it. Examples:
#   "fs.read:workspace", "env:MY_TOKEN", "net.connect:127.0.0.1:8080",
#   "process.exec:git status **", "caret.call:text-tools/grep", "ui.panel"
request = []

[limits]
memory = "64MiB"
time = "5s"
instances = 4
"#,
        title = type_name(name),
        kind = kind.name(),
        api = symphony_kernel::wit::SUPPORTED_API_VERSIONS.last().copied().unwrap_or("0.1.0"),
    );
    let readme = format!(
        "# {name}\n\nA Symphony {kind}.\n\n```sh\ncarets build                                  # build/{lib}.wasm, validated\ncargo test                                    # the caret's own tests\nsymphony caret install .                      # install it\nsymphony call {name} @describe                # what it offers\n```\n\nDeclare capabilities in `Symphony.toml`; `carets build` refuses a component that imports\nwhat the manifest does not declare.\n",
        kind = kind.name(),
    );
    let source = kind.template().replace("{{name}}", name).replace("{{Type}}", &type_name(name));
    for (path, text) in [
        (dir.join("Cargo.toml"), cargo),
        (dir.join(MANIFEST_FILE), manifest),
        (dir.join("README.md"), readme),
        (dir.join("src/lib.rs"), source),
        (dir.join(".gitignore"), "/target\n/build\n".to_owned()),
    ] {
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    println!("created {} ({}) in {}", name, kind.name(), dir.display());
    println!("next: cd {} && carets build", dir.display());
    Ok(())
}

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

fn build(dir: &Path) -> Result<()> {
    let manifest_path = dir.join(MANIFEST_FILE);
    let manifest = Manifest::load(&manifest_path)?;
    let cargo_text = std::fs::read_to_string(dir.join("Cargo.toml")).with_context(|| format!("{}/Cargo.toml", dir.display()))?;
    let cargo: CargoToml = toml::from_str(&cargo_text).with_context(|| format!("{}/Cargo.toml", dir.display()))?;
    let lib = cargo.lib.and_then(|l| l.name).unwrap_or_else(|| cargo.package.name.replace('-', "_"));
    ensure_target()?;

    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()))
        .current_dir(dir)
        .args(["build", "--release", "--target", TARGET])
        .status()
        .context("running cargo")?;
    if !status.success() {
        bail!("cargo build failed (its errors are above)");
    }
    let target_dir = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| dir.join("target"), PathBuf::from);
    let built = target_dir.join(TARGET).join("release").join(format!("{lib}.wasm"));
    let bytes = std::fs::read(&built).with_context(|| format!("reading {}", built.display()))?;

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
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::write(&dest, &bytes).with_context(|| format!("writing {}", dest.display()))?;
    println!(
        "built {} {} ({}, API {}): {} KiB -> {}",
        manifest.id,
        manifest.version,
        manifest.kind,
        manifest.api,
        bytes.len().div_ceil(1024),
        dest.display()
    );
    Ok(())
}
