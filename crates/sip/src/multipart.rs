//! Splitting a `multipart/*` body (RFC 2046 §5.1) into its parts, bounded and without recursion:
//! nested multiparts come back as bytes (call [`split`] again on them if needed).

use crate::grammar::{bad, header_params, trim_ws, unquote, R};
use crate::message::{HeaderName, Headers, ParseError};
use crate::text::Text;
use bytes::Bytes;

/// One body part: its MIME headers and its content (bytes, shared with the message buffer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// The part's MIME headers (Content-Type, Content-Disposition…), as received.
    pub headers: Headers,
    /// The part's content, without the line end before the next delimiter.
    pub body: Bytes,
}

impl Part {
    /// The part's Content-Type without parameters.
    pub fn content_type(&self) -> Option<&str> {
        let t = self.headers.get(&HeaderName::ContentType)?;
        Some(trim_ws(t.split(';').next().unwrap_or(""))).filter(|s| !s.is_empty())
    }
}

/// The boundary parameter of a `multipart/...` Content-Type value (quotes removed). An error if
/// the type is not multipart or the boundary is missing or not 1 to 70 characters (RFC 2046).
pub fn boundary(content_type: &str) -> Result<String, ParseError> {
    let base = Text::from(content_type.to_owned());
    let (ty, params) = match base.find(';') {
        Some(i) => (base.get(..i).unwrap_or(""), base.get(i..).unwrap_or("")),
        None => (base.as_str(), ""),
    };
    let ty = trim_ws(ty);
    if !ty
        .get(..10)
        .is_some_and(|p| p.eq_ignore_ascii_case("multipart/"))
    {
        return bad("not a multipart type");
    }
    let params = header_params(&base, params)?;
    let b = params
        .value("boundary")
        .ok_or(ParseError::Malformed("multipart boundary missing"))?;
    let b = if b.starts_with('"') {
        unquote(b)
    } else {
        b.to_string()
    };
    if b.is_empty() || b.len() > 70 || b.bytes().any(|c| c == b'\r' || c == b'\n') {
        return bad("multipart boundary");
    }
    Ok(b)
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    let h = hay.get(from..)?;
    if needle.is_empty() || h.len() < needle.len() {
        return None;
    }
    h.windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

/// Finds the next delimiter line `--boundary` at or after `from` that starts a line (at the very
/// start of the body or right after LF). Returns (start of the line ending before it, start of
/// the delimiter).
fn next_delimiter(body: &[u8], dash: &[u8], mut from: usize) -> Option<(usize, usize)> {
    loop {
        let at = find(body, dash, from)?;
        if at == 0 {
            return Some((0, 0));
        }
        if body.get(at - 1) == Some(&b'\n') {
            // the line end before the delimiter belongs to the delimiter
            let mut end = at - 1;
            if end > 0 && body.get(end - 1) == Some(&b'\r') {
                end -= 1;
            }
            return Some((end, at));
        }
        from = at + 1;
    }
}

/// Parses MIME part headers (`Name: value` lines with folding) ending at an empty line.
fn part_headers(text: &Text) -> R<Headers> {
    let mut out = Headers::default();
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        if line.starts_with([' ', '\t']) {
            let Some(last) = out.0.last_mut() else {
                return bad("folded part header");
            };
            let v = format!("{} {}", last.value, trim_ws(line));
            last.value = Text::from(v);
            continue;
        }
        let Some((n, v)) = line.split_once(':') else {
            return bad("part header");
        };
        let n = trim_ws(n);
        if n.is_empty() {
            return bad("part header");
        }
        out.push(HeaderName::from_wire(n), text.slice_ref(trim_ws(v)));
    }
    Ok(out)
}

/// Splits `body` by the boundary of `content_type` into at most `max_parts` parts (more is an
/// error). The preamble and epilogue are dropped; a missing close delimiter is an error.
pub fn split(body: &Bytes, content_type: &str, max_parts: usize) -> Result<Vec<Part>, ParseError> {
    let b = boundary(content_type)?;
    let dash = format!("--{b}");
    let dash = dash.as_bytes();
    let mut parts = Vec::new();
    let Some((_, mut at)) = next_delimiter(body, dash, 0) else {
        return bad("multipart: no boundary");
    };
    loop {
        let after = at + dash.len();
        if body.get(after..after + 2) == Some(b"--") {
            return Ok(parts);
        }
        // skip transport padding to the end of the delimiter line
        let Some(nl) = body
            .get(after..)
            .and_then(|r| r.iter().position(|&c| c == b'\n'))
        else {
            return bad("multipart: truncated");
        };
        let start = after + nl + 1;
        let Some((end, next)) = next_delimiter(body, dash, start) else {
            return bad("multipart: no close delimiter");
        };
        if parts.len() >= max_parts {
            return bad("multipart: too many parts");
        }
        let content = body.slice(start..end.max(start));
        // headers end at the first empty line (CRLF CRLF or LF LF); none if it starts with one
        let (hlen, blen) = header_end(&content);
        let head = Text::from_utf8(content.slice(..hlen))
            .ok_or(ParseError::Malformed("multipart: part headers not UTF-8"))?;
        parts.push(Part {
            headers: part_headers(&head)?,
            body: content.slice(blen..),
        });
        at = next;
    }
}

/// (length of the header block, start of the part body) in a part.
fn header_end(c: &[u8]) -> (usize, usize) {
    if c.starts_with(b"\r\n") {
        return (0, 2);
    }
    if c.starts_with(b"\n") {
        return (0, 1);
    }
    let mut i = 0;
    while let Some(p) = c.get(i..).and_then(|r| r.iter().position(|&x| x == b'\n')) {
        let nl = i + p;
        let rest = c.get(nl + 1..).unwrap_or(&[]);
        if rest.starts_with(b"\r\n") {
            return (nl + 1, nl + 3);
        }
        if rest.starts_with(b"\n") {
            return (nl + 1, nl + 2);
        }
        i = nl + 1;
    }
    // no blank line: all headers, empty body
    (c.len(), c.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_parts() {
        let body = Bytes::from_static(
            b"preamble\r\n--b1\r\nContent-Type: text/plain\r\n\r\nHello\r\n--b1  \r\nContent-Type: application/octet-stream\r\n\r\n\x00\x01\n\x02\r\n--b1--\r\nepilogue",
        );
        let parts = split(&body, "multipart/mixed; boundary=b1", 8).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].content_type(), Some("text/plain"));
        assert_eq!(&parts[0].body[..], b"Hello");
        assert_eq!(&parts[1].body[..], b"\x00\x01\n\x02");
        assert!(split(&body, "multipart/mixed; boundary=b1", 1).is_err());
        assert!(split(&body, "text/plain", 8).is_err());
        assert!(split(&body, "multipart/mixed", 8).is_err());
        let quoted = Bytes::from_static(b"--a b\n\nx\n--a b--\n");
        let p = split(&quoted, "Multipart/Mixed;boundary=\"a b\"", 8).unwrap();
        assert_eq!(&p[0].body[..], b"x");
        assert!(p[0].headers.is_empty());
        let open = Bytes::from_static(b"--b1\r\n\r\nx");
        assert!(split(&open, "multipart/mixed;boundary=b1", 8).is_err());
    }
}
