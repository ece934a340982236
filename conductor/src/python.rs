//! The Conductor's Python side: CPython embedded with PyO3, and the `symphony` module it gets —
//! `invoke(target, op, payload)` (the one proxy, as the `conductor` principal: audited and
//! granted like any caller), `targets()` (what the Pit and the installed carets offer),
//! `subscribe()` (kernel events) and `CallError`. Python errors come back typed, with the traceback.

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyModule};
use std::ffi::CString;
use symphony_kernel::{Kernel, Principal};

create_exception!(symphony, CallError, PyException, "A proxied call failed; `.code`, `.capability`, `.caret` say how.");

/// Why a Python program did not finish.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PythonError {
    /// It raised; `traceback` is Python's own rendering, innermost frame last.
    #[error("{kind}: {message}\n{traceback}")]
    Raised { kind: String, message: String, traceback: String },
    /// It did not set `result`, or set it to something that is not JSON.
    #[error("the program's `result` {0}")]
    BadResult(String),
    /// The source cannot be handed to Python at all (a NUL byte).
    #[error("the source contains a NUL byte at {0}")]
    Source(usize),
}

/// The proxy as Python sees it.
#[pyclass(name = "Proxy", module = "symphony")]
struct Proxy {
    kernel: Kernel,
}

/// `json.dumps` and `json.loads`, looked up once (an import per call cost ~1 µs).
static JSON_DUMPS: pyo3::sync::PyOnceLock<Py<PyAny>> = pyo3::sync::PyOnceLock::new();
static JSON_LOADS: pyo3::sync::PyOnceLock<Py<PyAny>> = pyo3::sync::PyOnceLock::new();

fn json_fn<'py>(py: Python<'py>, cell: &'static pyo3::sync::PyOnceLock<Py<PyAny>>, name: &str) -> PyResult<&'py Bound<'py, PyAny>> {
    cell.get_or_try_init(py, || py.import("json")?.getattr(name).map(Bound::unbind)).map(|f| f.bind(py))
}

pub(crate) fn to_json(value: &Bound<'_, PyAny>) -> PyResult<String> {
    if let Ok(s) = value.extract::<String>() {
        return Ok(s);
    }
    json_fn(value.py(), &JSON_DUMPS, "dumps")?.call1((value,))?.extract()
}

/// An answer as Python sees it: parsed when it is JSON, else the text. Text that cannot start
/// a JSON value is returned at once, without raising and catching a decode error.
pub(crate) fn from_json<'py>(py: Python<'py>, text: &str) -> PyResult<Bound<'py, PyAny>> {
    let may_be_json = text.trim_start().starts_with(|c: char| matches!(c, '{' | '[' | '"' | '-' | '0'..='9' | 't' | 'f' | 'n'));
    if may_be_json && let Ok(v) = json_fn(py, &JSON_LOADS, "loads")?.call1((text,)) {
        return Ok(v);
    }
    Ok(text.into_pyobject(py)?.into_any())
}

/// Kernel events as Python reads them.
#[pyclass(name = "Subscription", module = "symphony")]
struct Subscription {
    events: std::sync::Mutex<std::sync::mpsc::Receiver<symphony_kernel::swap::KernelEvent>>,
}

#[pymethods]
impl Subscription {
    /// The next event as a dict, or `None` when `timeout` seconds pass first (the GIL is
    /// released while waiting).
    #[pyo3(signature = (timeout=None))]
    fn next<'py>(&self, py: Python<'py>, timeout: Option<f64>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let event = py.detach(|| {
            let events = self.events.lock().unwrap_or_else(|p| p.into_inner());
            match timeout {
                Some(t) => events.recv_timeout(std::time::Duration::from_secs_f64(t.max(0.0))).ok(),
                None => events.recv().ok(),
            }
        });
        match event {
            Some(e) => {
                let text = serde_json::to_string(&e).map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()))?;
                from_json(py, &text).map(Some)
            }
            None => Ok(None),
        }
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.next(py, None)
    }
}

#[pymethods]
impl Proxy {
    /// `invoke(target, op, payload=None)`: the answer (parsed when it is JSON); raises
    /// `symphony.CallError` when the call fails or is denied.
    #[pyo3(signature = (target, op, payload=None))]
    fn invoke<'py>(&self, py: Python<'py>, target: &str, op: &str, payload: Option<&Bound<'py, PyAny>>) -> PyResult<Bound<'py, PyAny>> {
        let payload = match payload {
            None => String::new(),
            Some(p) if p.is_none() => String::new(),
            Some(p) => to_json(p)?,
        };
        let kernel = self.kernel.clone();
        let (target, op) = (target.to_owned(), op.to_owned());
        // The call may run for a while: let other Python threads go meanwhile.
        let result = py.detach(move || kernel.invoke(&Principal::Conductor, &target, &op, &payload));
        match result {
            Ok(answer) => from_json(py, &answer),
            Err(e) => {
                let err = CallError::new_err(e.to_string());
                let value = err.value(py);
                value.setattr("code", e.code.as_str())?;
                value.setattr("capability", e.capability.clone())?;
                value.setattr("caret", e.caret.clone())?;
                Err(err)
            }
        }
    }

    /// `subscribe()`: the kernel's events from now on (caret swaps and failed swaps), read with
    /// `.next(timeout=None)`; iterating blocks for each next event.
    fn subscribe(&self) -> Subscription {
        Subscription { events: std::sync::Mutex::new(self.kernel.subscribe()) }
    }

