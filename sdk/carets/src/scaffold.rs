//! `carets new`: scaffolds a caret crate (manifest, source, call tests, README) that builds,
//! tests and packs as generated.

use crate::Kind;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use symphony_kernel::manifest::{is_valid_id, MANIFEST_FILE};

fn templates(kind: Kind) -> (&'static str, &'static str) {
    match kind {
        Kind::Operator => (include_str!("../templates/operator.rs"), include_str!("../templates/operator.calls.toml")),
        Kind::Instrument => (include_str!("../templates/instrument.rs"), include_str!("../templates/instrument.calls.toml")),
        Kind::Motif => (include_str!("../templates/motif.rs"), include_str!("../templates/motif.calls.toml")),
    }
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

pub fn new(name: &str, kind: Kind, parent: &Path, sdk: Option<PathBuf>) -> Result<()> {
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
request = {request}

[limits]
memory = "64MiB"
time = "5s"
instances = 4
"#,
        title = type_name(name),
        kind = kind.name(),
        // A motif shows its theme and panels only once a person grants these.
        request = if matches!(kind, Kind::Motif) { r#"["ui.theme", "ui.panel"]"# } else { "[]" },
        api = symphony_kernel::wit::SUPPORTED_API_VERSIONS.last().copied().unwrap_or("0.1.0"),
    );
    let readme = format!(
        "# {name}\n\nA Symphony {kind}.\n\n```sh\ncarets build                                  # build/{lib}.wasm, validated against Symphony.toml\ncarets test                                   # unit tests, then tests/calls.toml through the real kernel\ncarets pack --key my.key                      # a signed {name}-0.1.0.caret\nsymphony caret install .                      # install it\nsymphony call {name} @describe                # what it offers\n```\n\nDeclare capabilities in `Symphony.toml`; `carets build` refuses a component that imports\nwhat the manifest does not declare, and `carets test` runs with exactly what it declares.\n",
        kind = kind.name(),
    );
    let (source, calls) = templates(kind);
    let fill = |t: &str| t.replace("{{name}}", name).replace("{{Type}}", &type_name(name));
    std::fs::create_dir_all(dir.join("tests")).with_context(|| format!("creating {}", dir.display()))?;
    for (path, text) in [
        (dir.join("Cargo.toml"), cargo),
        (dir.join(MANIFEST_FILE), manifest),
        (dir.join("README.md"), readme),
        (dir.join("src/lib.rs"), fill(source)),
        (dir.join("tests/calls.toml"), fill(calls)),
        (dir.join(".gitignore"), "/target\n/build\n".to_owned()),
    ] {
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    println!("created {} ({}) in {}", name, kind.name(), dir.display());
    println!("next: cd {} && carets build && carets test", dir.display());
    Ok(())
}

