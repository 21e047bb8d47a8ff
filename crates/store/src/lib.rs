//! Persistence for Strowger. Today: users, the SIP registrar's credential store and the subject
//! of the provisioning API.
//!
//! Embedded SQLite (bundled: no system library needed), WAL mode so the `strowger user …`
//! commands can work on the file while a server runs. Migrations are embedded in the binary and
//! applied on [`Store::open`].
//!
//! Passwords are never stored: only the digest HA1 hashes of RFC 7616,
//! `H(username ":" realm ":" password)` with MD5 and SHA-256, for the realm the store was opened
//! with. The realm is part of every hash, so **after changing the realm every password must be set
//! again**; users whose hashes belong to another realm are counted by
//! [`Store::count_users_in_other_realms`] (the server warns about them at start) and their
//! [`User::realm`] tells which.

#![forbid(unsafe_code)]

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use md5::Md5;
use sha2::{Digest, Sha256};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::Row;

/// Longest username, characters.
pub const MAX_USERNAME: usize = 64;
/// Longest display name, characters.
pub const MAX_DISPLAY_NAME: usize = 128;
/// Longest password, bytes.
pub const MAX_PASSWORD: usize = 1024;
/// Longest realm, characters.
pub const MAX_REALM: usize = 128;

/// Characters allowed in usernames besides ASCII letters and digits: RFC 3261's `unreserved`
/// marks and `user-unreserved` (no escapes).
pub const USERNAME_PUNCTUATION: &str = "-_.!~*'()&=+$,;?/";

/// What can go wrong. The messages are meant for operators: they name the database and the
/// offending value.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened or created.
    #[error("cannot open the database {location}: {reason}")]
    Open { location: String, reason: String },
    /// The schema could not be brought up to date.
    #[error("cannot update the schema of the database {location}: {source}")]
    Migrate {
        location: String,
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    /// A user of that name exists.
    #[error("user '{0}' already exists")]
    Exists(String),
    /// No user of that name.
    #[error("no user '{0}'")]
    NotFound(String),
    /// A username, password, display name or realm is not acceptable.
    #[error("{0}")]
    Invalid(String),
    /// Any other database failure.
    #[error("database {location}: {source}")]
    Db {
        location: String,
        #[source]
        source: sqlx::Error,
    },
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A user as stored. `Debug` leaves out the hashes: they are password equivalents for the realm.
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    pub id: i64,
    pub username: String,
    /// Reserved for multi-domain deployments; `None` today.
    pub domain: Option<String>,
    pub display_name: String,
    /// The realm the hashes were computed for.
    pub realm: String,
    /// Hex MD5 of `username:realm:password`.
    pub ha1_md5: String,
    /// Hex SHA-256 of `username:realm:password`.
    pub ha1_sha256: String,
    /// Unix seconds.
    pub created_at: i64,
    pub disabled: bool,
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("domain", &self.domain)
            .field("display_name", &self.display_name)
            .field("realm", &self.realm)
            .field("created_at", &self.created_at)
            .field("disabled", &self.disabled)
            .finish_non_exhaustive()
    }
}

/// Digest algorithms a user has an HA1 for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestAlgorithm {
    Md5,
    Sha256,
}

impl User {
    /// The HA1 for `algorithm`, if it was computed for `realm` (else the password must be set
    /// again before this user can authenticate in that realm).
    pub fn ha1(&self, algorithm: DigestAlgorithm, realm: &str) -> Option<&str> {
        if self.realm != realm {
            return None;
        }
        Some(match algorithm {
            DigestAlgorithm::Md5 => &self.ha1_md5,
            DigestAlgorithm::Sha256 => &self.ha1_sha256,
        })
    }
}

/// Changes to a user; `None` leaves a field as it is.
#[derive(Default, Clone)]
pub struct UserUpdate {
    pub password: Option<String>,
    pub display_name: Option<String>,
    pub disabled: Option<bool>,
}

