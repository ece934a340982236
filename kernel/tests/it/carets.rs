//! The shipped carets do real work through the proxy: the operator over workspace text, the
//! instrument learning from the workspace and streaming, the motif's theme and panel.

use super::support::{recorder, Fixture};
use std::sync::Arc;
use symphony_kernel::{ErrorCode, Principal};

fn shipped() -> Fixture {
    let f = Fixture::new();
    f.install("text-tools").install("ngram-complete").install("aurora");
    f.grant("text-tools", &["fs.read:workspace"]);
    f.grant("ngram-complete", &["fs.read:workspace"]);
    f
}

#[test]
fn text_tools_ops_answer_from_the_workspace() {
    let f = shipped();
    // (op, payload, expected JSON)
    let cases = [
        ("stats", r#"{"path":"notes.md"}"#, r#"{"lines":4,"words":9,"chars":48,"bytes":48}"#),
        ("stats", r#"{"text":"a b\nc"}"#, r#"{"lines":2,"words":3,"chars":5,"bytes":5}"#),
        (
            "grep",
            r#"{"pattern":"add("}"#,
            r#"[{"path":"src/lib.rs","line":1,"text":"pub fn add(a: i32, b: i32) -> i32 {"},{"path":"src/lib.rs","line":7,"text":"add(add(a, b), c)"}]"#,
        ),
        (
            "todos",
            "{}",
            r#"[{"path":"notes.md","line":3,"text":"TODO: write more notes"},{"path":"src/lib.rs","line":5,"text":"// FIXME: overflow"}]"#,
        ),
        ("grep", r#"{"pattern":"NOTES","ignore_case":true,"limit":1}"#, r##"[{"path":"notes.md","line":1,"text":"# Notes"}]"##),
    ];
    for (op, payload, expected) in cases {
        let got = f.json("text-tools", op, payload);
        let want: serde_json::Value = serde_json::from_str(expected).unwrap();
        assert_eq!(got, want, "{op} {payload}");
    }
}

#[test]
fn caret_errors_are_typed() {
    let f = shipped();
    let cases = [
        ("stats", "not json", ErrorCode::InvalidInput),
        ("stats", "{}", ErrorCode::InvalidInput),
        ("nope", "{}", ErrorCode::NotFound),
        ("stats", r#"{"path":"missing.txt"}"#, ErrorCode::Failed),
    ];
    for (op, payload, code) in cases {
        let err = f.call("text-tools", op, payload).expect_err(op);
        assert_eq!(err.code, code, "{op} {payload}: {err}");
        assert_eq!(err.caret.as_deref(), Some("text-tools"));
    }
    let err = f.call("absent", "x", "{}").expect_err("no such caret");
    assert_eq!(err.code, ErrorCode::NotFound);
    let err = f.kernel.invoke(&Principal::User, "bogus", "x", "{}").expect_err("bad target");
    assert_eq!(err.code, ErrorCode::InvalidInput);
}

#[test]
fn describe_lists_ops_for_every_kind() {
    let f = shipped();
    for (id, op) in [("text-tools", "grep"), ("ngram-complete", "complete")] {
        let ops = f.json(id, "@describe", "");
        assert!(ops.as_array().is_some_and(|a| a.iter().any(|o| o["name"] == op)), "{id}: {ops}");
    }
    assert_eq!(f.ok("text-tools", "@health", ""), "ok");
    assert_eq!(f.json("ngram-complete", "@model", "")["task"], "completion");
    let err = f.call("text-tools", "@render", "{}").expect_err("operators have no panels");
    assert_eq!(err.code, ErrorCode::Unsupported);
}

#[test]
fn instrument_learns_the_workspace_and_streams_tokens() {
    let f = shipped();
    let training = recorder();
    let trained = f.kernel.invoke_observed(&Principal::User, "caret/ngram-complete", "train", "", training.clone()).unwrap();
    let trained: serde_json::Value = serde_json::from_str(&trained).unwrap();
    assert_eq!(trained["files"], 2, "{trained}");
    assert_eq!(training.progress.lock().unwrap().len(), 2, "one progress report per file");
    assert!(trained["tokens"].as_u64().unwrap_or(0) > 30, "{trained}");

    let rec = recorder();
    let answer = f
        .kernel
        .invoke_observed(&Principal::User, "caret/ngram-complete", "complete", r#"{"prefix":"pub fn add_three(a: i32, b: i32, c: i32) -> i32 {\n    add(","max_tokens":8}"#, rec.clone())
        .unwrap();
    let chunks = rec.chunks.lock().unwrap().clone();
    assert!(chunks.len() > 1, "tokens were not streamed: {chunks:?}");
    assert_eq!(chunks.concat(), answer, "the stream and the result disagree");
    // After `add(` the workspace has `a` twice and `add` once: greedy decoding picks `a`, then
    // follows `a: i32` as written in the signature.
    assert!(answer.starts_with("a:i32"), "completion `{answer}`");
}

#[test]
fn instrument_without_its_grant_says_what_to_grant() {
    let f = Fixture::new();
    f.install("ngram-complete");
    let err = f.call("ngram-complete", "train", "").expect_err("no fs grant");
    assert!(err.message.contains("fs.read:workspace"), "{err}");
}

#[test]
fn motif_theme_and_panel_render_through_the_proxy() {
    let f = shipped();
    // A motif restyles the IDE or shows panels only with the grants for it.
    for (op, needed) in [("@theme", "ui.theme"), ("@panels", "ui.panel"), ("@render", "ui.panel")] {
        let err = f.call("aurora", op, r#"{"panel":"todos"}"#).expect_err("no ui grant");
        assert_eq!((err.code, err.capability.as_deref()), (ErrorCode::Denied, Some(needed)), "{op}: {err}");
    }
    f.grant("aurora", &["ui.theme", "ui.panel"]);
    let theme = f.json("aurora", "@theme", "");
    assert_eq!(theme["accent"], "#5eead4");
    assert!(theme.as_object().is_some_and(|t| t.len() >= 10));
    assert_eq!(f.json("aurora", "@panels", ""), serde_json::json!(["todos"]));

    // The panel asks text-tools for TODOs through the proxy: without the grant it is refused.
    let err = f.call("aurora", "@render", r#"{"panel":"todos"}"#).expect_err("aurora has no caret.call grant");
    assert_eq!(err.code, ErrorCode::Denied);
    assert_eq!(err.capability.as_deref(), Some("caret.call:text-tools/todos"));

    f.grant("aurora", &["caret.call:text-tools/todos"]);
    let nodes = f.json("aurora", "@render", r#"{"panel":"todos"}"#);
    let nodes = nodes.as_array().unwrap();
    assert_eq!(nodes[0]["tag"], "section");
    let texts: Vec<&str> = nodes.iter().filter_map(|n| n["text"].as_str()).collect();
    assert!(texts.contains(&"TODO (2 open)"), "{texts:?}");
    assert!(texts.contains(&"TODO: write more notes"), "{texts:?}");
    // Every child index points inside the list.
    for n in nodes {
        for c in n["children"].as_array().unwrap() {
            assert!((c.as_u64().unwrap() as usize) < nodes.len());
        }
    }

    // Clicking the first item ticks it off; rendering the new state shows one open.
    let state = r#"{"items":[{"path":"a","line":1,"text":"x"},{"path":"b","line":2,"text":"y"}]}"#;
    let event = serde_json::json!({"panel":"todos","state":state,"event":{"node":4,"kind":"click"}});
    let next = f.ok("aurora", "@event", &event.to_string());
    let nodes = f.json("aurora", "@render", &serde_json::json!({"panel":"todos","state":next}).to_string());
    let texts: Vec<&str> = nodes.as_array().unwrap().iter().filter_map(|n| n["text"].as_str()).collect();
    assert!(texts.contains(&"TODO (1 open)"), "{texts:?}");
}

#[test]
fn concurrent_calls_share_a_bounded_pool() {
    let f = Arc::new(shipped());
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let f = Arc::clone(&f);
            std::thread::spawn(move || {
                for j in 0..25 {
                    let text = format!("t{i}-{j}");
                    assert_eq!(f.ok("text-tools", "upper", &text), text.to_uppercase());
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    // text-tools allows 4 instances.
    let n = f.kernel.instances("text-tools");
    assert!((1..=4).contains(&n), "{n} instances");
}
