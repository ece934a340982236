//! `symphony start`: the embedded default — the example workspace with the shipped carets
//! installed and granted — served to the IDE's UI (server mode, the URL with its token is
//! printed), or with `--prompt` an interactive prompt to try the kernel.

use crate::cli::{open_kernel, Global};
use crate::output;
use anyhow::{Context, Result};
use clap::Args;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use symphony_kernel::{Capability, Decision, Kernel, Principal};

#[derive(Args, Debug)]
pub struct StartArgs {
    /// Directory whose subdirectories with a `Symphony.toml` are the shipped carets.
    #[arg(long, env = "SYMPHONY_CARETS")]
    pub carets: Option<PathBuf>,
    /// Set up, report and exit (no server, no prompt).
    #[arg(long, conflicts_with = "prompt")]
    pub setup_only: bool,
    /// An interactive prompt instead of the server.
    #[arg(long)]
    pub prompt: bool,
    #[command(flatten)]
    pub serve: crate::serve::ServeArgs,
}

/// Finds the shipped carets: `--carets`, else `extensions/` next to the current directory.
fn carets_dir(given: Option<&Path>) -> Result<PathBuf> {
    if let Some(d) = given {
        return Ok(d.to_path_buf());
    }
    let guess = std::env::current_dir()?.join("extensions");
    if guess.is_dir() {
        return Ok(guess);
    }
    anyhow::bail!("cannot find the shipped carets: pass `--carets <symphony>/extensions` (or run `cargo xtask start`)")
}

fn shipped(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("Symphony.toml").is_file())
        .collect();
    out.sort();
    Ok(out)
}

/// Installs (or updates) the shipped carets and grants what they ask.
fn provision(kernel: &Kernel, dir: &Path) -> Result<()> {
    for caret_dir in shipped(dir)? {
        let (manifest, _, bytes) = symphony_kernel::registry::Registry::read_caret_dir(&caret_dir)?;
        // The registry records this hash; equal means the shipped caret is unchanged.
        let hash = symphony_kernel::registry::content_hash(&bytes);
        let current = kernel.info(&manifest.id).ok();
        if current.as_ref().is_none_or(|c| c.installed.hash != hash) {
            kernel.install_dir(&caret_dir)?;
            println!("installed {} {}", manifest.id, manifest.version);
        }
        let granted: Vec<Capability> = kernel.info(&manifest.id)?.grants.into_iter().map(|g| g.capability).collect();
        let missing: Vec<Capability> = manifest.capabilities.iter().filter(|c| !granted.contains(c)).cloned().collect();
        if !missing.is_empty() {
            kernel.grant(&manifest.id, &missing, "symphony start (shipped caret)")?;
            let list: Vec<String> = missing.iter().map(ToString::to_string).collect();
            println!("granted {}: {}", manifest.id, list.join(", "));
        }
    }
    Ok(())
}

const HELP: &str = "\
commands:
  list                              installed carets
  info <id>                         one caret, with its grants
  call <id> <op> [payload]          call through the proxy (tokens stream as they come)
  grant <id> <capability>           grant (must narrow what the manifest asks)
  revoke <id> <capability>          revoke
  audit [denied]                    the latest audit records
  help, quit";

/// The embedded default, ready to serve: the kernel opened, the shipped carets installed,
/// granted and loaded (what `start` and the desktop shell both begin with).
pub fn prepare(global: &Global, home: PathBuf, carets: Option<&Path>) -> Result<Kernel> {
    let dir = carets_dir(carets)?;
    let kernel = open_kernel(global, home.clone(), None)?;
    provision(&kernel, &dir)?;
    for report in kernel.load_all()? {
        match report {
            Ok(r) => println!("loaded {} ({:?})", r.id, r.cache),
            Err((id, e)) => eprintln!("warning: {id} did not load: {e}"),
        }
    }
    println!();
    println!("Symphony is running: home {}, workspace {}", home.display(), kernel.workspace().display());
    Ok(kernel)
}

