//! `symphony dev <caret-dir>`: rebuilds a caret when its sources change and installs it, and
//! every kernel running on the same home — the IDE, `symphony start`, this command's own —
//! swaps the new version in without dropping a call (`Kernel::watch_installs`). A failed build,
//! a refused component or a refused swap leaves the running version serving, and says why.

use crate::cli::{open_kernel, Global};
use anyhow::{Context, Result};
use notify_debouncer_mini::notify::RecursiveMode;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime};
use symphony_kernel::manifest::{Manifest, MANIFEST_FILE};
use symphony_kernel::swap::KernelEvent;
use symphony_kernel::{Decision, Kernel, Principal};

#[derive(clap::Args, Debug)]
pub struct DevArgs {
    /// The caret's directory (with `Symphony.toml` and, unless --prebuilt, `Cargo.toml`).
    pub dir: PathBuf,
    /// Do not run cargo: watch the built component the manifest points at and install it
    /// whenever it is replaced.
    #[arg(long)]
    pub prebuilt: bool,
    /// After each install, call this op (through this process's kernel) and print the answer.
    #[arg(long)]
    pub call: Option<String>,
    /// The payload for --call.
    #[arg(long, default_value = "")]
    pub payload: String,
    /// Build and install once, then exit (no watching).
    #[arg(long)]
    pub once: bool,
    /// How long the files must be quiet before a rebuild.
    #[arg(long, default_value = "30ms")]
    pub debounce: String,
}

/// What one rebuild came to.
enum Cycle {
    Installed,
    Failed,
}

pub fn run(global: &Global, home: PathBuf, args: DevArgs) -> Result<ExitCode> {
    let dir = args.dir.canonicalize().with_context(|| format!("{}", args.dir.display()))?;
    let debounce = humantime::parse_duration(&args.debounce).with_context(|| format!("--debounce {}", args.debounce))?;
    let kernel = open_kernel(global, home, None)?;
    let _follow = kernel.watch_installs(symphony_kernel::swap::WATCH_INTERVAL);
    if args.once {
        return Ok(match cycle(&kernel, &dir, &args) {
            Cycle::Installed => ExitCode::SUCCESS,
            Cycle::Failed => ExitCode::FAILURE,
        });
    }
    // Watch first, then build: a change saved during the first build is not missed.
    let (tx, rx) = std::sync::mpsc::channel();
    let mut debouncer = notify_debouncer_mini::new_debouncer(debounce, tx).context("starting the file watcher")?;
    debouncer.watcher().watch(&dir, RecursiveMode::Recursive).with_context(|| format!("watching {}", dir.display()))?;
    let mut last = fingerprint(&dir, args.prebuilt);
    cycle(&kernel, &dir, &args);
    let watched = if args.prebuilt { "the built component" } else { "sources and manifest" };
    eprintln!("watching {} of {} (Ctrl-C to stop)", watched, dir.display());
    for batch in rx {
        let Ok(events) = batch else { continue };
        let component = Manifest::load(&dir.join(MANIFEST_FILE)).ok().map(|m| dir.join(m.component));
        if !events.iter().any(|e| relevant(&dir, &e.path, args.prebuilt, component.as_deref())) {
            continue;
        }
        // Notifiers also report reads (cargo reading the sources): only a real change counts.
        let now = fingerprint(&dir, args.prebuilt);
        if now != last {
            last = now;
            cycle(&kernel, &dir, &args);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Size and modification time of every watched file, in path order.
fn fingerprint(dir: &Path, prebuilt: bool) -> Vec<(PathBuf, u64, Option<SystemTime>)> {
    let component = Manifest::load(&dir.join(MANIFEST_FILE)).ok().map(|m| dir.join(m.component));
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                if prebuilt || relevant(dir, &path, false, None) {
                    stack.push(path);
                }
            } else if relevant(dir, &path, prebuilt, component.as_deref()) {
                out.push((path, meta.len(), meta.modified().ok()));
            }
        }
    }
    out.sort();
    out
}

/// Whether a changed path should trigger a rebuild: sources and the manifest (not cargo's
/// output, nor the component this command writes itself), or in --prebuilt mode the
/// component alone.
fn relevant(dir: &Path, path: &Path, prebuilt: bool, component: Option<&Path>) -> bool {
    if prebuilt {
        return component.is_some_and(|c| c == path);
    }
    let Ok(rel) = path.strip_prefix(dir) else { return false };
    if rel.as_os_str().is_empty() {
        return false;
    }
    let first = rel.components().next().map(|c| c.as_os_str().to_string_lossy().into_owned()).unwrap_or_default();
    let name = rel.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let editor_noise = name.starts_with('.') || name.ends_with('~') || name.ends_with(".swp");
    // cargo rewrites Cargo.lock on every build: watching it would rebuild forever.
    !matches!(first.as_str(), "target" | "build" | ".git" | "Cargo.lock") && !editor_noise
}

