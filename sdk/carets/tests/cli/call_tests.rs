//! `carets test`: call tests run through the real kernel with exactly the capabilities the
//! manifest requests — a caret that reads its workspace passes only while it declares
//! `fs.read:workspace` — and failures name the case, its line and what differed.

use super::support::{carets, ok, text};
use std::path::Path;

/// An operator with a `read` op that returns a workspace file.
fn reader(root: &Path, capabilities: &str) -> std::path::PathBuf {
    ok(carets(&["new", "reader", "--kind", "operator"], root));
    let dir = root.join("reader");
    let lib = dir.join("src/lib.rs");
    let source = std::fs::read_to_string(&lib).unwrap().replace(
        r#""upper" => Ok(input.to_uppercase()),"#,
        r#""upper" => Ok(input.to_uppercase()),
            "read" => std::fs::read_to_string(format!("/workspace/{input}")).map_err(|e| Error::failed(format!("{input}: {e}"))),"#,
    );
    std::fs::write(&lib, source).unwrap();
    set_capabilities(&dir, capabilities);
    std::fs::create_dir_all(dir.join("fixtures")).unwrap();
    std::fs::write(dir.join("fixtures/hello.txt"), "hello from the fixture").unwrap();
    std::fs::write(
        dir.join("tests/calls.toml"),
        r#"workspace = "fixtures"

[[call]]
name = "reads a workspace file"
op = "read"
input = "hello.txt"
expect = "hello from the fixture"

[[call]]
name = "cannot climb out of the workspace"
op = "read"
input = "../Symphony.toml"
expect_error = "denied"
"#,
    )
    .unwrap();
    dir
}

fn set_capabilities(dir: &Path, capabilities: &str) {
    let manifest = dir.join("Symphony.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let start = text.find("request = [").unwrap();
    let end = start + text[start..].find(']').unwrap() + 1;
    std::fs::write(&manifest, format!("{}request = [{capabilities}]{}", &text[..start], &text[end..])).unwrap();
}

#[test]
fn call_tests_run_with_exactly_the_declared_grants_and_report_failures() {
    let root = tempfile::tempdir().unwrap();
    let dir = reader(root.path(), r#""fs.read:workspace""#);

    let (out, _) = ok(carets(&["test"], &dir));
    assert!(out.contains("reader 0.1.0; grants: fs.read:workspace"), "{out}");
    assert!(out.contains("call reads a workspace file ... ok"), "{out}");
    assert!(out.contains("call cannot climb out of the workspace ... ok"), "{out}");
    assert!(out.contains("capability denials during the calls"), "the escape attempt was not reported:\n{out}");
    assert!(out.contains("call test result: ok. 2 passed; 0 failed"), "{out}");

    // Declared no longer, so not granted: the same test now fails, naming the case and line.
    set_capabilities(&dir, "");
    let out = carets(&["test", "--no-unit"], &dir);
    assert!(!out.status.success(), "passed without its capability:\n{}", text(&out.stdout));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("grants: none"), "{stdout}");
    assert!(stdout.contains("call reads a workspace file ... FAILED"), "{stdout}");
    assert!(stdout.contains("---- reads a workspace file (tests/calls.toml:4)"), "{stdout}");
    assert!(stdout.contains("the call failed: denied [reader]: hello.txt"), "{stdout}");
    assert!(stdout.contains("call test result: FAILED. 1 passed; 1 failed"), "{stdout}");

    // A wrong expectation shows expected and got; --filter runs a subset.
    set_capabilities(&dir, r#""fs.read:workspace""#);
    let cases = dir.join("tests/calls.toml");
    let wrong = std::fs::read_to_string(&cases).unwrap().replace(r#"expect = "hello from the fixture""#, r#"expect = "goodbye""#);
    std::fs::write(&cases, wrong).unwrap();
    let out = carets(&["test", "--no-unit", "--filter", "reads"], &dir);
    let stdout = text(&out.stdout);
    assert!(!out.status.success());
    assert!(stdout.contains("expected \"goodbye\"\n     got \"hello from the fixture\""), "{stdout}");
    assert!(stdout.contains("0 passed; 1 failed; 1 filtered out"), "{stdout}");

    // A case that asserts nothing, or a misspelt key, is refused before anything runs.
    std::fs::write(&cases, "[[call]]\nname = \"nothing\"\nop = \"upper\"\n").unwrap();
    let out = carets(&["test", "--no-unit"], &dir);
    assert!(text(&out.stderr).contains("tests/calls.toml:2: call \"nothing\" expects nothing"), "{}", text(&out.stderr));
    std::fs::write(&cases, "[[call]]\nname = \"typo\"\nop = \"upper\"\nexpected = \"X\"\n").unwrap();
    let out = carets(&["test", "--no-unit"], &dir);
    let err = text(&out.stderr);
    assert!(!out.status.success() && err.contains("unknown field `expected`") && err.contains("line 4"), "{err}");
}
