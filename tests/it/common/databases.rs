//! Throw-away databases on both backends, and SQL a test runs on them over
//! a connection of its own, beside the running application.

/// Default PostgreSQL server used when `TEST_DATABASE_URL` is not set.
pub const DEFAULT_TEST_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A connection of a test's own to its database.
enum DirectConnection {
    Sqlite(diesel::SqliteConnection),
    Postgres(diesel::PgConnection),
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

enum DbKind {
    Sqlite { _dir: tempfile::TempDir },
    Postgres { admin_url: String, name: String },
}

/// A fresh, empty database that lives as long as this value.
pub struct TestDb {
    url: String,
    kind: DbKind,
}

impl TestDb {
    /// A new SQLite file in its own temporary directory (so that the `-wal`
    /// and `-shm` companions are removed with it).
    pub fn sqlite() -> TestDb {
        let dir = tempfile::Builder::new()
            .prefix("hookrelay-test-")
            .tempdir()
            .expect("create temporary directory for the SQLite database");
        let path = dir.path().join("hookrelay.db");
        let path = path.to_str().expect("temporary path is UTF-8");
        TestDb {
            url: format!("sqlite://{path}"),
            kind: DbKind::Sqlite { _dir: dir },
        }
    }

    /// A new database `hr_test_<uuid>` on the server of `TEST_DATABASE_URL`.
    ///
    /// Returns `None` (after printing a notice) when the server cannot be
    /// reached, except when `CI` is set, where that is a failure.
    pub fn postgres() -> Option<TestDb> {
        use diesel::{Connection, RunQueryDsl};

        let admin_url = std::env::var("TEST_DATABASE_URL")
            .ok()
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| DEFAULT_TEST_DATABASE_URL.to_string());
        let mut conn = match diesel::PgConnection::establish(&with_connect_timeout(&admin_url)) {
            Ok(conn) => conn,
            Err(err) => {
                let why = format!("cannot connect to {admin_url}: {err}");
                if std::env::var("CI").is_ok_and(|v| !v.is_empty()) {
                    panic!("PostgreSQL is required when CI is set: {why}");
                }
                eprintln!("skipping postgres test: {why}");
                return None;
            }
        };
        let name = format!("hr_test_{}", uuid::Uuid::new_v4().simple());
        diesel::sql_query(format!("CREATE DATABASE \"{name}\""))
            .execute(&mut conn)
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name} on {admin_url}: {e}"));
        let mut url = url::Url::parse(&admin_url)
            .unwrap_or_else(|e| panic!("TEST_DATABASE_URL {admin_url:?} is not a URL: {e}"));
        url.set_path(&format!("/{name}"));
        without_tls(&mut url);
        Some(TestDb {
            url: url.to_string(),
            kind: DbKind::Postgres { admin_url, name },
        })
    }

    /// The URL to hand to hookrelay (`DATABASE_URL`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// `"sqlite"` or `"postgres"`.
    pub fn backend(&self) -> &'static str {
        match self.kind {
            DbKind::Sqlite { .. } => "sqlite",
            DbKind::Postgres { .. } => "postgres",
        }
    }

    /// Runs `sql` on the PostgreSQL server as the administrator, over a
    /// connection to the server's own database (so it works while this one
    /// refuses connections); returns the rows it affected or returned.
    pub fn execute_as_admin(&self, sql: &str) -> usize {
        use diesel::{Connection, RunQueryDsl};

        let DbKind::Postgres { admin_url, .. } = &self.kind else {
            panic!("execute_as_admin needs a PostgreSQL test database");
        };
        let mut conn = diesel::PgConnection::establish(&with_connect_timeout(admin_url))
            .unwrap_or_else(|e| panic!("connect to {admin_url}: {e}"));
        diesel::sql_query(sql)
            .execute(&mut conn)
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// Runs `sql` (statements separated by `;`) on this database over a
    /// connection of its own, beside the running application.
    pub fn execute_sql(&self, sql: &str) {
        use diesel::connection::SimpleConnection;

        let done = match self.connect() {
            DirectConnection::Sqlite(mut c) => c.batch_execute(sql),
            DirectConnection::Postgres(mut c) => c.batch_execute(sql),
        };
        done.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// The `n` of the one row `sql` returns (`SELECT COUNT(*) AS n …`).
    pub fn count_sql(&self, sql: &str) -> i64 {
        use diesel::RunQueryDsl;

        let counted = match self.connect() {
            DirectConnection::Sqlite(mut c) => diesel::sql_query(sql).get_result::<Count>(&mut c),
            DirectConnection::Postgres(mut c) => diesel::sql_query(sql).get_result::<Count>(&mut c),
        };
        counted.unwrap_or_else(|e| panic!("{sql}: {e}")).n
    }

    fn connect(&self) -> DirectConnection {
        use diesel::connection::SimpleConnection;
        use diesel::Connection;

        match self.url().strip_prefix("sqlite://") {
            Some(path) => {
                let mut conn = diesel::SqliteConnection::establish(path)
                    .unwrap_or_else(|e| panic!("open {path}: {e}"));
                // The application writes at the same time.
                conn.batch_execute("PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON")
                    .expect("set busy_timeout");
                DirectConnection::Sqlite(conn)
            }
            None => DirectConnection::Postgres(
                diesel::PgConnection::establish(self.url())
                    .unwrap_or_else(|e| panic!("connect to {}: {e}", self.url())),
            ),
        }
    }

    /// Closes every connection to this PostgreSQL database, as a failover
    /// does; returns how many there were.
    pub fn terminate_connections(&self) -> usize {
        let name = self.postgres_name();
        self.execute_as_admin(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = '{name}' AND pid <> pg_backend_pid()"
        ))
    }

    /// Whether this PostgreSQL database accepts new connections.
    pub fn allow_connections(&self, allowed: bool) {
        let name = self.postgres_name();
        self.execute_as_admin(&format!(
            "ALTER DATABASE \"{name}\" WITH ALLOW_CONNECTIONS {allowed}"
        ));
    }

    fn postgres_name(&self) -> &str {
        match &self.kind {
            DbKind::Postgres { name, .. } => name,
            DbKind::Sqlite { .. } => panic!("a SQLite test database has no server"),
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        use diesel::{Connection, RunQueryDsl};

        if let DbKind::Postgres { admin_url, name } = &self.kind {
            // Best effort: the application under test may still hold
            // connections, FORCE terminates them.
            let dropped = diesel::PgConnection::establish(&with_connect_timeout(admin_url))
                .map_err(|e| e.to_string())
                .and_then(|mut conn| {
                    diesel::sql_query(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                        .execute(&mut conn)
                        .map_err(|e| e.to_string())
                });
            if let Err(err) = dropped {
                eprintln!("could not drop test database {name}: {err}");
            }
        }
    }
}

/// Adds `connect_timeout=5` so an unroutable server cannot hang the tests.
fn with_connect_timeout(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if !parsed.query_pairs().any(|(k, _)| k == "connect_timeout") {
                parsed.query_pairs_mut().append_pair("connect_timeout", "5");
            }
            without_tls(&mut parsed);
            parsed.to_string()
        }
        Err(_) => url.to_string(),
    }
}

/// Tests talk to PostgreSQL on loopback in plain text unless the URL says
/// otherwise. With libpq's default (`sslmode=prefer`) every connection,
/// including those a test's leftover writer threads retry while the test
/// process exits, goes through OpenSSL, whose exit-time clean-up they then
/// race: the test binary crashed with SIGSEGV after all tests had passed.
fn without_tls(url: &mut url::Url) {
    if !url.query_pairs().any(|(k, _)| k == "sslmode") {
        url.query_pairs_mut().append_pair("sslmode", "disable");
    }
}
