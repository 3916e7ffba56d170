//! Member identifiers and health markers are sealed at rest, and a database
//! whose members the previous version stored in plaintext is sealed by the
//! first node that opens it.

use super::*;

const SECRETS: [&str; 5] = [
    "Dolores Quintana",
    "1951-08-30",
    "+1-555-0199",
    "dolores@example.org",
    "bipolar disorder",
];

/// Every member row as PostgreSQL prints it.
async fn member_rows(s: &PgStore) -> String {
    let rows: Vec<(String,)> = sqlx_core::query_as::query_as("SELECT m::text FROM members m")
        .fetch_all(s.pool())
        .await
        .unwrap();
    rows.into_iter()
        .map(|(r,)| r)
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_stored_in_plaintext_by_the_previous_version_are_sealed_when_a_node_opens() {
    let c = cluster(1).await;
    let old = &c.nodes[0];
    let org = old.create_org("Old Clinic", t0()).await.unwrap();
    let team = old.create_team(org.id, "North", None, t0()).await.unwrap();
    // Back to the previous version's schema, and a member inserted exactly
    // as it inserted them.
    let pool = old.pool();
    // Migrations after it are undone first, newest first.
    for sql in [
        "DROP TABLE judgement_marks",
        "DELETE FROM schema_migrations WHERE version = (SELECT max(version) FROM schema_migrations)",
        "DROP INDEX tickets_review",
        "ALTER TABLE tickets DROP COLUMN review_due",
        "ALTER TABLE tickets DROP COLUMN review",
        "DELETE FROM schema_migrations WHERE version = (SELECT max(version) FROM schema_migrations)",
        "ALTER TABLE members DROP COLUMN sealed",
        "DROP INDEX members_org",
        "CREATE INDEX members_org ON members(org_id, name)",
        "DELETE FROM schema_migrations WHERE version = (SELECT max(version) FROM schema_migrations)",
    ] {
        sqlx_core::query::query(sql).execute(pool).await.unwrap();
    }
    let member = MemberId(uuid::Uuid::now_v7());
    sqlx_core::query::query(
        "INSERT INTO members (id, org_id, name, date_of_birth, sex, language, phone, email, plan, team_id, markers, external_ref, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(member.0)
    .bind(org.id.0)
    .bind(SECRETS[0])
    .bind(SECRETS[1])
    .bind("F")
    .bind("es")
    .bind(SECRETS[2])
    .bind(SECRETS[3])
    .bind("Medicaid")
    .bind(team.id.0)
    .bind(format!(
        r#"{{"conditions":["{}"],"medications":["lithium 300 mg"]}}"#,
        SECRETS[4]
    ))
    .bind("OLD-1")
    .bind(t0().as_microsecond())
    .execute(pool)
    .await
    .unwrap();
    assert!(member_rows(old).await.contains(SECRETS[4]));

    let node = PgStore::connect(&c.url, c.master.clone(), 2).await.unwrap();
    let stored = member_rows(&node).await;
    for secret in SECRETS.iter().chain(&["lithium 300 mg", "Medicaid"]) {
        assert!(
            !stored.contains(secret),
            "{secret} is readable in members: {stored}"
        );
    }
    let found = node.members(org.id).await.unwrap();
    assert_eq!(found.len(), 1);
    let m = &found[0];
    assert_eq!(m.id, member);
    assert_eq!(m.name, SECRETS[0]);
    assert_eq!(m.date_of_birth.unwrap().to_string(), SECRETS[1]);
    assert_eq!(m.phone.as_deref(), Some(SECRETS[2]));
    assert_eq!(m.email.as_deref(), Some(SECRETS[3]));
    assert_eq!(m.markers.conditions, vec![SECRETS[4].to_owned()]);
    assert_eq!(m.language, "es");

    // A second node seals nothing twice and reads the same member.
    let again = PgStore::connect(&c.url, c.master.clone(), 2).await.unwrap();
    assert_eq!(member_rows(&again).await, stored);
    assert_eq!(again.members(org.id).await.unwrap()[0].name, SECRETS[0]);
}
