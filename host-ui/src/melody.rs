//! `symphony melody validate|run`: check a melody against the installed carets, run it through
//! the proxy with live progress — as written, or with Maestro's learning policy deciding per
//! node — resume a stopped run, and summarise what happened. Also `symphony conductor
//! train|stats`, which work on Maestro's policy.

use crate::cli::{open_kernel, Global};
use crate::exit;
use anyhow::{Context, Result};
use clap::Subcommand;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use symphony_conductor::maestro::{read_episodes, Maestro, MaestroOptions};
use symphony_conductor::{run_melody, InstalledTargets, Melody, RunSettings, RunStore};
use symphony_dag::{Cancel, EventKind};
use symphony_kernel::{Kernel, Principal};

#[derive(Subcommand, Debug)]
pub enum MelodyCommand {
    /// Check a melody file: syntax, references, cycles, and that its targets are installed.
    Validate { file: PathBuf },
    /// Run a melody (or resume a run) through the proxy.
    Run {
        file: PathBuf,
        /// Resume this run: nodes it finished are not run again.
        #[arg(long, value_name = "RUN_ID")]
        resume: Option<String>,
        /// Most nodes running at once.
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
        /// `manual`: as written. `maestro`: a learning policy decides per node (run, an
        /// alternative, retry with another, skip an optional node nothing needs).
        #[arg(long, value_enum, default_value_t = Mode::Manual)]
        mode: Mode,
        #[command(flatten)]
        policy: PolicyArgs,
    },
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Manual,
    Maestro,
}

/// Which Maestro policy, and how it is run.
#[derive(clap::Args, Debug, Clone)]
pub struct PolicyArgs {
    /// A Python file with a `Policy` class (decide, update, state, load, stats) instead of the
    /// built-in LinUCB.
    #[arg(long, value_name = "FILE.py")]
    pub policy: Option<PathBuf>,
    /// Seed of the policy's random choices (runs are reproducible).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// How long one decision may take before the node runs as written.
    #[arg(long, default_value = "250ms", value_parser = humantime::parse_duration)]
    pub decision_limit: Duration,
}

impl PolicyArgs {
    fn options(&self, home: &std::path::Path) -> MaestroOptions {
        MaestroOptions { home: home.to_path_buf(), policy_file: self.policy.clone(), seed: self.seed, limit: self.decision_limit }
    }
}

