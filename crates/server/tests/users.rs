//! Users end to end with the real `strowger` binary: the `strowger user …` commands on a data
//! directory (with and without a server running on it) and the `/api/v1/users` REST endpoints.
//! Loopback only.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const SECRET: &str = "users-test-secret-0123456789-0123456789";

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let p = std::env::temp_dir().join(format!(
            "strowger-users-{tag}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `strowger user <args> --data-dir <dir>`, feeding `stdin`.
fn user(dir: &Path, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_strowger"))
        .arg("user")
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .env_remove("STROWGER_CONFIG")
        .env_remove("STROWGER_SIP_REALM")
        .env_remove("STROWGER_STORE_URL")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("strowger runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn cli_adds_lists_changes_and_removes_users() {
    let dir = TempDir::new("cli");
    let d = &dir.0;

    // Read-only commands do not create a database where there is none.
    let o = user(d, &["list"], "");
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    assert!(err(&o).contains("strowger.db"), "{}", err(&o));
    assert!(!d.join("strowger.db").exists());

    let o = user(
        d,
        &[
            "add",
            "alice",
            "--password",
            "s3cret-pw",
            "--display-name",
            "Alice Liddell",
        ],
        "",
    );
    assert!(o.status.success(), "{}", err(&o));
    assert!(out(&o).contains("added user 'alice'"), "{}", out(&o));
    assert!(d.join("strowger.db").exists());

    let o = user(d, &["add", "bob", "--password-stdin"], "bob-pw\n");
    assert!(o.status.success(), "{}", err(&o));

    let o = user(d, &["list"], "");
    assert!(o.status.success(), "{}", err(&o));
    let listing = out(&o);
    let alice = listing
        .lines()
        .find(|l| l.starts_with("alice "))
        .unwrap_or_else(|| panic!("alice missing from:\n{listing}"));
    assert!(
        alice.contains("Alice Liddell") && alice.contains("enabled"),
        "{alice}"
    );
    assert!(listing.lines().any(|l| l.starts_with("bob ")), "{listing}");
    assert!(err(&o).contains("2 of 2 users"), "{}", err(&o));
    assert!(!listing.contains("s3cret") && !listing.contains("bob-pw"));

    // Duplicates and bad input: non-zero exit, a clear message, nothing changed.
    let o = user(d, &["add", "alice", "--password", "other"], "");
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err(&o).contains("user 'alice' already exists"),
        "{}",
        err(&o)
    );
    let o = user(d, &["add", "no spaces", "--password", "x"], "");
    assert_eq!(o.status.code(), Some(2));
    assert!(err(&o).contains("invalid username"), "{}", err(&o));
    let o = user(d, &["add", "carol"], "");
    assert_eq!(o.status.code(), Some(2), "a password is required");
    let o = user(d, &["add", "carol", "--password-stdin"], "");
    assert_eq!(o.status.code(), Some(2));
    assert!(err(&o).contains("no password"), "{}", err(&o));

    let o = user(d, &["passwd", "alice", "--password-stdin"], "new-pw\r\n");
    assert!(o.status.success(), "{}", err(&o));
    let o = user(d, &["passwd", "nobody", "--password", "x"], "");
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("no user 'nobody'"), "{}", err(&o));

    let o = user(d, &["remove", "bob"], "");
    assert!(o.status.success(), "{}", err(&o));
    let o = user(d, &["remove", "bob"], "");
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("no user 'bob'"), "{}", err(&o));
    let o = user(d, &["list"], "");
    assert!(!out(&o).contains("bob"), "{}", out(&o));
    assert!(err(&o).contains("1 of 1 users"), "{}", err(&o));

    // Another realm: the stored hashes no longer fit, and the listing says so.
    let o = user(d, &["list", "--set", "sip.realm=example.com"], "");
    assert!(out(&o).contains("needs passwd"), "{}", out(&o));
}

// ---------------------------------------------------------------- REST API

