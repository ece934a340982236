//! Melodies: validation fixtures (each file against its `.expected`), and real runs through
//! the kernel with the shipped carets built from `extensions/`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use symphony_conductor::{run_melody, InstalledTargets, Melody, RunSettings, RunStore};
use symphony_dag::{Cancel, NodeState};
use symphony_kernel::{Config, Kernel, KernelOptions};

fn extensions() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../extensions")
}

/// Set `UPDATE_EXPECT=1` to rewrite the `.expected` files from what validation says now.
#[test]
fn melody_fixtures() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/melodies");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.path()).collect();
    files.sort();
    let mut checked = 0;
    for path in files.iter().filter(|p| p.extension().is_some_and(|e| e == "toml")) {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(path).unwrap();
        let actual = match Melody::parse(&text, Path::new(&name), None) {
            Ok(m) => {
                let levels: Vec<Vec<&str>> =
                    m.dag.levels().iter().map(|l| l.iter().map(|&i| m.nodes[i].id.as_str()).collect()).collect();
                format!("ok: {} with {} nodes, levels {levels:?}\n", m.name, m.nodes.len())
            }
            Err(e) => format!("{e}\n"),
        };
        let expected_path = path.with_extension("expected");
        if std::env::var_os("UPDATE_EXPECT").is_some() {
            std::fs::write(&expected_path, &actual).unwrap();
        }
        let expected = std::fs::read_to_string(&expected_path)
            .unwrap_or_else(|_| panic!("{} missing: run with UPDATE_EXPECT=1 and review it", expected_path.display()));
        assert_eq!(actual, expected, "{name}");
        checked += 1;
    }
    assert!(checked >= 12, "only {checked} fixtures");
}

struct Setup {
    root: tempfile::TempDir,
    kernel: Kernel,
}

impl Setup {
    fn new() -> Self {
        let root = tempfile::tempdir().unwrap();
        let ws = root.path().join("ws");
        std::fs::create_dir_all(ws.join("src")).unwrap();
        std::fs::write(ws.join("notes.md"), "# Notes\nTODO: write the guide\n").unwrap();
        std::fs::write(ws.join("src/main.rs"), "fn main() {\n    // TODO: write the guide\n    println!(\"hi\");\n}\n").unwrap();
        let kernel = Kernel::open(KernelOptions { home: root.path().join("home"), workspace: ws, config: Config::default() }).unwrap();
        for caret in ["text-tools", "ngram-complete", "aurora"] {
            let installed = kernel.install_dir(&extensions().join(caret)).unwrap();
            kernel.grant(caret, &installed.manifest.capabilities, "test").unwrap();
        }
        Self { root, kernel }
    }

    fn store(&self) -> RunStore {
        RunStore::in_home(&self.root.path().join("home"))
    }

