//! From an empty directory: `carets new` for each kind, `carets build`, then the real kernel
//! installs and calls the result. And the errors that teach.

use super::support::{carets, text};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use symphony_kernel::{CallObserver, Config, Kernel, KernelOptions, Principal};

fn new_and_build(root: &Path, name: &str, kind: &str) -> PathBuf {
    let out = carets(&["new", name, "--kind", kind], root);
    assert!(out.status.success(), "new: {}", text(&out.stderr));
    let dir = root.join(name);
    for file in ["Cargo.toml", "Symphony.toml", "README.md", "src/lib.rs"] {
        assert!(dir.join(file).is_file(), "{file} was not generated");
    }
    let out = carets(&["build"], &dir);
    assert!(out.status.success(), "build: {}{}", text(&out.stdout), text(&out.stderr));
    assert!(text(&out.stdout).contains(&format!("built {name} 0.1.0 ({kind}, API 0.1.0)")), "{}", text(&out.stdout));
    dir
}

#[derive(Default)]
struct Chunks(Mutex<Vec<String>>);

impl CallObserver for Chunks {
    fn chunk(&self, _caret: &str, chunk: &str) {
        self.0.lock().unwrap().push(chunk.to_owned());
    }
}

#[test]
fn each_kind_goes_from_nothing_to_a_kernel_call() {
    let root = tempfile::tempdir().unwrap();
    let kernel = Kernel::open(KernelOptions {
        home: root.path().join("home"),
        workspace: root.path().to_path_buf(),
        config: Config::default(),
    })
    .unwrap();
    for (name, kind) in [("demo-operator", "operator"), ("demo-instrument", "instrument"), ("demo-motif", "motif")] {
        let dir = new_and_build(root.path(), name, kind);
        kernel.install_dir(&dir).unwrap_or_else(|e| panic!("install {name}: {e}"));
    }
    let call = |id: &str, op: &str, payload: &str| kernel.invoke(&Principal::User, &format!("caret/{id}"), op, payload).unwrap();
    assert_eq!(call("demo-operator", "upper", "hi"), "HI");

    let chunks = Arc::new(Chunks::default());
    let answer = kernel
        .invoke_observed(&Principal::User, "caret/demo-instrument", "generate", "one two three", chunks.clone())
        .unwrap();
    assert_eq!(answer, "three two one");
    assert_eq!(chunks.0.lock().unwrap().concat(), answer);

    let nodes: serde_json::Value = serde_json::from_str(&call("demo-motif", "@render", r#"{"panel":"hello"}"#)).unwrap();
    assert!(nodes.to_string().contains("Hello from demo-motif"), "{nodes}");
}

#[test]
fn build_refuses_a_component_that_imports_what_its_manifest_does_not_declare() {
    let root = tempfile::tempdir().unwrap();
    let out = carets(&["new", "sneaky", "--kind", "operator"], root.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
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
