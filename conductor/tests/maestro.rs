//! Maestro mode with real CPython: the built-in LinUCB policy learning which alternative of a
//! node is better in a synthetic environment (a Pit service whose two ops succeed with fixed,
//! different probabilities from a seeded generator), safe skips only, fallbacks to Manual for
//! a policy that raises, hangs or answers nonsense, the checkpoint surviving a restart, and
//! offline training from the recorded episodes reproducing what was learned.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use symphony_conductor::maestro::{read_episodes, Maestro, MaestroOptions};
use symphony_conductor::{run_melody, InstalledTargets, Melody, MelodyRun, RunSettings, RunStore};
use symphony_dag::Cancel;
use symphony_kernel::{CallError, Config, ErrorCode, Kernel, KernelOptions, Principal, Service};

/// Two ways to do one job: `a` succeeds 40 % of the time, `b` 90 % (xorshift, seeded).
struct Environment {
    state: Mutex<u64>,
}

impl Environment {
    fn roll(&self) -> f64 {
        let mut s = self.state.lock().unwrap();
        *s ^= *s << 13;
        *s ^= *s >> 7;
        *s ^= *s << 17;
        (*s % 10_000) as f64 / 10_000.0
    }
}

impl Service for Environment {
    fn name(&self) -> &str {
        "env"
    }
    fn call(&self, _: &Principal, op: &str, _payload: &str) -> Result<String, CallError> {
        let p = match op {
            "a" => 0.4,
            "b" => 0.9,
            "ok" => 1.0,
            "@describe" => return Ok(r#"[{"name":"a","description":""},{"name":"b","description":""},{"name":"ok","description":""}]"#.to_owned()),
            other => return Err(CallError::new(ErrorCode::NotFound, format!("no op {other}"))),
        };
        if self.roll() < p { Ok(format!("{op} worked")) } else { Err(CallError::new(ErrorCode::Failed, format!("{op} failed this time"))) }
    }
}

struct Setup {
    root: tempfile::TempDir,
    kernel: Kernel,
}

impl Setup {
    fn new() -> Self {
        let root = tempfile::tempdir().unwrap();
        let ws = root.path().join("ws");
        std::fs::create_dir_all(&ws).unwrap();
        let kernel = Kernel::open(KernelOptions { home: root.path().join("home"), workspace: ws, config: Config::default() }).unwrap();
        kernel.register_service(Arc::new(Environment { state: Mutex::new(0x9e37_79b9_7f4a_7c15) }));
        Self { root, kernel }
    }

    fn home(&self) -> PathBuf {
        self.root.path().join("home")
    }

    fn melody(&self, name: &str, text: &str) -> Melody {
        let path = self.root.path().join(name);
        std::fs::write(&path, text).unwrap();
        Melody::load(&path, Some(&InstalledTargets(&self.kernel))).unwrap()
    }

    fn options(&self) -> MaestroOptions {
        MaestroOptions { seed: 1, ..MaestroOptions::new(&self.home()) }
    }

    fn run(&self, melody: &Melody, maestro: &Arc<Maestro>) -> MelodyRun {
        let settings = RunSettings { maestro: Some(Arc::clone(maestro)), concurrency: 1, ..RunSettings::default() };
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(run_melody(&self.kernel, melody, &RunStore::in_home(&self.home()), settings, None, Cancel::default())).unwrap()
    }

