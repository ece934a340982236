//! `cargo xtask`: builds the carets for wasm32-wasip2 and the web UI, runs every test, starts
//! the IDE, runs the benchmarks. Each step installs what it needs itself: the wasm targets,
//! libpython, the UI's npm packages, Debian's Chromium for the browser tests.

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::process::Command;

const WASM_TARGET: &str = "wasm32-wasip2";
/// Command packages are also built for preview 1, as most published WASI tools are.
const PREVIEW1_TARGET: &str = "wasm32-wasip1";

const USAGE: &str = "\
usage: cargo xtask <task>
  carets        build every caret in extensions/ for wasm32-wasip2 into <caret>/build/
  web           install the web UI's packages and build it into host-ui/web/dist
  test          build the carets and the UI, then run every test (Rust, Vitest, Chromium)
  start [args]  build everything and start the IDE on the example workspace
  bench         build in release and run the benchmarks (results: BENCHMARKS.md)";

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let task = args.next().unwrap_or_default();
    let rest: Vec<String> = args.collect();
    let root = repo_root()?;
    match task.as_str() {
        "carets" => build_carets(&root).map(|_| ()),
        "web" => build_web(&root),
        "test" => test(&root),
        "start" => start(&root, &rest),
        "bench" => bench(&root, &rest),
        _ => {
            eprintln!("{USAGE}");
            bail!("unknown task `{task}`")
        }
    }
}

fn repo_root() -> Result<PathBuf> {
    // `cargo run` says where this checkout is at run time. The path built in is only a
    // fallback: clones sharing one `CARGO_TARGET_DIR` share `target/debug/xtask`, and cargo
    // does not copy a fresh build over it when this clone's build is already up to date, so
    // the built-in path can name another clone.
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    manifest_dir.parent().map(Path::to_path_buf).context("xtask has no parent directory")
}

fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("+ {cmd:?}");
    let status = cmd.status().with_context(|| format!("starting {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

fn ensure_wasm_targets() -> Result<()> {
    let out = Command::new("rustup").args(["target", "list", "--installed"]).output();
    let Ok(out) = out else {
        // Without rustup the targets must come with the toolchain; cargo will say if they do not.
        return Ok(());
    };
    let installed = String::from_utf8_lossy(&out.stdout).into_owned();
    for target in [WASM_TARGET, PREVIEW1_TARGET] {
        if !installed.lines().any(|l| l.trim() == target) {
            run(Command::new("rustup").args(["target", "add", target]))?;
        }
    }
    Ok(())
}

/// Installs Debian packages; when the package lists are stale (a dependency's version is no
/// longer listed) it refreshes them once and tries again.
fn apt_install(packages: &[&str], why: &str) -> Result<()> {
    let install = || run(Command::new("apt-get").args(["install", "-y", "-q"]).args(packages));
    if install().is_ok() {
        return Ok(());
    }
    eprintln!("apt-get install failed; refreshing the package lists and retrying");
    run(Command::new("apt-get").args(["update", "-q"]))?;
    install().with_context(|| format!("installing {} ({why}); install them yourself and retry", packages.join(" ")))
}

/// The desktop shell (Tauri 2 on WebKitGTK) builds against these, and its smoke test runs on
/// Xvfb and takes screenshots with xwd.
fn ensure_desktop_deps() -> Result<()> {
    let has_libs = Command::new("pkg-config").args(["--exists", "webkit2gtk-4.1", "gtk+-3.0", "libsoup-3.0", "librsvg-2.0"]).status().is_ok_and(|s| s.success());
    let has_x = ["Xvfb", "xwd"].iter().all(|tool| Command::new("sh").args(["-c", &format!("command -v {tool}")]).output().is_ok_and(|o| o.status.success()));
    if has_libs && has_x {
        return Ok(());
    }
    eprintln!("the desktop shell's build dependencies are missing; installing them");
    apt_install(
        &["pkg-config", "libwebkit2gtk-4.1-dev", "libgtk-3-dev", "libsoup-3.0-dev", "librsvg2-dev", "xvfb", "x11-apps"],
        "the desktop shell builds against WebKitGTK; its test runs on Xvfb",
    )
}

/// The Conductor embeds CPython (PyO3), which links against libpython: make sure the shared
/// library is there, installing Debian's `python3-dev` when it is missing and we can.
fn ensure_python_dev() -> Result<()> {
    let probe = "import sysconfig, os; d = sysconfig.get_config_var('LIBDIR') or ''; l = sysconfig.get_config_var('LDLIBRARY') or ''; print(os.path.exists(os.path.join(d, l)) and l.endswith('.so'))";
    let has = |python: &str| {
        Command::new(python).args(["-c", probe]).output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "True")
    };
    if has("python3") {
        return Ok(());
    }
    eprintln!("libpython (a shared library) is missing; installing python3-dev");
    apt_install(&["python3-dev"], "the Conductor embeds CPython")?;
    if !has("python3") {
        bail!("python3 on PATH has no shared libpython; set PYO3_PYTHON to a Python built with --enable-shared (e.g. /usr/bin/python3)");
    }
    Ok(())
}

#[derive(Deserialize)]
struct PackageManifest {
    package: Package,
    #[serde(default)]
    lib: Option<toml::Value>,
    #[serde(default)]
    bin: Vec<Bin>,
}

#[derive(Deserialize)]
struct Package {
    name: String,
}

#[derive(Deserialize)]
struct Bin {
    name: String,
}

/// A caret (or command) package under `extensions/`.
struct WasmPackage {
    dir: PathBuf,
    name: String,
    /// The artifact cargo writes: `<lib>.wasm` or `<bin>.wasm`.
    artifact: String,
    /// A command (binary), also built as a preview-1 module.
    is_command: bool,
}

fn wasm_packages(extensions: &Path) -> Result<Vec<WasmPackage>> {
    let mut dirs = Vec::new();
    for parent in [extensions.to_path_buf(), extensions.join("tests")] {
        for entry in std::fs::read_dir(&parent).with_context(|| format!("listing {}", parent.display()))? {
            let dir = entry?.path();
            if dir.join("Cargo.toml").is_file() {
                dirs.push(dir);
            }
        }
    }
    dirs.sort();
    let mut out = Vec::new();
    for dir in dirs {
        let text = std::fs::read_to_string(dir.join("Cargo.toml"))?;
        let m: PackageManifest = toml::from_str(&text).with_context(|| format!("{}/Cargo.toml", dir.display()))?;
        let artifact = match (&m.lib, m.bin.first()) {
            (Some(_), _) => format!("{}.wasm", m.package.name.replace('-', "_")),
            (None, Some(bin)) => format!("{}.wasm", bin.name),
            (None, None) => format!("{}.wasm", m.package.name.replace('-', "_")),
        };
        let is_command = m.lib.is_none() && !m.bin.is_empty();
        out.push(WasmPackage { dir, name: m.package.name, artifact, is_command });
    }
    Ok(out)
}

fn extensions_target(root: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir).join("extensions"),
        None => root.join("extensions").join("target"),
    }
}

