//! The `careline` application: command line, configuration, wiring of the
//! store, the triage engine and the HTTP server, demo data, administration,
//! audit verification and the load generator.

pub mod admin_cmd;
pub mod audit_cmd;
pub mod backup_cmd;
pub mod bench;
pub mod cli;
pub mod config;
pub mod demo;
pub mod httpc;
pub mod idle;
pub mod keys_cmd;
pub mod safety_cmd;
pub mod scanning;
pub mod server;
pub mod supervisor;
pub mod triage_cmd;
pub mod workers;
