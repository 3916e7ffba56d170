//! Administration: care teams, staff and roles, members and their team,
//! proxies. The functions here serve the API, the `careline admin` CLI, the
//! CSV import and the demo seed alike, so there is one way to create each thing.

use crate::AppState;
use crate::auth::{self, Auth};
use crate::error::{ApiResult, Problem};
use crate::extract::Body;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use careline_core::authz::Principal;
use careline_core::ids::*;
use careline_core::model::*;
use careline_core::{Error, Result};
use careline_store::{MemberLogin, NewMember, NewUser, Store};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// A staff account to create.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StaffSpec {
    /// E-mail style: `name@domain`, at most 254 characters.
    #[schema(max_length = 254)]
    pub username: String,
    /// 1–200 characters.
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    /// care_guide, agent, nurse, physician, supervisor, safety_reviewer, privacy_officer, admin or service.
    #[schema(schema_with = crate::views::names::staff_role)]
    pub role: String,
    /// 12–256 characters.
    #[schema(min_length = 12, max_length = 256)]
    pub password: String,
    #[serde(default)]
    pub team_ids: Vec<Uuid>,
}

/// A member to create, optionally with a portal login.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberSpec {
    /// 1–200 characters.
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    pub team_id: Uuid,
    /// `en` or `es`.
    #[serde(default = "default_language")]
    #[schema(schema_with = crate::views::names::language)]
    pub language: String,
    /// YYYY-MM-DD.
    #[schema(format = Date)]
    pub date_of_birth: Option<String>,
    pub sex: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub plan: Option<String>,
    #[serde(default)]
    pub conditions: Vec<String>,
    #[serde(default)]
    pub medications: Vec<String>,
    #[serde(default)]
    pub allergies: Vec<String>,
    /// Sensitive-category items (behavioral_health, substance_use, sexual_reproductive_health, hiv).
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub sensitive: Vec<careline_core::model::SensitiveItem>,
    /// Sensitive categories the member consented to share with every clinician with access.
    #[serde(default)]
    #[schema(value_type = Vec<String>)]
    pub consented_categories: Vec<careline_core::model::SensitiveCategory>,
    /// The organization's own identifier (MRN).
    pub external_ref: Option<String>,
    /// With `password`: a portal login for the member.
    pub username: Option<String>,
    /// 12–256 characters.
    #[schema(min_length = 12, max_length = 256)]
    pub password: Option<String>,
}

fn default_language() -> String {
    "en".into()
}

/// A proxy (caregiver) login for a member.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProxySpec {
    pub member_id: Uuid,
    /// An existing proxy user, or the details of a new one.
    pub proxy_user_id: Option<Uuid>,
    pub username: Option<String>,
    pub name: Option<String>,
    /// 12–256 characters.
    #[schema(min_length = 12, max_length = 256)]
    pub password: Option<String>,
    /// RFC 3339; omitted means until revoked.
    #[schema(format = DateTime)]
    pub expires_at: Option<String>,
    /// `messages` (threads, messages, tickets), `record` (profile, health
    /// markers, access history, consent) or `full` (the default).
    #[schema(schema_with = crate::views::names::proxy_scope)]
    pub scope: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TeamView {
    pub id: Uuid,
    pub name: String,
    pub team_queue: Uuid,
    pub clinical_queue: Uuid,
}

