//! SDP (RFC 4566) parsing and serialization, and RFC 3264 offer/answer for plain RTP legs
//! (`RTP/AVP`, `RTP/SAVP`).
//!
//! Attributes are kept as an ordered list of (name, value) so that unknown ones survive a round
//! trip; typed views (`rtpmap`, `fmtp`, `ptime`, direction, `rtcp`, `crypto`, `mid`) are read
//! from that list. Parsing accepts LF or CRLF line ends; serialization writes CRLF. Every parser
//! is bounded ([`MAX_SDP_LEN`], [`MAX_MEDIA`], [`MAX_ATTRIBUTES`]) and returns an error, never
//! panics. `k=` lines are dropped (RFC 8866 obsoletes them); `r=` and `z=` lines are kept as text.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Largest SDP body accepted, in bytes.
pub const MAX_SDP_LEN: usize = 64 * 1024;
/// Most media sections accepted.
pub const MAX_MEDIA: usize = 32;
/// Most attributes accepted in one section (session or media).
pub const MAX_ATTRIBUTES: usize = 256;
/// Most formats accepted on one m= line.
pub const MAX_FORMATS: usize = 64;

/// Why an SDP body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    /// Longer than [`MAX_SDP_LEN`].
    #[error("SDP too long")]
    TooLong,
    /// Not UTF-8.
    #[error("SDP not UTF-8")]
    NotUtf8,
    /// More than [`MAX_MEDIA`] media sections.
    #[error("too many media sections")]
    TooManyMedia,
    /// More than [`MAX_ATTRIBUTES`] attributes in a section, or [`MAX_FORMATS`] formats.
    #[error("too many attributes")]
    TooManyAttributes,
    /// The body does not start with `v=0`.
    #[error("missing or bad v= line")]
    BadVersion,
    /// A required line is missing.
    #[error("missing {0}= line")]
    Missing(char),
    /// A malformed line (1-based line number).
    #[error("line {line}: {what}")]
    Syntax {
        /// 1-based line number.
        line: usize,
        /// What was wrong.
        what: &'static str,
    },
}

/// Address type of a `c=` or `o=` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddrType {
    /// `IP4`.
    Ip4,
    /// `IP6`.
    Ip6,
}

impl AddrType {
    fn parse(s: &str) -> Option<AddrType> {
        if s.eq_ignore_ascii_case("IP4") {
            Some(AddrType::Ip4)
        } else if s.eq_ignore_ascii_case("IP6") {
            Some(AddrType::Ip6)
        } else {
            None
        }
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            AddrType::Ip4 => "IP4",
            AddrType::Ip6 => "IP6",
        }
    }

    /// The type of an IP address.
    pub fn of(addr: IpAddr) -> AddrType {
        match addr {
            IpAddr::V4(_) => AddrType::Ip4,
            IpAddr::V6(_) => AddrType::Ip6,
        }
    }
}

/// A `c=` line: `IN <addrtype> <address>[/ttl][/count]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// `IP4` or `IP6`.
    pub addr_type: AddrType,
    /// The address (or host name), without the multicast suffix.
    pub address: String,
    /// The multicast `/ttl[/count]` suffix, without the leading `/`.
    pub suffix: Option<String>,
}

impl Connection {
    /// A unicast connection to `addr`.
    pub fn new(addr: IpAddr) -> Connection {
        Connection {
            addr_type: AddrType::of(addr),
            address: addr.to_string(),
            suffix: None,
        }
    }

    /// The address as an IP address, if it is one.
    pub fn ip(&self) -> Option<IpAddr> {
        self.address.parse().ok()
    }

    /// Whether this is the RFC 2543 hold address `0.0.0.0` (or `::`).
    pub fn is_unspecified(&self) -> bool {
        self.ip().is_some_and(|ip| ip.is_unspecified())
    }

    fn parse(v: &str, line: usize) -> Result<Connection, SdpError> {
        let mut it = v.split_ascii_whitespace();
        let (Some(net), Some(at), Some(addr), None) = (it.next(), it.next(), it.next(), it.next())
        else {
            return Err(syntax(line, "c= needs 3 fields"));
        };
        if !net.eq_ignore_ascii_case("IN") {
            return Err(syntax(line, "c= network type not IN"));
        }
        let addr_type = AddrType::parse(at).ok_or(syntax(line, "c= address type"))?;
        let (address, suffix) = match addr.split_once('/') {
            Some((a, s)) => (a, Some(s.to_owned())),
            None => (addr, None),
        };
        if address.is_empty() {
            return Err(syntax(line, "c= empty address"));
        }
        Ok(Connection {
            addr_type,
            address: address.to_owned(),
            suffix,
        })
    }
}

impl fmt::Display for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IN {} {}", self.addr_type.as_str(), self.address)?;
        if let Some(s) = &self.suffix {
            write!(f, "/{s}")?;
        }
        Ok(())
    }
}

/// The `o=` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// `username` (`-` when none).
    pub username: String,
    /// `sess-id` (kept as text: it may exceed 64 bits).
    pub session_id: String,
    /// `sess-version`, to be increased whenever the description changes.
    pub session_version: u64,
    /// Address type.
    pub addr_type: AddrType,
    /// Unicast address (or host name).
    pub address: String,
}

impl Origin {
    /// An origin for a new session.
    pub fn new(username: &str, session_id: u64, addr: IpAddr) -> Origin {
        Origin {
            username: username.to_owned(),
            session_id: session_id.to_string(),
            session_version: session_id,
            addr_type: AddrType::of(addr),
            address: addr.to_string(),
        }
    }

