//! Desktop smoke test: the real Tauri app on a real X server (Xvfb), WebKitGTK rendering the
//! web UI from the in-process kernel. A screenshot of the screen (xwd) must show the IDE — its
//! status bar in the theme's accent colour and rendered text, not a blank window — and the
//! kernel in that process must answer JSON-RPC. The screenshot is kept as a test artifact.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

const WIDTH: usize = 1280;
const HEIGHT: usize = 800;
/// The dark theme's accent (`theme.ts`), the status bar's background.
const ACCENT: [u8; 3] = [0x4f, 0xa3, 0xff];

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// An X screen as RGB rows, decoded from `xwd` (header big-endian; pixels in the server's
/// byte order, channels by the visual's masks).
struct Screen {
    width: usize,
    height: usize,
    rgb: Vec<[u8; 3]>,
}

fn decode_xwd(raw: &[u8]) -> Screen {
    let field = |i: usize| u32::from_be_bytes(raw[i * 4..i * 4 + 4].try_into().unwrap());
    let (header_size, width, height, byte_order, bits_per_pixel, bytes_per_line) =
        (field(0) as usize, field(4) as usize, field(5) as usize, field(7), field(11), field(12) as usize);
    let masks = [field(14), field(15), field(16)];
    let ncolors = field(19) as usize;
    assert_eq!(bits_per_pixel, 32, "expected a 24-bit visual in 32-bit pixels");
    let pixels = &raw[header_size + ncolors * 12..];
    let mut rgb = Vec::with_capacity(width * height);
    for y in 0..height {
        for x in 0..width {
            let b: [u8; 4] = pixels[y * bytes_per_line + x * 4..][..4].try_into().unwrap();
            let p = if byte_order == 0 { u32::from_le_bytes(b) } else { u32::from_be_bytes(b) };
            rgb.push(masks.map(|m| ((p & m) >> m.trailing_zeros()) as u8));
        }
    }
    Screen { width, height, rgb }
}

fn save_png(screen: &Screen, path: &Path) {
    let file = std::fs::File::create(path).unwrap();
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), screen.width as u32, screen.height as u32);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().unwrap();
    writer.write_image_data(&screen.rgb.concat()).unwrap();
}

/// What the screenshot shows: rows mostly in the accent colour (the status bar) and how many
/// colours there are (text is anti-aliased: a rendered page has hundreds, a blank one a few).
fn looks_like_the_ide(screen: &Screen) -> (usize, usize) {
    let accent_rows = (0..screen.height)
        .filter(|y| {
            let row = &screen.rgb[y * screen.width..(y + 1) * screen.width];
            row.iter().filter(|p| p.iter().zip(ACCENT).all(|(a, b)| a.abs_diff(b) <= 8)).count() * 10 >= screen.width * 8
        })
        .count();
    let mut colours: Vec<[u8; 3]> = screen.rgb.clone();
    colours.sort_unstable();
    colours.dedup();
    (accent_rows, colours.len())
}

#[test]
fn the_desktop_window_shows_the_ide_and_its_kernel_answers() {
    let root = tempfile::tempdir().unwrap();
    let workspace = root.path().join("workspace");
    copy_dir(&repo().join("host-ui/example-workspace"), &workspace);

    let mut xvfb = Command::new("Xvfb")
        .args(["-displayfd", "1", "-screen", "0", &format!("{WIDTH}x{HEIGHT}x24"), "-nolisten", "tcp"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("Xvfb (Debian: xvfb; `cargo xtask test` installs it)");
    let mut number = String::new();
    BufReader::new(xvfb.stdout.take().unwrap()).read_line(&mut number).unwrap();
    let _xvfb = Killed(xvfb);
    let display = format!(":{}", number.trim());

    let log = root.path().join("desktop.log");
    let mut desktop = Command::new(env!("CARGO_BIN_EXE_symphony-desktop"))
        .arg("--home")
        .arg(root.path().join("home"))
        .arg("--workspace")
        .arg(&workspace)
        .arg("--carets")
        .arg(repo().join("extensions"))
        .env("DISPLAY", &display)
        .env("WEBKIT_DISABLE_COMPOSITING_MODE", "1")
        .env_remove("WAYLAND_DISPLAY")
        .env_remove("SYMPHONY_HOME")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let stdout = desktop.stdout.take().unwrap();
    let desktop = Killed(desktop);
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let url = loop {
        let line = lines.recv_timeout(Duration::from_secs(180)).unwrap_or_else(|_| {
            panic!("the desktop app printed no URL; its log:\n{}", std::fs::read_to_string(&log).unwrap_or_default())
        });
        if let Some(url) = line.strip_prefix("Symphony desktop: the kernel serves ") {
            break url.to_owned();
        }
    };

    // The kernel in the desktop process answers through the one proxy.
    let ws_url = url.replacen("http://", "ws://", 1).replacen("/?token=", "/rpc?token=", 1);
    let carets: Value = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
        let (mut ws, _) = tokio_tungstenite::connect_async(ws_url).await.unwrap();
        let request = json!({"jsonrpc": "2.0", "id": 1, "method": "invoke", "params": {"target": "pit/carets", "op": "list"}});
        ws.send(Message::Text(request.to_string().into())).await.unwrap();
        loop {
            if let Some(Ok(Message::Text(t))) = ws.next().await {
                let reply: Value = serde_json::from_str(&t).unwrap();
                if reply["id"] == 1 {
                    return reply;
                }
            }
        }
    });
    let ids: Vec<&str> = carets["result"].as_array().unwrap_or_else(|| panic!("{carets}")).iter().filter_map(|c| c["manifest"]["id"].as_str()).collect();
    assert!(ids.contains(&"text-tools") && ids.contains(&"aurora"), "{ids:?}");

    // The window shows the IDE: poll screenshots until it has rendered (or give up).
    let artifacts = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("desktop-smoke");
    std::fs::create_dir_all(&artifacts).unwrap();
    let give_up = Instant::now() + Duration::from_secs(90);
    let (mut accent_rows, mut colours) = (0, 0);
    while Instant::now() < give_up {
        let shot = Command::new("xwd").args(["-root", "-silent", "-display", &display]).output().expect("xwd (Debian: x11-apps)");
        assert!(shot.status.success(), "xwd failed: {}", String::from_utf8_lossy(&shot.stderr));
        let screen = decode_xwd(&shot.stdout);
        (accent_rows, colours) = looks_like_the_ide(&screen);
        save_png(&screen, &artifacts.join("desktop.png"));
        if accent_rows >= 15 && colours >= 64 {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let mut stderr = String::new();
    let _ = std::fs::File::open(&log).and_then(|mut f| f.read_to_string(&mut stderr));
    assert!(
        accent_rows >= 15 && colours >= 64,
        "the window does not show the IDE: {accent_rows} status-bar rows, {colours} colours (screenshot: {}); log:\n{stderr}",
        artifacts.join("desktop.png").display()
    );
    drop(desktop);
}
