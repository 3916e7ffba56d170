//! Demo data: the organization "Demo Clinic" with care teams North and
//! South, its staff, twenty members with varied demographics and health
//! markers, and a caregiver with proxy access. Seeding is idempotent: an
//! existing Demo Clinic is left as it is.

use anyhow::{Result, anyhow};
use careline_core::authz::Principal;
use careline_core::escalation::Rota;
use careline_core::ids::*;
use careline_core::model::*;
use careline_store::{NewMember, NewUser, Store};
use jiff::Timestamp;

pub const ORG: &str = "Demo Clinic";
pub const DOMAIN: &str = "demo.careline";
pub const DEFAULT_PASSWORD: &str = "careline-demo";

/// The demo password: `CARELINE_DEMO_PASSWORD`, or the default.
pub fn password() -> String {
    std::env::var("CARELINE_DEMO_PASSWORD")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| DEFAULT_PASSWORD.into())
}

/// (login, display name, role, teams) — teams: "N", "S" or both.
const STAFF: &[(&str, &str, Role, &str)] = &[
    ("admin", "Ada Admin", Role::Admin, ""),
    ("guide.north1", "Grace North", Role::CareGuide, "N"),
    ("guide.north2", "Gabriel North", Role::CareGuide, "N"),
    ("guide.south1", "Gloria South", Role::CareGuide, "S"),
    ("nurse.north", "Nadia Nurse (North)", Role::Nurse, "N"),
    ("nurse.south", "Nicolás Nurse (South)", Role::Nurse, "S"),
    ("doctor", "Dr. Diane Okafor", Role::Physician, "NS"),
    ("supervisor", "Sam Supervisor", Role::Supervisor, "NS"),
    ("agent1", "Alex Agent", Role::Agent, "NS"),
    ("agent2", "Avery Agent", Role::Agent, "NS"),
    ("safety", "Sasha Safety", Role::SafetyReviewer, ""),
    ("privacy", "Priya Privacy", Role::PrivacyOfficer, ""),
];

struct DemoMember {
    name: &'static str,
    dob: &'static str,
    sex: &'static str,
    plan: &'static str,
    conditions: &'static [&'static str],
    medications: &'static [&'static str],
    allergies: &'static [&'static str],
}

