//! `careline admin …`: manage organizations, care teams, staff, members and
//! proxies directly in a data directory, and import members from CSV with a
//! row-numbered error report. Uses the same functions as the admin API.

use crate::cli::DataDir;
use anyhow::{Result, anyhow, bail};
use careline_core::authz::Principal;
use careline_core::escalation::Rota;
use careline_core::ids::*;
use careline_core::model::Organization;
use careline_core::model::Role;
use careline_store::Store;
use careline_web::admin::{
    MemberSpec, ProxySpec, StaffSpec, create_member, create_staff, grant_proxy, prepare_member,
};
use clap::{Args, Subcommand};
use jiff::Timestamp;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum AdminCmd {
    /// Create an organization (a tenant).
    OrgCreate {
        name: String,
        #[command(flatten)]
        data: DataDir,
    },
    /// List organizations.
    OrgList(DataDir),
    /// Create a care team with its team and clinical queues.
    TeamCreate {
        #[command(flatten)]
        org: OrgArg,
        name: String,
    },
    /// List an organization's teams, staff and members.
    List(OrgArg),
    /// Create a staff user.
    StaffCreate {
        #[command(flatten)]
        org: OrgArg,
        #[arg(long)]
        username: String,
        #[arg(long)]
        name: String,
        /// care_guide, agent, nurse, physician, supervisor, safety_reviewer, privacy_officer, admin, service.
        #[arg(long)]
        role: String,
        /// The new user's password (or set CARELINE_NEW_PASSWORD).
        #[arg(long, env = "CARELINE_NEW_PASSWORD", hide_env_values = true)]
        password: String,
        /// Team names to join (repeatable).
        #[arg(long = "team")]
        teams: Vec<String>,
    },
    /// Create a member on a care team, optionally with a portal login.
    MemberCreate {
        #[command(flatten)]
        org: OrgArg,
        #[arg(long)]
        name: String,
        #[arg(long)]
        team: String,
        #[arg(long, default_value = "en")]
        language: String,
        #[arg(long)]
        date_of_birth: Option<String>,
        #[arg(long)]
        external_ref: Option<String>,
        #[arg(long)]
        username: Option<String>,
        #[arg(long, env = "CARELINE_NEW_PASSWORD", hide_env_values = true)]
        password: Option<String>,
    },
    /// Give a caregiver proxy access to a member (creating the proxy's login).
    ProxyGrant {
        #[command(flatten)]
        org: OrgArg,
        /// The member's id.
        #[arg(long)]
        member_id: uuid::Uuid,
        #[arg(long)]
        username: String,
        #[arg(long)]
        name: String,
        #[arg(long, env = "CARELINE_NEW_PASSWORD", hide_env_values = true)]
        password: String,
        /// RFC 3339 expiry; omitted means until revoked.
        #[arg(long)]
        expires_at: Option<String>,
        /// What the proxy may do: messages, record or full.
        #[arg(long, default_value = "full")]
        scope: String,
    },
    /// Set a care team's on-call rota (who is paged, in order). Users by username.
    RotaSet {
        #[command(flatten)]
        org: OrgArg,
        #[arg(long)]
        team: String,
        #[arg(long)]
        primary: Option<String>,
        #[arg(long)]
        backup: Option<String>,
        #[arg(long)]
        physician: Option<String>,
        /// Repeatable.
        #[arg(long = "supervisor")]
        supervisors: Vec<String>,
    },
    /// Show a care team's on-call rota.
    RotaShow {
        #[command(flatten)]
        org: OrgArg,
        #[arg(long)]
        team: String,
    },
    /// Import members from a CSV file (header: name,team,language,date_of_birth,sex,phone,email,plan,conditions,medications,allergies,external_ref,username,password; lists separated by ';').
    ImportMembers {
        #[command(flatten)]
        org: OrgArg,
        file: PathBuf,
    },
}

#[derive(Args)]
pub struct OrgArg {
    /// Organization name.
    #[arg(long)]
    pub org: String,
    #[command(flatten)]
    pub data: DataDir,
}

fn now() -> Timestamp {
    Timestamp::now()
}

fn err(e: careline_core::Error) -> anyhow::Error {
    anyhow!("{e}")
}

