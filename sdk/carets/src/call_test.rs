//! `carets test`: builds the caret, runs its unit tests, then its call tests — `tests/*.toml`
//! files of `[[call]]`s made through the real kernel's proxy with exactly the capabilities the
//! manifest requests, so a test passes only if the caret works with what it declares.

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use symphony_kernel::manifest::Manifest;
use symphony_kernel::{AuditLog, CallError, CallObserver, Config, Decision, ErrorCode, Kernel, KernelOptions, Principal};
use toml::Spanned;

/// One `tests/*.toml` file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseFile {
    /// The directory the caret sees as `workspace`, relative to the caret's directory.
    workspace: Option<PathBuf>,
    #[serde(default, rename = "call")]
    calls: Vec<Case>,
}

/// One call and what its answer must be.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: Spanned<String>,
    op: String,
    #[serde(default)]
    input: Input,
    expect: Option<String>,
    expect_contains: Option<OneOrMany>,
    expect_json: Option<toml::Value>,
    expect_error: Option<ErrorCode>,
    error_contains: Option<String>,
    #[serde(default)]
    expect_stream: bool,
}

/// The payload: text as is, or a TOML value sent as JSON.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Input {
    Text(String),
    Json(toml::Value),
}

impl Default for Input {
    fn default() -> Self {
        Input::Text(String::new())
    }
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn all(&self) -> &[String] {
        match self {
            OneOrMany::One(s) => std::slice::from_ref(s),
            OneOrMany::Many(v) => v,
        }
    }
}

/// What a call produced.
struct Outcome {
    result: Result<String, CallError>,
    chunks: Vec<String>,
}

#[derive(Default)]
struct Chunks(Mutex<Vec<String>>);

impl CallObserver for Chunks {
    fn chunk(&self, _caret: &str, chunk: &str) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(chunk.to_owned());
    }
}

/// A case whose expectations were not met: why, in lines.
type Mismatch = Vec<String>;

impl Case {
    fn payload(&self) -> Result<String> {
        Ok(match &self.input {
            Input::Text(t) => t.clone(),
            Input::Json(v) => serde_json::to_string(v).context("the input as JSON")?,
        })
    }

    fn has_expectation(&self) -> bool {
        self.expect.is_some() || self.expect_contains.is_some() || self.expect_json.is_some() || self.expect_error.is_some()
    }

    /// Checks an outcome against every expectation; `Ok` when all hold.
    fn check(&self, outcome: &Outcome) -> Result<(), Mismatch> {
        let mut why = Vec::new();
        match (&outcome.result, self.expect_error) {
            (Err(e), Some(code)) => {
                if e.code != code {
                    why.push(format!("expected error `{code}`, got error `{}`: {}", e.code, e.message));
                }
                if let Some(part) = &self.error_contains
                    && !e.to_string().contains(part.as_str())
                {
                    why.push(format!("the error does not contain {part:?}: {e}"));
                }
            }
            (Ok(answer), Some(code)) => why.push(format!("expected error `{code}`, got the answer {answer:?}")),
            (Err(e), None) => why.push(format!("the call failed: {e}")),
            (Ok(answer), None) => {
                if let Some(expected) = &self.expect
                    && answer != expected
                {
                    why.push(format!("expected {expected:?}"));
                    why.push(format!("     got {answer:?}"));
                }
                for part in self.expect_contains.iter().flat_map(OneOrMany::all) {
                    if !answer.contains(part.as_str()) {
                        why.push(format!("the answer does not contain {part:?}: {answer:?}"));
                    }
                }
                if let Some(expected) = &self.expect_json {
                    match (serde_json::from_str::<serde_json::Value>(answer), serde_json::to_value(expected)) {
                        (Ok(got), Ok(want)) if got == want => {}
                        (Ok(got), Ok(want)) => why.push(format!("expected JSON {want}, got {got}")),
                        (Err(e), _) => why.push(format!("the answer is not JSON ({e}): {answer:?}")),
                        (_, Err(e)) => why.push(format!("expect_json cannot be JSON: {e}")),
                    }
                }
                if self.expect_stream {
                    let streamed = outcome.chunks.concat();
                    if outcome.chunks.is_empty() {
                        why.push("expected the answer to be streamed, but no chunk was emitted".to_owned());
                    } else if streamed != *answer {
                        why.push(format!("the streamed chunks {streamed:?} differ from the answer {answer:?}"));
                    }
                }
            }
        }
        if why.is_empty() { Ok(()) } else { Err(why) }
    }
}

/// The 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset).map_or(1, |before| before.lines().count().max(1))
}

