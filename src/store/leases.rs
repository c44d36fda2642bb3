//! Instances and their leases on endpoints (see [`crate::core::ownership`]).
//!
//! Times here are the database's clock, read once a round, so that
//! instances on machines whose clocks differ agree on when a lease expires.
//! A lease that is released or expires keeps its row: the next owner raises
//! its epoch, so an endpoint's epoch only grows, and a write made under an
//! older epoch ([`Fence`]) is refused.
//!
//! On PostgreSQL a fence check locks the lease row (`FOR SHARE`) until the
//! write's commit, and renewing or taking a lease updates that row: a
//! take-over therefore waits for a former owner's write in flight, then its
//! load sees that write, and a former owner's later write finds the new
//! epoch. Renewals lock the rows in id order, as fence checks do, so the
//! two never deadlock. SQLite serves one instance, whose writes never
//! overlap.

use super::{dispatch, Db, StoreError};
use crate::core::ownership::{self, Census, LeasePlan};
use diesel::prelude::*;
use diesel::query_builder::SqlQuery;
use diesel::sql_types::{BigInt, Text};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// The right to write for one endpoint: its id, this instance, and the
/// epoch under which it took the endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub endpoint_id: String,
    pub owner: Arc<str>,
    pub epoch: i64,
}

impl Fence {
    /// Fails with [`StoreError::Fenced`] unless this instance still holds
    /// the endpoint under this epoch; within a transaction, the lease then
    /// stays as it is until the commit.
    pub fn check(&self, db: &mut Db) -> Result<(), StoreError> {
        let wanted = [(self.endpoint_id.as_str(), self.epoch)];
        if held(db, &self.owner, &wanted)?.is_empty() {
            return Err(StoreError::Fenced(self.endpoint_id.clone()));
        }
        Ok(())
    }
}

/// Which of `wanted` (endpoint, epoch) this instance (`owner`) still holds
/// under that epoch, locking their leases until the commit.
pub fn held(
    db: &mut Db,
    owner: &str,
    wanted: &[(&str, i64)],
) -> Result<HashSet<String>, StoreError> {
    use super::schema::endpoint_leases as leases;
    if wanted.is_empty() {
        return Ok(HashSet::new());
    }
    let mut ids: Vec<&str> = wanted.iter().map(|(id, _)| *id).collect();
    ids.sort_unstable();
    ids.dedup();
    let query = leases::table
        .filter(leases::owner.eq(owner))
        .filter(leases::endpoint_id.eq_any(&ids))
        .order(leases::endpoint_id)
        .select((leases::endpoint_id, leases::epoch));
    let found: Vec<(String, i64)> = match db {
        Db::Postgres(c) => query.for_share().load(&mut **c)?,
        Db::Sqlite(c) => query.load(&mut **c)?,
    };
    let found: HashMap<String, i64> = found.into_iter().collect();
    Ok(wanted
        .iter()
        .filter(|(id, epoch)| found.get(*id) == Some(epoch))
        .map(|(id, _)| (*id).to_owned())
        .collect())
}

/// What a lease round found and decided.
#[derive(Debug, Clone)]
pub struct Round {
    /// The database's time when the round began.
    pub now: i64,
    /// Every lease this instance holds after the round, by endpoint.
    pub held: HashMap<String, i64>,
    /// Leases taken in this round (also in `held`).
    pub taken: Vec<(String, i64)>,
    pub plan: LeasePlan,
    /// This instance has the smallest id among the live ones.
    pub leader: bool,
}

#[derive(QueryableByName)]
struct Number {
    #[diesel(sql_type = BigInt)]
    number: i64,
}

#[derive(QueryableByName)]
struct LeaseRow {
    #[diesel(sql_type = Text)]
    endpoint_id: String,
    #[diesel(sql_type = BigInt)]
    epoch: i64,
}

#[derive(QueryableByName)]
struct OwnerCount {
    #[diesel(sql_type = Text)]
    owner: String,
    #[diesel(sql_type = BigInt)]
    number: i64,
}

/// A statement written with PostgreSQL's `$n` parameters, for either
/// backend (SQLite numbers them `?n`).
fn statement(db: &Db, sql: &str) -> SqlQuery {
    match db {
        Db::Postgres(_) => diesel::sql_query(sql),
        Db::Sqlite(_) => diesel::sql_query(sql.replace('$', "?")),
    }
}

/// The database's clock, in milliseconds since the epoch.
pub fn database_now(db: &mut Db) -> Result<i64, StoreError> {
    let sql = match db {
        Db::Postgres(_) => {
            "SELECT CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT) AS number"
        }
        Db::Sqlite(_) => {
            "SELECT CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER) AS number"
        }
    };
    Ok(dispatch!(db, c => diesel::sql_query(sql).get_result::<Number>(c))?.number)
}

