//! HTTP Digest authentication for SIP (RFC 2617, RFC 7616; RFC 3261 §22.4), `qop=auth` or none,
//! with MD5, MD5-sess, SHA-256 and SHA-256-sess.
//!
//! Works on header *values* (`WWW-Authenticate`, `Proxy-Authenticate`, `Authorization`,
//! `Proxy-Authorization`), not on messages. The client side computes credentials for a challenge
//! ([`respond`]); the server side ([`Verifier`]) issues stateless-verifiable nonces and verifies
//! credentials against a stored HA1 ([`ha1`]). Time is always passed in by the caller as seconds
//! (any monotonic origin); nothing here reads a clock.
//!
//! Replay policy of the [`Verifier`]: with `qop=auth` the nonce-count must strictly increase for
//! each nonce; without qop a nonce is accepted once only (the next request is challenged again).
//! The memory of used nonces is bounded: expired nonces are forgotten, and if the table is still
//! full the oldest entries are dropped and every nonce issued up to the dropped one is treated
//! as stale from then on (the client just gets a fresh nonce, never a replay).

use std::collections::BTreeMap;
use std::fmt;

use md5::Md5;
use sha2::{Digest as _, Sha256};

/// Longest header value the parsers accept, in bytes.
pub const MAX_VALUE_LEN: usize = 4096;
/// Most auth-params the parsers accept in one header value.
pub const MAX_PARAMS: usize = 32;

/// Why a header value could not be parsed, or a response could not be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    /// The value is longer than [`MAX_VALUE_LEN`].
    #[error("header value too long")]
    TooLong,
    /// More than [`MAX_PARAMS`] auth-params.
    #[error("too many auth-params")]
    TooManyParams,
    /// The scheme is not `Digest`.
    #[error("not a Digest scheme")]
    NotDigest,
    /// A syntax error.
    #[error("syntax error: {0}")]
    Syntax(&'static str),
    /// A required parameter is missing.
    #[error("missing parameter {0}")]
    Missing(&'static str),
    /// A parameter appears twice.
    #[error("duplicate parameter")]
    Duplicate,
    /// The algorithm is not one we implement.
    #[error("unsupported algorithm")]
    UnsupportedAlgorithm,
    /// The qop is not one we implement (only `auth`).
    #[error("unsupported qop")]
    UnsupportedQop,
    /// The nonce-count is not 1 to 8 hex digits.
    #[error("bad nonce-count")]
    BadNonceCount,
}

/// A digest algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// `MD5` (the default when no algorithm is given).
    Md5,
    /// `MD5-sess`.
    Md5Sess,
    /// `SHA-256` (RFC 7616).
    Sha256,
    /// `SHA-256-sess` (RFC 7616).
    Sha256Sess,
}

impl Algorithm {
    /// Parses an algorithm name, case-insensitively.
    pub fn parse(s: &str) -> Option<Algorithm> {
        [
            Algorithm::Md5,
            Algorithm::Md5Sess,
            Algorithm::Sha256,
            Algorithm::Sha256Sess,
        ]
        .into_iter()
        .find(|a| a.as_str().eq_ignore_ascii_case(s))
    }

