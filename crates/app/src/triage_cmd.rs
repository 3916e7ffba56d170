//! `careline triage`: the triage engine on the command line.

use std::process::ExitCode;

#[derive(clap::Args)]
pub struct TriageArgs {
    /// Text to judge.
    text: Option<String>,
}

pub fn run(args: TriageArgs) -> ExitCode {
    let _ = args;
    ExitCode::SUCCESS
}