/// Registers this instance, or refuses it when a live instance (one whose
/// heartbeat is younger than `ttl_ms`) holds another secret key. Returns
/// whether it leads (see [`Round::leader`]).
///
/// What an earlier life of this instance (the same id: a restart) held is
/// free at once, for the first round to take under a new epoch, instead of
/// after it expires. On SQLite every lease is: its file is claimed by one
/// live instance ([`super::sqlite_claim`]), so any other holder is dead.
pub fn join(db: &mut Db, me: &str, key_check: &str, ttl_ms: i64) -> Result<bool, StoreError> {
    use super::schema::instances;
    db.transaction(|db| {
        let now = database_now(db)?;
        let others: Vec<(String, String)> = dispatch!(db, c => instances::table
            .filter(instances::heartbeat_at.gt(now - ttl_ms))
            .filter(instances::id.ne(me))
            .select((instances::id, instances::key_check))
            .load(c))?;
        if let Some((other, _)) = others.iter().find(|(_, check)| check != key_check) {
            return Err(StoreError::KeyMismatch(other.clone()));
        }
        let sqlite = matches!(db, Db::Sqlite(_));
        if sqlite {
            // The instances recorded besides this one are dead.
            dispatch!(db, c => diesel::delete(instances::table.filter(instances::id.ne(me))).execute(c))?;
        }
        let released = statement(
            db,
            "UPDATE endpoint_leases SET expires_at = 0 WHERE owner = $1 OR $2",
        )
        .bind::<Text, _>(me)
        .bind::<diesel::sql_types::Bool, _>(sqlite);
        dispatch!(db, c => released.execute(c))?;
        heartbeat(db, me, key_check, now)?;
        Ok(sqlite || others.iter().all(|(other, _)| other.as_str() > me))
    })
}

fn heartbeat(db: &mut Db, me: &str, key_check: &str, now: i64) -> Result<(), StoreError> {
    let sql = "INSERT INTO instances (id, started_at, heartbeat_at, key_check) \
               VALUES ($1, $2, $2, $3) ON CONFLICT (id) DO UPDATE \
               SET heartbeat_at = excluded.heartbeat_at, key_check = excluded.key_check";
    let query = statement(db, sql)
        .bind::<Text, _>(me)
        .bind::<BigInt, _>(now)
        .bind::<Text, _>(key_check);
    dispatch!(db, c => query.execute(c))?;
    Ok(())
}

/// One lease round, in one transaction: the heartbeat, the renewal of every
/// lease this instance holds, the census, and the take of expired or
/// unowned endpoints up to the fair share ([`ownership::plan`]).
pub fn round(db: &mut Db, me: &str, key_check: &str, ttl_ms: i64) -> Result<Round, StoreError> {
    db.transaction(|db| {
        let now = database_now(db)?;
        heartbeat(db, me, key_check, now)?;
        let mut held = renew(db, me, now + ttl_ms)?;
        let (census, leader) = census(db, me, now, ttl_ms, &held)?;
        let plan = ownership::plan(&census);
        let taken = if plan.take > 0 {
            take(db, me, now, now + ttl_ms, plan.take)?
        } else {
            Vec::new()
        };
        held.extend(taken.iter().cloned());
        Ok(Round {
            now,
            held,
            taken,
            plan,
            leader,
        })
    })
}

fn renew(db: &mut Db, me: &str, expires_at: i64) -> Result<HashMap<String, i64>, StoreError> {
    let sql = match db {
        Db::Postgres(_) => {
            "UPDATE endpoint_leases SET expires_at = $2 WHERE endpoint_id IN \
             (SELECT endpoint_id FROM endpoint_leases WHERE owner = $1 AND expires_at > 0 \
              ORDER BY endpoint_id FOR UPDATE) \
             RETURNING endpoint_id, epoch"
        }
        Db::Sqlite(_) => {
            "UPDATE endpoint_leases SET expires_at = $2 WHERE owner = $1 AND expires_at > 0 \
             RETURNING endpoint_id, epoch"
        }
    };
    let query = statement(db, sql)
        .bind::<Text, _>(me)
        .bind::<BigInt, _>(expires_at);
    let rows: Vec<LeaseRow> = dispatch!(db, c => query.load(c))?;
    Ok(rows.into_iter().map(|r| (r.endpoint_id, r.epoch)).collect())
}

fn census(
    db: &mut Db,
    me: &str,
    now: i64,
    ttl_ms: i64,
    held: &HashMap<String, i64>,
) -> Result<(Census, bool), StoreError> {
    use super::schema::{endpoints, instances};
    let live: Vec<String> = dispatch!(db, c => instances::table
        .filter(instances::heartbeat_at.gt(now - ttl_ms))
        .select(instances::id)
        .load(c))?;
    let endpoints: i64 = dispatch!(db, c => endpoints::table.count().get_result(c))?;
    let counts = counts_at(db, now)?;
    let fewest_owned_by_another = live
        .iter()
        .filter(|id| id.as_str() != me)
        .map(|id| counts.get(id).copied().unwrap_or(0))
        .min()
        .map(|n| u64::try_from(n).unwrap_or(0));
    let leader = live.iter().min().is_none_or(|first| first == me);
    let census = Census {
        endpoints: u64::try_from(endpoints).unwrap_or(0),
        // This instance has just beaten.
        live_instances: u64::try_from(live.len()).unwrap_or(0).max(1),
        owned: u64::try_from(held.len()).unwrap_or(u64::MAX),
        fewest_owned_by_another,
    };
    Ok((census, leader))
}