    /// The name as written on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Md5Sess => "MD5-sess",
            Algorithm::Sha256 => "SHA-256",
            Algorithm::Sha256Sess => "SHA-256-sess",
        }
    }

    /// Whether this is a `-sess` variant.
    pub fn is_sess(self) -> bool {
        matches!(self, Algorithm::Md5Sess | Algorithm::Sha256Sess)
    }

    /// The lowercase hex digest of `data`.
    pub fn hash_hex(self, data: &[u8]) -> String {
        match self {
            Algorithm::Md5 | Algorithm::Md5Sess => hex(&Md5::digest(data)),
            Algorithm::Sha256 | Algorithm::Sha256Sess => hex(&Sha256::digest(data)),
        }
    }

    /// Length of a hex digest of this algorithm.
    fn hex_len(self) -> usize {
        match self {
            Algorithm::Md5 | Algorithm::Md5Sess => 32,
            Algorithm::Sha256 | Algorithm::Sha256Sess => 64,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// HA1 = H(username ":" realm ":" password), what a server stores instead of the password.
/// For the `-sess` algorithms this is the base value; the session HA1 is derived per request.
pub fn ha1(alg: Algorithm, username: &str, realm: &str, password: &str) -> String {
    alg.hash_hex(format!("{username}:{realm}:{password}").as_bytes())
}

/// The `response` value for `qop=auth` (when `qop` is `Some((nc, cnonce))`) or no qop.
///
/// `ha1` is the stored H(username:realm:password); for `-sess` algorithms the session HA1 is
/// computed here from it, the nonce and the cnonce (hex form, as RFC 7616 §3.4.2 says).
pub fn compute_response(
    alg: Algorithm,
    ha1: &str,
    nonce: &str,
    qop: Option<(u32, &str)>,
    method: &str,
    uri: &str,
) -> String {
    let ha1 = if alg.is_sess() {
        let cnonce = qop.map(|(_, c)| c).unwrap_or("");
        alg.hash_hex(format!("{ha1}:{nonce}:{cnonce}").as_bytes())
    } else {
        ha1.to_owned()
    };
    let ha2 = alg.hash_hex(format!("{method}:{uri}").as_bytes());
    match qop {
        Some((nc, cnonce)) => {
            alg.hash_hex(format!("{ha1}:{nonce}:{nc:08x}:{cnonce}:auth:{ha2}").as_bytes())
        }
        None => alg.hash_hex(format!("{ha1}:{nonce}:{ha2}").as_bytes()),
    }
}

/// A parsed `WWW-Authenticate` / `Proxy-Authenticate` value with the `Digest` scheme.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Challenge {
    /// `realm`.
    pub realm: String,
    /// `nonce`.
    pub nonce: String,
    /// `opaque`, echoed back by the client.
    pub opaque: Option<String>,
    /// `algorithm` as written (absent means MD5).
    pub algorithm: Option<String>,
    /// The qop options offered (`qop="auth,auth-int"`), empty when absent.
    pub qop: Vec<String>,
    /// `stale=true`.
    pub stale: bool,
    /// `domain`.
    pub domain: Option<String>,
    /// Other auth-params, in order, unquoted.
    pub other: Vec<(String, String)>,
}

impl Challenge {
    /// Parses a challenge header value.
    pub fn parse(value: &str) -> Result<Challenge, DigestError> {
        let params = parse_digest(value)?;
        let mut c = Challenge::default();
        let mut realm = None;
        let mut nonce = None;
        let mut stale = None;
        let mut qop = None;
        for (name, v) in params {
            match name.to_ascii_lowercase().as_str() {
                "realm" => set_once(&mut realm, v)?,
                "nonce" => set_once(&mut nonce, v)?,
                "opaque" => set_once(&mut c.opaque, v)?,
                "algorithm" => set_once(&mut c.algorithm, v)?,
                "domain" => set_once(&mut c.domain, v)?,
                "stale" => set_once(&mut stale, v)?,
                "qop" => set_once(&mut qop, v)?,
                _ => c.other.push((name, v)),
            }
        }
        c.realm = realm.ok_or(DigestError::Missing("realm"))?;
        c.nonce = nonce.ok_or(DigestError::Missing("nonce"))?;
        c.stale = stale.is_some_and(|s| s.eq_ignore_ascii_case("true"));
        if let Some(q) = qop {
            c.qop = q
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
        }
        Ok(c)
    }

    /// The algorithm: absent means MD5; an unknown one is an error.
    pub fn algorithm(&self) -> Result<Algorithm, DigestError> {
        match &self.algorithm {
            None => Ok(Algorithm::Md5),
            Some(a) => Algorithm::parse(a).ok_or(DigestError::UnsupportedAlgorithm),
        }
    }

    /// Whether `qop=auth` is offered.
    pub fn offers_auth(&self) -> bool {
        self.qop.iter().any(|q| q.eq_ignore_ascii_case("auth"))
    }
}

impl fmt::Display for Challenge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest realm={}", Quoted(&self.realm))?;
        if let Some(d) = &self.domain {
            write!(f, ", domain={}", Quoted(d))?;
        }
        write!(f, ", nonce={}", Quoted(&self.nonce))?;
        if let Some(o) = &self.opaque {
            write!(f, ", opaque={}", Quoted(o))?;
        }
        if self.stale {
            f.write_str(", stale=true")?;
        }
        if let Some(a) = &self.algorithm {
            write!(f, ", algorithm={}", TokenOrQuoted(a))?;
        }
        if !self.qop.is_empty() {
            write!(f, ", qop={}", Quoted(&self.qop.join(",")))?;
        }
        for (n, v) in &self.other {
            write!(f, ", {n}={}", TokenOrQuoted(v))?;
        }
        Ok(())
    }
}

