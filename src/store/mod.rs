//! Storage: one code path over SQLite and PostgreSQL.
//!
//! Queries are written once against diesel's DSL and compiled for both
//! backends by [`dispatch!`]; diesel's `MultiConnection` was not used because
//! its combined backend lacks `ON CONFLICT` and `RETURNING`, which ingestion
//! relies on. Every function here blocks: callers run them through
//! [`Store::run`] (a blocking thread) or the dedicated [`writer`] thread.

pub mod alerts;
pub mod api_keys;
pub mod batch;
pub mod commands;
pub mod deliveries;
pub mod endpoint_state;
pub mod endpoints;
pub mod event_types;
pub mod events;
pub mod gauges;
pub mod health;
pub mod leases;
pub mod models;
mod reconnect;
pub mod replay;
pub mod retention;
pub mod schema;
pub mod sequence;
pub mod signals;
pub mod sqlite_claim;
pub mod tenants;
pub mod writer;

use crate::core::secrets::redact;
use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::r2d2::{ConnectionManager, CustomizeConnection, PooledConnection};
use diesel::{PgConnection, SqliteConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use std::time::Duration;

const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Query(#[from] diesel::result::Error),
    #[error("database connection error: {0}")]
    Pool(#[from] r2d2::Error),
    #[error("migration failed: {0}")]
    Migration(String),
    /// The URL without its password.
    #[error("unsupported DATABASE_URL {0:?}: use sqlite://<path> or postgres://…")]
    UnsupportedUrl(String),
    #[error("corrupt row: {0}")]
    Corrupt(String),
    #[error("the storage writer has stopped")]
    WriterGone,
    #[error("blocking task failed: {0}")]
    Blocking(String),
    /// The database cannot take writes for now (it dropped the connection,
    /// cannot be reached, or its disk is full); the same work may succeed
    /// once it is back.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// An endpoint's actor cannot take the request: it is shutting down,
    /// or it stopped before answering (its endpoint deleted, or a restart).
    #[error("{0}")]
    Busy(String),
    /// Another instance owns the endpoint now: the write was refused, and
    /// its maker must stop acting for the endpoint.
    #[error("endpoint {0} is owned by another instance now")]
    Fenced(String),
    /// A live instance sharing the database holds another secret key.
    #[error("instance {0}, live on this database, holds a different HOOKRELAY_SECRET_KEY: every instance must hold the same key, or they would seal secrets the others cannot open")]
    KeyMismatch(String),
    /// Another process serves this SQLite file (see [`sqlite_claim`]).
    #[error("the SQLite database {database} is in use by another hookrelay instance ({holder}); SQLite serves one instance at a time: stop that one first")]
    SqliteInUse { database: String, holder: String },
    #[error("cannot claim the SQLite database through {file}: {reason}")]
    Claim { file: String, reason: String },
}

/// SQLite's text for SQLITE_FULL; diesel reports that code only as text.
const SQLITE_FULL: &str = "database or disk is full";

impl StoreError {
    /// Whether the failure lies with the database being unreachable or out
    /// of space rather than with the work: retrying later may succeed.
    pub fn is_unavailable(&self) -> bool {
        use diesel::result::{DatabaseErrorKind, Error};
        match self {
            StoreError::Unavailable(_) | StoreError::WriterGone | StoreError::Pool(_) => true,
            StoreError::Query(Error::DatabaseError(kind, info)) => match kind {
                DatabaseErrorKind::ClosedConnection
                | DatabaseErrorKind::UnableToSendCommand
                // A failover that left us connected to a standby.
                | DatabaseErrorKind::ReadOnlyTransaction => true,
                _ => info.message().contains(SQLITE_FULL),
            },
            StoreError::Query(Error::BrokenTransactionManager) => true,
            _ => false,
        }
    }
}

/// A connection of either backend; run queries on it with [`dispatch!`].
pub enum Db {
    Sqlite(PooledConnection<ConnectionManager<SqliteConnection>>),
    Postgres(PooledConnection<ConnectionManager<PgConnection>>),
}

/// Runs the same diesel expression on whichever backend `$db` holds.
#[macro_export]
macro_rules! dispatch {
    ($db:expr, $conn:ident => $body:expr) => {
        match $db {
            $crate::store::Db::Sqlite(pooled) => {
                let $conn: &mut diesel::SqliteConnection = &mut **pooled;
                $body
            }
            $crate::store::Db::Postgres(pooled) => {
                let $conn: &mut diesel::PgConnection = &mut **pooled;
                $body
            }
        }
    };
}
pub use dispatch;

/// The keyset page every tenant list reads, as a boxed query to narrow
/// further: the tenant's rows of `$table` whose `$key` sorts after `$after`
/// (an `Option<&str>`; none is the first page), in `$key` order, at most
/// `$limit`. A macro because diesel types a boxed query by its table and
/// backend, so it must be written inside [`dispatch!`].
#[macro_export]
macro_rules! tenant_page {
    ($table:ident . $key:ident, $tenant_id:expr, $after:expr, $limit:expr) => {
        $table::table
            .filter($table::tenant_id.eq($tenant_id))
            .filter($table::$key.gt($after.unwrap_or_default()))
            .order($table::$key)
            .limit($limit)
            .into_boxed()
    };
}
pub use tenant_page;

/// The step at start that generates the admin key when none is stored,
/// taken by one instance at a time (see [`Db::exclusively`]).
pub const ADMIN_KEY_LOCK: i64 = 0x686f_6f6b_6164_6d6e;

/// The namespace of the tenants' totals locks (see
/// [`Db::lock_tenant_totals`]); the second key is the tenant id's hash.
const TENANT_TOTALS_LOCKS: i32 = 0x686f_6f6b;

impl Db {
    /// Runs `work` in one transaction. On SQLite it takes the write lock up
    /// front (`BEGIN IMMEDIATE`) so a read-then-write never fails half-way
    /// on a lock upgrade.
    pub fn transaction<T, E>(&mut self, work: impl FnOnce(&mut Db) -> Result<T, E>) -> Result<T, E>
    where
        E: From<diesel::result::Error>,
    {
        match self {
            Db::Sqlite(c) => {
                AnsiTransactionManager::begin_transaction_sql(&mut **c, "BEGIN IMMEDIATE")?
            }
            Db::Postgres(c) => AnsiTransactionManager::begin_transaction(&mut **c)?,
        }
        match work(self) {
            Ok(value) => {
                dispatch!(self, c => AnsiTransactionManager::commit_transaction(c))?;
                Ok(value)
            }
            Err(error) => {
                // The work's error is the one worth reporting.
                let _ = dispatch!(self, c => AnsiTransactionManager::rollback_transaction(c));
                Err(error)
            }
        }
    }

    /// Runs `work` in one transaction that no other `exclusively` with the
    /// same `lock` overlaps, whichever instance runs it: on PostgreSQL under
    /// a transaction-level advisory lock, on SQLite under its write lock.
    /// For a check-then-write that instances sharing a database would race.
    pub fn exclusively<T, E>(
        &mut self,
        lock: i64,
        work: impl FnOnce(&mut Db) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<diesel::result::Error>,
    {
        self.transaction(|db| {
            if let Db::Postgres(c) = db {
                c.batch_execute(&format!("SELECT pg_advisory_xact_lock({lock})"))?;
            }
            work(db)
        })
    }

    /// Within the current transaction, waits for and holds the tenant's
    /// totals lock, which a check of a tenant's totals (how many endpoints,
    /// keys or event types it has, the sum of its endpoints' `max_in_flight`)
    /// takes before the write it allows: instances sharing a PostgreSQL
    /// database then take such steps for one tenant one at a time. SQLite
    /// has one writer, which is alone already.
    pub fn lock_tenant_totals(&mut self, tenant_id: &str) -> Result<(), StoreError> {
        use diesel::RunQueryDsl;
        if let Db::Postgres(c) = self {
            diesel::sql_query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
                .bind::<diesel::sql_types::Integer, _>(TENANT_TOTALS_LOCKS)
                .bind::<diesel::sql_types::Text, _>(tenant_id)
                .execute(&mut **c)?;
        }
        Ok(())
    }

    pub fn ping(&mut self) -> Result<(), StoreError> {
        dispatch!(self, c => c.batch_execute("SELECT 1"))?;
        Ok(())
    }

    /// Whether this connection can still be used: its transaction state is
    /// sound and the database answers on it.
    pub fn is_usable(&mut self) -> bool {
        let broken = dispatch!(self, c => AnsiTransactionManager::is_broken_transaction_manager(c));
        !broken && self.ping().is_ok()
    }
}

#[derive(Clone)]
enum Pool {
    Sqlite(r2d2::Pool<ConnectionManager<SqliteConnection>>),
    Postgres(r2d2::Pool<ConnectionManager<PgConnection>>),
}

/// The connection pool of the configured backend.
#[derive(Clone)]
pub struct Store {
    pool: Pool,
    /// The database's URL, for connections of their own (see [`signals`]).
    url: std::sync::Arc<str>,
}

#[derive(Debug)]
struct SqlitePragmas;

impl CustomizeConnection<SqliteConnection, diesel::r2d2::Error> for SqlitePragmas {
    fn on_acquire(&self, conn: &mut SqliteConnection) -> Result<(), diesel::r2d2::Error> {
        // WAL lets readers run beside the writer; synchronous=FULL makes a
        // commit durable before ingestion answers 2xx.
        conn.batch_execute(
            "PRAGMA busy_timeout = 10000; PRAGMA journal_mode = WAL; \
             PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;",
        )
        .map_err(diesel::r2d2::Error::QueryError)
    }
}

impl Store {
    /// Opens the database named by `url`, applying pending migrations.
    pub fn open(url: &str) -> Result<Store, StoreError> {
        let pool = if is_postgres_url(url) {
            // Before libpq's first TLS connection initialises OpenSSL
            // without it: OpenSSL then registers no exit handler
            // (OPENSSL_INIT_NO_ATEXIT). That handler frees OpenSSL's state
            // while threads that outlive `main` (r2d2's connection threads,
            // an endpoint thread past the grace period) may still be
            // closing TLS connections to PostgreSQL: a segfault at exit.
            // The memory needs no freeing; the process is ending.
            openssl_sys::init();
            Pool::Postgres(
                r2d2::Pool::builder()
                    .max_size(12)
                    .connection_timeout(Duration::from_secs(10))
                    // A pooled connection the server has closed (a restart,
                    // a failover, pg_terminate_backend) fails this check and
                    // is replaced instead of being handed out.
                    .test_on_check_out(true)
                    .build(ConnectionManager::new(url))?,
            )
        } else {
            let path = sqlite_path(url)
                .ok_or_else(|| StoreError::UnsupportedUrl(redact::database_url(url)))?;
            Pool::Sqlite(
                r2d2::Pool::builder()
                    .max_size(8)
                    .connection_timeout(Duration::from_secs(10))
                    .connection_customizer(Box::new(SqlitePragmas))
                    .build(ConnectionManager::new(path))?,
            )
        };
        let store = Store {
            pool,
            url: url.into(),
        };
        let mut db = store.get()?;
        migrate(&mut db)?;
        Ok(store)
    }

    /// The URL the store was opened with.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self.pool, Pool::Postgres(_))
    }

    /// A connection for blocking work; never call this on an event loop.
    pub fn get(&self) -> Result<Db, StoreError> {
        Ok(match &self.pool {
            Pool::Sqlite(pool) => Db::Sqlite(pool.get()?),
            Pool::Postgres(pool) => Db::Postgres(pool.get()?),
        })
    }

    /// Like [`Store::get`], giving up after `timeout`.
    pub fn get_within(&self, timeout: Duration) -> Result<Db, StoreError> {
        Ok(match &self.pool {
            Pool::Sqlite(pool) => Db::Sqlite(pool.get_timeout(timeout)?),
            Pool::Postgres(pool) => Db::Postgres(pool.get_timeout(timeout)?),
        })
    }

    /// Runs blocking database work on the blocking thread pool.
    pub async fn run<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Db) -> Result<T, StoreError> + Send + 'static,
    {
        let store = self.clone();
        tokio::task::spawn_blocking(move || work(&mut store.get()?))
            .await
            .map_err(|e| StoreError::Blocking(e.to_string()))?
    }
}

/// The advisory lock instances take on PostgreSQL to migrate one at a time
/// (an arbitrary number, the same in every instance).
const MIGRATION_LOCK: i64 = 0x686f_6f6b_7265_6c61;

/// Applies pending migrations. On PostgreSQL, instances starting together
/// would each apply them (and fail on each other's tables), so each waits
/// for the others under a session advisory lock, then finds them applied.
/// SQLite's file is claimed by one instance ([`sqlite_claim`]).
fn migrate(db: &mut Db) -> Result<(), StoreError> {
    let migration_failed =
        |e: Box<dyn std::error::Error + Send + Sync>| StoreError::Migration(e.to_string());
    match db {
        Db::Sqlite(c) => c
            .run_pending_migrations(MIGRATIONS)
            .map(drop)
            .map_err(migration_failed),
        Db::Postgres(c) => {
            c.batch_execute(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK})"))?;
            let migrated = c
                .run_pending_migrations(MIGRATIONS)
                .map(drop)
                .map_err(migration_failed);
            // The connection goes back to the pool: it must not keep the lock.
            let unlocked = c.batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})"));
            migrated?;
            Ok(unlocked?)
        }
    }
}

fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// `sqlite://file.db`, `sqlite:///abs/file.db`, `sqlite:file.db` or a bare path.
fn sqlite_path(url: &str) -> Option<String> {
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    (!path.is_empty() && !path.contains("://")).then(|| path.to_owned())
}

#[cfg(test)]
mod tests {
    use super::{sqlite_path, StoreError};
    use diesel::connection::SimpleConnection;
    use diesel::{Connection, SqliteConnection};

    fn sqlite_with_small_table() -> SqliteConnection {
        let mut conn =
            SqliteConnection::establish(":memory:").expect("an in-memory SQLite database opens");
        conn.batch_execute("CREATE TABLE t (id INTEGER PRIMARY KEY, data BLOB)")
            .expect("create a table");
        conn
    }

    #[test]
    fn a_full_sqlite_database_is_unavailable() {
        let mut conn = sqlite_with_small_table();
        // No more pages than the table already has: the next row is SQLITE_FULL.
        conn.batch_execute("PRAGMA max_page_count = 1")
            .expect("cap the database size");
        let full = conn
            .batch_execute("INSERT INTO t (data) VALUES (zeroblob(100000))")
            .expect_err("a row larger than the cap is refused");
        assert!(StoreError::Query(full).is_unavailable());
    }

    #[test]
    fn a_refused_row_is_not_unavailable() {
        let mut conn = sqlite_with_small_table();
        conn.batch_execute("INSERT INTO t (id) VALUES (1)")
            .expect("a first row");
        let duplicate = conn
            .batch_execute("INSERT INTO t (id) VALUES (1)")
            .expect_err("a duplicate key is refused");
        assert!(!StoreError::Query(duplicate).is_unavailable());
        assert!(StoreError::WriterGone.is_unavailable());
    }

    #[test]
    fn sqlite_urls_name_a_file() {
        assert_eq!(
            sqlite_path("sqlite://hookrelay.db").as_deref(),
            Some("hookrelay.db")
        );
        assert_eq!(
            sqlite_path("sqlite:///tmp/x.db").as_deref(),
            Some("/tmp/x.db")
        );
        assert_eq!(sqlite_path("data.db").as_deref(), Some("data.db"));
        assert_eq!(sqlite_path("mysql://x"), None);
    }
}