/// Takes at most `limit` endpoints whose lease has expired or that have
/// none, raising their epoch; two instances taking at once never take the
/// same one (the conflict's update re-checks the expiry).
fn take(
    db: &mut Db,
    me: &str,
    now: i64,
    expires_at: i64,
    limit: u64,
) -> Result<Vec<(String, i64)>, StoreError> {
    let sql = "INSERT INTO endpoint_leases (endpoint_id, owner, epoch, expires_at) \
               SELECT endpoints.id, $1, 1, $2 FROM endpoints \
               LEFT JOIN endpoint_leases AS lease ON lease.endpoint_id = endpoints.id \
               WHERE lease.endpoint_id IS NULL OR lease.expires_at < $3 \
               ORDER BY random() LIMIT $4 \
               ON CONFLICT (endpoint_id) DO UPDATE SET owner = excluded.owner, \
               epoch = endpoint_leases.epoch + 1, expires_at = excluded.expires_at \
               WHERE endpoint_leases.expires_at < $3 \
               RETURNING endpoint_id, epoch";
    let query = statement(db, sql)
        .bind::<Text, _>(me)
        .bind::<BigInt, _>(expires_at)
        .bind::<BigInt, _>(now)
        .bind::<BigInt, _>(i64::try_from(limit).unwrap_or(i64::MAX));
    let rows: Vec<LeaseRow> = dispatch!(db, c => query.load(c))?;
    Ok(rows.into_iter().map(|r| (r.endpoint_id, r.epoch)).collect())
}

/// Gives leases back at once, for any instance to take: each only if this
/// instance still holds it under that epoch.
pub fn release(db: &mut Db, me: &str, leases: &[(String, i64)]) -> Result<(), StoreError> {
    for (endpoint_id, epoch) in leases {
        let query = statement(
            db,
            "UPDATE endpoint_leases SET expires_at = 0 \
             WHERE endpoint_id = $1 AND owner = $2 AND epoch = $3",
        )
        .bind::<Text, _>(endpoint_id)
        .bind::<Text, _>(me)
        .bind::<BigInt, _>(*epoch);
        dispatch!(db, c => query.execute(c))?;
    }
    Ok(())
}

/// At shutdown: gives back every lease and leaves the live instances, so
/// that the others take over at once instead of after the leases expire.
pub fn leave(db: &mut Db, me: &str) -> Result<(), StoreError> {
    use super::schema::instances;
    db.transaction(|db| {
        let release = statement(
            db,
            "UPDATE endpoint_leases SET expires_at = 0 WHERE owner = $1",
        )
        .bind::<Text, _>(me);
        dispatch!(db, c => release.execute(c))?;
        dispatch!(db, c => diesel::delete(instances::table.find(me)).execute(c))?;
        Ok(())
    })
}

/// The endpoints `owner` holds under a live lease.
pub fn held_by(db: &mut Db, owner: &str) -> Result<Vec<String>, StoreError> {
    use super::schema::endpoint_leases as leases;
    let now = database_now(db)?;
    Ok(dispatch!(db, c => leases::table
        .filter(leases::owner.eq(owner))
        .filter(leases::expires_at.gt(now))
        .select(leases::endpoint_id)
        .load(c))?)
}

/// How many endpoints each instance holds under a live lease.
pub fn owned_counts(db: &mut Db) -> Result<HashMap<String, i64>, StoreError> {
    let now = database_now(db)?;
    counts_at(db, now)
}

fn counts_at(db: &mut Db, now: i64) -> Result<HashMap<String, i64>, StoreError> {
    let counts = statement(
        db,
        "SELECT owner, COUNT(*) AS number FROM endpoint_leases \
         WHERE expires_at > $1 GROUP BY owner",
    )
    .bind::<BigInt, _>(now);
    Ok(dispatch!(db, c => counts.load::<OwnerCount>(c))?
        .into_iter()
        .map(|row| (row.owner, row.number))
        .collect())
}

/// The instances whose heartbeat is younger than `ttl_ms`, by id.
pub fn live_instances(db: &mut Db, ttl_ms: i64) -> Result<Vec<String>, StoreError> {
    use super::schema::instances;
    let now = database_now(db)?;
    Ok(dispatch!(db, c => instances::table
        .filter(instances::heartbeat_at.gt(now - ttl_ms))
        .order(instances::id)
        .select(instances::id)
        .load(c))?)
}
