//! The `careline` binary: command line, configuration, wiring and workers.

mod triage_cmd;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "careline", version, about = "Every member conversation becomes a triaged, routed, audited ticket.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Judge text with the triage engine (one text, or JSON lines on stdin).
    Triage(triage_cmd::TriageArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Triage(args) => triage_cmd::run(args),
    }
}