pub fn start(global: &Global, home: PathBuf, args: StartArgs) -> Result<ExitCode> {
    let kernel = prepare(global, home.clone(), args.carets.as_deref())?;
    if args.setup_only {
        return Ok(ExitCode::SUCCESS);
    }
    if !args.prompt {
        return crate::serve::run_with(kernel, &home, args.serve);
    }
    println!("Try: call text-tools todos   ·   call ngram-complete complete {{\"prefix\":\"fn \"}}   ·   call aurora @render {{\"panel\":\"todos\"}}");
    println!("{HELP}");
    // `symphony dev` and installs from other terminals are swapped in while this runs.
    let _follow = kernel.watch_installs(symphony_kernel::swap::WATCH_INTERVAL);
    prompt(&kernel, global.json)
}

fn prompt(kernel: &Kernel, json: bool) -> Result<ExitCode> {
    let stdin = std::io::stdin();
    let interactive = stdin.is_terminal();
    loop {
        if interactive {
            print!("symphony> ");
            std::io::stdout().flush()?;
        }
        let mut line = String::new();
        if stdin.lock().read_line(&mut line)? == 0 {
            break;
        }
        let line = line.trim();
        let mut words = line.splitn(4, ' ');
        let result = match (words.next().unwrap_or(""), words.next(), words.next(), words.next()) {
            ("", ..) => Ok(()),
            ("quit" | "exit", ..) => break,
            ("help", ..) => {
                println!("{HELP}");
                Ok(())
            }
            ("list", ..) => kernel.list().map_err(Into::into).and_then(|l| output::caret_list(&l, json)),
            ("info", Some(id), ..) => kernel.info(id).map_err(Into::into).and_then(|c| output::caret_info(&c, json)),
            ("call", Some(id), Some(op), payload) => {
                let r = kernel.invoke_observed(
                    &Principal::User,
                    &format!("caret/{id}"),
                    op,
                    payload.unwrap_or("{}"),
                    std::sync::Arc::new(StreamToStdout),
                );
                println!();
                match r {
                    Ok(answer) => output::call_result(&answer, json),
                    Err(e) => output::call_error(&e, json),
                }
            }
            ("grant", Some(id), Some(cap), _) => cap
                .parse::<Capability>()
                .map_err(anyhow::Error::from)
                .and_then(|c| kernel.grant(id, &[c], "symphony start").map_err(Into::into))
                .map(|_| println!("granted")),
            ("revoke", Some(id), Some(cap), _) => cap
                .parse::<Capability>()
                .map_err(anyhow::Error::from)
                .and_then(|c| kernel.revoke(id, &[c]).map_err(Into::into))
                .map(|r| println!("{}", if r.is_empty() { "was not granted" } else { "revoked" })),
            ("audit", filter, ..) => {
                kernel.audit_log().flush();
                let path = kernel.audit_log().path().to_path_buf();
                symphony_kernel::AuditLog::read(&path).map_err(Into::into).and_then(|(records, bad)| {
                    let denied_only = filter == Some("denied");
                    let records: Vec<_> =
                        records.into_iter().filter(|r| !denied_only || r.decision == Decision::Denied).collect();
                    let skip = records.len().saturating_sub(20);
                    output::audit(&records[skip..], &bad, &path, json)
                })
            }
            (other, ..) => {
                println!("unknown or incomplete command `{other}`; type `help`");
                Ok(())
            }
        };
        if let Err(e) = result {
            eprintln!("error: {e:#}");
        }
    }
    kernel.audit_log().flush();
    Ok(ExitCode::SUCCESS)
}

struct StreamToStdout;

impl symphony_kernel::CallObserver for StreamToStdout {
    fn chunk(&self, _caret: &str, chunk: &str) {
        print!("{chunk}");
        let _ = std::io::stdout().flush();
    }
}
