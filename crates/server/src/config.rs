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
    pub relay: RelayConfig,
    pub store: StoreConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// HTTP listen address: API, web app, WebSocket signalling, metrics.
    pub listen: SocketAddr,
    /// URL printed for the web app (default: derived from the listen address).
    pub public_url: String,
    /// PEM certificate chain: when set with `tls_key`, the HTTP port speaks HTTPS (and WSS for
    /// `/ws` and `/sip`). Empty: plain HTTP.
    pub tls_cert: String,
    /// PEM private key of `tls_cert`.
    pub tls_key: String,
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
pub struct RelayConfig {
    /// Address the RTP relay's media sockets bind to (SIP calls' media).
    pub bind: IpAddr,
    /// Address written into SDP for relayed media (the public IP behind NAT). Empty: the bind
    /// address if specific, else the local address the call's SIP traffic uses.
    pub public_ip: String,
    /// Lowest UDP port of the relay's range (each call takes two even/odd RTP/RTCP pairs).
    pub port_min: u16,
    /// Highest UDP port of the range.
    pub port_max: u16,
    /// A call with no RTP in either direction for this long is reported inactive, seconds.
    pub rtp_timeout_secs: u64,
    /// The same for a call on hold, seconds.
    pub hold_timeout_secs: u64,
    /// Relayed calls at once.
    pub max_sessions: usize,
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
            relay: RelayConfig::default(),
            store: StoreConfig::default(),
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: "0.0.0.0:8080".parse().expect("literal"),
            public_url: String::new(),
            tls_cert: String::new(),
            tls_key: String::new(),
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

/// SIP: transports, registrar, call control, protection.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SipConfig {
    /// UDP and TCP listen address. Empty disables SIP.
    pub listen: String,
    /// SIP over TLS (RFC 3261 §26) listen address, such as `0.0.0.0:5061`. Empty: no TLS.
    /// Needs `listen` (SIP on), `tls_cert` and `tls_key`.
    pub tls_listen: String,
    /// TLS certificate chain, PEM file path (the server certificate first). Read at start.
    pub tls_cert: String,
    /// TLS private key (PKCS#8, PKCS#1 or SEC1), PEM file path. Read at start.
    pub tls_key: String,
    /// Address written into Via, Contact and Record-Route and SDP when `listen` is a wildcard
    /// (the public IP behind NAT). Empty: the local address that routes to the peer.
    pub public_ip: String,
    /// Domains served besides the server's own addresses (an AoR `sip:alice@example.com` is local
    /// when `example.com` is listed).
    pub domains: Vec<String>,
    /// Digest realm. Users' stored hashes depend on it: changing it requires new passwords.
    pub realm: String,
    /// Retransmission timer T1, milliseconds (RFC 3261 §17).
    pub t1_ms: u64,
    /// Timer T2, milliseconds.
    pub t2_ms: u64,
    /// Timer T4, milliseconds.
    pub t4_ms: u64,
    /// Shortest registration accepted, seconds (shorter gets 423 with Min-Expires).
    pub min_expires_secs: u32,
    /// Longest registration granted, seconds (longer is shortened).
    pub max_expires_secs: u32,
    /// Registration time when the REGISTER names none, seconds.
    pub default_expires_secs: u32,
    /// Contacts kept per address of record.
    pub max_contacts_per_user: usize,
    /// An unanswered call is cancelled after this long, seconds (the caller gets 480).
    pub no_answer_timeout_secs: u64,
    /// Session refresh interval offered and accepted (RFC 4028), seconds; 0 disables session timers.
    pub session_expires_secs: u32,
    /// Smallest session interval accepted (RFC 4028 Min-SE), seconds.
    pub min_se_secs: u32,
    /// Largest SIP message accepted, bytes.
    pub max_message_bytes: usize,
    /// Concurrent calls; more get 503.
    pub max_calls: usize,
    /// SIP transactions kept at once; more requests get a stateless 503. A REGISTER's
    /// transaction stays 32 s after its answer over UDP (RFC 3261 Timer J, absorbing
    /// retransmissions), so this bounds registrations per second to about max / 32.
    pub max_transactions: usize,
    /// Requests per second accepted from one source IP on average; 0 disables the limit.
    pub rate_per_sec: u32,
    /// Burst of requests above the average.
    pub rate_burst: u32,
    /// Failed authentications from one IP within `ban_window_secs` that ban it.
    pub ban_after_failures: u32,
    /// Window over which authentication failures are counted, seconds.
    pub ban_window_secs: u64,
    /// How long a banned IP is ignored, seconds.
    pub ban_secs: u64,
    /// Sources never rate limited or banned (IPs).
    pub trusted_ips: Vec<IpAddr>,
    /// Open TCP connections at once.
    pub max_connections: usize,
    /// A TCP connection idle this long is closed, seconds (clients keep it with CRLF pings).
    pub connection_idle_secs: u64,
    /// Media between two endpoints that are not behind NAT goes direct instead of through the
    /// relay. Off by default: anchoring is what recording, billing and topology hiding need.
    pub direct_media: bool,
    /// Where calls to names that are not users go, e.g. `sip:192.0.2.10:5060` (a PSTN gateway,
    /// a trunk, another PBX; an IP address, `;transport=tcp` allowed). Empty: such calls get 404.
    pub default_route: String,
}

