//! WASI command-line tools as operators: a `wasi:cli/command` component, or a preview-1 core
//! module with `_start` (what most published WASI tools still are), runs with its arguments,
//! stdin and stdout captured, and only the directories, variables and sockets granted.

use crate::capability::{Capability, CapabilitySet};
use crate::error::KernelError;
use crate::host::{CaretState, MemoryCap, ScopeRoots};
use crate::inspect::{self, World};
use crate::kernel::Kernel;
use crate::manifest::Limits;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;
use wasmtime::{Module, Store};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::bindings::sync::Command;
use wasmtime_wasi::p2::pipe::{MemoryInputPipe, MemoryOutputPipe};
use wasmtime_wasi::{I32Exit, WasiCtxBuilder};

/// Most bytes of stdout kept from one run.
const STDOUT_CAPACITY: usize = 64 * 1024 * 1024;

/// What a command produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandOutput {
    /// The exit status (`0` on a normal return from `main`).
    pub status: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// Why a command did not run to an exit status.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Kernel(#[from] KernelError),
    #[error("{program}: {reason}")]
    Trap { program: String, reason: String, stdout: Vec<u8>, stderr: Vec<u8> },
}

/// How a command that did not return normally ended.
enum Ending {
    Exit(i32),
    Timeout,
    OutOfMemory,
    Trap(String),
}

fn ending(e: &wasmtime::Error, memory_hit: bool) -> Ending {
    match e.downcast_ref::<I32Exit>() {
        Some(I32Exit(code)) => Ending::Exit(*code),
        None if e.downcast_ref::<wasmtime::Trap>() == Some(&wasmtime::Trap::Interrupt) => Ending::Timeout,
        None if memory_hit => Ending::OutOfMemory,
        None => Ending::Trap(format!("{e:#}")),
    }
}

/// What a command may see: a granted workspace is its root (see `ScopeRoots`).
fn command_roots(inner: &crate::kernel::KernelInner, principal: &str) -> ScopeRoots {
    ScopeRoots::for_owner(inner.registry.layout(), &inner.workspace, &principal.replace(':', "-"), true)
}

/// Arms a store with the memory cap and the time limit of `limits`.
fn arm<T>(store: &mut Store<T>, inner: &crate::kernel::KernelInner, limits: &Limits, limiter: fn(&mut T) -> &mut MemoryCap) {
    store.limiter(move |s| limiter(s) as &mut dyn wasmtime::ResourceLimiter);
    store.epoch_deadline_trap();
    store.set_epoch_deadline(crate::caret::ticks_for(limits.time, std::time::Duration::from_millis(inner.config.kernel.epoch_tick_ms.max(1))));
}

impl Kernel {
    /// Turns a run's end into an exit status, or a trap error (auditing hit limits).
    fn finish_command(
        &self,
        principal: &str,
        program: &str,
        limits: &Limits,
        ended: Result<i32, Ending>,
        output: impl Fn() -> (Vec<u8>, Vec<u8>),
    ) -> Result<CommandOutput, CommandError> {
        let audit = &self.inner().audit;
        let reason = match ended {
            Ok(status) | Err(Ending::Exit(status)) => {
                let (stdout, stderr) = output();
                return Ok(CommandOutput { status, stdout, stderr });
            }
            Err(Ending::Timeout) => {
                audit.limited(principal, principal, "limits.time", program, format!("{:?}", limits.time));
                format!("ran past its time limit of {:?}", limits.time)
            }
            Err(Ending::OutOfMemory) => {
                audit.limited(principal, principal, "limits.memory", program, format!("{} bytes", limits.memory_bytes));
                format!("hit the memory cap of {} MiB", limits.memory_bytes >> 20)
            }
            Err(Ending::Trap(reason)) => format!("trapped: {reason}"),
        };
        let (stdout, stderr) = output();
        Err(CommandError::Trap { program: program.to_owned(), reason, stdout, stderr })
    }