impl From<&CareTeam> for TeamView {
    fn from(t: &CareTeam) -> Self {
        TeamView {
            id: t.id.0,
            name: t.name.clone(),
            team_queue: t.team_queue.0,
            clinical_queue: t.clinical_queue.0,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    pub id: Uuid,
    pub username: String,
    pub name: String,
    pub role: String,
    pub member_id: Option<Uuid>,
    pub disabled: bool,
}

impl From<&User> for UserView {
    fn from(u: &User) -> Self {
        UserView {
            id: u.id.0,
            username: u.username.clone(),
            name: u.name.clone(),
            role: u.role.as_str().into(),
            member_id: u.member_id.map(|m| m.0),
            disabled: u.disabled,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TeamSpec {
    /// 1–200 characters.
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
}

async fn hash(password: String) -> Result<String> {
    tokio::task::spawn_blocking(move || auth::hash_password(&password))
        .await
        .map_err(Error::internal)?
}

/// Create a staff user and put them on teams.
pub async fn create_staff(
    store: &dyn Store,
    org: OrgId,
    spec: StaffSpec,
    actor: Option<UserId>,
    now: Timestamp,
) -> Result<User> {
    let role: Role = spec.role.parse()?;
    if !role.is_staff() {
        return Err(Error::invalid(
            "members and proxies are created through members and proxies",
        ));
    }
    // Every team is checked before the account exists, so a wrong team id
    // leaves nothing behind (and the same request can simply be sent again).
    let teams = store.teams(org).await?;
    if spec
        .team_ids
        .iter()
        .any(|t| !teams.iter().any(|team| team.id.0 == *t))
    {
        return Err(Error::NotFound("team"));
    }
    let password_hash = hash(spec.password).await?;
    let user = store
        .create_user(
            NewUser {
                org_id: org,
                username: spec.username,
                name: spec.name,
                role,
                member_id: None,
                password_hash,
            },
            actor,
            now,
        )
        .await?;
    for t in spec.team_ids {
        store
            .add_to_team(org, TeamId(t), user.id, actor, now)
            .await?;
    }
    Ok(user)
}

/// The member a spec describes, checked as the store will check it (every
/// field, and the login's username and password when one is asked for);
/// nothing is written. Import validates a whole file with this before it
/// writes a row.
pub fn check_member(org: OrgId, spec: &MemberSpec, now: Timestamp) -> Result<NewMember> {
    let date_of_birth = spec
        .date_of_birth
        .as_deref()
        .filter(|d| !d.trim().is_empty())
        .map(|d| {
            d.trim()
                .parse::<jiff::civil::Date>()
                .map_err(|_| Error::invalid(format!("date_of_birth '{d}' is not YYYY-MM-DD")))
        })
        .transpose()?;
    match (&spec.username, &spec.password) {
        (Some(u), Some(p)) => {
            careline_core::validate::Username::parse(u)?;
            careline_core::validate::check_password(p)?;
        }
        (None, None) => {}
        _ => {
            return Err(Error::invalid(
                "give both username and password for a member login, or neither",
            ));
        }
    }
    let clean = |v: &[String]| {
        v.iter()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
    };
    let given = |v: &Option<String>| v.clone().filter(|s| !s.trim().is_empty());
    let m = NewMember {
        org_id: org,
        name: spec.name.clone(),
        date_of_birth,
        sex: given(&spec.sex),
        language: spec.language.clone(),
        phone: given(&spec.phone),
        email: given(&spec.email),
        plan: given(&spec.plan),
        team_id: TeamId(spec.team_id),
        markers: HealthMarkers {
            conditions: clean(&spec.conditions),
            medications: clean(&spec.medications),
            allergies: clean(&spec.allergies),
            sensitive: spec.sensitive.clone(),
            consented_categories: spec.consented_categories.clone(),
        },
        external_ref: given(&spec.external_ref),
    };
    m.member(now)?;
    Ok(m)
}

/// A checked member and their login (password hashed), ready to write.
pub async fn prepare_member(
    store: &dyn Store,
    org: OrgId,
    spec: MemberSpec,
    now: Timestamp,
) -> Result<(NewMember, Option<MemberLogin>)> {
    let new = check_member(org, &spec, now)?;
    let login = match (spec.username, spec.password) {
        (Some(u), Some(p)) => {
            // A taken username is named before anything is written.
            let name = careline_core::validate::Username::parse(&u)?;
            if store.credentials(name.as_str()).await?.is_some() {
                return Err(Error::conflict(
                    "duplicate",
                    format!("the username {} is taken", name.as_str()),
                ));
            }
            Some(MemberLogin {
                username: u,
                password_hash: hash(p).await?,
            })
        }
        _ => None,
    };
    Ok((new, login))
}

/// Create a member and their login, if asked, in one transaction.
pub async fn create_member(
    store: &dyn Store,
    org: OrgId,
    spec: MemberSpec,
    actor: Option<UserId>,
    now: Timestamp,
) -> Result<(Member, Option<User>)> {
    let prepared = prepare_member(store, org, spec, now).await?;
    store
        .create_members(vec![prepared], actor, now)
        .await?
        .pop()
        .ok_or_else(|| Error::internal("creating one member created none"))
}

/// Grant a proxy access to a member, creating the proxy's login if asked.
pub async fn grant_proxy(
    store: &dyn Store,
    org: OrgId,
    spec: ProxySpec,
    actor: Option<UserId>,
    now: Timestamp,
) -> Result<UserId> {
    let expires_at = crate::extract::time_field("expires_at", spec.expires_at.as_deref())?;
    let scope = parse_scope(spec.scope.as_deref())?;
    let proxy = match (spec.proxy_user_id, spec.username, spec.name, spec.password) {
        (Some(id), None, None, None) => UserId(id),
        (None, Some(username), Some(name), Some(password)) => {
            // The member is checked before the proxy's account exists, so a
            // wrong member id leaves no account behind.
            if !store
                .members(org)
                .await?
                .iter()
                .any(|m| m.id.0 == spec.member_id)
            {
                return Err(Error::NotFound("member"));
            }
            let password_hash = hash(password).await?;
            store
                .create_user(
                    NewUser {
                        org_id: org,
                        username,
                        name,
                        role: Role::Proxy,
                        member_id: None,
                        password_hash,
                    },
                    actor,
                    now,
                )
                .await?
                .id
        }
        _ => {
            return Err(Error::invalid(
                "give either proxy_user_id, or username, name and password for a new proxy",
            ));
        }
    };
    store
        .grant_proxy(
            org,
            proxy,
            MemberId(spec.member_id),
            scope,
            expires_at,
            actor,
            now,
        )
        .await?;
    Ok(proxy)
}

/// A proxy scope from its name; omitted means `full`.
pub fn parse_scope(s: Option<&str>) -> Result<careline_core::authz::ProxyScope> {
    match s {
        None => Ok(careline_core::authz::ProxyScope::Full),
        Some(s) => careline_core::authz::ProxyScope::parse(s.trim()).ok_or_else(|| {
            Error::invalid(format!("scope '{s}' is not one of messages, record, full"))
        }),
    }
}

fn require_admin(p: &Principal) -> Result<()> {
    p.require(
        &[Role::Admin],
        "admin-only",
        "only administrators manage teams, staff and members",
    )
}

#[utoipa::path(get, path = "/api/v1/admin/teams", tag = "admin", security(("bearer" = [])), responses((status = 200, body = Vec<TeamView>), (status = 403, body = Problem)))]
pub async fn list_teams(
    State(s): State<AppState>,
    Auth(p): Auth,
) -> ApiResult<Json<Vec<TeamView>>> {
    require_admin(&p)?;
    Ok(Json(
        s.store
            .teams(p.org_id)
            .await?
            .iter()
            .map(Into::into)
            .collect(),
    ))
}

#[utoipa::path(post, path = "/api/v1/admin/teams", tag = "admin", security(("bearer" = [])), request_body = TeamSpec, responses((status = 201, body = TeamView), (status = 409, body = Problem)))]
pub async fn post_team(
    State(s): State<AppState>,
    Auth(p): Auth,
    Body(spec): Body<TeamSpec>,
) -> ApiResult<(StatusCode, Json<TeamView>)> {
    require_admin(&p)?;
    let t = s
        .store
        .create_team(p.org_id, &spec.name, Some(p.user_id), s.clock.now())
        .await?;
    Ok((StatusCode::CREATED, Json((&t).into())))
}

/// Take a staff user off a care team: their access to its members, queues
/// and live events ends at once (a move, a departure).
#[utoipa::path(delete, path = "/api/v1/admin/teams/{id}/members/{user_id}", tag = "admin", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("user_id" = Uuid, Path)),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 422, body = Problem, description = "the user is a member or proxy account, which never joins a care team")))]
pub async fn remove_team_member(
    State(s): State<AppState>,
    Auth(p): Auth,
    axum::extract::Path((team, user)): axum::extract::Path<(Uuid, Uuid)>,
) -> ApiResult<StatusCode> {
    require_admin(&p)?;
    let removed = s
        .store
        .remove_from_team(
            p.org_id,
            TeamId(team),
            UserId(user),
            Some(p.user_id),
            s.clock.now(),
        )
        .await?;
    if removed {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Error::NotFound("team member").into())
    }
}

#[utoipa::path(get, path = "/api/v1/admin/users", tag = "admin", security(("bearer" = [])), responses((status = 200, body = Vec<UserView>), (status = 403, body = Problem)))]
pub async fn list_users(
    State(s): State<AppState>,
    Auth(p): Auth,
) -> ApiResult<Json<Vec<UserView>>> {
    require_admin(&p)?;
    Ok(Json(
        s.store
            .users(p.org_id)
            .await?
            .iter()
            .map(Into::into)
            .collect(),
    ))
}

#[utoipa::path(post, path = "/api/v1/admin/staff", tag = "admin", security(("bearer" = [])), request_body = StaffSpec, responses((status = 201, body = UserView), (status = 404, body = Problem, description = "no such team"), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn post_staff(
    State(s): State<AppState>,
    Auth(p): Auth,
    Body(spec): Body<StaffSpec>,
) -> ApiResult<(StatusCode, Json<UserView>)> {
    require_admin(&p)?;
    let u = create_staff(
        s.store.as_ref(),
        p.org_id,
        spec,
        Some(p.user_id),
        s.clock.now(),
    )
    .await?;
    Ok((StatusCode::CREATED, Json((&u).into())))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AdminMemberView {
    pub id: Uuid,
    pub name: String,
    pub team_id: Uuid,
    pub language: String,
    pub login: Option<UserView>,
}

#[utoipa::path(get, path = "/api/v1/admin/members", tag = "admin", security(("bearer" = [])), responses((status = 200, body = Vec<AdminMemberView>), (status = 403, body = Problem)))]
pub async fn list_members(
    State(s): State<AppState>,
    Auth(p): Auth,
) -> ApiResult<Json<Vec<AdminMemberView>>> {
    require_admin(&p)?;
    // Administrators manage enrolment, not care: names and teams only, no health data.
    let items = s
        .store
        .members(p.org_id)
        .await?
        .iter()
        .map(|m| AdminMemberView {
            id: m.id.0,
            name: m.name.clone(),
            team_id: m.team_id.0,
            language: m.language.clone(),
            login: None,
        })
        .collect();
    Ok(Json(items))
}

#[utoipa::path(post, path = "/api/v1/admin/members", tag = "admin", security(("bearer" = [])), request_body = MemberSpec, responses((status = 201, body = AdminMemberView), (status = 404, body = Problem, description = "no such team"), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn post_member(
    State(s): State<AppState>,
    Auth(p): Auth,
    Body(spec): Body<MemberSpec>,
) -> ApiResult<(StatusCode, Json<AdminMemberView>)> {
    require_admin(&p)?;
    let (m, u) = create_member(
        s.store.as_ref(),
        p.org_id,
        spec,
        Some(p.user_id),
        s.clock.now(),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(AdminMemberView {
            id: m.id.0,
            name: m.name,
            team_id: m.team_id.0,
            language: m.language,
            login: u.as_ref().map(Into::into),
        }),
    ))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProxyGranted {
    pub proxy_user_id: Uuid,
    pub member_id: Uuid,
}

#[utoipa::path(post, path = "/api/v1/admin/proxies", tag = "admin", security(("bearer" = [])), request_body = ProxySpec, responses((status = 201, body = ProxyGranted), (status = 404, body = Problem, description = "no such member or proxy"), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn post_proxy(
    State(s): State<AppState>,
    Auth(p): Auth,
    Body(spec): Body<ProxySpec>,
) -> ApiResult<(StatusCode, Json<ProxyGranted>)> {
    require_admin(&p)?;
    let member_id = spec.member_id;
    let proxy = grant_proxy(
        s.store.as_ref(),
        p.org_id,
        spec,
        Some(p.user_id),
        s.clock.now(),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(ProxyGranted {
            proxy_user_id: proxy.0,
            member_id,
        }),
    ))
}
