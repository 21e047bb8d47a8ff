//! Typed header values: Via (§20.42), name-addr / addr-spec with parameters (§20.10, §20.20,
//! §20.39), CSeq (§20.16).

use crate::grammar::{
    bad, digits_u32, header_params, is_token, is_token_char, is_ws, quote, quoted_len, split_list,
    trim_ws, unquote, write_header_params, R,
};
use crate::message::{CSeq, Host, Method, NameAddr, ParseError, Uri, Via};
use crate::text::Text;
use crate::uri::parse_hostport;
use std::fmt;

/// Skips spaces and tabs from `i`.
fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && is_ws(b[i]) {
        i += 1;
    }
    i
}

/// Reads a token from `i`: (start, end).
fn token_at(b: &[u8], i: usize) -> (usize, usize) {
    let mut j = i;
    while j < b.len() && is_token_char(b[j]) {
        j += 1;
    }
    (i, j)
}

impl Via {
    /// Parses a Via field (may hold several comma-separated values).
    pub fn parse_all(s: &str) -> Result<Vec<Via>, ParseError> {
        let base = Text::from(s.to_owned());
        Via::parse_all_in(&base, &base)
    }

    pub(crate) fn parse_all_in(base: &Text, s: &str) -> R<Vec<Via>> {
        split_list(s)?
            .into_iter()
            .map(|v| Via::parse_one(base, v))
            .collect()
    }

    fn parse_one(base: &Text, s: &str) -> R<Via> {
        let b = s.as_bytes();
        // sent-protocol = protocol-name SLASH protocol-version SLASH transport
        let mut i = 0;
        let mut parts = [(0usize, 0usize); 3];
        for (k, part) in parts.iter_mut().enumerate() {
            if k > 0 {
                i = skip_ws(b, i);
                if b.get(i) != Some(&b'/') {
                    return bad("Via sent-protocol");
                }
                i = skip_ws(b, i + 1);
            }
            let (st, en) = token_at(b, i);
            if st == en {
                return bad("Via sent-protocol");
            }
            *part = (st, en);
            i = en;
        }
        let part = |k: usize| s.get(parts[k].0..parts[k].1).unwrap_or("");
        if !part(0).eq_ignore_ascii_case("SIP") || part(1) != "2.0" {
            return bad("Via protocol");
        }
        let transport = part(2);
        // LWS sent-by
        let j = skip_ws(b, i);
        if j == i {
            return bad("Via sent-by");
        }
        i = j;
        let hs = i;
        if b.get(i) == Some(&b'[') {
            while i < b.len() && b[i] != b']' {
                i += 1;
            }
            if i >= b.len() {
                return bad("Via IPv6 reference");
            }
            i += 1;
        } else {
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b"-._".contains(&b[i])) {
                i += 1;
            }
        }
        let host_str = s.get(hs..i).unwrap_or("");
        // COLON = SWS ":" SWS
        let k = skip_ws(b, i);
        let (host, port) = if b.get(k) == Some(&b':') {
            let ps = skip_ws(b, k + 1);
            let mut pe = ps;
            while pe < b.len() && b[pe].is_ascii_digit() {
                pe += 1;
            }
            let hp = format!("{}:{}", host_str, s.get(ps..pe).unwrap_or(""));
            let (h, p) = parse_hostport(base, &hp)?;
            i = pe;
            // re-slice a domain so it shares the buffer
            let h = match h {
                Host::Domain(_) => Host::Domain(base.slice_ref(host_str)),
                other => other,
            };
            (h, p)
        } else {
            parse_hostport(base, host_str)?
        };
        let params = header_params(base, s.get(i..).unwrap_or(""))?;
        let transport = if transport.bytes().any(|c| c.is_ascii_lowercase()) {
            Text::from(transport.to_ascii_uppercase())
        } else {
            base.slice_ref(transport)
        };
        Ok(Via {
            transport,
            host,
            port,
            params,
        })
    }

    /// `host[:port]` as written in sent-by.
    pub fn sent_by(&self) -> String {
        match self.port {
            Some(p) => format!("{}:{}", self.host, p),
            None => self.host.to_string(),
        }
    }
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SIP/2.0/{} {}", self.transport, self.sent_by())?;
        write_header_params(&self.params, f)
    }
}

impl NameAddr {
    /// Parses one name-addr / addr-spec with parameters.
    pub fn parse(s: &str) -> Result<NameAddr, ParseError> {
        let base = Text::from(s.to_owned());
        NameAddr::parse_in(&base, &base)
    }

    /// Parses a comma-separated list (Contact, Route, Record-Route).
    pub fn parse_list(s: &str) -> Result<Vec<NameAddr>, ParseError> {
        let base = Text::from(s.to_owned());
        NameAddr::parse_list_in(&base, &base)
    }

    pub(crate) fn parse_list_in(base: &Text, s: &str) -> R<Vec<NameAddr>> {
        split_list(s)?
            .into_iter()
            .map(|v| NameAddr::parse_in(base, v))
            .collect()
    }

