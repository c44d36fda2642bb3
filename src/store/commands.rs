//! Status changes asked through an instance that does not own the
//! endpoint: the asker writes the command, the owner takes it (so that no
//! one withdraws it or carries it out again), carries it out through the
//! endpoint's actor and writes the answer, which the asker reads.

use super::schema::endpoint_commands as commands;
use super::{dispatch, Db, StoreError};
use diesel::prelude::*;

/// Answered commands, and taken ones never answered (their owner died),
/// are kept this long, then pruned.
const KEEP_MS: i64 = 3_600_000;

/// A command waiting for its endpoint's owner.
#[derive(Debug, Clone, Queryable)]
pub struct Waiting {
    pub id: String,
    pub endpoint_id: String,
    pub command: String,
}

/// Where a command stands, as its asker reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandState {
    /// No owner has taken it yet: it may still be withdrawn.
    Waiting,
    /// The owner is carrying it out.
    Taken,
    Answered(String),
    /// Its endpoint was deleted, and the command with it.
    Gone,
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

pub fn state(db: &mut Db, id: &str) -> Result<CommandState, StoreError> {
    let row: Option<(Option<i64>, Option<String>)> = dispatch!(db, c => commands::table
        .find(id)
        .select((commands::taken_at, commands::answer))
        .first(c)
        .optional())?;
    Ok(match row {
        None => CommandState::Gone,
        Some((_, Some(answer))) => CommandState::Answered(answer),
        Some((Some(_), None)) => CommandState::Taken,
        Some((None, None)) => CommandState::Waiting,
    })
}

/// Takes back a command no owner has taken; `false`: it was taken,
/// answered or deleted meanwhile.
pub fn withdraw(db: &mut Db, id: &str) -> Result<bool, StoreError> {
    let deleted = dispatch!(db, c => diesel::delete(commands::table
        .filter(commands::id.eq(id))
        .filter(commands::taken_at.is_null()))
        .execute(c))?;
    Ok(deleted > 0)
}

/// The oldest commands no owner has taken, at most `limit`.
pub fn waiting(db: &mut Db, limit: i64) -> Result<Vec<Waiting>, StoreError> {
    Ok(dispatch!(db, c => commands::table
        .filter(commands::taken_at.is_null())
        .order(commands::created_at)
        .limit(limit)
        .select((commands::id, commands::endpoint_id, commands::command))
        .load(c))?)
}

/// The owner takes the command before carrying it out; `false`: it was
/// withdrawn or taken meanwhile, and must not be carried out.
pub fn take(db: &mut Db, id: &str, now: i64) -> Result<bool, StoreError> {
    let taken = dispatch!(db, c => diesel::update(commands::table
        .filter(commands::id.eq(id))
        .filter(commands::taken_at.is_null()))
        .set(commands::taken_at.eq(now))
        .execute(c))?;
    Ok(taken > 0)
}

/// Writes the answer, and prunes what is older than an hour.
pub fn answer(db: &mut Db, id: &str, answer: &str, now: i64) -> Result<(), StoreError> {
    dispatch!(db, c => diesel::update(commands::table.find(id))
        .set((commands::answer.eq(answer), commands::answered_at.eq(now)))
        .execute(c))?;
    dispatch!(db, c => diesel::delete(commands::table
        .filter(commands::taken_at.lt(now - KEEP_MS)))
        .execute(c))?;
    Ok(())
}
