//! Message framing (§7.5, §18.3), parsing of the start line and header section (§7.1, §7.2,
//! §7.3.1 folding), serialization, and the header accessors.

use crate::grammar::{bad, digits_u32, digits_usize, is_token, is_ws, trim_ws, R};
use crate::message::{
    CSeq, Header, HeaderName, Headers, Limits, Message, Method, NameAddr, ParseError, Request,
    Response, Uri, Via,
};
use crate::text::Text;
use bytes::Bytes;

/// Number of CR / LF bytes at the start of `b` (keep-alives and stray line ends before a start
/// line, §7.5).
fn leading_crlf(b: &[u8]) -> usize {
    b.iter().take_while(|&&c| c == b'\r' || c == b'\n').count()
}

/// Finds the end of the header section in `b` (which starts at the start line): returns
/// `(head_len, body_start)`, where `head_len` covers the start line and header lines (each with
/// its line end) and `body_start` is past the empty line. Lines end with CRLF or a bare LF.
/// Enforces the line length and header count limits while scanning.
fn scan_head(b: &[u8], limits: &Limits) -> R<(usize, usize)> {
    let mut ls = 0usize;
    let mut fields = 0usize;
    loop {
        let rest = b.get(ls..).unwrap_or(&[]);
        let Some(off) = rest.iter().position(|&c| c == b'\n') else {
            if rest.len() > limits.max_line {
                return Err(ParseError::LineTooLong);
            }
            return Err(ParseError::Incomplete);
        };
        let le = ls + off;
        let mut ce = le;
        if ce > ls && b.get(ce - 1) == Some(&b'\r') {
            ce -= 1;
        }
        if ce - ls > limits.max_line {
            return Err(ParseError::LineTooLong);
        }
        if ce == ls {
            return Ok((ls, le + 1));
        }
        if ls > 0 && !b.get(ls).is_some_and(|&c| is_ws(c)) {
            fields += 1;
            if fields > limits.max_headers {
                return Err(ParseError::TooManyHeaders);
            }
        }
        ls = le + 1;
    }
}

/// Rejects a bare CR inside a line (lines end at LF; a CR elsewhere would let two parsers
/// disagree on where a header ends). Other control characters may legally appear inside
/// quoted-pairs (RFC 4475 §3.1.1.2) and are left to the typed parsers.
fn check_line(line: &str) -> R<()> {
    if line.as_bytes().contains(&b'\r') {
        return bad("CR inside a line");
    }
    Ok(())
}

/// Builds a header from its name and its physical pieces (first line's value, then folded
/// continuation lines), unfolding them with single spaces.
fn make_header(head: &Text, name: &str, pieces: &[&str], limits: &Limits) -> R<Header> {
    let name_t = name.trim_end_matches([' ', '\t']);
    if !is_token(name_t) {
        return bad("header name");
    }
    let value = if pieces.len() == 1 {
        head.slice_ref(trim_ws(pieces.first().copied().unwrap_or("")))
    } else {
        let mut v = String::new();
        for p in pieces.iter().map(|p| trim_ws(p)).filter(|p| !p.is_empty()) {
            if !v.is_empty() {
                v.push(' ');
            }
            v.push_str(p);
        }
        Text::from(v)
    };
    if value.len() > limits.max_line {
        return Err(ParseError::LineTooLong);
    }
    let name = match HeaderName::from_wire(name_t) {
        HeaderName::Other(_) => HeaderName::Other(head.slice_ref(name_t)),
        n => n,
    };
    Ok(Header { name, value })
}

/// Parses the header lines (after the start line).
fn parse_headers<'a>(
    head: &Text,
    lines: impl Iterator<Item = &'a str>,
    limits: &Limits,
) -> R<Headers> {
    let mut out: Vec<Header> = Vec::new();
    let mut cur: Option<(&str, Vec<&str>)> = None;
    for line in lines {
        if line.is_empty() {
            continue;
        }
        check_line(line)?;
        if line.starts_with([' ', '\t']) {
            match cur.as_mut() {
                Some((_, pieces)) => {
                    if pieces.len() >= 256 {
                        return Err(ParseError::LineTooLong);
                    }
                    pieces.push(line)
                }
                None => return bad("folded line without a header"),
            }
            continue;
        }
        if let Some((name, pieces)) = cur.take() {
            if out.len() >= limits.max_headers {
                return Err(ParseError::TooManyHeaders);
            }
            out.push(make_header(head, name, &pieces, limits)?);
        }
        let Some((name, value)) = line.split_once(':') else {
            return bad("header line without colon");
        };
        cur = Some((name, vec![value]));
    }
    if let Some((name, pieces)) = cur.take() {
        if out.len() >= limits.max_headers {
            return Err(ParseError::TooManyHeaders);
        }
        out.push(make_header(head, name, &pieces, limits)?);
    }
    Ok(Headers(out))
}

