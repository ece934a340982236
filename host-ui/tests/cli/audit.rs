//! `symphony audit`: declared, granted, reachable (from the binary), used (from the audit log)
//! and provenance, with a fixture for every finding; files that are not Symphony carets (a
//! plain wasi:cli command, a foreign world, garbage) audited from their bytes; the `--json`
//! output checked against its published schema on every run.

use crate::{code, extensions, text, Cli};
use serde_json::Value;
use std::path::{Path, PathBuf};
use symphony_kernel::package::{generate_key, hex, Package};

fn schema_validator() -> jsonschema::Validator {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/audit-report.v1.schema.json");
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    jsonschema::validator_for(&schema).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `symphony --json audit ARGS`: the report, after checking it against the schema.
fn audit(cli: &Cli, args: &[&str]) -> Value {
    let out = cli.run(&[&["--json", "audit"], args].concat());
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out.stdout)));
    let errors: Vec<String> = schema_validator().iter_errors(&report).map(|e| format!("{} at {}", e, e.instance_path())).collect();
    assert!(errors.is_empty(), "the report breaks its schema:\n{}\n{report:#}", errors.join("\n"));
    report
}

fn caret<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["carets"].as_array().unwrap().iter().find(|c| c["id"] == id).unwrap_or_else(|| panic!("{id} not in {report:#}"))
}

/// `(severity, code, capability)` of each finding.
fn findings(caret: &Value) -> Vec<(String, String, String)> {
    caret["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let s = |k: &str| f[k].as_str().unwrap_or_default().to_owned();
            (s("severity"), s("code"), s("capability"))
        })
        .collect()
}

fn has(caret: &Value, severity: &str, code: &str, capability: &str) -> bool {
    findings(caret).iter().any(|(s, c, cap)| s == severity && c == code && cap == capability)
}

fn used<'a>(caret: &'a Value, capability: &str) -> Option<&'a Value> {
    caret["used"].as_array().unwrap().iter().find(|u| u["capability"] == capability)
}

fn run_ok(cli: &Cli, args: &[&str]) {
    let out = cli.run(args);
    assert_eq!(code(&out), 0, "{args:?}: {}", text(&out.stderr));
}

fn install(cli: &Cli, dir: &str, grants: &[&str]) {
    run_ok(cli, &["caret", "install", extensions().join(dir).to_str().unwrap()]);
    let id = Path::new(dir).file_name().unwrap().to_str().unwrap();
    if !grants.is_empty() {
        run_ok(cli, &[&["caret", "grant", id], grants].concat());
    }
}

