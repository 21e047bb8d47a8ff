//! SIP messages (RFC 3261 §7): requests, responses, the header list, and typed views of the
//! headers that routing and transactions need (URIs, Via, From/To/Contact name-addrs, CSeq).
//!
//! The header list keeps every header as received (name and raw value), so unknown headers pass
//! through untouched; typed views are parsed on demand from the raw value.

use crate::text::Text;
use bytes::Bytes;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

/// Why a message could not be parsed, with the status a server answers it with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// Larger than the configured limit (answer 513 if a response can be routed).
    #[error("message too large ({0} bytes)")]
    TooLarge(usize),
    /// More headers than the limit.
    #[error("too many headers")]
    TooManyHeaders,
    /// A line longer than the limit.
    #[error("line too long")]
    LineTooLong,
    /// The message is not complete yet (stream transports: wait for more bytes).
    #[error("incomplete message")]
    Incomplete,
    /// Malformed; the text says where.
    #[error("malformed {0}")]
    Malformed(&'static str),
    /// A Request-URI (or URI) of a well-formed scheme other than sip, sips and tel (answer 416).
    #[error("unsupported URI scheme")]
    UnsupportedUriScheme,
    /// A SIP-Version other than `SIP/2.0` (answer 505).
    #[error("unsupported SIP version")]
    UnsupportedVersion,
}

impl ParseError {
    /// The status code a server should answer a request with this error (when the request can be
    /// answered at all: it needs parseable Via, From, To, Call-ID and CSeq).
    pub fn status(&self) -> u16 {
        match self {
            ParseError::TooLarge(_) => 513,
            ParseError::UnsupportedUriScheme => 416,
            ParseError::UnsupportedVersion => 505,
            _ => 400,
        }
    }
}

/// Hard limits applied while parsing.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest message, start line + headers + body.
    pub max_message: usize,
    /// Most header fields (after splitting comma-separated values is *not* counted: fields).
    pub max_headers: usize,
    /// Longest line (after unfolding).
    pub max_line: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message: 65_535,
            max_headers: 128,
            max_line: 8_192,
        }
    }
}

/// A request method.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Method {
    Invite,
    Ack,
    Bye,
    Cancel,
    Register,
    Options,
    Info,
    Update,
    Prack,
    Subscribe,
    Notify,
    Refer,
    Message,
    Publish,
    /// Any other token (methods are case-sensitive).
    Other(Text),
}

impl Method {
    /// The method for a token (case-sensitive, as RFC 3261 requires).
    pub fn from_token(s: &str) -> Method {
        match s {
            "INVITE" => Method::Invite,
            "ACK" => Method::Ack,
            "BYE" => Method::Bye,
            "CANCEL" => Method::Cancel,
            "REGISTER" => Method::Register,
            "OPTIONS" => Method::Options,
            "INFO" => Method::Info,
            "UPDATE" => Method::Update,
            "PRACK" => Method::Prack,
            "SUBSCRIBE" => Method::Subscribe,
            "NOTIFY" => Method::Notify,
            "REFER" => Method::Refer,
            "MESSAGE" => Method::Message,
            "PUBLISH" => Method::Publish,
            other => Method::Other(Text::from(other.to_owned())),
        }
    }

