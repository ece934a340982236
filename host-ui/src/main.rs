//! `symphony`: the command-line face of the kernel — install, grant, call and audit carets,
//! run WASI commands, and start the interactive demo on the embedded default.

mod artifacts_service;
mod audit_view;
mod carets_service;
mod cli;
mod demo;
mod dev;
mod exit;
mod melody;
mod output;
mod rpc;
mod serve;
mod settings_service;
mod terminal_service;
mod workspace_service;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(code) => code,
        Err(e) => {
            let code = exit::code_for(&e);
            eprintln!("error: {e:#}");
            code
        }
    }
}