/// Builds every package in `extensions/` for wasm32-wasip2 and copies each component to
/// `<package>/build/`, where its `Symphony.toml` points.
fn build_carets(root: &Path) -> Result<Vec<PathBuf>> {
    ensure_wasm_targets()?;
    let extensions = root.join("extensions");
    let target_dir = extensions_target(root);
    let mut built = Vec::new();
    // One cargo run per package: the SDK's kind features must not unify across carets.
    for pkg in wasm_packages(&extensions)? {
        run(Command::new(env!("CARGO"))
            .current_dir(&extensions)
            .env("CARGO_TARGET_DIR", &target_dir)
            .args(["build", "--quiet", "--release", "--target", WASM_TARGET, "-p", &pkg.name]))?;
        let from = target_dir.join(WASM_TARGET).join("release").join(&pkg.artifact);
        let dest_dir = pkg.dir.join("build");
        std::fs::create_dir_all(&dest_dir)?;
        let dest = dest_dir.join(&pkg.artifact);
        std::fs::copy(&from, &dest).with_context(|| format!("copying {} to {}", from.display(), dest.display()))?;
        let size = std::fs::metadata(&dest)?.len();
        eprintln!("  {} -> {} ({} KiB)", pkg.name, dest.strip_prefix(root).unwrap_or(&dest).display(), size / 1024);
        built.push(dest);
        if pkg.is_command {
            run(Command::new(env!("CARGO"))
                .current_dir(&extensions)
                .env("CARGO_TARGET_DIR", &target_dir)
                .args(["build", "--quiet", "--release", "--target", PREVIEW1_TARGET, "-p", &pkg.name]))?;
            let from = target_dir.join(PREVIEW1_TARGET).join("release").join(&pkg.artifact);
            let dest = dest_dir.join(pkg.artifact.replace(".wasm", ".wasip1.wasm"));
            std::fs::copy(&from, &dest).with_context(|| format!("copying {} to {}", from.display(), dest.display()))?;
            built.push(dest);
        }
    }
    Ok(built)
}

fn web_dir(root: &Path) -> PathBuf {
    root.join("host-ui").join("web")
}