    /// The token.
    pub fn as_str(&self) -> &str {
        match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Register => "REGISTER",
            Method::Options => "OPTIONS",
            Method::Info => "INFO",
            Method::Update => "UPDATE",
            Method::Prack => "PRACK",
            Method::Subscribe => "SUBSCRIBE",
            Method::Notify => "NOTIFY",
            Method::Refer => "REFER",
            Method::Message => "MESSAGE",
            Method::Publish => "PUBLISH",
            Method::Other(t) => t.as_str(),
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A header name. Known names compare case-insensitively and compact forms (RFC 3261 §7.3.3)
/// map to their full names; others keep their spelling and compare case-insensitively.
#[derive(Debug, Clone)]
pub enum HeaderName {
    Via,
    From,
    To,
    CallId,
    CSeq,
    Contact,
    MaxForwards,
    Route,
    RecordRoute,
    ContentLength,
    ContentType,
    Expires,
    MinExpires,
    Authorization,
    WwwAuthenticate,
    ProxyAuthorization,
    ProxyAuthenticate,
    Require,
    Supported,
    Unsupported,
    ProxyRequire,
    Allow,
    UserAgent,
    Server,
    Path,
    SessionExpires,
    MinSe,
    RSeq,
    RAck,
    Event,
    ReferTo,
    Subject,
    /// Any other header, as spelled on the wire.
    Other(Text),
}

impl HeaderName {
    /// The name for a header field name as received (full or compact, any case).
    pub fn from_wire(s: &str) -> HeaderName {
        let known = [
            HeaderName::Via,
            HeaderName::From,
            HeaderName::To,
            HeaderName::CallId,
            HeaderName::CSeq,
            HeaderName::Contact,
            HeaderName::MaxForwards,
            HeaderName::Route,
            HeaderName::RecordRoute,
            HeaderName::ContentLength,
            HeaderName::ContentType,
            HeaderName::Expires,
            HeaderName::MinExpires,
            HeaderName::Authorization,
            HeaderName::WwwAuthenticate,
            HeaderName::ProxyAuthorization,
            HeaderName::ProxyAuthenticate,
            HeaderName::Require,
            HeaderName::Supported,
            HeaderName::Unsupported,
            HeaderName::ProxyRequire,
            HeaderName::Allow,
            HeaderName::UserAgent,
            HeaderName::Server,
            HeaderName::Path,
            HeaderName::SessionExpires,
            HeaderName::MinSe,
            HeaderName::RSeq,
            HeaderName::RAck,
            HeaderName::Event,
            HeaderName::ReferTo,
            HeaderName::Subject,
        ];
        if s.len() == 1 {
            let c = s.as_bytes()[0].to_ascii_lowercase();
            let compact = match c {
                b'v' => Some(HeaderName::Via),
                b'f' => Some(HeaderName::From),
                b't' => Some(HeaderName::To),
                b'i' => Some(HeaderName::CallId),
                b'm' => Some(HeaderName::Contact),
                b'l' => Some(HeaderName::ContentLength),
                b'c' => Some(HeaderName::ContentType),
                b'k' => Some(HeaderName::Supported),
                b'o' => Some(HeaderName::Event),
                b'r' => Some(HeaderName::ReferTo),
                b's' => Some(HeaderName::Subject),
                b'x' => Some(HeaderName::SessionExpires),
                _ => None,
            };
            if let Some(n) = compact {
                return n;
            }
        }
        for k in known {
            if k.as_str().eq_ignore_ascii_case(s) {
                return k;
            }
        }
        HeaderName::Other(Text::from(s.to_owned()))
    }

    /// The canonical full name (or the name as received for unknown headers).
    pub fn as_str(&self) -> &str {
        match self {
            HeaderName::Via => "Via",
            HeaderName::From => "From",
            HeaderName::To => "To",
            HeaderName::CallId => "Call-ID",
            HeaderName::CSeq => "CSeq",
            HeaderName::Contact => "Contact",
            HeaderName::MaxForwards => "Max-Forwards",
            HeaderName::Route => "Route",
            HeaderName::RecordRoute => "Record-Route",
            HeaderName::ContentLength => "Content-Length",
            HeaderName::ContentType => "Content-Type",
            HeaderName::Expires => "Expires",
            HeaderName::MinExpires => "Min-Expires",
            HeaderName::Authorization => "Authorization",
            HeaderName::WwwAuthenticate => "WWW-Authenticate",
            HeaderName::ProxyAuthorization => "Proxy-Authorization",
            HeaderName::ProxyAuthenticate => "Proxy-Authenticate",
            HeaderName::Require => "Require",
            HeaderName::Supported => "Supported",
            HeaderName::Unsupported => "Unsupported",
            HeaderName::ProxyRequire => "Proxy-Require",
            HeaderName::Allow => "Allow",
            HeaderName::UserAgent => "User-Agent",
            HeaderName::Server => "Server",
            HeaderName::Path => "Path",
            HeaderName::SessionExpires => "Session-Expires",
            HeaderName::MinSe => "Min-SE",
            HeaderName::RSeq => "RSeq",
            HeaderName::RAck => "RAck",
            HeaderName::Event => "Event",
            HeaderName::ReferTo => "Refer-To",
            HeaderName::Subject => "Subject",
            HeaderName::Other(t) => t.as_str(),
        }
    }
}

impl PartialEq for HeaderName {
    fn eq(&self, o: &HeaderName) -> bool {
        match (self, o) {
            (HeaderName::Other(a), HeaderName::Other(b)) => a.eq_ignore_ascii_case(b),
            (a, b) => std::mem::discriminant(a) == std::mem::discriminant(b),
        }
    }
}
impl Eq for HeaderName {}

impl fmt::Display for HeaderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One header field: its name and its raw value (unfolded, surrounding whitespace trimmed; a
/// comma-separated field stays one value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub name: HeaderName,
    pub value: Text,
}

/// The header fields of a message, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(pub Vec<Header>);

impl Headers {
    /// The first value of a header.
    pub fn get(&self, name: &HeaderName) -> Option<&Text> {
        self.0.iter().find(|h| &h.name == name).map(|h| &h.value)
    }
    /// Every field of a header, in order (each may hold several comma-separated values).
    pub fn get_all<'a>(&'a self, name: &'a HeaderName) -> impl Iterator<Item = &'a Text> + 'a {
        self.0
            .iter()
            .filter(move |h| &h.name == name)
            .map(|h| &h.value)
    }
    /// Appends a field.
    pub fn push(&mut self, name: HeaderName, value: impl Into<Text>) {
        self.0.push(Header {
            name,
            value: value.into(),
        });
    }
    /// Inserts a field before all others (e.g. a new top Via).
    pub fn push_front(&mut self, name: HeaderName, value: impl Into<Text>) {
        self.0.insert(
            0,
            Header {
                name,
                value: value.into(),
            },
        );
    }
    /// Replaces every field of this name by one (appended where the first one was, else at the end).
    pub fn set(&mut self, name: HeaderName, value: impl Into<Text>) {
        let value = value.into();
        if let Some(i) = self.0.iter().position(|h| h.name == name) {
            self.0[i].value = value;
            let mut n = 0;
            self.0.retain(|h| {
                h.name != name || {
                    n += 1;
                    n == 1
                }
            });
        } else {
            self.0.push(Header { name, value });
        }
    }
    /// Removes every field of this name; returns how many.
    pub fn remove(&mut self, name: &HeaderName) -> usize {
        let before = self.0.len();
        self.0.retain(|h| &h.name != name);
        before - self.0.len()
    }
    /// Number of fields.
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// No fields.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// URI scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    Sip,
    Sips,
    Tel,
}

/// A host: a domain name (kept as received; compare case-insensitively), or an IP address (an
/// IPv6 reference is written in brackets).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    Domain(Text),
    V4(Ipv4Addr),
    V6(Ipv6Addr),
}

