//! Guards on WASI calls whose refusals the WASI context alone cannot audit: filesystem paths
//! and reads of the environment.
//!
//! Filesystem: preopens alone refuse escapes silently (and an absolute path
//! outside every preopen never even reaches the host), so the kernel mounts an empty, read-only
//! sentinel directory at `/` and wraps every path-taking filesystem call: each one outside the
//! granted scopes, and each `..`/symlink escape refused by cap-std, becomes a typed error and
//! an audit record.
//!
//! Limit: for some `stat` calls on paths outside every preopen the guest's libc answers
//! "not found" itself without calling the host; nothing is exposed, but such a probe leaves no
//! audit record. Opens, reads, writes and listings always reach the host.

use crate::host::CaretState;
use std::sync::Arc;
use wasmtime::component::{Linker, Resource};
use wasmtime::StoreContextMut;
use wasmtime_wasi::cli::WasiCliView;
use wasmtime_wasi::filesystem::WasiFilesystemView;
use wasmtime_wasi::p2::bindings::cli::environment::Host as _;
use wasmtime_wasi::p2::bindings::filesystem::preopens::Host as _;
use wasmtime_wasi::p2::FsResult;
use wasmtime_wasi::p2::bindings::sync::filesystem::types::{
    Descriptor, DescriptorFlags, ErrorCode, HostDescriptor, OpenFlags, PathFlags,
};

/// The WASI 0.2 version wasmtime-wasi defines; guests importing any 0.2.x match it.
/// `tests/it/hostile.rs` fails if this drifts from wasmtime-wasi (the wrappers would not apply).
const WASI_FILESYSTEM: &str = "0.2.12";
const WASI_CLI: &str = "0.2.12";

/// Where the sentinel is mounted in the guest.
pub(crate) const SENTINEL_MOUNT: &str = "/";

/// The grant that would have allowed an open: the scope a guest path falls in, or just the
/// family when the path is in no scope at all.
fn needed_capability(guest_path: Option<&str>, writing: bool) -> String {
    let family = if writing { "fs.write" } else { "fs.read" };
    let scope = guest_path.and_then(|p| {
        let first = p.trim_start_matches('/').split('/').next().unwrap_or_default();
        ["workspace", "data", "cache"].into_iter().find(|s| *s == first)
    });
    match scope {
        Some(scope) => format!("{family}:{scope}"),
        None => family.to_owned(),
    }
}

/// Runs one path-taking filesystem call for the guest: refuses it outright when it is based on
/// the sentinel, and audits refusals the host gives (escapes, writes to read-only scopes).
fn guarded<T>(
    state: &mut CaretState,
    base: u32,
    path: &str,
    writing: bool,
    call: impl FnOnce(&mut CaretState) -> FsResult<T>,
) -> wasmtime::Result<Result<T, ErrorCode>> {
    let outside = state.sentinel == Some(base);
    let result = if outside {
        // Nothing under the sentinel is ever served, not even its empty directory.
        Err(ErrorCode::Access)
    } else {
        match call(state) {
            Ok(v) => Ok(v),
            Err(e) => Err(e.downcast()?.into()),
        }
    };
    if result.is_ok()
        && let Some(scope) = state.fs_scopes.get(&base)
    {
        let family = if writing { "fs.write" } else { "fs.read" };
        let (caret, scope) = (&*state.caret, &**scope);
        state.audit.allowed_use(&["fs", caret, family, scope, path], || crate::audit::AllowedUse {
            principal: format!("caret:{caret}"),
            caret: Some(caret.to_owned()),
            capability: Some(format!("{family}:{scope}")),
            target: format!("{scope}:{path}"),
        });
    }
    if let Err(code) = &result {
        let reason = match code {
            _ if outside => Some("outside every granted scope"),
            ErrorCode::NotPermitted => Some("escapes its scope (`..` or a symlink) or needs write access"),
            ErrorCode::Access | ErrorCode::ReadOnly => Some("needs write access to a read-only scope"),
            _ => None,
        };
        if let Some(reason) = reason {
            let shown = if outside { format!("/{}", path.trim_start_matches('/')) } else { path.to_owned() };
            let capability = needed_capability(outside.then_some(shown.as_str()), writing);
            let principal = format!("caret:{}", state.caret);
            state.audit.denied(&principal, Some(&state.caret), &capability, &shown, Some(reason.to_owned()));
            state.note_denial(capability);
        }
    }
    Ok(result)
}

type Fd = Resource<Descriptor>;

/// The grant scope a preopen's guest mount point stands for: `/workspace/src` → `workspace/src`;
/// a command's workspace mounted at `/` → `workspace`.
fn scope_of_mount(mount: &str) -> String {
    match mount.trim_matches('/') {
        "" | "." => "workspace".to_owned(),
        m @ ("data" | "cache") => m.to_owned(),
        m if m == "workspace" || m.starts_with("workspace/") => m.to_owned(),
        sub => format!("workspace/{sub}"),
    }
}