    /// `targets()`: every installed caret with its kind, version and ops, and the Pit services.
    fn targets<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let kernel = self.kernel.clone();
        let listed = py.detach(move || targets(&kernel));
        match listed {
            Ok(json) => from_json(py, &json.to_string()),
            Err(e) => Err(CallError::new_err(e.to_string())),
        }
    }
}

/// What can be invoked: installed carets with their ops (from `@describe`, metadata only) and
/// the registered Pit services.
fn targets(kernel: &Kernel) -> Result<serde_json::Value, symphony_kernel::KernelError> {
    let mut out = Vec::new();
    for caret in kernel.list()? {
        let m = &caret.installed.manifest;
        let target = format!("caret/{}", m.id);
        let ops = kernel
            .invoke(&Principal::User, &target, "@describe", "")
            .ok()
            .and_then(|d| serde_json::from_str::<serde_json::Value>(&d).ok())
            .unwrap_or(serde_json::Value::Null);
        out.push(serde_json::json!({ "target": target, "kind": m.kind, "version": m.version.to_string(), "ops": ops }));
    }
    for name in kernel.services() {
        out.push(serde_json::json!({ "target": format!("pit/{name}"), "kind": "pit" }));
    }
    Ok(serde_json::Value::Array(out))
}

/// Runs `source` (a Python program; `filename` names it in tracebacks) with `import symphony`
/// reaching `kernel`. The program leaves its answer in a global `result`, returned as JSON.
pub fn run(kernel: &Kernel, source: &str, filename: &str) -> Result<serde_json::Value, PythonError> {
    let code = CString::new(source).map_err(|e| PythonError::Source(e.nul_position()))?;
    let file = CString::new(filename).unwrap_or_else(|_| c"<conductor>".to_owned());
    // `import symphony` resolves through the interpreter-wide `sys.modules`, and each program's
    // module is bound to its kernel: programs run one at a time so none sees another's kernel.
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    Python::attach(|py| {
        let raised = |e: PyErr| explain(py, e);
        let module = symphony_module(py, kernel).map_err(raised)?;
        py.import("sys").and_then(|sys| sys.getattr("modules")?.set_item("symphony", &module)).map_err(raised)?;
        let globals = PyDict::new(py);
        globals.set_item("__builtins__", py.import("builtins").map_err(raised)?).map_err(raised)?;
        globals.set_item("__name__", "__main__").map_err(raised)?;
        let compiled = pyo3::types::PyCode::compile(py, &code, &file, pyo3::types::PyCodeInput::File).map_err(raised)?;
        use pyo3::types::PyCodeMethods;
        compiled.run(Some(&globals), None).map_err(raised)?;
        let result = match globals.get_item("result").map_err(raised)? {
            None => return Err(PythonError::BadResult("is not set".to_owned())),
            Some(r) => r,
        };
        let text = py
            .import("json")
            .and_then(|j| j.call_method1("dumps", (&result,)))
            .and_then(|s| s.extract::<String>())
            .map_err(|e| PythonError::BadResult(format!("is not JSON: {e}")))?;
        serde_json::from_str(&text).map_err(|e| PythonError::BadResult(format!("is not JSON: {e}")))
    })
}

/// The `symphony_conductor` package (`conductor/python/`), built into the binary so an installed
/// `symphony` needs no Python path set up: registered in `sys.modules` on first use.
pub(crate) fn install_package(py: Python<'_>) -> PyResult<()> {
    let modules = py.import("sys")?.getattr("modules")?;
    if modules.contains("symphony_conductor")? {
        return Ok(());
    }
    let policy = PyModule::from_code(
        py,
        c_str(include_str!("../python/symphony_conductor/policy.py"))?.as_c_str(),
        c"symphony_conductor/policy.py",
        c"symphony_conductor.policy",
    )?;
    modules.set_item("symphony_conductor.policy", &policy)?;
    let package = PyModule::from_code(
        py,
        c_str(include_str!("../python/symphony_conductor/__init__.py"))?.as_c_str(),
        c"symphony_conductor/__init__.py",
        c"symphony_conductor",
    )?;
    package.setattr("policy", policy)?;
    modules.set_item("symphony_conductor", package)?;
    Ok(())
}

fn c_str(source: &str) -> PyResult<CString> {
    CString::new(source).map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()))
}

fn symphony_module<'py>(py: Python<'py>, kernel: &Kernel) -> PyResult<Bound<'py, PyModule>> {
    let module = PyModule::new(py, "symphony")?;
    let proxy = Bound::new(py, Proxy { kernel: kernel.clone() })?;
    module.add("invoke", proxy.getattr("invoke")?)?;
    module.add("targets", proxy.getattr("targets")?)?;
    module.add("subscribe", proxy.getattr("subscribe")?)?;
    module.add("CallError", py.get_type::<CallError>())?;
    module.add("proxy", proxy)?;
    Ok(module)
}

/// A Python exception as a typed error with Python's own traceback text.
pub(crate) fn explain(py: Python<'_>, e: PyErr) -> PythonError {
    let kind = e.get_type(py).name().map(|n| n.to_string()).unwrap_or_else(|_| "Exception".to_owned());
    let message = e.value(py).str().map(|s| s.to_string()).unwrap_or_default();
    use pyo3::types::PyTracebackMethods;
    let traceback = e.traceback(py).and_then(|tb| tb.format().ok()).unwrap_or_default();
    PythonError::Raised { kind, message, traceback }
}
