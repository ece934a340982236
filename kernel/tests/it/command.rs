//! Plain `wasi:cli/command` components run as operators with only the capabilities given.

use super::support::{built_wasm, cap, Fixture};
use symphony_kernel::{CommandError, Limits};

#[test]
fn a_wasi_command_reads_stdin_and_writes_stdout() {
    let f = Fixture::new();
    let wc = built_wasm("wc-command", "wc.wasm");
    let out = f.kernel.run_command(&wc, &[], &[], b"one two\nthree\n".to_vec(), Limits::default()).unwrap();
    assert_eq!(out.status, 0);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "2 3 14\n");
}

#[test]
fn a_wasi_command_sees_files_only_when_granted() {
    let f = Fixture::new();
    let wc = built_wasm("wc-command", "wc.wasm");
    let args = vec!["notes.md".to_owned()];
    let out = f.kernel.run_command(&wc, &[], &args, Vec::new(), Limits::default()).unwrap();
    assert_eq!(out.status, 1, "stdout {:?}", String::from_utf8_lossy(&out.stdout));
    assert!(String::from_utf8_lossy(&out.stderr).contains("notes.md"));
    assert!(!f.denials("command:wc", "fs.read").is_empty(), "{:?}", f.audit());

    let out = f.kernel.run_command(&wc, &[cap("fs.read:workspace")], &args, Vec::new(), Limits::default()).unwrap();
    assert_eq!(out.status, 0, "stderr {:?}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "4 9 48 notes.md\n");

    // The workspace is the command's whole filesystem: `..` cannot leave it, and is audited.
    let escape = vec!["../secret.txt".to_owned(), "/../secret.txt".to_owned()];
    let out = f.kernel.run_command(&wc, &[cap("fs.read:workspace")], &escape, Vec::new(), Limits::default()).unwrap();
    assert_eq!(out.status, 1);
    assert!(!String::from_utf8_lossy(&out.stdout).contains("secret"), "{:?}", out);
}

#[test]
fn a_caret_is_not_a_command_and_garbage_is_not_either() {
    let f = Fixture::new();
    let err = f
        .kernel
        .run_command(&built_wasm("text-tools", "text_tools.wasm"), &[], &[], Vec::new(), Limits::default())
        .expect_err("a caret");
    assert!(err.to_string().contains("not a command"), "{err}");
    let junk = f.root.path().join("junk.wasm");
    std::fs::write(&junk, b"\0asm junk").unwrap();
    let err = f.kernel.run_command(&junk, &[], &[], Vec::new(), Limits::default()).expect_err("junk");
    assert!(matches!(err, CommandError::Kernel(_)), "{err}");
}

#[test]
fn a_preview1_core_module_runs_as_a_command_under_the_same_grants() {
    let f = Fixture::new();
    let wc = built_wasm("wc-command", "wc.wasip1.wasm");
    let out = f.kernel.run_command(&wc, &[], &[], b"one two\nthree\n".to_vec(), Limits::default()).unwrap();
    assert_eq!((out.status, String::from_utf8_lossy(&out.stdout).into_owned()), (0, "2 3 14\n".to_owned()));

    let args = vec!["notes.md".to_owned()];
    let out = f.kernel.run_command(&wc, &[], &args, Vec::new(), Limits::default()).unwrap();
    assert_eq!(out.status, 1, "no grant, no file: {:?}", String::from_utf8_lossy(&out.stdout));

    let granted = [cap("fs.read:workspace")];
    let out = f.kernel.run_command(&wc, &granted, &args, Vec::new(), Limits::default()).unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "4 9 48 notes.md\n");

    let escape = vec!["../secret.txt".to_owned(), "/../secret.txt".to_owned()];
    let out = f.kernel.run_command(&wc, &granted, &escape, Vec::new(), Limits::default()).unwrap();
    assert_eq!(out.status, 1);
    assert!(!String::from_utf8_lossy(&out.stdout).contains("secret"));

    // A core module that is a library, not a command.
    let lib = f.root.path().join("lib.wasm");
    std::fs::write(&lib, b"\0asm\x01\0\0\0").unwrap();
    let err = f.kernel.run_command(&lib, &[], &[], Vec::new(), Limits::default()).expect_err("no _start");
    assert!(err.to_string().contains("without `_start`"), "{err}");
}