/// `;name=value` or `;name` parameters, in order, values unescaped only where the grammar says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params(pub Vec<(Text, Option<Text>)>);

impl Params {
    /// The value of a parameter (names compare case-insensitively); `Some(None)` for a flag.
    pub fn get(&self, name: &str) -> Option<Option<&Text>> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_ref())
    }
    /// The value of a parameter that has one.
    pub fn value(&self, name: &str) -> Option<&Text> {
        self.get(name).flatten()
    }
    /// Present (with or without a value).
    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
    /// Sets (replaces) a parameter.
    pub fn set(&mut self, name: &str, value: Option<Text>) {
        if let Some(p) = self
            .0
            .iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            p.1 = value;
        } else {
            self.0.push((Text::from(name.to_owned()), value));
        }
    }
    /// Removes a parameter.
    pub fn remove(&mut self, name: &str) {
        self.0.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    }
}

/// A SIP, SIPS or tel URI (RFC 3261 §19.1, RFC 3966). For `tel:` the number is in `user` and
/// `host` is an empty domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uri {
    pub scheme: Scheme,
    /// User part, unescaped.
    pub user: Option<Text>,
    /// Password part, unescaped (deprecated but valid).
    pub password: Option<Text>,
    pub host: Host,
    pub port: Option<u16>,
    /// URI parameters (`;transport=tcp;lr`).
    pub params: Params,
    /// URI headers (`?Subject=x&Priority=urgent`), unescaped.
    pub headers: Vec<(Text, Text)>,
}