async fn org(store: &dyn Store, name: &str) -> Result<Organization> {
    store
        .org_by_name(name)
        .await
        .map_err(err)?
        .ok_or_else(|| anyhow!("no organization named '{name}'"))
}

async fn team_id(store: &dyn Store, org: OrgId, name: &str) -> Result<TeamId> {
    store
        .teams(org)
        .await
        .map_err(err)?
        .into_iter()
        .find(|t| t.name.eq_ignore_ascii_case(name.trim()))
        .map(|t| t.id)
        .ok_or_else(|| anyhow!("no care team named '{}'", name.trim()))
}

pub async fn run(cmd: AdminCmd) -> Result<()> {
    match cmd {
        AdminCmd::OrgCreate { name, data } => {
            let store = crate::cli::open_any(&data.data_dir).await?;
            let o = store.create_org(&name, now()).await.map_err(err)?;
            println!("organization {} created: {}", o.name, o.id);
        }
        AdminCmd::OrgList(data) => {
            let store = crate::cli::open_any(&data.data_dir).await?;
            for o in store.orgs().await.map_err(err)? {
                println!("{}  {}", o.id, o.name);
            }
        }
        AdminCmd::TeamCreate { org: o, name } => {
            let store = crate::cli::open_any(&o.data.data_dir).await?;
            let org = org(store.as_ref(), &o.org).await?;
            let t = store
                .create_team(org.id, &name, None, now())
                .await
                .map_err(err)?;
            println!(
                "team {} created: {} (team queue {}, clinical queue {})",
                t.name, t.id, t.team_queue, t.clinical_queue
            );
        }
        AdminCmd::List(o) => {
            let store = crate::cli::open_any(&o.data.data_dir).await?;
            let org = org(store.as_ref(), &o.org).await?;
            println!("teams:");
            for t in store.teams(org.id).await.map_err(err)? {
                println!("  {}  {}", t.id, t.name);
            }
            println!("users:");
            for u in store.users(org.id).await.map_err(err)? {
                println!(
                    "  {}  {:<16} {}  {}",
                    u.id,
                    u.role.as_str(),
                    u.username,
                    u.name
                );
            }
            println!("members:");
            for m in store.members(org.id).await.map_err(err)? {
                println!("  {}  {}", m.id, m.name);
            }
        }
        AdminCmd::StaffCreate {
            org: o,
            username,
            name,
            role,
            password,
            teams,
        } => {
            let store = crate::cli::open_any(&o.data.data_dir).await?;
            let org = org(store.as_ref(), &o.org).await?;
            let mut team_ids = Vec::new();
            for t in &teams {
                team_ids.push(team_id(store.as_ref(), org.id, t).await?.0);
            }
            let u = create_staff(
                store.as_ref(),
                org.id,
                StaffSpec {
                    username,
                    name,
                    role,
                    password,
                    team_ids,
                },
                None,
                now(),
            )
            .await
            .map_err(err)?;
            println!("staff user {} ({}) created: {}", u.username, u.role, u.id);
        }
        AdminCmd::MemberCreate {
            org: o,
            name,
            team,
            language,
            date_of_birth,
            external_ref,
            username,
            password,
        } => {
            let store = crate::cli::open_any(&o.data.data_dir).await?;
            let org = org(store.as_ref(), &o.org).await?;
            let team_id = team_id(store.as_ref(), org.id, &team).await?;
            let spec = MemberSpec {
                name,
                team_id: team_id.0,
                language,
                date_of_birth,
                external_ref,
                username,
                password,
                ..Default::default()
            };
            let (m, u) = create_member(store.as_ref(), org.id, spec, None, now())
                .await
                .map_err(err)?;
            println!(
                "member {} created: {}{}",
                m.name,
                m.id,
                u.map(|u| format!(" (login {})", u.username))
                    .unwrap_or_default()
            );
        }
        AdminCmd::ProxyGrant {
            org: o,
            member_id,
            username,
            name,
            password,
            expires_at,
            scope,
        } => {
            let store = crate::cli::open_any(&o.data.data_dir).await?;
            let org = org(store.as_ref(), &o.org).await?;
            let spec = ProxySpec {
                member_id,
                proxy_user_id: None,
                username: Some(username.clone()),
                name: Some(name),
                password: Some(password),
                expires_at,
                scope: Some(scope),
            };
            let id = grant_proxy(store.as_ref(), org.id, spec, None, now())
                .await
                .map_err(err)?;
            println!("proxy {username} ({id}) may now act for member {member_id}");
        }
        AdminCmd::RotaSet {
            org: o,
            team,
            primary,
            backup,
            physician,
            supervisors,
        } => {
            let store = crate::cli::open_any(&o.data.data_dir).await?;
            let org = org(store.as_ref(), &o.org).await?;
            let team_id = team_id(store.as_ref(), org.id, &team).await?;
            let users = store.users(org.id).await.map_err(err)?;
            let find = |name: &str| -> Result<UserId> {
                let n = name.trim().to_lowercase();
                users
                    .iter()
                    .find(|u| u.username == n || u.username.split('@').next() == Some(n.as_str()))
                    .map(|u| u.id)
                    .ok_or_else(|| anyhow!("no user named '{name}' in {}", org.name))
            };
            let rota = Rota {
                primary: primary.as_deref().map(find).transpose()?,
                backup: backup.as_deref().map(find).transpose()?,
                physician: physician.as_deref().map(find).transpose()?,
                supervisors: supervisors.iter().map(|s| find(s)).collect::<Result<_>>()?,
                unreadable: None,
            };
            let r = store
                .set_rota(&operator(org.id), team_id, rota, now())
                .await
                .map_err(err)?;
            print_rota(&users, &team, &r);
        }
        AdminCmd::RotaShow { org: o, team } => {
            let store = crate::cli::open_any(&o.data.data_dir).await?;
            let org = org(store.as_ref(), &o.org).await?;
            let team_id = team_id(store.as_ref(), org.id, &team).await?;
            let users = store.users(org.id).await.map_err(err)?;
            let r = store.rota(&operator(org.id), team_id).await.map_err(err)?;
            print_rota(&users, &team, &r);
        }
        AdminCmd::ImportMembers { org: o, file } => {
            let store = crate::cli::open_any(&o.data.data_dir).await?;
            let org = org(store.as_ref(), &o.org).await?;
            import_members(store.as_ref(), org.id, &file).await?;
        }
    }
    Ok(())
}