    /// Runs the command component in `wasm` with `args` (after the program name) and `stdin`,
    /// under `grants` and `limits`.
    pub fn run_command(
        &self,
        wasm: &Path,
        grants: &[Capability],
        args: &[String],
        stdin: Vec<u8>,
        limits: Limits,
    ) -> Result<CommandOutput, CommandError> {
        let bytes = std::fs::read(wasm).map_err(|e| KernelError::io(wasm, e))?;
        let info = match inspect::inspect(&bytes) {
            Ok(info) => info,
            Err(inspect::InspectError::CoreModule) => {
                return self.run_preview1(wasm, &bytes, grants, args, stdin, limits);
            }
            Err(e) => {
                return Err(KernelError::InvalidComponent { path: wasm.to_path_buf(), reason: e.to_string() }.into());
            }
        };
        if info.world != World::Command {
            return Err(KernelError::InvalidComponent {
                path: wasm.to_path_buf(),
                reason: "it does not export `wasi:cli/run`, so it is not a command (carets are run with `symphony call`)".to_owned(),
            }
            .into());
        }
        let program = wasm.file_stem().map_or_else(|| "command".to_owned(), |s| s.to_string_lossy().into_owned());
        let hash = blake3::hash(&bytes);
        let inner = self.inner();
        let (component, _) = inner.cache.load(&inner.engine, &bytes, &hash, wasm)?;

        let stdout = MemoryOutputPipe::new(STDOUT_CAPACITY);
        let mut builder = WasiCtxBuilder::new();
        builder.stdin(MemoryInputPipe::new(stdin)).stdout(stdout.clone()).arg(&program).args(args);
        let principal = format!("command:{program}");
        let state = CaretState::new(
            builder,
            Arc::from(principal.as_str()),
            Arc::new(CapabilitySet::new(grants.iter().cloned())),
            &command_roots(inner, &principal),
            limits.memory_bytes,
            std::sync::Weak::new(),
            Arc::clone(&inner.audit),
        );
        let mut store = Store::new(&inner.engine, state);
        arm(&mut store, inner, &limits, |s| &mut s.limiter);
        store.data_mut().deadline = Instant::now() + limits.time;

        let ended = match Command::instantiate(&mut store, &component, &inner.linker) {
            Err(e) => Err(Ending::Trap(format!("cannot instantiate: {e:#}"))),
            Ok(command) => match command.wasi_cli_run().call_run(&mut store) {
                Ok(Ok(())) => Ok(0),
                Ok(Err(())) => Ok(1),
                Err(e) => Err(ending(&e, store.data().limiter.hit)),
            },
        };
        let stderr = store.data().stderr.clone();
        self.finish_command(&principal, &program, &limits, ended, || (stdout.contents().to_vec(), stderr.contents().to_vec()))
    }

    /// Runs a preview-1 core module's `_start` under the same grants. Filesystem escapes are
    /// refused by the same cap-std preopens; unlike components, refusals inside preview 1 are
    /// not audited (its host calls do not pass through the kernel's wrappers).
    fn run_preview1(
        &self,
        wasm: &Path,
        bytes: &[u8],
        grants: &[Capability],
        args: &[String],
        stdin: Vec<u8>,
        limits: Limits,
    ) -> Result<CommandOutput, CommandError> {
        let inner = self.inner();
        let invalid = |reason: String| KernelError::InvalidComponent { path: wasm.to_path_buf(), reason };
        let program = wasm.file_stem().map_or_else(|| "command".to_owned(), |s| s.to_string_lossy().into_owned());
        let module = Module::new(&inner.engine, bytes).map_err(|e| invalid(format!("{e:#}")))?;
        if !module.exports().any(|e| e.name() == "_start") {
            return Err(invalid("a core module without `_start` is not a command (build a binary crate for wasm32-wasip1 or wasm32-wasip2)".to_owned()).into());
        }
        let principal = format!("command:{program}");
        let stdout = MemoryOutputPipe::new(STDOUT_CAPACITY);
        let stderr = MemoryOutputPipe::new(STDOUT_CAPACITY);
        let mut builder = WasiCtxBuilder::new();
        builder.stdin(MemoryInputPipe::new(stdin)).stdout(stdout.clone()).stderr(stderr.clone()).arg(&program).args(args);
        let grants = Arc::new(CapabilitySet::new(grants.iter().cloned()));
        let roots = command_roots(inner, &principal);
        crate::host::configure_wasi(&mut builder, &principal, &grants, &roots, &inner.audit, &Default::default(), false);
        let state = Preview1 {
            wasi: builder.build_p1(),
            limiter: MemoryCap { bytes: usize::try_from(limits.memory_bytes).unwrap_or(usize::MAX), hit: false },
        };
        let mut store = Store::new(&inner.engine, state);
        arm(&mut store, inner, &limits, |s| &mut s.limiter);
        let mut linker: wasmtime::Linker<Preview1> = wasmtime::Linker::new(&inner.engine);
        wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |s| &mut s.wasi).map_err(|e| KernelError::Engine(format!("{e:#}")))?;
        let ended = match linker.instantiate(&mut store, &module) {
            Err(e) => Err(Ending::Trap(format!("cannot instantiate: {e:#}"))),
            Ok(instance) => match instance.get_typed_func::<(), ()>(&mut store, "_start") {
                Err(e) => Err(Ending::Trap(format!("`_start` has the wrong type: {e:#}"))),
                Ok(start) => start.call(&mut store, ()).map(|()| 0).map_err(|e| ending(&e, store.data().limiter.hit)),
            },
        };
        self.finish_command(&principal, &program, &limits, ended, || (stdout.contents().to_vec(), stderr.contents().to_vec()))
    }
}

/// The store data of a preview-1 command.
struct Preview1 {
    wasi: WasiP1Ctx,
    limiter: MemoryCap,
}