/// Checks a SIP-Version token: `SIP/2.0` (case-insensitive); another `SIP/x` is unsupported.
fn check_version(v: &str) -> R<()> {
    if v.eq_ignore_ascii_case("SIP/2.0") {
        Ok(())
    } else if v.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("SIP/")) {
        Err(ParseError::UnsupportedVersion)
    } else {
        bad("SIP-Version")
    }
}

enum Start {
    Req(Method, Uri),
    Resp(u16, Text),
}

fn parse_start(head: &Text, line: &str) -> R<Start> {
    check_line(line)?;
    if line
        .get(..4)
        .is_some_and(|p| p.eq_ignore_ascii_case("SIP/"))
    {
        // Status-Line = SIP-Version SP Status-Code SP Reason-Phrase (empty reason tolerated
        // with or without the SP).
        let (ver, rest) = line.split_once(' ').unwrap_or((line, ""));
        check_version(ver)?;
        let code = rest.get(..3).unwrap_or("");
        let after = rest.get(3..).unwrap_or("");
        if code.len() != 3 || !code.bytes().all(|c| c.is_ascii_digit()) {
            return bad("status code");
        }
        let status = code.parse::<u16>().or(bad("status code"))?;
        if !(100..=699).contains(&status) {
            return bad("status code");
        }
        let reason = if after.is_empty() {
            ""
        } else if let Some(r) = after.strip_prefix(' ') {
            r
        } else {
            return bad("status code");
        };
        return Ok(Start::Resp(status, head.slice_ref(reason)));
    }
    // Request-Line = Method SP Request-URI SP SIP-Version
    let mut parts = line.split(' ');
    let (Some(m), Some(u), Some(v), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return bad("request line");
    };
    if !is_token(m) {
        return bad("method");
    }
    check_version(v)?;
    if u.is_empty() {
        return bad("Request-URI");
    }
    let uri = Uri::parse_in(head, u)?;
    let method = match Method::from_token(m) {
        Method::Other(_) => Method::Other(head.slice_ref(m)),
        known => known,
    };
    Ok(Start::Req(method, uri))
}

/// The Content-Length of a header list: `Ok(None)` if absent, an error if repeated or not a
/// number.
fn content_length(h: &Headers) -> R<Option<usize>> {
    let mut found = None;
    for v in h.get_all(&HeaderName::ContentLength) {
        if found.is_some() {
            return bad("multiple Content-Length");
        }
        found = Some(digits_usize(v).ok_or(ParseError::Malformed("Content-Length"))?);
    }
    Ok(found)
}

pub(crate) fn parse_message(buf: Bytes, limits: &Limits) -> R<Message> {
    if buf.len() > limits.max_message {
        return Err(ParseError::TooLarge(buf.len()));
    }
    let start = leading_crlf(&buf);
    let (head_len, body_start) = scan_head(buf.get(start..).unwrap_or(&[]), limits)?;
    let head_end = start + head_len;
    let body_start = start + body_start;
    if head_end > buf.len() || body_start > buf.len() {
        return bad("framing");
    }
    let head = Text::from_utf8(buf.slice(start..head_end))
        .ok_or(ParseError::Malformed("header section is not UTF-8"))?;
    let mut lines = head.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let start_line = lines.next().unwrap_or("");
    let start = parse_start(&head, start_line)?;
    let headers = parse_headers(&head, lines, limits)?;
    let rest = buf.slice(body_start..);
    let body = match content_length(&headers)? {
        Some(n) if n > rest.len() => return bad("Content-Length larger than the message"),
        Some(n) => rest.slice(..n),
        None => rest,
    };
    Ok(match start {
        Start::Req(method, uri) => Message::Request(Request {
            method,
            uri,
            headers,
            body,
        }),
        Start::Resp(status, reason) => Message::Response(Response {
            status,
            reason,
            headers,
            body,
        }),
    })
}

/// Writes `s` with CR and LF replaced by spaces (header injection guard).
fn push_clean(out: &mut Vec<u8>, s: &str) {
    out.extend(
        s.bytes()
            .map(|c| if c == b'\r' || c == b'\n' { b' ' } else { c }),
    );
}