/// A parsed `Authorization` / `Proxy-Authorization` value with the `Digest` scheme.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Credentials {
    /// `username`.
    pub username: String,
    /// `realm`.
    pub realm: String,
    /// `nonce`.
    pub nonce: String,
    /// `uri` (digest-uri).
    pub uri: String,
    /// `response`.
    pub response: String,
    /// `algorithm` as written (absent means MD5).
    pub algorithm: Option<String>,
    /// `cnonce`.
    pub cnonce: Option<String>,
    /// `opaque`.
    pub opaque: Option<String>,
    /// `qop` (a single value).
    pub qop: Option<String>,
    /// `nc`, the nonce-count.
    pub nc: Option<u32>,
    /// Other auth-params, in order, unquoted.
    pub other: Vec<(String, String)>,
}

impl Credentials {
    /// Parses a credentials header value.
    pub fn parse(value: &str) -> Result<Credentials, DigestError> {
        let params = parse_digest(value)?;
        let mut c = Credentials::default();
        let (mut username, mut realm, mut nonce, mut uri, mut response) =
            (None, None, None, None, None);
        let mut nc = None;
        for (name, v) in params {
            match name.to_ascii_lowercase().as_str() {
                "username" => set_once(&mut username, v)?,
                "realm" => set_once(&mut realm, v)?,
                "nonce" => set_once(&mut nonce, v)?,
                "uri" => set_once(&mut uri, v)?,
                "response" => set_once(&mut response, v)?,
                "algorithm" => set_once(&mut c.algorithm, v)?,
                "cnonce" => set_once(&mut c.cnonce, v)?,
                "opaque" => set_once(&mut c.opaque, v)?,
                "qop" => set_once(&mut c.qop, v)?,
                "nc" => set_once(&mut nc, v)?,
                _ => c.other.push((name, v)),
            }
        }
        c.username = username.ok_or(DigestError::Missing("username"))?;
        c.realm = realm.ok_or(DigestError::Missing("realm"))?;
        c.nonce = nonce.ok_or(DigestError::Missing("nonce"))?;
        c.uri = uri.ok_or(DigestError::Missing("uri"))?;
        c.response = response.ok_or(DigestError::Missing("response"))?;
        if let Some(nc) = nc {
            if nc.is_empty() || nc.len() > 8 || !nc.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(DigestError::BadNonceCount);
            }
            c.nc = Some(u32::from_str_radix(&nc, 16).map_err(|_| DigestError::BadNonceCount)?);
        }
        Ok(c)
    }

    /// The algorithm: absent means MD5; an unknown one is an error.
    pub fn algorithm(&self) -> Result<Algorithm, DigestError> {
        match &self.algorithm {
            None => Ok(Algorithm::Md5),
            Some(a) => Algorithm::parse(a).ok_or(DigestError::UnsupportedAlgorithm),
        }
    }
}

impl fmt::Display for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Digest username={}, realm={}, nonce={}, uri={}, response={}",
            Quoted(&self.username),
            Quoted(&self.realm),
            Quoted(&self.nonce),
            Quoted(&self.uri),
            Quoted(&self.response)
        )?;
        if let Some(a) = &self.algorithm {
            write!(f, ", algorithm={}", TokenOrQuoted(a))?;
        }
        if let Some(c) = &self.cnonce {
            write!(f, ", cnonce={}", Quoted(c))?;
        }
        if let Some(o) = &self.opaque {
            write!(f, ", opaque={}", Quoted(o))?;
        }
        if let Some(q) = &self.qop {
            write!(f, ", qop={}", TokenOrQuoted(q))?;
        }
        if let Some(nc) = self.nc {
            write!(f, ", nc={nc:08x}")?;
        }
        for (n, v) in &self.other {
            write!(f, ", {n}={}", TokenOrQuoted(v))?;
        }
        Ok(())
    }
}