/// `symphony conductor train`: a fresh policy learns from every recorded episode.
pub fn train(home: &std::path::Path, args: &PolicyArgs, json: bool) -> Result<ExitCode> {
    let options = args.options(home);
    let episodes = read_episodes(&options.episodes())?;
    // Fresh: the old checkpoint is kept aside, not read, and replaced only when training is done.
    let checkpoint = options.checkpoint();
    let aside = checkpoint.with_extension("json.before-train");
    if checkpoint.exists() {
        std::fs::rename(&checkpoint, &aside).with_context(|| format!("moving {} aside", checkpoint.display()))?;
    }
    let trained = Maestro::start(options.clone()).map_err(anyhow::Error::from).and_then(|m| {
        let n = m.train(&episodes).map_err(anyhow::Error::msg)?;
        m.checkpoint()?;
        Ok(n)
    });
    match trained {
        Ok(n) => {
            let _ = std::fs::remove_file(&aside);
            if json {
                println!("{}", serde_json::json!({ "episodes": n, "checkpoint": checkpoint }));
            } else {
                println!("trained on {n} episodes from {}; checkpoint {}", options.episodes().display(), checkpoint.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            if aside.exists() {
                let _ = std::fs::rename(&aside, &checkpoint);
            }
            Err(e.context("training"))
        }
    }
}

/// `symphony conductor stats`.
pub fn stats(home: &std::path::Path, args: &PolicyArgs, json: bool) -> Result<ExitCode> {
    let options = args.options(home);
    let maestro = Maestro::start(options.clone())?;
    let stats = maestro.stats().map_err(anyhow::Error::msg).context("the policy's stats")?;
    if json {
        println!("{}", serde_json::to_string_pretty(&stats)?);
        return Ok(ExitCode::SUCCESS);
    }
    let rows = stats.as_array().cloned().unwrap_or_default();
    if rows.is_empty() {
        println!("nothing learned yet: run a melody with `--mode maestro` (checkpoint {})", options.checkpoint().display());
        return Ok(ExitCode::SUCCESS);
    }
    println!("{:<20} {:<36} {:>8} {:>12} {:>11}", "NODE", "ALTERNATIVE", "CHOICES", "MEAN REWARD", "CONFIDENCE");
    for r in rows {
        let mean = r["mean_reward"].as_f64().map_or_else(|| "-".to_owned(), |m| format!("{m:.3}"));
        let conf = r["confidence"].as_f64().map_or_else(|| "-".to_owned(), |c| format!("±{c:.3}"));
        println!("{:<20} {:<36} {:>8} {:>12} {:>11}", r["node"].as_str().unwrap_or(""), r["arm"].as_str().unwrap_or(""), r["choices"], mean, conf);
    }
    Ok(ExitCode::SUCCESS)
}

fn fmt_duration(d: Duration) -> String {
    if d < Duration::from_millis(1) {
        format!("{} µs", d.as_micros())
    } else if d < Duration::from_secs(10) {
        format!("{:.1} ms", d.as_secs_f64() * 1000.0)
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

pub fn run(global: &Global, home: PathBuf, command: MelodyCommand) -> Result<ExitCode> {
    let kernel = open_kernel(global, home.clone(), None)?;
    match command {
        MelodyCommand::Validate { file } => match Melody::load(&file, Some(&InstalledTargets(&kernel))) {
            Ok(m) => {
                if global.json {
                    let levels: Vec<Vec<&str>> =
                        m.dag.levels().iter().map(|l| l.iter().map(|&i| m.nodes[i].id.as_str()).collect()).collect();
                    println!("{}", serde_json::json!({ "ok": true, "name": m.name, "nodes": m.nodes.len(), "levels": levels }));
                } else {
                    println!("{}: ok — {} nodes in {} levels", file.display(), m.nodes.len(), m.dag.levels().len());
                    for (i, level) in m.dag.levels().iter().enumerate() {
                        let ids: Vec<&str> = level.iter().map(|&n| m.nodes[n].id.as_str()).collect();
                        println!("  level {i}: {}", ids.join(", "));
                    }
                }
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                if global.json {
                    let problems: Vec<_> = e.problems.iter().map(|p| serde_json::json!({"line": p.line, "message": p.message})).collect();
                    println!("{}", serde_json::json!({ "ok": false, "file": e.file, "problems": problems }));
                } else {
                    eprintln!("{e}");
                }
                Ok(ExitCode::from(exit::INVALID))
            }
        },
        MelodyCommand::Run { file, resume, concurrency, mode, policy } => {
            let melody = match Melody::load(&file, Some(&InstalledTargets(&kernel))) {
                Ok(m) => m,
                Err(e) => {
                    eprintln!("{e}");
                    return Ok(ExitCode::from(exit::INVALID));
                }
            };
            let maestro = match mode {
                Mode::Manual => None,
                Mode::Maestro => Some(Maestro::start(policy.options(&home))?),
            };
            run_it(&kernel, &melody, &home, RunSettings { concurrency, resume, principal: Principal::User, maestro }, global.json)
        }
    }
}

fn run_it(kernel: &Kernel, melody: &Melody, home: &std::path::Path, settings: RunSettings, json: bool) -> Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the runtime")?;
    let store = RunStore::in_home(home);
    let maestro = settings.maestro.is_some();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<symphony_dag::Event>();
    let cancel = Cancel::default();
    let total = melody.nodes.len() as u64;
    let live = std::io::stderr().is_terminal() && !json;
    let bar = if live {
        let bar = indicatif::ProgressBar::new(total);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar.enable_steady_tick(Duration::from_millis(100));
        Some(bar)
    } else {
        None
    };
    let result = runtime.block_on(async {
        let ctrl_c = cancel.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                ctrl_c.cancel();
            }
        });
        let printer = {
            let bar = bar.clone();
            tokio::spawn(async move {
                while let Some(e) = rx.recv().await {
                    let line = match &e.kind {
                        EventKind::Started { attempt: 1 } => format!("started  {}", e.id),
                        EventKind::Started { attempt } => format!("started  {} (attempt {attempt})", e.id),
                        EventKind::Retrying { attempt, error, backoff } => format!("retrying {} after attempt {attempt} in {backoff:?}: {error}", e.id),
                        EventKind::Done { duration, .. } => format!("done     {} in {}", e.id, fmt_duration(duration.to_owned())),
                        EventKind::Failed { error, .. } => format!("FAILED   {}: {error}", e.id),
                        EventKind::Skipped { because } => format!("skipped  {}: {because}", e.id),
                        EventKind::Resumed => format!("resumed  {} (finished earlier)", e.id),
                    };
                    match &bar {
                        Some(bar) => {
                            if matches!(e.kind, EventKind::Done { .. } | EventKind::Failed { .. } | EventKind::Skipped { .. } | EventKind::Resumed) {
                                bar.inc(1);
                            }
                            bar.set_message(e.id.to_string());
                            if matches!(e.kind, EventKind::Failed { .. } | EventKind::Retrying { .. }) {
                                bar.println(line);
                            }
                        }
                        None if !json => eprintln!("{line}"),
                        None => {}
                    }
                }
            })
        };
        let r = run_melody(kernel, melody, &store, settings, Some(tx), cancel.clone()).await;
        let _ = printer.await;
        r
    });
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let run = result?;
    kernel.audit_log().flush();
    let lines = &run.summary;
    let (critical_total, critical) = &run.report.critical_path;
    let critical_ids: Vec<&str> = critical.iter().map(|&i| melody.nodes[i].id.as_str()).collect();
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "run_id": run.run_id,
                "ok": run.report.ok(),
                "cancelled": run.report.cancelled,
                "elapsed_ms": run.report.elapsed.as_millis(),
                "critical_path": { "ms": critical_total.as_millis(), "nodes": critical_ids },
                "nodes": lines,
                "dir": run.dir,
                "mode": if maestro { "maestro" } else { "manual" },
                "fallbacks": run.fallbacks,
            }))?
        );
    } else {
        println!("run {} of {} — {}", run.run_id, melody.name, if run.report.ok() { "ok" } else if run.report.cancelled { "cancelled" } else { "FAILED" });
        println!("{:<24} {:<10} {:>10} {:>9} {:>10}", "NODE", "STATE", "TIME", "ATTEMPTS", "OUTPUT");
        for l in lines {
            let state = if l.resumed { "resumed" } else { l.state };
            let time = l.millis.map_or_else(|| "-".to_owned(), |ms| format!("{ms} ms"));
            let attempts = l.attempts.map_or_else(|| "-".to_owned(), |a| a.to_string());
            let out = l.output_bytes.map_or_else(|| "-".to_owned(), |b| format!("{b} B"));
            println!("{:<24} {:<10} {:>10} {:>9} {:>10}", l.id, state, time, attempts, out);
            if let Some(e) = &l.error {
                println!("    {e}");
            }
        }
        println!("critical path: {} ({})", critical_ids.join(" → "), fmt_duration(*critical_total));
        for why in &run.fallbacks {
            println!("maestro: {why}");
        }
        println!("outputs: {}", run.dir.join("outputs").display());
        if !run.report.ok() {
            println!("resume with: symphony melody run {} --resume {}", melody.file.display(), run.run_id);
        }
    }
    Ok(if run.report.ok() { ExitCode::SUCCESS } else { ExitCode::from(exit::FAILURE) })
}
