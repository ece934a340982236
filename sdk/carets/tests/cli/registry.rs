//! A registry directory: publish (signed, immutable), yank, and installs by name that resolve
//! dependencies with semver, skip yanked versions and explain what cannot be satisfied.

use super::support::{carets, text};
use std::path::{Path, PathBuf};
use symphony_kernel::package::{generate_key, hex, Package};
use symphony_kernel::package_index::{IndexError, PackageIndex};
use symphony_kernel::{Config, Kernel, KernelOptions, Principal};

fn component() -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../extensions/text-tools/build/text_tools.wasm");
    std::fs::read(&path).unwrap_or_else(|_| panic!("{} missing: run `cargo xtask carets`", path.display()))
}

/// Writes a signed package of the text-tools component under another id, version and deps.
fn package(dir: &Path, key: &ed25519_dalek::SigningKey, id: &str, version: &str, deps: &[(&str, &str)]) -> PathBuf {
    let mut manifest = format!(
        "[caret]\nid = \"{id}\"\nname = \"{id}\"\nversion = \"{version}\"\nkind = \"operator\"\napi = \"0.1.0\"\ncomponent = \"build/c.wasm\"\n"
    );
    if !deps.is_empty() {
        manifest.push_str("\n[dependencies]\n");
        for (d, r) in deps {
            manifest.push_str(&format!("{d} = \"{r}\"\n"));
        }
    }
    let mut p = Package { manifest_text: manifest, component: component(), signature: None };
    p.sign(key, "alice");
    let path = dir.join(format!("{id}-{version}.caret"));
    std::fs::write(&path, p.to_tar().unwrap()).unwrap();
    path
}

fn publish(root: &Path, pkg: &Path) -> std::process::Output {
    carets(&["publish", pkg.to_str().unwrap(), "--registry", "reg"], root)
}

#[test]
fn publish_yank_and_install_by_name_with_dependencies() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    let key = generate_key().unwrap();
    for (id, version, deps) in [
        ("lib-op", "0.1.0", vec![]),
        ("lib-op", "0.1.4", vec![]),
        ("lib-op", "0.2.0", vec![]),
        ("lib-op", "1.0.0", vec![]),
        ("app-op", "0.1.0", vec![("lib-op", "^0.1")]),
        ("needy", "0.1.0", vec![("lib-op", "^3")]),
    ] {
        let out = publish(r, &package(r, &key, id, version, &deps));
        assert!(out.status.success(), "{id} {version}: {}", text(&out.stderr));
    }
    // Published versions are immutable; the registry takes signed packages only.
    let out = publish(r, &package(r, &key, "lib-op", "0.1.0", &[]));
    assert!(text(&out.stderr).contains("already published"), "{}", text(&out.stderr));
    let mut unsigned = Package::from_tar(&std::fs::read(package(r, &key, "lib-op", "9.9.9", &[])).unwrap(), r).unwrap();
    unsigned.signature = None;
    std::fs::write(r.join("unsigned.caret"), unsigned.to_tar().unwrap()).unwrap();
    assert!(text(&publish(r, &r.join("unsigned.caret")).stderr).contains("signed packages only"));

    let out = carets(&["yank", "lib-op@1.0.0", "--registry", "reg"], r);
    assert!(out.status.success(), "{}", text(&out.stderr));

    let kernel = Kernel::open(KernelOptions { home: r.join("home"), workspace: r.to_path_buf(), config: Config::default() }).unwrap();
    kernel.trust().add(&hex(key.verifying_key().as_bytes()), "alice").unwrap();
    let index = PackageIndex::new(r.join("reg"));
    let any = semver::VersionReq::STAR;

    // app-op needs lib-op ^0.1: the newest 0.1.x comes along, dependencies first.
    let installed = kernel.install_from_registry(&index, "app-op", &any, &mut |_| {}).unwrap();
    let got: Vec<String> = installed.iter().map(|c| format!("{} {}", c.manifest.id, c.manifest.version)).collect();
    assert_eq!(got, ["lib-op 0.1.4", "app-op 0.1.0"]);
    assert_eq!(kernel.invoke(&Principal::User, "caret/app-op", "upper", "dep").unwrap(), "DEP");

    // 1.0.0 is yanked, so the newest lib-op is 0.2.0; an exact request for it is refused too.
    let installed = kernel.install_from_registry(&index, "lib-op", &any, &mut |_| {}).unwrap();
    assert_eq!(installed[0].manifest.version.to_string(), "0.2.0");
    let err = kernel.install_from_registry(&index, "lib-op", &semver::VersionReq::parse("=1.0.0").unwrap(), &mut |_| {}).expect_err("yanked");
    assert!(err.to_string().contains("1.0.0 (yanked)"), "{err}");

    // What cannot be satisfied is explained with who asked for what.
    let err = kernel.install_from_registry(&index, "needy", &any, &mut |_| {}).expect_err("unsatisfiable");
    assert!(matches!(err, IndexError::Unsatisfiable(_)), "{err}");
    assert_eq!(
        err.to_string(),
        "no version of `lib-op` satisfies ^3 (required by needy 0.1.0); available: 0.1.0, 0.1.4, 0.2.0, 1.0.0 (yanked)"
    );
    assert!(kernel.info("needy").is_err(), "nothing of an unsatisfiable install is installed");

    // Un-yanked, 1.0.0 is chosen again.
    assert!(carets(&["yank", "lib-op@1.0.0", "--registry", "reg", "--undo"], r).status.success());
    let installed = kernel.install_from_registry(&index, "lib-op", &any, &mut |_| {}).unwrap();
    assert_eq!(installed[0].manifest.version.to_string(), "1.0.0");
    assert!(matches!(index.versions("nobody"), Err(IndexError::UnknownCaret(_))));
}
