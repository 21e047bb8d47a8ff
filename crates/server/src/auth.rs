//! Access tokens: JWTs (HS256) signed with an API secret, carrying an identity, a display name
//! and grants (docs/protocol.md, "Tokens"), and the API key store (one key today; the
//! development key is generated into the data directory on first start).

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};

/// What a token allows.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct Grants {
    /// Room the holder may join: a name, `*` for any, or absent for none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
    pub publish: bool,
    pub subscribe: bool,
    pub screenshare: bool,
    pub record: bool,
    pub admin: bool,
    /// May make and receive 1:1 calls.
    pub call: bool,
}

impl Grants {
    /// May this holder join `room`?
    pub fn allows_room(&self, room: &str) -> bool {
        match self.room.as_deref() {
            Some("*") => true,
            Some(r) => r == room,
            None => false,
        }
    }
}

/// The claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    /// API key id that signed the token.
    pub iss: String,
    /// Identity.
    pub sub: String,
    /// Display name.
    #[serde(default)]
    pub name: String,
    pub exp: u64,
    #[serde(default)]
    pub nbf: u64,
    #[serde(default)]
    pub iat: u64,
    #[serde(default)]
    pub grants: Grants,
}

/// Why a token was refused (logged; the client only sees `unauthorized`).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("token expired")]
    Expired,
    #[error("token not yet valid")]
    NotYetValid,
    #[error("token signature or format invalid")]
    Invalid,
    #[error("token signed by an unknown API key")]
    UnknownKey,
    #[error("token identity invalid")]
    BadIdentity,
}

/// Identities: 1–64 characters of letters, digits and `._-@+`.
pub fn valid_identity(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-@+".contains(c))
}

/// Display names: at most 128 characters, no control characters.
pub fn valid_name(s: &str) -> bool {
    s.chars().count() <= 128 && !s.chars().any(char::is_control)
}

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// One API key: its id and secret. The secret never appears in logs or `Debug` output.
#[derive(Clone)]
pub struct ApiKey {
    pub id: String,
    secret: String,
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl ApiKey {
    pub fn new(id: String, secret: String) -> Self {
        ApiKey { id, secret }
    }

    /// Constant-time comparison of a presented secret.
    pub fn secret_matches(&self, presented: &str) -> bool {
        let a = self.secret.as_bytes();
        let b = presented.as_bytes();
        if a.len() != b.len() {
            return false;
        }
        a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }

    /// Signs a token for `identity`, valid for `ttl_secs` from now.
    pub fn mint(
        &self,
        identity: &str,
        name: &str,
        grants: Grants,
        ttl_secs: u64,
    ) -> Result<String, TokenError> {
        if !valid_identity(identity) || !valid_name(name) {
            return Err(TokenError::BadIdentity);
        }
        let now = now_secs();
        let claims = Claims {
            iss: self.id.clone(),
            sub: identity.to_string(),
            name: name.to_string(),
            exp: now + ttl_secs,
            nbf: now.saturating_sub(5),
            iat: now,
            grants,
        };
        encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(self.secret.as_bytes()),
        )
        .map_err(|_| TokenError::Invalid)
    }

    /// Verifies a token: signature, issuer, expiry (no leeway beyond 30 s of clock skew), identity.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        if token.len() > 8192 {
            return Err(TokenError::Invalid);
        }
        let mut v = Validation::new(Algorithm::HS256);
        v.leeway = 30;
        v.validate_nbf = true;
        v.set_required_spec_claims(&["exp", "sub", "iss"]);
        let data = decode::<Claims>(token, &DecodingKey::from_secret(self.secret.as_bytes()), &v)
            .map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
            jsonwebtoken::errors::ErrorKind::ImmatureSignature => TokenError::NotYetValid,
            _ => TokenError::Invalid,
        })?;
        let c = data.claims;
        if c.iss != self.id {
            return Err(TokenError::UnknownKey);
        }
        if !valid_identity(&c.sub) || !valid_name(&c.name) {
            return Err(TokenError::BadIdentity);
        }
        Ok(c)
    }
}