const MEMBERS: [DemoMember; 20] = [
    DemoMember {
        name: "Margaret Ellis",
        dob: "1946-03-14",
        sex: "F",
        plan: "Medicare Advantage Gold",
        conditions: &["hypertension", "atrial fibrillation"],
        medications: &["apixaban 5 mg", "metoprolol 25 mg"],
        allergies: &["penicillin"],
    },
    DemoMember {
        name: "James Porter",
        dob: "1958-07-02",
        sex: "M",
        plan: "Medicare Advantage Silver",
        conditions: &["type 2 diabetes"],
        medications: &["metformin 1000 mg"],
        allergies: &[],
    },
    DemoMember {
        name: "Aisha Rahman",
        dob: "1989-11-23",
        sex: "F",
        plan: "Employer PPO",
        conditions: &["asthma"],
        medications: &["albuterol inhaler"],
        allergies: &["sulfa drugs"],
    },
    DemoMember {
        name: "Robert Kim",
        dob: "1951-01-30",
        sex: "M",
        plan: "Medicare Advantage Gold",
        conditions: &["COPD", "hypertension"],
        medications: &["tiotropium", "lisinopril 10 mg"],
        allergies: &[],
    },
    DemoMember {
        name: "Lucía Fernández",
        dob: "1962-05-09",
        sex: "F",
        plan: "Medicaid Managed Care",
        conditions: &["hypothyroidism"],
        medications: &["levothyroxine 75 mcg"],
        allergies: &["latex"],
    },
    DemoMember {
        name: "David Nguyen",
        dob: "1975-09-17",
        sex: "M",
        plan: "Employer HMO",
        conditions: &["hyperlipidemia"],
        medications: &["atorvastatin 20 mg"],
        allergies: &[],
    },
    DemoMember {
        name: "Dorothy Walsh",
        dob: "1938-12-05",
        sex: "F",
        plan: "Medicare Advantage Gold",
        conditions: &["heart failure", "chronic kidney disease stage 3"],
        medications: &["furosemide 40 mg", "carvedilol 6.25 mg"],
        allergies: &["codeine"],
    },
    DemoMember {
        name: "Marcus Johnson",
        dob: "1983-04-21",
        sex: "M",
        plan: "Employer PPO",
        conditions: &["epilepsy"],
        medications: &["levetiracetam 500 mg"],
        allergies: &[],
    },
    DemoMember {
        name: "Emily Chen",
        dob: "1994-08-11",
        sex: "F",
        plan: "Individual Bronze",
        conditions: &["pregnancy, 28 weeks"],
        medications: &["prenatal vitamins"],
        allergies: &[],
    },
    DemoMember {
        name: "Thomas Becker",
        dob: "1949-02-27",
        sex: "M",
        plan: "Medicare Advantage Silver",
        conditions: &["prior DVT (2019)", "hypertension"],
        medications: &["apixaban 5 mg", "amlodipine 5 mg"],
        allergies: &["iodine contrast"],
    },
    DemoMember {
        name: "Patricia Moore",
        dob: "1955-06-14",
        sex: "F",
        plan: "Medicare Advantage Gold",
        conditions: &["osteoarthritis"],
        medications: &["acetaminophen as needed"],
        allergies: &[],
    },
    DemoMember {
        name: "Kevin O'Brien",
        dob: "1968-10-03",
        sex: "M",
        plan: "Employer HMO",
        conditions: &["type 2 diabetes", "hypertension"],
        medications: &["insulin glargine", "losartan 50 mg"],
        allergies: &[],
    },
    DemoMember {
        name: "Sofia Rossi",
        dob: "2025-09-01",
        sex: "F",
        plan: "Employer PPO (dependent)",
        conditions: &["well infant"],
        medications: &[],
        allergies: &[],
    },
    DemoMember {
        name: "William Brooks",
        dob: "1944-03-08",
        sex: "M",
        plan: "Medicare Advantage Gold",
        conditions: &["prior stroke (2021)", "atrial fibrillation"],
        medications: &["warfarin", "atorvastatin 40 mg"],
        allergies: &["aspirin"],
    },
    DemoMember {
        name: "Carmen Delgado",
        dob: "1971-01-19",
        sex: "F",
        plan: "Medicaid Managed Care",
        conditions: &["migraine"],
        medications: &["sumatriptan"],
        allergies: &[],
    },
    DemoMember {
        name: "Henry Adams",
        dob: "1936-11-29",
        sex: "M",
        plan: "Medicare Advantage Silver",
        conditions: &["dementia, mild", "hypertension"],
        medications: &["donepezil 10 mg"],
        allergies: &[],
    },
    DemoMember {
        name: "Grace Liu",
        dob: "2001-07-25",
        sex: "F",
        plan: "Individual Silver",
        conditions: &[],
        medications: &["oral contraceptive"],
        allergies: &["peanuts"],
    },
    DemoMember {
        name: "Samuel Green",
        dob: "1960-04-16",
        sex: "M",
        plan: "Employer PPO",
        conditions: &["coronary artery disease", "stent 2022"],
        medications: &["clopidogrel 75 mg", "aspirin 81 mg"],
        allergies: &[],
    },
    DemoMember {
        name: "Olivia Martin",
        dob: "1987-02-03",
        sex: "F",
        plan: "Employer HMO",
        conditions: &[],
        medications: &[],
        allergies: &[],
    },
    DemoMember {
        name: "Frank Russo",
        dob: "1952-08-30",
        sex: "M",
        plan: "Medicare Advantage Gold",
        conditions: &["prostate cancer, in remission"],
        medications: &["tamsulosin 0.4 mg"],
        allergies: &["shellfish"],
    },
];

/// Sensitive-category items of the demo members who have them.
fn sensitive_of(n: usize) -> Vec<SensitiveItem> {
    let bh = |item: &str| SensitiveItem {
        category: SensitiveCategory::BehavioralHealth,
        item: item.into(),
    };
    match n {
        15 => vec![bh("major depressive disorder"), bh("sertraline 100 mg")],
        19 => vec![bh("generalized anxiety disorder"), bh("escitalopram 10 mg")],
        _ => vec![],
    }
}

fn username(login: &str) -> String {
    format!("{login}@{DOMAIN}")
}

