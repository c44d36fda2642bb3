//! The backlog move under way on an endpoint (a replay, a cancel or a
//! hold), and how far its batches have got, so that a restart resumes it.

use crate::core::delivery::lifecycle::BacklogMove;
use crate::store::deliveries::CreationCursor;
use crate::store::schema::{backlog_move_cursors, endpoints};
use crate::store::{dispatch, Db, StoreError};
use diesel::prelude::*;

/// Records the backlog move under way (`None`: finished), and when the
/// deliveries a replay makes pending fall due.
pub fn set_backlog_move(
    db: &mut Db,
    id: &str,
    under_way: Option<(BacklogMove, i64)>,
) -> Result<(), StoreError> {
    dispatch!(db, c => diesel::update(endpoints::table.find(id))
        .set((
            endpoints::backlog_move.eq(under_way.map(|(kind, _)| kind.as_str())),
            endpoints::backlog_move_due_at.eq(under_way.map(|(_, due_at)| due_at)),
        ))
        .execute(c))?;
    // A new move starts from the beginning; an ended one leaves no cursor.
    dispatch!(db, c => diesel::delete(backlog_move_cursors::table.find(id)).execute(c))?;
    Ok(())
}

/// Where the backlog move under way has got to: the last delivery its
/// batches moved, if any yet.
pub fn backlog_move_after(db: &mut Db, id: &str) -> Result<Option<CreationCursor>, StoreError> {
    Ok(dispatch!(db, c => backlog_move_cursors::table
        .find(id)
        .select((backlog_move_cursors::after_created_at, backlog_move_cursors::after_id))
        .first(c)
        .optional())?)
}

/// Records where the backlog move under way has got to, with its batch.
pub fn set_backlog_move_after(
    db: &mut Db,
    id: &str,
    after: &CreationCursor,
) -> Result<(), StoreError> {
    let (at, delivery_id) = after;
    dispatch!(db, c => diesel::insert_into(backlog_move_cursors::table)
        .values((
            backlog_move_cursors::endpoint_id.eq(id),
            backlog_move_cursors::after_created_at.eq(at),
            backlog_move_cursors::after_id.eq(delivery_id),
        ))
        .on_conflict(backlog_move_cursors::endpoint_id)
        .do_update()
        .set((
            backlog_move_cursors::after_created_at.eq(at),
            backlog_move_cursors::after_id.eq(delivery_id),
        ))
        .execute(c))?;
    Ok(())
}

/// The backlog move under way, if any, and its due time.
pub fn backlog_move(db: &mut Db, id: &str) -> Result<Option<(BacklogMove, i64)>, StoreError> {
    let recorded: Option<(Option<String>, Option<i64>)> = dispatch!(db, c => endpoints::table
        .find(id)
        .select((endpoints::backlog_move, endpoints::backlog_move_due_at))
        .first(c)
        .optional())?;
    let Some((Some(name), due_at)) = recorded else {
        return Ok(None);
    };
    let kind = BacklogMove::parse(&name)
        .ok_or_else(|| StoreError::Corrupt(format!("endpoint {id}: backlog move {name:?}")))?;
    Ok(Some((kind, due_at.unwrap_or_default())))
}
