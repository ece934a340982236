//! Tauri's build step: reads `tauri.conf.json` and prepares the app context.

fn main() {
    tauri_build::build();
}