/// Client side: the credentials answering `challenge` for a request `method` to `uri`.
///
/// Uses `qop=auth` when the challenge offers it (with `cnonce` and `nc`), no qop when the
/// challenge offers none; a challenge offering only `auth-int` is refused.
pub fn respond(
    challenge: &Challenge,
    method: &str,
    uri: &str,
    username: &str,
    password: &str,
    cnonce: &str,
    nc: u32,
) -> Result<Credentials, DigestError> {
    let alg = challenge.algorithm()?;
    let qop = if challenge.qop.is_empty() {
        None
    } else if challenge.offers_auth() {
        Some((nc, cnonce))
    } else {
        return Err(DigestError::UnsupportedQop);
    };
    if alg.is_sess() && qop.is_none() {
        // RFC 7616 defines the -sess algorithms with a cnonce, hence with qop.
        return Err(DigestError::UnsupportedQop);
    }
    let h1 = ha1(alg, username, &challenge.realm, password);
    let response = compute_response(alg, &h1, &challenge.nonce, qop, method, uri);
    Ok(Credentials {
        username: username.to_owned(),
        realm: challenge.realm.clone(),
        nonce: challenge.nonce.clone(),
        uri: uri.to_owned(),
        response,
        algorithm: challenge.algorithm.clone(),
        cnonce: qop.map(|(_, c)| c.to_owned()),
        opaque: challenge.opaque.clone(),
        qop: qop.map(|_| "auth".to_owned()),
        nc: qop.map(|(n, _)| n),
        other: Vec::new(),
    })
}

fn set_once(slot: &mut Option<String>, v: String) -> Result<(), DigestError> {
    if slot.is_some() {
        return Err(DigestError::Duplicate);
    }
    *slot = Some(v);
    Ok(())
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

/// Splits `Digest k=v, k="v"` into (name, unquoted value) pairs.
fn parse_digest(value: &str) -> Result<Vec<(String, String)>, DigestError> {
    if value.len() > MAX_VALUE_LEN {
        return Err(DigestError::TooLong);
    }
    let b = value.as_bytes();
    let mut i = skip_ws(b, 0);
    let start = i;
    while i < b.len() && is_tchar(b[i]) {
        i += 1;
    }
    if !value[start..i].eq_ignore_ascii_case("digest") {
        return Err(DigestError::NotDigest);
    }
    if i < b.len() && !is_ws(b[i]) {
        return Err(DigestError::NotDigest);
    }
    let mut params = Vec::new();
    loop {
        // Skip whitespace and (possibly empty) list separators.
        while i < b.len() && (is_ws(b[i]) || b[i] == b',') {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        if params.len() >= MAX_PARAMS {
            return Err(DigestError::TooManyParams);
        }
        let ns = i;
        while i < b.len() && is_tchar(b[i]) {
            i += 1;
        }
        if ns == i {
            return Err(DigestError::Syntax("expected parameter name"));
        }
        let name = value[ns..i].to_owned();
        i = skip_ws(b, i);
        if i >= b.len() || b[i] != b'=' {
            return Err(DigestError::Syntax("expected '='"));
        }
        i = skip_ws(b, i + 1);
        let v = if i < b.len() && b[i] == b'"' {
            i += 1;
            let mut out = String::new();
            let mut run = i;
            loop {
                if i >= b.len() {
                    return Err(DigestError::Syntax("unterminated quoted string"));
                }
                match b[i] {
                    b'"' => {
                        out.push_str(&value[run..i]);
                        i += 1;
                        break;
                    }
                    b'\\' => {
                        out.push_str(&value[run..i]);
                        i += 1;
                        if i >= b.len() {
                            return Err(DigestError::Syntax("unterminated quoted string"));
                        }
                        // Escape a whole (possibly multi-byte) character.
                        let ch = value[i..].chars().next().unwrap_or('\\');
                        out.push(ch);
                        i += ch.len_utf8();
                        run = i;
                    }
                    b'\r' | b'\n' | 0 => {
                        return Err(DigestError::Syntax("control in quoted string"))
                    }
                    _ => i += 1,
                }
            }
            out
        } else {
            let vs = i;
            while i < b.len() && !is_ws(b[i]) && b[i] != b',' && b[i] != b'"' && b[i] >= 0x21 {
                i += 1;
            }
            if vs == i {
                return Err(DigestError::Syntax("expected parameter value"));
            }
            value[vs..i].to_owned()
        };
        params.push((name, v));
        i = skip_ws(b, i);
        if i < b.len() && b[i] != b',' {
            return Err(DigestError::Syntax("expected ','"));
        }
    }
    Ok(params)
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && is_ws(b[i]) {
        i += 1;
    }
    i
}

struct Quoted<'a>(&'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"")?;
        for ch in self.0.chars() {
            match ch {
                '"' | '\\' => write!(f, "\\{ch}")?,
                // CR/LF cannot be carried in a header value; drop them.
                '\r' | '\n' => {}
                _ => write!(f, "{ch}")?,
            }
        }
        f.write_str("\"")
    }
}

