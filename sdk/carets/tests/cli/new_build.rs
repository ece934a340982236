//! From an empty directory, as a caret author works: `carets new` for each kind → `build` →
//! `test` → `pack` → `publish` into a registry → `symphony caret install` → `symphony call`,
//! with progress as plain lines (stderr is not a terminal here). And the errors that teach.

use super::support::{carets, ok, symphony, text};

fn public_key(keygen_stdout: &str) -> String {
    keygen_stdout.lines().find_map(|l| l.strip_prefix("public key: ")).unwrap().trim().to_owned()
}

#[test]
fn each_kind_goes_from_nothing_to_a_call_through_a_registry() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    let home = r.join("home");
    let registry = r.join("registry");
    let public = public_key(&ok(carets(&["keygen", "--name", "alice", "--out", "alice.key"], r)).0);
    ok(symphony(&home, &["trust", "add", &public, "--name", "alice"], r));
    for (name, kind) in [("demo-operator", "operator"), ("demo-instrument", "instrument"), ("demo-motif", "motif")] {
        ok(carets(&["new", name, "--kind", kind], r));
        let dir = r.join(name);
        for file in ["Cargo.toml", "Symphony.toml", "README.md", "src/lib.rs", "tests/calls.toml"] {
            assert!(dir.join(file).is_file(), "{file} was not generated");
        }
        let (out, progress) = ok(carets(&["build"], &dir));
        assert!(out.contains(&format!("built {name} 0.1.0 ({kind}, API 0.1.0)")), "{out}");
        assert!(progress.contains(&format!("build [1/3] compiling {name} for wasm32-wasip2")), "{progress}");
        assert!(progress.contains("build [3/3] writing"), "{progress}");

        // The generated call tests pass against the real kernel, and the unit tests run.
        let (out, _) = ok(carets(&["test"], &dir));
        assert!(out.contains("running unit tests (cargo test)"), "{out}");
        assert!(out.contains("call test result: ok."), "{out}");
        assert!(!out.contains("0 passed"), "{out}");

        let (out, progress) = ok(carets(&["pack", ".", "--key", "../alice.key"], &dir));
        assert!(out.contains(&format!("packed {name} 0.1.0 (signed by alice)")), "{out}");
        assert!(progress.contains("pack [2/3] hashing") && progress.contains("signing as alice"), "{progress}");
        let package = format!("{name}-0.1.0.caret");
        let (out, progress) = ok(carets(&["publish", &package, "--registry", registry.to_str().unwrap()], &dir));
        assert!(out.contains(&format!("published {name} 0.1.0 (signed by alice)")), "{out}");
        assert!(progress.contains("publish [2/2] adding"), "{progress}");

        let (_, progress) = ok(symphony(&home, &["caret", "install", name, "--registry", registry.to_str().unwrap()], r));
        assert!(progress.contains(&format!("install [1/3] resolving {name}")), "{progress}");
        assert!(progress.contains(&format!("install [2/3] verifying and installing {name} 0.1.0 (signed by alice)")), "{progress}");
        assert!(progress.contains(&format!("install [3/3] compiling {name} 0.1.0")), "{progress}");
    }
    let call = |args: &[&str]| ok(symphony(&home, &[&["call"], args].concat(), r)).0;
    assert_eq!(call(&["demo-operator", "upper", "hi"]).trim(), "HI");
    assert_eq!(call(&["demo-instrument", "generate", "one two three"]).trim(), "three two one");
    // A motif's panel shows only once granted.
    let denied = symphony(&home, &["call", "demo-motif", "@render", r#"{"panel":"hello"}"#], r);
    assert_eq!(denied.status.code(), Some(3), "{}", text(&denied.stderr));
    assert!(text(&denied.stderr).contains("ui.panel"), "{}", text(&denied.stderr));
    ok(symphony(&home, &["caret", "grant", "demo-motif", "ui.panel"], r));
    let rendered = call(&["demo-motif", "@render", r#"{"panel":"hello"}"#]);
    assert!(rendered.contains("Hello from demo-motif"), "{rendered}");
}

#[test]
fn build_refuses_a_component_that_imports_what_its_manifest_does_not_declare() {
    let root = tempfile::tempdir().unwrap();
    ok(carets(&["new", "sneaky", "--kind", "operator"], root.path()));
    let lib = root.path().join("sneaky/src/lib.rs");
    let source = std::fs::read_to_string(&lib).unwrap().replace(
        r#""upper" => Ok(input.to_uppercase()),"#,
        r#""upper" => Ok(input.to_uppercase()),
            "spawn" => symphony_caret::host::exec("id", &[], b"").map(|o| String::from_utf8_lossy(&o.stdout).into_owned()),"#,
    );
    std::fs::write(&lib, source).unwrap();
    let out = carets(&["build"], &root.path().join("sneaky"));
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("symphony:caret/process@0.1.0: declare a `process.exec` capability"), "{err}");
    assert!(!root.path().join("sneaky/build/sneaky.wasm").exists(), "a refused component was kept");
}

#[test]
fn new_refuses_bad_names_and_existing_directories() {
    let root = tempfile::tempdir().unwrap();
    let out = carets(&["new", "Bad_Name", "--kind", "motif"], root.path());
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("not a valid caret id"), "{}", text(&out.stderr));
    std::fs::create_dir_all(root.path().join("taken")).unwrap();
    let out = carets(&["new", "taken", "--kind", "motif"], root.path());
    assert!(text(&out.stderr).contains("already exists"), "{}", text(&out.stderr));
    // A manifest error names file, line and field.
    let out = carets(&["new", "fine", "--kind", "operator"], root.path());
    assert!(out.status.success());
    let manifest = root.path().join("fine/Symphony.toml");
    let text_now = std::fs::read_to_string(&manifest).unwrap().replace("version = \"0.1.0\"", "version = \"latest\"");
    std::fs::write(&manifest, text_now).unwrap();
    let out = carets(&["build"], &root.path().join("fine"));
    assert!(text(&out.stderr).contains("Symphony.toml:4:11: `caret.version`"), "{}", text(&out.stderr));
}
