//! `strowger user …`: users in the database, without a running server. The commands open the
//! same SQLite file as `serve` (WAL mode lets them do so while it runs). Passwords are read from
//! a flag or standard input and never printed.
//!
//! Exit codes: 0 done, 1 the operation failed (user exists, no such user, database error), 2 a
//! usage or configuration error (invalid username, password or display name).

use std::io::BufRead;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use strowger_store::{Store, StoreError, User};

use crate::config::Config;
use crate::ConfigArgs;

#[derive(Subcommand)]
pub enum UserCmd {
    /// Add a user: `strowger user add alice --password-stdin --display-name "Alice"`.
    Add(AddArgs),
    /// List users, sorted by username.
    List(ListArgs),
    /// Remove a user.
    Remove(RemoveArgs),
    /// Set a user's password (also needed for every user after `sip.realm` changes).
    Passwd(PasswdArgs),
}

/// Which database: the one `serve` would use with the same configuration.
#[derive(Args)]
pub struct DbArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Data directory (data_dir); the database is `<DIR>/strowger.db` unless `store.url` is set.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

#[derive(Args)]
#[group(required = true, multiple = false)]
pub struct PasswordArgs {
    /// The password. Other local users can see it in the process list: prefer --password-stdin.
    #[arg(long)]
    password: Option<String>,
    /// Read the password from the first line of standard input.
    #[arg(long)]
    password_stdin: bool,
}

#[derive(Args)]
pub struct AddArgs {
    /// Username: 1-64 characters of letters, digits and -_.!~*'()&=+$,;?/
    username: String,
    #[command(flatten)]
    password: PasswordArgs,
    /// Display name (at most 128 characters).
    #[arg(long, default_value = "")]
    display_name: String,
    #[command(flatten)]
    db: DbArgs,
}

#[derive(Args)]
pub struct ListArgs {
    /// At most this many users.
    #[arg(long, default_value_t = 1000)]
    limit: u32,
    /// Skip this many users first.
    #[arg(long, default_value_t = 0)]
    offset: u64,
    #[command(flatten)]
    db: DbArgs,
}

#[derive(Args)]
pub struct RemoveArgs {
    username: String,
    #[command(flatten)]
    db: DbArgs,
}

#[derive(Args)]
pub struct PasswdArgs {
    username: String,
    #[command(flatten)]
    password: PasswordArgs,
    #[command(flatten)]
    db: DbArgs,
}

/// Runs a user command; returns the exit code.
pub fn run(cmd: UserCmd) -> i32 {
    let db = match &cmd {
        UserCmd::Add(a) => &a.db,
        UserCmd::List(a) => &a.db,
        UserCmd::Remove(a) => &a.db,
        UserCmd::Passwd(a) => &a.db,
    };
    let mut extra = Vec::new();
    if let Some(d) = &db.data_dir {
        extra.push(format!("data_dir={}", d.display()));
    }
    let cfg = match crate::load_config(&db.config, extra) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return 2;
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return 1;
        }
    };
    match rt.block_on(execute(cmd, &cfg)) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("strowger user: {e}");
            match e {
                CmdError::Usage(_) | CmdError::Store(StoreError::Invalid(_)) => 2,
                CmdError::Store(_) => 1,
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum CmdError {
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn password(p: &PasswordArgs) -> Result<String, CmdError> {
    if let Some(pw) = &p.password {
        return Ok(pw.clone());
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| CmdError::Usage(format!("cannot read the password from stdin: {e}")))?;
    let pw = line.strip_suffix('\n').unwrap_or(&line);
    let pw = pw.strip_suffix('\r').unwrap_or(pw);
    if pw.is_empty() {
        return Err(CmdError::Usage("no password on standard input".into()));
    }
    Ok(pw.to_string())
}

async fn execute(cmd: UserCmd, cfg: &Config) -> Result<(), CmdError> {
    // Read the password before touching the database, so a bad stdin changes nothing.
    let pw = match &cmd {
        UserCmd::Add(a) => Some(password(&a.password)?),
        UserCmd::Passwd(a) => Some(password(&a.password)?),
        _ => None,
    };
    let location = cfg.store_location();
    // Only `add` creates the database: elsewhere a missing file means a wrong data_dir.
    let store = if matches!(cmd, UserCmd::Add(_)) {
        Store::open(&location, &cfg.sip.realm).await?
    } else {
        Store::open_existing(&location, &cfg.sip.realm).await?
    };
    let result = match cmd {
        UserCmd::Add(a) => {
            let pw = pw.unwrap_or_default();
            store
                .add_user(&a.username, &pw, &a.display_name)
                .await
                .map(|u| {
                    println!(
                        "added user '{}' (realm {}) to {location}",
                        u.username, u.realm
                    )
                })
        }
        UserCmd::Passwd(a) => {
            let pw = pw.unwrap_or_default();
            store.set_password(&a.username, &pw).await.map(|()| {
                println!(
                    "password of '{}' set (realm {}) in {location}",
                    a.username, cfg.sip.realm
                )
            })
        }
        UserCmd::Remove(a) => store
            .remove_user(&a.username)
            .await
            .map(|()| println!("removed user '{}' from {location}", a.username)),
        UserCmd::List(a) => list(&store, &cfg.sip.realm, a.limit, a.offset).await,
    };
    store.close().await;
    Ok(result?)
}

async fn list(store: &Store, realm: &str, limit: u32, offset: u64) -> Result<(), StoreError> {
    let users = store.list_users(limit, offset).await?;
    let total = store.count_users().await?;
    let rows: Vec<[String; 4]> = users
        .iter()
        .map(|u| {
            [
                u.username.clone(),
                u.display_name.clone(),
                utc_time(u.created_at),
                status(u, realm),
            ]
        })
        .collect();
    let header = [
        "USERNAME".to_string(),
        "DISPLAY NAME".into(),
        "CREATED (UTC)".into(),
        "STATUS".into(),
    ];
    let mut widths = header.clone().map(|h| h.chars().count());
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    for r in std::iter::once(&header).chain(&rows) {
        let line = format!(
            "{:w0$}  {:w1$}  {:w2$}  {}",
            r[0],
            r[1],
            r[2],
            r[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2]
        );
        println!("{}", line.trim_end());
    }
    eprintln!(
        "{} of {total} users (offset {offset}) in {}",
        rows.len(),
        store.location()
    );
    Ok(())
}

fn status(u: &User, realm: &str) -> String {
    match (u.disabled, u.realm == realm) {
        (true, _) => "disabled".into(),
        (false, true) => "enabled".into(),
        (false, false) => format!("needs passwd (hashed for realm {})", u.realm),
    }
}

/// Unix seconds as `YYYY-MM-DD HH:MM:SS` (UTC).
pub fn utc_time(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (proleptic Gregorian), by 400-year eras.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(utc_time(0), "1970-01-01 00:00:00");
        assert_eq!(utc_time(951_782_400), "2000-02-29 00:00:00");
        assert_eq!(utc_time(1_700_000_000), "2023-11-14 22:13:20");
        assert_eq!(utc_time(4_107_542_399), "2100-02-28 23:59:59");
        assert_eq!(utc_time(-1), "1969-12-31 23:59:59");
    }
}
