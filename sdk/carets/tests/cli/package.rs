//! Signed packages: keygen → pack → verify → install only when the signer is trusted; and
//! each refusal — untrusted, unsigned, tampered, signed by another key — leaves what was
//! installed before untouched.

use super::support::{carets, ok};
use symphony_kernel::package::{Package, PackageError};
use symphony_kernel::{Config, Kernel, KernelOptions, Principal};

fn public_key(keygen_stdout: &str) -> String {
    keygen_stdout.lines().find_map(|l| l.strip_prefix("public key: ")).unwrap().trim().to_owned()
}

#[test]
fn signed_packages_install_only_from_trusted_signers() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    ok(carets(&["new", "signed-op", "--kind", "operator"], r));
    let dir = r.join("signed-op");
    ok(carets(&["build"], &dir));
    let alice = public_key(&ok(carets(&["keygen", "--name", "alice", "--out", "alice.key"], r)).0);
    let mallory = public_key(&ok(carets(&["keygen", "--name", "mallory", "--out", "mallory.key"], r)).0);
    assert_ne!(alice, mallory);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(r.join("alice.key")).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let packed = ok(carets(&["pack", "signed-op", "--key", "alice.key", "--out", "good.caret"], r)).0;
    assert!(packed.contains("signed by alice"), "{packed}");
    let verified = ok(carets(&["verify", "good.caret"], r)).0;
    assert!(verified.contains(&format!("signed by alice with key {alice}: signature valid")), "{verified}");

    let kernel = Kernel::open(KernelOptions { home: r.join("home"), workspace: r.to_path_buf(), config: Config::default() }).unwrap();
    let good = r.join("good.caret");

    // Not trusted yet: refused, with the command that would trust it.
    let err = kernel.install_package(&good, false).expect_err("untrusted");
    assert!(matches!(err, PackageError::Untrusted { .. }), "{err}");
    assert!(err.to_string().contains(&format!("symphony trust add {alice}")), "{err}");

    kernel.trust().add(&alice, "alice").unwrap();
    let installed = kernel.install_package(&good, false).unwrap();
    assert_eq!(installed.provenance.as_ref().map(|p| p.signer.as_str()), Some("alice"));
    assert_eq!(kernel.invoke(&Principal::User, "caret/signed-op", "upper", "ok").unwrap(), "OK");

    // Tampered after signing: one byte of the component changed.
    let mut package = Package::from_tar(&std::fs::read(&good).unwrap(), &good).unwrap();
    let last = package.component.len() - 1;
    package.component[last] ^= 1;
    let tampered = r.join("tampered.caret");
    std::fs::write(&tampered, package.to_tar().unwrap()).unwrap();
    let err = kernel.install_package(&tampered, false).expect_err("tampered");
    assert!(matches!(err, PackageError::Tampered { .. }), "{err}");
    let out = carets(&["verify", "tampered.caret"], r);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("altered after signing"), "{}", String::from_utf8_lossy(&out.stderr));

    // Signed by mallory but claiming alice's key.
    std::fs::copy(&good, r.join("forged.caret")).unwrap();
    ok(carets(&["sign", "forged.caret", "--key", "mallory.key"], r));
    let forged = r.join("forged.caret");
    let mut package = Package::from_tar(&std::fs::read(&forged).unwrap(), &forged).unwrap();
    if let Some(sig) = package.signature.as_mut() {
        sig.key.clone_from(&alice);
    }
    std::fs::write(&forged, package.to_tar().unwrap()).unwrap();
    let err = kernel.install_package(&forged, false).expect_err("forged");
    assert!(matches!(err, PackageError::BadSignature { .. }), "{err}");

    // Unsigned: refused unless asked for.
    ok(carets(&["pack", "signed-op", "--out", "plain.caret"], r));
    let plain = r.join("plain.caret");
    assert!(matches!(kernel.install_package(&plain, false), Err(PackageError::Unsigned { .. })));

    // Every refusal left alice's install in place.
    let info = kernel.info("signed-op").unwrap();
    assert_eq!(info.installed.provenance.map(|p| p.signer), Some("alice".to_owned()));
    assert_eq!(kernel.invoke(&Principal::User, "caret/signed-op", "upper", "still").unwrap(), "STILL");

    // Asked for, an unsigned package installs and records no signer.
    let installed = kernel.install_package(&plain, true).unwrap();
    assert!(installed.provenance.is_none());
}

#[test]
fn verify_and_pack_explain_what_is_wrong() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    std::fs::write(r.join("junk.caret"), b"not a tar archive at all, just words").unwrap();
    let out = carets(&["verify", "junk.caret"], r);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("junk.caret"), "{err}");

    ok(carets(&["new", "unbuilt", "--kind", "motif"], r));
    let out = carets(&["pack", "unbuilt"], r);
    assert!(String::from_utf8_lossy(&out.stderr).contains("run `carets build` first"), "{}", String::from_utf8_lossy(&out.stderr));
    ok(carets(&["keygen", "--name", "a", "--out", "k.key"], r));
    let out = carets(&["keygen", "--name", "a", "--out", "k.key"], r);
    assert!(String::from_utf8_lossy(&out.stderr).contains("refusing to overwrite"));
}