fn cycle(kernel: &Kernel, dir: &Path, args: &DevArgs) -> Cycle {
    let started = Instant::now();
    let since = SystemTime::now();
    let manifest = match Manifest::load(&dir.join(MANIFEST_FILE)) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("manifest refused (the running version keeps serving):\n  {e}");
            return Cycle::Failed;
        }
    };
    if !args.prebuilt {
        eprintln!("building {} …", manifest.id);
        match carets::compile::compile(dir, true) {
            Ok(compiled) => {
                let dest = dir.join(&manifest.component);
                let written = dest.parent().map_or(Ok(()), std::fs::create_dir_all).and_then(|()| std::fs::write(&dest, &compiled.bytes));
                if let Err(e) = written {
                    eprintln!("cannot write {}: {e}", dest.display());
                    return Cycle::Failed;
                }
            }
            Err(e) => {
                eprintln!("build failed (the running version keeps serving):\n{e}");
                return Cycle::Failed;
            }
        }
    }
    let component = dir.join(&manifest.component);
    if let (Ok(bytes), Ok(current)) = (std::fs::read(&component), kernel.info(&manifest.id)) {
        let unchanged = symphony_kernel::registry::content_hash(&bytes) == current.installed.hash
            && current.installed.manifest == manifest_as_installed(&manifest);
        if unchanged {
            eprintln!("{} unchanged (same component and manifest); nothing to swap", manifest.id);
            return Cycle::Installed;
        }
    }
    let events = kernel.subscribe();
    let installed = match kernel.install_dir(dir) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("refused (the running version keeps serving): {e}");
            return Cycle::Failed;
        }
    };
    eprintln!(
        "installed {} {} (blake3 {}) {:.0} ms after the change",
        installed.manifest.id,
        installed.manifest.version,
        &installed.hash[..16],
        started.elapsed().as_secs_f64() * 1e3
    );
    for event in events.try_iter() {
        report(&event);
    }
    if let Some(op) = &args.call {
        match kernel.invoke(&Principal::User, &format!("caret/{}", installed.manifest.id), op, &args.payload) {
            Ok(answer) => println!("{answer}"),
            Err(e) => eprintln!("{op}: {e}"),
        }
        eprintln!("first call answered {:.0} ms after the change", started.elapsed().as_secs_f64() * 1e3);
    }
    // In the background: the next change must not wait for this report.
    let (log, id) = (kernel.audit_log().path().to_path_buf(), installed.manifest.id.clone());
    std::thread::spawn(move || report_other_kernels(&log, &id, since));
    Cycle::Installed
}

/// The manifest as the registry records it (the component always at the same place there).
fn manifest_as_installed(manifest: &Manifest) -> Manifest {
    Manifest { component: PathBuf::from("component.wasm"), ..manifest.clone() }
}

fn report(event: &KernelEvent) {
    match event {
        KernelEvent::Swapped(r) => eprintln!(
            "swapped {} {} -> {} in this process ({} bytes of state carried, {:.1} ms)",
            r.id,
            &r.from_hash[..12],
            &r.to_hash[..12],
            r.state_bytes.unwrap_or(0),
            r.took_us as f64 / 1e3
        ),
        KernelEvent::SwapFailed { id, reason, .. } => eprintln!("{id}: swap refused here: {reason}"),
    }
}

/// Other kernels on this home (the IDE …) record their swaps in the shared audit log; show
/// what they did with this install, waiting briefly for their watchers to notice it.
fn report_other_kernels(log: &Path, id: &str, since: SystemTime) {
    let since = humantime::format_rfc3339_millis(since).to_string();
    let own = std::process::id().to_string();
    let give_up = Instant::now() + Duration::from_millis(300);
    let mut shown = 0;
    while Instant::now() < give_up {
        std::thread::sleep(Duration::from_millis(50));
        let Ok((records, _)) = symphony_kernel::AuditLog::read(log) else { return };
        let swaps: Vec<_> = records
            .iter()
            .filter(|r| r.decision == Decision::Event && r.caret.as_deref() == Some(id) && r.time >= since)
            .filter(|r| !r.detail.as_deref().unwrap_or_default().contains(&format!("pid {own}")))
            .collect();
        for r in swaps.iter().skip(shown) {
            eprintln!("  a running kernel: {} {} ({})", r.capability.as_deref().unwrap_or("-"), r.target, r.detail.as_deref().unwrap_or(""));
        }
        shown = swaps.len();
    }
}
