//! `carets`: the caret developer's tool. `new` scaffolds a caret that builds as generated;
//! `build` compiles it for wasm32-wasip2 and checks the component against its manifest;
//! `test` runs its unit tests and its call tests against the real kernel; `keygen`, `pack`,
//! `sign`, `verify`, `publish` and `yank` make, check and share signed `.caret` packages.

mod call_test;
mod component_build;
mod scaffold;
mod signing;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;
use symphony_kernel::package::{self, hex, Package};
use symphony_kernel::package_index::PackageIndex;
use symphony_progress::{self as progress, Steps};

#[derive(Parser, Debug)]
#[command(name = "carets", version, about = "Scaffold, build, test, sign and publish Symphony carets")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Kind {
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
    /// Build, run the unit tests (`cargo test`), then run the call tests in `tests/*.toml`
    /// against the real kernel with exactly the capabilities the manifest requests.
    Test {
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// Another caret this one calls (a directory or a `.caret` file), installed beside it
        /// with the capabilities its own manifest requests (repeatable).
        #[arg(long = "with", value_name = "CARET")]
        with: Vec<PathBuf>,
        /// Skip `cargo test`; only the call tests.
        #[arg(long)]
        no_unit: bool,
        /// Only call tests whose name contains this.
        #[arg(long)]
        filter: Option<String>,
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

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Cmd::New { name, kind, dir, sdk } => scaffold::new(&name, kind, &dir, sdk)?,
        Cmd::Build { dir } => {
            component_build::build(&dir)?;
        }
        Cmd::Test { dir, with, no_unit, filter } => {
            return call_test::test(&dir, &with, !no_unit, filter.as_deref());
        }
        Cmd::Keygen { out, name } => signing::keygen(&out, &name)?,
        Cmd::Pack { dir, key, out } => signing::pack(&dir, key.as_deref(), out)?,
        Cmd::Sign { package: path, key } => {
            let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            let mut package = Package::from_tar(&bytes, &path)?;
            let (key, name) = signing::load_key(&key)?;
            package.sign(&key, &name);
            signing::write_package(&path, &package)?;
            println!("signed {} as {name} ({})", path.display(), hex(key.verifying_key().as_bytes()));
        }
        Cmd::Publish { package: path, registry } => {
            let steps = Steps::new(progress::Mode::detect(false), "publish", 2);
            steps.step(&format!("verifying {}", path.display()));
            let verified = package::open(&path)?;
            steps.step(&format!("adding {} {} to {}", verified.manifest.id, verified.manifest.version, registry.display()));
            let e = PackageIndex::new(registry).publish_verified(&path, &verified)?;
            steps.finish();
            println!("published {} {} (signed by {}) -> {}", e.id, e.version, e.signer, e.file.display());
        }
        Cmd::Yank { spec, registry, undo } => {
            let Some((id, version)) = spec.split_once('@') else {
                bail!("give `ID@VERSION`, e.g. `my-caret@0.1.0`");
            };
            let e = PackageIndex::new(registry).set_yanked(id, version, !undo)?;
            println!("{} {} is {}", e.id, e.version, if e.yanked { "yanked" } else { "available again" });
        }
        Cmd::Verify { package: path } => {
            let verified = package::open(&path)?;
            let m = &verified.manifest;
            println!("{} {} ({}, API {}), content {}", m.id, m.version, m.kind, m.api, verified.content_hash);
            match verified.signed_by {
                Some((key, signer)) => println!("signed by {signer} with key {key}: signature valid"),
                None => bail!("{} is not signed", path.display()),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