/// One Via value (RFC 3261 §20.42).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    /// `UDP`, `TCP`, `TLS`, `WS`, `WSS`, `SCTP`… (upper-cased).
    pub transport: Text,
    pub host: Host,
    pub port: Option<u16>,
    pub params: Params,
}

impl Via {
    /// The branch parameter.
    pub fn branch(&self) -> Option<&Text> {
        self.params.value("branch")
    }
}

/// A name-addr or addr-spec with header parameters: From, To, Contact, Route, Record-Route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    /// Display name, unquoted.
    pub display: Option<Text>,
    pub uri: Uri,
    /// Header parameters (`;tag=…`, `;expires=…`, `;q=…`).
    pub params: Params,
}

impl NameAddr {
    /// The tag parameter.
    pub fn tag(&self) -> Option<&Text> {
        self.params.value("tag")
    }
}

/// CSeq (RFC 3261 §20.16).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CSeq {
    pub seq: u32,
    pub method: Method,
}

/// A request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: Method,
    pub uri: Uri,
    pub headers: Headers,
    pub body: Bytes,
}

/// A response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub reason: Text,
    pub headers: Headers,
    pub body: Bytes,
}

/// A request or a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Request(Request),
    Response(Response),
}

// ---------------------------------------------------------------------------------------------
// Parsing and serialization (implemented in `parse`, `uri` and `fields`).
// ---------------------------------------------------------------------------------------------

impl Message {
    /// Parses one whole message from a datagram (or from a frame cut by [`frame_len`]). With a
    /// Content-Length, the body is that many bytes (more bytes after it: ignored on a datagram;
    /// fewer: error). Without one, the body is the rest of the buffer.
    pub fn parse(buf: Bytes, limits: &Limits) -> Result<Message, ParseError> {
        crate::parse::parse_message(buf, limits)
    }

    /// The header list of a message whose start line may be rejected by [`Message::parse`]
    /// (e.g. [`ParseError::UnsupportedUriScheme`] or [`ParseError::UnsupportedVersion`]), so that
    /// a server can still answer it with [`Response::answering`]. The same limits apply.
    pub fn parse_headers(buf: Bytes, limits: &Limits) -> Result<Headers, ParseError> {
        crate::parse::parse_headers_only(buf, limits)
    }

    /// Serializes the message; Content-Length is written from the body's length (any
    /// Content-Length header in `headers` is replaced).
    pub fn to_bytes(&self) -> Vec<u8> {
        crate::parse::serialize(self)
    }

    /// The header list.
    pub fn headers(&self) -> &Headers {
        match self {
            Message::Request(r) => &r.headers,
            Message::Response(r) => &r.headers,
        }
    }
}

/// For stream transports (TCP, TLS): how long the first message in `buf` is, once complete
/// (`Ok(None)`: need more bytes). Leading CRLFs (keep-alives) count as a zero-body frame of their
/// own length: `Ok(Some(n))` where the first `n` bytes are only CRLF. A stream message needs a
/// Content-Length (RFC 3261 §18.3): missing is an error.
pub fn frame_len(buf: &[u8], limits: &Limits) -> Result<Option<usize>, ParseError> {
    crate::parse::frame_len(buf, limits)
}

