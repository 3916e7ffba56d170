//! careline's integration tests: the real router on port 0 against a fresh
//! data directory, and the real binary for the crash, tamper and CLI tests.
//! One test binary, so it links once.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::disallowed_methods
)]

mod support;

mod admin;
mod api;
mod attachments;
mod audit;
mod backup;
mod crash;
mod escalation;
mod failover;
mod intake;
mod live;
mod login;
mod matrix;
mod outbound;
mod privacy;
mod simulation;
mod slow_clients;
mod workers;
