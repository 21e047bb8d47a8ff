//! SIP, SIPS (RFC 3261 §19.1, §25.1) and tel (RFC 3966) URIs, hosts and ports.

use crate::grammar::{bad, escape_into, is_unreserved, unescape, R};
use crate::message::{Host, Params, ParseError, Scheme, Uri};
use crate::text::Text;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

/// `user` characters that need no escape: unreserved / user-unreserved.
fn user_safe(c: u8) -> bool {
    is_unreserved(c) || b"&=+$,;?/".contains(&c)
}

/// `password` characters that need no escape.
fn password_safe(c: u8) -> bool {
    is_unreserved(c) || b"&=+$,".contains(&c)
}

/// `paramchar` characters that need no escape.
fn param_safe(c: u8) -> bool {
    is_unreserved(c) || b"[]/:&+$".contains(&c)
}

/// `hname` / `hvalue` characters that need no escape.
fn header_safe(c: u8) -> bool {
    is_unreserved(c) || b"[]/?:+$".contains(&c)
}

/// Characters that may appear literally in a URI at all (before looking at the part).
fn uri_char(c: u8) -> bool {
    is_unreserved(c) || b"%;/?:@&=+$,[]#".contains(&c)
}

/// Parses a port: 1*DIGIT within u16.
pub(crate) fn parse_port(s: &str) -> R<u16> {
    if s.is_empty() || s.len() > 5 || !s.bytes().all(|c| c.is_ascii_digit()) {
        return bad("port");
    }
    s.parse::<u16>().or(bad("port"))
}

/// Parses a host: `[IPv6]`, dotted IPv4, or a host name.
pub(crate) fn parse_host(base: &Text, s: &str) -> R<Host> {
    if let Some(inner) = s.strip_prefix('[') {
        let Some(inner) = inner.strip_suffix(']') else {
            return bad("IPv6 reference");
        };
        if let Ok(a) = inner.parse::<Ipv6Addr>() {
            return Ok(Host::V6(a));
        }
        // RFC 5118 §4.10: the RFC 3261 ABNF admits `2001:db8:::192.0.2.1`; be robust and read it
        // as `2001:db8::192.0.2.1`.
        if let Some(i) = inner.find(":::") {
            let fixed = format!(
                "{}{}",
                inner.get(..i + 1).unwrap_or(""),
                inner.get(i + 2..).unwrap_or("")
            );
            if fixed.contains('.') && !fixed.contains(":::") {
                if let Ok(a) = fixed.parse::<Ipv6Addr>() {
                    return Ok(Host::V6(a));
                }
            }
        }
        return bad("IPv6 reference");
    }
    if s.is_empty() {
        return bad("empty host");
    }
    if s.bytes().all(|c| c.is_ascii_digit() || c == b'.') {
        return s.parse::<Ipv4Addr>().map(Host::V4).or(bad("IPv4 address"));
    }
    // hostname = *( domainlabel "." ) toplabel [ "." ]; '_' tolerated as many stacks do.
    let name = s.strip_suffix('.').unwrap_or(s);
    for label in name.split('.') {
        let lb = label.as_bytes();
        let ok = !lb.is_empty()
            && lb
                .iter()
                .all(|&c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
            && lb.first() != Some(&b'-')
            && lb.last() != Some(&b'-');
        if !ok {
            return bad("host name");
        }
    }
    let top = name.rsplit('.').next().unwrap_or("");
    if !top
        .as_bytes()
        .first()
        .is_some_and(|c| c.is_ascii_alphabetic())
    {
        return bad("host name");
    }
    Ok(Host::Domain(base.slice_ref(s)))
}

/// Parses `host [":" port]`.
pub(crate) fn parse_hostport(base: &Text, s: &str) -> R<(Host, Option<u16>)> {
    if s.starts_with('[') {
        let Some(end) = s.find(']') else {
            return bad("IPv6 reference");
        };
        let host = parse_host(base, s.get(..=end).unwrap_or(""))?;
        let rest = s.get(end + 1..).unwrap_or("");
        if rest.is_empty() {
            return Ok((host, None));
        }
        let Some(p) = rest.strip_prefix(':') else {
            return bad("after IPv6 reference");
        };
        return Ok((host, Some(parse_port(p)?)));
    }
    match s.split_once(':') {
        None => Ok((parse_host(base, s)?, None)),
        Some((h, p)) => {
            if p.contains(':') {
                return bad("IPv6 address without brackets");
            }
            Ok((parse_host(base, h)?, Some(parse_port(p)?)))
        }
    }
}

/// Splits the scheme off a URI: the scheme and what follows the colon. Errors if there is no
/// valid scheme.
pub(crate) fn split_scheme(s: &str) -> R<(&str, &str)> {
    let Some((scheme, rest)) = s.split_once(':') else {
        return bad("URI scheme");
    };
    let sb = scheme.as_bytes();
    let ok = sb.first().is_some_and(|c| c.is_ascii_alphabetic())
        && sb
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || c == b'+' || c == b'-' || c == b'.');
    if !ok {
        return bad("URI scheme");
    }
    Ok((scheme, rest))
}