    /// Whether `other` names the same session (all fields but the version equal).
    pub fn same_session(&self, other: &Origin) -> bool {
        self.username == other.username
            && self.session_id == other.session_id
            && self.addr_type == other.addr_type
            && self.address == other.address
    }

    fn parse(v: &str, line: usize) -> Result<Origin, SdpError> {
        let f: Vec<&str> = v.split_ascii_whitespace().collect();
        if f.len() != 6 {
            return Err(syntax(line, "o= needs 6 fields"));
        }
        if !f[3].eq_ignore_ascii_case("IN") {
            return Err(syntax(line, "o= network type not IN"));
        }
        Ok(Origin {
            username: f[0].to_owned(),
            session_id: f[1].to_owned(),
            session_version: f[2].parse().map_err(|_| syntax(line, "o= version"))?,
            addr_type: AddrType::parse(f[4]).ok_or(syntax(line, "o= address type"))?,
            address: f[5].to_owned(),
        })
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {} IN {} {}",
            self.username,
            self.session_id,
            self.session_version,
            self.addr_type.as_str(),
            self.address
        )
    }
}

/// A `b=<type>:<kbps>` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bandwidth {
    /// `AS`, `CT`, `TIAS`, `RS`, `RR`...
    pub bw_type: String,
    /// The value.
    pub value: u64,
}

/// A `t=` line and its `r=` lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timing {
    /// Start time (0 = unbounded).
    pub start: u64,
    /// Stop time (0 = unbounded).
    pub stop: u64,
    /// `r=` lines, as text.
    pub repeats: Vec<String>,
}

/// An `a=` line: `a=name` or `a=name:value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    /// The attribute name.
    pub name: String,
    /// The value after `:`, if any.
    pub value: Option<String>,
}

impl Attribute {
    /// A property attribute (`a=name`).
    pub fn flag(name: &str) -> Attribute {
        Attribute {
            name: name.to_owned(),
            value: None,
        }
    }

    /// A value attribute (`a=name:value`).
    pub fn new(name: &str, value: impl Into<String>) -> Attribute {
        Attribute {
            name: name.to_owned(),
            value: Some(value.into()),
        }
    }
}

impl fmt::Display for Attribute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(v) => write!(f, "{}:{v}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// Media direction (RFC 3264 §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Direction {
    /// `sendrecv` (the default).
    #[default]
    SendRecv,
    /// `sendonly`.
    SendOnly,
    /// `recvonly`.
    RecvOnly,
    /// `inactive`.
    Inactive,
}

impl Direction {
    /// Parses an attribute name.
    pub fn parse(s: &str) -> Option<Direction> {
        match s {
            "sendrecv" => Some(Direction::SendRecv),
            "sendonly" => Some(Direction::SendOnly),
            "recvonly" => Some(Direction::RecvOnly),
            "inactive" => Some(Direction::Inactive),
            _ => None,
        }
    }

    /// The attribute name.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    /// Whether the side with this direction sends.
    pub fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    /// Whether the side with this direction receives.
    pub fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }

    /// The direction from send and receive flags.
    pub fn from_flags(send: bool, recv: bool) -> Direction {
        match (send, recv) {
            (true, true) => Direction::SendRecv,
            (true, false) => Direction::SendOnly,
            (false, true) => Direction::RecvOnly,
            (false, false) => Direction::Inactive,
        }
    }

    /// The same stream seen from the other side (sendonly ↔ recvonly).
    pub fn reversed(self) -> Direction {
        Direction::from_flags(self.receives(), self.sends())
    }

    /// The answer to an offered direction when we would like `ours` (RFC 3264 §6.1): we send
    /// only if the offerer receives, and receive only if it sends.
    pub fn answer(offered: Direction, ours: Direction) -> Direction {
        Direction::from_flags(
            offered.receives() && ours.sends(),
            offered.sends() && ours.receives(),
        )
    }
}

/// An RTP payload format: payload type, encoding, clock rate, channels, fmtp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Codec {
    /// RTP payload type.
    pub payload_type: u8,
    /// Encoding name as written (`PCMU`, `opus`, `telephone-event`).
    pub name: String,
    /// Clock rate in Hz.
    pub clock_rate: u32,
    /// Audio channels (1 when not given).
    pub channels: u8,
    /// The `a=fmtp` parameters, if any.
    pub fmtp: Option<String>,
}

impl Codec {
    /// A codec without fmtp.
    pub fn new(payload_type: u8, name: &str, clock_rate: u32, channels: u8) -> Codec {
        Codec {
            payload_type,
            name: name.to_owned(),
            clock_rate,
            channels,
            fmtp: None,
        }
    }

    /// The same with fmtp parameters.
    pub fn with_fmtp(mut self, fmtp: &str) -> Codec {
        self.fmtp = Some(fmtp.to_owned());
        self
    }

    /// A static payload type of RFC 3551 (e.g. 0 → PCMU/8000, 8 → PCMA/8000, 9 → G722/8000).
    pub fn from_static(pt: u8) -> Option<Codec> {
        let (name, rate, ch) = static_payload(pt)?;
        Some(Codec::new(pt, name, rate, ch))
    }

    /// `telephone-event` (RFC 4733).
    pub fn is_telephone_event(&self) -> bool {
        self.name.eq_ignore_ascii_case("telephone-event")
    }

