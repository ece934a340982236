//! `symphony serve`: JSON-RPC 2.0 over WebSocket on 127.0.0.1 (`/rpc`), for the web UI, the
//! desktop shell and any spec-conforming client. A token printed at start is required
//! (`?token=` or `Authorization: Bearer`); messages are size- and rate-bounded; each
//! connection's subscriptions end with it. Every method goes through the kernel's one proxy.
//! The web UI (`host-ui/web`, built by Vite) is served from the same origin; it is public
//! (static files) — everything it shows comes through the token-guarded `/rpc`.

use crate::cli::{open_kernel, Global};
use crate::rpc::{self, Incoming, Request, RpcError};
use anyhow::{Context, Result};
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use crate::melodies_service::MelodiesService;
use crate::settings_service::SettingsService;
use crate::terminal_service::{TermEvent, TerminalProxy, TerminalService};
use symphony_kernel::Kernel;
use tokio::sync::mpsc;

#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// Port on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = 7457)]
    pub port: u16,
    /// The access token (default: a fresh random one, printed in the URL).
    #[arg(long, env = "SYMPHONY_TOKEN")]
    pub token: Option<String>,
    /// Largest message a client may send.
    #[arg(long, default_value = "1MiB")]
    pub max_message: String,
    /// Messages per second a connection may send (bursts up to twice that).
    #[arg(long, default_value_t = 1000)]
    pub rate: u32,
    /// The built web UI to serve (default: `web/` beside the binary, else the source tree's
    /// `host-ui/web/dist`).
    #[arg(long, env = "SYMPHONY_WEB")]
    pub web: Option<PathBuf>,
}

struct Server {
    kernel: Kernel,
    terminals: Arc<TerminalService>,
    settings: Arc<SettingsService>,
    melodies: Arc<MelodiesService>,
    token: String,
    max_message: usize,
    rate: u32,
    next_subscription: AtomicU64,
}

pub fn run(global: &Global, home: PathBuf, args: ServeArgs) -> Result<ExitCode> {
    let kernel = open_kernel(global, home.clone(), None)?;
    run_with(kernel, &home, args)
}

