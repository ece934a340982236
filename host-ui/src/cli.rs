//! Command-line arguments and what each command does.

use crate::{demo, exit, output};
use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use symphony_kernel::config::LogFormat;
use symphony_kernel::manifest::{parse_duration, parse_size};
use symphony_kernel::{
    AuditLog, CallObserver, Capability, CommandError, Config, Decision, InstallProgress, InstalledCaret, Kernel,
    KernelOptions, Limits, Principal,
};
use symphony_kernel::capability_audit::{AuditService, AuditSubject};
use symphony_progress::{self as progress, Steps};

#[derive(Parser, Debug)]
#[command(name = "symphony", version, about = "Symphony: an AI-first IDE on a WebAssembly microkernel")]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug)]
pub struct Global {
    /// State directory: installed carets, grants, audit log, caches.
    #[arg(long, global = true, env = "SYMPHONY_HOME")]
    pub home: Option<PathBuf>,
    /// The directory `workspace` capability scopes mean (default: the current directory).
    #[arg(long, global = true)]
    pub workspace: Option<PathBuf>,
    /// Print machine-readable JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// Log format: text or json (overrides config and SYMPHONY_LOG_FORMAT).
    #[arg(long, global = true, value_parser = ["text", "json"])]
    pub log_format: Option<String>,
    /// Log filter, e.g. `info` or `symphony_kernel=debug` (overrides config and SYMPHONY_LOG_LEVEL).
    #[arg(long, global = true)]
    pub log_level: Option<String>,
    /// Override any configuration key: `--set kernel.pooling=false`.
    #[arg(long = "set", global = true, value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Start Symphony on the embedded default: example workspace, shipped carets installed.
    Start(demo::StartArgs),
    /// Install, inspect, grant and remove carets.
    #[command(subcommand)]
    Caret(CaretCommand),
    /// Call an op of a caret (or of a Pit service, `pit/<service>`) through the proxy.
    Call {
        /// The caret id, or `pit/<service>` (e.g. `pit/audit report`).
        id: String,
        /// The op; `@describe`, `@health`, `@model`, `@theme`, `@panels`, `@render`, `@event`
        /// reach a world's other exports.
        op: String,
        /// JSON payload (or text, for ops that take text); `-` reads stdin.
        #[arg(default_value = "{}")]
        payload: String,
        /// Print streamed chunks (an instrument's tokens) as they arrive.
        #[arg(long)]
        stream: bool,
    },
    /// Run a plain `wasi:cli/command` component with only the capabilities given.
    #[command(name = "run-command")]
    RunTool {
        /// The component file.
        file: PathBuf,
        /// A capability for this run, e.g. `fs.read:workspace` (repeatable).
        #[arg(long = "grant", value_name = "CAPABILITY")]
        grants: Vec<String>,
        /// Time limit.
        #[arg(long, default_value = "30s")]
        time: String,
        /// Memory cap.
        #[arg(long, default_value = "256MiB")]
        memory: String,
        /// Arguments passed to the command.
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// What each caret can reach (from its binary), may do (declared and granted) and did
    /// (the audit log), with findings. Give a caret id, a `.caret`, a caret directory or a
    /// `.wasm` component; without one, every installed caret.
    Audit {
        /// A caret id, or a path to a `.caret`, a caret directory or a `.wasm` file.
        subject: Option<String>,
        /// Exit with code 2 when there is a finding at or above this severity.
        #[arg(long, value_enum)]
        fail_on: Option<crate::audit_view::FailOn>,
        /// Only audit-log records this recent count as use, e.g. `7d`, `12h`.
        #[arg(long)]
        since: Option<String>,
    },
    /// Show the audit log.
    AuditLog {
        /// Only denials.
        #[arg(long)]
        denied: bool,
        /// Only records about this caret.
        #[arg(long)]
        caret: Option<String>,
        /// Show at most this many of the latest records.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Manage the keys you trust to sign carets.
    #[command(subcommand)]
    Trust(TrustCommand),
    /// Rebuild a caret when its sources change and swap it into every running kernel on this
    /// home (the IDE included), keeping its state; failures leave the running version serving.
    Dev(crate::dev::DevArgs),
    /// Serve JSON-RPC 2.0 over WebSocket on 127.0.0.1 for the web UI and other clients.
    Serve(crate::serve::ServeArgs),
    /// Validate and run melodies (workflows of caret calls).
    #[command(subcommand)]
    Melody(crate::melody::MelodyCommand),
    /// The artifact store in `<home>/artifacts` (the one `pit/artifacts` serves): put, import, get, log, search, stats, verify, gc, sweep.
    #[command(subcommand)]
    Artifacts(ArtifactsCommand),
    /// The Conductor: Python reaching the proxy as its own principal.
    #[command(subcommand)]
    Conductor(ConductorCommand),
    /// Show the effective configuration.
    Config,
}

#[derive(Subcommand, Debug)]
pub enum TrustCommand {
    /// Trust a signing key (the public key `carets keygen` printed).
    Add {
        key: String,
        /// A name to remember it by.
        #[arg(long, default_value = "")]
        name: String,
    },
    /// List trusted keys.
    List,
    /// Stop trusting a key; installed carets stay installed.
    Remove { key: String },
}

#[derive(Subcommand, Debug)]
pub enum CaretCommand {
    /// Install from a caret directory (with `Symphony.toml`), a signed `.caret` package, or a
    /// component with `--manifest`.
    Install {
        /// The caret directory, a `.caret` package, or a `.wasm` file when `--manifest` is given.
        path: PathBuf,
        #[arg(long)]
        manifest: Option<PathBuf>,
        /// Also grant everything the manifest asks for (you are shown the list).
        #[arg(long)]
        grant_requested: bool,
        /// Accept a package that carries no signature.
        #[arg(long)]
        allow_unsigned: bool,
        /// Install NAME[@REQ] from this registry directory (PATH is then the name).
        #[arg(long)]
        registry: Option<PathBuf>,
    },
    /// Update a caret to the newest compatible version in a registry.
    Update {
        id: String,
        #[arg(long)]
        registry: PathBuf,
    },
    /// List installed carets.
    List,
    /// Show one caret: manifest, hash, grants.
    Info { id: String },
    /// Remove a caret and its grants.
    Remove { id: String },
    /// Go back to the version installed before the current one (running kernels swap back).
    Rollback { id: String },
    /// Swap the installed version in again in every running kernel (fresh instances, state
    /// carried over), without rebuilding.
    Reload { id: String },
    /// Grant capabilities; each must narrow what the manifest asks for.
    Grant {
        id: String,
        #[arg(required = true)]
        capabilities: Vec<String>,
    },
    /// Revoke capabilities.
    Revoke {
        id: String,
        #[arg(required = true)]
        capabilities: Vec<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum ArtifactsCommand {
    /// Store FILE (any bytes) as the next version of NAME.
    Put {
        name: String,
        file: PathBuf,
        #[arg(long, default_value = "")]
        kind: String,
        #[arg(long = "tag")]
        tags: Vec<String>,
    },
    /// Store every file under DIR (links not followed, `.git` left out) as PREFIX/<path>: read
    /// and stored in large batches, prepared on all cores, one synced append per batch. A file
    /// whose bytes are already its name's latest version makes no new one; paths that cannot
    /// be artifact names are listed and left out.
    Import {
        dir: PathBuf,
        #[arg(long, default_value = "")]
        prefix: String,
        #[arg(long, default_value = "")]
        kind: String,
        #[arg(long = "tag")]
        tags: Vec<String>,
    },
    /// Print an artifact: NAME (latest), NAME@N, or a blob hash.
    Get { spec: String },
    /// The versions of NAME.
    Log { name: String },
    /// Full-text search over the latest version of every artifact (content, name, kind, tags),
    /// ranked, with snippets: `symphony artifacts search 'inventory AND kind:code'`.
    Search {
        query: String,
        #[arg(long, default_value_t = 10)]
        limit: usize,
    },
    /// Check every stored chunk against its hash.
    Verify,
    /// Remove blobs no version points at, the chunks only they use, and crash leftovers.
    Gc,
    /// Names, versions, bytes they stand for and bytes on disk, the index, mean quality.
    Stats,
    /// Apply the retention policy (`<home>/artifacts/stale.toml`): move idle blobs to the warm
    /// and cold tiers, delete versions the policy lets go, collect. `--dry-run` only reports.
    Sweep {
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum ConductorCommand {
    /// Run a Python program with `import symphony` (invoke, targets); prints its `result`.
    Exec { file: PathBuf },
    /// Grant the Conductor capabilities (it has no manifest: grant only what it needs).
    Grant {
        #[arg(required = true)]
        capabilities: Vec<String>,
    },
    /// Replay the recorded episodes into a fresh policy (offline training) and checkpoint it.
    Train {
        #[command(flatten)]
        policy: crate::melody::PolicyArgs,
    },
    /// What Maestro's policy has learned: per node and alternative, choices, mean reward, confidence.
    Stats {
        #[command(flatten)]
        policy: crate::melody::PolicyArgs,
    },
}

/// Resolves the effective configuration: file, then environment, then flags.
pub fn load_config(global: &Global, home: &std::path::Path) -> Result<Config> {
    let mut config = Config::load(&Config::file_in(home))?;
    if let Some(f) = &global.log_format {
        config.set("log.format", f)?;
    }
    if let Some(l) = &global.log_level {
        config.set("log.level", l)?;
    }
    for pair in &global.overrides {
        let Some((key, value)) = pair.split_once('=') else {
            bail!("`--set {pair}`: expected KEY=VALUE");
        };
        config.set(key.trim(), value.trim())?;
    }
    Ok(config)
}

fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log.level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match config.log.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

pub fn default_home() -> PathBuf {
    directories::ProjectDirs::from("dev", "symphony", "symphony")
        .map(|d| d.data_dir().to_path_buf())
        .unwrap_or_else(|| PathBuf::from(".symphony"))
}

/// Progress of long work on the artifact store, in bytes: a bar (or at most twenty log lines)
/// once there are 8 MiB or more of it; smaller work finishes before anyone needs one.
struct StoreProgress {
    json: bool,
    label: &'static str,
    steps: Option<(Steps, u64)>,
}

impl StoreProgress {
    fn new(json: bool, label: &'static str) -> Self {
        Self { json, label, steps: None }
    }

    fn update(&mut self, step: &str, done: u64, total: u64) {
        if total < 8 << 20 && self.steps.is_none() {
            return;
        }
        let (json, label) = (self.json, self.label);
        let (bar, shown) = self.steps.get_or_insert_with(|| (Steps::new(progress::Mode::detect(json), label, 20), 0));
        while *shown < done * 20 / total.max(1) {
            bar.step(step);
            *shown += 1;
        }
    }

    fn finish(self) {
        if let Some((bar, _)) = self.steps {
            bar.finish();
        }
    }
}

/// Long work run directly on the artifact service, with a progress bar labelled `label`: its
/// report to print as text, or — after printing an error, or the report with `--json` — the
/// exit code to end with.
fn run_on_store<T: serde::Serialize>(
    global: &Global,
    home: &std::path::Path,
    label: &'static str,
    work: impl FnOnce(&crate::artifacts_service::ArtifactsService, &mut StoreProgress) -> Result<T, symphony_kernel::CallError>,
) -> Result<Result<T, ExitCode>> {
    let kernel = open_kernel(global, home.to_path_buf(), None)?;
    let service = crate::artifacts_service::ArtifactsService::new(home);
    let mut shown = StoreProgress::new(global.json, label);
    let result = work(&service, &mut shown);
    shown.finish();
    kernel.audit_log().flush();
    match result {
        Err(e) => {
            output::call_error(&e, global.json)?;
            Ok(Err(ExitCode::from(exit::for_call(&e))))
        }
        Ok(report) if global.json => {
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(Err(ExitCode::SUCCESS))
        }
        Ok(report) => Ok(Ok(report)),
    }
}

pub fn open_kernel(global: &Global, home: PathBuf, workspace: Option<PathBuf>) -> Result<Kernel> {
    let config = load_config(global, &home)?;
    init_logging(&config);
    let artifacts = crate::artifacts_service::ArtifactsService::new(&home);
    let workspace = match workspace.or_else(|| global.workspace.clone()) {
        Some(w) => w,
        None => std::env::current_dir().context("current directory")?,
    };
    let kernel = Kernel::open(KernelOptions { home, workspace, config }).context("opening the kernel")?;
    kernel.register_service(Arc::new(AuditService::new(&kernel)));
    kernel.register_service(Arc::new(crate::carets_service::CaretsService::new(&kernel)));
    kernel.register_service(Arc::new(artifacts));
    match crate::workspace_service::WorkspaceService::new(kernel.workspace()) {
        Ok(files) => kernel.register_service(Arc::new(files)),
        Err(e) => tracing::warn!(workspace = %kernel.workspace().display(), error = %e, "pit/workspace is unavailable"),
    }
    Ok(kernel)
}

fn parse_caps(texts: &[String]) -> Result<Vec<Capability>> {
    texts.iter().map(|t| t.parse::<Capability>().map_err(anyhow::Error::from)).collect()
}

fn who() -> String {
    std::env::var("USER").or_else(|_| std::env::var("USERNAME")).unwrap_or_else(|_| "user".to_owned())
}

/// Prints streamed chunks to stdout and progress to stderr.
struct TerminalObserver;

impl CallObserver for TerminalObserver {
    fn chunk(&self, _caret: &str, chunk: &str) {
        let mut out = std::io::stdout();
        let _ = out.write_all(chunk.as_bytes());
        let _ = out.flush();
    }
    fn progress(&self, caret: &str, done: u64, total: u64, message: &str) {
        if std::io::stderr().is_terminal() {
            eprint!("\r{caret}: {message} {done}/{total}\x1b[K");
        }
    }
}

fn read_payload(payload: String) -> Result<String> {
    if payload != "-" {
        return Ok(payload);
    }
    let mut s = String::new();
    std::io::stdin().read_to_string(&mut s).context("reading the payload from stdin")?;
    Ok(s)
}

pub fn run(cli: Cli) -> Result<ExitCode> {
    let Cli { global, command } = cli;
    let home = global.home.clone().unwrap_or_else(default_home);
    match command {
        Command::Start(args) => demo::start(&global, home, args),
        Command::Dev(args) => crate::dev::run(&global, home, args),
        Command::Serve(args) => crate::serve::run(&global, home, args),
        Command::Melody(m) => crate::melody::run(&global, home, m),
        Command::Artifacts(ArtifactsCommand::Import { dir, prefix, kind, tags }) => {
            // Directly on the service (not through `invoke`): a tree is not a JSON payload.
            let meta = symphony_artifacts::Meta { kind, tags, author: "user".to_owned(), ..symphony_artifacts::Meta::default() };
            let report = match run_on_store(&global, &home, "import", |service, shown| service.import(&dir, &prefix, &meta, &mut |done, total| shown.update(&progress::bytes(done), done, total)))? {
                Ok(r) => r,
                Err(code) => return Ok(code),
            };
            for path in &report.skipped {
                println!("skipped {path}: not a valid artifact name (ASCII letters, digits, - _ . /)");
            }
            let secs = (report.millis as f64 / 1e3).max(1e-3);
            println!(
                "imported {} ({}) from {}: {}, {} unchanged, {} skipped, in {:.2} s ({}/s)",
                output::count(report.files as u64, "file"),
                progress::bytes(report.bytes),
                dir.display(),
                output::count(report.new_versions as u64, "new version"),
                report.unchanged,
                report.skipped.len(),
                secs,
                progress::bytes((report.bytes as f64 / secs) as u64)
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Artifacts(ArtifactsCommand::Sweep { dry_run }) => {
            // Directly on the service (not through `invoke`) so the sweep can report progress.
            let report = match run_on_store(&global, &home, "sweep", |service, shown| service.sweep(dry_run, &mut |step, done, total| shown.update(&format!("{step} {}", progress::bytes(done)), done, total)))? {
                Ok(r) => r,
                Err(code) => return Ok(code),
            };
            let verb = if dry_run { "would move" } else { "moved" };
            for m in &report.plan.moves {
                println!("{verb} {} ({}) {:?} → {:?}: {}  [{}]", &m.blob[..12], progress::bytes(m.len), m.from, m.to, m.reason, m.versions.join(", "));
            }
            let verb = if dry_run { "would delete" } else { "deleted" };
            for d in &report.plan.deletes {
                println!("{verb} {}@{} ({}): {}", d.name, d.version, progress::bytes(d.len), d.reason);
            }
            let (warm, cold, deleted) = if dry_run {
                let to = |level| report.plan.moves.iter().filter(|m| m.to == level).count() as u64;
                (to(symphony_stale::policy::Level::Warm), to(symphony_stale::policy::Level::Cold), report.plan.deletes.len() as u64)
            } else {
                (report.moved_warm as u64, report.moved_cold as u64, report.deleted as u64)
            };
            println!(
                "{} looked at, {} kept by the policy; {} to warm ({}), {} to cold ({}), {} deleted, {} removed, in {} ms",
                output::count(report.plan.versions as u64, "version"),
                report.plan.protected,
                output::count(warm, "blob"),
                progress::bytes(report.bytes_warm),
                cold,
                progress::bytes(report.bytes_cold),
                output::count(deleted, "version"),
                output::count(report.packs_removed as u64, "pack"),
                report.millis
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Artifacts(a) => {
            let kernel = open_kernel(&global, home.clone(), None)?;
            // Long work over the whole store, and files' bytes, go to the service directly.
            // (It opens the store only when used.)
            let service = crate::artifacts_service::ArtifactsService::new(&home);
            let direct = match &a {
                ArtifactsCommand::Verify | ArtifactsCommand::Gc => {
                    let label = if matches!(a, ArtifactsCommand::Verify) { "verify" } else { "gc" };
                    let mut shown = StoreProgress::new(global.json, label);
                    let answer = if matches!(a, ArtifactsCommand::Verify) {
                        service.verify(&mut |done, total| shown.update(&progress::bytes(done), done, total))
                    } else {
                        service.gc(&mut |done, total| shown.update(&progress::bytes(done), done, total))
                    };
                    shown.finish();
                    Some(answer)
                }
                // A file's bytes go to the store as they are: through the op's JSON a 100 MB
                // file took ~500 MB of memory as text or base64.
                ArtifactsCommand::Put { name, file, kind, tags } => {
                    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
                    let meta = symphony_artifacts::Meta { kind: kind.clone(), tags: tags.clone(), ..symphony_artifacts::Meta::default() };
                    let mut shown = StoreProgress::new(global.json, "put");
                    let answer = service.put_bytes(&Principal::User, name, &bytes, meta, &mut |done, total| shown.update(&progress::bytes(done), done, total));
                    shown.finish();
                    Some(answer.map(|v| v.to_string()))
                }
                ArtifactsCommand::Get { spec } if !global.json => {
                    match service.get_bytes(spec) {
                        Ok(bytes) => {
                            std::io::stdout().lock().write_all(&bytes).context("writing the artifact to stdout")?;
                            return Ok(ExitCode::SUCCESS);
                        }
                        Err(e) => Some(Err(e)),
                    }
                }
                _ => None,
            };
            let (op, payload) = match &a {
                ArtifactsCommand::Get { spec } => ("get", serde_json::json!({ "spec": spec })),
                ArtifactsCommand::Log { name } => ("log", serde_json::json!({ "name": name })),
                ArtifactsCommand::Search { query, limit } => ("search", serde_json::json!({ "query": query, "limit": limit })),
                ArtifactsCommand::Verify => ("verify", serde_json::json!({})),
                ArtifactsCommand::Gc => ("gc", serde_json::json!({})),
                ArtifactsCommand::Stats => ("stats", serde_json::json!({})),
                // Answered above, on the service directly.
                ArtifactsCommand::Put { .. } | ArtifactsCommand::Sweep { .. } | ArtifactsCommand::Import { .. } => ("put", serde_json::json!({})),
            };
            let answer = match direct.unwrap_or_else(|| kernel.invoke(&Principal::User, "pit/artifacts", op, &payload.to_string())) {
                Ok(a) => a,
                Err(e) => {
                    output::call_error(&e, global.json)?;
                    return Ok(ExitCode::from(exit::for_call(&e)));
                }
            };
            let value: serde_json::Value = serde_json::from_str(&answer).context("pit/artifacts answered non-JSON")?;
            let n = |key: &str, noun: &str| output::count(value[key].as_u64().unwrap_or_default(), noun);
            let size = |key: &str| progress::bytes(value[key].as_u64().unwrap_or_default());
            match (&a, global.json) {
                // Without `--json`, a get wrote its bytes above.
                (_, true) | (ArtifactsCommand::Get { .. }, false) => println!("{}", serde_json::to_string_pretty(&value)?),
                (ArtifactsCommand::Put { .. }, false) => {
                    let (name, blob) = (value["name"].as_str().unwrap_or_default(), value["blob"].as_str().unwrap_or_default());
                    let len = n("len", "byte");
                    if value["unchanged"] == true {
                        println!("unchanged: {name}@{} already holds these bytes and metadata (blob {blob}, {len})", value["version"]);
                    } else {
                        println!("stored {name}@{} (blob {blob}, {len})", value["version"]);
                    }
                }
                (ArtifactsCommand::Log { .. }, false) => {
                    for v in value["versions"].as_array().into_iter().flatten() {
                        let parent = v["parent"].as_u64().map_or_else(|| "first version".to_owned(), |p| format!("parent @{p}"));
                        println!("{}@{}  {}  {} bytes  by {}  {parent}", v["name"].as_str().unwrap_or_default(), v["version"], v["created_at"].as_str().unwrap_or_default(), v["len"], v["meta"]["author"].as_str().unwrap_or_default());
                    }
                }
                (ArtifactsCommand::Stats, false) => {
                    println!("{}, {}, {} as stored whole", n("names", "name"), n("versions", "version"), size("logical_bytes"));
                    // `saving`: bytes as stored whole over bytes on disk.
                    let saving = value["saving"].as_f64().unwrap_or_default();
                    let effect = match (value["stored_bytes"].as_u64().unwrap_or_default(), saving) {
                        (0, _) => String::new(),
                        (_, s) if s >= 1.0 => format!(" ({s:.2}× smaller than stored whole: dedup and compression)"),
                        _ => " (more than stored whole: record headers outweigh what compression saved)".to_owned(),
                    };
                    println!("{}, {}, {} on disk{effect}", n("blobs", "blob"), n("chunks", "chunk"), size("stored_bytes"));
                    let quality = value["mean_quality"].as_f64().map_or_else(|| "-".to_owned(), |q| format!("{q:.2}"));
                    println!("{} searchable; mean quality of the latest versions {quality}", n("indexed", "name"));
                }
                (ArtifactsCommand::Gc, false) => {
                    println!(
                        "removed {}, {} and {} ({}); kept {}, {}",
                        n("blobs_removed", "blob"),
                        n("chunks_removed", "chunk"),
                        n("temp_files_removed", "leftover"),
                        size("bytes_freed"),
                        n("blobs_kept", "blob"),
                        n("chunks_kept", "chunk")
                    );
                }
                (ArtifactsCommand::Search { .. }, false) => {
                    let hits = value["hits"].as_array().cloned().unwrap_or_default();
                    if hits.is_empty() {
                        println!("no match");
                    }
                    for h in hits {
                        let quality = h["quality"].as_f64().map_or_else(String::new, |q| format!("  quality {q:.2}"));
                        println!("{}@{}  {}  score {:.2}{quality}", h["name"].as_str().unwrap_or_default(), h["version"], h["kind"].as_str().unwrap_or_default(), h["score"].as_f64().unwrap_or_default());
                        println!("    {}", h["snippet"].as_str().unwrap_or_default());
                    }
                }
                (ArtifactsCommand::Sweep { .. } | ArtifactsCommand::Import { .. }, false) => println!("{value}"),
                (ArtifactsCommand::Verify, false) => {
                    for p in value["problems"].as_array().into_iter().flatten() {
                        println!("CORRUPT {}", p.as_str().unwrap_or_default());
                    }
                    if value["ok"] == true {
                        println!("every chunk matches its hash");
                    } else {
                        return Ok(ExitCode::from(exit::INVALID));
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Conductor(c) => {
            let kernel = open_kernel(&global, home.clone(), None)?;
            match c {
                ConductorCommand::Exec { file } => {
                    let source = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
                    let result = symphony_conductor::python::run(&kernel, &source, &file.display().to_string());
                    kernel.audit_log().flush();
                    match result {
                        Ok(value) => {
                            println!("{}", serde_json::to_string_pretty(&value)?);
                            Ok(ExitCode::SUCCESS)
                        }
                        Err(e) => {
                            eprintln!("error: {e}");
                            let denied = matches!(&e, symphony_conductor::python::PythonError::Raised { kind, message, .. }
                                if kind == "CallError" && message.starts_with("denied"));
                            Ok(ExitCode::from(if denied { exit::DENIED } else { exit::FAILURE }))
                        }
                    }
                }
                ConductorCommand::Grant { capabilities } => {
                    let caps = parse_caps(&capabilities)?;
                    let records = kernel.grant_conductor(&caps, &who())?;
                    let held: Vec<String> = records.iter().map(|r| r.capability.to_string()).collect();
                    output::message(&format!("the conductor holds: {}", held.join(", ")), global.json)?;
                    Ok(ExitCode::SUCCESS)
                }
                ConductorCommand::Train { policy } => crate::melody::train(&home, &policy, global.json),
                ConductorCommand::Stats { policy } => crate::melody::stats(&home, &policy, global.json),
            }
        }
        Command::Trust(t) => {
            let kernel = open_kernel(&global, home, None)?;
            let store = kernel.trust();
            match t {
                TrustCommand::Add { key, name } => {
                    let entry = store.add(&key, &name)?;
                    output::message(&format!("trusting {} {}", entry.key, entry.name), global.json)?;
                }
                TrustCommand::List => {
                    let keys = store.list()?;
                    if global.json {
                        println!("{}", serde_json::to_string_pretty(&keys)?);
                    } else if keys.is_empty() {
                        println!("no trusted keys — `symphony trust add <public key>`");
                    } else {
                        for k in keys {
                            println!("{}  {:<20} since {}", k.key, k.name, k.added_at);
                        }
                    }
                }
                TrustCommand::Remove { key } => {
                    let removed = store.remove(&key)?;
                    output::message(if removed { "removed" } else { "that key was not trusted" }, global.json)?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Config => {
            let config = load_config(&global, &home)?;
            output::config(&config, global.json)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Caret(c) => {
            let kernel = open_kernel(&global, home, None)?;
            caret(&kernel, c, global.json)
        }
        Command::Call { id, op, payload, stream } => {
            let kernel = open_kernel(&global, home, None)?;
            let payload = read_payload(payload)?;
            // `pit/<service>` (or an explicit `caret/<id>`) as is; a bare id is a caret.
            let target = if id.contains('/') { id } else { format!("caret/{id}") };
            let result = if stream {
                let r = kernel.invoke_observed(&Principal::User, &target, &op, &payload, Arc::new(TerminalObserver));
                println!();
                r
            } else {
                kernel.invoke(&Principal::User, &target, &op, &payload)
            };
            kernel.audit_log().flush();
            match result {
                Ok(answer) => {
                    output::call_result(&answer, global.json)?;
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    output::call_error(&e, global.json)?;
                    Ok(ExitCode::from(exit::for_call(&e)))
                }
            }
        }
        Command::RunTool { file, grants, time, memory, args } => {
            let kernel = open_kernel(&global, home, None)?;
            let grants = parse_caps(&grants)?;
            let limits = Limits {
                memory_bytes: parse_size(&memory).map_err(|e| anyhow::anyhow!("--memory: {e}"))?,
                time: parse_duration(&time).map_err(|e| anyhow::anyhow!("--time: {e}"))?,
                instances: 1,
            };
            let mut stdin = Vec::new();
            if !std::io::stdin().is_terminal() {
                std::io::stdin().read_to_end(&mut stdin).context("reading stdin")?;
            }
            match kernel.run_command(&file, &grants, &args, stdin, limits) {
                Ok(out) => {
                    std::io::stdout().write_all(&out.stdout)?;
                    std::io::stderr().write_all(&out.stderr)?;
                    Ok(ExitCode::from(u8::try_from(out.status.clamp(0, 255)).unwrap_or(1)))
                }
                Err(CommandError::Trap { program, reason, stdout, stderr }) => {
                    std::io::stdout().write_all(&stdout)?;
                    std::io::stderr().write_all(&stderr)?;
                    eprintln!("error: {program}: {reason}");
                    Ok(ExitCode::from(exit::CARET_FAILED))
                }
                Err(e) => Err(e.into()),
            }
        }
        Command::Audit { subject, fail_on, since } => {
            let since = since
                .map(|s| humantime::parse_duration(&s).with_context(|| format!("`--since {s}`: give a duration like 7d or 12h")))
                .transpose()?;
            let kernel = open_kernel(&global, home, None)?;
            let subject = match subject {
                None => AuditSubject::Installed,
                Some(s) if std::path::Path::new(&s).exists() => AuditSubject::File(PathBuf::from(s)),
                Some(s) => AuditSubject::Caret(s),
            };
            let report = kernel.audit_report(&subject, since)?;
            crate::audit_view::print(&report, global.json)?;
            Ok(if crate::audit_view::fails(&report, fail_on) { ExitCode::from(crate::audit_view::FINDINGS) } else { ExitCode::SUCCESS })
        }
        Command::AuditLog { denied, caret, limit } => {
            let config = load_config(&global, &home)?;
            init_logging(&config);
            let path = home.join("audit.jsonl");
            let (records, bad) = AuditLog::read(&path).with_context(|| format!("reading {}", path.display()))?;
            let selected: Vec<_> = records
                .into_iter()
                .filter(|r| !denied || r.decision == Decision::Denied)
                .filter(|r| caret.as_deref().is_none_or(|c| r.caret.as_deref() == Some(c)))
                .collect();
            let skip = selected.len().saturating_sub(limit);
            output::audit(&selected[skip..], &bad, &path, global.json)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Installs NAME@REQ with its dependencies from a registry directory, showing each step, and
/// compiles what it installed so the first call does not pay for it.
fn install_from_registry(kernel: &Kernel, registry: PathBuf, name: &str, req: &semver::VersionReq, json: bool) -> Result<Vec<InstalledCaret>> {
    let index = symphony_kernel::package_index::PackageIndex::new(registry);
    // One caret unless the plan says otherwise: resolve, then install and compile each.
    let mut steps = Steps::new(progress::Mode::detect(json), "install", 3);
    steps.step(&format!("resolving {name} {req} in {}", index.root().display()));
    let installed = kernel.install_from_registry(&index, name, req, &mut |event| match event {
        InstallProgress::Planned(plan) => steps.set_total(1 + 2 * plan.len() as u64),
        InstallProgress::Installing(e) => steps.step(&format!("verifying and installing {} {} (signed by {})", e.id, e.version, e.signer)),
    })?;
    for caret in &installed {
        steps.step(&format!("compiling {} {}", caret.manifest.id, caret.manifest.version));
        precompile(kernel, &caret.manifest.id, &steps);
    }
    steps.finish();
    Ok(installed)
}

/// Compiles an installed caret into the cache. A failure here is not an install failure (the
/// component was validated); the first call reports it in full.
fn precompile(kernel: &Kernel, id: &str, steps: &Steps) {
    if let Err(e) = kernel.load(id) {
        steps.println(&format!("warning: {id} is installed but did not compile: {e}"));
    }
}

fn caret(kernel: &Kernel, command: CaretCommand, json: bool) -> Result<ExitCode> {
    match command {
        CaretCommand::Install { path, registry: Some(registry), .. } => {
            let spec = path.to_string_lossy().into_owned();
            let (name, req) = match spec.split_once('@') {
                Some((n, r)) => (n.to_owned(), semver::VersionReq::parse(r).with_context(|| format!("`{r}` is not a version requirement"))?),
                None => (spec.clone(), semver::VersionReq::STAR),
            };
            for installed in install_from_registry(kernel, registry, &name, &req, json)? {
                output::installed(&kernel.info(&installed.manifest.id)?, json)?;
            }
        }
        CaretCommand::Update { id, registry } => {
            let current = kernel.info(&id)?.installed.manifest.version;
            let req = semver::VersionReq::parse(&format!("^{current}")).context("version requirement")?;
            let installed = install_from_registry(kernel, registry, &id, &req, json)?;
            match installed.iter().find(|c| c.manifest.id == id) {
                Some(c) if c.manifest.version != current => {
                    output::message(&format!("updated {id} {current} -> {}", c.manifest.version), json)?
                }
                _ => output::message(&format!("{id} {current} is the newest compatible version"), json)?,
            }
        }
        CaretCommand::Install { path, manifest, grant_requested, allow_unsigned, registry: None } => {
            let steps = Steps::new(progress::Mode::detect(json), "install", 2);
            steps.step(&format!("verifying and installing {}", path.display()));
            let installed = match manifest {
                Some(m) => kernel.install_files(&path, &m)?,
                None if path.is_file() => kernel.install_package(&path, allow_unsigned)?,
                None => kernel.install_dir(&path)?,
            };
            let id = installed.manifest.id.clone();
            steps.step(&format!("compiling {id} {}", installed.manifest.version));
            precompile(kernel, &id, &steps);
            steps.finish();
            if grant_requested && !installed.manifest.capabilities.is_empty() {
                kernel.grant(&id, &installed.manifest.capabilities, &who())?;
            }
            output::installed(&kernel.info(&id)?, json)?;
        }
        CaretCommand::List => output::caret_list(&kernel.list()?, json)?,
        CaretCommand::Info { id } => output::caret_info(&kernel.info(&id)?, json)?,
        CaretCommand::Remove { id } => {
            let removed = kernel.remove(&id)?;
            output::message(&format!("removed {} {}", removed.manifest.id, removed.manifest.version), json)?;
        }
        CaretCommand::Reload { id } => {
            kernel.registry().request_reload(&id)?;
            output::message(&format!("{id}: reload requested; running kernels swap it in within 10 ms"), json)?;
        }
        CaretCommand::Rollback { id } => {
            let restored = kernel.rollback(&id)?;
            output::message(&format!("{} is back at {}", restored.manifest.id, restored.manifest.version), json)?;
        }
        CaretCommand::Grant { id, capabilities } => {
            let caps = parse_caps(&capabilities)?;
            kernel.grant(&id, &caps, &who())?;
            output::caret_info(&kernel.info(&id)?, json)?;
        }
        CaretCommand::Revoke { id, capabilities } => {
            let caps = parse_caps(&capabilities)?;
            let removed = kernel.revoke(&id, &caps)?;
            for cap in &caps {
                if !removed.contains(cap) {
                    eprintln!("note: `{cap}` was not granted to {id}");
                }
            }
            output::caret_info(&kernel.info(&id)?, json)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
