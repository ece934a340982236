//! JSON-RPC 2.0 as `symphony serve` speaks it: parsing (single and batch), the spec's error
//! codes, and the method table. Pure: no sockets here (`serve.rs` is the shell).
//!
//! Methods — every one reaches the kernel through the one proxy:
//! - `invoke {target, op, payload?}` → `Kernel::invoke(user, target, op, payload)`; the payload
//!   may be any JSON (sent as its text) and an answer that is JSON comes back as JSON;
//! - `subscribe {topic}` / `unsubscribe {subscription}` — topics are handled by the connection
//!   (see `serve.rs`); here they are only validated.

use serde::Deserialize;
use serde_json::{json, Value};
use symphony_kernel::{CallError, ErrorCode, Kernel, Principal};

/// The spec's codes, and ours in the server-error range.
pub const PARSE_ERROR: i64 = -32700;
pub const INVALID_REQUEST: i64 = -32600;
pub const METHOD_NOT_FOUND: i64 = -32601;
pub const INVALID_PARAMS: i64 = -32602;
/// A proxied call failed; `data` carries the kernel's typed error.
pub const CALL_FAILED: i64 = -32000;
/// The connection sent more than its rate allows.
pub const RATE_LIMITED: i64 = -32001;

/// Topics a client can subscribe to.
pub const TOPICS: &[&str] = &["caret.events", "workspace.files", "terminal", "settings", "melody.progress"];

/// A JSON-RPC error object.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcError {
    pub code: i64,
    pub message: String,
    pub data: Option<Value>,
}

impl RpcError {
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), data: None }
    }

    fn to_json(&self) -> Value {
        let mut e = json!({ "code": self.code, "message": self.message });
        if let Some(d) = &self.data {
            e["data"] = d.clone();
        }
        e
    }
}

impl From<CallError> for RpcError {
    fn from(e: CallError) -> Self {
        let code = match e.code {
            ErrorCode::InvalidInput => INVALID_PARAMS,
            _ => CALL_FAILED,
        };
        Self { code, message: e.to_string(), data: serde_json::to_value(&e).ok() }
    }
}

/// One request of a message; `id: None` is a notification (no response).
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub id: Option<Value>,
    pub method: String,
    pub params: Value,
}

/// What a message was: requests to run, and errors to answer at once.
#[derive(Debug, PartialEq)]
pub enum Incoming {
    Single(Result<Request, Value>),
    Batch(Vec<Result<Request, Value>>),
}

/// A response (or error response) object.
pub fn response(id: Value, result: Result<Value, RpcError>) -> Value {
    match result {
        Ok(r) => json!({ "jsonrpc": "2.0", "id": id, "result": r }),
        Err(e) => json!({ "jsonrpc": "2.0", "id": id, "error": e.to_json() }),
    }
}

/// Parses a text frame. Errors that must be answered come back as ready error responses.
pub fn parse(text: &str) -> Incoming {
    let value: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => return Incoming::Single(Err(response(Value::Null, Err(RpcError::new(PARSE_ERROR, format!("parse error: {e}")))))),
    };
    match value {
        Value::Array(items) if items.is_empty() => {
            Incoming::Single(Err(response(Value::Null, Err(RpcError::new(INVALID_REQUEST, "an empty batch")))))
        }
        Value::Array(items) => Incoming::Batch(items.into_iter().map(request).collect()),
        other => Incoming::Single(request(other)),
    }
}