    /// Comfort noise, DTMF and redundancy formats, which alone do not make a usable stream.
    pub fn is_auxiliary(&self) -> bool {
        self.is_telephone_event()
            || ["CN", "red", "ulpfec", "flexfec-03", "rtx"]
                .iter()
                .any(|n| self.name.eq_ignore_ascii_case(n))
    }

    /// Same encoding: name (case-insensitive), clock rate and channels.
    pub fn same_encoding(&self, other: &Codec) -> bool {
        self.name.eq_ignore_ascii_case(&other.name)
            && self.clock_rate == other.clock_rate
            && self.channels == other.channels
    }

    /// The `rtpmap` value: `<pt> <name>/<rate>[/<channels>]`.
    pub fn rtpmap(&self) -> String {
        if self.channels > 1 {
            format!(
                "{} {}/{}/{}",
                self.payload_type, self.name, self.clock_rate, self.channels
            )
        } else {
            format!("{} {}/{}", self.payload_type, self.name, self.clock_rate)
        }
    }
}

/// The RFC 3551 static payload types: (encoding, clock rate, channels).
pub fn static_payload(pt: u8) -> Option<(&'static str, u32, u8)> {
    Some(match pt {
        0 => ("PCMU", 8000, 1),
        3 => ("GSM", 8000, 1),
        4 => ("G723", 8000, 1),
        5 => ("DVI4", 8000, 1),
        6 => ("DVI4", 16000, 1),
        7 => ("LPC", 8000, 1),
        8 => ("PCMA", 8000, 1),
        9 => ("G722", 8000, 1),
        10 => ("L16", 44100, 2),
        11 => ("L16", 44100, 1),
        12 => ("QCELP", 8000, 1),
        13 => ("CN", 8000, 1),
        14 => ("MPA", 90000, 1),
        15 => ("G728", 8000, 1),
        16 => ("DVI4", 11025, 1),
        17 => ("DVI4", 22050, 1),
        18 => ("G729", 8000, 1),
        25 => ("CelB", 90000, 1),
        26 => ("JPEG", 90000, 1),
        28 => ("nv", 90000, 1),
        31 => ("H261", 90000, 1),
        32 => ("MPV", 90000, 1),
        33 => ("MP2T", 90000, 1),
        34 => ("H263", 90000, 1),
        _ => return None,
    })
}

/// An `a=rtcp` attribute (RFC 3605).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rtcp {
    /// The RTCP port.
    pub port: u16,
    /// The RTCP address, when given.
    pub connection: Option<Connection>,
}

/// An `a=crypto` attribute (RFC 4568), split into its fields; the rest is kept as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crypto {
    /// The tag.
    pub tag: u32,
    /// The crypto-suite, e.g. `AES_CM_128_HMAC_SHA1_80`.
    pub suite: String,
    /// The key parameters and session parameters, e.g. `inline:...`.
    pub params: String,
}

impl Crypto {
    /// Parses an `a=crypto` value.
    pub fn parse(v: &str) -> Option<Crypto> {
        let mut it = v.trim().splitn(3, ' ');
        let tag = it.next()?.parse().ok()?;
        let suite = it.next()?.to_owned();
        let params = it.next()?.trim().to_owned();
        (!suite.is_empty() && !params.is_empty()).then_some(Crypto { tag, suite, params })
    }
}

impl fmt::Display for Crypto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.tag, self.suite, self.params)
    }
}

/// A media section (`m=` and what follows it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media {
    /// `audio`, `video`, `application`...
    pub kind: String,
    /// The port (0 = rejected or disabled stream).
    pub port: u16,
    /// The `/count` of ports, if given.
    pub port_count: Option<u16>,
    /// The transport, e.g. `RTP/AVP`.
    pub proto: String,
    /// The formats (payload type numbers for RTP).
    pub formats: Vec<String>,
    /// `i=`.
    pub title: Option<String>,
    /// `c=` lines of this media.
    pub connections: Vec<Connection>,
    /// `b=` lines.
    pub bandwidths: Vec<Bandwidth>,
    /// `a=` lines in order.
    pub attributes: Vec<Attribute>,
}

impl Media {
    /// A media section without attributes.
    pub fn new(kind: &str, port: u16, proto: &str) -> Media {
        Media {
            kind: kind.to_owned(),
            port,
            port_count: None,
            proto: proto.to_owned(),
            formats: Vec::new(),
            title: None,
            connections: Vec::new(),
            bandwidths: Vec::new(),
            attributes: Vec::new(),
        }
    }

    /// Port 0: the stream is rejected or disabled.
    pub fn is_rejected(&self) -> bool {
        self.port == 0
    }

    /// Whether the transport is RTP (`RTP/AVP`, `RTP/SAVP`, `RTP/AVPF`, `UDP/TLS/RTP/SAVPF`...).
    pub fn is_rtp(&self) -> bool {
        self.proto.split('/').any(|p| p.eq_ignore_ascii_case("RTP"))
    }

