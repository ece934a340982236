//! `symphony serve` from the outside, with a real WebSocket client (tokio-tungstenite, not our
//! code): the token, every method through the proxy, the spec's error codes for bad JSON-RPC,
//! batches and notifications, oversized messages and floods refused while the server keeps
//! serving, two clients at once, and swap events pushed to a subscriber.

use crate::{code, extensions, text, Cli};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio_tungstenite::tungstenite::{client::IntoClientRequest, Message};

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

struct Served {
    child: Child,
    /// `ws://127.0.0.1:PORT/rpc`
    url: String,
    token: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(cli: &Cli, extra: &[&str]) -> Served {
    let mut child = Command::new(env!("CARGO_BIN_EXE_symphony"))
        .arg("--home")
        .arg(cli.root.path().join("home"))
        .arg("--workspace")
        .arg(cli.root.path().join("ws"))
        .args(["serve", "--port", "0"])
        .args(extra)
        .env_remove("SYMPHONY_HOME")
        .env_remove("SYMPHONY_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = lines.find_map(|l| l.ok().filter(|l| l.contains("ws://"))).expect("serve printed no ws:// URL");
    let url = line.split_whitespace().find(|w| w.starts_with("ws://")).unwrap().to_owned();
    let (url, token) = url.split_once("?token=").unwrap();
    Served { child, url: url.to_owned(), token: token.to_owned() }
}

async fn connect(s: &Served) -> Socket {
    tokio_tungstenite::connect_async(format!("{}?token={}", s.url, s.token)).await.unwrap().0
}

async fn send(ws: &mut Socket, frame: &str) {
    ws.send(Message::Text(frame.into())).await.unwrap();
}

/// The next text frame, parsed (waiting at most 10 s).
async fn next(ws: &mut Socket) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next()).await.expect("no answer in 10 s");
        match msg {
            Some(Ok(Message::Text(t))) => return serde_json::from_str(&t).unwrap(),
            Some(Ok(_)) => {}
            other => panic!("connection ended: {other:?}"),
        }
    }
}

async fn call(ws: &mut Socket, id: u64, method: &str, params: Value) -> Value {
    send(ws, &json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string()).await;
    loop {
        let reply = next(ws).await;
        if reply["id"] == json!(id) {
            return reply;
        }
    }
}

/// A request without an id: the server runs it and sends nothing back, so no terminal output
/// can be skipped while waiting for a reply.
async fn notify(ws: &mut Socket, method: &str, params: Value) {
    send(ws, &json!({"jsonrpc": "2.0", "method": method, "params": params}).to_string()).await;
}

