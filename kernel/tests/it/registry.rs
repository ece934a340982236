//! Manifests (data-driven: each `tests/manifests/*.toml` against its `.expected`), installs,
//! grants, the compiled cache and corrupt state on disk.

use super::support::{built_wasm, caret_dir, Fixture};
use std::path::Path;
use symphony_kernel::engine::CacheOutcome;
use symphony_kernel::{ErrorCode, KernelError, Manifest};

/// Set `UPDATE_EXPECT=1` to rewrite the `.expected` files from what the parser says now.
#[test]
fn manifest_fixtures() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/manifests");
    let mut checked = 0;
    let mut entries: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.path()).collect();
    entries.sort();
    for path in entries.into_iter().filter(|p| p.extension().is_some_and(|e| e == "toml")) {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        let actual = match Manifest::parse(&text, Path::new(&name)) {
            Ok(m) => format!(
                "ok: {} {} {} api {}; capabilities [{}]; memory {} B, time {:?}, instances {}; dependencies {:?}\n",
                m.id,
                m.version,
                m.kind,
                m.api,
                m.capabilities.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
                m.limits.memory_bytes,
                m.limits.time,
                m.limits.instances,
                m.dependencies.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>(),
            ),
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
    assert!(checked >= 10, "only {checked} manifest fixtures");
}

#[test]
fn installing_an_unbuilt_caret_says_how_to_build_it() {
    let f = Fixture::new();
    let dir = f.root.path().join("unbuilt");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(caret_dir("text-tools").join("Symphony.toml"), dir.join("Symphony.toml")).unwrap();
    let err = f.kernel.install_dir(&dir).expect_err("no component");
    assert!(matches!(err, KernelError::ComponentMissing { .. }), "{err}");
    assert!(err.to_string().contains("cargo xtask carets"), "{err}");
}

#[test]
fn garbage_core_modules_and_wrong_worlds_are_refused() {
    let f = Fixture::new();
    let manifest = caret_dir("text-tools").join("Symphony.toml");
    let cases: [(&str, &[u8]); 3] = [
        ("garbage.wasm", b"definitely not wasm"),
        ("core.wasm", b"\0asm\x01\0\0\0"),
        ("truncated.wasm", &std::fs::read(built_wasm("text-tools", "text_tools.wasm")).unwrap()[..5000]),
    ];
    for (name, bytes) in cases {
        let path = f.root.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let err = f.kernel.install_files(&path, &manifest).expect_err(name);
        assert!(matches!(err, KernelError::InvalidComponent { .. }), "{name}: {err}");
        assert!(err.to_string().contains(name), "the error names the file: {err}");
    }
    // A motif's component under an operator's manifest.
    let err = f.kernel.install_files(&built_wasm("aurora", "aurora.wasm"), &manifest).expect_err("wrong world");
    assert!(matches!(err, KernelError::WorldMismatch { .. }), "{err}");
    // A plain command is not a caret.
    let err = f.kernel.install_files(&built_wasm("wc-command", "wc.wasm"), &manifest).expect_err("a command");
    assert!(err.to_string().contains("wasi:cli command"), "{err}");
    assert!(f.kernel.list().unwrap().is_empty());
}

#[test]
fn install_list_info_remove_round_trip() {
    let f = Fixture::new();
    f.install("text-tools").install("aurora");
    let ids: Vec<String> = f.kernel.list().unwrap().into_iter().map(|c| c.installed.manifest.id).collect();
    assert_eq!(ids, ["aurora", "text-tools"]);
    f.grant("text-tools", &["fs.read:workspace"]);
    let info = f.kernel.info("text-tools").unwrap();
    assert_eq!(info.grants.len(), 1);
    assert_eq!(info.grants[0].by, "test");
    assert_eq!(info.installed.hash.len(), 64);

    // Reinstalling keeps grants the manifest still asks for.
    f.install("text-tools");
    assert_eq!(f.kernel.info("text-tools").unwrap().grants.len(), 1);

    f.kernel.remove("text-tools").unwrap();
    assert!(matches!(f.kernel.info("text-tools"), Err(KernelError::NotInstalled(_))));
    assert_eq!(f.call("text-tools", "upper", "x").map_err(|e| e.code), Err(ErrorCode::NotFound));
    // Its grants went with it: a fresh install starts with none.
    f.install("text-tools");
    assert!(f.kernel.info("text-tools").unwrap().grants.is_empty());
}

#[test]
fn compiled_cache_is_used_and_a_corrupt_entry_is_rebuilt() {
    let f = Fixture::new();
    f.install("text-tools");
    assert_eq!(f.kernel.load("text-tools").unwrap().cache, CacheOutcome::Compiled);

    let reopen = |f: &Fixture| {
        symphony_kernel::Kernel::open(symphony_kernel::KernelOptions {
            home: f.home(),
            workspace: f.workspace(),
            config: Default::default(),
        })
        .unwrap()
    };
    assert_eq!(reopen(&f).load("text-tools").unwrap().cache, CacheOutcome::Hit);

    let cache_dir = f.home().join("cache/compiled");
    let entry = std::fs::read_dir(&cache_dir).unwrap().flatten().next().unwrap().path();
    for (what, damage) in [("flipped byte", 0usize), ("truncated", 1)] {
        let mut bytes = std::fs::read(&entry).unwrap();
        if damage == 0 {
            let mid = bytes.len() / 2;
            bytes[mid] ^= 0xff;
        } else {
            bytes.truncate(bytes.len() / 3);
        }
        std::fs::write(&entry, bytes).unwrap();
        let k = reopen(&f);
        match k.load("text-tools").unwrap().cache {
            CacheOutcome::Rebuilt(reason) => assert!(!reason.is_empty(), "{what}"),
            other => panic!("{what}: expected a rebuild, got {other:?}"),
        }
        assert_eq!(k.invoke(&symphony_kernel::Principal::User, "caret/text-tools", "upper", "ok").unwrap(), "OK");
    }
    assert_eq!(reopen(&f).load("text-tools").unwrap().cache, CacheOutcome::Hit);
}

#[test]
fn a_tampered_installed_component_is_refused() {
    let f = Fixture::new();
    f.install("text-tools");
    let component = current_slot(&f, "text-tools").join("component.wasm");
    let mut bytes = std::fs::read(&component).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&component, bytes).unwrap();
    let err = f.call("text-tools", "upper", "x").expect_err("tampered");
    assert!(err.message.contains("does not match the recorded"), "{err}");
}