    /// Values of the attributes called `name`, in order.
    pub fn attribute_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        attr_values(&self.attributes, name)
    }

    /// Whether a property attribute `name` is present.
    pub fn has_attribute(&self, name: &str) -> bool {
        self.attributes.iter().any(|a| a.name == name)
    }

    /// Removes every attribute called `name`.
    pub fn remove_attributes(&mut self, name: &str) {
        self.attributes.retain(|a| a.name != name);
    }

    /// The direction attribute of this media, if any.
    pub fn direction(&self) -> Option<Direction> {
        direction_of(&self.attributes)
    }

    /// Replaces the direction attribute (in place of the old one, else appended).
    pub fn set_direction(&mut self, d: Direction) {
        set_direction(&mut self.attributes, d);
    }

    /// `a=rtpmap` for a payload type: (encoding, clock rate, channels).
    pub fn rtpmap(&self, pt: u8) -> Option<(String, u32, u8)> {
        self.attribute_values("rtpmap").find_map(|v| {
            let (p, rest) = v.trim().split_once(' ')?;
            if p.parse::<u8>().ok()? != pt {
                return None;
            }
            let mut it = rest.trim().split('/');
            let name = it.next()?.trim();
            let rate = it.next()?.trim().parse().ok()?;
            let ch = match it.next() {
                Some(c) => c.trim().parse().ok()?,
                None => 1,
            };
            (!name.is_empty()).then(|| (name.to_owned(), rate, ch))
        })
    }

    /// `a=fmtp` parameters for a format.
    pub fn fmtp(&self, format: &str) -> Option<&str> {
        self.attribute_values("fmtp").find_map(|v| {
            let (f, rest) = v.split_once(' ')?;
            (f == format).then(|| rest.trim())
        })
    }

    /// `a=ptime` in milliseconds.
    pub fn ptime(&self) -> Option<u32> {
        self.attribute_values("ptime")
            .find_map(|v| v.trim().parse::<f32>().ok())
            .filter(|p| p.is_finite() && *p > 0.0 && *p < 10_000.0)
            .map(|p| p.round() as u32)
    }

    /// `a=maxptime` in milliseconds.
    pub fn maxptime(&self) -> Option<u32> {
        self.attribute_values("maxptime")
            .find_map(|v| v.trim().parse::<f32>().ok())
            .filter(|p| p.is_finite() && *p > 0.0 && *p < 10_000.0)
            .map(|p| p.round() as u32)
    }

    /// `a=rtcp` (RFC 3605).
    pub fn rtcp(&self) -> Option<Rtcp> {
        let v = self.attribute_values("rtcp").next()?.trim();
        let (port, rest) = match v.split_once(' ') {
            Some((p, r)) => (p, Some(r)),
            None => (v, None),
        };
        Some(Rtcp {
            port: port.parse().ok()?,
            connection: match rest {
                Some(r) => Some(Connection::parse(r, 0).ok()?),
                None => None,
            },
        })
    }

    /// `a=crypto` lines (RFC 4568) that parse.
    pub fn crypto(&self) -> Vec<Crypto> {
        self.attribute_values("crypto")
            .filter_map(Crypto::parse)
            .collect()
    }

    /// `a=mid` (RFC 5888).
    pub fn mid(&self) -> Option<&str> {
        self.attribute_values("mid").next().map(str::trim)
    }

    /// The codecs offered, in format order: rtpmap when present, else the static payload type
    /// table; dynamic types without rtpmap and non-numeric formats are skipped.
    pub fn codecs(&self) -> Vec<Codec> {
        if !self.is_rtp() {
            return Vec::new();
        }
        self.formats
            .iter()
            .filter_map(|f| {
                let pt: u8 = f.parse().ok().filter(|p| *p < 128)?;
                let mut c = match self.rtpmap(pt) {
                    Some((name, rate, ch)) => Codec::new(pt, &name, rate, ch),
                    None => Codec::from_static(pt)?,
                };
                c.fmtp = self.fmtp(f).map(str::to_owned);
                Some(c)
            })
            .collect()
    }

    /// Whether `telephone-event` (RFC 4733 DTMF) is offered.
    pub fn has_telephone_event(&self) -> bool {
        self.codecs().iter().any(Codec::is_telephone_event)
    }

    /// Appends a codec: its format, rtpmap (also for static types, which many stacks expect)
    /// and fmtp.
    pub fn push_codec(&mut self, c: &Codec) {
        self.formats.push(c.payload_type.to_string());
        self.attributes.push(Attribute::new("rtpmap", c.rtpmap()));
        if let Some(f) = &c.fmtp {
            self.attributes
                .push(Attribute::new("fmtp", format!("{} {f}", c.payload_type)));
        }
    }
}

fn attr_values<'a>(attrs: &'a [Attribute], name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    attrs
        .iter()
        .filter(move |a| a.name == name)
        .filter_map(|a| a.value.as_deref())
}

fn direction_of(attrs: &[Attribute]) -> Option<Direction> {
    attrs
        .iter()
        .filter(|a| a.value.is_none())
        .find_map(|a| Direction::parse(&a.name))
}

fn set_direction(attrs: &mut Vec<Attribute>, d: Direction) {
    let new = Attribute::flag(d.as_str());
    match attrs
        .iter()
        .position(|a| a.value.is_none() && Direction::parse(&a.name).is_some())
    {
        Some(i) => {
            attrs[i] = new;
            let mut seen = 0;
            attrs.retain(|a| {
                let is_dir = a.value.is_none() && Direction::parse(&a.name).is_some();
                if is_dir {
                    seen += 1;
                }
                !is_dir || seen == 1
            });
        }
        None => attrs.push(new),
    }
}