impl fmt::Debug for UserUpdate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserUpdate")
            .field("password", &self.password.as_ref().map(|_| "********"))
            .field("display_name", &self.display_name)
            .field("disabled", &self.disabled)
            .finish()
    }
}

/// Is `s` an acceptable username: 1–64 characters of ASCII letters, digits and
/// [`USERNAME_PUNCTUATION`]?
pub fn valid_username(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_USERNAME
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || USERNAME_PUNCTUATION.contains(c))
}

fn check_username(s: &str) -> Result<()> {
    if valid_username(s) {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "invalid username '{}': use 1-{MAX_USERNAME} characters of letters, digits and {USERNAME_PUNCTUATION}",
            s.escape_default()
        )))
    }
}

fn check_password(p: &str) -> Result<()> {
    if p.is_empty() || p.len() > MAX_PASSWORD {
        return Err(StoreError::Invalid(format!(
            "invalid password: it must be 1-{MAX_PASSWORD} bytes"
        )));
    }
    Ok(())
}

fn check_display_name(n: &str) -> Result<()> {
    if n.chars().count() > MAX_DISPLAY_NAME || n.chars().any(char::is_control) {
        return Err(StoreError::Invalid(format!(
            "invalid display name: at most {MAX_DISPLAY_NAME} characters, no control characters"
        )));
    }
    Ok(())
}

