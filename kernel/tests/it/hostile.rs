//! Every escape the hostile carets attempt fails with a typed error and an audit record, and
//! the kernel keeps serving other carets afterwards.

use super::support::{cap, caret_dir, Fixture};
use symphony_kernel::{Decision, ErrorCode, KernelError};

const SECRET: &str = "TOP-SECRET-CONTENT";

fn hostile() -> Fixture {
    let f = Fixture::new();
    f.install("hostile").install("text-tools");
    f
}

/// The kernel still answers a well-behaved caret.
fn still_serving(f: &Fixture) {
    f.grant("text-tools", &["fs.read:workspace"]);
    let stats = f.json("text-tools", "stats", r#"{"path":"notes.md"}"#);
    assert_eq!(stats["lines"], 4, "text-tools after the attack: {stats}");
    // A well-behaved caret that never reads its environment leaves no env record.
    assert!(f.denials("text-tools", "env").is_empty(), "{:?}", f.denials("text-tools", "env"));
}

fn assert_fs_denied(f: &Fixture, path: &str) {
    let err = f.call("hostile", "read", path).expect_err(&format!("reading {path} must fail"));
    assert!(!err.message.contains(SECRET), "secret leaked through the error: {err}");
    assert_eq!(err.code, ErrorCode::Denied, "{path}: {err}");
    assert!(err.capability.as_deref().is_some_and(|c| c.starts_with("fs.")), "{path}: {err:?}");
    assert!(!f.denials("hostile", "fs.").is_empty(), "no audit record for reading {path}");
}

#[test]
fn fs_escape_through_dotdot_is_denied_and_audited() {
    let f = hostile();
    f.grant("hostile", &["fs.read:workspace"]);
    assert_fs_denied(&f, "/workspace/../secret.txt");
    assert_fs_denied(&f, "../secret.txt");
    assert_fs_denied(&f, "/workspace/src/../../secret.txt");
    still_serving(&f);
}

#[test]
fn fs_absolute_path_outside_scopes_is_denied_and_audited() {
    let f = hostile();
    f.grant("hostile", &["fs.read:workspace"]);
    assert_fs_denied(&f, "/etc/passwd");
    let secret = f.root.path().join("secret.txt");
    assert_fs_denied(&f, &secret.display().to_string());
    still_serving(&f);
}

#[test]
fn fs_symlink_out_of_the_workspace_is_denied_and_audited() {
    let f = hostile();
    f.grant("hostile", &["fs.read:workspace"]);
    let secret = f.root.path().join("secret.txt");
    std::os::unix::fs::symlink(&secret, f.workspace().join("escape-abs")).unwrap_or_else(|e| panic!("{e}"));
    std::os::unix::fs::symlink("../secret.txt", f.workspace().join("escape-rel")).unwrap_or_else(|e| panic!("{e}"));
    assert_fs_denied(&f, "/workspace/escape-abs");
    assert_fs_denied(&f, "/workspace/escape-rel");
    // A symlink that stays inside the workspace is fine: the check is about escaping.
    std::os::unix::fs::symlink("notes.md", f.workspace().join("inside")).unwrap_or_else(|e| panic!("{e}"));
    assert!(f.ok("hostile", "read", "/workspace/inside").contains("TODO"));
    still_serving(&f);
}

#[test]
fn fs_without_any_grant_sees_nothing() {
    let f = hostile();
    assert_fs_denied(&f, "/workspace/notes.md");
    assert_fs_denied(&f, "notes.md");
}

#[test]
fn fs_listing_outside_scopes_is_denied_and_audited() {
    let f = hostile();
    for dir in ["/", "/workspace", "/etc"] {
        let err = f.call("hostile", "list", dir).expect_err(dir);
        assert_eq!(err.code, ErrorCode::Denied, "{dir}: {err}");
    }
    assert_eq!(f.denials("hostile", "fs.read").len(), 3);
    // `stat` never reveals anything outside the scopes, whatever layer answers it.
    for path in ["/etc/passwd", "/workspace/notes.md"] {
        let err = f.call("hostile", "stat", path).expect_err(path);
        assert!(!err.message.contains("bytes"), "{path}: {err}");
    }
}

#[test]
fn fs_write_needs_a_write_grant() {
    let f = hostile();
    f.grant("hostile", &["fs.read:workspace"]);
    let err = f.call("hostile", "write", "/workspace/pwned.txt").expect_err("write must fail");
    assert_eq!(err.code, ErrorCode::Denied, "{err}");
    assert!(!f.workspace().join("pwned.txt").exists(), "the file was written");
    assert!(!f.denials("hostile", "fs.write").is_empty(), "no audit record for the write");

    f.grant("hostile", &["fs.write:workspace"]);
    assert_eq!(f.ok("hostile", "write", "/workspace/allowed.txt"), "written");
    assert!(f.workspace().join("allowed.txt").exists());
}

#[test]
fn env_is_empty_unless_granted_and_never_inherited() {
    // zellij#5431: the host's environment leaked to plugins before consent.
    // SAFETY of the test: no other test reads or writes this variable.
    unsafe_set_env("SYMPHONY_TEST_SECRET", "env-secret-value");
    let f = hostile();
    let env = f.ok("hostile", "env", "");
    assert!(!env.contains("env-secret-value"), "ungranted env leaked: {env}");
    assert!(!env.contains("PATH="), "the kernel's environment was inherited: {env}");
    let denials = f.denials("hostile", "env");
    assert_eq!(denials.len(), 1, "the read of the environment is audited once: {denials:?}");
    assert!(denials[0].detail.as_deref().is_some_and(|d| d.contains("withheld")), "{denials:?}");

    f.grant("hostile", &["env:SYMPHONY_TEST_SECRET"]);
    let env = f.ok("hostile", "env", "");
    assert_eq!(env.trim(), "SYMPHONY_TEST_SECRET=env-secret-value");
}

#[allow(unsafe_code)]
fn unsafe_set_env(key: &str, value: &str) {
    // SAFETY: set before any thread of this test reads the environment; the variable is
    // unique to this test.
    unsafe { std::env::set_var(key, value) };
}

#[test]
fn sockets_are_refused_without_a_grant_and_audited() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    listener.set_nonblocking(true).unwrap_or_else(|e| panic!("{e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}")).to_string();
    let f = hostile();

    let err = f.call("hostile", "connect", &addr).expect_err("connect must fail");
    assert_eq!(err.code, ErrorCode::Denied, "{err}");
    assert_eq!(err.capability.as_deref(), Some(format!("net.connect:{addr}").as_str()));
    assert!(listener.accept().is_err(), "a connection reached the listener");
    let denials = f.denials("hostile", "net.connect");
    assert_eq!(denials.len(), 1, "{denials:?}");
    assert_eq!(denials[0].target, addr);

    f.grant("hostile", &["net.connect:127.0.0.1:*"]);
    assert_eq!(f.ok("hostile", "connect", &addr), "connected");
    // Granted for loopback only: another address stays refused.
    assert_eq!(f.call("hostile", "connect", "10.255.255.1:9").map_err(|e| e.code), Err(ErrorCode::Denied));
}