/// A session description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDescription {
    /// `o=`.
    pub origin: Origin,
    /// `s=` (`-` when none was given).
    pub name: String,
    /// `i=`.
    pub info: Option<String>,
    /// `u=`.
    pub uri: Option<String>,
    /// `e=` lines.
    pub emails: Vec<String>,
    /// `p=` lines.
    pub phones: Vec<String>,
    /// Session-level `c=`.
    pub connection: Option<Connection>,
    /// Session-level `b=`.
    pub bandwidths: Vec<Bandwidth>,
    /// `t=` lines with their `r=` (at least one when serialized: `t=0 0` is written if empty).
    pub timings: Vec<Timing>,
    /// `z=`, as text.
    pub zone: Option<String>,
    /// Session-level attributes.
    pub attributes: Vec<Attribute>,
    /// Media sections in order.
    pub media: Vec<Media>,
}

fn syntax(line: usize, what: &'static str) -> SdpError {
    SdpError::Syntax { line, what }
}

impl SessionDescription {
    /// An empty session (no media) with `s=-` and `t=0 0`.
    pub fn new(origin: Origin, connection: Option<Connection>) -> SessionDescription {
        SessionDescription {
            origin,
            name: "-".to_owned(),
            info: None,
            uri: None,
            emails: Vec::new(),
            phones: Vec::new(),
            connection,
            bandwidths: Vec::new(),
            timings: vec![Timing {
                start: 0,
                stop: 0,
                repeats: Vec::new(),
            }],
            zone: None,
            attributes: Vec::new(),
            media: Vec::new(),
        }
    }

    /// Parses a body given as bytes.
    pub fn parse_bytes(body: &[u8]) -> Result<SessionDescription, SdpError> {
        if body.len() > MAX_SDP_LEN {
            return Err(SdpError::TooLong);
        }
        let s = std::str::from_utf8(body).map_err(|_| SdpError::NotUtf8)?;
        SessionDescription::parse(s)
    }

    /// Parses a body.
    pub fn parse(body: &str) -> Result<SessionDescription, SdpError> {
        if body.len() > MAX_SDP_LEN {
            return Err(SdpError::TooLong);
        }
        let mut lines = body
            .split('\n')
            .map(|l| l.strip_suffix('\r').unwrap_or(l))
            .enumerate()
            .map(|(i, l)| (i + 1, l))
            .filter(|(_, l)| !l.trim().is_empty());
        match lines.next() {
            Some((_, l)) if l.trim_end() == "v=0" => {}
            _ => return Err(SdpError::BadVersion),
        }
        let mut origin = None;
        let mut name = None;
        let mut sd = SessionDescription::new(
            Origin {
                username: String::new(),
                session_id: String::new(),
                session_version: 0,
                addr_type: AddrType::Ip4,
                address: String::new(),
            },
            None,
        );
        sd.timings.clear();
        for (n, line) in lines {
            let b = line.as_bytes();
            if b.len() < 2 || b[1] != b'=' || !b[0].is_ascii_lowercase() {
                return Err(syntax(n, "expected <type>=<value>"));
            }
            let kind = b[0] as char;
            let v = &line[2..];
            if let Some(m) = sd.media.last_mut() {
                match kind {
                    'm' => {}
                    'i' => m.title = Some(v.to_owned()),
                    'c' => {
                        if m.connections.len() >= 8 {
                            return Err(SdpError::TooManyAttributes);
                        }
                        m.connections.push(Connection::parse(v, n)?)
                    }
                    'b' => {
                        if m.bandwidths.len() >= 8 {
                            return Err(SdpError::TooManyAttributes);
                        }
                        m.bandwidths.push(parse_bandwidth(v, n)?)
                    }
                    'a' => push_attribute(&mut m.attributes, v, n)?,
                    // k= is ignored; other types are not allowed in media and are skipped.
                    _ => {}
                }
                if kind != 'm' {
                    continue;
                }
            }
            match kind {
                'o' => {
                    if origin.is_some() {
                        return Err(syntax(n, "second o= line"));
                    }
                    origin = Some(Origin::parse(v, n)?)
                }
                's' => name = Some(v.to_owned()),
                'i' => sd.info = Some(v.to_owned()),
                'u' => sd.uri = Some(v.to_owned()),
                'e' | 'p' => {
                    let list = if kind == 'e' {
                        &mut sd.emails
                    } else {
                        &mut sd.phones
                    };
                    if list.len() >= 8 {
                        return Err(SdpError::TooManyAttributes);
                    }
                    list.push(v.to_owned());
                }
                'c' => sd.connection = Some(Connection::parse(v, n)?),
                'b' => {
                    if sd.bandwidths.len() >= 8 {
                        return Err(SdpError::TooManyAttributes);
                    }
                    sd.bandwidths.push(parse_bandwidth(v, n)?)
                }
                't' => {
                    if sd.timings.len() >= 8 {
                        return Err(SdpError::TooManyAttributes);
                    }
                    let mut it = v.split_ascii_whitespace();
                    let (Some(a), Some(b), None) = (it.next(), it.next(), it.next()) else {
                        return Err(syntax(n, "t= needs 2 fields"));
                    };
                    sd.timings.push(Timing {
                        start: a.parse().map_err(|_| syntax(n, "t= start"))?,
                        stop: b.parse().map_err(|_| syntax(n, "t= stop"))?,
                        repeats: Vec::new(),
                    });
                }
                'r' => match sd.timings.last_mut() {
                    Some(t) if t.repeats.len() < 8 => t.repeats.push(v.to_owned()),
                    Some(_) => return Err(SdpError::TooManyAttributes),
                    None => return Err(syntax(n, "r= before t=")),
                },
                'z' => sd.zone = Some(v.to_owned()),
                'a' => push_attribute(&mut sd.attributes, v, n)?,
                'm' => {
                    if sd.media.len() >= MAX_MEDIA {
                        return Err(SdpError::TooManyMedia);
                    }
                    sd.media.push(parse_m_line(v, n)?);
                }
                // k= and unknown types are ignored (RFC 4566 §5).
                _ => {}
            }
        }
        sd.origin = origin.ok_or(SdpError::Missing('o'))?;
        sd.name = match name {
            Some(s) if !s.trim().is_empty() => s,
            _ => "-".to_owned(),
        };
        if sd.timings.is_empty() {
            sd.timings.push(Timing {
                start: 0,
                stop: 0,
                repeats: Vec::new(),
            });
        }
        Ok(sd)
    }