/// Serves an opened kernel (e.g. one `symphony start` has provisioned) until Ctrl-C.
pub fn run_with(kernel: Kernel, home: &std::path::Path, args: ServeArgs) -> Result<ExitCode> {
    let port = args.port;
    let (server, web) = prepare(kernel, home, args)?;
    let _follow = server.kernel.watch_installs(symphony_kernel::swap::WATCH_INTERVAL);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the runtime")?;
    runtime.block_on(async {
        let listener = bind(port).await?;
        let addr = listener.local_addr()?;
        match &web {
            Some(dir) => println!("Symphony is serving on http://{addr}/?token={}  (UI from {})", server.token, dir.display()),
            None => println!("Symphony is serving on http://{addr}/?token={}  (no web UI built: `npm run build` in host-ui/web)", server.token),
        }
        println!("JSON-RPC 2.0 over WebSocket: ws://{addr}/rpc?token={}", server.token);
        serve(server, listener, web, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
    })?;
    Ok(ExitCode::SUCCESS)
}

/// A server running on threads of its own (the desktop shell keeps the kernel in-process this
/// way). Dropping it stops accepting connections; it does not wait for open ones.
pub struct Background {
    /// `http://127.0.0.1:PORT/?token=…` — what a browser or webview opens.
    pub url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Starts serving in the background; returns once the port is bound.
pub fn spawn(kernel: Kernel, home: &std::path::Path, args: ServeArgs) -> Result<Background> {
    let port = args.port;
    let (server, web) = prepare(kernel, home, args)?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (bound, url) = std::sync::mpsc::channel::<Result<String>>();
    std::thread::Builder::new()
        .name("symphony-serve".to_owned())
        .spawn(move || {
            let _follow = server.kernel.watch_installs(symphony_kernel::swap::WATCH_INTERVAL);
            let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
                Ok(r) => r,
                Err(e) => {
                    let _ = bound.send(Err(anyhow::Error::new(e).context("starting the runtime")));
                    return;
                }
            };
            runtime.block_on(async move {
                let listener = match bind(port).await {
                    Ok(l) => l,
                    Err(e) => {
                        let _ = bound.send(Err(e));
                        return;
                    }
                };
                let addr = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
                let _ = bound.send(Ok(format!("http://{addr}/?token={}", server.token)));
                if let Err(e) = serve(server, listener, web, async {
                    let _ = stopped.await;
                })
                .await
                {
                    tracing::error!(error = %e, "the server stopped");
                }
            });
        })
        .context("starting the server thread")?;
    let url = url.recv().context("the server thread ended before binding")??;
    Ok(Background { url, stop: Some(stop) })
}

/// Registers server mode's own services (settings, terminals) and checks the options.
fn prepare(kernel: Kernel, home: &std::path::Path, args: ServeArgs) -> Result<(Arc<Server>, Option<PathBuf>)> {
    let settings = Arc::new(SettingsService::open(home).map_err(anyhow::Error::msg).context("the settings file")?);
    kernel.register_service(Arc::clone(&settings) as Arc<dyn symphony_kernel::Service>);
    let token = match args.token {
        Some(t) if t.len() >= 16 => t,
        Some(_) => anyhow::bail!("--token must be at least 16 characters"),
        None => fresh_token()?,
    };
    let max_message = usize::try_from(symphony_kernel::manifest::parse_size(&args.max_message).map_err(anyhow::Error::msg)?)
        .context("--max-message")?;
    let terminals = Arc::new(TerminalService::new(kernel.workspace().to_path_buf()));
    kernel.register_service(Arc::new(TerminalProxy(Arc::clone(&terminals))));
    let melodies = Arc::new(MelodiesService::new(&kernel, home));
    kernel.register_service(Arc::clone(&melodies) as Arc<dyn symphony_kernel::Service>);
    let web = args.web.clone().or_else(default_web).filter(|d| d.join("index.html").is_file());
    if let Some(dir) = &args.web
        && web.is_none()
    {
        anyhow::bail!("--web {}: no index.html there (build the UI with `npm run build` in host-ui/web)", dir.display());
    }
    let server =
        Arc::new(Server { kernel, terminals, settings, melodies, token, max_message, rate: args.rate.max(1), next_subscription: AtomicU64::new(1) });
    Ok((server, web))
}

async fn bind(port: u16) -> Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(("127.0.0.1", port)).await.with_context(|| format!("binding 127.0.0.1:{port}"))
}

/// Where the built UI usually is: `web/` beside the binary (an installed copy), else the
/// source tree's build output (a development checkout).
fn default_web() -> Option<PathBuf> {
    let beside = std::env::current_exe().ok()?.parent()?.join("web");
    let source = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("web").join("dist");
    [beside, source].into_iter().find(|d| d.join("index.html").is_file())
}

fn fresh_token() -> Result<String> {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness for the token: {e}"))?;
    Ok(symphony_kernel::package::hex(&bytes))
}

async fn serve(
    server: Arc<Server>,
    listener: tokio::net::TcpListener,
    web: Option<PathBuf>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let app = Router::new().route("/rpc", get(upgrade)).route("/health", get(|| async { "ok" }));
    let app = match web {
        Some(dir) => app.fallback_service(tower_http::services::ServeDir::new(dir).precompressed_gzip()),
        None => app.fallback(|| async {
            (StatusCode::NOT_FOUND, "Symphony server: JSON-RPC is at /rpc; the web UI is not built (`npm run build` in host-ui/web).")
        }),
    };
    let app = app.with_state(server);
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await.context("serving")
}

#[derive(serde::Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