impl Default for SipConfig {
    fn default() -> Self {
        SipConfig {
            listen: "0.0.0.0:5060".into(),
            tls_listen: String::new(),
            tls_cert: String::new(),
            tls_key: String::new(),
            public_ip: String::new(),
            domains: Vec::new(),
            realm: "strowger".into(),
            t1_ms: 500,
            t2_ms: 4000,
            t4_ms: 5000,
            min_expires_secs: 60,
            max_expires_secs: 7200,
            default_expires_secs: 3600,
            max_contacts_per_user: 10,
            no_answer_timeout_secs: 60,
            session_expires_secs: 1800,
            min_se_secs: 90,
            max_message_bytes: 65_535,
            max_calls: 10_000,
            max_transactions: 200_000,
            rate_per_sec: 200,
            rate_burst: 400,
            ban_after_failures: 10,
            ban_window_secs: 60,
            ban_secs: 600,
            trusted_ips: Vec::new(),
            max_connections: 10_000,
            connection_idle_secs: 300,
            direct_media: false,
            default_route: String::new(),
        }
    }
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            bind: IpAddr::from([0, 0, 0, 0]),
            public_ip: String::new(),
            port_min: 40000,
            port_max: 49999,
            rtp_timeout_secs: 60,
            hold_timeout_secs: 3600,
            max_sessions: 10_000,
        }
    }
}