    /// The `c=` that applies to media `index`: its own, else the session's.
    pub fn connection_for(&self, index: usize) -> Option<&Connection> {
        let m = self.media.get(index)?;
        m.connections.first().or(self.connection.as_ref())
    }

    /// The RTP address and port of media `index`; `None` when rejected (port 0), without a
    /// usable IP address, or out of range.
    pub fn media_addr(&self, index: usize) -> Option<SocketAddr> {
        let m = self.media.get(index)?;
        if m.is_rejected() {
            return None;
        }
        let ip = self.connection_for(index)?.ip()?;
        Some(SocketAddr::new(ip, m.port))
    }

    /// The session-level direction attribute, if any.
    pub fn session_direction(&self) -> Option<Direction> {
        direction_of(&self.attributes)
    }

    /// The direction of media `index`: its own attribute, else the session's, else sendrecv.
    pub fn media_direction(&self, index: usize) -> Direction {
        self.media
            .get(index)
            .and_then(Media::direction)
            .or_else(|| self.session_direction())
            .unwrap_or_default()
    }

    /// Whether media `index` is put on hold by the sender of this description: it does not
    /// receive (sendonly or inactive), or its address is `0.0.0.0` (RFC 2543 style).
    pub fn is_media_on_hold(&self, index: usize) -> bool {
        if self.media.get(index).is_none_or(Media::is_rejected) {
            return false;
        }
        !self.media_direction(index).receives()
            || self
                .connection_for(index)
                .is_some_and(Connection::is_unspecified)
    }

    /// Whether every active (port ≠ 0) stream is on hold; false when there is none.
    pub fn is_on_hold(&self) -> bool {
        let active: Vec<usize> = (0..self.media.len())
            .filter(|&i| !self.media[i].is_rejected())
            .collect();
        !active.is_empty() && active.iter().all(|&i| self.is_media_on_hold(i))
    }

    /// Points the media at a relay: sets the session `c=` to `addr`, replaces every media-level
    /// `c=` with it, and sets the port of media `i` to `ports[i]` (rejected streams stay at
    /// port 0; media beyond `ports` keep their port). `a=rtcp` lines, which named the old
    /// address, are removed (RTCP is then on port + 1, or muxed with `a=rtcp-mux`). A hold
    /// address `0.0.0.0` is kept as it is. Everything else is kept.
    pub fn rewrite_connection(&mut self, addr: IpAddr, ports: &[u16]) {
        let new = Connection::new(addr);
        let session_hold = self
            .connection
            .as_ref()
            .is_some_and(Connection::is_unspecified);
        if !session_hold {
            self.connection = Some(new.clone());
        }
        for (i, m) in self.media.iter_mut().enumerate() {
            if m.is_rejected() {
                continue;
            }
            if let Some(&p) = ports.get(i) {
                m.port = p;
            }
            for c in &mut m.connections {
                if !c.is_unspecified() {
                    *c = new.clone();
                }
            }
            m.remove_attributes("rtcp");
        }
    }

    /// Increases the `o=` version (call once per changed description sent in a session).
    pub fn bump_version(&mut self) {
        self.origin.session_version = self.origin.session_version.wrapping_add(1);
    }

    /// Makes this description the next one after `previous` in the same session (RFC 3264
    /// §8): takes over its `o=` line and increases the version only if anything else changed.
    pub fn follow(&mut self, previous: &SessionDescription) {
        let mut same = self.clone();
        same.origin = previous.origin.clone();
        self.origin = previous.origin.clone();
        if same != *previous {
            self.bump_version();
        }
    }
}

fn parse_bandwidth(v: &str, n: usize) -> Result<Bandwidth, SdpError> {
    let (t, val) = v.split_once(':').ok_or(syntax(n, "b= needs type:value"))?;
    if t.is_empty() {
        return Err(syntax(n, "b= empty type"));
    }
    Ok(Bandwidth {
        bw_type: t.to_owned(),
        value: val.trim().parse().map_err(|_| syntax(n, "b= value"))?,
    })
}

fn push_attribute(attrs: &mut Vec<Attribute>, v: &str, n: usize) -> Result<(), SdpError> {
    if attrs.len() >= MAX_ATTRIBUTES {
        return Err(SdpError::TooManyAttributes);
    }
    let a = match v.split_once(':') {
        Some((name, value)) => Attribute::new(name.trim(), value),
        // Some stacks leave trailing spaces after property attributes.
        None => Attribute::flag(v.trim()),
    };
    if a.name.is_empty() {
        return Err(syntax(n, "bad attribute name"));
    }
    attrs.push(a);
    Ok(())
}