#[test]
fn installed_carets_show_what_they_may_can_and_did_do() {
    let cli = Cli::new();
    install(&cli, "text-tools", &["fs.read:workspace"]);
    run_ok(&cli, &["call", "text-tools", "todos"]);
    install(&cli, "aurora", &["ui.theme", "ui.panel", "caret.call:text-tools/todos"]);
    run_ok(&cli, &["call", "aurora", "@render", r#"{"panel":"todos"}"#]);
    install(&cli, "tests/hostile", &["fs.read:workspace", "net.connect:127.0.0.1:*", "process.exec:echo *"]);
    for (op, payload) in [("read", "/etc/passwd"), ("connect", "10.1.2.3:80"), ("loop", "")] {
        assert_ne!(code(&cli.run(&["call", "hostile", op, payload])), 0, "hostile {op} succeeded");
    }
    // Without an env grant the environment reads as empty (and the withholding is audited).
    assert_eq!(text(&cli.run(&["call", "hostile", "env"]).stdout).trim(), "");
    // A grant the manifest never asked for, as a hand-edited grants file would hold.
    let grants_file = cli.root.path().join("home/grants.json");
    let mut grants: Value = serde_json::from_str(&std::fs::read_to_string(&grants_file).unwrap()).unwrap();
    grants["text-tools"].as_array_mut().unwrap().push(serde_json::json!({
        "capability": "fs.write:workspace", "granted_at": "2026-01-01T00:00:00.000Z", "by": "someone"
    }));
    std::fs::write(&grants_file, serde_json::to_vec(&grants).unwrap()).unwrap();

    let report = audit(&cli, &[]);
    assert_eq!(report["schema"], 1);
    assert_eq!(report["summary"]["carets"], 3);

    let tt = caret(&report, "text-tools");
    assert_eq!(tt["declared"], serde_json::json!(["fs.read:workspace"]));
    assert_eq!(tt["granted"][0]["capability"], "fs.read:workspace");
    assert!(tt["granted"][0]["by"].is_string() && tt["granted"][0]["granted_at"].is_string());
    let reach: Vec<&str> = tt["reachable"].as_array().unwrap().iter().map(|r| r["reach"].as_str().unwrap()).collect();
    assert!(reach.contains(&"fs") && !reach.contains(&"net") && !reach.contains(&"process"), "{reach:?}");
    let fs = used(tt, "fs.read:workspace").expect("the todos call read the workspace");
    assert!(fs["allowed"].as_u64().unwrap() >= 1, "{fs}");
    assert!(fs["targets"].as_array().unwrap().iter().any(|t| t.as_str().unwrap().starts_with("workspace:")), "{fs}");
    assert!(!has(tt, "warning", "unused-grant", "fs.read:workspace"), "{tt:#}");
    assert!(has(tt, "error", "grant-wider-than-manifest", "fs.write:workspace"), "{tt:#}");
    assert!(has(tt, "warning", "unsigned", ""), "{tt:#}");
    assert_eq!(tt["findings"][0]["severity"], "error", "most severe first: {tt:#}");

    let aurora = caret(&report, "aurora");
    let call = used(aurora, "caret.call:text-tools/todos").expect("aurora called text-tools");
    assert_eq!(call["targets"], serde_json::json!(["caret/text-tools#todos"]));
    assert!(used(aurora, "ui.panel").is_some_and(|u| u["allowed"].as_u64() >= Some(1)), "{aurora:#}");
    assert!(has(aurora, "warning", "unused-grant", "ui.theme"), "{aurora:#}");
    assert!(!has(aurora, "warning", "unused-grant", "ui.panel"), "{aurora:#}");

    let hostile = caret(&report, "hostile");
    for wildcard in ["net.connect:127.0.0.1:*", "process.exec:echo *"] {
        assert!(has(hostile, "warning", "wildcard-grant", wildcard), "{wildcard}: {hostile:#}");
    }
    for denied in ["fs.read", "net.connect:10.1.2.3:80", "env"] {
        let u = used(hostile, denied).unwrap_or_else(|| panic!("no use of {denied}: {hostile:#}"));
        assert!(u["denied"].as_u64().unwrap() >= 1, "{u}");
        assert!(has(hostile, "warning", "denied-attempts", denied), "{denied}: {hostile:#}");
    }
    assert!(has(hostile, "warning", "limit-hits", "limits.time"), "{hostile:#}");
    let reach: Vec<&str> = hostile["reachable"].as_array().unwrap().iter().map(|r| r["reach"].as_str().unwrap()).collect();
    for r in ["fs", "env", "net", "process", "proxy"] {
        assert!(reach.contains(&r), "{r} not reachable: {reach:?}");
    }

    // The same data through the proxy, as the IDE's extensions panel gets it.
    let out = cli.run(&["call", "pit/audit", "report", r#"{"caret":"aurora"}"#]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let via_proxy: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(via_proxy["carets"][0]["id"], "aurora");
    assert_eq!(via_proxy["carets"][0]["findings"], aurora["findings"]);
    let out = cli.run(&["call", "pit/audit", "report", r#"{"file":"/etc/passwd"}"#]);
    assert_eq!(code(&out), 5, "the proxy op must not read files: {}", text(&out.stdout));

    // Gating: errors and warnings fail only when asked to.
    assert_eq!(code(&cli.run(&["audit", "--fail-on", "error"])), 2);
    assert_eq!(code(&cli.run(&["audit", "aurora", "--fail-on", "error"])), 0);
    assert_eq!(code(&cli.run(&["audit", "aurora", "--fail-on", "warning"])), 2);

    // A readable table, grouped by caret.
    let out = cli.run(&["audit", "text-tools"]);
    let table = text(&out.stdout);
    for line in [
        "== text-tools 0.1.0 [operator]",
        "  declared   fs.read:workspace",
        "  granted    fs.read:workspace (by ",
        "fs.read:workspace ",
        "ERROR    grant-wider-than-manifest",
        "1 caret(s) audited: 1 error(s)",
    ] {
        assert!(table.contains(line), "missing {line:?} in\n{table}");
    }
    assert_eq!(code(&cli.run(&["audit", "no-such-caret"])), 4);

    // A period that starts after every use: the grants were not used in it.
    std::thread::sleep(std::time::Duration::from_millis(20));
    let recent = audit(&cli, &["text-tools", "--since", "10ms"]);
    assert!(recent["since"].is_string());
    assert!(has(caret(&recent, "text-tools"), "warning", "unused-grant", "fs.read:workspace"), "{recent:#}");
}

/// A signed package of text-tools, signed by a fresh key; returns it and the key's hex.
fn signed_text_tools(dir: &Path) -> (PathBuf, String) {
    let caret = extensions().join("text-tools");
    let manifest_text = std::fs::read_to_string(caret.join("Symphony.toml")).unwrap();
    let component = std::fs::read(caret.join("build/text_tools.wasm")).unwrap();
    let mut package = Package { manifest_text, component, signature: None };
    let key = generate_key().unwrap();
    package.sign(&key, "shipper");
    let path = dir.join("text-tools.caret");
    std::fs::write(&path, package.to_tar().unwrap()).unwrap();
    (path, hex(key.verifying_key().as_bytes()))
}

#[test]
fn a_freshly_installed_signed_shipped_caret_has_no_findings() {
    let cli = Cli::new();
    let (package, key) = signed_text_tools(cli.root.path());
    run_ok(&cli, &["trust", "add", &key, "--name", "shipper"]);
    run_ok(&cli, &["caret", "install", package.to_str().unwrap()]);
    let report = audit(&cli, &["text-tools", "--fail-on", "warning"]);
    let tt = caret(&report, "text-tools");
    assert_eq!(tt["findings"], serde_json::json!([]), "{tt:#}");
    assert_eq!(tt["provenance"]["signed"], true);
    assert_eq!(tt["provenance"]["trusted"], true);
    assert_eq!(tt["provenance"]["signer"], "shipper");
    assert_eq!(tt["provenance"]["key"], key);
    assert_eq!(tt["provenance"]["api"], "0.1.0");
    assert_eq!(code(&cli.run(&["audit", "--fail-on", "warning"])), 0);
    let table = text(&cli.run(&["audit"]).stdout);
    assert!(table.contains("signed by shipper (trusted)") && table.contains("findings   none"), "{table}");

    // Trust withdrawn later: the same caret is now flagged.
    run_ok(&cli, &["trust", "remove", &key]);
    let report = audit(&cli, &["text-tools"]);
    assert!(has(caret(&report, "text-tools"), "warning", "untrusted-signer", ""), "{report:#}");
}

#[test]
fn files_are_audited_from_their_bytes_whatever_built_them() {
    let cli = Cli::new();
    let root = cli.root.path();
    let file = |p: &Path| p.to_str().unwrap().to_owned();

    // A caret directory whose binary imports what its manifest does not declare.
    let report = audit(&cli, &[&file(&extensions().join("tests/hostile-undeclared"))]);
    let c = &report["carets"][0];
    assert_eq!(c["subject"], "directory");
    assert!(has(c, "error", "undeclared-import", "symphony:caret/process@0.1.0"), "{c:#}");
    assert!(c["findings"][0]["message"].as_str().unwrap().contains("process.exec"), "{c:#}");
    let out = cli.run(&["audit", &file(&extensions().join("tests/hostile-undeclared")), "--fail-on", "error"]);
    assert_eq!(code(&out), 2);

    // An operator's component under a manifest that claims a motif.
    let liar = root.join("liar");
    std::fs::create_dir_all(&liar).unwrap();
    let manifest = std::fs::read_to_string(extensions().join("text-tools/Symphony.toml")).unwrap();
    std::fs::write(liar.join("Symphony.toml"), manifest.replace(r#"kind = "operator""#, r#"kind = "motif""#)).unwrap();
    std::fs::create_dir_all(liar.join("build")).unwrap();
    std::fs::copy(extensions().join("text-tools/build/text_tools.wasm"), liar.join("build/text_tools.wasm")).unwrap();
    let report = audit(&cli, &[&file(&liar)]);
    let c = &report["carets"][0];
    assert!(has(c, "error", "world-mismatch", ""), "{c:#}");
    assert_eq!(c["world"]["kind"], "operator", "the binary decides, not the manifest: {c:#}");

    // A plain wasi:cli command compiled by cargo, no Symphony SDK involved.
    let report = audit(&cli, &[&file(&extensions().join("wc-command/build/wc.wasm"))]);
    let c = &report["carets"][0];
    assert_eq!(c["world"]["type"], "command");
    assert!(c["exports"].as_array().unwrap().iter().any(|e| e.as_str().unwrap().starts_with("wasi:cli/run@")), "{c:#}");
    assert!(has(c, "info", "command", ""), "{c:#}");
    assert_eq!(report["summary"]["errors"], 0);

    // A component of a world nobody here defines: its imports and exports, and the verdict.
    let report = audit(&cli, &[&file(&extensions().join("tests/foreign-world/build/foreign_world.wasm"))]);
    let c = &report["carets"][0];
    assert_eq!(c["world"]["type"], "unknown");
    assert_eq!(c["exports"], serde_json::json!(["acme:greeter/greet@1.0.0"]));
    assert!(has(c, "info", "unknown-world", ""), "{c:#}");
    assert!(has(c, "warning", "unknown-import", "acme:greeter/journal@1.0.0"), "{c:#}");

    // Truncated and garbage binaries are findings, never crashes.
    let wasm = std::fs::read(extensions().join("text-tools/build/text_tools.wasm")).unwrap();
    let truncated = root.join("truncated.wasm");
    std::fs::write(&truncated, &wasm[..wasm.len() / 3]).unwrap();
    let garbage = root.join("garbage.caret");
    std::fs::write(&garbage, b"this is not a tar archive at all").unwrap();
    for bad in [&truncated, &garbage] {
        let report = audit(&cli, &[&file(bad)]);
        let c = &report["carets"][0];
        assert!(has(c, "error", "malformed-component", ""), "{c:#}");
    }
    assert_eq!(code(&cli.run(&["audit", &file(&truncated), "--fail-on", "error"])), 2);

    // Packages: tampered after signing, and signed by a key nobody here trusts.
    let (package, key) = signed_text_tools(root);
    let report = audit(&cli, &[&file(&package)]);
    let c = &report["carets"][0];
    assert_eq!((c["subject"].as_str(), c["id"].as_str()), (Some("package"), Some("text-tools")));
    assert!(has(c, "warning", "untrusted-signer", ""), "{c:#}");
    assert_eq!(c["provenance"]["key"], key);
    let mut tampered = Package::from_tar(&std::fs::read(&package).unwrap(), &package).unwrap();
    let last = tampered.component.len() - 1;
    tampered.component[last] ^= 1;
    let tampered_path = root.join("tampered.caret");
    std::fs::write(&tampered_path, tampered.to_tar().unwrap()).unwrap();
    let report = audit(&cli, &[&file(&tampered_path)]);
    assert!(has(&report["carets"][0], "error", "bad-signature", ""), "{report:#}");
}
