//! Status changes asked through an instance that does not own the
//! endpoint: the asker writes the command, the owner carries it out through
//! the endpoint's actor and writes the answer, which the asker reads.

use super::schema::endpoint_commands as commands;
use super::{dispatch, Db, StoreError};
use diesel::prelude::*;

/// Answered commands are kept this long, then pruned.
const KEEP_ANSWERED_MS: i64 = 3_600_000;

/// A command waiting for its endpoint's owner.
#[derive(Debug, Clone, Queryable)]
pub struct Waiting {
    pub id: String,
    pub endpoint_id: String,
    pub command: String,
}

pub fn ask(
    db: &mut Db,
    id: &str,
    endpoint_id: &str,
    command: &str,
    now: i64,
) -> Result<(), StoreError> {
    dispatch!(db, c => diesel::insert_into(commands::table)
        .values((
            commands::id.eq(id),
            commands::endpoint_id.eq(endpoint_id),
            commands::command.eq(command),
            commands::created_at.eq(now),
        ))
        .execute(c))?;
    Ok(())
}

/// The command's answer, once written.
pub fn answer_of(db: &mut Db, id: &str) -> Result<Option<String>, StoreError> {
    let answer: Option<Option<String>> = dispatch!(db, c => commands::table
        .find(id)
        .select(commands::answer)
        .first(c)
        .optional())?;
    Ok(answer.flatten())
}

/// Takes back a command no owner has answered; `false`: it was answered
/// (or its endpoint deleted) meanwhile.
pub fn withdraw(db: &mut Db, id: &str) -> Result<bool, StoreError> {
    let deleted = dispatch!(db, c => diesel::delete(commands::table
        .filter(commands::id.eq(id))
        .filter(commands::answered_at.is_null()))
        .execute(c))?;
    Ok(deleted > 0)
}

/// The oldest unanswered commands, at most `limit`.
pub fn waiting(db: &mut Db, limit: i64) -> Result<Vec<Waiting>, StoreError> {
    Ok(dispatch!(db, c => commands::table
        .filter(commands::answered_at.is_null())
        .order(commands::created_at)
        .limit(limit)
        .select((commands::id, commands::endpoint_id, commands::command))
        .load(c))?)
}

/// Writes the answer, and prunes answers older than an hour.
pub fn answer(db: &mut Db, id: &str, answer: &str, now: i64) -> Result<(), StoreError> {
    dispatch!(db, c => diesel::update(commands::table.find(id))
        .set((commands::answer.eq(answer), commands::answered_at.eq(now)))
        .execute(c))?;
    dispatch!(db, c => diesel::delete(commands::table
        .filter(commands::answered_at.lt(now - KEEP_ANSWERED_MS)))
        .execute(c))?;
    Ok(())
}
