//! The Symphony host as a library: the CLI's commands, server mode and the Pit services it
//! registers, so the `symphony` binary and the desktop shell (`host-ui/desktop`) share them.

pub mod artifacts_service;
pub mod audit_view;
pub mod carets_service;
pub mod cli;
pub mod demo;
pub mod dev;
pub mod exit;
pub mod melodies_service;
pub mod melody;
pub mod output;
pub mod rpc;
pub mod serve;
pub mod settings_service;
pub mod terminal_service;
pub mod workspace_service;