struct Server {
    child: Child,
    http: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn serve(dir: &Path) -> Server {
    let http = format!("127.0.0.1:{}", free_port());
    let rtc = format!("127.0.0.1:{}", free_port());
    let child = Command::new(env!("CARGO_BIN_EXE_strowger"))
        .args(["serve", "--http-listen", &http, "--rtc-listen", &rtc])
        .arg("--data-dir")
        .arg(dir)
        .args(["--log", "warn"])
        // SIP off: parallel test servers would compete for port 5060.
        .args(["--set", "sip.listen="])
        .env("STROWGER_API_KEY", "it")
        .env("STROWGER_API_SECRET", SECRET)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("server starts");
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(&http).is_err() {
        assert!(Instant::now() < deadline, "server did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    Server { child, http }
}

fn admin_token(admin: bool) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = json!({"iss": "it", "sub": "ops", "exp": now + 600, "nbf": now - 5,
                        "grants": {"admin": admin}});
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

/// One HTTP/1.0 request; returns the status and the body (JSON, or `Null` when empty or not JSON).
fn request(
    s: &Server,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, String) {
    let mut c = TcpStream::connect(&s.http).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut req = format!("{method} {path} HTTP/1.0\r\nHost: {}\r\n", s.http);
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    if !body.is_empty() {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    req.push_str("\r\n");
    req.push_str(&body);
    c.write_all(req.as_bytes()).unwrap();
    let mut resp = String::new();
    c.read_to_string(&mut resp).unwrap();
    let status = resp
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad response: {resp}"));
    let body = resp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

fn json_of(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

#[test]
fn rest_api_manages_users_alongside_the_cli() {
    let dir = TempDir::new("rest");
    let s = serve(&dir.0);
    let t = admin_token(true);
    let t = Some(t.as_str());

    // The CLI works on the database while the server runs (WAL), and the server sees it.
    let o = user(
        &dir.0,
        &[
            "add",
            "alice",
            "--password",
            "pw-a",
            "--display-name",
            "Alice",
        ],
        "",
    );
    assert!(o.status.success(), "{}", err(&o));

    // Authorization.
    let (st, body) = request(&s, "GET", "/api/v1/users", None, None);
    assert_eq!(st, 401, "{body}");
    assert_eq!(json_of(&body)["error"]["code"], "unauthorized");
    let weak = admin_token(false);
    let (st, _) = request(&s, "GET", "/api/v1/users", Some(&weak), None);
    assert_eq!(st, 403);

    let (st, body) = request(&s, "GET", "/api/v1/users", t, None);
    assert_eq!(st, 200, "{body}");
    let v = json_of(&body);
    assert_eq!(v["total"], 1);
    assert_eq!(v["users"][0]["username"], "alice");
    assert_eq!(v["users"][0]["displayName"], "Alice");
    assert_eq!(v["users"][0]["disabled"], false);
    assert_eq!(v["users"][0]["passwordValid"], true);

    // Create; duplicates, invalid names and bad bodies.
    let (st, body) = request(
        &s,
        "POST",
        "/api/v1/users",
        t,
        Some(json!({"username": "bob", "password": "pw-bob-secret", "displayName": "Bob"})),
    );
    assert_eq!(st, 201, "{body}");
    assert_eq!(json_of(&body)["username"], "bob");
    let bob_md5 = strowger_store::ha1_md5("bob", "strowger", "pw-bob-secret");
    let bob_sha = strowger_store::ha1_sha256("bob", "strowger", "pw-bob-secret");
    assert!(
        !body.contains(&bob_md5) && !body.contains(&bob_sha),
        "{body}"
    );
    assert!(
        !body.contains("pw-bob-secret") && !body.to_lowercase().contains("ha1"),
        "{body}"
    );
    let (st, body) = request(
        &s,
        "POST",
        "/api/v1/users",
        t,
        Some(json!({"username": "bob", "password": "x"})),
    );
    assert_eq!(st, 409, "{body}");
    assert_eq!(json_of(&body)["error"]["code"], "conflict");
    let (st, body) = request(
        &s,
        "POST",
        "/api/v1/users",
        t,
        Some(json!({"username": "b o b", "password": "x"})),
    );
    assert_eq!(st, 400, "{body}");
    assert!(json_of(&body)["error"]["message"]
        .as_str()
        .unwrap()
        .contains("invalid username"));
    let (st, _) = request(
        &s,
        "POST",
        "/api/v1/users",
        t,
        Some(json!({"username": "c"})),
    );
    assert_eq!(st, 400, "a password is required");
    let (st, _) = request(
        &s,
        "POST",
        "/api/v1/users",
        t,
        Some(json!({"username": "c", "password": "x", "ha1": "y"})),
    );
    assert_eq!(st, 400, "unknown fields are refused");
    // The snake_case spelling of displayName is accepted too.
    let (st, body) = request(
        &s,
        "POST",
        "/api/v1/users",
        t,
        Some(json!({"username": "carol", "password": "pw-c", "display_name": "Carol"})),
    );
    assert_eq!(st, 201, "{body}");
    assert_eq!(json_of(&body)["displayName"], "Carol");

    // Paging, sorted by username.
    let (st, body) = request(&s, "GET", "/api/v1/users?limit=2&offset=1", t, None);
    assert_eq!(st, 200, "{body}");
    let v = json_of(&body);
    let names: Vec<&str> = v["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["bob", "carol"]);
    assert_eq!(v["total"], 3);
    let (st, _) = request(&s, "GET", "/api/v1/users?limit=0", t, None);
    assert_eq!(st, 400);
    let (st, _) = request(&s, "GET", "/api/v1/users?limit=x", t, None);
    assert_eq!(st, 400);

    // One user; update; delete.
    let (st, body) = request(&s, "GET", "/api/v1/users/bob", t, None);
    assert_eq!(st, 200, "{body}");
    assert_eq!(json_of(&body)["displayName"], "Bob");
    assert!(
        !body.contains(&bob_md5) && !body.contains(&bob_sha),
        "{body}"
    );
    let (st, body) = request(&s, "GET", "/api/v1/users/b%20b", t, None);
    assert_eq!(st, 400, "{body}");
    let (st, body) = request(&s, "GET", "/api/v1/users/nobody", t, None);
    assert_eq!(st, 404, "{body}");
    assert_eq!(json_of(&body)["error"]["code"], "not_found");
    let (st, body) = request(
        &s,
        "PATCH",
        "/api/v1/users/bob",
        t,
        Some(json!({"displayName": "Robert", "disabled": true, "password": "new-pw"})),
    );
    assert_eq!(st, 200, "{body}");
    let v = json_of(&body);
    assert_eq!(v["displayName"], "Robert");
    assert_eq!(v["disabled"], true);
    let (st, _) = request(
        &s,
        "PATCH",
        "/api/v1/users/nobody",
        t,
        Some(json!({"disabled": true})),
    );
    assert_eq!(st, 404);
    let (st, _) = request(
        &s,
        "PATCH",
        "/api/v1/users/bob",
        t,
        Some(json!({"password": ""})),
    );
    assert_eq!(st, 400);
    let (st, _) = request(&s, "DELETE", "/api/v1/users/carol", t, None);
    assert_eq!(st, 204);
    let (st, _) = request(&s, "DELETE", "/api/v1/users/carol", t, None);
    assert_eq!(st, 404);

    // What the API did is in the file the CLI reads.
    let o = user(&dir.0, &["list"], "");
    let listing = out(&o);
    let bob = listing
        .lines()
        .find(|l| l.starts_with("bob "))
        .unwrap_or_else(|| panic!("bob missing from:\n{listing}"));
    assert!(bob.contains("Robert") && bob.contains("disabled"), "{bob}");
    assert!(!listing.contains("carol"), "{listing}");
}
