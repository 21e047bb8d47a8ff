//! Small pieces of the RFC 3261 §25 grammar shared by the parsers: character classes, numbers,
//! list splitting, quoted strings, %XX escapes and `;name=value` header parameters.
//!
//! Everything here works on `&str` with byte offsets checked by `get`, iterates (never recurses)
//! and returns errors instead of panicking.

use crate::message::{Params, ParseError};
use crate::text::Text;

pub(crate) type R<T> = Result<T, ParseError>;

pub(crate) fn bad<T>(what: &'static str) -> R<T> {
    Err(ParseError::Malformed(what))
}

/// `token` characters (RFC 3261 §25.1).
pub(crate) fn is_token_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&c)
}

/// A non-empty token.
pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_token_char)
}

/// `1*DIGIT` as a u32 (no sign, no spaces, no overflow).
pub(crate) fn digits_u32(s: &str) -> Option<u32> {
    if s.is_empty() || s.len() > 10 || !s.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    s.parse::<u64>().ok().and_then(|v| u32::try_from(v).ok())
}

/// `1*DIGIT` as a usize (no sign, no spaces, no overflow).
pub(crate) fn digits_usize(s: &str) -> Option<usize> {
    if s.is_empty() || s.len() > 18 || !s.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    s.parse::<usize>().ok()
}

/// Linear whitespace after unfolding: space or tab.
pub(crate) fn is_ws(c: u8) -> bool {
    c == b' ' || c == b'\t'
}

/// Trims spaces and tabs.
pub(crate) fn trim_ws(s: &str) -> &str {
    s.trim_matches([' ', '\t'])
}

/// Splits a header value at commas that are outside quoted strings and `<...>`; each element is
/// trimmed; an empty element is an error.
pub(crate) fn split_list(s: &str) -> R<Vec<&str>> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut start = 0;
    let mut in_quote = false;
    let mut in_angle = false;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if in_quote {
            if c == b'\\' {
                i += 1;
            } else if c == b'"' {
                in_quote = false;
            }
        } else if in_angle {
            if c == b'>' {
                in_angle = false;
            }
        } else if c == b'"' {
            in_quote = true;
        } else if c == b'<' {
            in_angle = true;
        } else if c == b',' {
            let part = trim_ws(s.get(start..i).unwrap_or(""));
            if part.is_empty() {
                return bad("empty list element");
            }
            out.push(part);
            start = i + 1;
        }
        i += 1;
    }
    if in_quote {
        return bad("unterminated quoted string");
    }
    if in_angle {
        return bad("unterminated <");
    }
    let part = trim_ws(s.get(start..).unwrap_or(""));
    if part.is_empty() {
        return bad("empty list element");
    }
    out.push(part);
    Ok(out)
}

/// Length of the quoted string at the start of `s` (which begins with `"`), quotes included.
pub(crate) fn quoted_len(s: &str) -> R<usize> {
    let b = s.as_bytes();
    if b.first() != Some(&b'"') {
        return bad("expected quoted string");
    }
    let mut i = 1;
    while i < b.len() {
        match b[i] {
            b'\\' => {
                if i + 1 >= b.len() {
                    return bad("unterminated quoted string");
                }
                // quoted-pair: any char except CR/LF (absent after unfolding)
                i += 2;
            }
            b'"' => return Ok(i + 1),
            _ => i += 1,
        }
    }
    bad("unterminated quoted string")
}

/// The content of a quoted string (quotes included in `q`), quoted-pairs resolved.
pub(crate) fn unquote(q: &str) -> String {
    let inner = q
        .strip_prefix('"')
        .and_then(|x| x.strip_suffix('"'))
        .unwrap_or(q);
    let mut out = String::with_capacity(inner.len());
    let mut esc = false;
    for ch in inner.chars() {
        if esc {
            out.push(ch);
            esc = false;
        } else if ch == '\\' {
            esc = true;
        } else {
            out.push(ch);
        }
    }
    out
}