fn parse_m_line(v: &str, n: usize) -> Result<Media, SdpError> {
    let mut it = v.split_ascii_whitespace();
    let (Some(kind), Some(port), Some(proto)) = (it.next(), it.next(), it.next()) else {
        return Err(syntax(n, "m= needs media, port and proto"));
    };
    let (port, count) = match port.split_once('/') {
        Some((p, c)) => (p, Some(c)),
        None => (port, None),
    };
    let mut m = Media::new(kind, port.parse().map_err(|_| syntax(n, "m= port"))?, proto);
    if let Some(c) = count {
        m.port_count = Some(c.parse().map_err(|_| syntax(n, "m= port count"))?);
    }
    for f in it {
        if m.formats.len() >= MAX_FORMATS {
            return Err(SdpError::TooManyAttributes);
        }
        m.formats.push(f.to_owned());
    }
    Ok(m)
}

impl fmt::Display for SessionDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v=0\r\no={}\r\ns={}\r\n", self.origin, clean(&self.name))?;
        if let Some(i) = &self.info {
            write!(f, "i={}\r\n", clean(i))?;
        }
        if let Some(u) = &self.uri {
            write!(f, "u={}\r\n", clean(u))?;
        }
        for e in &self.emails {
            write!(f, "e={}\r\n", clean(e))?;
        }
        for p in &self.phones {
            write!(f, "p={}\r\n", clean(p))?;
        }
        if let Some(c) = &self.connection {
            write!(f, "c={c}\r\n")?;
        }
        for b in &self.bandwidths {
            write!(f, "b={}:{}\r\n", b.bw_type, b.value)?;
        }
        if self.timings.is_empty() {
            f.write_str("t=0 0\r\n")?;
        }
        for t in &self.timings {
            write!(f, "t={} {}\r\n", t.start, t.stop)?;
            for r in &t.repeats {
                write!(f, "r={}\r\n", clean(r))?;
            }
        }
        if let Some(z) = &self.zone {
            write!(f, "z={}\r\n", clean(z))?;
        }
        for a in &self.attributes {
            write!(f, "a={}\r\n", clean(&a.to_string()))?;
        }
        for m in &self.media {
            write!(f, "m={} {}", m.kind, m.port)?;
            if let Some(c) = m.port_count {
                write!(f, "/{c}")?;
            }
            write!(f, " {}", m.proto)?;
            for fmt_ in &m.formats {
                write!(f, " {fmt_}")?;
            }
            f.write_str("\r\n")?;
            if let Some(i) = &m.title {
                write!(f, "i={}\r\n", clean(i))?;
            }
            for c in &m.connections {
                write!(f, "c={c}\r\n")?;
            }
            for b in &m.bandwidths {
                write!(f, "b={}:{}\r\n", b.bw_type, b.value)?;
            }
            for a in &m.attributes {
                write!(f, "a={}\r\n", clean(&a.to_string()))?;
            }
        }
        Ok(())
    }
}

/// Drops CR and LF so that a field can never inject a line.
fn clean(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains(['\r', '\n']) {
        s.replace(['\r', '\n'], "").into()
    } else {
        s.into()
    }
}

// ---- offer / answer ----

/// What we accept and prefer, for building offers and answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capabilities {
    /// Audio codecs in our order of preference (payload types are used in our offers;
    /// include `telephone-event` to support RFC 4733 DTMF).
    pub audio: Vec<Codec>,
    /// Video codecs; empty rejects video.
    pub video: Vec<Codec>,
    /// Transports accepted, the first used in offers (e.g. `RTP/AVP`, `RTP/SAVP`).
    pub protos: Vec<String>,
    /// The direction we want (sendrecv normally; sendonly to put the peer on hold).
    pub direction: Direction,
    /// Our packetization time, used in offers and in answers when the offer has none.
    pub ptime: Option<u32>,
    /// Our SRTP keys for `RTP/SAVP` (SDES, RFC 4568), one per suite we support, in preference
    /// order; the tag is chosen in offers and taken from the offer in answers.
    pub crypto: Vec<Crypto>,
    /// Whether we can multiplex RTP and RTCP on one port (RFC 5761): `a=rtcp-mux` is offered,
    /// and answered when offered.
    pub rtcp_mux: bool,
}

impl Capabilities {
    /// Audio capabilities for `RTP/AVP` with the given codecs, sendrecv.
    pub fn audio(codecs: Vec<Codec>) -> Capabilities {
        Capabilities {
            audio: codecs,
            video: Vec::new(),
            protos: vec!["RTP/AVP".to_owned()],
            direction: Direction::SendRecv,
            ptime: None,
            crypto: Vec::new(),
            rtcp_mux: false,
        }
    }

    fn codecs_for(&self, kind: &str) -> &[Codec] {
        match kind {
            "audio" => &self.audio,
            "video" => &self.video,
            _ => &[],
        }
    }

    fn accepts_proto(&self, proto: &str) -> bool {
        self.protos.iter().any(|p| p.eq_ignore_ascii_case(proto))
    }
}

fn is_savp(proto: &str) -> bool {
    proto.eq_ignore_ascii_case("RTP/SAVP")
}

fn rejected_like(m: &Media) -> Media {
    let mut r = Media::new(&m.kind, 0, &m.proto);
    r.formats = m.formats.iter().take(1).cloned().collect();
    if r.formats.is_empty() {
        r.formats.push("0".to_owned());
    }
    if let Some(mid) = m.mid() {
        r.attributes.push(Attribute::new("mid", mid));
    }
    r
}