fn request(value: Value) -> Result<Request, Value> {
    let id = value.get("id").cloned();
    // An id must be a string, a number or null; anything else cannot be echoed back.
    let id_ok = matches!(id, None | Some(Value::String(_) | Value::Number(_) | Value::Null));
    let invalid = |why: &str| response(if id_ok { id.clone().unwrap_or(Value::Null) } else { Value::Null }, Err(RpcError::new(INVALID_REQUEST, why.to_owned())));
    let Value::Object(obj) = &value else { return Err(invalid("a request must be an object")) };
    if obj.get("jsonrpc") != Some(&Value::String("2.0".to_owned())) {
        return Err(invalid("`jsonrpc` must be \"2.0\""));
    }
    if !id_ok {
        return Err(invalid("`id` must be a string, a number or null"));
    }
    let Some(Value::String(method)) = obj.get("method") else { return Err(invalid("`method` must be a string")) };
    let params = match obj.get("params") {
        None => Value::Null,
        Some(p @ (Value::Object(_) | Value::Array(_))) => p.clone(),
        Some(_) => return Err(invalid("`params` must be an object or an array")),
    };
    Ok(Request { id, method: method.clone(), params })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InvokeParams {
    target: String,
    op: String,
    #[serde(default)]
    payload: Value,
}

fn params<T: serde::de::DeserializeOwned>(method: &str, params: Value) -> Result<T, RpcError> {
    serde_json::from_value(params).map_err(|e| RpcError::new(INVALID_PARAMS, format!("{method}: {e}")))
}

/// `invoke`: the one proxy, as the user.
pub fn invoke(kernel: &Kernel, raw: Value) -> Result<Value, RpcError> {
    let p: InvokeParams = params("invoke", raw)?;
    let payload = match p.payload {
        Value::Null => String::new(),
        Value::String(s) => s,
        other => other.to_string(),
    };
    let answer = kernel.invoke(&Principal::User, &p.target, &p.op, &payload)?;
    Ok(serde_json::from_str(&answer).unwrap_or(Value::String(answer)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscribeParams {
    pub topic: String,
    /// For `terminal`: which one.
    #[serde(default)]
    pub terminal: Option<u64>,
}

/// Validates `subscribe` params: the topic must exist.
pub fn subscribe_params(raw: Value) -> Result<SubscribeParams, RpcError> {
    let p: SubscribeParams = params("subscribe", raw)?;
    if !TOPICS.contains(&p.topic.as_str()) {
        return Err(RpcError::new(INVALID_PARAMS, format!("no topic `{}`; topics: {}", p.topic, TOPICS.join(", "))));
    }
    if (p.topic == "terminal") != p.terminal.is_some() {
        return Err(RpcError::new(INVALID_PARAMS, "`terminal` is given with, and only with, the `terminal` topic"));
    }
    Ok(p)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnsubscribeParams {
    pub subscription: u64,
}

pub fn unsubscribe_params(raw: Value) -> Result<UnsubscribeParams, RpcError> {
    params("unsubscribe", raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_code(v: &Value) -> i64 {
        v["error"]["code"].as_i64().unwrap_or_default()
    }

    #[test]
    fn malformed_messages_get_the_spec_codes() {
        // (frame, expected code of the error response)
        for (frame, code) in [
            ("{not json", PARSE_ERROR),
            ("[]", INVALID_REQUEST),
            ("42", INVALID_REQUEST),
            (r#"{"jsonrpc":"1.0","id":1,"method":"invoke"}"#, INVALID_REQUEST),
            (r#"{"jsonrpc":"2.0","id":1}"#, INVALID_REQUEST),
            (r#"{"jsonrpc":"2.0","id":{"x":1},"method":"invoke"}"#, INVALID_REQUEST),
            (r#"{"jsonrpc":"2.0","id":1,"method":"invoke","params":"text"}"#, INVALID_REQUEST),
        ] {
            match parse(frame) {
                Incoming::Single(Err(resp)) => assert_eq!(error_code(&resp), code, "{frame}: {resp}"),
                other => panic!("{frame}: {other:?}"),
            }
        }
    }

    #[test]
    fn batches_keep_good_requests_and_answer_bad_ones() {
        let Incoming::Batch(items) = parse(r#"[{"jsonrpc":"2.0","id":1,"method":"invoke","params":{}}, 5, {"jsonrpc":"2.0","method":"x"}]"#)
        else {
            panic!("not a batch")
        };
        assert!(matches!(&items[0], Ok(r) if r.id == Some(json!(1)) && r.method == "invoke"));
        assert!(matches!(&items[1], Err(e) if error_code(e) == INVALID_REQUEST));
        assert!(matches!(&items[2], Ok(r) if r.id.is_none()), "a notification");
    }

    #[test]
    fn subscribe_names_the_topics_it_knows() {
        let e = subscribe_params(json!({"topic": "weather"})).err().map(|e| e.message).unwrap_or_default();
        assert!(e.contains("caret.events"), "{e}");
        assert!(subscribe_params(json!({"topic": "caret.events"})).is_ok());
    }
}