#[test]
fn a_corrupt_grants_file_is_reported_and_left_untouched() {
    let f = Fixture::new();
    f.install("text-tools");
    let grants = f.home().join("grants.json");
    std::fs::write(&grants, "{ \"text-tools\": [ oops").unwrap();
    let err = f.kernel.grant("text-tools", &[super::support::cap("fs.read:workspace")], "test").expect_err("corrupt");
    assert!(matches!(err, KernelError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("grants.json"), "{err}");
    assert_eq!(std::fs::read_to_string(&grants).unwrap(), "{ \"text-tools\": [ oops");
    // The user's own calls still go through.
    assert_eq!(f.ok("text-tools", "upper", "still"), "STILL");
}

#[test]
fn a_broken_install_record_does_not_hide_the_others() {
    let f = Fixture::new();
    f.install("text-tools").install("aurora");
    std::fs::write(current_slot(&f, "aurora").join("install.json"), "{").unwrap();
    let ids: Vec<String> = f.kernel.list().unwrap().into_iter().map(|c| c.installed.manifest.id).collect();
    assert_eq!(ids, ["text-tools"]);
    assert!(matches!(f.kernel.info("aurora"), Err(KernelError::Corrupt { .. })));
}

/// The version directory a caret's `current` pointer names.
fn current_slot(f: &Fixture, id: &str) -> std::path::PathBuf {
    let dir = f.home().join("carets").join(id);
    dir.join(std::fs::read_to_string(dir.join("current")).unwrap().trim())
}

/// A copy of a caret directory whose manifest says `version`.
fn with_version(f: &Fixture, name: &str, version: &str) -> std::path::PathBuf {
    let from = caret_dir(name);
    let to = f.root.path().join(format!("{name}-{version}"));
    std::fs::create_dir_all(to.join("build")).unwrap();
    let manifest = std::fs::read_to_string(from.join("Symphony.toml")).unwrap().replace("version = \"0.1.0\"", &format!("version = \"{version}\""));
    std::fs::write(to.join("Symphony.toml"), manifest).unwrap();
    for entry in std::fs::read_dir(from.join("build")).unwrap().flatten() {
        std::fs::copy(entry.path(), to.join("build").join(entry.file_name())).unwrap();
    }
    to
}

#[test]
fn rollback_returns_to_the_previous_version_and_back() {
    let f = Fixture::new();
    f.install("text-tools");
    let err = f.kernel.rollback("text-tools").expect_err("nothing to roll back to");
    assert!(matches!(err, KernelError::NoPrevious(_)), "{err}");
    f.kernel.install_dir(&with_version(&f, "text-tools", "0.2.0")).unwrap();
    assert_eq!(f.kernel.info("text-tools").unwrap().installed.manifest.version.to_string(), "0.2.0");
    assert_eq!(f.kernel.rollback("text-tools").unwrap().manifest.version.to_string(), "0.1.0");
    assert_eq!(f.ok("text-tools", "upper", "back"), "BACK");
    assert_eq!(f.kernel.rollback("text-tools").unwrap().manifest.version.to_string(), "0.2.0");
    // Only the current and previous versions are kept on disk.
    f.kernel.install_dir(&with_version(&f, "text-tools", "0.3.0")).unwrap();
    let slots = std::fs::read_dir(f.home().join("carets/text-tools")).unwrap().flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("v-")).count();
    assert_eq!(slots, 2);
}

