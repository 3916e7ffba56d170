//! The store conformance suite against the embedded SQLite store: every
//! case on a fresh data directory with a fresh master key.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use careline_store_conformance::Fresh;
use careline_store_sqlite::SqliteStore;
use std::sync::Arc;

async fn open() -> Fresh {
    let dir = tempfile::tempdir().expect("temporary data directory");
    let master = careline_crypto::MasterKey::generate().expect("master key");
    let store = SqliteStore::open_with_key(dir.path(), master).expect("open the store");
    Fresh::new(Arc::new(store), dir)
}

#[test]
fn a_database_from_a_newer_careline_is_refused_at_open_naming_both_versions() {
    let dir = tempfile::tempdir().unwrap();
    let master = careline_crypto::MasterKey::generate().unwrap();
    drop(SqliteStore::open_with_key(dir.path(), master.clone()).unwrap());
    let known = careline_store_sqlite::schema::latest();
    let newer = known + 2;
    let db = dir.path().join(careline_store_sqlite::DB_FILE);
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch(&format!("PRAGMA user_version = {newer}"))
        .unwrap();
    let refused = SqliteStore::open_with_key(dir.path(), master)
        .err()
        .expect("an older careline refuses a newer schema");
    assert_eq!(
        refused.to_string(),
        format!(
            "the database is at schema version {newer} but this careline knows only up to {known}: upgrade careline before starting it against this database"
        )
    );
}

careline_store_conformance::conformance_tests! {
    open = open;
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
}
