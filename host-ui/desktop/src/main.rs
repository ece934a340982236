//! `symphony-desktop`: the IDE in a desktop window. The kernel runs in this process — the
//! shipped carets installed and loaded exactly as `symphony start` does — and serves the web
//! UI on a loopback port with a fresh token; a Tauri 2 window (WebKitGTK on Linux) shows that
//! same page, so the desktop and the browser are one UI over one JSON-RPC path.

use anyhow::{Context, Result};
use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;
use symphony::serve::ServeArgs;

#[derive(Parser, Debug)]
#[command(name = "symphony-desktop", version, about = "Symphony: the IDE in a desktop window, the kernel in-process")]
struct Args {
    #[command(flatten)]
    global: symphony::cli::Global,
    /// Directory whose subdirectories with a `Symphony.toml` are the shipped carets.
    #[arg(long, env = "SYMPHONY_CARETS")]
    carets: Option<PathBuf>,
    /// The built web UI (default: as `symphony serve` finds it).
    #[arg(long, env = "SYMPHONY_WEB")]
    web: Option<PathBuf>,
    /// Loopback port of the in-process server (0: any free port).
    #[arg(long, default_value_t = 0)]
    port: u16,
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<()> {
    let home = args.global.home.clone().unwrap_or_else(symphony::cli::default_home);
    let kernel = symphony::demo::prepare(&args.global, home.clone(), args.carets.as_deref())?;
    let serve = ServeArgs { port: args.port, token: None, max_message: "1MiB".to_owned(), rate: 1000, web: args.web };
    let server = symphony::serve::spawn(kernel, &home, serve)?;
    // Printed for people and for the desktop smoke test, which checks this kernel answers.
    println!("Symphony desktop: the kernel serves {}", server.url);
    let url: tauri::Url = server.url.parse().context("the server's URL")?;
    tauri::Builder::default()
        .setup(move |app| {
            tauri::WebviewWindowBuilder::new(app, "main", tauri::WebviewUrl::External(url))
                .title("Symphony")
                .inner_size(1280.0, 800.0)
                .build()?;
            Ok(())
        })
        .run(tauri::generate_context!())
        .context("running the desktop window")?;
    drop(server);
    Ok(())
}
