//! The `symphony` binary end to end, as the README's tour uses it: install, call (denied),
//! grant, call, revoke, see the denial in the audit log; plus `--json`, exit codes, config.
//! `cli/` holds the larger areas (the capability audit).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

mod cli {
    mod audit;
    mod dev;
    mod serve;
}

#[path = "common/tally_crate.rs"]
mod tally_crate;

struct Cli {
    root: tempfile::TempDir,
}

fn extensions() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../extensions")
}

impl Cli {
    fn new() -> Self {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("ws")).unwrap();
        std::fs::write(root.path().join("ws/todo.txt"), "TODO: ship it\nand more\n").unwrap();
        Self { root }
    }

    fn run_with(&self, args: &[&str], stdin: &[u8], env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_symphony"));
        cmd.arg("--home").arg(self.root.path().join("home")).arg("--workspace").arg(self.root.path().join("ws"));
        cmd.args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd.env_remove("SYMPHONY_HOME").env_remove("SYMPHONY_LOG_FORMAT").env_remove("SYMPHONY_LOG_LEVEL");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        {
            use std::io::Write;
            let mut input = child.stdin.take().unwrap();
            input.write_all(stdin).unwrap();
        }
        child.wait_with_output().unwrap()
    }

    fn run(&self, args: &[&str]) -> Output {
        self.run_with(args, b"", &[])
    }
}

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