/// Accessors shared by requests and responses (each parses the header on demand).
macro_rules! common_accessors {
    ($t:ty) => {
        impl $t {
            /// Every Via value, top first.
            pub fn vias(&self) -> Result<Vec<Via>, ParseError> {
                crate::parse::vias(&self.headers)
            }
            /// The top Via.
            pub fn via_top(&self) -> Result<Via, ParseError> {
                crate::parse::via_top(&self.headers)
            }
            /// From.
            pub fn from(&self) -> Result<NameAddr, ParseError> {
                crate::parse::name_addr(&self.headers, &HeaderName::From, "missing From")
            }
            /// To.
            pub fn to(&self) -> Result<NameAddr, ParseError> {
                crate::parse::name_addr(&self.headers, &HeaderName::To, "missing To")
            }
            /// Call-ID.
            pub fn call_id(&self) -> Result<&Text, ParseError> {
                crate::parse::call_id(&self.headers)
            }
            /// CSeq.
            pub fn cseq(&self) -> Result<CSeq, ParseError> {
                crate::parse::cseq(&self.headers)
            }
            /// Every Contact value. A `Contact: *` field contributes no value (see
            /// `Request::contact_star`).
            pub fn contacts(&self) -> Result<Vec<NameAddr>, ParseError> {
                crate::parse::name_addr_list(&self.headers, &HeaderName::Contact)
            }
            /// Every Record-Route value, top first.
            pub fn record_routes(&self) -> Result<Vec<NameAddr>, ParseError> {
                crate::parse::name_addr_list(&self.headers, &HeaderName::RecordRoute)
            }
            /// Content-Type, trimmed (e.g. `application/sdp`), without parameters.
            pub fn content_type(&self) -> Option<&str> {
                crate::parse::content_type(&self.headers)
            }
        }
    };
}
common_accessors!(Request);
common_accessors!(Response);

impl Request {
    /// Max-Forwards (None if absent; an error outside 0..=255).
    pub fn max_forwards(&self) -> Result<Option<u32>, ParseError> {
        crate::parse::max_forwards(&self.headers)
    }
    /// Every Route value, top first.
    pub fn routes(&self) -> Result<Vec<NameAddr>, ParseError> {
        crate::parse::name_addr_list(&self.headers, &HeaderName::Route)
    }
    /// `Contact: *` (a REGISTER removing every binding).
    pub fn contact_star(&self) -> bool {
        crate::parse::contact_star(&self.headers)
    }
    /// Expires header in seconds.
    pub fn expires(&self) -> Result<Option<u32>, ParseError> {
        crate::parse::expires(&self.headers)
    }
    /// Checks the mandatory headers of RFC 3261 §8.1.1 (Via, From, To, Call-ID, CSeq whose method
    /// matches the request's, Max-Forwards optional): the status and reason to answer otherwise.
    /// Also checked: exactly one From, To, Call-ID and CSeq; Contact (`*` only alone with
    /// `Expires: 0`), Route, Record-Route, Expires, Date (RFC 1123, GMT) parse; no headers in the
    /// Request-URI. A From, To, Contact or Route URI of an unsupported scheme gives 416.
    pub fn validate(&self) -> Result<(), (u16, &'static str)> {
        crate::parse::validate(self)
    }
    /// A response to this request with Via, From, To, Call-ID and CSeq copied (RFC 3261 §8.2.6).
    /// `to_tag` is added to To when To has no tag yet (never for 100).
    pub fn response(&self, status: u16, reason: &str, to_tag: Option<&str>) -> Response {
        crate::parse::response(self, status, reason, to_tag)
    }
}

impl Response {
    /// A response to a request known only by its header list (see [`Message::parse_headers`]):
    /// Via, From, To, Call-ID and CSeq copied as [`Request::response`] does.
    pub fn answering(
        request_headers: &Headers,
        status: u16,
        reason: &str,
        to_tag: Option<&str>,
    ) -> Response {
        crate::parse::answer(request_headers, status, reason, to_tag)
    }
}

impl fmt::Display for CSeq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.seq, self.method)
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Domain(d) => f.write_str(d),
            Host::V4(a) => write!(f, "{a}"),
            Host::V6(a) => write!(f, "[{a}]"),
        }
    }
}