/// Writes `s` as a quoted string.
pub(crate) fn quote(s: &str, out: &mut String) {
    out.push('"');
    for ch in s.chars() {
        if ch == '"' || ch == '\\' {
            out.push('\\');
        }
        out.push(ch);
    }
    out.push('"');
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Resolves `%XX` escapes. A `%` not followed by two hex digits, or a result that is not UTF-8,
/// is an error.
pub(crate) fn unescape(base: &Text, s: &str) -> R<Text> {
    if !s.contains('%') {
        return Ok(base.slice_ref(s));
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hi = b.get(i + 1).copied().and_then(hex);
            let lo = b.get(i + 2).copied().and_then(hex);
            match (hi, lo) {
                (Some(h), Some(l)) => out.push(h * 16 + l),
                _ => return bad("bad % escape"),
            }
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    match String::from_utf8(out) {
        Ok(s) => Ok(Text::from(s)),
        Err(_) => bad("escape is not UTF-8"),
    }
}

/// `unreserved` (RFC 3261 §25.1): alphanum and mark.
pub(crate) fn is_unreserved(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&c)
}

/// Appends `s` with every byte that `safe` refuses written as `%XX`.
pub(crate) fn escape_into(s: &str, safe: fn(u8) -> bool, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &c in s.as_bytes() {
        if safe(c) {
            out.push(c as char);
        } else {
            out.push('%');
            out.push(HEX[(c >> 4) as usize] as char);
            out.push(HEX[(c & 15) as usize] as char);
        }
    }
}

/// Parses header parameters: `*( SEMI name [ EQUAL value ] )` where value is a token, a host
/// (IPv6 references in brackets) or a quoted string (kept with its quotes). `s` must be empty or
/// start (after optional whitespace) with `;`.
pub(crate) fn header_params(base: &Text, s: &str) -> R<Params> {
    let mut params = Params::default();
    let b = s.as_bytes();
    let mut i = 0;
    let skip = |i: &mut usize| {
        while *i < b.len() && is_ws(b[*i]) {
            *i += 1;
        }
    };
    loop {
        skip(&mut i);
        if i >= b.len() {
            return Ok(params);
        }
        if b[i] != b';' {
            return bad("parameter");
        }
        i += 1;
        skip(&mut i);
        let ns = i;
        while i < b.len() && is_token_char(b[i]) {
            i += 1;
        }
        if i == ns {
            return bad("parameter name");
        }
        let name = base.slice_ref(s.get(ns..i).unwrap_or(""));
        skip(&mut i);
        if i < b.len() && b[i] == b'=' {
            i += 1;
            skip(&mut i);
            let vs = i;
            match b.get(i) {
                Some(b'"') => {
                    i += quoted_len(s.get(i..).unwrap_or(""))?;
                }
                Some(b'[') => {
                    while i < b.len() && b[i] != b']' {
                        i += 1;
                    }
                    if i >= b.len() {
                        return bad("parameter value");
                    }
                    i += 1;
                }
                _ => {
                    while i < b.len() && (is_token_char(b[i]) || b[i] == b':') {
                        i += 1;
                    }
                }
            }
            if i == vs {
                return bad("parameter value");
            }
            params
                .0
                .push((name, Some(base.slice_ref(s.get(vs..i).unwrap_or("")))));
        } else {
            params.0.push((name, None));
        }
    }
}

/// Writes header parameters as stored.
pub(crate) fn write_header_params(p: &Params, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    for (n, v) in &p.0 {
        match v {
            Some(v) => write!(f, ";{n}={v}")?,
            None => write!(f, ";{n}")?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_split_respects_quotes_and_angles() {
        let v = split_list(r#""a,\"b" <sip:x;a=1,2>, <sip:y> ,sip:z"#).unwrap();
        assert_eq!(v, vec![r#""a,\"b" <sip:x;a=1,2>"#, "<sip:y>", "sip:z"]);
        assert!(split_list("a,,b").is_err());
        assert!(split_list("\"abc").is_err());
    }

    #[test]
    fn numbers() {
        assert_eq!(digits_u32("0"), Some(0));
        assert_eq!(digits_u32("4294967295"), Some(u32::MAX));
        assert_eq!(digits_u32("4294967296"), None);
        assert_eq!(digits_u32("-1"), None);
        assert_eq!(digits_u32("+1"), None);
        assert_eq!(digits_u32(""), None);
    }

    #[test]
    fn escapes() {
        let t = Text::from("a%41%3a");
        assert_eq!(unescape(&t, &t).unwrap(), "aA:");
        assert!(unescape(&t, "%4").is_err());
        assert!(unescape(&t, "%ff").is_err());
        let mut s = String::new();
        escape_into("a:b@", is_unreserved, &mut s);
        assert_eq!(s, "a%3Ab%40");
    }

    #[test]
    fn params() {
        let t = Text::from(" ; a = 1 ;b;c=\"x;y\";received=[::1]");
        let p = header_params(&t, &t).unwrap();
        assert_eq!(p.value("a").unwrap(), "1");
        assert!(p.has("B"));
        assert_eq!(p.value("c").unwrap(), "\"x;y\"");
        assert_eq!(p.value("received").unwrap(), "[::1]");
        assert!(header_params(&t, "x").is_err());
        assert!(header_params(&t, ";=1").is_err());
    }
}