/// Builds the RFC 3264 answer to `offer` from our capabilities.
///
/// The answer has the offer's m-lines in the same order. A stream is rejected (port 0) when the
/// offer rejected it, its media kind or transport is not supported, no real codec is common, or
/// (for `RTP/SAVP`) no crypto suite is common, or when `ports` has no entry for it. Otherwise
/// its port is `ports[i]`, its codecs are the common ones in the offerer's order with the
/// offer's payload type numbers (telephone-event only if both support it; fmtp ours when we
/// set one, else the offer's), its direction the answer to the offered one, and the offer's
/// ptime/maxptime are passed through. The `o=` line is `origin`; `c=` is `addr`.
pub fn answer(
    offer: &SessionDescription,
    caps: &Capabilities,
    origin: Origin,
    addr: IpAddr,
    ports: &[u16],
) -> SessionDescription {
    let mut sd = SessionDescription::new(origin, Some(Connection::new(addr)));
    for (i, om) in offer.media.iter().enumerate() {
        sd.media.push(
            answer_media(offer, i, om, caps, ports.get(i).copied())
                .unwrap_or_else(|| rejected_like(om)),
        );
    }
    sd
}

fn answer_media(
    offer: &SessionDescription,
    index: usize,
    om: &Media,
    caps: &Capabilities,
    port: Option<u16>,
) -> Option<Media> {
    let port = port.filter(|p| *p != 0)?;
    if om.is_rejected() || !om.is_rtp() || !caps.accepts_proto(&om.proto) {
        return None;
    }
    let ours = caps.codecs_for(&om.kind);
    let mut common = Vec::new();
    for oc in om.codecs() {
        if let Some(c) = ours.iter().find(|c| c.same_encoding(&oc)) {
            let mut a = oc.clone();
            if c.fmtp.is_some() {
                a.fmtp = c.fmtp.clone();
            }
            if !common
                .iter()
                .any(|x: &Codec| x.payload_type == a.payload_type)
            {
                common.push(a);
            }
        }
    }
    if !common.iter().any(|c| !c.is_auxiliary()) {
        return None;
    }
    let mut m = Media::new(&om.kind, port, &om.proto);
    if let Some(mid) = om.mid() {
        m.attributes.push(Attribute::new("mid", mid));
    }
    for c in &common {
        m.push_codec(c);
    }
    if is_savp(&om.proto) {
        let chosen = om.crypto().into_iter().find_map(|oc| {
            caps.crypto
                .iter()
                .find(|k| k.suite.eq_ignore_ascii_case(&oc.suite))
                .map(|k| Crypto {
                    tag: oc.tag,
                    suite: oc.suite.clone(),
                    params: k.params.clone(),
                })
        })?;
        m.attributes
            .push(Attribute::new("crypto", chosen.to_string()));
    }
    if let Some(p) = om.ptime().or(caps.ptime) {
        m.attributes.push(Attribute::new("ptime", p.to_string()));
    }
    if let Some(p) = om.maxptime() {
        m.attributes.push(Attribute::new("maxptime", p.to_string()));
    }
    if caps.rtcp_mux && om.has_attribute("rtcp-mux") {
        m.attributes.push(Attribute::flag("rtcp-mux"));
    }
    let offered = offer.media_direction(index);
    let mut dir = Direction::answer(offered, caps.direction);
    // An offer to 0.0.0.0 (RFC 2543 hold) cannot receive from us.
    if offer
        .connection_for(index)
        .is_some_and(Connection::is_unspecified)
    {
        dir = Direction::from_flags(false, dir.receives());
    }
    m.set_direction(dir);
    Some(m)
}

/// Builds an offer from our capabilities: one m-line per `(kind, port)` in `streams`
/// (`"audio"` or `"video"`), with the first of `caps.protos`, our codecs and payload types,
/// ptime, crypto lines for `RTP/SAVP`, and `caps.direction`. The `o=` line is `origin`;
/// `c=` is `addr`.
pub fn offer(
    caps: &Capabilities,
    origin: Origin,
    addr: IpAddr,
    streams: &[(&str, u16)],
) -> SessionDescription {
    let proto = caps.protos.first().map(String::as_str).unwrap_or("RTP/AVP");
    let mut sd = SessionDescription::new(origin, Some(Connection::new(addr)));
    for &(kind, port) in streams.iter().take(MAX_MEDIA) {
        let mut m = Media::new(kind, port, proto);
        for c in caps.codecs_for(kind) {
            m.push_codec(c);
        }
        if m.formats.is_empty() {
            m.port = 0;
            m.formats.push("0".to_owned());
            sd.media.push(m);
            continue;
        }
        if is_savp(proto) {
            for (i, k) in caps.crypto.iter().enumerate() {
                let c = Crypto {
                    tag: i as u32 + 1,
                    suite: k.suite.clone(),
                    params: k.params.clone(),
                };
                m.attributes.push(Attribute::new("crypto", c.to_string()));
            }
        }
        if kind == "audio" {
            if let Some(p) = caps.ptime {
                m.attributes.push(Attribute::new("ptime", p.to_string()));
            }
        }
        if caps.rtcp_mux {
            m.attributes.push(Attribute::flag("rtcp-mux"));
        }
        m.set_direction(caps.direction);
        sd.media.push(m);
    }
    sd
}

/// `0.0.0.0`, the RFC 2543 hold address.
pub const HOLD_ADDR_V4: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
/// `::`.
pub const HOLD_ADDR_V6: IpAddr = IpAddr::V6(Ipv6Addr::UNSPECIFIED);
