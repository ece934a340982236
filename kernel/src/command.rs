//! Plain `wasi:cli/command` components as operators: any WASI tool runs with its arguments,
//! stdin and stdout captured, and only the directories, variables and sockets granted.

use crate::capability::{Capability, CapabilitySet};
use crate::error::KernelError;
use crate::host::{CaretState, ScopeRoots};
use crate::inspect::{self, World};
use crate::kernel::Kernel;
use crate::manifest::Limits;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;
use wasmtime::Store;
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

impl Kernel {
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
        let info = inspect::inspect(&bytes)
            .map_err(|e| KernelError::InvalidComponent { path: wasm.to_path_buf(), reason: e.to_string() })?;
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
        let layout = inner.registry.layout();
        let roots = ScopeRoots {
            workspace: inner.workspace.clone(),
            data: layout.caret_data(&principal.replace(':', "-")),
            cache: layout.caret_cache(&principal.replace(':', "-")),
            sentinel: layout.sentinel_root(),
        workspace_at_root: true,
        };
        let state = CaretState::new(
            builder,
            Arc::from(principal.as_str()),
            Arc::new(CapabilitySet::new(grants.iter().cloned())),
            &roots,
            limits.memory_bytes,
            std::sync::Weak::new(),
            Arc::clone(&inner.audit),
        );
        let mut store = Store::new(&inner.engine, state);
        store.limiter(|s| &mut s.limiter);
        store.epoch_deadline_trap();
        let tick = u128::from(inner.config.kernel.epoch_tick_ms.max(1)) * 1000;
        store.set_epoch_deadline(u64::try_from(limits.time.as_micros().div_ceil(tick)).unwrap_or(u64::MAX) + 1);
        store.data_mut().deadline = Instant::now() + limits.time;

        let trap = |store: &Store<CaretState>, reason: String| CommandError::Trap {
            program: program.clone(),
            reason,
            stdout: stdout.contents().to_vec(),
            stderr: store.data().stderr.contents().to_vec(),
        };
        let command = match Command::instantiate(&mut store, &component, &inner.linker) {
            Ok(c) => c,
            Err(e) => return Err(trap(&store, format!("cannot instantiate: {e:#}"))),
        };
        let status = match command.wasi_cli_run().call_run(&mut store) {
            Ok(Ok(())) => 0,
            Ok(Err(())) => 1,
            Err(e) => match e.downcast_ref::<I32Exit>() {
                Some(I32Exit(code)) => *code,
                None if e.downcast_ref::<wasmtime::Trap>() == Some(&wasmtime::Trap::Interrupt) => {
                    inner.audit.limited(&principal, &principal, "limits.time", &program, format!("{:?}", limits.time));
                    return Err(trap(&store, format!("ran past its time limit of {:?}", limits.time)));
                }
                None if store.data().limiter.hit => {
                    inner.audit.limited(&principal, &principal, "limits.memory", &program, format!("{} bytes", limits.memory_bytes));
                    return Err(trap(&store, format!("hit the memory cap of {} MiB", limits.memory_bytes >> 20)));
                }
                None => return Err(trap(&store, format!("trapped: {e:#}"))),
            },
        };
        Ok(CommandOutput { status, stdout: stdout.contents().to_vec(), stderr: store.data().stderr.contents().to_vec() })
    }
}
