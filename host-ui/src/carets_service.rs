//! `pit/carets`: installed carets and their grants as a proxy service, so clients of
//! `symphony serve` (the IDE's extensions panel) manage them through the one proxy like any
//! other call: `list`, `info {id}`, `grant {id, capabilities}`, `revoke {id, capabilities}`.
//! A caret reaches it only with a `pit.carets.<op>` grant.

use serde::Deserialize;
use symphony_kernel::{CallError, Capability, ErrorCode, KernelError, Principal, Service, WeakKernel};

#[derive(Debug)]
pub struct CaretsService {
    kernel: WeakKernel,
}

impl CaretsService {
    pub fn new(kernel: &symphony_kernel::Kernel) -> Self {
        Self { kernel: kernel.downgrade() }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Id {
    id: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Grants {
    id: String,
    capabilities: Vec<String>,
}

fn invalid(op: &str, e: impl std::fmt::Display) -> CallError {
    CallError::new(ErrorCode::InvalidInput, format!("pit/carets {op}: {e}"))
}

fn kernel_error(e: KernelError) -> CallError {
    match e {
        KernelError::NotInstalled(id) => CallError::new(ErrorCode::NotFound, format!("no caret `{id}` is installed")),
        KernelError::NotRequested { .. } => CallError::new(ErrorCode::Denied, e.to_string()),
        KernelError::Capability(e) => CallError::new(ErrorCode::InvalidInput, e.to_string()),
        other => CallError::new(ErrorCode::Internal, other.to_string()),
    }
}

fn json<T: serde::Serialize>(v: &T) -> Result<String, CallError> {
    serde_json::to_string(v).map_err(|e| CallError::new(ErrorCode::Internal, e.to_string()))
}

impl Service for CaretsService {
    fn name(&self) -> &str {
        "carets"
    }

    fn call(&self, principal: &Principal, op: &str, payload: &str) -> Result<String, CallError> {
        let kernel = self.kernel.upgrade().ok_or_else(|| CallError::new(ErrorCode::Internal, "the kernel is shutting down"))?;
        let payload = if payload.trim().is_empty() { "{}" } else { payload };
        match op {
            "list" => json(&kernel.list().map_err(kernel_error)?),
            "info" => {
                let Id { id } = serde_json::from_str(payload).map_err(|e| invalid(op, e))?;
                json(&kernel.info(&id).map_err(kernel_error)?)
            }
            "grant" | "revoke" => {
                let Grants { id, capabilities } = serde_json::from_str(payload).map_err(|e| invalid(op, e))?;
                let caps = capabilities.iter().map(|c| c.parse::<Capability>()).collect::<Result<Vec<_>, _>>().map_err(|e| invalid(op, e))?;
                if op == "grant" {
                    kernel.grant(&id, &caps, &principal.to_string()).map_err(kernel_error)?;
                } else {
                    kernel.revoke(&id, &caps).map_err(kernel_error)?;
                }
                json(&kernel.info(&id).map_err(kernel_error)?)
            }
            other => Err(CallError::new(ErrorCode::NotFound, format!("pit/carets has no op `{other}`; it has list, info, grant, revoke"))),
        }
    }
}