fn load_cases(path: &Path, text: &str) -> Result<CaseFile> {
    let file: CaseFile = toml::from_str(text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    for case in &file.calls {
        if !case.has_expectation() {
            bail!(
                "{}:{}: call {:?} expects nothing; give `expect`, `expect_contains`, `expect_json` or `expect_error`",
                path.display(),
                line_of(text, case.name.span().start),
                case.name.get_ref()
            );
        }
        if case.error_contains.is_some() && case.expect_error.is_none() {
            bail!("{}:{}: `error_contains` needs `expect_error`", path.display(), line_of(text, case.name.span().start));
        }
    }
    Ok(file)
}

/// The call-test files of a caret, sorted.
fn case_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let tests = dir.join("tests");
    let mut files = Vec::new();
    let entries = match std::fs::read_dir(&tests) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(files),
        Err(e) => return Err(e).with_context(|| format!("reading {}", tests.display())),
    };
    for entry in entries {
        let path = entry.with_context(|| format!("reading {}", tests.display()))?.path();
        if path.extension().is_some_and(|e| e == "toml") {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Installs a caret (directory or `.caret` file) and grants what its manifest requests.
fn install_granted(kernel: &Kernel, path: &Path) -> Result<Manifest> {
    let installed = if path.is_file() {
        kernel.install_package(path, true).with_context(|| format!("installing {}", path.display()))?
    } else {
        kernel.install_dir(path).with_context(|| format!("installing {}", path.display()))?
    };
    let manifest = installed.manifest;
    if !manifest.capabilities.is_empty() {
        kernel.grant(&manifest.id, &manifest.capabilities, "carets test")?;
    }
    Ok(manifest)
}

fn run_unit_tests(dir: &Path) -> Result<()> {
    println!("running unit tests (cargo test)");
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()))
        .current_dir(dir)
        // Unit and integration tests; doc tests of a cdylib caret only add noise.
        .args(["test", "--quiet", "--lib", "--tests"])
        .status()
        .context("running cargo test")?;
    if !status.success() {
        bail!("unit tests failed (cargo test; its output is above)");
    }
    Ok(())
}

/// `carets test DIR`.
pub fn test(dir: &Path, with: &[PathBuf], unit: bool, filter: Option<&str>) -> Result<ExitCode> {
    let manifest = crate::component_build::build(dir)?;
    if unit {
        run_unit_tests(dir)?;
    }
    let files = case_files(dir)?;
    if files.is_empty() {
        println!("no call tests: add `[[call]]`s to {}", dir.join("tests/calls.toml").display());
        return Ok(ExitCode::SUCCESS);
    }
    let home = tempfile::tempdir().context("a temporary kernel home")?;
    let (mut passed, mut failed, mut filtered) = (0usize, Vec::new(), 0usize);
    for path in &files {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let cases = load_cases(path, &text)?;
        let workspace = match &cases.workspace {
            Some(w) => dir.join(w).canonicalize().with_context(|| format!("{}: workspace {}", path.display(), w.display()))?,
            None => dir.canonicalize().with_context(|| format!("{}", dir.display()))?,
        };
        let kernel = Kernel::open(KernelOptions { home: home.path().to_path_buf(), workspace, config: Config::default() })?;
        for other in with {
            install_granted(&kernel, other)?;
        }
        for (dep, req) in &manifest.dependencies {
            match kernel.info(dep) {
                Ok(c) if req.matches(&c.installed.manifest.version) => {}
                Ok(c) => bail!("{} needs {dep} {req}, but --with gave {}", manifest.id, c.installed.manifest.version),
                Err(_) => bail!("{} depends on {dep} {req}: pass its directory or .caret with --with", manifest.id),
            }
        }
        let under_test = install_granted(&kernel, dir)?;
        let grants = if under_test.capabilities.is_empty() {
            "none".to_owned()
        } else {
            under_test.capabilities.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
        };
        let shown = path.strip_prefix(dir).unwrap_or(path);
        println!(
            "\nrunning {} call tests from {} ({} {}; grants: {grants})",
            cases.calls.len(),
            shown.display(),
            under_test.id,
            under_test.version
        );
        let compile = Instant::now();
        kernel.load(&under_test.id).with_context(|| format!("loading {}", under_test.id))?;
        println!("compiled {} in {:.0} ms", under_test.id, compile.elapsed().as_secs_f64() * 1e3);
        let target = format!("caret/{}", under_test.id);
        for case in &cases.calls {
            let name = case.name.get_ref();
            if filter.is_some_and(|f| !name.contains(f)) {
                filtered += 1;
                continue;
            }
            let payload = case.payload()?;
            let chunks = Arc::new(Chunks::default());
            let start = Instant::now();
            let result = kernel.invoke_observed(&Principal::User, &target, &case.op, &payload, chunks.clone());
            let took = start.elapsed();
            let chunks = std::mem::take(&mut *chunks.0.lock().unwrap_or_else(|p| p.into_inner()));
            match case.check(&Outcome { result, chunks }) {
                Ok(()) => {
                    passed += 1;
                    println!("call {name} ... ok ({:.1} ms)", took.as_secs_f64() * 1e3);
                }
                Err(why) => {
                    println!("call {name} ... FAILED");
                    failed.push((format!("{}:{}", shown.display(), line_of(&text, case.name.span().start)), name.clone(), why));
                }
            }
        }
    }
    let (records, _) = AuditLog::read(&home.path().join("audit.jsonl")).context("reading the test kernel's audit log")?;
    let denials: Vec<_> = records.iter().filter(|r| r.decision == Decision::Denied).collect();
    if !denials.is_empty() {
        println!("\n{} capability denials during the calls (the caret tried what it was not granted):", denials.len());
        for d in denials.iter().take(10) {
            println!("  {} {} -> {}", d.principal, d.capability.as_deref().unwrap_or("-"), d.target);
        }
    }
    if !failed.is_empty() {
        println!("\nfailures:");
        for (place, name, why) in &failed {
            println!("\n---- {name} ({place})");
            for line in why {
                println!("{line}");
            }
        }
    }
    let verdict = if failed.is_empty() { "ok" } else { "FAILED" };
    println!("\ncall test result: {verdict}. {passed} passed; {} failed; {filtered} filtered out", failed.len());
    Ok(if failed.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
