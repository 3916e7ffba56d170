//! The behaviour every careline store backend must show, checked through the
//! [`Store`] trait alone: return values, errors by variant and rule, the
//! event record (`events`) and its verification (`verify_chains`). Nothing
//! here knows which database sits behind the trait, so the embedded SQLite
//! store and a PostgreSQL store run exactly the same cases.
//!
//! A backend wires the suite into one test binary:
//!
//! ```ignore
//! async fn open() -> careline_store_conformance::Fresh {
//!     let dir = tempfile::tempdir().unwrap();
//!     let store = MyStore::open(dir.path()).unwrap();
//!     careline_store_conformance::Fresh::new(std::sync::Arc::new(store), dir)
//! }
//!
//! careline_store_conformance::conformance_tests! {
//!     open = open;
//!     organization_isolation,
//!     #[ignore = "why"] some_case,
//!     // … every name in `CASES`; a generated test fails if one is missing.
//! }
//! ```
//!
//! Each case gets a fresh, empty store and builds its own fixtures through
//! the trait. Time is an explicit parameter everywhere, so expiry and
//! deadlines are tested by passing later instants, never by sleeping.

// This crate is test code: a failed expectation is a panic with a message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod fixture;

pub mod cases;

use careline_store::Store;
use futures_util::future::BoxFuture;
use std::any::Any;
use std::future::Future;
use std::sync::Arc;

pub use fixture::T0;

/// A fresh, empty store, and whatever must stay alive as long as it does
/// (a temporary directory, a throw-away database or schema, a container).
pub struct Fresh {
    pub store: Arc<dyn Store>,
    _keep: Box<dyn Any + Send + Sync>,
}

impl Fresh {
    /// `keep` is dropped after the case has finished with the store.
    pub fn new(store: Arc<dyn Store>, keep: impl Any + Send + Sync) -> Self {
        Fresh {
            store,
            _keep: Box::new(keep),
        }
    }
}

/// One conformance case.
pub type Case = fn(Fresh) -> BoxFuture<'static, ()>;

macro_rules! case_list {
    ($($name:ident),* $(,)?) => {
        /// Every case, by name, in the order `run_all` runs them.
        pub const CASES: &[(&str, Case)] = &[
            $((stringify!($name), |f| Box::pin(cases::$name(f)))),*
        ];
    };
}

case_list!(
    organization_isolation,
    clearance_is_tenant_scoped,
    review_and_judgement_marks_are_tenant_scoped,
    record_contact_commits_message_ticket_and_events,
    refused_contact_leaves_no_trace,
    call_notes_are_triaged_and_staff_only,
    emergency_contact_pages_in_the_same_write,
    page_acknowledged_only_by_the_paged_user,
    due_pages_escalate_exactly_once_under_race,
    ticket_state_machine,
    red_flag_interlock_and_clearance,
    event_chain_is_gap_free_and_verifies,
    concurrent_writers_keep_one_chain,
    every_row_agrees_with_the_record_after_a_day_of_work,
    session_principal_lifecycle,
    care_team_and_tag_grants,
    break_glass_expires_and_is_reviewed,
    proxy_scopes,
    phi_reads_recorded_for_staff_not_members,
    consent_set_and_withdraw,
    webhook_outbox_lease_retry_dead_letter_replay,
    attachment_scan_lifecycle,
    attachments_link_through_contacts,
    message_redaction,
    safety_audit_basics,
);

/// Run every case in turn, each on a store from `open`. Panics on the first
/// failure (the case's name is printed before it runs). Prefer
/// [`conformance_tests!`], which gives each case its own test.
pub async fn run_all<F, Fut>(open: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Fresh>,
{
    for (name, case) in CASES {
        eprintln!("store conformance: {name}");
        case(open().await).await;
    }
}

/// Expands to one `#[tokio::test]` per listed case (on a multi-threaded
/// runtime, so the races are real), plus a test that fails when a case of
/// [`CASES`] is not listed. Attributes such as `#[ignore = "…"]` may precede
/// a name. The calling crate needs `tokio` with the `macros` and
/// `rt-multi-thread` features.
#[macro_export]
macro_rules! conformance_tests {
    (open = $open:path; $($(#[$meta:meta])* $name:ident),* $(,)?) => {
        $(
            $(#[$meta])*
            #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                $crate::cases::$name($open().await).await;
            }
        )*

        #[test]
        fn every_conformance_case_is_wired() {
            let wired: &[&str] = &[$(stringify!($name)),*];
            let missing: Vec<&str> = $crate::CASES
                .iter()
                .map(|(n, _)| *n)
                .filter(|n| !wired.contains(n))
                .collect();
            assert!(missing.is_empty(), "conformance cases not wired: {missing:?}");
        }
    };
}