struct TokenOrQuoted<'a>(&'a str);

impl fmt::Display for TokenOrQuoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.0.is_empty() && self.0.bytes().all(is_tchar) {
            f.write_str(self.0)
        } else {
            Quoted(self.0).fmt(f)
        }
    }
}

/// Compares two byte strings in time independent of where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b) {
        diff |= x ^ y;
    }
    std::hint::black_box(diff) == 0
}

fn hmac_sha256(key: &[u8; 32], msg: &[u8]) -> [u8; 32] {
    let mut ipad = [0x36u8; 64];
    let mut opad = [0x5cu8; 64];
    for (i, k) in key.iter().enumerate() {
        ipad[i] ^= k;
        opad[i] ^= k;
    }
    let inner = Sha256::new()
        .chain_update(ipad)
        .chain_update(msg)
        .finalize();
    let outer = Sha256::new()
        .chain_update(opad)
        .chain_update(inner)
        .finalize();
    let mut out = [0u8; 32];
    out.copy_from_slice(&outer);
    out
}

/// Settings of a [`Verifier`].
#[derive(Debug, Clone)]
pub struct VerifierConfig {
    /// The realm we challenge with and accept.
    pub realm: String,
    /// How long a nonce stays fresh, in seconds (default 300). Older ones give [`Verdict::Stale`].
    pub nonce_lifetime: u64,
    /// Algorithms accepted, the first one used for challenges (default MD5, SHA-256).
    pub algorithms: Vec<Algorithm>,
    /// Refuse credentials without `qop=auth` (default false: RFC 2069-style clients allowed,
    /// each nonce then single-use).
    pub require_qop: bool,
    /// Most nonces whose use is remembered (default 10 000).
    pub max_tracked_nonces: usize,
}

impl VerifierConfig {
    /// Defaults for `realm`.
    pub fn new(realm: impl Into<String>) -> VerifierConfig {
        VerifierConfig {
            realm: realm.into(),
            nonce_lifetime: 300,
            algorithms: vec![Algorithm::Md5, Algorithm::Sha256],
            require_qop: false,
            max_tracked_nonces: 10_000,
        }
    }
}

/// Why credentials were refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailReason {
    /// The realm is not ours.
    WrongRealm,
    /// The digest-uri does not match the request-URI.
    UriMismatch,
    /// An algorithm we do not accept.
    UnsupportedAlgorithm,
    /// A qop we do not accept (or qop missing when required).
    UnsupportedQop,
    /// The nonce was not issued by us (bad MAC, bad form).
    BadNonce,
    /// A nonce-count that did not increase, or a no-qop nonce used again.
    Replay,
    /// No HA1 for this user.
    UnknownUser,
    /// The response does not match (wrong password).
    BadResponse,
}

/// The outcome of [`Verifier::verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Authenticated as this username.
    Ok(String),
    /// The response was right but the nonce has expired: challenge again with `stale=true`.
    Stale,
    /// Refused: challenge again (without stale).
    Failed(FailReason),
    /// The header value could not be parsed (400 Bad Request or a fresh challenge).
    Malformed,
}

#[derive(Debug, Clone, Copy)]
struct NonceUse {
    /// Highest nc seen (0 for a no-qop use).
    last_nc: u32,
}

