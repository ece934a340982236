//! `pit/artifacts` as its callers reach it (carets, melodies, the UI): the payloads `put` and
//! `get` take for text and for binary content, and the typed errors bad payloads get.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use symphony::artifacts_service::ArtifactsService;
use symphony_kernel::{ErrorCode, Principal, Service};

fn call(service: &ArtifactsService, op: &str, payload: serde_json::Value) -> Result<serde_json::Value, (ErrorCode, String)> {
    service
        .call(&Principal::User, op, &payload.to_string())
        .map(|answer| serde_json::from_str(&answer).unwrap_or_default())
        .map_err(|e| (e.code, e.message))
}

/// Every byte value, and bytes that are not UTF-8: what `text` cannot carry.
fn binary() -> Vec<u8> {
    let mut bytes: Vec<u8> = (0..=255u8).collect();
    bytes.extend_from_slice(&[0xff, 0xfe, 0x00, 0xc3, 0x28]);
    bytes
}

#[test]
fn binary_content_goes_in_and_out_as_base64() {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let home = tempfile::tempdir().unwrap();
    let service = ArtifactsService::new(home.path());
    let bytes = binary();
    let put = call(&service, "put", serde_json::json!({ "name": "images/logo.png", "base64": b64.encode(&bytes), "meta": { "mime": "image/png" } })).unwrap();
    assert_eq!((put["version"].as_u64(), put["len"].as_u64()), (Some(1), Some(bytes.len() as u64)), "{put}");
    assert_eq!(put["quality"]["class"], "binary", "{put}");

    // `auto` (the default) answers binary as base64, text as text; each encoding on request.
    let got = call(&service, "get", serde_json::json!({ "spec": "images/logo.png" })).unwrap();
    assert_eq!((got.get("text"), got["base64"].as_str().map(|s| b64.decode(s).unwrap())), (None, Some(bytes.clone())), "{got}");
    let (code, message) = call(&service, "get", serde_json::json!({ "spec": "images/logo.png", "encoding": "text" })).unwrap_err();
    assert!(code == ErrorCode::Unsupported && message.contains("images/logo.png") && message.contains("base64"), "{code:?} {message}");
    call(&service, "put", serde_json::json!({ "name": "notes/a.md", "text": "# A\n" })).unwrap();
    assert_eq!(call(&service, "get", serde_json::json!({ "spec": "notes/a.md" })).unwrap()["text"], "# A\n");
    let got = call(&service, "get", serde_json::json!({ "spec": "notes/a.md", "encoding": "base64" })).unwrap();
    assert_eq!(got["base64"].as_str().map(|s| b64.decode(s).unwrap()), Some(b"# A\n".to_vec()), "{got}");
    // By blob hash too.
    let got = call(&service, "get", serde_json::json!({ "spec": put["blob"] })).unwrap();
    assert_eq!(got["base64"].as_str().map(|s| b64.decode(s).unwrap()), Some(bytes), "{got}");
}

#[test]
fn a_put_says_whether_it_made_a_version() {
    let home = tempfile::tempdir().unwrap();
    let service = ArtifactsService::new(home.path());
    let put = |text: &str, kind: &str| call(&service, "put", serde_json::json!({ "name": "notes/b.md", "text": text, "meta": { "kind": kind } })).unwrap();
    let answers = [put("one", "doc"), put("one", "doc"), put("one", "note"), put("two", "note"), put("two", "note")];
    let seen: Vec<(Option<u64>, Option<bool>)> = answers.iter().map(|a| (a["version"].as_u64(), a["unchanged"].as_bool())).collect();
    // The same bytes and metadata again: the latest version, unchanged. Other metadata or
    // other bytes: a new version.
    assert_eq!(seen, [(Some(1), Some(false)), (Some(1), Some(true)), (Some(2), Some(false)), (Some(3), Some(false)), (Some(3), Some(true))]);
}

#[test]
fn bad_put_and_get_payloads_are_refused_with_what_is_wrong() {
    let home = tempfile::tempdir().unwrap();
    let service = ArtifactsService::new(home.path());
    let cases = [
        ("put", serde_json::json!({ "name": "a/b" }), "`text` or as `base64`"),
        ("put", serde_json::json!({ "name": "a/b", "text": "x", "base64": "eA==" }), "`text` or as `base64`"),
        ("put", serde_json::json!({ "name": "a/b", "base64": "not base64!" }), "does not decode"),
        ("put", serde_json::json!({ "name": "a/b", "bytes": [1, 2] }), "unknown field `bytes`"),
        ("get", serde_json::json!({ "spec": "a/b", "encoding": "hex" }), "unknown variant `hex`"),
    ];
    for (op, payload, why) in cases {
        let (code, message) = call(&service, op, payload.clone()).unwrap_err();
        assert!(code == ErrorCode::InvalidInput && message.contains(why), "{op} {payload}: {code:?} {message}");
    }
    // Nothing was stored by the refused puts, and the service still serves.
    assert_eq!(call(&service, "get", serde_json::json!({ "spec": "a/b" })).unwrap_err().0, ErrorCode::NotFound);
    assert_eq!(call(&service, "stats", serde_json::json!({})).unwrap()["versions"], 0);
}