#[test]
fn process_spawn_needs_a_matching_grant() {
    let f = hostile();
    let err = f.call("hostile", "spawn", "echo hello").expect_err("spawn must fail");
    assert_eq!(err.code, ErrorCode::Denied);
    assert_eq!(err.capability.as_deref(), Some("process.exec:echo hello"));
    assert_eq!(f.denials("hostile", "process.exec").len(), 1);

    f.grant("hostile", &["process.exec:echo *"]);
    assert_eq!(f.ok("hostile", "spawn", "echo hello"), "hello\n");
    // The grant names a program and its argument shape; nothing else runs.
    for attempt in ["sh -c id", "echo two words", "/bin/echo hello"] {
        let err = f.call("hostile", "spawn", attempt).expect_err(attempt);
        assert_eq!(err.code, ErrorCode::Denied, "{attempt}: {err}");
    }
}

#[test]
fn infinite_loop_times_out_and_the_kernel_keeps_serving() {
    let f = hostile();
    let started = std::time::Instant::now();
    let err = f.call("hostile", "loop", "").expect_err("the loop must be stopped");
    assert_eq!(err.code, ErrorCode::Timeout, "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(10), "stopped only after {:?}", started.elapsed());
    assert!(f.audit().iter().any(|r| r.decision == Decision::Limited && r.capability.as_deref() == Some("limits.time")));
    still_serving(&f);
    // The caret itself recovers: a fresh instance serves the next call.
    assert!(f.ok("hostile", "env", "").is_empty());
}

#[test]
fn memory_bomb_hits_the_cap_and_the_kernel_keeps_serving() {
    let f = hostile();
    let err = f.call("hostile", "membomb", "").expect_err("the bomb must be stopped");
    assert_eq!(err.code, ErrorCode::OutOfMemory, "{err}");
    assert!(f.audit().iter().any(|r| r.decision == Decision::Limited && r.capability.as_deref() == Some("limits.memory")));
    still_serving(&f);
}

#[test]
fn panic_is_a_typed_trap_with_the_panic_message() {
    let f = hostile();
    let err = f.call("hostile", "panic", "").expect_err("panic must fail");
    assert_eq!(err.code, ErrorCode::Trap, "{err}");
    assert!(err.message.contains("hostile caret panics on purpose"), "{err}");
    assert_eq!(err.caret.as_deref(), Some("hostile"));
    still_serving(&f);
}

#[test]
fn binary_importing_what_its_manifest_does_not_declare_is_refused_at_install() {
    let f = Fixture::new();
    let err = f
        .kernel
        .install_dir(&super::support::caret_dir("hostile-undeclared"))
        .expect_err("install must be refused");
    match &err {
        KernelError::UndeclaredImports { id, undeclared } => {
            assert_eq!(id, "hostile-undeclared");
            assert!(undeclared.iter().any(|(i, c)| i.starts_with("symphony:caret/process@") && c == "process.exec"), "{err}");
        }
        other => panic!("expected UndeclaredImports, got {other}"),
    }
    assert!(f.kernel.list().unwrap_or_default().is_empty(), "a refused caret was installed");
}

#[test]
fn calling_another_caret_needs_a_grant_and_never_borrows_its_capabilities() {
    // spin#3016: an allow-list bypass through service chaining.
    let f = hostile();
    f.grant("text-tools", &["fs.read:workspace"]);
    let call = r#"caret/text-tools stats {"path":"notes.md"}"#;
    let err = f.call("hostile", "call", call).expect_err("the cross-caret call must be refused");
    assert_eq!(err.code, ErrorCode::Denied, "{err}");
    assert_eq!(err.capability.as_deref(), Some("caret.call:text-tools/stats"));
    assert_eq!(f.denials("hostile", "caret.call").len(), 1);

    // Granted one op, only that op is reachable.
    f.grant("hostile", &["caret.call:text-tools/upper"]);
    assert_eq!(f.ok("hostile", "call", "caret/text-tools upper shout"), "SHOUT");
    assert_eq!(f.call("hostile", "call", call).map_err(|e| e.code), Err(ErrorCode::Denied));

    // Granted the caret, the callee runs with its own grants, never the caller's: revoking
    // text-tools' fs grant makes the chained read fail even though hostile holds fs.read.
    f.grant("hostile", &["caret.call:text-tools", "fs.read:workspace"]);
    f.revoke("text-tools", &["fs.read:workspace"]);
    let err = f.call("hostile", "call", call).expect_err("text-tools has no fs grant now");
    assert_eq!(err.code, ErrorCode::Denied, "{err}");
    assert!(!f.denials("text-tools", "fs.read").is_empty());
    // Pit services need their own grant too.
    let err = f.call("hostile", "call", "pit/artifacts get {}").expect_err("pit call must be refused");
    assert_eq!(err.capability.as_deref(), Some("pit.artifacts.get"));
}

/// The first call to a caret makes the kernel compile it. That is the kernel's work: a caller
/// whose time limit is shorter than the compile still gets its answer (on a busy machine the
/// 1 s limit above ran out while `text-tools` compiled).
#[test]
fn compiling_a_callee_is_not_charged_to_the_caller() {
    let f = Fixture::new();
    f.install("text-tools");
    let dir = f.root.path().join("quick-caller");
    std::fs::create_dir_all(dir.join("build")).unwrap();
    let manifest = std::fs::read_to_string(caret_dir("hostile").join("Symphony.toml")).unwrap();
    std::fs::write(dir.join("Symphony.toml"), manifest.replace(r#"time = "1s""#, r#"time = "50ms""#)).unwrap();
    std::fs::copy(caret_dir("hostile").join("build/hostile.wasm"), dir.join("build/hostile.wasm")).unwrap();
    f.kernel.install_dir(&dir).unwrap();
    f.grant("hostile", &["caret.call:text-tools/upper"]);
    f.kernel.load("hostile").unwrap();

    let started = std::time::Instant::now();
    assert_eq!(f.ok("hostile", "call", "caret/text-tools upper shout"), "SHOUT");
    let took = started.elapsed();
    assert!(took > std::time::Duration::from_millis(50), "text-tools compiled in {took:?}: the test needs a compile longer than the caller's limit");

    // Its own time is still limited.
    let err = f.call("hostile", "loop", "").expect_err("a loop must be stopped");
    assert_eq!(err.code, ErrorCode::Timeout, "{err}");
}

#[test]
fn revoking_takes_effect_on_the_next_call_even_with_warm_instances() {
    // zed#55533: grants that were not respected by already running extensions.
    let f = hostile();
    f.grant("hostile", &["fs.read:workspace"]);
    assert!(f.ok("hostile", "read", "/workspace/notes.md").contains("TODO"));
    f.revoke("hostile", &["fs.read:workspace"]);
    let err = f.call("hostile", "read", "/workspace/notes.md").expect_err("revoked");
    assert_eq!(err.code, ErrorCode::Denied, "{err}");
}

#[test]
fn grants_cannot_widen_the_manifest() {
    let f = hostile();
    for wider in ["fs.read:data", "net.connect:*:*", "process.exec:sh **", "env:PATH", "caret.call:aurora"] {
        let err = f.kernel.grant("hostile", &[cap(wider)], "test").expect_err(wider);
        assert!(matches!(err, KernelError::NotRequested { .. }), "{wider}: {err}");
    }
    // Narrowing is fine.
    f.grant("hostile", &["net.connect:127.0.0.1:8080", "process.exec:echo hi", "caret.call:text-tools/upper"]);
}
