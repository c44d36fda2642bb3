//! Line numbers: each delivery's place in its endpoint's line.
//!
//! A delivery gets its number as it is written, inside the writing
//! transaction, and an ordered endpoint's numbers follow the order in which
//! its deliveries commit. Ordered endpoints send and page by them, and every
//! endpoint tells a late hand-over from a new delivery by them (see
//! `core::delivery::recent_pages`), so no wall clock decides either.
//!
//! - SQLite takes one writer at a time: numbers drawn from the counter row
//!   of `delivery_sequence` in the writing transaction follow commit order.
//! - PostgreSQL draws from that table's sequence (its `BIGSERIAL` column):
//!   a counter row would be a lock every ingestion waits for. A sequence number is taken
//!   before its commit, so two transactions may commit in the other order;
//!   an ordered endpoint's row is therefore locked (`FOR NO KEY UPDATE`)
//!   before its numbers are taken, which makes its writers take turns.
//!   Other endpoints need no such turn: a number only has to be known
//!   before the commit (see [`high_water`]).

use super::{Db, StoreError};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Text};
use diesel::PgConnection;

#[derive(QueryableByName)]
struct Number {
    #[diesel(sql_type = BigInt)]
    number: i64,
}

/// `count` new numbers, increasing, for deliveries to `endpoint_ids` written
/// in the caller's transaction; on PostgreSQL the ordered ones among those
/// endpoints stay locked until it ends.
pub fn take(db: &mut Db, endpoint_ids: &[&str], count: usize) -> Result<Vec<i64>, StoreError> {
    if count == 0 {
        return Ok(Vec::new());
    }
    let wanted = i64::try_from(count).unwrap_or(i64::MAX);
    match db {
        Db::Sqlite(c) => {
            diesel::sql_query("UPDATE delivery_sequence SET last = last + ?")
                .bind::<BigInt, _>(wanted)
                .execute(&mut **c)?;
            let last = diesel::sql_query("SELECT last AS number FROM delivery_sequence")
                .get_result::<Number>(&mut **c)?
                .number;
            Ok((last - wanted + 1..=last).collect())
        }
        Db::Postgres(c) => take_locking(c, endpoint_ids, count),
    }
}

/// [`take`] on PostgreSQL.
pub(super) fn take_locking(
    c: &mut PgConnection,
    endpoint_ids: &[&str],
    count: usize,
) -> Result<Vec<i64>, StoreError> {
    let mut ids = endpoint_ids.to_vec();
    ids.sort_unstable();
    ids.dedup();
    // The aggregate reads every locked row before the join yields its
    // first row, so all locks are held before any number is drawn; locking
    // in id order keeps two writers from deadlocking.
    let mut numbers: Vec<i64> = diesel::sql_query(
        "WITH locked AS (SELECT id FROM endpoints \
             WHERE id = ANY($1) AND ordered ORDER BY id FOR NO KEY UPDATE) \
         SELECT nextval('delivery_sequence_last_seq') AS number \
         FROM generate_series(1, $2), (SELECT COUNT(*) FROM locked) AS turn",
    )
    .bind::<Array<Text>, _>(ids)
    .bind::<BigInt, _>(i64::try_from(count).unwrap_or(i64::MAX))
    .load::<Number>(c)?
    .into_iter()
    .map(|row| row.number)
    .collect();
    numbers.sort_unstable();
    Ok(numbers)
}

/// A number at least that of every delivery committed before this call.
/// An endpoint whose earlier pages are unknown (a reload, a new actor)
/// doubts every hand-over numbered up to it.
pub fn high_water(db: &mut Db) -> Result<i64, StoreError> {
    let query = match db {
        Db::Sqlite(_) => "SELECT last AS number FROM delivery_sequence",
        Db::Postgres(_) => "SELECT last_value AS number FROM delivery_sequence_last_seq",
    };
    Ok(super::dispatch!(db, c => diesel::sql_query(query).get_result::<Number>(c))?.number)
}