async fn invoke(ws: &mut Socket, id: u64, target: &str, op: &str, payload: Value) -> Value {
    call(ws, id, "invoke", json!({"target": target, "op": op, "payload": payload})).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_rpc_over_websocket_through_the_proxy() {
    let cli = Cli::new();
    for caret in ["text-tools", "tally"] {
        let out = cli.run(&["caret", "install", extensions().join(caret).to_str().unwrap()]);
        assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    }
    let served = serve(&cli, &[]);

    // No token, a wrong token: refused before any WebSocket exists.
    for url in [served.url.clone(), format!("{}?token=not-the-token-at-all", served.url)] {
        let err = tokio_tungstenite::connect_async(url).await.expect_err("no token");
        assert!(err.to_string().contains("401"), "{err}");
    }
    // The token as a bearer header works as well as in the URL.
    let mut request = served.url.as_str().into_client_request().unwrap();
    request.headers_mut().insert("Authorization", format!("Bearer {}", served.token).parse().unwrap());
    let (mut a, _) = tokio_tungstenite::connect_async(request).await.unwrap();

    // Every method goes through the proxy: caret management, calls, denials with their typed error.
    let list = invoke(&mut a, 1, "pit/carets", "list", json!({})).await;
    let ids: Vec<&str> = list["result"].as_array().unwrap().iter().map(|c| c["manifest"]["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["tally", "text-tools"], "{list}");
    let denied = invoke(&mut a, 2, "caret/text-tools", "todos", json!({})).await;
    assert_eq!(denied["error"]["code"], -32000, "{denied}");
    assert_eq!((denied["error"]["data"]["code"].as_str(), denied["error"]["data"]["capability"].as_str()), (Some("denied"), Some("fs.read:workspace")));
    let granted = invoke(&mut a, 3, "pit/carets", "grant", json!({"id": "text-tools", "capabilities": ["fs.read:workspace"]})).await;
    assert!(granted["result"]["grants"].to_string().contains("fs.read:workspace"), "{granted}");
    let todos = invoke(&mut a, 4, "caret/text-tools", "todos", json!({})).await;
    assert!(todos["result"].to_string().contains("TODO: ship it"), "{todos}");

    // Bad JSON-RPC gets the spec's codes; the connection stays usable.
    for (frame, code) in [
        ("{not json".to_owned(), -32700),
        (r#"{"jsonrpc":"2.0","id":9,"method":"nope"}"#.to_owned(), -32601),
        (r#"{"jsonrpc":"2.0","id":9,"method":"invoke","params":{"op":"x"}}"#.to_owned(), -32602),
        (r#"{"jsonrpc":"2.0","id":9,"method":"invoke","params":{"target":"nowhere","op":"x"}}"#.to_owned(), -32602),
        (r#"{"id":9,"method":"invoke"}"#.to_owned(), -32600),
    ] {
        send(&mut a, &frame).await;
        let reply = next(&mut a).await;
        assert_eq!(reply["error"]["code"], code, "{frame}: {reply}");
    }
    // A batch: one response per request, none for the notification in it.
    send(&mut a, r#"[{"jsonrpc":"2.0","id":"x","method":"invoke","params":{"target":"caret/tally","op":"tick"}},
                     {"jsonrpc":"2.0","method":"invoke","params":{"target":"caret/tally","op":"tick"}},
                     {"jsonrpc":"2.0","id":"y","method":"nope"}]"#).await;
    let batch = next(&mut a).await;
    let batch = batch.as_array().expect("a batch answer");
    assert_eq!(batch.len(), 2, "{batch:?}");
    assert!(batch.iter().any(|r| r["id"] == "x" && r["result"]["n"].is_number()));
    assert!(batch.iter().any(|r| r["id"] == "y" && r["error"]["code"] == -32601));

    // A second client, subscribed to caret events, sees a swap made by another process.
    let mut b = connect(&served).await;
    let sub = call(&mut b, 1, "subscribe", json!({"topic": "caret.events"})).await;
    let subscription = sub["result"].as_u64().expect("a subscription id");
    let out = cli.run(&["caret", "reload", "tally"]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let event = next(&mut b).await;
    assert_eq!(event["method"], "event", "{event}");
    assert_eq!(event["params"]["subscription"], subscription);
    assert_eq!(event["params"]["event"]["event"], "caret.swapped", "{event}");
    let tick = invoke(&mut a, 5, "caret/tally", "tick", json!(null)).await;
    assert_eq!(tick["result"]["n"], 3, "the count survived the swap: {tick}");
    assert_eq!(call(&mut b, 2, "unsubscribe", json!({"subscription": subscription})).await["result"], true);

    // An oversized message closes that connection only.
    let big = format!(r#"{{"jsonrpc":"2.0","id":1,"method":"invoke","params":{{"target":"caret/tally","op":"tick","payload":"{}"}}}}"#, "x".repeat(2 << 20));
    let _ = b.send(Message::Text(big.into())).await;
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match b.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "an oversized message did not close the connection");
    assert!(invoke(&mut a, 6, "caret/tally", "tick", json!(null)).await["result"]["n"].is_number(), "the other client lost service");
    let mut c = connect(&served).await;
    assert!(invoke(&mut c, 1, "pit/carets", "info", json!({"id": "tally"})).await["result"].is_object());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_is_rate_limited_and_the_server_keeps_serving() {
    let cli = Cli::new();
    let out = cli.run(&["caret", "install", extensions().join("tally").to_str().unwrap()]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let served = serve(&cli, &["--rate", "50"]);
    let mut ws = connect(&served).await;
    let frame = r#"{"jsonrpc":"2.0","id":1,"method":"invoke","params":{"target":"caret/tally","op":"counts"}}"#;
    for _ in 0..300 {
        send(&mut ws, frame).await;
    }
    let (mut limited, mut answered) = (0, 0);
    while limited + answered < 300 {
        let reply = next(&mut ws).await;
        match reply["error"]["code"].as_i64() {
            Some(-32001) => limited += 1,
            _ => answered += 1,
        }
    }
    assert!(limited > 0 && answered >= 90, "limited {limited}, answered {answered}");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(invoke(&mut ws, 2, "caret/tally", "tick", json!(null)).await["result"]["n"].is_number());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_workspace_through_pit_workspace_and_its_changes_pushed() {
    let cli = Cli::new();
    let ws_dir = cli.root.path().join("ws");
    std::fs::write(cli.root.path().join("outside.txt"), "not yours").unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink(cli.root.path().join("outside.txt"), ws_dir.join("link-out")).unwrap();
    let served = serve(&cli, &[]);
    let mut a = connect(&served).await;
    let mut watcher = connect(&served).await;
    let sub = call(&mut watcher, 1, "subscribe", json!({"topic": "workspace.files"})).await;
    assert!(sub["result"].is_u64(), "{sub}");

    let ws = |op: &'static str, payload: Value| json!({"target": "pit/workspace", "op": op, "payload": payload});
    let listed = call(&mut a, 1, "invoke", ws("list", json!({}))).await;
    assert!(listed["result"]["entries"].to_string().contains("todo.txt"), "{listed}");

    // Open, edit, save: the bytes on disk; a save over a file changed meanwhile is refused.
    let opened = call(&mut a, 2, "invoke", ws("read", json!({"path": "todo.txt"}))).await;
    assert_eq!(opened["result"]["text"], "TODO: ship it\nand more\n");
    let mtime = opened["result"]["mtime_ms"].clone();
    let saved = call(&mut a, 3, "invoke", ws("write", json!({"path": "todo.txt", "text": "edited\n", "expected_mtime_ms": mtime}))).await;
    assert!(saved["result"]["mtime_ms"].is_u64(), "{saved}");
    assert_eq!(std::fs::read_to_string(ws_dir.join("todo.txt")).unwrap(), "edited\n");
    let stale = call(&mut a, 4, "invoke", ws("write", json!({"path": "todo.txt", "text": "mine\n", "expected_mtime_ms": 1}))).await;
    assert!(stale["error"]["message"].as_str().unwrap().contains("changed on disk since it was opened"), "{stale}");
    assert_eq!(std::fs::read_to_string(ws_dir.join("todo.txt")).unwrap(), "edited\n", "a refused save wrote");

    // Create, rename, delete: the disk follows.
    call(&mut a, 5, "invoke", ws("create", json!({"path": "notes", "dir": true}))).await;
    call(&mut a, 6, "invoke", ws("create", json!({"path": "notes/a.md"}))).await;
    let renamed = call(&mut a, 7, "invoke", ws("rename", json!({"from": "notes/a.md", "to": "notes/b.md"}))).await;
    assert!(renamed["result"].is_object(), "{renamed}");
    assert!(ws_dir.join("notes/b.md").is_file() && !ws_dir.join("notes/a.md").exists());
    call(&mut a, 8, "invoke", ws("delete", json!({"path": "notes"}))).await;
    assert!(!ws_dir.join("notes").exists());

    // No way out: `..`, absolute paths, a symlink pointing outside.
    for (i, path) in ["../outside.txt", "/etc/passwd", "link-out"].into_iter().enumerate() {
        let r = call(&mut a, 10 + i as u64, "invoke", ws("read", json!({"path": path}))).await;
        assert_eq!(r["error"]["data"]["code"], "denied", "{path}: {r}");
    }
    let r = call(&mut a, 20, "invoke", ws("write", json!({"path": "../escape.txt", "text": "x"}))).await;
    assert_eq!(r["error"]["data"]["code"], "denied", "{r}");
    assert!(!cli.root.path().join("escape.txt").exists());

    // A change made outside the IDE reaches the subscriber.
    std::fs::write(ws_dir.join("from-elsewhere.txt"), "hello").unwrap();
    loop {
        let event = next(&mut watcher).await;
        if event["params"]["event"]["paths"].to_string().contains("from-elsewhere.txt") {
            assert_eq!(event["params"]["topic"], "workspace.files");
            break;
        }
    }
}

/// Terminal output arriving on a subscription until it contains `want`.
async fn terminal_until(ws: &mut Socket, want: &str) -> String {
    let mut seen = String::new();
    while !seen.contains(want) {
        let event = next(ws).await;
        if event["params"]["topic"] == "terminal" {
            seen.push_str(event["params"]["event"]["data"].as_str().unwrap_or_default());
            if event["params"]["event"]["kind"] == "exit" {
                seen.push_str("\u{0}exit");
            }
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminals_run_a_real_shell_resize_exit_and_close_with_their_client() {
    let cli = Cli::new();
    let served = serve(&cli, &[]);
    let mut a = connect(&served).await;
    let term = |op: &'static str, payload: Value| json!({"target": "pit/terminal", "op": op, "payload": payload});

    let opened = call(&mut a, 1, "invoke", term("open", json!({"cols": 100, "rows": 40}))).await;
    let id = opened["result"]["terminal"].as_u64().unwrap_or_else(|| panic!("{opened}"));
    let sub = call(&mut a, 2, "subscribe", json!({"topic": "terminal", "terminal": id})).await;
    assert!(sub["result"].is_u64(), "{sub}");
    notify(&mut a, "invoke", term("write", json!({"terminal": id, "data": "echo sum-$((40+2)); stty size\n"}))).await;
    let out = terminal_until(&mut a, "40 100").await;
    assert!(out.contains("sum-42"), "{out}");
    call(&mut a, 4, "invoke", term("resize", json!({"terminal": id, "cols": 120, "rows": 30}))).await;
    notify(&mut a, "invoke", term("write", json!({"terminal": id, "data": "stty size\n"}))).await;
    terminal_until(&mut a, "30 120").await;
    // A shell that exits ends cleanly: an exit event, then the terminal is gone.
    notify(&mut a, "invoke", term("write", json!({"terminal": id, "data": "exit 3\n"}))).await;
    terminal_until(&mut a, "\u{0}exit").await;
    let gone = call(&mut a, 7, "invoke", term("write", json!({"terminal": id, "data": "x"}))).await;
    assert_eq!(gone["error"]["data"]["code"], "not-found", "{gone}");

    // A client that drops takes its terminals with it.
    let mut b = connect(&served).await;
    let opened = call(&mut b, 1, "invoke", term("open", json!({}))).await;
    let pid = opened["result"]["pid"].as_u64().expect("a pid");
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    drop(b);
    let give_up = std::time::Instant::now() + Duration::from_secs(10);
    while Path::new(&format!("/proc/{pid}/status")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default().contains("State:\tZ")
    {
        assert!(std::time::Instant::now() < give_up, "the shell of a dropped client still runs");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_are_validated_persisted_and_pushed_live() {
    let cli = Cli::new();
    let settings = |op: &'static str, payload: Value| json!({"target": "pit/settings", "op": op, "payload": payload});
    {
        let served = serve(&cli, &[]);
        let mut a = connect(&served).await;
        let mut other_window = connect(&served).await;
        let sub = call(&mut other_window, 1, "subscribe", json!({"topic": "settings"})).await;
        assert!(sub["result"].is_u64(), "{sub}");
        let defaults = call(&mut a, 1, "invoke", settings("get", json!(null))).await;
        assert_eq!(defaults["result"]["font_size"], 14, "{defaults}");

        // A bad value: refused with the field named, nothing changed, nothing written.
        let refused = call(&mut a, 2, "invoke", settings("set", json!({"font_size": 16, "tab_size": 99}))).await;
        assert_eq!(refused["error"]["code"], -32602, "{refused}");
        assert!(refused["error"]["message"].as_str().unwrap().contains("settings.tab_size: expected a whole number from 1 to 16"), "{refused}");
        assert!(!cli.root.path().join("home/settings.json").exists());
        let still = call(&mut a, 3, "invoke", settings("get", json!(null))).await;
        assert_eq!(still["result"]["font_size"], 14, "a refused set half-applied: {still}");

        // A good one: saved, and every other window hears it.
        let set = call(&mut a, 4, "invoke", settings("set", json!({"theme": "light", "font_size": 16, "word_wrap": true}))).await;
        assert_eq!(set["result"]["theme"], "light", "{set}");
        let pushed = next(&mut other_window).await;
        assert_eq!((pushed["params"]["topic"].as_str(), pushed["params"]["event"]["font_size"].as_u64()), (Some("settings"), Some(16)), "{pushed}");
        let schema = call(&mut a, 5, "invoke", settings("schema", json!(null))).await;
        assert_eq!(schema["result"]["properties"]["keymap"]["enum"], json!(["default", "vim", "emacs"]));
    }
    // Restarted: still applied.
    let served = serve(&cli, &[]);
    let mut a = connect(&served).await;
    let after = call(&mut a, 1, "invoke", settings("get", json!(null))).await;
    assert_eq!((after["result"]["theme"].as_str(), after["result"]["font_size"].as_u64(), after["result"]["word_wrap"].as_bool()), (Some("light"), Some(16), Some(true)));
}

/// A plain HTTP/1.1 GET on the server's port: (status, content type, body).
async fn http_get(served: &Served, path: &str) -> (u16, String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = served.url.trim_start_matches("ws://").split('/').next().unwrap().to_owned();
    let mut stream = tokio::net::TcpStream::connect(&host).await.unwrap();
    stream.write_all(format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let content_type = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-type:").map(|v| v.trim().to_owned()))
        .unwrap_or_default();
    (status, content_type, body.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_ui_is_served_from_the_same_origin_and_only_rpc_needs_the_token() {
    let cli = Cli::new();
    let web = cli.root.path().join("web");
    std::fs::create_dir_all(web.join("assets")).unwrap();
    std::fs::write(web.join("index.html"), "<!doctype html><title>Symphony</title>").unwrap();
    std::fs::write(web.join("assets/app.js"), "console.log('ui')").unwrap();
    std::fs::write(cli.root.path().join("secret.txt"), "not for the browser").unwrap();
    let served = serve(&cli, &["--web", web.to_str().unwrap()]);

    let (status, kind, body) = http_get(&served, "/").await;
    assert_eq!((status, body.as_str()), (200, "<!doctype html><title>Symphony</title>"));
    assert!(kind.starts_with("text/html"), "{kind}");
    let (status, kind, _) = http_get(&served, "/assets/app.js").await;
    assert_eq!(status, 200);
    assert!(kind.contains("javascript"), "{kind}");
    for outside in ["/../secret.txt", "/%2e%2e/secret.txt", "/assets/../../secret.txt"] {
        let (status, _, body) = http_get(&served, outside).await;
        assert!(!body.contains("not for the browser"), "{outside} leaked a file outside the UI ({status})");
    }
    assert_eq!(http_get(&served, "/missing.js").await.0, 404);
    // The page is public; what it shows comes through /rpc, which still wants the token.
    match tokio_tungstenite::connect_async(served.url.clone()).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => assert_eq!(response.status(), 401),
        other => panic!("a WebSocket without the token was not refused: {other:?}"),
    }

    // A --web directory without a built UI is refused with what to do.
    let out = cli.run(&["serve", "--port", "0", "--web", cli.root.path().to_str().unwrap()]);
    assert_eq!(code(&out), 1);
    assert!(text(&out.stderr).contains("no index.html"), "{}", text(&out.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminal_output_before_the_first_subscriber_is_not_lost() {
    let cli = Cli::new();
    let served = serve(&cli, &[]);
    let mut ws = connect(&served).await;
    let term = |op: &'static str, payload: Value| json!({"target": "pit/terminal", "op": op, "payload": payload});
    let opened = call(&mut ws, 1, "invoke", term("open", json!({}))).await;
    let id = opened["result"]["terminal"].as_u64().unwrap_or_else(|| panic!("{opened}"));
    call(&mut ws, 2, "invoke", term("write", json!({"terminal": id, "data": "echo early-$((1+1))\n"}))).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    send(&mut ws, &json!({"jsonrpc": "2.0", "id": 3, "method": "subscribe", "params": {"topic": "terminal", "terminal": id}}).to_string()).await;
    let reply = next(&mut ws).await;
    assert!(reply["id"] == 3 && reply["result"].is_u64(), "the reply must come before the backlog: {reply}");
    let out = terminal_until(&mut ws, "early-2").await;
    // Once: the backlog, then only new output.
    notify(&mut ws, "invoke", term("write", json!({"terminal": id, "data": "echo late-$((2+2))\n"}))).await;
    let later = terminal_until(&mut ws, "late-4").await;
    assert!(!later.contains("early-2"), "the backlog came twice: {out} / {later}");
}

/// A terminal's backlog is ready the moment a subscription exists, and it used to overtake
/// the reply naming the subscription: a client waiting for that reply (as `call` here does)
/// dropped the backlog. This flaked `terminal_output_before_the_first_subscriber_is_not_lost`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_reply_comes_before_its_first_event() {
    let cli = Cli::new();
    let served = serve(&cli, &[]);
    let mut ws = connect(&served).await;
    let opened = call(&mut ws, 1, "invoke", json!({"target": "pit/terminal", "op": "open", "payload": {}})).await;
    let id = opened["result"]["terminal"].as_u64().unwrap_or_else(|| panic!("{opened}"));
    let write = json!({"target": "pit/terminal", "op": "write", "payload": {"terminal": id, "data": "echo ready-$((3*3))\n"}});
    notify(&mut ws, "invoke", write).await;
    let mut known = std::collections::HashSet::new();
    for n in 0..20u64 {
        let request = json!({"jsonrpc": "2.0", "id": 100 + n, "method": "subscribe", "params": {"topic": "terminal", "terminal": id}});
        send(&mut ws, &request.to_string()).await;
        loop {
            let message = next(&mut ws).await;
            if message["id"] == 100 + n {
                known.insert(message["result"].as_u64().unwrap_or_else(|| panic!("{message}")));
                break;
            }
            let subscription = message["params"]["subscription"].as_u64();
            assert!(subscription.is_some_and(|s| known.contains(&s)), "an event came before the reply naming its subscription: {message}");
        }
    }
    // And the output still arrives (`terminal_until` fails after 10 s without it).
    terminal_until(&mut ws, "ready-9").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_melody_runs_from_a_client_with_progress_pushed() {
    let cli = Cli::new();
    let out = cli.run(&["caret", "install", extensions().join("text-tools").to_str().unwrap(), "--grant-requested"]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let ws_dir = cli.root.path().join("ws");
    std::fs::create_dir_all(&ws_dir).unwrap();
    std::fs::write(ws_dir.join("notes.md"), "TODO: a thing\n").unwrap();
    std::fs::write(
        ws_dir.join("loud.toml"),
        "[[node]]\nid = \"todos\"\ntarget = \"caret/text-tools\"\nop = \"todos\"\n\n[[node]]\nid = \"loud\"\ntarget = \"caret/text-tools\"\nop = \"upper\"\ninput = \"${todos.0.text}\"\n",
    )
    .unwrap();
    std::fs::write(ws_dir.join("bad.toml"), "[[node]]\nid = \"x\"\ntarget = \"caret/nowhere\"\nop = \"go\"\n").unwrap();
    let served = serve(&cli, &[]);
    let mut ws = connect(&served).await;
    let sub = call(&mut ws, 1, "subscribe", json!({"topic": "melody.progress"})).await;
    assert!(sub["result"].is_u64(), "{sub}");

    let bad = invoke(&mut ws, 2, "pit/melodies", "run", json!({"path": "bad.toml"})).await;
    assert_eq!(bad["error"]["code"], -32602, "{bad}");
    assert!(bad["error"]["message"].as_str().unwrap().contains("bad.toml:"), "{bad}");
    let outside = invoke(&mut ws, 3, "pit/melodies", "run", json!({"path": "../loud.toml"})).await;
    assert_eq!(outside["error"]["data"]["code"], "denied", "{outside}");

    // Progress may overtake the answer, so both are read from one stream.
    let run = json!({"jsonrpc": "2.0", "id": 4, "method": "invoke", "params": {"target": "pit/melodies", "op": "run", "payload": {"path": "loud.toml"}}});
    send(&mut ws, &run.to_string()).await;
    let (mut started, mut finished, mut kinds) = (None, None, Vec::new());
    while started.is_none() || finished.is_none() {
        let message = next(&mut ws).await;
        if message["id"] == 4 {
            started = Some(message["result"].clone());
        } else if message["params"]["topic"] == "melody.progress" {
            let e = message["params"]["event"].clone();
            if e["kind"] == "finished" {
                finished = Some(e);
            } else {
                kinds.push(format!("{} {}", e["node"].as_str().unwrap(), e["kind"].as_str().unwrap()));
            }
        }
    }
    let (started, finished) = (started.unwrap(), finished.unwrap());
    assert_eq!(started["nodes"], json!(["todos", "loud"]), "{started}");
    assert_eq!(finished["job"], started["job"]);
    assert_eq!(kinds, ["todos started", "todos done", "loud started", "loud done"]);
    assert_eq!(finished["ok"], true, "{finished}");
    let run_id = finished["run_id"].as_str().unwrap();
    let out = std::fs::read_to_string(cli.root.path().join("home/runs").join(run_id).join("outputs/loud.out")).unwrap();
    assert!(out.contains("TODO: A THING"), "{out}");
}