impl RelayConfig {
    /// The relay's options (the configuration has been validated).
    pub fn options(&self) -> crate::relay::RelayOptions {
        crate::relay::RelayOptions {
            bind: self.bind,
            public_ip: self.public_ip.parse().ok(),
            port_min: self.port_min,
            port_max: self.port_max,
            rtp_timeout: std::time::Duration::from_secs(self.rtp_timeout_secs),
            hold_timeout: std::time::Duration::from_secs(self.hold_timeout_secs),
            max_sessions: self.max_sessions,
        }
    }
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
        if self.http.tls_cert.is_empty() != self.http.tls_key.is_empty() {
            return bad(
                "http.tls_cert",
                "set both http.tls_cert and http.tls_key (HTTPS), or neither (HTTP)",
            );
        }
        let sip = &self.sip;
        if !sip.listen.is_empty() && sip.listen.parse::<SocketAddr>().is_err() {
            return bad(
                "sip.listen",
                "must be an address such as 0.0.0.0:5060, or empty",
            );
        }
        if !sip.tls_listen.is_empty() {
            if sip.tls_listen.parse::<SocketAddr>().is_err() {
                return bad(
                    "sip.tls_listen",
                    "must be an address such as 0.0.0.0:5061, or empty",
                );
            }
            if sip.listen.is_empty() {
                return bad(
                    "sip.tls_listen",
                    "needs sip.listen: SIP is off when sip.listen is empty",
                );
            }
            if sip.tls_cert.is_empty() {
                return bad(
                    "sip.tls_cert",
                    "required when sip.tls_listen is set (PEM certificate chain file)",
                );
            }
            if sip.tls_key.is_empty() {
                return bad(
                    "sip.tls_key",
                    "required when sip.tls_listen is set (PEM private key file)",
                );
            }
        }
        if !sip.public_ip.is_empty() && sip.public_ip.parse::<IpAddr>().is_err() {
            return bad("sip.public_ip", "must be an IP address, or empty");
        }
        if sip.t1_ms == 0 || sip.t2_ms < sip.t1_ms || sip.t4_ms == 0 {
            return bad("sip.t1_ms", "need t1_ms > 0, t2_ms >= t1_ms, t4_ms > 0");
        }
        if sip.min_expires_secs == 0
            || sip.max_expires_secs < sip.min_expires_secs
            || sip.default_expires_secs < sip.min_expires_secs
            || sip.default_expires_secs > sip.max_expires_secs
        {
            return bad(
                "sip.min_expires_secs",
                "need 0 < min_expires_secs <= default_expires_secs <= max_expires_secs",
            );
        }
        if sip.max_message_bytes < 1500 || sip.max_message_bytes > 1 << 20 {
            return bad("sip.max_message_bytes", "must be between 1500 and 1048576");
        }
        if sip.session_expires_secs != 0 && sip.session_expires_secs < sip.min_se_secs {
            return bad(
                "sip.session_expires_secs",
                "must be 0 or at least sip.min_se_secs",
            );
        }
        if sip.min_se_secs < 90 {
            return bad("sip.min_se_secs", "must be at least 90 (RFC 4028)");
        }
        if !sip.default_route.is_empty() {
            match strowger_sip::Uri::parse(&sip.default_route) {
                Ok(u)
                    if matches!(
                        u.host,
                        strowger_sip::Host::V4(_) | strowger_sip::Host::V6(_)
                    ) => {}
                _ => {
                    return bad(
                        "sip.default_route",
                        "must be a SIP URI with an IP address, such as sip:192.0.2.10:5060",
                    )
                }
            }
        }
        if sip.max_transactions < 100 {
            return bad("sip.max_transactions", "must be at least 100");
        }
        if sip.no_answer_timeout_secs == 0 {
            return bad("sip.no_answer_timeout_secs", "must be at least 1");
        }
        if sip.max_contacts_per_user == 0 {
            return bad("sip.max_contacts_per_user", "must be at least 1");
        }
        let r = &self.relay;
        if !r.public_ip.is_empty() && r.public_ip.parse::<IpAddr>().is_err() {
            return bad("relay.public_ip", "must be an IP address (or empty)");
        }
        if r.port_min < 1024 {
            return bad("relay.port_min", "must be at least 1024");
        }
        // A call takes two even/odd pairs: the range must hold at least four ports from an
        // even one.
        if u32::from(r.port_max) < u32::from(r.port_min) + u32::from(r.port_min & 1) + 3 {
            return bad(
                "relay.port_max",
                "must leave room for one call: at least 4 ports from an even relay.port_min",
            );
        }
        if r.rtp_timeout_secs == 0 {
            return bad("relay.rtp_timeout_secs", "must be at least 1");
        }
        if r.hold_timeout_secs < r.rtp_timeout_secs {
            return bad(
                "relay.hold_timeout_secs",
                "must be at least relay.rtp_timeout_secs",
            );
        }
        if r.max_sessions == 0 {
            return bad("relay.max_sessions", "must be at least 1");
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
    fn relay_section() {
        let c = Config::load(
            None,
            vec![("STROWGER_RELAY_PORT_MIN".to_string(), "30000".to_string())].into_iter(),
            &[
                "relay.public_ip=192.0.2.7".into(),
                "relay.port_max=30099".into(),
            ],
        )
        .unwrap();
        let o = c.relay.options();
        assert_eq!((o.port_min, o.port_max), (30000, 30099));
        assert_eq!(o.public_ip, Some("192.0.2.7".parse().unwrap()));
        assert_eq!(o.rtp_timeout, std::time::Duration::from_secs(60));
        assert_eq!(Config::default().relay.options().public_ip, None);
        for (set, key) in [
            ("relay.public_ip=nope", "relay.public_ip"),
            ("relay.port_max=40002", "relay.port_max"),
            ("relay.port_min=80", "relay.port_min"),
            ("relay.rtp_timeout_secs=0", "relay.rtp_timeout_secs"),
            ("relay.hold_timeout_secs=5", "relay.hold_timeout_secs"),
            ("relay.max_sessions=0", "relay.max_sessions"),
        ] {
            let e = Config::load(None, std::iter::empty(), &[set.into()]).unwrap_err();
            assert!(e.to_string().contains(key), "{set}: {e}");
        }
        let e =
            Config::load(None, std::iter::empty(), &["relay.port_max=70000".into()]).unwrap_err();
        assert!(
            e.to_string().contains("port_max") || e.to_string().contains("u16"),
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

    #[test]
    fn sip_tls_options() {
        let c = Config::default();
        assert!(c.sip.tls_listen.is_empty(), "TLS is off by default");
        let c = Config::load(
            None,
            std::iter::empty(),
            &[
                "sip.tls_listen=127.0.0.1:5061".into(),
                "sip.tls_cert=/etc/strowger/cert.pem".into(),
                "sip.tls_key=/etc/strowger/key.pem".into(),
            ],
        )
        .unwrap();
        assert_eq!(c.sip.tls_listen, "127.0.0.1:5061");
        for (sets, key) in [
            (vec!["sip.tls_listen=nope"], "sip.tls_listen"),
            (vec!["sip.tls_listen=0.0.0.0:5061"], "sip.tls_cert"),
            (
                vec!["sip.tls_listen=0.0.0.0:5061", "sip.tls_cert=/c.pem"],
                "sip.tls_key",
            ),
            (
                vec![
                    "sip.listen=",
                    "sip.tls_listen=0.0.0.0:5061",
                    "sip.tls_cert=/c.pem",
                    "sip.tls_key=/k.pem",
                ],
                "sip.tls_listen",
            ),
        ] {
            let sets: Vec<String> = sets.into_iter().map(String::from).collect();
            let e = Config::load(None, std::iter::empty(), &sets).unwrap_err();
            assert!(e.to_string().contains(key), "{sets:?}: {e}");
        }
    }
}