/// Loads the development key from `dir/api-key.toml`, creating it (mode 0600) on first start.
/// Returns the key and whether it was just created.
pub fn load_or_create_dev_key(dir: &Path) -> std::io::Result<(ApiKey, bool)> {
    #[derive(Serialize, Deserialize)]
    struct KeyFile {
        api_key: String,
        api_secret: String,
    }
    let path = dir.join("api-key.toml");
    if let Ok(text) = std::fs::read_to_string(&path) {
        let k: KeyFile = toml::from_str(&text).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        })?;
        return Ok((ApiKey::new(k.api_key, k.api_secret), false));
    }
    std::fs::create_dir_all(dir)?;
    let mut raw = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut raw);
    let secret: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    let mut id_raw = [0u8; 6];
    rand::thread_rng().fill_bytes(&mut id_raw);
    let id = format!(
        "dev_{}",
        id_raw
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    let text = toml::to_string(&KeyFile {
        api_key: id.clone(),
        api_secret: secret.clone(),
    })
    .expect("serializes");
    write_private(&path, text.as_bytes())?;
    Ok((ApiKey::new(id, secret), true))
}

fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    o.mode(0o600);
    let mut f = o.open(path)?;
    f.write_all(data)?;
    f.sync_all()
}

/// A random URL-safe id with the given prefix (sessions, calls, resume keys).
pub fn random_id(prefix: &str, bytes: usize) -> String {
    let mut raw = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut raw);
    let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> ApiKey {
        ApiKey::new("k1".into(), "x".repeat(40))
    }

    #[test]
    fn round_trip_and_grants() {
        let g = Grants {
            room: Some("standup".into()),
            publish: true,
            ..Default::default()
        };
        let t = key().mint("alice", "Alice", g.clone(), 60).unwrap();
        let c = key().verify(&t).unwrap();
        assert_eq!(c.sub, "alice");
        assert_eq!(c.grants, g);
        assert!(c.grants.allows_room("standup"));
        assert!(!c.grants.allows_room("other"));
    }

    #[test]
    fn forged_expired_and_foreign_tokens_fail() {
        let other = ApiKey::new("k1".into(), "y".repeat(40));
        let t = other.mint("alice", "", Grants::default(), 60).unwrap();
        assert_eq!(key().verify(&t), Err(TokenError::Invalid));
        let foreign = ApiKey::new("k2".into(), "x".repeat(40));
        let t = foreign.mint("alice", "", Grants::default(), 60).unwrap();
        assert_eq!(key().verify(&t), Err(TokenError::UnknownKey));
        // Expired well past the leeway.
        let claims = Claims {
            iss: "k1".into(),
            sub: "alice".into(),
            name: String::new(),
            exp: now_secs() - 120,
            nbf: 0,
            iat: 0,
            grants: Grants::default(),
        };
        let t = encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret("x".repeat(40).as_bytes()),
        )
        .unwrap();
        assert_eq!(key().verify(&t), Err(TokenError::Expired));
        assert_eq!(key().verify("garbage"), Err(TokenError::Invalid));
        assert_eq!(key().verify(&"a".repeat(10_000)), Err(TokenError::Invalid));
        // alg=none is refused.
        let none = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJpc3MiOiJrMSIsInN1YiI6ImEiLCJleHAiOjk5OTk5OTk5OTl9.";
        assert_eq!(key().verify(none), Err(TokenError::Invalid));
    }

    #[test]
    fn identities_are_checked() {
        assert!(valid_identity("alice.b-c_d@x+y"));
        assert!(!valid_identity(""));
        assert!(!valid_identity("a b"));
        assert!(!valid_identity(&"a".repeat(65)));
        assert!(key().mint("bad id", "", Grants::default(), 60).is_err());
        assert!(!valid_name("a\nb"));
    }

    #[test]
    fn secret_comparison() {
        assert!(key().secret_matches(&"x".repeat(40)));
        assert!(!key().secret_matches(&"x".repeat(39)));
        assert!(!key().secret_matches(&"y".repeat(40)));
        assert!(!format!("{:?}", key()).contains("xxxx"));
    }

    #[test]
    fn dev_key_is_created_once() {
        let dir = std::env::temp_dir().join(format!(
            "strowger-key-{}-{}",
            std::process::id(),
            random_id("", 4)
        ));
        let (k1, created) = load_or_create_dev_key(&dir).unwrap();
        assert!(created);
        let (k2, created) = load_or_create_dev_key(&dir).unwrap();
        assert!(!created);
        assert_eq!(k1.id, k2.id);
        let t = k1.mint("a", "", Grants::default(), 10).unwrap();
        assert!(k2.verify(&t).is_ok());
        std::fs::remove_dir_all(dir).ok();
    }
}