    fn policy(&self, name: &str, source: &str) -> PathBuf {
        let path = self.root.path().join(name);
        std::fs::write(&path, source).unwrap();
        path
    }
}

const TWO_WAYS: &str = r#"
[melody]
name = "two-ways"

[[node]]
id = "job"
target = "pit/env"
op = "a"

[[node.alternatives]]
target = "pit/env"
op = "b"
"#;

/// The first decision of each run of `node` (retries excluded), in order.
fn first_choices(home: &Path, node: &str) -> Vec<String> {
    read_episodes(&home.join("conductor/episodes.jsonl"))
        .unwrap()
        .into_iter()
        .filter(|e| e.node == node && e.ask["tried"].as_array().is_some_and(Vec::is_empty))
        .map(|e| e.label)
        .collect()
}

#[test]
fn maestro_learns_the_better_alternative_with_sublinear_regret() {
    let s = Setup::new();
    let melody = s.melody("two.toml", TWO_WAYS);
    let maestro = Maestro::start(s.options()).unwrap();
    const N: usize = 200;
    for _ in 0..N {
        let run = s.run(&melody, &maestro);
        assert!(run.fallbacks.is_empty(), "{:?}", run.fallbacks);
    }
    let choices = first_choices(&s.home(), "job");
    assert_eq!(choices.len(), N);
    let better = choices.iter().filter(|c| *c == "pit/env/b").count();
    assert!(better * 10 > N * 9, "the better alternative was chosen first {better} times of {N}");
    // Expected regret of a choice: 0.9 − 0.4 when `a` was chosen first, 0 otherwise.
    let regret: Vec<f64> = choices.iter().scan(0.0, |acc, c| {
        *acc += if c == "pit/env/a" { 0.5 } else { 0.0 };
        Some(*acc)
    }).collect();
    let (half, all) = (regret[N / 2 - 1], regret[N - 1]);
    assert!(all - half < half.max(0.5), "regret grows linearly: {half} after {} runs, {all} after {N}", N / 2);
    assert!(all / (N as f64) < 0.05, "average regret {}", all / N as f64);

    // What it learned is on record and in its stats.
    let stats = maestro.stats().unwrap();
    let b = stats.as_array().unwrap().iter().find(|r| r["arm"] == "pit/env/b").unwrap();
    assert!(b["mean_reward"].as_f64().unwrap() > 0.8, "{stats}");
}

#[test]
fn the_policy_survives_a_restart_and_training_replays_the_episodes() {
    let s = Setup::new();
    let melody = s.melody("two.toml", TWO_WAYS);
    let before = {
        let maestro = Maestro::start(s.options()).unwrap();
        for _ in 0..40 {
            s.run(&melody, &maestro);
        }
        maestro.stats().unwrap()
    };
    assert!(s.home().join("conductor/policy.json").is_file());
    // A new process's Maestro starts from the checkpoint: same knowledge, and it goes on
    // choosing the better alternative at once.
    let maestro = Maestro::start(s.options()).unwrap();
    assert_eq!(maestro.stats().unwrap(), before);
    s.run(&melody, &maestro);
    assert_eq!(first_choices(&s.home(), "job").last().map(String::as_str), Some("pit/env/b"));

    // Offline: a fresh policy fed the recorded episodes knows what the live one learned.
    let episodes = read_episodes(&s.home().join("conductor/episodes.jsonl")).unwrap();
    assert!(episodes.len() > 41, "{} episodes", episodes.len());
    assert!(episodes.iter().all(|e| !e.run_id.is_empty() && e.melody == "two-ways" && e.node == "job"));
    let fresh = Maestro::start(MaestroOptions { home: s.root.path().join("elsewhere"), ..s.options() }).unwrap();
    fresh.train(&episodes).unwrap();
    let live = maestro.stats().unwrap();
    let trained = fresh.stats().unwrap();
    let choices = |v: &serde_json::Value| v.as_array().unwrap().iter().map(|r| (r["arm"].clone(), r["choices"].clone())).collect::<Vec<_>>();
    assert_eq!(choices(&trained), choices(&live));
}

#[test]
fn a_skip_never_drops_a_needed_output() {
    let s = Setup::new();
    let melody = s.melody(
        "skips.toml",
        r#"
[[node]]
id = "needed"
target = "pit/env"
op = "ok"
optional = true

[[node]]
id = "reader"
target = "pit/env"
op = "ok"
input = "${needed}"
optional = true

[[node]]
id = "required"
target = "pit/env"
op = "ok"
"#,
    );
    let always_skip = s.policy(
        "skipper.py",
        "class Policy:\n    def decide(self, ask):\n        return {'action': 'skip'}\n    def update(self, ask, choice, reward):\n        pass\n    def state(self):\n        return {}\n    def load(self, state):\n        pass\n    def stats(self):\n        return []\n",
    );
    let maestro = Maestro::start(MaestroOptions { policy_file: Some(always_skip), ..s.options() }).unwrap();
    let run = s.run(&melody, &maestro);
    assert!(run.report.ok(), "{:?}", run.report.states);
    let state = |id: &str| run.summary.iter().find(|n| n.id == id).unwrap().state;
    // `reader` is optional and nothing reads it: skipped. `needed` is read by `reader`, and
    // `required` is not optional: both ran, and the refused skips are said.
    assert_eq!((state("needed"), state("reader"), state("required")), ("done", "skipped", "done"));
    assert_eq!(run.fallbacks.len(), 2, "{:?}", run.fallbacks);
    assert!(run.fallbacks.iter().any(|f| f.contains("asked to skip `needed`")), "{:?}", run.fallbacks);
    assert!(run.fallbacks.iter().any(|f| f.contains("asked to skip `required`")), "{:?}", run.fallbacks);
}

#[test]
fn a_raising_hanging_or_nonsense_policy_falls_back_to_manual_and_says_so() {
    let s = Setup::new();
    let melody = s.melody(
        "fallback.toml",
        "[[node]]\nid = \"first\"\ntarget = \"pit/env\"\nop = \"ok\"\n\n[[node]]\nid = \"second\"\ntarget = \"pit/env\"\nop = \"ok\"\nafter = [\"first\"]\n\n[[node.alternatives]]\ntarget = \"pit/env\"\nop = \"a\"\n",
    );
    let methods = "    def update(self, ask, choice, reward):\n        pass\n    def state(self):\n        return {}\n    def load(self, state):\n        pass\n";
    for (name, decide, says) in [
        ("raises.py", "        raise ValueError('no idea')\n", "raised ValueError: no idea"),
        ("hangs.py", "        while True:\n            pass\n", "took longer than 100ms"),
        ("nonsense.py", "        return 42\n", "answered 42"),
        ("wrong-arm.py", "        return {'action': 'run', 'arm': 7}\n", "names no arm"),
    ] {
        let policy = s.policy(name, &format!("class Policy:\n    def decide(self, ask):\n{decide}{methods}"));
        let maestro = Maestro::start(MaestroOptions { policy_file: Some(policy), limit: Duration::from_millis(100), ..s.options() }).unwrap();
        let started = Instant::now();
        let run = s.run(&melody, &maestro);
        // Manual: each node as written, so the run is what a Manual run would be.
        assert!(run.report.ok(), "{name}: {:?}", run.report.states);
        assert!(started.elapsed() < Duration::from_secs(5), "{name}: took {:?}", started.elapsed());
        assert!(run.fallbacks.len() >= 2, "{name}: {:?}", run.fallbacks);
        assert!(run.fallbacks[0].contains("`first`: Manual, because the policy"), "{name}: {:?}", run.fallbacks);
        assert!(run.fallbacks.iter().any(|f| f.contains(says)), "{name}: {:?}", run.fallbacks);
        // The episodes say the same.
        let episodes = read_episodes(&s.home().join("conductor/episodes.jsonl")).unwrap();
        assert!(episodes.iter().rev().take(2).all(|e| e.fallback.is_some()), "{name}");
    }
    // The kernel serves on after all that.
    assert_eq!(s.kernel.invoke(&Principal::User, "pit/env", "ok", "").unwrap(), "ok worked");
}

#[test]
fn a_corrupt_checkpoint_is_named_and_kept() {
    let s = Setup::new();
    std::fs::create_dir_all(s.home().join("conductor")).unwrap();
    std::fs::write(s.home().join("conductor/policy.json"), "{ not json").unwrap();
    let err = Maestro::start(s.options()).unwrap_err().to_string();
    assert!(err.contains("policy.json") && err.contains("symphony conductor train"), "{err}");
    assert_eq!(std::fs::read_to_string(s.home().join("conductor/policy.json")).unwrap(), "{ not json");
}
