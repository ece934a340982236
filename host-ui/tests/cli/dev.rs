//! `symphony dev` against a running `symphony start` (another process, as the IDE would be):
//! a source edit is rebuilt, installed and swapped into the running kernel with the caret's
//! count intact; a build that does not compile changes nothing there and shows the compiler's
//! message; `caret reload` and `caret rollback` reach the running kernel too.

use crate::tally_crate::{shared_target, tally_crate};
use crate::{code, text, Cli};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

/// `symphony start` with its prompt on a pipe: the running instance.
struct Running {
    child: Child,
    lines: Receiver<String>,
}

impl Running {
    fn start(cli: &Cli) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_symphony"))
            .arg("--home")
            .arg(cli.root.path().join("home"))
            .arg("--workspace")
            .arg(cli.root.path().join("ws"))
            .args(["start", "--prompt", "--carets"])
            .arg(crate::extensions())
            .env_remove("SYMPHONY_HOME")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let running = Self { child, lines };
        running.wait_for(|l| l.contains("Symphony is running"));
        running
    }

    fn wait_for(&self, want: impl Fn(&str) -> bool) -> String {
        let give_up = Instant::now() + Duration::from_secs(60);
        loop {
            let left = give_up.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if want(&line) => return line,
                Ok(_) => {}
                Err(e) => panic!("the running symphony went quiet: {e}"),
            }
        }
    }

    /// `call tally tick` at the prompt: (count, build).
    fn tick(&mut self) -> (u64, String) {
        writeln!(self.child.stdin.as_mut().unwrap(), "call tally tick").unwrap();
        // The answer is printed as pretty JSON: from a `{` line to the `}` line.
        let mut json = self.wait_for(|l| l.trim() == "{");
        loop {
            let line = self.wait_for(|_| true);
            json.push_str(&line);
            if line.trim() == "}" {
                break;
            }
        }
        let v: serde_json::Value = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"));
        (v["n"].as_u64().unwrap(), v["build"].as_str().unwrap().to_owned())
    }

    /// Ticks until the answer comes from `build` (the watcher polls every 50 ms).
    fn tick_until(&mut self, build: &str) -> u64 {
        let give_up = Instant::now() + Duration::from_secs(10);
        loop {
            let (n, b) = self.tick();
            if b == build {
                return n;
            }
            assert!(Instant::now() < give_up, "still answering from {b}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn dev_once(cli: &Cli, dir: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_symphony"))
        .arg("--home")
        .arg(cli.root.path().join("home"))
        .args(["dev", "--once"])
        .arg(dir)
        .env("CARGO_TARGET_DIR", shared_target())
        .env_remove("SYMPHONY_HOME")
        .output()
        .unwrap()
}

#[test]
fn dev_swaps_an_edit_into_a_running_symphony_and_keeps_its_count() {
    let cli = Cli::new();
    let src = tally_crate(&cli.root.path().join("tally-src"));
    let mut running = Running::start(&cli);
    let (n, build) = running.tick();
    assert_eq!(build, "0.1.0");

    // An edit: rebuilt, installed, swapped into the running process, the count carried over.
    let lib = src.join("src/lib.rs");
    let original = std::fs::read_to_string(&lib).unwrap();
    std::fs::write(&lib, original.replace(r#"None => env!("CARGO_PKG_VERSION"),"#, r#"None => "edited","#)).unwrap();
    let out = dev_once(&cli, &src);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("installed tally 0.1.0"), "{}", text(&out.stderr));
    let edited = running.tick_until("edited");
    assert!(edited > n, "the count was reset: {edited} after {n}");

    // A build that does not compile: the compiler's message, and the running version serves on.
    std::fs::write(&lib, original.replace("fn describe(&self)", "fn describe(&self) -> oops")).unwrap();
    let out = dev_once(&cli, &src);
    assert_eq!(code(&out), 1);
    let err = text(&out.stderr);
    assert!(err.contains("build failed (the running version keeps serving)") && err.contains("error"), "{err}");
    let (after, build) = running.tick();
    assert_eq!((build.as_str(), after > edited), ("edited", true));

    // Rollback from another terminal: the running kernel swaps back, count intact.
    let out = cli.run(&["caret", "rollback", "tally"]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let back = running.tick_until("0.1.0");
    assert!(back > after, "the count was reset by the rollback");

    // A reload (same build, fresh instances) keeps the count as well.
    let out = cli.run(&["caret", "reload", "tally"]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    std::thread::sleep(Duration::from_millis(200));
    let (reloaded, build) = running.tick();
    assert_eq!((build.as_str(), reloaded > back), ("0.1.0", true));
}