#[test]
fn readme_tour_install_grant_call_revoke_audit() {
    let cli = Cli::new();
    let caret = extensions().join("text-tools");
    let caret = caret.to_str().unwrap();

    let out = cli.run(&["caret", "install", caret]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("installed text-tools 0.1.0 (operator)"), "{}", text(&out.stdout));

    // Not granted yet: a typed denial, exit code 3, naming the capability.
    let out = cli.run(&["call", "text-tools", "todos"]);
    assert_eq!(code(&out), 3, "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("needs `fs.read:workspace`"), "{}", text(&out.stderr));

    let out = cli.run(&["caret", "grant", "text-tools", "fs.read:workspace"]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let out = cli.run(&["call", "text-tools", "todos"]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("TODO: ship it"), "{}", text(&out.stdout));

    let out = cli.run(&["caret", "revoke", "text-tools", "fs.read:workspace"]);
    assert_eq!(code(&out), 0);
    let out = cli.run(&["call", "text-tools", "todos"]);
    assert_eq!(code(&out), 3);

    let out = cli.run(&["audit-log", "--denied"]);
    assert_eq!(code(&out), 0);
    let log = text(&out.stdout);
    assert_eq!(log.matches("DENIED").count(), 2, "{log}");
    assert!(log.contains("caret:text-tools") && log.contains("fs.read:workspace"), "{log}");

    let out = cli.run(&["--json", "audit-log", "--denied", "--caret", "text-tools"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["records"].as_array().unwrap().len(), 2);
    assert_eq!(json["records"][0]["decision"], "denied");
}

#[test]
fn json_output_and_exit_codes() {
    let cli = Cli::new();
    let out = cli.run(&["--json", "caret", "install", extensions().join("text-tools").to_str().unwrap(), "--grant-requested"]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["manifest"]["id"], "text-tools");
    assert_eq!(json["grants"][0]["capability"], "fs.read:workspace");

    let out = cli.run(&["--json", "caret", "list"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 1);

    let out = cli.run(&["--json", "call", "text-tools", "stats", r#"{"path":"todo.txt"}"#]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["ok"]["lines"], 2);

    let out = cli.run(&["--json", "call", "text-tools", "stats", "not json"]);
    assert_eq!(code(&out), 5, "{} {}", text(&out.stdout), text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["error"]["code"], "invalid-input");
    assert_eq!(json["error"]["caret"], "text-tools");

    assert_eq!(code(&cli.run(&["call", "nobody", "x"])), 4);
    assert_eq!(code(&cli.run(&["caret", "info", "nobody"])), 4);
    let out = cli.run(&["caret", "grant", "text-tools", "net.connect:*:*"]);
    assert_eq!(code(&out), 3);
    assert!(text(&out.stderr).contains("does not ask for it"), "{}", text(&out.stderr));
    let out = cli.run(&["caret", "grant", "text-tools", "fs.read:/etc"]);
    assert_eq!(code(&out), 5);
    assert!(text(&out.stderr).contains("invalid capability `fs.read:/etc`"), "{}", text(&out.stderr));

    // Payload from stdin.
    let out = cli.run_with(&["call", "text-tools", "upper", "-"], b"piped", &[]);
    assert_eq!(text(&out.stdout).trim(), "PIPED");
}

#[test]
fn a_bad_manifest_is_reported_with_file_line_and_field() {
    let cli = Cli::new();
    let dir = cli.root.path().join("bad");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("Symphony.toml"),
        "[caret]\nid = \"bad\"\nname = \"Bad\"\nversion = \"one\"\nkind = \"operator\"\napi = \"0.1.0\"\ncomponent = \"x.wasm\"\n",
    )
    .unwrap();
    let out = cli.run(&["caret", "install", dir.to_str().unwrap()]);
    assert_eq!(code(&out), 5);
    let err = text(&out.stderr);
    assert!(err.contains("Symphony.toml:4:11: `caret.version`"), "{err}");
}

#[test]
fn run_command_runs_a_wasi_tool_with_only_its_grants() {
    let cli = Cli::new();
    let wc = extensions().join("wc-command/build/wc.wasm");
    let wc = wc.to_str().unwrap();
    let out = cli.run_with(&["run-command", wc], b"a b c\n", &[]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "1 3 6\n");

    let out = cli.run(&["run-command", wc, "--", "todo.txt"]);
    assert_eq!(code(&out), 1, "no grant, no file");
    let out = cli.run(&["run-command", wc, "--grant", "fs.read:workspace", "--", "todo.txt"]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "2 5 23 todo.txt\n");

    // The same tool built for preview 1 (a core module, as most published WASI tools are).
    let p1 = extensions().join("wc-command/build/wc.wasip1.wasm");
    let out = cli.run(&["run-command", p1.to_str().unwrap(), "--grant", "fs.read:workspace", "--", "todo.txt"]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "2 5 23 todo.txt\n");
}

#[test]
fn configuration_errors_name_the_key_and_logs_can_be_json() {
    let cli = Cli::new();
    let out = cli.run(&["--set", "kernel.pooling=maybe", "caret", "list"]);
    assert_ne!(code(&out), 0);
    assert!(text(&out.stderr).contains("kernel.pooling"), "{}", text(&out.stderr));

    let out = cli.run_with(&["caret", "list"], b"", &[("SYMPHONY_AUDIT_SAMPLE", "0")]);
    assert!(text(&out.stderr).contains("kernel.audit_sample") && text(&out.stderr).contains("SYMPHONY_AUDIT_SAMPLE"), "{}", text(&out.stderr));

    std::fs::create_dir_all(cli.root.path().join("home")).unwrap();
    std::fs::write(cli.root.path().join("home/config.toml"), "[log]\nlevel = \"info\"\nformat = \"json\"\n").unwrap();
    let out = cli.run(&["caret", "install", extensions().join("text-tools").to_str().unwrap(), "--grant-requested"]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let out = cli.run(&["call", "text-tools", "upper", "x"]);
    let first_log = text(&out.stderr).lines().next().map(str::to_owned).unwrap_or_default();
    let parsed: serde_json::Value = serde_json::from_str(&first_log).unwrap_or_else(|e| panic!("`{first_log}`: {e}"));
    assert_eq!(parsed["level"], "INFO");
    // Flags beat the file.
    let out = cli.run(&["--log-format", "text", "--log-level", "warn", "call", "text-tools", "upper", "x"]);
    assert!(text(&out.stderr).is_empty(), "{}", text(&out.stderr));

    let out = cli.run(&["--json", "--set", "kernel.audit_sample=7", "config"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["kernel"]["audit_sample"], 7);
    assert_eq!(json["log"]["format"], "json");
}

#[test]
fn start_installs_the_shipped_carets_and_answers_the_prompt() {
    let cli = Cli::new();
    let script = b"list\ncall text-tools todos\ncall ngram-complete complete {\"prefix\":\"TODO:\",\"max_tokens\":2}\naudit denied\nquit\n";
    let out = cli.run_with(&["start", "--prompt", "--carets", extensions().to_str().unwrap()], script, &[]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    for expected in ["installed aurora", "installed ngram-complete", "installed tally", "installed text-tools", "granted text-tools: fs.read:workspace", "loaded aurora", "TODO: ship it"] {
        assert!(stdout.contains(expected), "missing `{expected}` in:\n{stdout}");
    }
    assert!(!stdout.contains("hostile"), "test carets are not shipped:\n{stdout}");
    // Second start: nothing to install again, everything loads from the compiled cache.
    let out = cli.run_with(&["start", "--carets", extensions().to_str().unwrap(), "--setup-only"], b"", &[]);
    let stdout = text(&out.stdout);
    assert!(!stdout.contains("installed"), "{stdout}");
    assert_eq!(stdout.matches("(Hit)").count(), 4, "{stdout}");
}

#[test]
fn melody_validate_run_fail_and_resume() {
    let cli = Cli::new();
    let out = cli.run(&["caret", "install", extensions().join("text-tools").to_str().unwrap()]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let melody = cli.root.path().join("m.toml");
    std::fs::write(
        &melody,
        "[[node]]\nid = \"todos\"\ntarget = \"caret/text-tools\"\nop = \"todos\"\n\n[[node]]\nid = \"loud\"\ntarget = \"caret/text-tools\"\nop = \"upper\"\ninput = \"${todos.0.text}\"\n",
    )
    .unwrap();
    let m = melody.to_str().unwrap();
    let out = cli.run(&["melody", "validate", m]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("2 nodes in 2 levels"), "{}", text(&out.stdout));

    // Not granted: the first node fails, the second is skipped, exit 1 and a resume hint.
    let out = cli.run(&["melody", "run", m]);
    assert_eq!(code(&out), 1, "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("FAILED") && stdout.contains("skipped"), "{stdout}");
    let run_id = stdout.lines().find_map(|l| l.split("--resume ").nth(1)).unwrap().trim().to_owned();

    assert_eq!(code(&cli.run(&["caret", "grant", "text-tools", "fs.read:workspace"])), 0);
    let out = cli.run(&["--json", "melody", "run", m, "--resume", &run_id]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["run_id"], run_id);
    assert_eq!(json["ok"], true);
    assert_eq!(json["nodes"][1]["state"], "done");
    let output = std::fs::read_to_string(cli.root.path().join(format!("home/runs/{run_id}/outputs/loud.out"))).unwrap();
    assert_eq!(output, "TODO: SHIP IT");

    // A broken melody: every problem with its line, exit 5.
    std::fs::write(&melody, "[[node]]\nid = \"a\"\ntarget = \"caret/text-tools\"\nop = \"upper\"\ninput = \"${b}\"\n").unwrap();
    let out = cli.run(&["melody", "run", m]);
    assert_eq!(code(&out), 5);
    assert!(text(&out.stderr).contains("m.toml:1: node `a`: input reads `${b}`, but there is no node `b`"), "{}", text(&out.stderr));
}

#[test]
fn packages_install_only_from_trusted_keys() {
    use symphony_kernel::package::{generate_key, hex, Package};
    let cli = Cli::new();
    let dir = extensions().join("text-tools");
    let manifest_text = std::fs::read_to_string(dir.join("Symphony.toml")).unwrap();
    let mut package = Package { manifest_text, component: std::fs::read(dir.join("build/text_tools.wasm")).unwrap(), signature: None };
    let key = generate_key().unwrap();
    package.sign(&key, "tester");
    let path = cli.root.path().join("text-tools.caret");
    std::fs::write(&path, package.to_tar().unwrap()).unwrap();
    let public = hex(key.verifying_key().as_bytes());

    let out = cli.run(&["caret", "install", path.to_str().unwrap()]);
    assert_eq!(code(&out), 3, "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains(&format!("symphony trust add {public}")), "{}", text(&out.stderr));

    let out = cli.run(&["trust", "add", &public, "--name", "tester"]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    assert!(text(&cli.run(&["trust", "list"]).stdout).contains(&public));
    let out = cli.run(&["caret", "install", path.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let info = text(&cli.run(&["caret", "info", "text-tools"]).stdout);
    assert!(info.contains(&format!("signed by:   tester (key {public})")), "{info}");

    let out = cli.run(&["trust", "add", "not-a-key"]);
    assert_eq!(code(&out), 5, "{}", text(&out.stderr));
    std::fs::write(&path, b"garbage").unwrap();
    assert_eq!(code(&cli.run(&["caret", "install", path.to_str().unwrap()])), 5);
}

#[test]
fn conductor_exec_runs_python_through_the_proxy_with_its_own_grants() {
    let cli = Cli::new();
    let out = cli.run(&["caret", "install", extensions().join("tally").to_str().unwrap()]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let program = cli.root.path().join("count.py");
    std::fs::write(&program, "import symphony\nresult = symphony.invoke('caret/tally', 'tick', {'name': 'py'})\n").unwrap();
    let out = cli.run(&["conductor", "exec", program.to_str().unwrap()]);
    assert_eq!(code(&out), 3, "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("needs `caret.call:tally/tick`") && err.contains("count.py\", line 2"), "{err}");
    let out = cli.run(&["conductor", "grant", "caret.call:tally/tick"]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let out = cli.run(&["conductor", "exec", program.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((answer["n"].as_u64(), answer["name_n"].as_u64()), (Some(1), Some(1)));
}

/// `[hot] level` in `stale.toml` is the zstd level chunks are put at: the same file takes
/// less room at 19 than at 1.
#[test]
fn artifacts_are_compressed_at_the_level_stale_toml_sets() {
    let mut report = String::new();
    for i in 0..20_000u32 {
        report.push_str(&format!("line {} of the report: value {} is {}\n", i, i.wrapping_mul(2_654_435_761) % 1000, ["fine", "late", "missing", "checked"][(i % 4) as usize]));
    }
    let stored = |level: u32| {
        let cli = Cli::new();
        std::fs::create_dir_all(cli.root.path().join("home/artifacts")).unwrap();
        std::fs::write(cli.root.path().join("home/artifacts/stale.toml"), format!("[hot]\nlevel = {level}\n")).unwrap();
        let file = cli.root.path().join("report.txt");
        std::fs::write(&file, &report).unwrap();
        let out = cli.run(&["artifacts", "put", "reports/big", file.to_str().unwrap()]);
        assert_eq!(code(&out), 0, "{}", text(&out.stderr));
        assert_eq!(cli.run(&["artifacts", "get", "reports/big"]).stdout, report.as_bytes());
        let out = cli.run(&["--json", "artifacts", "stats"]);
        let stats: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        stats["stored_bytes"].as_u64().unwrap_or_else(|| panic!("{stats}"))
    };
    let (fast, small) = (stored(1), stored(19));
    assert!(small < fast * 9 / 10, "level 19 stored {small} bytes, level 1 {fast}");
}

/// Any bytes go in and come out whole: the proxy carries what is not UTF-8 as base64.
#[test]
fn artifacts_binary_files_round_trip() {
    let cli = Cli::new();
    let file = cli.root.path().join("logo.png");
    let bytes: Vec<u8> = (0..=255u8).chain([0xff, 0xfe, 0x00, 0xc3, 0x28]).cycle().take(70_000).collect();
    std::fs::write(&file, &bytes).unwrap();
    let out = cli.run(&["artifacts", "put", "images/logo.png", file.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let out = cli.run(&["artifacts", "get", "images/logo.png"]);
    assert_eq!((code(&out), out.stdout.len()), (0, bytes.len()), "{}", text(&out.stderr));
    assert!(out.stdout == bytes, "the bytes differ");
    // With `--json`, the op's answer: base64 for bytes that are not UTF-8.
    use base64::Engine as _;
    let out = cli.run(&["--json", "artifacts", "get", "images/logo.png"]);
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got["base64"].as_str().map(|b| base64::engine::general_purpose::STANDARD.decode(b).unwrap()), Some(bytes), "{got}");
    let out = cli.run(&["--json", "artifacts", "log", "images/logo.png"]);
    let log: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(log["versions"][0]["quality"]["class"], "binary", "{log}");
}

#[test]
fn artifacts_put_get_log_search_stats_gc_verify_and_sweep() {
    let cli = Cli::new();
    let file = cli.root.path().join("report.md");
    std::fs::write(&file, "# Report\nall good\n").unwrap();
    let out = cli.run(&["artifacts", "put", "reports/weekly", file.to_str().unwrap(), "--kind", "report"]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("stored reports/weekly@1"), "{}", text(&out.stdout));
    std::fs::write(&file, "# Report\nall good\nand more\n").unwrap();
    let out = cli.run(&["artifacts", "put", "reports/weekly", file.to_str().unwrap()]);
    assert!(text(&out.stdout).starts_with("stored reports/weekly@2"), "{}", text(&out.stdout));
    let out = cli.run(&["artifacts", "put", "reports/weekly", file.to_str().unwrap()]);
    assert!(text(&out.stdout).starts_with("unchanged: reports/weekly@2 already holds these bytes"), "{}", text(&out.stdout));
    assert_eq!(text(&cli.run(&["artifacts", "get", "reports/weekly@1"]).stdout), "# Report\nall good\n");
    assert_eq!(text(&cli.run(&["artifacts", "get", "reports/weekly"]).stdout), "# Report\nall good\nand more\n");
    let log = text(&cli.run(&["artifacts", "log", "reports/weekly"]).stdout);
    assert!(log.contains("reports/weekly@1") && log.contains("reports/weekly@2") && log.contains("first version") && log.contains("parent @1") && log.contains("by user"), "{log}");
    let out = cli.run(&["artifacts", "get", "reports/weekly@7"]);
    assert_eq!(code(&out), 4, "{}", text(&out.stderr));
    // Each put ran in a process of its own that has since exited: the index kept them.
    let found = text(&cli.run(&["artifacts", "search", "more"]).stdout);
    assert!(found.starts_with("reports/weekly@2") && found.contains("«more»"), "{found}");
    let out = cli.run(&["--json", "artifacts", "search", "kind:report"]);
    let hits: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(hits["hits"].as_array().map(Vec::len), Some(0), "the latest version has no kind: {hits}");
    let out = cli.run(&["artifacts", "search", "kind:("]);
    assert_eq!(code(&out), 5, "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("kind:("), "{}", text(&out.stderr));
    let out = cli.run(&["--json", "artifacts", "stats"]);
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((stats["names"].as_u64(), stats["versions"].as_u64(), stats["indexed"].as_u64()), (Some(1), Some(2), Some(1)), "{stats}");
    assert!(stats["stored_bytes"].as_u64().unwrap() > 0 && stats["mean_quality"].as_f64().is_some(), "{stats}");
    assert!(text(&cli.run(&["artifacts", "stats"]).stdout).contains("1 name, 2 versions"));
    let gc = text(&cli.run(&["artifacts", "gc"]).stdout);
    assert!(gc.starts_with("removed 0 blobs") && gc.contains("kept 2 blobs"), "{gc}");
    assert_eq!(code(&cli.run(&["artifacts", "verify"])), 0);

    // A sweep without a policy keeps everything hot; a policy that lets the old version go
    // warm moves it, and a get brings it back.
    let dry = text(&cli.run(&["artifacts", "sweep", "--dry-run"]).stdout);
    assert!(dry.contains("2 versions looked at") && dry.contains("0 blobs to warm"), "{dry}");
    std::fs::write(cli.root.path().join("home/artifacts/stale.toml"), "[[rule]]\nwarm_after = \"0s\"\n").unwrap();
    let swept = text(&cli.run(&["artifacts", "sweep"]).stdout);
    assert!(swept.contains("moved ") && swept.contains("[reports/weekly@1]") && swept.contains("1 blob to warm"), "{swept}");
    assert_eq!(text(&cli.run(&["artifacts", "get", "reports/weekly@1"]).stdout), "# Report\nall good\n");
    std::fs::write(cli.root.path().join("home/artifacts/stale.toml"), "[[rule]]\nwarm_after = \"soon\"\n").unwrap();
    let out = cli.run(&["artifacts", "sweep"]);
    assert_eq!(code(&out), 5, "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("stale.toml") && text(&out.stderr).contains("warm_after"), "{}", text(&out.stderr));

    // A flipped byte in a stored chunk: verify names it and fails. (Records: magic, kind,
    // key, u32 length, check — 57 bytes — then the payload; a chunk is kind 1.)
    let mut packs: Vec<_> = std::fs::read_dir(cli.root.path().join("home/artifacts/packs")).unwrap().flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "pack")).collect();
    packs.sort();
    let pack = &packs[0];
    let mut bytes = std::fs::read(pack).unwrap();
    let mut at = 0;
    while bytes[at + 4] != 1 {
        at += 57 + u32::from_le_bytes(bytes[at + 37..at + 41].try_into().unwrap()) as usize;
    }
    bytes[at + 57 + 1] ^= 0xff;
    std::fs::write(pack, bytes).unwrap();
    let out = cli.run(&["artifacts", "verify"]);
    assert_eq!(code(&out), 5);
    assert!(text(&out.stdout).contains("CORRUPT chunk"), "{} {}", text(&out.stdout), text(&out.stderr));
}

#[test]
fn long_work_on_the_artifact_store_shows_progress() {
    let cli = Cli::new();
    // 24 MB of hex text (~12 MB stored): verify and gc read it all, so they report progress —
    // on a pipe as at most twenty stable lines, not a line per pack or per chunk.
    let file = cli.root.path().join("big.log");
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let text_bytes: String = (0..1_500_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            format!("{x:016x}")
        })
        .collect();
    std::fs::write(&file, text_bytes).unwrap();
    let out = cli.run(&["artifacts", "put", "logs/big", file.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    for (op, label) in [("verify", "verify ["), ("gc", "gc [")] {
        let out = cli.run(&["artifacts", op]);
        assert_eq!(code(&out), 0, "{}", text(&out.stderr));
        let stderr = text(&out.stderr);
        let steps = stderr.lines().filter(|l| l.starts_with(label)).count();
        assert!((1..=21).contains(&steps), "{op}: {stderr}");
    }
    // --json keeps stderr quiet.
    let out = cli.run(&["--json", "artifacts", "verify"]);
    assert!(!text(&out.stderr).contains("verify ["), "{}", text(&out.stderr));
}

#[test]
fn artifacts_import_stores_a_tree_and_leaves_out_what_cannot_be_named() {
    let cli = Cli::new();
    let tree = cli.root.path().join("tree");
    for (path, body) in [("src/lib.rs", "pub fn a() {}\n"), ("src/deep/mod.rs", "// mod\n"), ("README.md", "# Tree\n"), ("notes/with space.txt", "skipped\n"), (".git/HEAD", "ref: x\n")] {
        std::fs::create_dir_all(tree.join(path).parent().unwrap()).unwrap();
        std::fs::write(tree.join(path), body).unwrap();
    }
    let out = cli.run(&["artifacts", "import", tree.to_str().unwrap(), "--prefix", "proj", "--kind", "code"]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let said = text(&out.stdout);
    assert!(said.contains("skipped notes/with space.txt"), "{said}");
    assert!(said.contains("imported 3 files") && said.contains("3 new versions, 0 unchanged, 1 skipped"), "{said}");
    assert_eq!(text(&cli.run(&["artifacts", "get", "proj/src/deep/mod.rs"]).stdout), "// mod\n");
    assert_ne!(code(&cli.run(&["artifacts", "get", "proj/.git/HEAD"])), 0, ".git is left out");

    // Again after one edit: one new version, the rest unchanged; --json says the same.
    std::fs::write(tree.join("README.md"), "# Tree\nedited\n").unwrap();
    let out = cli.run(&["--json", "artifacts", "import", tree.to_str().unwrap(), "--prefix", "proj", "--kind", "code"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((report["files"].as_u64(), report["new_versions"].as_u64(), report["unchanged"].as_u64()), (Some(3), Some(1), Some(2)), "{report}");
    let log = text(&cli.run(&["artifacts", "log", "proj/README.md"]).stdout);
    assert_eq!(log.lines().count(), 2, "{log}");
    // A directory that is not there: a clear error, non-zero.
    let out = cli.run(&["artifacts", "import", cli.root.path().join("nope").to_str().unwrap()]);
    assert_ne!(code(&out), 0);
    assert!(text(&out.stderr).contains("nope"), "{}", text(&out.stderr));
}

#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    // `symphony … | head -c 10`: the reader goes early; no panic message, the shell's SIGPIPE status.
    // The reader is gone before the process starts, so its first write fails whatever the timing.
    let cli = Cli::new();
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_symphony"))
        .arg("--home")
        .arg(cli.root.path().join("home"))
        .args(["config"])
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(141), "{stderr}");
}

#[test]
fn maestro_mode_from_the_cli_learns_checkpoints_trains_and_reports() {
    let cli = Cli::new();
    let out = cli.run(&["caret", "install", extensions().join("text-tools").to_str().unwrap(), "--grant-requested"]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    std::fs::create_dir_all(cli.root.path().join("ws")).unwrap();
    std::fs::write(cli.root.path().join("ws/notes.md"), "TODO: one\n").unwrap();
    let melody = cli.root.path().join("m.toml");
    std::fs::write(
        &melody,
        "[[node]]\nid = \"work\"\ntarget = \"caret/text-tools\"\nop = \"stats\"\ninput = { path = \"missing.md\" }\n\n[[node.alternatives]]\ntarget = \"caret/text-tools\"\nop = \"stats\"\ninput = { path = \"notes.md\" }\n",
    )
    .unwrap();
    let m = melody.to_str().unwrap();
    for _ in 0..4 {
        // The node as written fails; Maestro retries with the alternative, so every run succeeds.
        let out = cli.run(&["--json", "melody", "run", m, "--mode", "maestro", "--seed", "3"]);
        assert_eq!(code(&out), 0, "{}{}", text(&out.stdout), text(&out.stderr));
        let run: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(run["mode"], "maestro");
    }
    // Each run's decisions and rewards are also a version in the artifact store, with the run
    // that produced it.
    let out = cli.run(&["--json", "artifacts", "log", "conductor/episodes/m"]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let log: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let versions = log["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 4, "{log}");
    assert!(versions.iter().all(|v| v["meta"]["kind"] == "training-data" && v["meta"]["produced_by"].as_str().is_some_and(|r| !r.is_empty())), "{log}");

    let out = cli.run(&["--json", "conductor", "stats"]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let arm = |label: &str| stats.as_array().unwrap().iter().find(|r| r["arm"] == label).cloned().unwrap_or_default();
    assert!(arm("caret/text-tools/stats (arm 1)")["mean_reward"].as_f64().unwrap() > 0.9, "{stats}");
    let out = cli.run(&["conductor", "stats"]);
    assert!(text(&out.stdout).contains("MEAN REWARD"), "{}", text(&out.stdout));

    let out = cli.run(&["--json", "conductor", "train"]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let trained: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(trained["episodes"].as_u64().unwrap() >= 4, "{trained}");
    let out = cli.run(&["--json", "conductor", "stats"]);
    let retrained: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(retrained.as_array().map(Vec::len), stats.as_array().map(Vec::len));

    // A policy file that does not define `Policy` is refused, naming the file.
    let bad = cli.root.path().join("bad.py");
    std::fs::write(&bad, "x = 1\n").unwrap();
    let out = cli.run(&["melody", "run", m, "--mode", "maestro", "--policy", bad.to_str().unwrap()]);
    assert_eq!(code(&out), 1);
    assert!(text(&out.stderr).contains("bad.py defines no class `Policy`"), "{}", text(&out.stderr));
}
