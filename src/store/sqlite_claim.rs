//! One instance a SQLite file. Two `serve`s on one file would each load and
//! send every pending delivery, and SQLite cannot tell them apart; several
//! instances need PostgreSQL.
//!
//! The instance that serves a file holds an exclusive lock (`flock`) on a
//! file beside it, `<database>.instance`, in which it writes its name, so
//! that a second one can say who holds the file. The kernel drops the lock
//! when the process ends, however it ends (`kill -9` included), so a crash
//! never leaves the database claimed; the stale name left behind is
//! overwritten by the next holder.

use super::{is_postgres_url, sqlite_path, StoreError};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};

/// How much of the claim file a refused claim reads to name the holder.
const MAX_HOLDER_BYTES: u64 = 1024;

/// This process's claim on a SQLite file; released when dropped.
#[derive(Debug)]
pub struct SqliteClaim {
    _lock: File,
}

/// Claims the SQLite file of `database_url` for `holder` (what the claim
/// file will say: the instance's name, its process id and when it started).
/// `None` for PostgreSQL, which several instances share.
pub fn claim(database_url: &str, holder: &str) -> Result<Option<SqliteClaim>, StoreError> {
    if is_postgres_url(database_url) {
        return Ok(None);
    }
    let Some(database) = sqlite_path(database_url) else {
        return Ok(None);
    };
    let path = format!("{database}.instance");
    let unreadable = |error: std::io::Error| StoreError::Claim {
        file: path.clone(),
        reason: error.to_string(),
    };
    let mut lock = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(unreadable)?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut named = String::new();
            // Best effort: the holder may be writing its name right now.
            // Bounded: the file is ours, but anyone may have grown it.
            let _ = (&lock).take(MAX_HOLDER_BYTES).read_to_string(&mut named);
            return Err(StoreError::SqliteInUse {
                database,
                holder: named.trim().to_owned(),
            });
        }
        Err(TryLockError::Error(error)) => return Err(unreadable(error)),
    }
    lock.set_len(0)
        .and_then(|()| lock.rewind())
        .and_then(|()| lock.write_all(holder.as_bytes()))
        .and_then(|()| lock.flush())
        .map_err(unreadable)?;
    Ok(Some(SqliteClaim { _lock: lock }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_claim_on_a_held_file_is_refused_and_names_the_holder() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let url = format!("sqlite://{}/hookrelay.db", dir.path().display());
        let first = claim(&url, "instance a, pid 1").expect("the first claim");
        assert!(first.is_some());
        match claim(&url, "instance b, pid 2") {
            Err(StoreError::SqliteInUse { database, holder }) => {
                assert!(database.ends_with("hookrelay.db"), "{database}");
                assert_eq!(holder, "instance a, pid 1");
            }
            other => panic!("a held file is refused, got {other:?}"),
        }
        drop(first);
        let again = claim(&url, "instance b, pid 2").expect("a released file is claimed again");
        assert!(again.is_some());
    }

    #[test]
    fn postgres_is_never_claimed() {
        let claimed = claim("postgres://postgres@127.0.0.1:5432/test", "a").expect("no claim");
        assert!(claimed.is_none());
    }
}