/// The operator at the command line acts with administrator authority over
/// the data directory they can open; events name no user.
fn operator(org: OrgId) -> Principal {
    Principal {
        user_id: UserId(uuid::Uuid::nil()),
        org_id: org,
        role: Role::Admin,
        name: "careline CLI operator".into(),
        member_id: None,
        proxy_for: vec![],
        team_ids: vec![],
        grants: vec![],
        enrolment_only: false,
    }
}

fn print_rota(users: &[careline_core::model::User], team: &str, r: &Rota) {
    let name = |u: Option<UserId>| {
        u.and_then(|u| users.iter().find(|x| x.id == u))
            .map(|u| u.username.clone())
            .unwrap_or_else(|| "(nobody)".into())
    };
    println!("on-call rota of {team}:");
    println!("  1 primary    {}", name(r.primary));
    println!("  2 backup     {}", name(r.backup));
    println!("  3 physician  {}", name(r.physician));
    let sups: Vec<String> = r.supervisors.iter().map(|s| name(Some(*s))).collect();
    println!(
        "  4 supervisors {}",
        if sups.is_empty() {
            "(nobody)".into()
        } else {
            sups.join(", ")
        }
    );
    println!("  5 organization-wide alarm");
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CsvRow {
    name: String,
    team: String,
    #[serde(default)]
    language: Option<String>,
    #[serde(default)]
    date_of_birth: Option<String>,
    #[serde(default)]
    sex: Option<String>,
    #[serde(default)]
    phone: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    plan: Option<String>,
    #[serde(default)]
    conditions: Option<String>,
    #[serde(default)]
    medications: Option<String>,
    #[serde(default)]
    allergies: Option<String>,
    #[serde(default)]
    external_ref: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

fn list(v: Option<String>) -> Vec<String> {
    v.map(|s| {
        s.split(';')
            .map(|x| x.trim().to_owned())
            .filter(|x| !x.is_empty())
            .collect()
    })
    .unwrap_or_default()
}

/// Validate every row first; import nothing if any row is wrong, and name
/// each wrong row. Rows are numbered as a spreadsheet shows them (header = 1).
pub async fn import_members(store: &dyn Store, org: OrgId, file: &std::path::Path) -> Result<()> {
    let mut rdr = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_path(file)
        .map_err(|e| anyhow!("{}: {e}", file.display()))?;
    let teams = store.teams(org).await.map_err(err)?;
    let mut specs = Vec::new();
    let mut errors = Vec::new();
    for (i, rec) in rdr.deserialize::<CsvRow>().enumerate() {
        let row = i + 2;
        let r = match rec {
            Ok(r) => r,
            Err(e) => {
                errors.push(format!("row {row}: {e}"));
                continue;
            }
        };
        let Some(team) = teams.iter().find(|t| t.name.eq_ignore_ascii_case(&r.team)) else {
            errors.push(format!("row {row}: team: no care team named '{}'", r.team));
            continue;
        };
        if r.name.trim().is_empty() {
            errors.push(format!("row {row}: name: must not be empty"));
            continue;
        }
        if let Some(d) = r.date_of_birth.as_deref().filter(|d| !d.is_empty())
            && d.parse::<jiff::civil::Date>().is_err()
        {
            errors.push(format!("row {row}: date_of_birth: '{d}' is not YYYY-MM-DD"));
            continue;
        }
        let language = r
            .language
            .filter(|l| !l.is_empty())
            .unwrap_or_else(|| "en".into());
        if let Err(e) = careline_core::validate::language(&language) {
            errors.push(format!("row {row}: language: {e}"));
            continue;
        }
        let none_if_empty = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
        let spec = MemberSpec {
            name: r.name,
            team_id: team.id.0,
            language,
            date_of_birth: none_if_empty(r.date_of_birth),
            sex: none_if_empty(r.sex),
            phone: none_if_empty(r.phone),
            email: none_if_empty(r.email),
            plan: none_if_empty(r.plan),
            conditions: list(r.conditions),
            medications: list(r.medications),
            allergies: list(r.allergies),
            external_ref: none_if_empty(r.external_ref),
            username: none_if_empty(r.username),
            password: none_if_empty(r.password),
            sensitive: vec![],
            consented_categories: vec![],
        };
        if let Err(e) = careline_web::admin::check_member(org, &spec, now()) {
            errors.push(format!("row {row}: {e}"));
            continue;
        }
        // The same person twice in one file is a mistake in the file.
        let key = |v: &Option<String>| v.as_deref().map(|x| x.trim().to_lowercase());
        for (what, mine) in [
            ("external_ref", key(&spec.external_ref)),
            ("username", key(&spec.username)),
        ] {
            let Some(mine) = mine else { continue };
            if let Some((first, _)) = specs.iter().find(|(_, o): &&(usize, MemberSpec)| {
                let theirs = if what == "username" {
                    key(&o.username)
                } else {
                    key(&o.external_ref)
                };
                theirs.as_deref() == Some(mine.as_str())
            }) {
                errors.push(format!(
                    "row {row}: {what}: '{mine}' is also on row {first}"
                ));
            }
        }
        specs.push((row, spec));
    }
    if !errors.is_empty() {
        for e in &errors {
            eprintln!("{}: {e}", file.display());
        }
        bail!("{} row(s) are invalid; nothing was imported", errors.len());
    }
    // Every row is good: check the logins against the database and hash
    // their passwords, then write every member in one transaction.
    let mut prepared = Vec::with_capacity(specs.len());
    for (row, spec) in specs {
        match prepare_member(store, org, spec, now()).await {
            Ok(p) => prepared.push(p),
            Err(e) => errors.push(format!("row {row}: {e}")),
        }
    }
    if !errors.is_empty() {
        for e in &errors {
            eprintln!("{}: {e}", file.display());
        }
        bail!("{} row(s) are invalid; nothing was imported", errors.len());
    }
    let n = prepared.len();
    store
        .create_members(prepared, None, now())
        .await
        .map_err(|e| anyhow!("{}: {e}; nothing was imported", file.display()))?;
    println!("imported {n} member(s)");
    Ok(())
}
