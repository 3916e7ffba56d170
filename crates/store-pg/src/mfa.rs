//! Second factors: a TOTP secret per user (sealed with the organization's
//! data key, as the embedded store seals it), replay protection by time
//! step, and single-use recovery codes stored by hash.

use crate::PgStore;
use crate::crypt::aad;
use crate::rows::{db, q};
use careline_core::authz::Principal;
use careline_core::ids::{OrgId, UserId};
use careline_core::session;
use careline_core::{Error, Result};
use careline_store::MfaState;
use jiff::Timestamp;
use uuid::Uuid;

impl PgStore {
    pub(crate) async fn mfa_state_(&self, user: UserId) -> Result<MfaState> {
        let mut c = self.conn().await?;
        let row: Option<(Uuid, Option<String>, bool, Option<i64>)> = sqlx_core::query_as::query_as(
            "SELECT org_id, totp_secret, totp_enabled, totp_last_step FROM users WHERE id = $1",
        )
        .bind(user.0)
        .fetch_optional(&mut *c)
        .await
        .map_err(db)?;
        let (org, secret, enabled, last_step) = row.ok_or(Error::NotFound("user"))?;
        let secret = match secret {
            Some(s) => Some(
                self.crypto
                    .open(&mut c, OrgId(org), &s, &aad("user", &user, "totp"))
                    .await?,
            ),
            None => None,
        };
        Ok(MfaState {
            enabled,
            secret,
            last_step,
        })
    }

    pub(crate) async fn set_totp_secret_(&self, p: &Principal, secret: String) -> Result<()> {
        let mut c = self.conn().await?;
        let sealed = self
            .crypto
            .seal(&mut c, p.org_id, &secret, &aad("user", &p.user_id, "totp"))
            .await?;
        let n = q("UPDATE users SET totp_secret = $1 WHERE id = $2 AND NOT totp_enabled")
            .bind(sealed)
            .bind(p.user_id.0)
            .execute(&mut *c)
            .await
            .map_err(db)?
            .rows_affected();
        if n == 0 {
            return Err(Error::conflict(
                "mfa-enrolled",
                "a second factor is already enrolled for this account",
            ));
        }
        Ok(())
    }

    pub(crate) async fn enable_totp_(
        &self,
        p: &Principal,
        step: i64,
        recovery_hashes: Vec<String>,
        now: Timestamp,
    ) -> Result<()> {
        let mut tx = self.begin_for(p.org_id).await?;
        let n = q("UPDATE users SET totp_enabled = true, totp_last_step = $1
                   WHERE id = $2 AND NOT totp_enabled AND totp_secret IS NOT NULL")
        .bind(step)
        .bind(p.user_id.0)
        .execute(tx.c())
        .await
        .map_err(db)?
        .rows_affected();
        if n == 0 {
            return Err(Error::conflict(
                "mfa-not-pending",
                "start enrolment first (POST /api/v1/me/mfa/totp), or it is already enabled",
            ));
        }
        for h in &recovery_hashes {
            q("INSERT INTO recovery_codes (user_id, code_hash) VALUES ($1, $2)")
                .bind(p.user_id.0)
                .bind(h.clone())
                .execute(tx.c())
                .await
                .map_err(db)?;
        }
        q("UPDATE sessions SET mfa_pending = false WHERE user_id = $1")
            .bind(p.user_id.0)
            .execute(tx.c())
            .await
            .map_err(db)?;
        tx.append(
            p.org_id,
            now,
            vec![session::mfa_enrolled(p.user_id, recovery_hashes.len())],
        )
        .await?;
        tx.commit(&self.bus).await
    }

    /// One statement: two nodes checking the same code at once cannot both win.
    pub(crate) async fn record_totp_step_(&self, user: UserId, step: i64) -> Result<bool> {
        let n = q("UPDATE users SET totp_last_step = $1 WHERE id = $2 AND (totp_last_step IS NULL OR totp_last_step < $1)")
            .bind(step)
            .bind(user.0)
            .execute(&self.pool)
            .await
            .map_err(db)?
            .rows_affected();
        Ok(n > 0)
    }

    pub(crate) async fn use_recovery_code_(
        &self,
        user: UserId,
        code_hash: &str,
        now: Timestamp,
    ) -> Result<bool> {
        let org: Option<(Uuid,)> =
            sqlx_core::query_as::query_as("SELECT org_id FROM users WHERE id = $1")
                .bind(user.0)
                .fetch_optional(&self.pool)
                .await
                .map_err(db)?;
        let Some((org,)) = org else {
            return Ok(false);
        };
        let org = OrgId(org);
        let mut tx = self.begin_for(org).await?;
        let n = q("UPDATE recovery_codes SET used_at = $1 WHERE user_id = $2 AND code_hash = $3 AND used_at IS NULL")
            .bind(crate::rows::us(now))
            .bind(user.0)
            .bind(code_hash)
            .execute(tx.c())
            .await
            .map_err(db)?
            .rows_affected();
        if n > 0 {
            tx.append(org, now, vec![session::recovery_used(user)])
                .await?;
        }
        tx.commit(&self.bus).await?;
        Ok(n > 0)
    }
}