const INSTALL_CHILD: &str = "SYMPHONY_INSTALL_CHILD";

#[test]
fn install_child_process_for_kill_test() {
    // Only acts when started by `an_install_killed_at_any_point_leaves_a_whole_version`.
    let Ok(spec) = std::env::var(INSTALL_CHILD) else { return };
    let (home, ws, dir) = {
        let mut parts = spec.split('|');
        (parts.next().unwrap().to_owned(), parts.next().unwrap().to_owned(), parts.next().unwrap().to_owned())
    };
    let kernel = symphony_kernel::Kernel::open(symphony_kernel::KernelOptions {
        home: home.into(),
        workspace: ws.into(),
        config: Default::default(),
    })
    .unwrap();
    loop {
        kernel.install_dir(std::path::Path::new(&dir)).unwrap();
    }
}

#[test]
fn an_install_killed_at_any_point_leaves_a_whole_version() {
    let f = Fixture::new();
    f.install("text-tools");
    let v2 = with_version(&f, "text-tools", "0.2.0");
    let spec = format!("{}|{}|{}", f.home().display(), f.workspace().display(), v2.display());
    for round in 0..12u64 {
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "it::registry::install_child_process_for_kill_test", "--nocapture", "--test-threads=1"])
            .env(INSTALL_CHILD, &spec)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // The child reinstalls in a loop; kill it at a different moment each round.
        std::thread::sleep(std::time::Duration::from_millis(40 + round * 17));
        child.kill().unwrap();
        child.wait().unwrap();
        let k = symphony_kernel::Kernel::open(symphony_kernel::KernelOptions {
            home: f.home(),
            workspace: f.workspace(),
            config: Default::default(),
        })
        .unwrap();
        let version = k.info("text-tools").unwrap_or_else(|e| panic!("round {round}: {e}")).installed.manifest.version.to_string();
        assert!(version == "0.1.0" || version == "0.2.0", "round {round}: {version}");
        assert_eq!(
            k.invoke(&symphony_kernel::Principal::User, "caret/text-tools", "upper", "alive").unwrap_or_else(|e| panic!("round {round}: {e}")),
            "ALIVE"
        );
    }
}