/// Compares without an early exit, so the time taken says nothing about the token.
fn same_token(given: &str, expected: &str) -> bool {
    given.len() == expected.len() && given.bytes().zip(expected.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

async fn upgrade(State(server): State<Arc<Server>>, Query(q): Query<TokenQuery>, headers: HeaderMap, ws: WebSocketUpgrade) -> Response {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    let given = q.token.or(bearer);
    if !given.as_deref().is_some_and(|t| same_token(t, &server.token)) {
        return (StatusCode::UNAUTHORIZED, "a valid token is required: ?token=… or Authorization: Bearer …").into_response();
    }
    let limit = server.max_message;
    ws.max_message_size(limit).max_frame_size(limit).on_upgrade(move |socket| connection(socket, server))
}

/// A token bucket: `rate` per second, bursts of twice that.
struct Bucket {
    tokens: f64,
    rate: f64,
    last: Instant,
}

impl Bucket {
    fn new(rate: u32) -> Self {
        Self { tokens: f64::from(rate) * 2.0, rate: f64::from(rate), last: Instant::now() }
    }
    fn take(&mut self) -> bool {
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.last).as_secs_f64() * self.rate).min(self.rate * 2.0);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// What one connection owns: its outgoing queue and its subscriptions (stopped when it ends).
struct Connection {
    server: Arc<Server>,
    out: mpsc::UnboundedSender<String>,
    subscriptions: Mutex<HashMap<u64, Arc<AtomicBool>>>,
    /// Terminals this client opened: closed when it goes.
    terminals: Mutex<Vec<u64>>,
    /// Subscriptions made by the frame being answered: they start sending once its reply is
    /// out, so a client learns a subscription's id before any of its events (a terminal's
    /// backlog is ready at once and would otherwise overtake the reply).
    held: Mutex<Vec<tokio::sync::oneshot::Sender<()>>>,
}

impl Connection {
    /// Lets the subscriptions made by the frame just answered start sending.
    fn release_held(&self) {
        for start in self.held.lock().unwrap_or_else(|p| p.into_inner()).drain(..) {
            let _ = start.send(());
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        for stop in self.subscriptions.lock().unwrap_or_else(|p| p.into_inner()).values() {
            stop.store(true, Ordering::SeqCst);
        }
        for id in self.terminals.lock().unwrap_or_else(|p| p.into_inner()).drain(..) {
            let _ = self.server.terminals.close(id);
        }
    }
}

async fn connection(socket: WebSocket, server: Arc<Server>) {
    let (sink, mut stream) = socket.split();
    // Replies are written by the task that read the request (no hop); notifications, which
    // come from other threads, through a queue and a writer task. Both share the sink.
    let sink = Arc::new(tokio::sync::Mutex::new(sink));
    let (out, mut queue) = mpsc::unbounded_channel::<String>();
    let writer = {
        let sink = Arc::clone(&sink);
        tokio::spawn(async move {
            while let Some(text) = queue.recv().await {
                if sink.lock().await.send(Message::Text(text.into())).await.is_err() {
                    break;
                }
            }
        })
    };
    let rate = server.rate;
    let conn = Arc::new(Connection {
        server,
        out,
        subscriptions: Mutex::new(HashMap::new()),
        terminals: Mutex::new(Vec::new()),
        held: Mutex::new(Vec::new()),
    });
    let mut bucket = Bucket::new(rate);
    while let Some(message) = stream.next().await {
        let text = match message {
            Ok(Message::Text(t)) => t.to_string(),
            Ok(Message::Binary(_)) => {
                let e = RpcError::new(rpc::INVALID_REQUEST, "binary frames are not JSON-RPC; send text");
                let _ = conn.out.send(rpc::response(Value::Null, Err(e)).to_string());
                continue;
            }
            Ok(Message::Close(_)) => break,
            Ok(_) => continue,
            // Oversized or broken frames: the socket is closed (1009 for size); nothing else is affected.
            Err(_) => break,
        };
        if !bucket.take() {
            let e = RpcError::new(rpc::RATE_LIMITED, format!("more than {rate} messages per second; slow down"));
            let _ = conn.out.send(rpc::response(Value::Null, Err(e)).to_string());
            continue;
        }
        // Answered on this task: a hop to another task per message costs more than most calls
        // (see BENCHMARKS.md). Calls into carets run in `block_in_place`, so the runtime moves
        // other work off this thread while one runs.
        if let Some(reply) = handle(&conn, &text).await
            && sink.lock().await.send(Message::Text(reply.to_string().into())).await.is_err()
        {
            break;
        }
        conn.release_held();
    }
    drop(conn);
    writer.abort();
}

/// Answers one frame: a response, a batch of responses, or nothing (notifications only).
async fn handle(conn: &Arc<Connection>, text: &str) -> Option<Value> {
    match rpc::parse(text) {
        Incoming::Single(Err(error)) => Some(error),
        Incoming::Single(Ok(req)) => answer(conn, req).await,
        Incoming::Batch(items) => {
            let mut replies = Vec::new();
            for item in items {
                match item {
                    Err(error) => replies.push(error),
                    Ok(req) => replies.extend(answer(conn, req).await),
                }
            }
            (!replies.is_empty()).then_some(Value::Array(replies))
        }
    }
}

async fn answer(conn: &Arc<Connection>, req: Request) -> Option<Value> {
    let Request { id, method, params } = req;
    let result = match method.as_str() {
        "invoke" => {
            let opens_terminal = params["target"] == "pit/terminal" && params["op"] == "open";
            let result = tokio::task::block_in_place(|| rpc::invoke(&conn.server.kernel, params));
            if let (true, Ok(opened)) = (opens_terminal, &result)
                && let Some(id) = opened["terminal"].as_u64()
            {
                conn.terminals.lock().unwrap_or_else(|p| p.into_inner()).push(id);
            }
            result
        }
        "subscribe" => rpc::subscribe_params(params).and_then(|p| match p.terminal {
            Some(terminal) => subscribe_terminal(conn, terminal).map(|id| json!(id)),
            None => Ok(json!(subscribe(conn, &p.topic))),
        }),
        "unsubscribe" => rpc::unsubscribe_params(params).map(|p| {
            let stop = conn.subscriptions.lock().unwrap_or_else(|p| p.into_inner()).remove(&p.subscription);
            if let Some(stop) = &stop {
                stop.store(true, Ordering::SeqCst);
            }
            json!(stop.is_some())
        }),
        other => Err(RpcError::new(rpc::METHOD_NOT_FOUND, format!("no method `{other}`; methods: invoke, subscribe, unsubscribe"))),
    };
    id.map(|id| rpc::response(id, result))
}

/// A new subscription of this connection: its id, its stop flag, the outgoing queue, and the
/// signal that the reply naming it is out (see `Connection::held`).
type Subscription = (u64, Arc<AtomicBool>, mpsc::UnboundedSender<String>, tokio::sync::oneshot::Receiver<()>);

fn new_subscription(conn: &Arc<Connection>) -> Subscription {
    let id = conn.server.next_subscription.fetch_add(1, Ordering::Relaxed);
    let stop = Arc::new(AtomicBool::new(false));
    conn.subscriptions.lock().unwrap_or_else(|p| p.into_inner()).insert(id, Arc::clone(&stop));
    let (start, started) = tokio::sync::oneshot::channel();
    conn.held.lock().unwrap_or_else(|p| p.into_inner()).push(start);
    (id, stop, conn.out.clone(), started)
}

/// Starts forwarding a topic's events to this connection as `{method: "event", params:
/// {subscription, topic, event}}` notifications, until unsubscribed or disconnected.
fn subscribe(conn: &Arc<Connection>, topic: &str) -> u64 {
    let sub = new_subscription(conn);
    let id = sub.0;
    match topic {
        "settings" => forward(sub, "settings", Map::new(), conn.server.settings.listen(), (), as_event),
        "workspace.files" => watch_files(sub, conn.server.kernel.workspace().to_path_buf()),
        "melody.progress" => forward(sub, "melody.progress", Map::new(), conn.server.melodies.listen(), (), |e: Value| Some((e, false))),
        _ => forward(sub, "caret.events", Map::new(), conn.server.kernel.subscribe(), (), as_event),
    }
    id
}

/// Any serialisable event, none of them the last.
fn as_event<T: serde::Serialize>(event: T) -> Option<(Value, bool)> {
    serde_json::to_value(event).ok().map(|v| (v, false))
}

/// Forwards changes under the workspace as `{paths: [...]}` events (paths relative to it,
/// debounced 50 ms) until the subscription stops.
fn watch_files(sub: Subscription, root: PathBuf) {
    use notify_debouncer_mini::notify::RecursiveMode;
    let (tx, rx) = std::sync::mpsc::channel();
    let Ok(mut debouncer) = notify_debouncer_mini::new_debouncer(Duration::from_millis(50), tx) else { return };
    if debouncer.watcher().watch(&root, RecursiveMode::Recursive).is_err() {
        return;
    }
    forward(sub, "workspace.files", Map::new(), rx, debouncer, move |batch: notify_debouncer_mini::DebounceEventResult| {
        let mut paths: Vec<String> = batch
            .ok()?
            .iter()
            .filter_map(|e| e.path.strip_prefix(&root).ok())
            .map(|p| p.to_string_lossy().into_owned())
            .filter(|p| !p.is_empty())
            .collect();
        paths.sort();
        paths.dedup();
        (!paths.is_empty()).then(|| (json!({ "paths": paths }), false))
    });
}

/// Forwards a terminal's output and exit as `{kind: "output", data}` / `{kind: "exit", code}`;
/// the exit is the last event.
fn subscribe_terminal(conn: &Arc<Connection>, terminal: u64) -> Result<u64, RpcError> {
    let events = conn
        .server
        .terminals
        .listen(terminal)
        .ok_or_else(|| RpcError::new(rpc::INVALID_PARAMS, format!("no terminal {terminal}")))?;
    let sub = new_subscription(conn);
    let id = sub.0;
    let mut extra = Map::new();
    extra.insert("terminal".to_owned(), json!(terminal));
    forward(sub, "terminal", extra, coalesce(events), (), |event: TermEvent| {
        let last = matches!(event, TermEvent::Exit { .. });
        serde_json::to_value(event).ok().map(|v| (v, last))
    });
    Ok(id)
}

/// Output that is already waiting is merged into one event (up to 256 KiB): a fast writer
/// (`cat` of a big file) then costs the client a few large messages instead of thousands of
/// small ones. Nothing waits for more: a lone keystroke's echo goes out at once.
fn coalesce(events: std::sync::mpsc::Receiver<TermEvent>) -> std::sync::mpsc::Receiver<TermEvent> {
    const MAX: usize = 256 << 10;
    let (tx, rx) = std::sync::mpsc::channel();
    let _ = std::thread::Builder::new().name("terminal-coalesce".to_owned()).spawn(move || {
        while let Ok(mut event) = events.recv() {
            while let TermEvent::Output { data } = &mut event
                && data.len() < MAX
            {
                match events.try_recv() {
                    Ok(TermEvent::Output { data: more }) => data.push_str(&more),
                    Ok(other) => {
                        if tx.send(event).is_err() {
                            return;
                        }
                        event = other;
                        break;
                    }
                    Err(_) => break,
                }
            }
            if tx.send(event).is_err() {
                return;
            }
        }
    });
    rx
}

/// Forwards what arrives on a std channel as notifications `{subscription, topic, ..extra,
/// event}` until the subscription stops, the client goes, or `describe` marks an event the
/// last; `describe` may also skip one (`None`). `keep` lives as long as the forwarding (e.g.
/// the file watcher feeding the channel).
fn forward<T: Send + 'static>(
    (id, stop, out, started): Subscription,
    topic: &'static str,
    extra: Map<String, Value>,
    events: std::sync::mpsc::Receiver<T>,
    keep: impl Send + 'static,
    mut describe: impl FnMut(T) -> Option<(Value, bool)> + Send + 'static,
) {
    tokio::task::spawn_blocking(move || {
        let _keep = keep;
        // The connection ended before its reply went out: nothing to send to.
        if started.blocking_recv().is_err() {
            return;
        }
        while !stop.load(Ordering::SeqCst) && !out.is_closed() {
            match events.recv_timeout(Duration::from_millis(200)) {
                Ok(event) => {
                    let Some((event, last)) = describe(event) else { continue };
                    let mut params = extra.clone();
                    params.insert("subscription".to_owned(), json!(id));
                    params.insert("topic".to_owned(), json!(topic));
                    params.insert("event".to_owned(), event);
                    let note = json!({ "jsonrpc": "2.0", "method": "event", "params": params });
                    if out.send(note.to_string()).is_err() || last {
                        break;
                    }
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
    });
}