/// Replaces `get-directories` (to learn which handle is the sentinel) and every path-taking
/// `descriptor` method (to refuse and audit what falls outside the grants) in a linker that
/// already has WASI.
pub(crate) fn wrap(linker: &mut Linker<CaretState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    // The environment holds only granted variables already; auditing the read shows who looked
    // and what was withheld.
    let mut env = linker.instance(&format!("wasi:cli/environment@{WASI_CLI}"))?;
    env.func_wrap("get-environment", |mut store: StoreContextMut<'_, CaretState>, (): ()| {
        let state = store.data_mut();
        let visible = state.cli().get_environment()?;
        let principal = format!("caret:{}", state.caret);
        if visible.is_empty() {
            let withheld = std::env::vars_os().count();
            state.audit.denied(
                &principal,
                Some(&state.caret),
                "env",
                "environment",
                Some(format!("no env grant; {withheld} host variables withheld")),
            );
        } else {
            for (name, _) in &visible {
                state.audit.allowed(&principal, Some(&state.caret), Some(&format!("env:{name}")), "environment");
            }
        }
        Ok((visible,))
    })?;
    let mut preopens = linker.instance(&format!("wasi:filesystem/preopens@{WASI_FILESYSTEM}"))?;
    preopens.func_wrap("get-directories", |mut store: StoreContextMut<'_, CaretState>, (): ()| {
        let state = store.data_mut();
        let dirs = state.filesystem().get_directories()?;
        if state.sentinel_mounted {
            state.sentinel = dirs.iter().find(|(_, mount)| mount == SENTINEL_MOUNT).map(|(d, _)| d.rep());
        }
        for (dir, mount) in &dirs {
            if state.sentinel != Some(dir.rep()) {
                state.fs_scopes.insert(dir.rep(), Arc::from(scope_of_mount(mount)));
            }
        }
        Ok((dirs,))
    })?;
    let mut t = linker.instance(&format!("wasi:filesystem/types@{WASI_FILESYSTEM}"))?;
    t.func_wrap(
        "[method]descriptor.open-at",
        |mut store: Store<'_>, (fd, pf, path, oflags, flags): (Fd, PathFlags, String, OpenFlags, DescriptorFlags)| {
            let writing = flags.contains(DescriptorFlags::WRITE)
                || oflags.intersects(OpenFlags::CREATE | OpenFlags::TRUNCATE);
            let base = fd.rep();
            let p = path.clone();
            let state = store.data_mut();
            let opened = guarded(state, base, &path, writing, |s| HostDescriptor::open_at(&mut s.filesystem(), fd, pf, p, oflags, flags))?;
            // What is opened inside a scope stays in it: later opens relative to it are audited
            // against the same grant.
            if let (Ok(new), Some(scope)) = (&opened, state.fs_scopes.get(&base).cloned()) {
                state.fs_scopes.insert(new.rep(), scope);
            }
            Ok((opened,))
        },
    )?;
    t.func_wrap("[method]descriptor.stat-at", |mut store: Store<'_>, (fd, pf, path): (Fd, PathFlags, String)| {
        let (base, p) = (fd.rep(), path.clone());
        Ok((guarded(store.data_mut(), base, &path, false, |s| HostDescriptor::stat_at(&mut s.filesystem(), fd, pf, p))?,))
    })?;
    t.func_wrap("[method]descriptor.readlink-at", |mut store: Store<'_>, (fd, path): (Fd, String)| {
        let (base, p) = (fd.rep(), path.clone());
        Ok((guarded(store.data_mut(), base, &path, false, |s| HostDescriptor::readlink_at(&mut s.filesystem(), fd, p))?,))
    })?;
    t.func_wrap("[method]descriptor.create-directory-at", |mut store: Store<'_>, (fd, path): (Fd, String)| {
        let (base, p) = (fd.rep(), path.clone());
        Ok((guarded(store.data_mut(), base, &path, true, |s| HostDescriptor::create_directory_at(&mut s.filesystem(), fd, p))?,))
    })?;
    t.func_wrap("[method]descriptor.remove-directory-at", |mut store: Store<'_>, (fd, path): (Fd, String)| {
        let (base, p) = (fd.rep(), path.clone());
        Ok((guarded(store.data_mut(), base, &path, true, |s| HostDescriptor::remove_directory_at(&mut s.filesystem(), fd, p))?,))
    })?;
    t.func_wrap("[method]descriptor.unlink-file-at", |mut store: Store<'_>, (fd, path): (Fd, String)| {
        let (base, p) = (fd.rep(), path.clone());
        Ok((guarded(store.data_mut(), base, &path, true, |s| HostDescriptor::unlink_file_at(&mut s.filesystem(), fd, p))?,))
    })?;
    t.func_wrap("[method]descriptor.symlink-at", |mut store: Store<'_>, (fd, target, path): (Fd, String, String)| {
        let (base, p) = (fd.rep(), path.clone());
        Ok((guarded(store.data_mut(), base, &path, true, |s| HostDescriptor::symlink_at(&mut s.filesystem(), fd, target, p))?,))
    })?;
    t.func_wrap(
        "[method]descriptor.rename-at",
        |mut store: Store<'_>, (fd, old, new_fd, new): (Fd, String, Fd, String)| {
            let state = store.data_mut();
            // Either side on the sentinel is outside; check the destination first.
            if state.sentinel == Some(new_fd.rep()) {
                let new_base = new_fd.rep();
                return Ok((guarded(state, new_base, &new, true, |_| Ok(()))?,));
            }
            let (base, o) = (fd.rep(), old.clone());
            Ok((guarded(state, base, &old, true, |s| HostDescriptor::rename_at(&mut s.filesystem(), fd, o, new_fd, new))?,))
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

type Store<'a> = StoreContextMut<'a, CaretState>;