fn check_realm(r: &str) -> Result<()> {
    if r.is_empty()
        || r.chars().count() > MAX_REALM
        || r.chars().any(|c| c.is_control() || c == '"' || c == '\\')
    {
        return Err(StoreError::Invalid(format!(
            "invalid realm '{}': 1-{MAX_REALM} characters, no quotes, backslashes or control characters",
            r.escape_default()
        )));
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// RFC 7616 HA1 with MD5: lower-case hex of `MD5(username ":" realm ":" password)`.
pub fn ha1_md5(username: &str, realm: &str, password: &str) -> String {
    let mut h = Md5::new();
    h.update(username.as_bytes());
    h.update(b":");
    h.update(realm.as_bytes());
    h.update(b":");
    h.update(password.as_bytes());
    hex(&h.finalize())
}

/// RFC 7616 HA1 with SHA-256: lower-case hex of `SHA-256(username ":" realm ":" password)`.
pub fn ha1_sha256(username: &str, realm: &str, password: &str) -> String {
    let mut h = Sha256::new();
    h.update(username.as_bytes());
    h.update(b":");
    h.update(realm.as_bytes());
    h.update(b":");
    h.update(password.as_bytes());
    hex(&h.finalize())
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Creates an empty database file readable by its owner only (the hashes are password
/// equivalents within their realm); SQLite gives its `-wal` and `-shm` files the same mode. An
/// existing file is left alone.
fn create_private(path: &std::path::Path) -> std::io::Result<()> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    match o.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// SQLITE_BUSY or SQLITE_LOCKED (with any extended code).
fn is_busy(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(d) => d
            .code()
            .and_then(|c| c.parse::<i32>().ok())
            .is_some_and(|c| matches!(c & 0xff, 5 | 6)),
        _ => false,
    }
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

struct Inner {
    pool: SqlitePool,
    location: String,
    realm: String,
}

/// The store: a handle on a small connection pool. Cheap to clone (an `Arc` inside); clones
/// share the pool.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("location", &self.inner.location)
            .field("realm", &self.inner.realm)
            .finish()
    }
}

const USER_COLUMNS: &str =
    "id, username, domain, display_name, realm, ha1_md5, ha1_sha256, created_at, disabled";

fn user_from_row(r: &sqlx::sqlite::SqliteRow) -> Result<User, sqlx::Error> {
    Ok(User {
        id: r.try_get("id")?,
        username: r.try_get("username")?,
        domain: r.try_get("domain")?,
        display_name: r.try_get("display_name")?,
        realm: r.try_get("realm")?,
        ha1_md5: r.try_get("ha1_md5")?,
        ha1_sha256: r.try_get("ha1_sha256")?,
        created_at: r.try_get("created_at")?,
        disabled: r.try_get("disabled")?,
    })
}

impl Store {
    /// Opens (creating if missing, with its directory) the database at `path_or_url` — a file
    /// path, or a `sqlite:` URL — applies pending migrations, and uses `realm` for the digest
    /// hashes of passwords set from now on.
    pub async fn open(path_or_url: &str, realm: &str) -> Result<Store> {
        Self::open_with(path_or_url, realm, true).await
    }

    /// Like [`Store::open`], but a missing database is an error instead of being created: for
    /// tools that only read or change existing data, where a mistyped path should not silently
    /// give an empty database.
    pub async fn open_existing(path_or_url: &str, realm: &str) -> Result<Store> {
        Self::open_with(path_or_url, realm, false).await
    }

    async fn open_with(path_or_url: &str, realm: &str, create: bool) -> Result<Store> {
        check_realm(realm)?;
        let location = path_or_url.to_string();
        let open_err = |reason: String| StoreError::Open {
            location: location.clone(),
            reason,
        };
        if path_or_url.starts_with("postgres:") || path_or_url.starts_with("postgresql:") {
            return Err(open_err(
                "PostgreSQL is not supported yet: use a SQLite file path".into(),
            ));
        }
        let options = if path_or_url.starts_with("sqlite:") {
            SqliteConnectOptions::from_str(path_or_url)
                .map_err(|e| open_err(format!("invalid URL: {e}")))?
        } else {
            if path_or_url.is_empty() {
                return Err(open_err("empty path".into()));
            }
            let path = std::path::Path::new(path_or_url);
            if !create && !path.exists() {
                return Err(open_err("no such file (check data_dir / store.url)".into()));
            }
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| {
                    open_err(format!(
                        "cannot create the directory {}: {e}",
                        dir.display()
                    ))
                })?;
            }
            if create {
                create_private(path).map_err(|e| open_err(e.to_string()))?;
            }
            SqliteConnectOptions::new().filename(path)
        };
        let options = options
            .create_if_missing(create)
            .journal_mode(SqliteJournalMode::Wal)
            // Writes are rare (provisioning): every reported success survives a power cut.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        // Switching a fresh file to WAL takes an exclusive lock that SQLite does not wait for:
        // another process opening it at the same moment gets "database is locked". Try again.
        let mut attempt = 0;
        let pool = loop {
            match SqlitePoolOptions::new()
                .max_connections(4)
                .min_connections(0)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(options.clone())
                .await
            {
                Ok(p) => break p,
                Err(e) if attempt < 10 && is_busy(&e) => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(20 * attempt)).await;
                }
                Err(e) => return Err(open_err(e.to_string())),
            }
        };
        // SQLite has no migration lock: two processes opening a fresh file at once (the server
        // and a `strowger user` command) both try to apply a migration, and the loser's
        // transaction fails and rolls back. Running again then finds it applied.
        let mut attempt = 0;
        loop {
            match MIGRATOR.run(&pool).await {
                Ok(()) => break,
                Err(source) if attempt >= 4 => {
                    return Err(StoreError::Migrate {
                        location: location.clone(),
                        source,
                    })
                }
                Err(_) => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(50 * attempt)).await;
                }
            }
        }
        Ok(Store {
            inner: Arc::new(Inner {
                pool,
                location,
                realm: realm.to_string(),
            }),
        })
    }

    /// Where the database is (as given to [`Store::open`]).
    pub fn location(&self) -> &str {
        &self.inner.location
    }

    /// The realm passwords are hashed for.
    pub fn realm(&self) -> &str {
        &self.inner.realm
    }

    /// Copies the WAL into the database file, then closes every connection: afterwards the
    /// file alone holds everything. Other clones stop working.
    pub async fn close(&self) {
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&self.inner.pool)
            .await
        {
            tracing::warn!(database = %self.inner.location, error = %e, "WAL checkpoint failed");
        }
        self.inner.pool.close().await;
    }

    fn db(&self, source: sqlx::Error) -> StoreError {
        StoreError::Db {
            location: self.inner.location.clone(),
            source,
        }
    }

    /// Adds a user with the HA1 hashes of `password` for the store's realm.
    pub async fn add_user(
        &self,
        username: &str,
        password: &str,
        display_name: &str,
    ) -> Result<User> {
        check_username(username)?;
        check_password(password)?;
        check_display_name(display_name)?;
        let realm = self.realm();
        let sql = format!(
            "INSERT INTO users (username, display_name, realm, ha1_md5, ha1_sha256, created_at, disabled) \
             VALUES (?, ?, ?, ?, ?, ?, FALSE) RETURNING {USER_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(username)
            .bind(display_name)
            .bind(realm)
            .bind(ha1_md5(username, realm, password))
            .bind(ha1_sha256(username, realm, password))
            .bind(now_secs())
            .fetch_one(&self.inner.pool)
            .await
            .map_err(|e| match &e {
                sqlx::Error::Database(d) if d.is_unique_violation() => {
                    StoreError::Exists(username.to_string())
                }
                _ => self.db(e),
            })?;
        user_from_row(&row).map_err(|e| self.db(e))
    }

    /// Sets a user's password (hashes for the store's realm).
    pub async fn set_password(&self, username: &str, password: &str) -> Result<()> {
        self.update_user(
            username,
            &UserUpdate {
                password: Some(password.to_string()),
                ..Default::default()
            },
        )
        .await
        .map(|_| ())
    }

    /// Applies `update` in one statement and returns the user as it is afterwards.
    pub async fn update_user(&self, username: &str, update: &UserUpdate) -> Result<User> {
        check_username(username)?;
        if let Some(p) = &update.password {
            check_password(p)?;
        }
        if let Some(n) = &update.display_name {
            check_display_name(n)?;
        }
        let realm = self.realm();
        let (realm_v, md5_v, sha_v) = match &update.password {
            Some(p) => (
                Some(realm.to_string()),
                Some(ha1_md5(username, realm, p)),
                Some(ha1_sha256(username, realm, p)),
            ),
            None => (None, None, None),
        };
        let sql = format!(
            "UPDATE users SET \
               realm = COALESCE(?, realm), \
               ha1_md5 = COALESCE(?, ha1_md5), \
               ha1_sha256 = COALESCE(?, ha1_sha256), \
               display_name = COALESCE(?, display_name), \
               disabled = COALESCE(?, disabled) \
             WHERE username = ? RETURNING {USER_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(realm_v)
            .bind(md5_v)
            .bind(sha_v)
            .bind(update.display_name.as_deref())
            .bind(update.disabled)
            .bind(username)
            .fetch_optional(&self.inner.pool)
            .await
            .map_err(|e| self.db(e))?;
        match row {
            Some(r) => user_from_row(&r).map_err(|e| self.db(e)),
            None => Err(StoreError::NotFound(username.to_string())),
        }
    }

    /// Removes a user.
    pub async fn remove_user(&self, username: &str) -> Result<()> {
        check_username(username)?;
        let done = sqlx::query("DELETE FROM users WHERE username = ?")
            .bind(username)
            .execute(&self.inner.pool)
            .await
            .map_err(|e| self.db(e))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(username.to_string()));
        }
        Ok(())
    }

    /// The user of that name, if any. An invalid name is simply not found.
    pub async fn get_user(&self, username: &str) -> Result<Option<User>> {
        if !valid_username(username) {
            return Ok(None);
        }
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE username = ?");
        let row = sqlx::query(&sql)
            .bind(username)
            .fetch_optional(&self.inner.pool)
            .await
            .map_err(|e| self.db(e))?;
        row.map(|r| user_from_row(&r))
            .transpose()
            .map_err(|e| self.db(e))
    }

    /// Users sorted by username, at most `limit` of them after skipping `offset`.
    pub async fn list_users(&self, limit: u32, offset: u64) -> Result<Vec<User>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users ORDER BY username LIMIT ? OFFSET ?");
        let rows = sqlx::query(&sql)
            .bind(i64::from(limit))
            .bind(i64::try_from(offset).unwrap_or(i64::MAX))
            .fetch_all(&self.inner.pool)
            .await
            .map_err(|e| self.db(e))?;
        rows.iter()
            .map(user_from_row)
            .collect::<Result<_, _>>()
            .map_err(|e| self.db(e))
    }

    /// How many users there are.
    pub async fn count_users(&self) -> Result<u64> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(&self.inner.pool)
            .await
            .map_err(|e| self.db(e))?;
        Ok(n.max(0) as u64)
    }

    /// How many users have hashes for a realm other than the store's (they cannot authenticate
    /// until their password is set again).
    pub async fn count_users_in_other_realms(&self) -> Result<u64> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE realm <> ?")
            .bind(self.realm())
            .fetch_one(&self.inner.pool)
            .await
            .map_err(|e| self.db(e))?;
        Ok(n.max(0) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);
    impl TempDir {
        fn new() -> Self {
            static N: AtomicU32 = AtomicU32::new(0);
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .subsec_nanos();
            let p = std::env::temp_dir().join(format!(
                "strowger-store-{}-{}-{nanos}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&p).unwrap();
            TempDir(p)
        }
        fn db(&self) -> String {
            self.0.join("strowger.db").to_string_lossy().into_owned()
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn ha1_matches_rfc_examples() {
        // RFC 7616 §3.9.1 inputs (values checked with coreutils md5sum / sha256sum).
        assert_eq!(
            ha1_md5("Mufasa", "http-auth@example.org", "Circle of Life"),
            "3d78807defe7de2157e2b0b6573a855f"
        );
        assert_eq!(
            ha1_sha256("Mufasa", "http-auth@example.org", "Circle of Life"),
            "7987c64c30e25f1b74be53f966b49b90f2808aa92faf9a00262392d7b4794232"
        );
        // RFC 2617 §3.5: Mufasa / testrealm@host.com / Circle Of Life.
        assert_eq!(
            ha1_md5("Mufasa", "testrealm@host.com", "Circle Of Life"),
            "939e7578ed9e3c518a452acee763bce9"
        );
    }

    #[test]
    fn usernames_are_validated() {
        assert!(valid_username("alice"));
        assert!(valid_username("+15551234567"));
        assert!(valid_username("a-_.!~*'()&=+$,;?/z"));
        assert!(valid_username(&"a".repeat(64)));
        assert!(!valid_username(""));
        assert!(!valid_username(&"a".repeat(65)));
        assert!(!valid_username("a b"));
        assert!(!valid_username("a@b"));
        assert!(!valid_username("a:b"));
        assert!(!valid_username("a%41"));
        assert!(!valid_username("é"));
    }

    #[tokio::test]
    async fn add_get_list_count_remove() {
        let dir = TempDir::new();
        let s = Store::open(&dir.db(), "strowger").await.unwrap();
        assert_eq!(s.count_users().await.unwrap(), 0);
        let a = s.add_user("alice", "secret", "Alice").await.unwrap();
        assert_eq!(a.username, "alice");
        assert_eq!(a.display_name, "Alice");
        assert_eq!(a.realm, "strowger");
        assert_eq!(a.ha1_md5, ha1_md5("alice", "strowger", "secret"));
        assert_eq!(a.ha1_sha256, ha1_sha256("alice", "strowger", "secret"));
        assert!(!a.disabled);
        assert!(a.created_at > 1_600_000_000);
        s.add_user("bob", "pw", "").await.unwrap();
        s.add_user("carol", "pw", "").await.unwrap();
        assert_eq!(s.count_users().await.unwrap(), 3);
        assert_eq!(s.get_user("alice").await.unwrap(), Some(a.clone()));
        assert_eq!(s.get_user("nobody").await.unwrap(), None);
        assert_eq!(s.get_user("not valid").await.unwrap(), None);
        let names = |v: Vec<User>| v.into_iter().map(|u| u.username).collect::<Vec<_>>();
        assert_eq!(
            names(s.list_users(10, 0).await.unwrap()),
            ["alice", "bob", "carol"]
        );
        assert_eq!(names(s.list_users(1, 1).await.unwrap()), ["bob"]);
        assert!(s.list_users(10, 5).await.unwrap().is_empty());
        s.remove_user("bob").await.unwrap();
        assert!(matches!(
            s.remove_user("bob").await,
            Err(StoreError::NotFound(n)) if n == "bob"
        ));
        assert_eq!(s.count_users().await.unwrap(), 2);
        s.close().await;
        let wal = std::fs::metadata(format!("{}-wal", dir.db())).map_or(0, |m| m.len());
        assert_eq!(wal, 0, "close leaves everything in the database file");
        let s = Store::open(&dir.db(), "strowger").await.unwrap();
        assert_eq!(s.count_users().await.unwrap(), 2);
        s.close().await;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.db()).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "database readable by others: {mode:o}");
        }
    }

    #[tokio::test]
    async fn errors_are_clear() {
        let dir = TempDir::new();
        let s = Store::open(&dir.db(), "strowger").await.unwrap();
        s.add_user("alice", "secret", "").await.unwrap();
        let e = s.add_user("alice", "other", "").await.unwrap_err();
        assert!(matches!(e, StoreError::Exists(_)), "{e}");
        assert_eq!(e.to_string(), "user 'alice' already exists");
        let e = s.add_user("al ice", "x", "").await.unwrap_err();
        assert!(matches!(e, StoreError::Invalid(_)));
        assert!(e.to_string().contains("invalid username"), "{e}");
        assert!(matches!(
            s.add_user("bob", "", "").await,
            Err(StoreError::Invalid(_))
        ));
        assert!(matches!(
            s.add_user("bob", "x", "a\nb").await,
            Err(StoreError::Invalid(_))
        ));
        assert!(matches!(
            s.set_password("nobody", "x").await,
            Err(StoreError::NotFound(_))
        ));
        assert!(matches!(
            Store::open(&dir.db(), "bad\"realm").await,
            Err(StoreError::Invalid(_))
        ));
        assert!(matches!(
            Store::open("postgres://db/x", "r").await,
            Err(StoreError::Open { .. })
        ));
    }

    #[tokio::test]
    async fn open_failure_names_the_file() {
        let dir = TempDir::new();
        // A directory where the database file should be.
        let p = dir.0.join("is-a-dir");
        std::fs::create_dir_all(&p).unwrap();
        let loc = p.to_string_lossy().into_owned();
        let e = Store::open(&loc, "strowger").await.unwrap_err();
        assert!(matches!(e, StoreError::Open { .. }), "{e}");
        assert!(e.to_string().contains(&loc), "{e}");
        // A parent that is a file.
        let f = dir.0.join("file");
        std::fs::write(&f, b"x").unwrap();
        let loc = f.join("strowger.db").to_string_lossy().into_owned();
        let e = Store::open(&loc, "strowger").await.unwrap_err();
        assert!(e.to_string().contains(&loc), "{e}");
        // Missing, when it must exist: nothing is created.
        let missing = dir.0.join("sub").join("strowger.db");
        let loc = missing.to_string_lossy().into_owned();
        let e = Store::open_existing(&loc, "strowger").await.unwrap_err();
        assert!(e.to_string().contains(&loc), "{e}");
        assert!(e.to_string().contains("no such file"), "{e}");
        assert!(!dir.0.join("sub").exists());
        // Not a database.
        let junk = dir.0.join("junk.db");
        std::fs::write(&junk, vec![b'x'; 4096]).unwrap();
        let loc = junk.to_string_lossy().into_owned();
        let e = Store::open(&loc, "strowger").await.unwrap_err();
        assert!(e.to_string().contains(&loc), "{e}");
    }

    #[tokio::test]
    async fn updates_and_realm_changes() {
        let dir = TempDir::new();
        let s = Store::open(&dir.db(), "one").await.unwrap();
        s.add_user("alice", "old", "Alice").await.unwrap();
        s.set_password("alice", "new").await.unwrap();
        let a = s.get_user("alice").await.unwrap().unwrap();
        assert_eq!(a.ha1_md5, ha1_md5("alice", "one", "new"));
        assert_eq!(
            a.ha1(DigestAlgorithm::Sha256, "one"),
            Some(ha1_sha256("alice", "one", "new").as_str())
        );
        let u = s
            .update_user(
                "alice",
                &UserUpdate {
                    display_name: Some("Alice A.".into()),
                    disabled: Some(true),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(u.display_name, "Alice A.");
        assert!(u.disabled);
        assert_eq!(u.ha1_md5, a.ha1_md5, "password untouched");
        s.close().await;

        // Reopened with another realm: the old hashes are flagged until the password is reset.
        let s = Store::open(&dir.db(), "two").await.unwrap();
        assert_eq!(s.count_users_in_other_realms().await.unwrap(), 1);
        let a = s.get_user("alice").await.unwrap().unwrap();
        assert_eq!(a.ha1(DigestAlgorithm::Md5, "two"), None);
        assert!(a.disabled && a.display_name == "Alice A.", "persisted");
        s.set_password("alice", "new").await.unwrap();
        assert_eq!(s.count_users_in_other_realms().await.unwrap(), 0);
        let a = s.get_user("alice").await.unwrap().unwrap();
        assert_eq!(
            a.ha1(DigestAlgorithm::Md5, "two"),
            Some(ha1_md5("alice", "two", "new").as_str())
        );
    }

    #[tokio::test]
    async fn concurrent_handles_share_the_file() {
        let dir = TempDir::new();
        let a = Store::open(&dir.db(), "r").await.unwrap();
        let b = Store::open(&dir.db(), "r").await.unwrap();
        let mut tasks = Vec::new();
        for i in 0..20 {
            let s = if i % 2 == 0 { a.clone() } else { b.clone() };
            tasks.push(tokio::spawn(async move {
                s.add_user(&format!("u{i:02}"), "pw", "").await.unwrap();
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(a.count_users().await.unwrap(), 20);
        assert_eq!(b.list_users(100, 0).await.unwrap().len(), 20);
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&a.inner.pool)
            .await
            .unwrap();
        assert_eq!(mode, "wal");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn simultaneous_first_opens_both_succeed() {
        // `serve` and `strowger user add` started together on a fresh data directory.
        for _ in 0..20 {
            let dir = TempDir::new();
            let db = dir.db();
            let opens: Vec<_> = (0..4)
                .map(|_| {
                    let db = db.clone();
                    tokio::spawn(async move { Store::open(&db, "r").await })
                })
                .collect();
            for o in opens {
                let s = o.await.unwrap().unwrap();
                assert_eq!(s.count_users().await.unwrap(), 0);
            }
        }
    }

    #[test]
    fn debug_output_hides_secrets() {
        let u = User {
            id: 1,
            username: "alice".into(),
            domain: None,
            display_name: String::new(),
            realm: "r".into(),
            ha1_md5: "deadbeefdeadbeef".into(),
            ha1_sha256: "cafebabecafebabe".into(),
            created_at: 0,
            disabled: false,
        };
        let d = format!("{u:?}");
        assert!(!d.contains("deadbeef") && !d.contains("cafebabe"), "{d}");
        let up = UserUpdate {
            password: Some("hunter2".into()),
            ..Default::default()
        };
        assert!(!format!("{up:?}").contains("hunter2"));
    }
}