    pub(crate) fn parse_in(base: &Text, s: &str) -> R<NameAddr> {
        let s = trim_ws(s);
        let b = s.as_bytes();
        if b.is_empty() {
            return bad("empty name-addr");
        }
        let (display, after_display) = if b[0] == b'"' {
            let n = quoted_len(s)?;
            let q = s.get(..n).unwrap_or("");
            let rest = trim_ws(s.get(n..).unwrap_or(""));
            if !rest.starts_with('<') {
                return bad("name-addr: < expected after display name");
            }
            (Some(Text::from(unquote(q))), rest)
        } else if let Some(lt) = s.find('<') {
            let d = trim_ws(s.get(..lt).unwrap_or(""));
            // display-name = *(token LWS)
            if !d.split([' ', '\t']).all(|w| w.is_empty() || is_token(w)) {
                return bad("display name");
            }
            let display = if d.is_empty() {
                None
            } else {
                Some(base.slice_ref(d))
            };
            (display, s.get(lt..).unwrap_or(""))
        } else {
            (None, s)
        };
        if let Some(inner) = after_display.strip_prefix('<') {
            let Some(gt) = inner.find('>') else {
                return bad("name-addr: > missing");
            };
            let uri = Uri::parse_in(base, inner.get(..gt).unwrap_or(""))?;
            let params = header_params(base, inner.get(gt + 1..).unwrap_or(""))?;
            return Ok(NameAddr {
                display,
                uri,
                params,
            });
        }
        // addr-spec: the URI ends at the first ';' (its parameters would be header parameters);
        // an addr-spec holding ',', '?' or ';' must be written as a name-addr (§20.10).
        let (u, p) = match s.find(';') {
            Some(i) => (s.get(..i).unwrap_or(""), s.get(i..).unwrap_or("")),
            None => (s, ""),
        };
        let u = trim_ws(u);
        if u.contains(['?', ',', ' ', '\t', '>']) {
            return bad("addr-spec needs <>");
        }
        let uri = Uri::parse_in(base, u)?;
        let params = header_params(base, p)?;
        Ok(NameAddr {
            display: None,
            uri,
            params,
        })
    }
}

impl fmt::Display for NameAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(d) = &self.display {
            let mut q = String::with_capacity(d.len() + 2);
            quote(d, &mut q);
            write!(f, "{q} ")?;
        }
        write!(f, "<{}>", self.uri)?;
        write_header_params(&self.params, f)
    }
}

impl CSeq {
    /// Parses `4711 INVITE`.
    pub fn parse(s: &str) -> Result<CSeq, ParseError> {
        let s = trim_ws(s);
        let Some(sp) = s.find([' ', '\t']) else {
            return bad("CSeq");
        };
        let num = s.get(..sp).unwrap_or("");
        let method = trim_ws(s.get(sp..).unwrap_or(""));
        // RFC 3261 §8.1.1.5: the sequence number must be less than 2**31.
        let seq = match digits_u32(num) {
            Some(n) if n < 0x8000_0000 => n,
            _ => return bad("CSeq number"),
        };
        if !is_token(method) {
            return bad("CSeq method");
        }
        Ok(CSeq {
            seq,
            method: Method::from_token(method),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn via_forms() {
        let v = Via::parse_all(
            "SIP / 2.0 / udp host.example.com : 5060 ; branch = z9hG4bK1 ;rport, SIP/2.0/TCP [2001:db8::1]:5070;received=[2001:db8::2]",
        )
        .unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].transport, "UDP");
        assert_eq!(v[0].host, Host::Domain(Text::from("host.example.com")));
        assert_eq!(v[0].port, Some(5060));
        assert_eq!(v[0].branch().unwrap(), "z9hG4bK1");
        assert!(v[0].params.has("rport"));
        assert_eq!(v[1].host, Host::V6("2001:db8::1".parse().unwrap()));
        assert_eq!(v[1].sent_by(), "[2001:db8::1]:5070");
        assert_eq!(Via::parse_all(&v[0].to_string()).unwrap()[0], v[0].clone());
        assert!(Via::parse_all("SIP/2.0/UDP").is_err());
        assert!(Via::parse_all("SIP/3.0/UDP h").is_err());
        assert!(Via::parse_all("SIP/2.0/UDP 2001:db8::1").is_err());
    }

    #[test]
    fn name_addr_forms() {
        let n = NameAddr::parse(r#""Bob \"B\" Smith" <sip:bob@example.com;transport=tcp>;tag=abc"#)
            .unwrap();
        assert_eq!(n.display.as_deref(), Some(r#"Bob "B" Smith"#));
        assert_eq!(n.tag().unwrap(), "abc");
        assert_eq!(n.uri.params.value("transport").unwrap(), "tcp");
        assert_eq!(NameAddr::parse(&n.to_string()).unwrap(), n);
        let a = NameAddr::parse("sip:alice@example.com;tag=1").unwrap();
        assert_eq!(a.tag().unwrap(), "1");
        assert!(a.uri.params.0.is_empty());
        let t = NameAddr::parse("Anonymous Person <sip:x@y>").unwrap();
        assert_eq!(t.display.as_deref(), Some("Anonymous Person"));
        assert!(NameAddr::parse("Bell, Alexander <sip:a@b>").is_err());
        assert!(NameAddr::parse("sip:a@b?Route=x").is_err());
        let l = NameAddr::parse_list("<sip:a@b;lr>, \"x,y\" <sip:c@d>").unwrap();
        assert_eq!(l.len(), 2);
        assert_eq!(l[1].display.as_deref(), Some("x,y"));
    }

    #[test]
    fn cseq() {
        let c = CSeq::parse("4711 INVITE").unwrap();
        assert_eq!((c.seq, c.method), (4711, Method::Invite));
        assert!(CSeq::parse("-1 INVITE").is_err());
        assert!(CSeq::parse("4294967301 INVITE").is_err());
        assert!(CSeq::parse("1").is_err());
        assert!(CSeq::parse("1 IN VITE").is_err());
    }
}
