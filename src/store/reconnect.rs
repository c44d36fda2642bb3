//! A writer lane's connection, replaced when the database drops it.
//!
//! A failover, a server restart or `pg_terminate_backend` closes the
//! connection under the writer. Each lane keeps going on a fresh one from
//! the pool: the first try comes at once (after a terminated backend the
//! server is usually right there), then after a wait that doubles from
//! [`FIRST_BACKOFF`] to [`MAX_BACKOFF`] while the database stays away, so
//! an outage costs neither a restart nor a busy loop.

use super::{Db, Store, StoreError};
use std::time::{Duration, Instant};

const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// How long one try waits for the pool: the writer's queue waits meanwhile.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

pub struct ReconnectingDb {
    store: Store,
    db: Option<Db>,
    /// The wait after the next failure: zero after a success.
    backoff: Duration,
    /// No try before this instant.
    next_try: Instant,
}

impl ReconnectingDb {
    /// Takes a first connection; fails when the database cannot be reached.
    pub fn connect(store: Store) -> Result<ReconnectingDb, StoreError> {
        let db = store.get()?;
        Ok(ReconnectingDb {
            store,
            db: Some(db),
            backoff: Duration::ZERO,
            next_try: Instant::now(),
        })
    }

    /// The connection, replaced first if it was lost. While a backoff runs,
    /// or when no new connection can be had, answers
    /// [`StoreError::Unavailable`] at once.
    pub fn get(&mut self) -> Result<&mut Db, StoreError> {
        let wait = self.until_next_try();
        if !wait.is_zero() {
            return Err(StoreError::Unavailable(format!(
                "writes are retried in {} ms",
                wait.as_millis()
            )));
        }
        if self.db.is_none() {
            self.reconnect()?;
        }
        self.db
            .as_mut()
            .ok_or_else(|| StoreError::Unavailable("no connection to the database".to_owned()))
    }

    /// After `error` failed a transaction: drops the connection if it is no
    /// longer usable, and tells whether the failure means the database is
    /// unavailable (rather than that the work itself was refused). The
    /// caller then [backs off](Self::back_off).
    pub fn outage_behind(&mut self, error: &StoreError) -> bool {
        let lost = match &mut self.db {
            Some(db) => !db.is_usable(),
            None => true,
        };
        if lost && self.db.take().is_some() {
            log::warn!("the writer lost its database connection ({error}); reconnecting");
        }
        lost || error.is_unavailable()
    }

    /// How long until the next try to reconnect is due.
    pub fn until_next_try(&self) -> Duration {
        self.next_try.saturating_duration_since(Instant::now())
    }

    /// Refuses work until the backoff has run, then doubles it: after a
    /// failure that meant the database is unavailable.
    pub fn back_off(&mut self) {
        self.next_try = Instant::now() + self.backoff;
        self.backoff = (self.backoff * 2).clamp(FIRST_BACKOFF, MAX_BACKOFF);
    }

    /// Resets the backoff once work went through again.
    pub fn succeeded(&mut self) {
        self.backoff = Duration::ZERO;
    }

    fn reconnect(&mut self) -> Result<(), StoreError> {
        // The pool tests a connection as it hands it out: no ping needed.
        match self.store.get_within(CONNECT_TIMEOUT) {
            Ok(db) => {
                log::info!("the writer reconnected to the database");
                self.db = Some(db);
                Ok(())
            }
            Err(error) => {
                self.back_off();
                log::warn!(
                    "the writer cannot reconnect to the database ({error}); next try in {} ms",
                    self.until_next_try().as_millis()
                );
                Err(StoreError::Unavailable(error.to_string()))
            }
        }
    }
}