/// Server side of digest authentication: issues nonces and verifies credentials (sans-IO).
///
/// A nonce is `hex(issue time) hex(counter) hex(HMAC-SHA-256(secret, time|counter|realm)[..16])`,
/// so its freshness is checked without state; state is kept only to reject replays.
#[derive(Debug)]
pub struct Verifier {
    config: VerifierConfig,
    secret: [u8; 32],
    counter: u64,
    used: BTreeMap<(u64, u64), NonceUse>,
    /// Nonces issued at or before this (time, counter) are treated as stale when not tracked.
    floor: Option<(u64, u64)>,
}

impl Verifier {
    /// A verifier with a random secret.
    pub fn new(config: VerifierConfig) -> Verifier {
        Verifier::with_secret(config, rand::random())
    }

    /// A verifier with a given secret (for several processes sharing nonces, or for tests).
    pub fn with_secret(config: VerifierConfig, secret: [u8; 32]) -> Verifier {
        Verifier {
            config,
            secret,
            counter: rand::random::<u32>() as u64,
            used: BTreeMap::new(),
            floor: None,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &VerifierConfig {
        &self.config
    }

    /// Number of nonces whose use is currently remembered.
    pub fn tracked_nonces(&self) -> usize {
        self.used.len()
    }

    /// A fresh nonce issued at `now` (seconds).
    pub fn nonce(&mut self, now: u64) -> String {
        self.counter = self.counter.wrapping_add(1);
        let mac = self.mac(now, self.counter);
        format!("{now:016x}{:016x}{}", self.counter, hex(&mac[..16]))
    }

    /// A challenge with a fresh nonce, the first configured algorithm and `qop="auth"`.
    pub fn challenge(&mut self, now: u64, stale: bool) -> Challenge {
        let alg = self
            .config
            .algorithms
            .first()
            .copied()
            .unwrap_or(Algorithm::Md5);
        self.challenge_with(now, alg, stale)
    }

    /// One challenge per configured algorithm, in configured order, to be sent as several
    /// `WWW-Authenticate` / `Proxy-Authenticate` headers (RFC 8760 §2.4); a client uses the
    /// first one whose algorithm it supports.
    pub fn challenges(&mut self, now: u64, stale: bool) -> Vec<Challenge> {
        let algs = self.config.algorithms.clone();
        algs.into_iter()
            .map(|a| self.challenge_with(now, a, stale))
            .collect()
    }

    /// A challenge with a fresh nonce for a given algorithm.
    pub fn challenge_with(&mut self, now: u64, alg: Algorithm, stale: bool) -> Challenge {
        Challenge {
            realm: self.config.realm.clone(),
            nonce: self.nonce(now),
            opaque: None,
            algorithm: Some(alg.as_str().to_owned()),
            qop: vec!["auth".to_owned()],
            stale,
            domain: None,
            other: Vec::new(),
        }
    }

    fn mac(&self, ts: u64, counter: u64) -> [u8; 32] {
        let mut msg = Vec::with_capacity(16 + self.config.realm.len());
        msg.extend_from_slice(&ts.to_be_bytes());
        msg.extend_from_slice(&counter.to_be_bytes());
        msg.extend_from_slice(self.config.realm.as_bytes());
        hmac_sha256(&self.secret, &msg)
    }

    /// Checks a nonce's form and MAC, returning its (issue time, counter).
    fn check_nonce(&self, nonce: &str) -> Option<(u64, u64)> {
        if nonce.len() != 64 || !nonce.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let ts = u64::from_str_radix(&nonce[..16], 16).ok()?;
        let counter = u64::from_str_radix(&nonce[16..32], 16).ok()?;
        let mac = self.mac(ts, counter);
        let expected = hex(&mac[..16]);
        let given = nonce[32..].to_ascii_lowercase();
        constant_time_eq(expected.as_bytes(), given.as_bytes()).then_some((ts, counter))
    }

    /// Verifies a credentials header value for a request `method` to `request_uri` at `now`.
    ///
    /// `lookup(username, algorithm)` returns the stored HA1 ([`ha1`]) for that user and
    /// algorithm, or `None` for an unknown user.
    pub fn verify<F>(
        &mut self,
        value: &str,
        method: &str,
        request_uri: &str,
        now: u64,
        lookup: F,
    ) -> Verdict
    where
        F: FnOnce(&str, Algorithm) -> Option<String>,
    {
        match Credentials::parse(value) {
            Ok(c) => self.verify_credentials(&c, method, request_uri, now, lookup),
            Err(_) => Verdict::Malformed,
        }
    }

    /// Like [`Verifier::verify`] on already parsed credentials.
    pub fn verify_credentials<F>(
        &mut self,
        c: &Credentials,
        method: &str,
        request_uri: &str,
        now: u64,
        lookup: F,
    ) -> Verdict
    where
        F: FnOnce(&str, Algorithm) -> Option<String>,
    {
        if c.realm != self.config.realm {
            return Verdict::Failed(FailReason::WrongRealm);
        }
        let alg = match c.algorithm() {
            Ok(a) if self.config.algorithms.contains(&a) => a,
            _ => return Verdict::Failed(FailReason::UnsupportedAlgorithm),
        };
        let qop = match &c.qop {
            Some(q) if q.eq_ignore_ascii_case("auth") => match (c.nc, &c.cnonce) {
                (Some(nc), Some(cnonce)) if !cnonce.is_empty() => Some((nc, cnonce.as_str())),
                _ => return Verdict::Malformed,
            },
            Some(_) => return Verdict::Failed(FailReason::UnsupportedQop),
            None if self.config.require_qop => return Verdict::Failed(FailReason::UnsupportedQop),
            None => None,
        };
        if alg.is_sess() && qop.is_none() {
            return Verdict::Failed(FailReason::UnsupportedQop);
        }
        if !uri_matches(&c.uri, request_uri) {
            return Verdict::Failed(FailReason::UriMismatch);
        }
        let Some(key) = self.check_nonce(&c.nonce) else {
            return Verdict::Failed(FailReason::BadNonce);
        };
        let Some(stored) = lookup(&c.username, alg) else {
            return Verdict::Failed(FailReason::UnknownUser);
        };
        let expected = compute_response(alg, &stored, &c.nonce, qop, method, &c.uri);
        let given = c.response.to_ascii_lowercase();
        if given.len() != alg.hex_len() || !constant_time_eq(expected.as_bytes(), given.as_bytes())
        {
            return Verdict::Failed(FailReason::BadResponse);
        }
        // The response is right: now freshness and replay.
        let (ts, _) = key;
        if now.saturating_sub(ts) > self.config.nonce_lifetime {
            self.used.remove(&key);
            return Verdict::Stale;
        }
        let nc = qop.map(|(nc, _)| nc);
        match self.used.get_mut(&key) {
            Some(u) => match nc {
                Some(nc) if nc > u.last_nc => u.last_nc = nc,
                _ => return Verdict::Failed(FailReason::Replay),
            },
            None => {
                if self.floor.is_some_and(|f| key <= f) {
                    // Its use may have been forgotten: make the client take a fresh nonce.
                    return Verdict::Stale;
                }
                if nc == Some(0) {
                    return Verdict::Failed(FailReason::Replay);
                }
                self.remember(key, nc.unwrap_or(0), now);
            }
        }
        Verdict::Ok(c.username.clone())
    }

    fn remember(&mut self, key: (u64, u64), last_nc: u32, now: u64) {
        let max = self.config.max_tracked_nonces.max(1);
        if self.used.len() >= max {
            // Forget expired nonces (they are stale by their timestamp anyway).
            let lifetime = self.config.nonce_lifetime;
            let cutoff = now.saturating_sub(lifetime);
            self.used = self.used.split_off(&(cutoff, 0));
        }
        while self.used.len() >= max {
            match self.used.pop_first() {
                Some((k, _)) => self.floor = Some(self.floor.map_or(k, |f| f.max(k))),
                None => break,
            }
        }
        if self.floor.is_some_and(|f| key <= f) {
            return;
        }
        self.used.insert(key, NonceUse { last_nc });
    }
}

/// Whether the digest-uri names the request-URI: equal ignoring ASCII case of the scheme and
/// surrounding whitespace (clients put the request-URI there verbatim).
fn uri_matches(digest_uri: &str, request_uri: &str) -> bool {
    let a = digest_uri.trim();
    let b = request_uri.trim();
    if a == b {
        return true;
    }
    match (a.split_once(':'), b.split_once(':')) {
        (Some((sa, ra)), Some((sb, rb))) => sa.eq_ignore_ascii_case(sb) && ra == rb,
        _ => false,
    }
}