/// Seed the demo organization. Returns a text a person reads at start.
pub async fn seed(store: &dyn Store, password: &str, now: Timestamp) -> Result<String> {
    let e = |e: careline_core::Error| anyhow!("demo seed: {e}");
    if let Some(org) = store.org_by_name(ORG).await.map_err(e)? {
        ensure_rotas(store, org.id, now).await?;
        return Ok(banner(
            password,
            "Demo Clinic already present; left as it is.",
        ));
    }
    // One hash serves every demo account: they share the demo password, and
    // hashing it once keeps the first start fast.
    let hash = careline_web::auth::hash_password(password).map_err(e)?;
    let org = store.create_org(ORG, now).await.map_err(e)?;
    let north = store
        .create_team(org.id, "North", None, now)
        .await
        .map_err(e)?;
    let south = store
        .create_team(org.id, "South", None, now)
        .await
        .map_err(e)?;
    for (login, name, role, teams) in STAFF {
        let u = store
            .create_user(
                NewUser {
                    org_id: org.id,
                    username: username(login),
                    name: (*name).into(),
                    role: *role,
                    member_id: None,
                    password_hash: hash.clone(),
                },
                None,
                now,
            )
            .await
            .map_err(e)?;
        for (flag, team) in [('N', north.id), ('S', south.id)] {
            if teams.contains(flag) {
                store
                    .add_to_team(org.id, team, u.id, None, now)
                    .await
                    .map_err(e)?;
            }
        }
    }
    let mut member07: Option<MemberId> = None;
    for (i, m) in MEMBERS.iter().enumerate() {
        let n = i + 1;
        let team = if n <= 10 { &north } else { &south };
        let language = if n == 5 || n == 15 { "es" } else { "en" };
        let login = format!("member{n:02}");
        let strings = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let member = store
            .create_member(
                NewMember {
                    org_id: org.id,
                    name: m.name.into(),
                    date_of_birth: m.dob.parse().ok(),
                    sex: Some(m.sex.into()),
                    language: language.into(),
                    phone: Some(format!("+1-555-01{n:02}")),
                    email: Some(format!("{login}@example.org")),
                    plan: Some(m.plan.into()),
                    team_id: team.id,
                    markers: HealthMarkers {
                        conditions: strings(m.conditions),
                        medications: strings(m.medications),
                        allergies: strings(m.allergies),
                        sensitive: sensitive_of(n),
                        consented_categories: vec![],
                    },
                    external_ref: Some(format!("DEMO-{n:04}")),
                },
                None,
                now,
            )
            .await
            .map_err(e)?;
        store
            .create_user(
                NewUser {
                    org_id: org.id,
                    username: username(&login),
                    name: m.name.into(),
                    role: Role::Member,
                    member_id: Some(member.id),
                    password_hash: hash.clone(),
                },
                None,
                now,
            )
            .await
            .map_err(e)?;
        if n == 7 {
            member07 = Some(member.id);
        }
    }
    let proxy = store
        .create_user(
            NewUser {
                org_id: org.id,
                username: username("proxy07"),
                name: "Paula Walsh (daughter of Dorothy Walsh)".into(),
                role: Role::Proxy,
                member_id: None,
                password_hash: hash,
            },
            None,
            now,
        )
        .await
        .map_err(e)?;
    let m7 = member07.ok_or_else(|| anyhow!("demo seed: member07 missing"))?;
    store
        .grant_proxy(
            org.id,
            proxy.id,
            m7,
            careline_core::authz::ProxyScope::Full,
            None,
            None,
            now,
        )
        .await
        .map_err(e)?;
    ensure_rotas(store, org.id, now).await?;
    Ok(banner(
        password,
        "Demo Clinic created: teams North and South, 12 staff, 20 members, 1 proxy.",
    ))
}

/// Each team pages its own nurse first, the other team's nurse as backup,
/// then the physician, then the supervisor. Set only where no rota exists.
async fn ensure_rotas(store: &dyn Store, org: OrgId, now: Timestamp) -> Result<()> {
    let e = |e: careline_core::Error| anyhow!("demo rota: {e}");
    let users = store.users(org).await.map_err(e)?;
    let id = |login: &str| {
        users
            .iter()
            .find(|u| u.username == username(login))
            .map(|u| u.id)
    };
    let Some(admin) = users.iter().find(|u| u.username == username("admin")) else {
        return Ok(());
    };
    let principal = Principal {
        user_id: admin.id,
        org_id: org,
        role: Role::Admin,
        name: admin.name.clone(),
        member_id: None,
        proxy_for: vec![],
        team_ids: vec![],
        grants: vec![],
        enrolment_only: false,
    };
    // The demo's logins are shared and printed: it does not require a second factor.
    let mut settings = store.settings(org).await.map_err(e)?;
    if !settings.mfa_required_roles.is_empty() {
        settings.mfa_required_roles.clear();
        store
            .set_settings(&principal, settings, now)
            .await
            .map_err(e)?;
    }
    for team in store.teams(org).await.map_err(e)? {
        if store.rota(&principal, team.id).await.map_err(e)? != Rota::default() {
            continue;
        }
        let (primary, backup) = match team.name.as_str() {
            "North" => ("nurse.north", "nurse.south"),
            "South" => ("nurse.south", "nurse.north"),
            _ => continue,
        };
        let rota = Rota {
            primary: id(primary),
            backup: id(backup),
            physician: id("doctor"),
            supervisors: id("supervisor").into_iter().collect(),
            unreadable: None,
        };
        store
            .set_rota(&principal, team.id, rota, now)
            .await
            .map_err(e)?;
    }
    Ok(())
}

fn banner(password: &str, what: &str) -> String {
    format!(
        "{what}\nDemo logins (password: {password}):\n  staff:   admin, guide.north1, guide.north2, guide.south1, nurse.north, nurse.south, doctor, supervisor, agent1, agent2, safety, privacy\n  members: member01…member20 (01–10 North, 11–20 South; 05 and 15 prefer Spanish), proxy07 (caregiver of member07)\n  each as <name>@{DOMAIN}"
    )
}

/// The demo team of a member number (for tools and tests).
pub fn team_of(n: usize) -> &'static str {
    if n <= 10 { "North" } else { "South" }
}