pub(crate) fn serialize(msg: &Message) -> Vec<u8> {
    let (headers, body) = match msg {
        Message::Request(r) => (&r.headers, &r.body),
        Message::Response(r) => (&r.headers, &r.body),
    };
    let mut out = Vec::with_capacity(256 + headers.len() * 48 + body.len());
    match msg {
        Message::Request(r) => {
            push_clean(&mut out, r.method.as_str());
            out.push(b' ');
            push_clean(&mut out, &r.uri.to_string());
            out.extend_from_slice(b" SIP/2.0\r\n");
        }
        Message::Response(r) => {
            out.extend_from_slice(format!("SIP/2.0 {:03} ", r.status).as_bytes());
            push_clean(&mut out, &r.reason);
            out.extend_from_slice(b"\r\n");
        }
    }
    for h in &headers.0 {
        if h.name == HeaderName::ContentLength {
            continue;
        }
        let name = h.name.as_str();
        if !is_token(name) {
            continue;
        }
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        push_clean(&mut out, &h.value);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(body);
    out
}

pub(crate) fn frame_len(buf: &[u8], limits: &Limits) -> R<Option<usize>> {
    let n = leading_crlf(buf);
    if n > 0 {
        // A CR at the very end may be the first half of a CRLF: leave it for the next call.
        let n = if n == buf.len() && buf.last() == Some(&b'\r') {
            n - 1
        } else {
            n
        };
        return Ok(if n == 0 { None } else { Some(n) });
    }
    let window = buf.get(..buf.len().min(limits.max_message)).unwrap_or(buf);
    let (head_len, body_start) = match scan_head(window, limits) {
        Ok(x) => x,
        Err(ParseError::Incomplete) => {
            if buf.len() >= limits.max_message {
                return Err(ParseError::TooLarge(buf.len()));
            }
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    // Find Content-Length (full or compact name, possibly folded) in the header lines.
    let head = window.get(..head_len).unwrap_or(&[]);
    let mut cl: Option<usize> = None;
    let mut in_cl = false;
    let mut value: Vec<u8> = Vec::new();
    let finish = |value: &mut Vec<u8>, cl: &mut Option<usize>| -> R<()> {
        let s = std::str::from_utf8(value).unwrap_or("x");
        let v = digits_usize(trim_ws(s)).ok_or(ParseError::Malformed("Content-Length"))?;
        if cl.is_some() {
            return bad("multiple Content-Length");
        }
        *cl = Some(v);
        value.clear();
        Ok(())
    };
    for (i, line) in head.split(|&c| c == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if i == 0 || line.is_empty() {
            continue;
        }
        if line.first().is_some_and(|&c| is_ws(c)) {
            if in_cl {
                value.push(b' ');
                value.extend_from_slice(line);
            }
            continue;
        }
        if in_cl {
            finish(&mut value, &mut cl)?;
            in_cl = false;
        }
        let Some(colon) = line.iter().position(|&c| c == b':') else {
            return bad("header line without colon");
        };
        let name = line.get(..colon).unwrap_or(&[]);
        let name = std::str::from_utf8(name).unwrap_or("");
        let name = name.trim_end_matches([' ', '\t']);
        if name.eq_ignore_ascii_case("content-length") || name.eq_ignore_ascii_case("l") {
            in_cl = true;
            value.extend_from_slice(line.get(colon + 1..).unwrap_or(&[]));
        }
    }
    if in_cl {
        finish(&mut value, &mut cl)?;
    }
    let Some(cl) = cl else {
        return bad("missing Content-Length on a stream");
    };
    let total = body_start
        .checked_add(cl)
        .ok_or(ParseError::TooLarge(usize::MAX))?;
    if total > limits.max_message {
        return Err(ParseError::TooLarge(total));
    }
    Ok(if buf.len() >= total {
        Some(total)
    } else {
        None
    })
}

// ----- accessors -------------------------------------------------------------------------------

pub(crate) fn vias(h: &Headers) -> R<Vec<Via>> {
    let mut out = Vec::new();
    for t in h.get_all(&HeaderName::Via) {
        out.extend(Via::parse_all_in(t, t)?);
    }
    Ok(out)
}

pub(crate) fn via_top(h: &Headers) -> R<Via> {
    let t = h
        .get(&HeaderName::Via)
        .ok_or(ParseError::Malformed("missing Via"))?;
    Via::parse_all_in(t, t)?
        .into_iter()
        .next()
        .ok_or(ParseError::Malformed("Via"))
}

pub(crate) fn name_addr(h: &Headers, name: &HeaderName, what: &'static str) -> R<NameAddr> {
    let t = h.get(name).ok_or(ParseError::Malformed(what))?;
    NameAddr::parse_in(t, t)
}

pub(crate) fn call_id(h: &Headers) -> R<&Text> {
    let t = h
        .get(&HeaderName::CallId)
        .ok_or(ParseError::Malformed("missing Call-ID"))?;
    // callid = word [ "@" word ]; word = 1*(token chars / ( ) < > : \ " / [ ] ? { })
    let word = |w: &str| {
        !w.is_empty()
            && w.bytes()
                .all(|c| crate::grammar::is_token_char(c) || b"()<>:\\\"/[]?{}".contains(&c))
    };
    let ok = match t.split_once('@') {
        Some((a, b)) => word(a) && word(b),
        None => word(t),
    };
    if !ok {
        return bad("Call-ID");
    }
    Ok(t)
}

pub(crate) fn cseq(h: &Headers) -> R<CSeq> {
    let t = h
        .get(&HeaderName::CSeq)
        .ok_or(ParseError::Malformed("missing CSeq"))?;
    CSeq::parse(t)
}

pub(crate) fn name_addr_list(h: &Headers, name: &HeaderName) -> R<Vec<NameAddr>> {
    let mut out = Vec::new();
    for t in h.get_all(name) {
        if *name == HeaderName::Contact && trim_ws(t) == "*" {
            continue;
        }
        out.extend(NameAddr::parse_list_in(t, t)?);
    }
    Ok(out)
}

pub(crate) fn content_type(h: &Headers) -> Option<&str> {
    let t = h.get(&HeaderName::ContentType)?;
    let s = trim_ws(t.split(';').next().unwrap_or(""));
    if s.is_empty() {
        None
    } else {
        Some(s)
    }
}

/// Max-Forwards: 1*DIGIT in 0..=255 (§8.1.1.6).
pub(crate) fn max_forwards(h: &Headers) -> R<Option<u32>> {
    match h.get(&HeaderName::MaxForwards) {
        None => Ok(None),
        Some(t) => match digits_u32(t) {
            Some(n) if n <= 255 => Ok(Some(n)),
            _ => bad("Max-Forwards"),
        },
    }
}

pub(crate) fn expires(h: &Headers) -> R<Option<u32>> {
    match h.get(&HeaderName::Expires) {
        None => Ok(None),
        Some(t) => {
            if t.is_empty() || !t.bytes().all(|c| c.is_ascii_digit()) {
                return bad("Expires");
            }
            // §20.19: a value above 2**32-1 is taken as 2**32-1.
            Ok(Some(digits_u32(t).unwrap_or(u32::MAX)))
        }
    }
}

pub(crate) fn contact_star(h: &Headers) -> bool {
    h.get_all(&HeaderName::Contact).any(|t| trim_ws(t) == "*")
}

/// Checks an RFC 1123 date as SIP requires it (§20.17): `Sat, 13 Nov 2010 23:29:00 GMT`.
pub(crate) fn valid_sip_date(s: &str) -> bool {
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let Some((day, rest)) = s.split_once(", ") else {
        return false;
    };
    let parts: Vec<&str> = rest.split(' ').collect();
    let [dd, mon, year, time, zone] = parts.as_slice() else {
        return false;
    };
    let digits = |x: &str, n: usize| x.len() == n && x.bytes().all(|c| c.is_ascii_digit());
    let t: Vec<&str> = time.split(':').collect();
    DAYS.contains(&day)
        && digits(dd, 2)
        && MONTHS.contains(mon)
        && digits(year, 4)
        && t.len() == 3
        && t.iter().all(|x| digits(x, 2))
        && *zone == "GMT"
}

/// The status for a header that does not parse: 416 for a URI of an unsupported scheme, else
/// 400 with `reason`.
fn status_of(e: &ParseError, reason: &'static str) -> (u16, &'static str) {
    match e {
        ParseError::UnsupportedUriScheme => (416, "Unsupported URI Scheme"),
        _ => (400, reason),
    }
}

pub(crate) fn validate(r: &Request) -> Result<(), (u16, &'static str)> {
    let h = &r.headers;
    let count = |n: HeaderName| h.0.iter().filter(|x| x.name == n).count();
    // §19.1.1: headers are not allowed in a Request-URI (RFC 4475 §3.1.2.11).
    if !r.uri.headers.is_empty() {
        return Err((400, "Request-URI with headers"));
    }
    match vias(h) {
        Ok(v) if v.is_empty() => return Err((400, "Missing Via")),
        Ok(_) => {}
        Err(_) => return Err((400, "Bad Via")),
    }
    for (n, missing, multiple, badv) in [
        (
            HeaderName::From,
            "Missing From",
            "Multiple From",
            "Bad From",
        ),
        (HeaderName::To, "Missing To", "Multiple To", "Bad To"),
    ] {
        match count(n.clone()) {
            0 => return Err((400, missing)),
            1 => {}
            _ => return Err((400, multiple)),
        }
        if let Err(e) = name_addr(h, &n, badv) {
            return Err(status_of(&e, badv));
        }
    }
    match count(HeaderName::CallId) {
        0 => return Err((400, "Missing Call-ID")),
        1 => {}
        _ => return Err((400, "Multiple Call-ID")),
    }
    if call_id(h).is_err() {
        return Err((400, "Bad Call-ID"));
    }
    match count(HeaderName::CSeq) {
        0 => return Err((400, "Missing CSeq")),
        1 => {}
        _ => return Err((400, "Multiple CSeq")),
    }
    match cseq(h) {
        Err(_) => return Err((400, "Bad CSeq")),
        Ok(c) if c.method != r.method => return Err((400, "CSeq method does not match")),
        Ok(_) => {}
    }
    if count(HeaderName::MaxForwards) > 1 {
        return Err((400, "Multiple Max-Forwards"));
    }
    if max_forwards(h).is_err() {
        return Err((400, "Bad Max-Forwards"));
    }
    if count(HeaderName::Expires) > 1 || expires(h).is_err() {
        return Err((400, "Bad Expires"));
    }
    if contact_star(h) {
        // §10.3: `*` only alone and with Expires: 0.
        let fields = count(HeaderName::Contact);
        if fields != 1 || expires(h) != Ok(Some(0)) {
            return Err((400, "Bad Contact *"));
        }
    } else if let Err(e) = name_addr_list(h, &HeaderName::Contact) {
        return Err(status_of(&e, "Bad Contact"));
    }
    if let Err(e) = name_addr_list(h, &HeaderName::Route) {
        return Err(status_of(&e, "Bad Route"));
    }
    if name_addr_list(h, &HeaderName::RecordRoute).is_err() {
        return Err((400, "Bad Record-Route"));
    }
    let date = HeaderName::Other(Text::from("Date"));
    match count(date.clone()) {
        0 => {}
        1 if h.get(&date).is_some_and(|d| valid_sip_date(d)) => {}
        _ => return Err((400, "Bad Date")),
    }
    Ok(())
}

pub(crate) fn response(r: &Request, status: u16, reason: &str, to_tag: Option<&str>) -> Response {
    answer(&r.headers, status, reason, to_tag)
}

/// The header section of a message, even when its start line is rejected.
pub(crate) fn parse_headers_only(buf: Bytes, limits: &Limits) -> R<Headers> {
    if buf.len() > limits.max_message {
        return Err(ParseError::TooLarge(buf.len()));
    }
    let start = leading_crlf(&buf);
    let (head_len, _) = scan_head(buf.get(start..).unwrap_or(&[]), limits)?;
    let head_end = start + head_len;
    if head_end > buf.len() {
        return bad("framing");
    }
    let head = Text::from_utf8(buf.slice(start..head_end))
        .ok_or(ParseError::Malformed("header section is not UTF-8"))?;
    let lines = head
        .split('\n')
        .skip(1)
        .map(|l| l.strip_suffix('\r').unwrap_or(l));
    parse_headers(&head, lines, limits)
}

pub(crate) fn answer(
    request_headers: &Headers,
    status: u16,
    reason: &str,
    to_tag: Option<&str>,
) -> Response {
    let mut headers = Headers::default();
    for h in &request_headers.0 {
        match h.name {
            HeaderName::Via | HeaderName::From | HeaderName::CallId | HeaderName::CSeq => {
                headers.0.push(h.clone())
            }
            HeaderName::To => {
                let mut value = h.value.clone();
                if let Some(tag) = to_tag.filter(|_| status != 100) {
                    let has_tag = NameAddr::parse_in(&h.value, &h.value)
                        .map(|n| n.tag().is_some())
                        .unwrap_or(false);
                    if !has_tag {
                        value = Text::from(format!("{};tag={}", h.value, tag));
                    }
                }
                headers.0.push(Header {
                    name: HeaderName::To,
                    value,
                });
            }
            HeaderName::Other(ref n) if status == 100 && n.eq_ignore_ascii_case("Timestamp") => {
                headers.0.push(h.clone())
            }
            _ => {}
        }
    }
    Response {
        status,
        reason: Text::from(reason.to_owned()),
        headers,
        body: Bytes::new(),
    }
}

#[cfg(test)]
mod tests {
    use crate::message::*;
    use crate::text::Text;
    use bytes::Bytes;

    fn parse(s: &str) -> Result<Message, ParseError> {
        Message::parse(Bytes::copy_from_slice(s.as_bytes()), &Limits::default())
    }

    fn req(s: &str) -> Request {
        match parse(s).unwrap() {
            Message::Request(r) => r,
            Message::Response(_) => panic!("not a request"),
        }
    }

    /// parse(serialize(parse(x))) == parse(x)
    fn round_trip(m: &Message) {
        let again = Message::parse(Bytes::from(m.to_bytes()), &Limits::default()).unwrap();
        let strip = |m: &Message| {
            let mut m = m.clone();
            let h = match &mut m {
                Message::Request(r) => &mut r.headers,
                Message::Response(r) => &mut r.headers,
            };
            h.remove(&HeaderName::ContentLength);
            m
        };
        assert_eq!(strip(&again), strip(m));
    }

    const REGISTER: &str = "REGISTER sip:registrar.biloxi.com SIP/2.0\r\n\
Via: SIP/2.0/UDP bobspc.biloxi.com:5060;branch=z9hG4bKnashds7\r\n\
Max-Forwards: 70\r\n\
To: Bob <sip:bob@biloxi.com>\r\n\
From: Bob <sip:bob@biloxi.com>;tag=456248\r\n\
Call-ID: 843817637684230@998sdasdh09\r\n\
CSeq: 1826 REGISTER\r\n\
Contact: <sip:bob@192.0.2.4>\r\n\
Expires: 7200\r\n\
Content-Length: 0\r\n\
\r\n";

    const INVITE: &str = "INVITE sip:bob@biloxi.com SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK776asdhds\r\n\
Max-Forwards: 70\r\n\
To: Bob <sip:bob@biloxi.com>\r\n\
From: Alice <sip:alice@atlanta.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.com\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:alice@pc33.atlanta.com>\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 146\r\n\
\r\n\
v=0\r\n\
o=alice 2890844526 2890844526 IN IP4 pc33.atlanta.com\r\n\
s=-\r\n\
c=IN IP4 pc33.atlanta.com\r\n\
t=0 0\r\n\
m=audio 49172 RTP/AVP 0\r\n\
a=rtpmap:0 PCMU/8000\r\n";

    #[test]
    fn register() {
        let r = req(REGISTER);
        assert_eq!(r.method, Method::Register);
        assert_eq!(r.uri.host, Host::Domain(Text::from("registrar.biloxi.com")));
        assert_eq!(r.via_top().unwrap().branch().unwrap(), "z9hG4bKnashds7");
        assert_eq!(r.max_forwards().unwrap(), Some(70));
        assert_eq!(r.to().unwrap().display.as_deref(), Some("Bob"));
        assert_eq!(r.from().unwrap().tag().unwrap(), "456248");
        assert_eq!(r.call_id().unwrap(), "843817637684230@998sdasdh09");
        assert_eq!(r.cseq().unwrap().seq, 1826);
        assert_eq!(
            r.contacts().unwrap()[0].uri.host,
            Host::V4([192, 0, 2, 4].into())
        );
        assert_eq!(r.expires().unwrap(), Some(7200));
        assert!(!r.contact_star());
        assert!(r.body.is_empty());
        assert_eq!(r.validate(), Ok(()));
        round_trip(&Message::Request(r));
    }

    #[test]
    fn invite_with_sdp() {
        let r = req(INVITE);
        assert_eq!(r.method, Method::Invite);
        assert_eq!(r.content_type(), Some("application/sdp"));
        assert_eq!(r.body.len(), 146);
        assert!(r.body.starts_with(b"v=0\r\n"));
        assert!(r.body.ends_with(b"PCMU/8000\r\n"));
        assert_eq!(r.validate(), Ok(()));
        let resp = r.response(180, "Ringing", Some("xyz"));
        assert_eq!(resp.to().unwrap().tag().unwrap(), "xyz");
        assert_eq!(resp.call_id().unwrap(), r.call_id().unwrap());
        let trying = r.response(100, "Trying", Some("xyz"));
        assert!(trying.to().unwrap().tag().is_none());
        round_trip(&Message::Response(resp));
        round_trip(&Message::Request(r));
    }

    #[test]
    fn ok_response() {
        let m = parse(
            "SIP/2.0 200 OK\r\n\
Via: SIP/2.0/UDP server10.biloxi.com;branch=z9hG4bK4b43c2ff8.1;received=192.0.2.3\r\n\
Via: SIP/2.0/UDP bigbox3.site3.atlanta.com;branch=z9hG4bK77ef4c2312983.1;received=192.0.2.2\r\n\
To: Bob <sip:bob@biloxi.com>;tag=a6c85cf\r\n\
From: Alice <sip:alice@atlanta.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:bob@192.0.2.4>\r\n\
Record-Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\n\
Content-Length: 0\r\n\r\n",
        )
        .unwrap();
        let Message::Response(r) = &m else { panic!() };
        assert_eq!(r.status, 200);
        assert_eq!(r.reason, "OK");
        assert_eq!(r.vias().unwrap().len(), 2);
        assert_eq!(r.record_routes().unwrap().len(), 2);
        assert_eq!(r.cseq().unwrap().method, Method::Invite);
        round_trip(&m);
    }

    #[test]
    fn compact_multi_via_folding_bare_lf() {
        let m = "OPTIONS sip:[2001:db8::1]:5060 SIP/2.0\n\
v: SIP/2.0/UDP a.example.com;branch=z9hG4bK1, SIP/2.0/TCP [2001:db8::2]:5070;branch=z9hG4bK2\n\
V: SIP/2.0/UDP c.example.com\n\
\x20;branch=z9hG4bK3\n\
f: <tel:+1-201-555-0123>;tag=1\n\
t: sip:x@example.com\n\
i: abc@def\n\
Subject: folded\n\
\tacross lines\n\
CSeq: 1 OPTIONS\n\
m: <sip:u@[2001:db8::3]:5090>;expires=60\n\
l: 0\n\
\n";
        let r = req(m);
        assert_eq!(r.uri.host, Host::V6("2001:db8::1".parse().unwrap()));
        assert_eq!(r.uri.port, Some(5060));
        let vias = r.vias().unwrap();
        assert_eq!(vias.len(), 3);
        assert_eq!(vias[1].transport, "TCP");
        assert_eq!(vias[2].branch().unwrap(), "z9hG4bK3");
        let from = r.from().unwrap();
        assert_eq!(from.uri.scheme, Scheme::Tel);
        assert_eq!(from.uri.user.as_deref(), Some("+1-201-555-0123"));
        assert_eq!(r.call_id().unwrap(), "abc@def");
        assert_eq!(
            r.headers.get(&HeaderName::Subject).unwrap(),
            "folded across lines"
        );
        assert_eq!(
            r.contacts().unwrap()[0].params.value("expires").unwrap(),
            "60"
        );
        assert_eq!(r.validate(), Ok(()));
        let out = String::from_utf8(Message::Request(r.clone()).to_bytes()).unwrap();
        assert!(out.contains("\r\nVia: SIP/2.0/UDP a.example.com"));
        assert!(out.contains("\r\nCall-ID: abc@def\r\n"));
        round_trip(&Message::Request(r));
    }

    #[test]
    fn framing() {
        let l = Limits::default();
        let reg = REGISTER.as_bytes();
        assert_eq!(crate::frame_len(reg, &l), Ok(Some(reg.len())));
        assert_eq!(crate::frame_len(&reg[..reg.len() - 1], &l), Ok(None));
        assert_eq!(crate::frame_len(&reg[..40], &l), Ok(None));
        assert_eq!(crate::frame_len(b"\r\n\r\nINV", &l), Ok(Some(4)));
        assert_eq!(crate::frame_len(b"\r", &l), Ok(None));
        let inv = INVITE.as_bytes();
        let mut two = inv.to_vec();
        two.extend_from_slice(reg);
        assert_eq!(crate::frame_len(&two, &l), Ok(Some(inv.len())));
        assert_eq!(crate::frame_len(&inv[..inv.len() - 3], &l), Ok(None));
        assert!(crate::frame_len(b"OPTIONS sip:a SIP/2.0\r\nVia: x\r\n\r\n", &l).is_err());
    }

    #[test]
    fn call_id_grammar() {
        let mk = |cid: &str| {
            req(&REGISTER.replace("843817637684230@998sdasdh09", cid))
                .call_id()
                .map(|t| t.to_string())
        };
        assert!(mk("a@b").is_ok());
        assert!(mk("intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{").is_ok());
        assert!(mk("a@b@c").is_err());
        assert!(mk("a b").is_err());
        assert!(mk("@b").is_err());
        assert!(mk("a;b").is_err());
    }

    #[test]
    fn stream_framing_details() {
        let l = Limits::default();
        // bare LF, compact and folded Content-Length
        let m = b"MESSAGE sip:a@b SIP/2.0\nl:\n  3\n\nabcNEXT";
        assert_eq!(crate::frame_len(m, &l), Ok(Some(m.len() - 4)));
        let m = b"MESSAGE sip:a@b SIP/2.0\r\nContent-Length : 3\r\n\r\nab";
        assert_eq!(crate::frame_len(m, &l), Ok(None));
        let two = b"MESSAGE sip:a@b SIP/2.0\r\nl: 1\r\nContent-Length: 1\r\n\r\na";
        assert!(crate::frame_len(two, &l).is_err());
        let huge = b"MESSAGE sip:a@b SIP/2.0\r\nl: 99999999\r\n\r\n";
        assert!(matches!(
            crate::frame_len(huge, &l),
            Err(ParseError::TooLarge(_))
        ));
        let endless = vec![b'a'; 70_000];
        assert!(crate::frame_len(&endless, &l).is_err());
        let mut head = b"OPTIONS sip:a@b SIP/2.0\r\n".to_vec();
        head.extend(std::iter::repeat_n(&b"X: y\r\n"[..], 200).flatten());
        assert_eq!(crate::frame_len(&head, &l), Err(ParseError::TooManyHeaders));
    }

    #[test]
    fn headers_only_for_bad_start_lines() {
        let bad = REGISTER.replace("SIP/2.0\r\nVia", "SIP/7.0\r\nVia");
        assert_eq!(parse(&bad), Err(ParseError::UnsupportedVersion));
        let h = Message::parse_headers(Bytes::from(bad), &Limits::default()).unwrap();
        let r = Response::answering(&h, 505, "Version Not Supported", Some("t"));
        assert_eq!(r.call_id().unwrap(), "843817637684230@998sdasdh09");
        assert_eq!(r.to().unwrap().tag().unwrap(), "t");
        assert_eq!(r.headers.len(), 5);
    }

    /// Fuzz finding (run 3): a URI that grew past a fixed 8192-byte URI cap when re-serialized
    /// failed to re-parse. The cap is gone (the line limit bounds wire URIs), and '@' is no
    /// longer accepted literally in URI parameters/headers.
    #[test]
    fn long_uri_round_trips() {
        let uri = format!(
            "sip:bo1@biloxi.com;user=phone{}?Subject=hi",
            "%40".repeat(3000)
        );
        let m = REGISTER.replacen("sip:registrar.biloxi.com", &uri, 1);
        let big = Limits {
            max_line: 20_000,
            ..Limits::default()
        };
        let parsed = Message::parse(Bytes::from(m), &big).unwrap();
        let again = Message::parse(Bytes::from(parsed.to_bytes()), &big).unwrap();
        let Message::Request(r) = again else { panic!() };
        assert_eq!(r.uri.params.value("user").unwrap().len(), 5 + 3000);
        let at = REGISTER.replacen("sip:registrar.biloxi.com", "sip:a@b;user=phone@@", 1);
        assert!(parse(&at).is_err());
    }

    #[test]
    fn errors() {
        assert!(parse("INVITE sip:a@b SIP/2.0\r\nContent-Length: 10\r\n\r\nabc").is_err());
        assert!(parse("INVITE sip:a@b SIP/2.0\r\nContent-Length: -1\r\n\r\n").is_err());
        assert_eq!(
            parse("INVITE sip:a@b SIP/3.0\r\n\r\n"),
            Err(ParseError::UnsupportedVersion)
        );
        assert_eq!(
            parse("INVITE urn:x:y SIP/2.0\r\n\r\n"),
            Err(ParseError::UnsupportedUriScheme)
        );
        assert!(parse("SIP/2.0 99 Low\r\n\r\n").is_err());
        assert!(parse("SIP/2.0 700 High\r\n\r\n").is_err());
        assert!(parse("SIP/2.0 2000 OK\r\n\r\n").is_err());
        assert!(parse("INVITE sip:a@b SIP/2.0\r\nVia x\r\n\r\n").is_err());
        assert!(parse("INVITE sip:a@b SIP/2.0\r\n").is_err());
        let small = Limits {
            max_message: 100,
            max_headers: 2,
            max_line: 30,
        };
        let b = |s: &str| Bytes::copy_from_slice(s.as_bytes());
        assert_eq!(
            Message::parse(b(REGISTER), &small),
            Err(ParseError::TooLarge(REGISTER.len()))
        );
        let big = Limits {
            max_message: 10_000,
            ..small
        };
        assert_eq!(
            Message::parse(b(REGISTER), &big),
            Err(ParseError::LineTooLong)
        );
        let wide = Limits {
            max_line: 1000,
            ..big
        };
        assert_eq!(
            Message::parse(b(REGISTER), &wide),
            Err(ParseError::TooManyHeaders)
        );
    }
}