/// One URI component: only the characters its grammar allows literally (or `%XX`), unescaped.
fn component(base: &Text, s: &str, safe: fn(u8) -> bool, what: &'static str) -> R<Text> {
    if !s.bytes().all(|c| safe(c) || c == b'%') {
        return bad(what);
    }
    unescape(base, s)
}

fn uri_params(base: &Text, s: &str) -> R<Params> {
    let mut params = Params::default();
    if s.is_empty() {
        return Ok(params);
    }
    for p in s.split(';') {
        let (n, v) = match p.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (p, None),
        };
        if n.is_empty() {
            return bad("URI parameter");
        }
        let name = component(base, n, param_safe, "URI parameter")?;
        let value = match v {
            Some("") => return bad("URI parameter value"),
            Some(v) => Some(component(base, v, param_safe, "URI parameter value")?),
            None => None,
        };
        params.0.push((name, value));
    }
    Ok(params)
}

impl Uri {
    /// Parses a SIP, SIPS or tel URI. A URI of another (well-formed) scheme gives
    /// [`ParseError::UnsupportedUriScheme`].
    pub fn parse(s: &str) -> Result<Uri, ParseError> {
        let base = Text::from(s.to_owned());
        Uri::parse_in(&base, &base)
    }

    /// Parses `s`, a slice of `base`, sharing its buffer.
    pub(crate) fn parse_in(base: &Text, s: &str) -> R<Uri> {
        // No length cap of its own: the message's line limit bounds a URI read from the wire.
        if s.is_empty() {
            return bad("empty URI");
        }
        if !s.bytes().all(uri_char) {
            return bad("character in URI");
        }
        let (scheme, rest) = split_scheme(s)?;
        let scheme = if scheme.eq_ignore_ascii_case("sip") {
            Scheme::Sip
        } else if scheme.eq_ignore_ascii_case("sips") {
            Scheme::Sips
        } else if scheme.eq_ignore_ascii_case("tel") {
            Scheme::Tel
        } else {
            return Err(ParseError::UnsupportedUriScheme);
        };
        if rest.contains('#') {
            return bad("character in URI");
        }
        if scheme == Scheme::Tel {
            return Self::parse_tel(base, rest);
        }
        // userinfo: up to the first '@' (user and password never hold a literal '@').
        let (userinfo, hostpart) = match rest.split_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, rest),
        };
        let (user, password) = match userinfo {
            None => (None, None),
            Some(u) => {
                let (user, pw) = match u.split_once(':') {
                    Some((a, b)) => (a, Some(b)),
                    None => (u, None),
                };
                if user.is_empty() {
                    return bad("empty URI user");
                }
                let pw = match pw {
                    Some(p) => Some(component(base, p, password_safe, "URI password")?),
                    None => None,
                };
                (Some(component(base, user, user_safe, "URI user")?), pw)
            }
        };
        let (before_headers, headers_str) = match hostpart.split_once('?') {
            Some((a, b)) => (a, Some(b)),
            None => (hostpart, None),
        };
        let (hostport, params_str) = match before_headers.split_once(';') {
            Some((a, b)) => (a, b),
            None => (before_headers, ""),
        };
        let (host, port) = parse_hostport(base, hostport)?;
        let params = uri_params(base, params_str)?;
        let mut headers = Vec::new();
        if let Some(hs) = headers_str {
            for h in hs.split('&') {
                let Some((n, v)) = h.split_once('=') else {
                    return bad("URI header");
                };
                if n.is_empty() {
                    return bad("URI header");
                }
                headers.push((
                    component(base, n, header_safe, "URI header name")?,
                    component(base, v, header_safe, "URI header value")?,
                ));
            }
        }
        Ok(Uri {
            scheme,
            user,
            password,
            host,
            port,
            params,
            headers,
        })
    }

    fn parse_tel(base: &Text, rest: &str) -> R<Uri> {
        let (number, params_str) = match rest.split_once(';') {
            Some((a, b)) => (a, b),
            None => (rest, ""),
        };
        // `#` must be escaped (%23) in a URI (RFC 3966 §5.1.5): unescape, then check.
        let number = unescape(base, number)?;
        let nb = number.as_bytes();
        let digits = nb.strip_prefix(b"+").unwrap_or(nb);
        let ok = !digits.is_empty()
            && digits
                .iter()
                .all(|&c| c.is_ascii_hexdigit() || b"*#-.()pPwW".contains(&c))
            && digits
                .iter()
                .any(|&c| c.is_ascii_hexdigit() || c == b'*' || c == b'#');
        if !ok {
            return bad("telephone number");
        }
        Ok(Uri {
            scheme: Scheme::Tel,
            user: Some(number),
            password: None,
            host: Host::Domain(Text::default()),
            port: None,
            params: uri_params(base, params_str)?,
            headers: Vec::new(),
        })
    }
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::with_capacity(64);
        match self.scheme {
            Scheme::Sip => s.push_str("sip:"),
            Scheme::Sips => s.push_str("sips:"),
            Scheme::Tel => s.push_str("tel:"),
        }
        if self.scheme == Scheme::Tel {
            if let Some(u) = &self.user {
                escape_into(
                    u,
                    |c| c.is_ascii_alphanumeric() || b"+*-.()".contains(&c),
                    &mut s,
                );
            }
        } else {
            if let Some(u) = &self.user {
                escape_into(u, user_safe, &mut s);
                if let Some(p) = &self.password {
                    s.push(':');
                    escape_into(p, password_safe, &mut s);
                }
                s.push('@');
            }
            s.push_str(&self.host.to_string());
            if let Some(p) = self.port {
                s.push(':');
                s.push_str(&p.to_string());
            }
        }
        for (n, v) in &self.params.0 {
            s.push(';');
            escape_into(n, param_safe, &mut s);
            if let Some(v) = v {
                s.push('=');
                escape_into(v, param_safe, &mut s);
            }
        }
        for (i, (n, v)) in self.headers.iter().enumerate() {
            s.push(if i == 0 { '?' } else { '&' });
            escape_into(n, header_safe, &mut s);
            s.push('=');
            escape_into(v, header_safe, &mut s);
        }
        f.write_str(&s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sip_uri_full() {
        let u =
            Uri::parse("sip:alice:secret@Example.COM:5061;transport=tcp;lr?Subject=hi%20there&x=1")
                .unwrap();
        assert_eq!(u.scheme, Scheme::Sip);
        assert_eq!(u.user.as_deref(), Some("alice"));
        assert_eq!(u.password.as_deref(), Some("secret"));
        assert_eq!(u.host, Host::Domain(Text::from("Example.COM")));
        assert_eq!(u.port, Some(5061));
        assert_eq!(u.params.value("Transport").unwrap(), "tcp");
        assert!(u.params.has("lr"));
        assert_eq!(u.headers[0].1, "hi there");
        let again = Uri::parse(&u.to_string()).unwrap();
        assert_eq!(again, u);
    }

    #[test]
    fn ipv6_and_tel() {
        let u = Uri::parse("SIPS:[2001:db8::1]:5060").unwrap();
        assert_eq!(u.scheme, Scheme::Sips);
        assert_eq!(u.host, Host::V6("2001:db8::1".parse().unwrap()));
        assert_eq!(u.port, Some(5060));
        assert_eq!(u.to_string(), "sips:[2001:db8::1]:5060");
        assert!(Uri::parse("sip:2001:db8::1").is_err());
        assert!(Uri::parse("sip:[2001:db8::1").is_err());
        let t = Uri::parse("tel:+1-201-555-0123;phone-context=example.com").unwrap();
        assert_eq!(t.scheme, Scheme::Tel);
        assert_eq!(t.user.as_deref(), Some("+1-201-555-0123"));
        assert_eq!(t.params.value("phone-context").unwrap(), "example.com");
        assert_eq!(Uri::parse(&t.to_string()).unwrap(), t);
        let d = Uri::parse("tel:*21%23;phone-context=+1").unwrap();
        assert_eq!(d.user.as_deref(), Some("*21#"));
        assert_eq!(d.to_string(), "tel:*21%23;phone-context=+1");
        assert!(Uri::parse("tel:*21#").is_err());
        assert!(Uri::parse("tel:abc-xyz").is_err());
    }

    #[test]
    fn escapes_and_schemes() {
        let u = Uri::parse("sip:sips%3Auser%40example.com@example.net").unwrap();
        assert_eq!(u.user.as_deref(), Some("sips:user@example.com"));
        assert_eq!(Uri::parse(&u.to_string()).unwrap(), u);
        assert_eq!(
            Uri::parse("http://example.com/"),
            Err(ParseError::UnsupportedUriScheme)
        );
        assert!(matches!(
            Uri::parse("sip:user@example.com>"),
            Err(ParseError::Malformed(_))
        ));
        assert!(Uri::parse("sip:a b@x").is_err());
        assert!(Uri::parse("sip:@x").is_err());
        assert!(Uri::parse("sip:x:99999").is_err());
        assert!(Uri::parse("sip:1.2.3.256").is_err());
        // characters a component's grammar does not allow literally
        assert!(Uri::parse("sip:a@b;p=x@y").is_err());
        assert!(Uri::parse("sip:a@b?h=x@y").is_err());
        assert!(Uri::parse("sip:a[b@c").is_err());
        assert!(Uri::parse("sip:a:p;w@c").is_err());
        // a long URI: no cap of its own, and escaping growth re-parses
        let long = format!("sip:u@h;p={}", "%40".repeat(5000));
        let u = Uri::parse(&long).unwrap();
        assert_eq!(Uri::parse(&u.to_string()).unwrap(), u);
        assert_eq!(
            Uri::parse("sip:10.0.0.1").unwrap().host,
            Host::V4(Ipv4Addr::new(10, 0, 0, 1))
        );
    }
}