fn npm() -> Command {
    let mut cmd = Command::new("npm");
    // npm's update check and funding notes only add noise (and network calls) to builds.
    cmd.env("npm_config_update_notifier", "false").env("npm_config_fund", "false").env("npm_config_audit", "false");
    cmd
}

/// Installs the UI's packages (exactly the lock file's, `npm ci`) when they are missing or the
/// lock file changed since, then type-checks and builds it into `host-ui/web/dist`.
fn build_web(root: &Path) -> Result<()> {
    let web = web_dir(root);
    if Command::new("npm").arg("--version").output().is_err() {
        bail!("npm is missing: install Node.js 20 or newer (Debian: apt-get install nodejs npm) and retry");
    }
    let installed = web.join("node_modules").join(".package-lock.json");
    let stale = match (std::fs::metadata(&installed).and_then(|m| m.modified()), std::fs::metadata(web.join("package-lock.json")).and_then(|m| m.modified())) {
        (Ok(have), Ok(want)) => want > have,
        _ => true,
    };
    if stale {
        run(npm().current_dir(&web).args(["ci", "--no-progress"]))?;
    }
    run(npm().current_dir(&web).args(["run", "--silent", "build"]))
}

/// Debian's Chromium for the end-to-end tests (the tests drive it with playwright-core; no
/// browser is downloaded).
fn ensure_chromium() -> Result<PathBuf> {
    let chromium = PathBuf::from(std::env::var_os("CHROMIUM").unwrap_or_else(|| "/usr/bin/chromium".into()));
    if !chromium.is_file() {
        eprintln!("{} is missing; installing Debian's chromium", chromium.display());
        apt_install(&["chromium"], "the browser tests drive it; or set CHROMIUM")?;
    }
    Ok(chromium)
}

fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from)
}

/// Test and bench binaries are 100–200 MB each and every change leaves the previous ones
/// behind; a target directory kept across CI runs filled this machine's disk. Executables in
/// `deps/` not modified for a day are removed (cargo relinks any it still needs), and so is
/// `incremental/` once it is over 8 GB.
fn prune_target(root: &Path) {
    let target = target_dir(root);
    let day = std::time::Duration::from_secs(24 * 3600);
    let mut freed = 0u64;
    for profile in ["debug", "release"] {
        let deps = target.join(profile).join("deps");
        for entry in std::fs::read_dir(&deps).into_iter().flatten().flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            let executable = {
                use std::os::unix::fs::PermissionsExt;
                meta.permissions().mode() & 0o111 != 0
            };
            let old = meta.modified().ok().and_then(|m| m.elapsed().ok()).is_some_and(|age| age > day);
            if meta.is_file() && executable && meta.len() > 20 << 20 && old && std::fs::remove_file(entry.path()).is_ok() {
                freed += meta.len();
            }
        }
        let incremental = target.join(profile).join("incremental");
        if dir_size(&incremental) > 8 << 30 {
            freed += dir_size(&incremental);
            let _ = std::fs::remove_dir_all(&incremental);
        }
    }
    if freed > 0 {
        eprintln!("pruned {} MB of stale build output from {}", freed >> 20, target.display());
    }
}

fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            match entry.metadata() {
                Ok(m) if m.is_dir() => stack.push(entry.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}

/// `s3s-fs`, an S3-protocol server over a directory: the stale manager's cold tier is tested
/// against it. Built once from crates.io into `~/.cache/symphony/tools` (the last version
/// this toolchain builds).
fn ensure_s3s_fs() -> Result<PathBuf> {
    let tools = PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/symphony/tools");
    let bin = tools.join("bin/s3s-fs");
    if !bin.is_file() {
        eprintln!("building s3s-fs (an S3 server for the cold-tier tests) into {}", tools.display());
        run(Command::new(env!("CARGO")).args(["install", "--quiet", "--locked", "s3s-fs", "--version", "0.14.1", "--features", "binary", "--root"]).arg(&tools))
            .context("installing s3s-fs (the cold tier's tests run against it)")?;
    }
    Ok(bin)
}

fn test(root: &Path) -> Result<()> {
    prune_target(root);
    ensure_python_dev()?;
    ensure_desktop_deps()?;
    build_carets(root)?;
    build_web(root)?;
    let chromium = ensure_chromium()?;
    let s3s_fs = ensure_s3s_fs()?;
    // Every step runs even when an earlier one fails; the run fails if any did.
    let mut failed = Vec::new();
    if let Err(e) = run(Command::new(env!("CARGO")).current_dir(root).args(["test", "--workspace", "--no-fail-fast"]).env("SYMPHONY_S3S_FS", &s3s_fs)) {
        failed.push(format!("cargo test: {e:#}"));
    }
    if let Err(e) = run(npm().current_dir(web_dir(root)).args(["run", "--silent", "test"])) {
        failed.push(format!("vitest: {e:#}"));
    }
    // The browser tests drive the `symphony` binary `cargo test` just built.
    let symphony = target_dir(root).join("debug").join("symphony");
    let e2e = run(Command::new("node")
        .current_dir(web_dir(root))
        .arg("e2e/run.mjs")
        .env("SYMPHONY_BIN", &symphony)
        .env("SYMPHONY_CARETS", root.join("extensions"))
        .env("CHROMIUM", &chromium));
    if let Err(e) = e2e {
        failed.push(format!("browser tests: {e:#}"));
    }
    if !failed.is_empty() {
        bail!("failed:\n  {}", failed.join("\n  "));
    }
    Ok(())
}

/// The desktop window when there is a display (and its build dependencies can be had), else
/// server mode printing its URL.
fn start(root: &Path, args: &[String]) -> Result<()> {
    ensure_python_dev()?;
    build_carets(root)?;
    build_web(root)?;
    let workspace = root.join("host-ui").join("example-workspace");
    let display = ["DISPLAY", "WAYLAND_DISPLAY"].iter().any(|v| std::env::var_os(v).is_some_and(|d| !d.is_empty()));
    let desktop = display && !args.iter().any(|a| a == "--prompt" || a == "--setup-only");
    if desktop {
        match ensure_desktop_deps() {
            Ok(()) => {
                let mut cmd = Command::new(env!("CARGO"));
                cmd.current_dir(root).args(["run", "--quiet", "-p", "symphony-desktop", "--", "--workspace"]).arg(&workspace);
                cmd.arg("--carets").arg(root.join("extensions")).arg("--web").arg(web_dir(root).join("dist")).args(args);
                return run(&mut cmd);
            }
            Err(e) => eprintln!("no desktop window ({e:#}); starting server mode instead"),
        }
    }
    let mut cmd = Command::new(env!("CARGO"));
    cmd.current_dir(root).args(["run", "--quiet", "-p", "symphony", "--", "--workspace"]).arg(&workspace);
    cmd.args(["start", "--carets"]).arg(root.join("extensions")).arg("--web").arg(web_dir(root).join("dist")).args(args);
    run(&mut cmd)
}

/// Runs every benchmark (or those whose names contain the filter words): the kernel's needs
/// the carets built; the DAG's compares against Dask, installed with pip when missing; the
/// developer loop drives the release `symphony` and `carets` binaries.
fn bench(root: &Path, args: &[String]) -> Result<()> {
    build_carets(root)?;
    let has_dask = Command::new("python3").args(["-c", "import dask"]).output().is_ok_and(|o| o.status.success());
    if !has_dask {
        // Best effort: without Dask the DAG benchmark still runs and says what is missing.
        let _ = run(Command::new("python3").args(["-m", "pip", "install", "--quiet", "dask"]));
    }
    // The artifact benchmark compares storage with restic and borg (git is already here).
    if args.is_empty() || args.iter().any(|a| a == "dedup" || a == "artifacts") {
        let missing = |tool: &str| !Command::new(tool).arg(if tool == "restic" { "version" } else { "--version" }).output().is_ok_and(|o| o.status.success());
        if missing("restic") || missing("borg") {
            let _ = apt_install(&["restic", "borgbackup"], "the dedup comparison uses them");
        }
    }
    // The developer-loop benchmark drives the release `symphony` binary next to `carets`.
    run(Command::new(env!("CARGO")).current_dir(root).args(["build", "--release", "-q", "-p", "symphony"]))?;
    for (package, bench) in [("symphony-kernel", "kernel"), ("symphony-dag", "dag"), ("carets", "dev_loop"), ("symphony", "swap"), ("symphony", "rpc"), ("symphony-artifacts", "store"), ("symphony-stale", "sweep"), ("symphony-conductor", "conductor")] {
        let mut cmd = Command::new(env!("CARGO"));
        cmd.current_dir(root).args(["bench", "-q", "-p", package, "--bench", bench, "--"]).args(args);
        run(&mut cmd)?;
    }
    if args.is_empty() || args.iter().any(|a| a == "web") {
        // The web UI in Chromium against the release server.
        build_web(root)?;
        let chromium = ensure_chromium()?;
        run(Command::new("node")
            .current_dir(web_dir(root))
            .args(["e2e/run.mjs", "--bench"])
            .env("SYMPHONY_BIN", target_dir(root).join("release").join("symphony"))
            .env("SYMPHONY_CARETS", root.join("extensions"))
            .env("CHROMIUM", &chromium))?;
    }
    Ok(())
}
