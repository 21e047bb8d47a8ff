//! Configuration: embedded defaults, then a TOML file, then `STROWGER_*` environment variables,
//! then `--set key=value` flags (and the dedicated flags of `serve`), later ones winning.
//!
//! Every option has a dotted path (`rooms.max_participants`) and an environment variable made
//! from it (`STROWGER_ROOMS_MAX_PARTICIPANTS`). `strowger config` prints the effective
//! configuration, secrets masked.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The whole configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where state lives: the generated development API key and the database.
    pub data_dir: PathBuf,
    /// Log filter (tracing `EnvFilter` syntax), e.g. `info` or `strowger=debug,str0m=info`.
    pub log: String,
    /// `text` or `json`.
    pub log_format: String,
    pub http: HttpConfig,
    pub rtc: RtcConfig,
    pub auth: AuthConfig,
    pub rooms: RoomsConfig,
    pub calls: CallsConfig,
    pub signal: SignalConfig,
    pub sip: SipConfig,
    pub store: StoreConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// HTTP listen address: API, web app, WebSocket signalling, metrics.
    pub listen: SocketAddr,
    /// URL printed for the web app (default: derived from the listen address).
    pub public_url: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RtcConfig {
    /// The one UDP port all WebRTC media uses.
    pub listen: SocketAddr,
    /// Addresses advertised to browsers as ICE host candidates (the public IPs behind NAT).
    /// Empty: the listen address if specific, else every local interface address.
    pub public_ips: Vec<IpAddr>,
    /// Participants across all rooms.
    pub max_participants: usize,
    /// Rooms at once.
    pub max_rooms: usize,
    /// Initial bandwidth estimate per subscriber, bits/s.
    pub initial_estimate_bps: u64,
    /// A participant whose media connection stays disconnected this long is removed, seconds.
    pub media_timeout_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// API key id (the `iss` of tokens). Empty: a development key is generated in `data_dir`.
    pub api_key: String,
    /// API secret (HS256 key, at least 32 bytes).
    pub api_secret: String,
    /// Validity of tokens minted without an explicit TTL, seconds.
    pub default_ttl_secs: u64,
    /// Longest TTL the API mints, seconds.
    pub max_ttl_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RoomsConfig {
    /// Rooms are created by the first join.
    pub auto_create: bool,
    /// Default participant limit of a room.
    pub max_participants: usize,
    /// An empty room is closed after this long, seconds.
    pub empty_timeout_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CallsConfig {
    /// Ringing stops with `no_answer` after this long, seconds.
    pub ring_timeout_secs: u64,
    /// Outgoing calls a user may have ringing at once.
    pub max_ringing_per_user: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SignalConfig {
    /// Largest WebSocket frame accepted, bytes.
    pub max_message_bytes: usize,
    /// A dropped session may be resumed for this long, seconds.
    pub resume_window_secs: u64,
    /// Signed-in sessions at once.
    pub max_sessions: usize,
    /// Frames per second a client may send on average.
    pub rate_per_sec: u32,
    /// Burst of frames above the average.
    pub rate_burst: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SipConfig {
    /// Digest authentication realm. Users' password hashes are computed for it: after changing
    /// it, every password must be set again.
    pub realm: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// The database: a SQLite file path or `sqlite:` URL. Empty: `<data_dir>/strowger.db`.
    pub url: String,
}

impl Config {
    /// Where the database is: `store.url`, or `<data_dir>/strowger.db`.
    pub fn store_location(&self) -> String {
        if self.store.url.is_empty() {
            self.data_dir
                .join("strowger.db")
                .to_string_lossy()
                .into_owned()
        } else {
            self.store.url.clone()
        }
    }
}

impl Default for SipConfig {
    fn default() -> Self {
        SipConfig {
            realm: "strowger".into(),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("strowger-data"),
            log: "info".into(),
            log_format: "text".into(),
            http: HttpConfig::default(),
            rtc: RtcConfig::default(),
            auth: AuthConfig::default(),
            rooms: RoomsConfig::default(),
            calls: CallsConfig::default(),
            signal: SignalConfig::default(),
            sip: SipConfig::default(),
            store: StoreConfig::default(),
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: "0.0.0.0:8080".parse().expect("literal"),
            public_url: String::new(),
        }
    }
}

impl Default for RtcConfig {
    fn default() -> Self {
        RtcConfig {
            listen: "0.0.0.0:7882".parse().expect("literal"),
            public_ips: Vec::new(),
            max_participants: 2000,
            max_rooms: 1000,
            initial_estimate_bps: 600_000,
            media_timeout_secs: 30,
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            api_key: String::new(),
            api_secret: String::new(),
            default_ttl_secs: 6 * 3600,
            max_ttl_secs: 7 * 24 * 3600,
        }
    }
}

impl Default for RoomsConfig {
    fn default() -> Self {
        RoomsConfig {
            auto_create: true,
            max_participants: 50,
            empty_timeout_secs: 300,
        }
    }
}

impl Default for CallsConfig {
    fn default() -> Self {
        CallsConfig {
            ring_timeout_secs: 30,
            max_ringing_per_user: 4,
        }
    }
}

impl Default for SignalConfig {
    fn default() -> Self {
        SignalConfig {
            max_message_bytes: 64 * 1024,
            resume_window_secs: 20,
            max_sessions: 10_000,
            rate_per_sec: 50,
            rate_burst: 100,
        }
    }
}

/// A configuration problem, reported with the option's path.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("config file {0}: {1}")]
    Parse(PathBuf, String),
    #[error("{0}: unknown option")]
    UnknownKey(String),
    #[error("{key}: {msg}")]
    Invalid { key: String, msg: String },
}

impl Config {
    /// Loads defaults, the file (if any), the environment and the `key=value` overrides.
    pub fn load(
        file: Option<&std::path::Path>,
        env: impl Iterator<Item = (String, String)>,
        sets: &[String],
    ) -> Result<Config, ConfigError> {
        let mut value = toml::Value::try_from(Config::default()).expect("defaults serialize");
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| ConfigError::Read(path.to_path_buf(), e))?;
            let file_value: toml::Value = toml::from_str(&text)
                .map_err(|e| ConfigError::Parse(path.to_path_buf(), e.to_string()))?;
            merge(&mut value, file_value);
            // Unknown keys in the file are errors, with their path.
            Config::deserialize(value.clone())
                .map_err(|e| ConfigError::Parse(path.to_path_buf(), e.to_string()))?;
        }
        let keys = leaf_paths(&value);
        let env: Vec<(String, String)> = env.collect();
        for key in &keys {
            let var = env_name(key);
            let alias = ENV_ALIASES.iter().find(|(_, p)| p == key).map(|(a, _)| *a);
            let found = env
                .iter()
                .find(|(k, _)| *k == var)
                .or_else(|| env.iter().find(|(k, _)| Some(k.as_str()) == alias));
            if let Some((_, v)) = found {
                set_path(&mut value, key, v)?;
            }
        }
        for s in sets {
            let (k, v) = s.split_once('=').ok_or_else(|| ConfigError::Invalid {
                key: s.clone(),
                msg: "expected key=value".into(),
            })?;
            if !keys.iter().any(|x| x == k.trim()) {
                return Err(ConfigError::UnknownKey(k.trim().to_string()));
            }
            set_path(&mut value, k.trim(), v)?;
        }
        let cfg = Config::deserialize(value).map_err(|e| ConfigError::Invalid {
            key: "config".into(),
            msg: e.to_string(),
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, msg: &str| {
            Err(ConfigError::Invalid {
                key: key.into(),
                msg: msg.into(),
            })
        };
        if !self.auth.api_secret.is_empty() && self.auth.api_secret.len() < 32 {
            return bad("auth.api_secret", "must be at least 32 characters");
        }
        if self.auth.api_secret.is_empty() != self.auth.api_key.is_empty() {
            return bad(
                "auth.api_key",
                "set both auth.api_key and auth.api_secret, or neither",
            );
        }
        if self.signal.max_message_bytes < 1024 || self.signal.max_message_bytes > 1 << 20 {
            return bad(
                "signal.max_message_bytes",
                "must be between 1024 and 1048576",
            );
        }
        if self.rooms.max_participants == 0 {
            return bad("rooms.max_participants", "must be at least 1");
        }
        if self.calls.ring_timeout_secs == 0 {
            return bad("calls.ring_timeout_secs", "must be at least 1");
        }
        if !matches!(self.log_format.as_str(), "text" | "json") {
            return bad("log_format", "must be text or json");
        }
        if self.signal.rate_per_sec == 0 {
            return bad("signal.rate_per_sec", "must be at least 1");
        }
        let realm = &self.sip.realm;
        if realm.is_empty()
            || realm.chars().count() > 128
            || realm
                .chars()
                .any(|c| c.is_control() || c == '"' || c == '\\')
        {
            return bad(
                "sip.realm",
                "must be 1-128 characters without quotes, backslashes or control characters",
            );
        }
        Ok(())
    }

    /// The configuration as TOML, with secrets masked.
    pub fn to_masked_toml(&self) -> String {
        let mut c = self.clone();
        if !c.auth.api_secret.is_empty() {
            c.auth.api_secret = "********".into();
        }
        toml::to_string_pretty(&c).expect("config serializes")
    }

    /// Every option's dotted path, for `--help` texts and documentation.
    pub fn option_paths() -> Vec<String> {
        leaf_paths(&toml::Value::try_from(Config::default()).expect("defaults serialize"))
    }
}

/// Short environment names kept for convenience (the long form wins when both are set).
const ENV_ALIASES: [(&str, &str); 2] = [
    ("STROWGER_API_KEY", "auth.api_key"),
    ("STROWGER_API_SECRET", "auth.api_secret"),
];

/// `rooms.max_participants` → `STROWGER_ROOMS_MAX_PARTICIPANTS`.
pub fn env_name(path: &str) -> String {
    format!("STROWGER_{}", path.replace('.', "_").to_ascii_uppercase())
}

fn merge(base: &mut toml::Value, over: toml::Value) {
    match (base, over) {
        (toml::Value::Table(b), toml::Value::Table(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

fn leaf_paths(v: &toml::Value) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(prefix: &str, v: &toml::Value, out: &mut Vec<String>) {
        match v {
            toml::Value::Table(t) => {
                for (k, v) in t {
                    let p = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&p, v, out);
                }
            }
            _ => out.push(prefix.to_string()),
        }
    }
    walk("", v, &mut out);
    out
}

/// Sets a leaf from a string, typed like the default it replaces.
fn set_path(root: &mut toml::Value, path: &str, raw: &str) -> Result<(), ConfigError> {
    let mut cur = root;
    for part in path.split('.') {
        cur = cur
            .get_mut(part)
            .ok_or_else(|| ConfigError::UnknownKey(path.to_string()))?;
    }
    let invalid = |msg: String| ConfigError::Invalid {
        key: path.to_string(),
        msg,
    };
    let raw = raw.trim();
    *cur = match cur {
        toml::Value::String(_) => toml::Value::String(raw.to_string()),
        toml::Value::Integer(_) => toml::Value::Integer(
            raw.parse()
                .map_err(|_| invalid(format!("'{raw}' is not an integer")))?,
        ),
        toml::Value::Boolean(_) => toml::Value::Boolean(match raw {
            "true" | "1" | "yes" | "on" => true,
            "false" | "0" | "no" | "off" => false,
            _ => return Err(invalid(format!("'{raw}' is not a boolean"))),
        }),
        toml::Value::Float(_) => toml::Value::Float(
            raw.parse()
                .map_err(|_| invalid(format!("'{raw}' is not a number")))?,
        ),
        // Lists are comma-separated.
        toml::Value::Array(_) => toml::Value::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| toml::Value::String(s.to_string()))
                .collect(),
        ),
        other => return Err(invalid(format!("cannot set a {}", other.type_str()))),
    };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_apply_in_order() {
        let dir = std::env::temp_dir().join(format!("strowger-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("c.toml");
        std::fs::write(
            &f,
            "[rooms]\nmax_participants = 7\nempty_timeout_secs = 9\n",
        )
        .unwrap();
        let env = vec![
            (
                "STROWGER_ROOMS_EMPTY_TIMEOUT_SECS".to_string(),
                "11".to_string(),
            ),
            (
                "STROWGER_RTC_PUBLIC_IPS".to_string(),
                "127.0.0.1, 10.0.0.1".to_string(),
            ),
            ("UNRELATED".to_string(), "x".to_string()),
        ];
        let c = Config::load(
            Some(&f),
            env.into_iter(),
            &["calls.ring_timeout_secs=5".into()],
        )
        .unwrap();
        assert_eq!(c.rooms.max_participants, 7);
        assert_eq!(c.rooms.empty_timeout_secs, 11);
        assert_eq!(c.calls.ring_timeout_secs, 5);
        assert_eq!(c.rtc.public_ips.len(), 2);
    }

    #[test]
    fn errors_name_the_option() {
        let e = Config::load(None, std::iter::empty(), &["rooms.nope=1".into()]).unwrap_err();
        assert!(e.to_string().contains("rooms.nope"), "{e}");
        let e = Config::load(
            None,
            std::iter::empty(),
            &["rooms.max_participants=many".into()],
        )
        .unwrap_err();
        assert!(e.to_string().contains("rooms.max_participants"), "{e}");
        let e = Config::load(
            None,
            vec![
                ("STROWGER_AUTH_API_SECRET".into(), "short".into()),
                ("STROWGER_AUTH_API_KEY".into(), "k".into()),
            ]
            .into_iter(),
            &[],
        )
        .unwrap_err();
        assert!(e.to_string().contains("auth.api_secret"), "{e}");
        let e =
            Config::load(None, std::iter::empty(), &["http.listen=nonsense".into()]).unwrap_err();
        assert!(
            e.to_string().contains("listen") || e.to_string().contains("address"),
            "{e}"
        );
    }

    #[test]
    fn masked_output_hides_the_secret() {
        let mut c = Config::default();
        c.auth.api_secret = "s".repeat(40);
        assert!(!c.to_masked_toml().contains(&"s".repeat(40)));
        assert!(Config::option_paths().contains(&"signal.resume_window_secs".to_string()));
    }

    #[test]
    fn store_location_and_realm() {
        let c = Config::load(None, std::iter::empty(), &["data_dir=/var/lib/x".into()]).unwrap();
        assert_eq!(c.store_location(), "/var/lib/x/strowger.db");
        assert_eq!(c.sip.realm, "strowger");
        let c = Config::load(
            None,
            vec![("STROWGER_SIP_REALM".to_string(), "example.com".to_string())].into_iter(),
            &["store.url=/tmp/s.db".into()],
        )
        .unwrap();
        assert_eq!(c.store_location(), "/tmp/s.db");
        assert_eq!(c.sip.realm, "example.com");
        let e = Config::load(None, std::iter::empty(), &["sip.realm=a\"b".into()]).unwrap_err();
        assert!(e.to_string().contains("sip.realm"), "{e}");
    }
}
