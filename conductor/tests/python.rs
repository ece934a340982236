//! The Conductor's embedded CPython (real, through PyO3) reaching the kernel through the one
//! proxy: as its own principal, denied without a grant exactly like a caret, audited; Python
//! errors typed with their traceback; `targets()` listing what can be called.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use symphony_conductor::python::{self, PythonError};
use symphony_kernel::{Config, Decision, Kernel, KernelOptions};

fn extensions() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../extensions")
}

fn kernel(root: &Path) -> Kernel {
    let ws = root.join("ws");
    std::fs::create_dir_all(&ws).unwrap();
    std::fs::write(ws.join("notes.md"), "TODO: embed Python\n").unwrap();
    let kernel = Kernel::open(KernelOptions { home: root.join("home"), workspace: ws, config: Config::default() }).unwrap();
    for caret in ["text-tools", "tally"] {
        kernel.install_dir(&extensions().join(caret)).unwrap();
    }
    kernel.grant("text-tools", &["fs.read:workspace".parse().unwrap()], "test").unwrap();
    kernel
}

// CPython is one interpreter per process, initialised once; programs take turns (`python::run`).
#[test]
fn python_reaches_the_proxy_as_the_conductor_and_nothing_more() {
    let root = tempfile::tempdir().unwrap();
    let kernel = kernel(root.path());

    // Without a grant the Conductor is denied like any principal: a typed Python exception.
    let program = r#"
import symphony
try:
    symphony.invoke("caret/text-tools", "upper", "hi")
    result = "not denied"
except symphony.CallError as e:
    result = {"code": e.code, "capability": e.capability}
"#;
    let denied = python::run(&kernel, program, "denied.py").unwrap();
    assert_eq!(denied, serde_json::json!({"code": "denied", "capability": "caret.call:text-tools/upper"}));
    let (records, _) = symphony_kernel::AuditLog::read(&root.path().join("home/audit.jsonl")).unwrap();
    assert!(
        records.iter().any(|r| r.principal == "conductor" && r.decision == Decision::Denied && r.target == "caret/text-tools#upper"),
        "the denial is not audited"
    );

    // Granted: calls go through, JSON answers arrive as Python values, state flows between calls.
    kernel.grant_conductor(&["caret.call:text-tools".parse().unwrap(), "caret.call:tally".parse().unwrap()], "test").unwrap();
    let program = r#"
import symphony
todos = symphony.invoke("caret/text-tools", "todos", {})
for _ in range(3):
    last = symphony.invoke("caret/tally", "tick", {"name": "python"})
result = {"upper": symphony.invoke("caret/text-tools", "upper", "hi"), "todos": todos, "n": last["n"], "name_n": last["name_n"]}
"#;
    let answer = python::run(&kernel, program, "granted.py").unwrap();
    assert_eq!(answer["upper"], "HI");
    assert!(answer["todos"].to_string().contains("TODO: embed Python"), "{answer}");
    assert_eq!((answer["n"].as_u64(), answer["name_n"].as_u64()), (Some(3), Some(3)));
    // The grant is exactly what was given: another caret's op is still refused.
    let err = python::run(&kernel, "import symphony\nresult = symphony.invoke('caret/ngram-complete', 'complete', {})", "other.py");
    assert!(matches!(&err, Err(PythonError::Raised { kind, message, .. }) if kind == "CallError" && message.contains("conductor may not call")), "{err:?}");

    // What can be called.
    let targets = python::run(&kernel, "import symphony\nresult = symphony.targets()", "targets.py").unwrap();
    let names: Vec<&str> = targets.as_array().unwrap().iter().map(|t| t["target"].as_str().unwrap()).collect();
    assert!(names.contains(&"caret/tally") && names.contains(&"caret/text-tools"), "{names:?}");
    let tally = targets.as_array().unwrap().iter().find(|t| t["target"] == "caret/tally").unwrap();
    assert!(tally["ops"].to_string().contains("tick"), "{tally}");

    // Python's own failures: typed, with the traceback naming the file and line.
    let err = python::run(&kernel, "def f():\n    return 1 / 0\nresult = f()\n", "boom.py").unwrap_err();
    match &err {
        PythonError::Raised { kind, traceback, .. } => {
            assert_eq!(kind, "ZeroDivisionError");
            assert!(traceback.contains("boom.py\", line 2, in f"), "{traceback}");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(python::run(&kernel, "x = 1", "none.py"), Err(PythonError::BadResult(_))));
    assert!(matches!(python::run(&kernel, "result = object()", "obj.py"), Err(PythonError::BadResult(_))));
    assert!(matches!(python::run(&kernel, "def (", "syntax.py"), Err(PythonError::Raised { kind, .. }) if kind == "SyntaxError"));
    // The kernel keeps serving after all of it.
    assert_eq!(python::run(&kernel, "import symphony\nresult = symphony.invoke('caret/text-tools', 'upper', 'ok')", "after.py").unwrap(), "OK");
}

/// Tells the test thread that the Python program has subscribed.
struct Ready(std::sync::Mutex<std::sync::mpsc::Sender<()>>);

impl symphony_kernel::Service for Ready {
    fn name(&self) -> &str {
        "ready"
    }
    fn call(&self, _: &symphony_kernel::Principal, _: &str, _: &str) -> Result<String, symphony_kernel::CallError> {
        let _ = self.0.lock().unwrap().send(());
        Ok("ok".to_owned())
    }
}

#[test]
fn python_receives_kernel_events_through_a_subscription() {
    let root = tempfile::tempdir().unwrap();
    let kernel = kernel(root.path());
    kernel.invoke(&symphony_kernel::Principal::User, "caret/tally", "@describe", "").unwrap();
    let (ready, subscribed) = std::sync::mpsc::channel();
    kernel.register_service(std::sync::Arc::new(Ready(std::sync::Mutex::new(ready))));
    kernel.grant_conductor(&["pit.ready".parse().unwrap()], "test").unwrap();
    // The swap happens on another thread once Python is listening.
    let swapper = {
        let kernel = kernel.clone();
        std::thread::spawn(move || {
            subscribed.recv_timeout(std::time::Duration::from_secs(60)).unwrap();
            kernel.reload("tally").unwrap();
        })
    };
    let program = "import symphony\nsub = symphony.subscribe()\nsymphony.invoke('pit/ready', 'go')\nevent = sub.next(timeout=30)\nresult = {'event': event, 'quiet': sub.next(timeout=0.05)}\n";
    let got = python::run(&kernel, program, "events.py").unwrap();
    swapper.join().unwrap();
    assert_eq!(got["quiet"], serde_json::Value::Null, "{got}");
    assert!(got["event"].to_string().contains("tally"), "{got}");
}
