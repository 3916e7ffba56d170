//! Integration tests for careline-attach. The clamd tests run a real clamd
//! (package clamav-daemon) through `careline_attach::testing::TestClamd`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

#[path = "attach/samples.rs"]
mod samples;

#[path = "attach/clamd.rs"]
mod clamd;
#[path = "attach/fuzz.rs"]
mod fuzz;
#[path = "attach/names.rs"]
mod names;
#[path = "attach/sniff.rs"]
mod sniff;
#[path = "attach/strip.rs"]
mod strip;