    fn melody(&self, name: &str, text: &str) -> Melody {
        let path = self.root.path().join(name);
        std::fs::write(&path, text).unwrap();
        Melody::load(&path, Some(&InstalledTargets(&self.kernel))).unwrap()
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

fn output(state: &NodeState) -> String {
    match state {
        NodeState::Done { output, .. } => output.to_string(),
        other => panic!("not done: {other:?}"),
    }
}

#[test]
fn the_example_melody_runs_end_to_end_through_the_proxy() {
    let s = Setup::new();
    let melody = Melody::load(&extensions().join("melodies/workspace-report.toml"), Some(&InstalledTargets(&s.kernel))).unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let run = rt().block_on(run_melody(&s.kernel, &melody, &s.store(), RunSettings::default(), Some(tx), Cancel::default())).unwrap();
    assert!(run.report.ok(), "{:?}", run.report.states);
    let by_id = |id: &str| output(&run.report.states[melody.dag.index_of(id).unwrap()]);
    assert_eq!(by_id("headline"), "FIRST: TODO: WRITE THE GUIDE (NOTES.MD:2)");
    let notes: serde_json::Value = serde_json::from_str(&by_id("notes")).unwrap();
    assert_eq!(notes["lines"], 2);
    let panel: serde_json::Value = serde_json::from_str(&by_id("panel")).unwrap();
    assert!(panel.to_string().contains("TODO (2 open)"), "{panel}");
    assert!(!by_id("draft").is_empty());
    // Outputs and a summary are kept per run.
    let summary: serde_json::Value = serde_json::from_slice(&std::fs::read(run.dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary.as_array().unwrap().len(), 6);
    assert_eq!(std::fs::read_to_string(s.store().output(&run.run_id, "headline")).unwrap(), by_id("headline"));
    // Progress events came for every node.
    let mut done = 0;
    while let Ok(e) = rx.try_recv() {
        if matches!(e.kind, symphony_dag::EventKind::Done { .. }) {
            done += 1;
        }
    }
    assert_eq!(done, 6);
}

#[test]
fn validation_against_the_installed_carets() {
    let s = Setup::new();
    let path = s.root.path().join("bad.toml");
    std::fs::write(
        &path,
        "[[node]]\nid = \"a\"\ntarget = \"caret/text-tools\"\nop = \"nosuchop\"\n\n[[node]]\nid = \"b\"\ntarget = \"caret/absent\"\nop = \"x\"\n",
    )
    .unwrap();
    let err = Melody::load(&path, Some(&InstalledTargets(&s.kernel))).expect_err("bad targets").to_string();
    assert!(err.contains("bad.toml:1: node `a`: caret/text-tools has no op `nosuchop` (it has: stats, grep, todos, upper, count)"), "{err}");
    assert!(err.contains("bad.toml:6: node `b`: no caret `absent` is installed"), "{err}");
}

#[test]
fn a_failing_node_skips_only_its_dependants_and_resume_runs_only_the_rest() {
    let s = Setup::new();
    s.kernel.revoke("text-tools", &["fs.read:workspace".parse().unwrap()]).unwrap();
    let melody = s.melody(
        "m.toml",
        r#"
[[node]]
id = "upper"
target = "caret/text-tools"
op = "upper"
input = "independent"

[[node]]
id = "stats"
target = "caret/text-tools"
op = "stats"
input = { path = "notes.md" }

[[node]]
id = "shout"
target = "caret/text-tools"
op = "upper"
input = "lines: ${stats.lines}"
"#,
    );
    let run = rt().block_on(run_melody(&s.kernel, &melody, &s.store(), RunSettings::default(), None, Cancel::default())).unwrap();
    assert_eq!(output(&run.report.states[0]), "INDEPENDENT");
    assert!(matches!(&run.report.states[1], NodeState::Failed { error, .. } if error.contains("fs.read:workspace")), "{:?}", run.report.states[1]);
    assert!(matches!(&run.report.states[2], NodeState::Skipped { because } if because == "`stats` failed"));

    // Fix the cause and resume: the finished node is restored, the rest runs.
    s.kernel.grant("text-tools", &["fs.read:workspace".parse().unwrap()], "test").unwrap();
    let settings = RunSettings { resume: Some(run.run_id.clone()), ..RunSettings::default() };
    let again = rt().block_on(run_melody(&s.kernel, &melody, &s.store(), settings, None, Cancel::default())).unwrap();
    assert!(again.report.ok(), "{:?}", again.report.states);
    assert!(matches!(again.report.states[0], NodeState::Done { resumed: true, .. }));
    assert!(matches!(again.report.states[1], NodeState::Done { resumed: false, .. }));
    assert_eq!(output(&again.report.states[2]), "LINES: 2");

    // Resuming a run that does not exist says so.
    let settings = RunSettings { resume: Some("no-such-run".into()), ..RunSettings::default() };
    let err = rt().block_on(run_melody(&s.kernel, &melody, &s.store(), settings, None, Cancel::default())).expect_err("no run");
    assert!(err.to_string().contains("no run `no-such-run`"), "{err}");
}
