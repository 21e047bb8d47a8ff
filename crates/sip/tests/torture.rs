//! RFC 4475 (SIP torture test messages) and RFC 5118 (IPv6 torture tests), retyped as Rust
//! literals (long parts generated in code). Valid messages must parse, their typed accessors must
//! work, `validate()` must accept requests, and parse(serialize(parse(x))) == parse(x). Invalid
//! ones must give an error or the expected status from `validate()` — never a panic.

use bytes::Bytes;
use strowger_sip::multipart;
use strowger_sip::{
    HeaderName, Host, Limits, Message, Method, ParseError, Request, Response, Scheme,
};

/// The SDP body most RFC 4475 messages carry (addresses vary; they do not matter here).
const SDP: &str = "v=0\r\no=mhandley 29739 7272939 IN IP4 192.0.2.15\r\ns=-\r\nc=IN IP4 192.0.2.15\r\nt=0 0\r\nm=audio 49217 RTP/AVP 0 12\r\nm=video 3227 RTP/AVP 31\r\na=rtpmap:31 LPC\r\n";

/// Header lines joined with CRLF, an empty line, then the body. `{CL}` in a line is replaced by
/// the body length.
fn build(lines: &[&str], body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for l in lines {
        out.extend_from_slice(l.replace("{CL}", &body.len().to_string()).as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

fn parse(b: &[u8]) -> Result<Message, ParseError> {
    Message::parse(Bytes::copy_from_slice(b), &Limits::default())
}

fn without_cl(m: &Message) -> Message {
    let mut m = m.clone();
    match &mut m {
        Message::Request(r) => r.headers.remove(&HeaderName::ContentLength),
        Message::Response(r) => r.headers.remove(&HeaderName::ContentLength),
    };
    m
}

/// parse(serialize(parse(x))) == parse(x) (Content-Length is rewritten at the end: ignored).
fn round_trip(m: &Message) {
    let bytes = m.to_bytes();
    let again =
        Message::parse(Bytes::from(bytes.clone()), &Limits::default()).unwrap_or_else(|e| {
            panic!(
                "re-parse failed: {e:?}\n{}",
                String::from_utf8_lossy(&bytes)
            )
        });
    assert_eq!(without_cl(&again), without_cl(m));
    // and serialization is stable
    assert_eq!(again.to_bytes(), bytes);
}

fn valid_request(b: &[u8]) -> Request {
    let m = parse(b).unwrap_or_else(|e| panic!("{e:?}\n{}", String::from_utf8_lossy(b)));
    round_trip(&m);
    let Message::Request(r) = m else {
        panic!("not a request")
    };
    assert_eq!(r.validate(), Ok(()));
    r.via_top().unwrap();
    r.from().unwrap();
    r.to().unwrap();
    r.call_id().unwrap();
    r.cseq().unwrap();
    r
}

fn valid_response(b: &[u8]) -> Response {
    let m = parse(b).unwrap_or_else(|e| panic!("{e:?}\n{}", String::from_utf8_lossy(b)));
    round_trip(&m);
    let Message::Response(r) = m else {
        panic!("not a response")
    };
    r.vias().unwrap();
    r.from().unwrap();
    r.to().unwrap();
    r.call_id().unwrap();
    r.cseq().unwrap();
    r
}

/// The request parses but `validate()` answers `status`.
fn rejected_by_validate(b: &[u8], status: u16) {
    let m = parse(b).unwrap_or_else(|e| panic!("{e:?}\n{}", String::from_utf8_lossy(b)));
    round_trip(&m);
    let Message::Request(r) = m else {
        panic!("not a request")
    };
    assert_eq!(r.validate().map_err(|e| e.0), Err(status));
}

fn host(s: &str) -> Host {
    match s.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(a)) => Host::V4(a),
        Ok(std::net::IpAddr::V6(a)) => Host::V6(a),
        Err(_) => Host::Domain(s.to_owned().into()),
    }
}

// ----- RFC 4475 §3.1.1 valid messages ------------------------------------------------------------

#[test]
fn wsinv_short_tortuous_invite() {
    let b = build(
        &[
            "INVITE sip:vivekg@chair-dnrc.example.com;unknownparam SIP/2.0",
            "TO :",
            " sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n",
            "from   : \"J Rosenberg \\\\\\\"\"       <sip:jdrosen@example.com>",
            "  ;",
            "  tag = 98asjd8",
            "MaX-fOrWaRdS: 0068",
            "Call-ID: wsinv.ndaksdj@192.0.2.1",
            "Content-Length   : {CL}",
            "cseq: 0009",
            "  INVITE",
            "Via  : SIP  /   2.0",
            " /UDP",
            "    192.0.2.2;branch=390skdjuw",
            "s :",
            "NewFangledHeader:   newfangled value",
            " continued newfangled value",
            "UnknownHeaderWithUnusualValue: ;;,,;;,;",
            "Content-Type: application/sdp",
            "Route:",
            " <sip:services.example.com;lr;unknownwith=value;unknown-no-value>",
            "v:  SIP  / 2.0  / TCP     spindle.example.com   ;",
            "  branch  =   z9hG4bK9ikj8  ,",
            " SIP  /    2.0   / UDP  192.168.255.111   ; branch=",
            " z9hG4bK30239",
            "m:\"Quoted string \\\"\\\"\" <sip:jdrosen@example.com> ; newparam =",
            "      newvalue ;",
            "  secondparam ; q = 0.33",
        ],
        SDP.as_bytes(),
    );
    let r = valid_request(&b);
    assert_eq!(r.method, Method::Invite);
    assert!(r.uri.params.has("unknownparam"));
    assert_eq!(r.to().unwrap().tag().unwrap(), "1918181833n");
    let from = r.from().unwrap();
    assert_eq!(from.display.as_deref(), Some("J Rosenberg \\\""));
    assert_eq!(from.tag().unwrap(), "98asjd8");
    assert_eq!(r.max_forwards().unwrap(), Some(68));
    let c = r.cseq().unwrap();
    assert_eq!((c.seq, c.method), (9, Method::Invite));
    let vias = r.vias().unwrap();
    assert_eq!(vias.len(), 3);
    assert_eq!(vias[0].host, host("192.0.2.2"));
    assert_eq!(vias[0].branch().unwrap(), "390skdjuw");
    assert_eq!(vias[1].transport, "TCP");
    assert_eq!(vias[1].host, host("spindle.example.com"));
    assert_eq!(vias[1].branch().unwrap(), "z9hG4bK9ikj8");
    assert_eq!(vias[2].branch().unwrap(), "z9hG4bK30239");
    assert_eq!(
        r.headers.get(&HeaderName::Subject).map(|t| t.as_str()),
        Some("")
    );
    assert_eq!(
        r.headers
            .get(&HeaderName::from_wire("newfangledheader"))
            .unwrap(),
        "newfangled value continued newfangled value"
    );
    let routes = r.routes().unwrap();
    assert_eq!(routes.len(), 1);
    assert!(routes[0].uri.params.has("unknown-no-value"));
    assert_eq!(routes[0].uri.params.value("unknownwith").unwrap(), "value");
    let m = r.contacts().unwrap();
    assert_eq!(m[0].display.as_deref(), Some("Quoted string \"\""));
    assert_eq!(m[0].params.value("newparam").unwrap(), "newvalue");
    assert!(m[0].params.has("secondparam"));
    assert_eq!(m[0].params.value("q").unwrap(), "0.33");
    assert_eq!(r.content_type(), Some("application/sdp"));
    assert_eq!(r.body, SDP.as_bytes());
}

#[test]
fn intmeth_wide_range_of_valid_characters() {
    let method = "!interesting-Method0123456789_*+`.%indeed'~";
    let start = format!(
        "{method} sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com SIP/2.0"
    );
    let cseq = format!("CSeq: 139122385 {method}");
    let b = build(
        &[
            &start,
            "Via: SIP/2.0/TCP host1.example.com;branch=z9hG4bK-.!%66*_+`'~",
            "To: \"BEL:\\\x07 NUL:\\\x00 DEL:\\\x7f\" <sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*@example.com>",
            "From: token1~` token2'+_ token3*%!.- <sip:mundane@example.com>;fromParam''~+*_!.-%=\"работающий\";tag=_token~1'+`*%!-.",
            "Call-ID: intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{",
            &cseq,
            "Max-Forwards: 255",
            "extensionHeader-!.%*+_`'~:\u{feff}大停電",
            "Content-Length: 0",
        ],
        b"",
    );
    let r = valid_request(&b);
    assert_eq!(r.method.as_str(), method);
    assert_eq!(
        r.uri.user.as_deref(),
        Some("1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*")
    );
    assert_eq!(
        r.uri.password.as_deref(),
        Some("&it+has=1,weird!*pas$wo~d_too.(doesn't-it)")
    );
    let to = r.to().unwrap();
    assert_eq!(to.display.as_deref(), Some("BEL:\x07 NUL:\x00 DEL:\x7f"));
    let from = r.from().unwrap();
    assert_eq!(
        from.display.as_deref(),
        Some("token1~` token2'+_ token3*%!.-")
    );
    assert_eq!(from.tag().unwrap(), "_token~1'+`*%!-.");
    assert_eq!(
        from.params.value("fromParam''~+*_!.-%").unwrap(),
        "\"работающий\""
    );
    assert_eq!(r.max_forwards().unwrap(), Some(255));
    assert_eq!(
        r.headers
            .get(&HeaderName::from_wire("extensionHeader-!.%*+_`'~"))
            .unwrap(),
        "\u{feff}大停電"
    );
    assert_eq!(
        r.via_top().unwrap().branch().unwrap(),
        "z9hG4bK-.!%66*_+`'~"
    );
}

#[test]
fn esc01_valid_percent_escapes() {
    let b = build(
        &[
            "INVITE sip:sips%3Auser%40example.com@example.net SIP/2.0",
            "To: sip:%75se%72@example.com",
            "From: <sip:I%20have%20spaces@example.net>;tag=938",
            "Max-Forwards: 87",
            "i: esc01.239409asdfakjkn23onasd0-3234",
            "CSeq: 234234 INVITE",
            "Via: SIP/2.0/UDP host5.example.net;branch=z9hG4bKkdjuw",
            "C: application/sdp",
            "Contact:",
            "  <sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31>",
            "Content-Length: {CL}",
        ],
        SDP.as_bytes(),
    );
    let r = valid_request(&b);
    assert_eq!(r.uri.scheme, Scheme::Sip);
    assert_eq!(r.uri.user.as_deref(), Some("sips:user@example.com"));
    assert_eq!(r.to().unwrap().uri.user.as_deref(), Some("user"));
    assert_eq!(r.from().unwrap().uri.user.as_deref(), Some("I have spaces"));
    let c = &r.contacts().unwrap()[0];
    assert_eq!(c.uri.user.as_deref(), Some("caller"));
    assert!(c.uri.params.has("lr"));
    assert_eq!(c.uri.params.value("name").unwrap(), "value%41");
    assert_eq!(r.content_type(), Some("application/sdp"));
    assert_eq!(r.call_id().unwrap(), "esc01.239409asdfakjkn23onasd0-3234");
}

#[test]
fn escnull_escaped_nulls() {
    let b = build(
        &[
            "REGISTER sip:example.com SIP/2.0",
            "To: sip:null-%00-null@example.com",
            "From: sip:null-%00-null@example.com;tag=839923423",
            "Max-Forwards: 70",
            "Call-ID: escnull.39203ndfvkjdasfkq3w4otrq0adsfdfnavd",
            "CSeq: 14398234 REGISTER",
            "Via: SIP/2.0/UDP host5.example.com;branch=z9hG4bKkdjuw",
            "Contact: <sip:%00@host5.example.com>",
            "Contact: <sip:%00%00@host5.example.com>",
            "L:0",
        ],
        b"",
    );
    let r = valid_request(&b);
    assert_eq!(r.to().unwrap().uri.user.as_deref(), Some("null-\0-null"));
    let c = r.contacts().unwrap();
    assert_eq!(c.len(), 2);
    assert_eq!(c[0].uri.user.as_deref(), Some("\0"));
    assert_eq!(c[1].uri.user.as_deref(), Some("\0\0"));
}

#[test]
fn esc02_percent_that_is_not_an_escape() {
    let b = build(
        &[
            "RE%47IST%45R sip:registrar.example.com SIP/2.0",
            "To: \"%Z%45\" <sip:resource@example.com>",
            "From: \"%Z%45\" <sip:resource@example.com>;tag=f232jadfj23",
            "Call-ID: esc02.asdfnqwo34rq23i34jrjasdcnl23nrlknsdf",
            "Via: SIP/2.0/TCP host.example.com;branch=z9hG4bK209%fzsnel234",
            "CSeq: 29344 RE%47IST%45R",
            "Max-Forwards: 70",
            "Contact: <sip:alias1@host1.example.com>",
            "C%6Fntact: <sip:alias2@host2.example.com>",
            "Contact: <sip:alias3@host3.example.com>",
            "l: 0",
        ],
        b"",
    );
    let r = valid_request(&b);
    assert_eq!(r.method.as_str(), "RE%47IST%45R");
    assert_ne!(r.method, Method::Register);
    assert_eq!(r.to().unwrap().display.as_deref(), Some("%Z%45"));
    assert_eq!(
        r.via_top().unwrap().branch().unwrap(),
        "z9hG4bK209%fzsnel234"
    );
    // C%6Fntact is an unknown header, not a Contact
    assert_eq!(r.contacts().unwrap().len(), 2);
    assert!(r.headers.get(&HeaderName::from_wire("C%6Fntact")).is_some());
}

#[test]
fn lwsdisp_no_lws_between_display_name_and_angle() {
    let b = build(
        &[
            "OPTIONS sip:user@example.com SIP/2.0",
            "To: sip:user@example.com",
            "From: caller<sip:caller@example.com>;tag=323",
            "Max-Forwards: 70",
            "Call-ID: lwsdisp.1234abcd@funky.example.com",
            "CSeq: 60 OPTIONS",
            "Via: SIP/2.0/UDP funky.example.com;branch=z9hG4bKkdjuw",
            "l: 0",
        ],
        b"",
    );
    let r = valid_request(&b);
    let f = r.from().unwrap();
    assert_eq!(f.display.as_deref(), Some("caller"));
    assert_eq!(f.tag().unwrap(), "323");
}

#[test]
fn longreq_long_values() {
    let long = |s: &str, n: usize| s.repeat(n);
    let to = format!(
        "To: \"I have a user name of {} proportion\"<sip:user@example.com:6000;unknownparam1=very{}value;longparam{}name=shortvalue;very{}ParameterNameWithNoValue>",
        long("extreme", 10),
        long("long", 20),
        long("name", 25),
        long("long", 25)
    );
    let from = format!(
        "F: sip:{}@example.net;tag=12{}424;unknownheaderparam{}name=unknowheaderparam{}value;unknownValueless{}",
        long("amazinglylongcallername", 5),
        long("982", 50),
        long("name", 20),
        long("value", 15),
        long("paramname", 10)
    );
    let call_id = format!("Call-ID: longreq.one{}longcallid", long("really", 20));
    let unknown = format!(
        "Unknown-{}-Name: unknown-{}-value; unknown-{}-parameter-name = unknown-{}-parameter-value",
        long("Long", 20),
        long("long", 20),
        long("long", 20),
        long("long", 20)
    );
    let mut lines: Vec<String> = vec![
        "INVITE sip:user@example.com SIP/2.0".into(),
        to,
        from,
        call_id,
        "CSeq: 3882340 INVITE".into(),
        unknown,
    ];
    let names = [
        "Via", "v", "V", "Via", "ViA", "VIa", "VIA", "via", "viA", "vIa", "vIA", "V : ", "v : ",
        "V  :", "v  :", "Via :", "Via  :",
    ];
    for i in (1..=33).rev() {
        let name = names.get(33 - i).copied().unwrap_or("Via");
        let sep = if name.ends_with(':') || name.ends_with(": ") {
            ""
        } else {
            ":"
        };
        lines.push(format!("{name}{sep} SIP/2.0/TCP sip{i}.example.com"));
    }
    lines.push(format!(
        "Via: SIP/2.0/TCP host.example.com;received=192.0.2.5;branch=very{}branchvalue",
        long("long", 50)
    ));
    lines.push("Max-Forwards: 70".into());
    lines.push(format!(
        "Contact: <sip:{}@host5.example.net>",
        long("amazinglylongcallername", 5)
    ));
    lines.push("Content-Type: application/sdp".into());
    lines.push("l: {CL}".into());
    let refs: Vec<&str> = lines.iter().map(|s| s.as_str()).collect();
    let b = build(&refs, SDP.as_bytes());
    let r = valid_request(&b);
    let vias = r.vias().unwrap();
    assert_eq!(vias.len(), 34);
    assert_eq!(vias[0].host, host("sip33.example.com"));
    assert_eq!(vias[32].host, host("sip1.example.com"));
    assert_eq!(vias[33].params.value("received").unwrap(), "192.0.2.5");
    assert_eq!(r.to().unwrap().uri.port, Some(6000));
    assert!(r.from().unwrap().tag().unwrap().len() > 150);
    assert!(r.call_id().unwrap().contains("reallyreally"));
}

#[test]
fn dblreq_extra_trailing_octets() {
    let mut b = build(
        &[
            "REGISTER sip:example.com SIP/2.0",
            "To: sip:j.user@example.com",
            "From: sip:j.user@example.com;tag=43251j3j324",
            "Max-Forwards: 8",
            "I: dblreq.0ha0isndaksdj99sdfafnl3lk233412",
            "Contact: sip:j.user@host.example.com",
            "CSeq: 8 REGISTER",
            "Via: SIP/2.0/UDP 192.0.2.125;branch=z9hG4bKkdjuw23492",
            "Content-Length: 0",
        ],
        b"",
    );
    b.extend_from_slice(&build(
        &[
            "INVITE sip:joe@example.com SIP/2.0",
            "t: sip:joe@example.com",
            "From: sip:caller@example.net;tag=141334",
            "Max-Forwards: 8",
            "Call-ID: dblreq.0ha0isnda977644900765@192.0.2.15",
            "CSeq: 8 INVITE",
            "Via: SIP/2.0/UDP 192.0.2.15;branch=z9hG4bKkdjuw380234",
            "Content-Type: application/sdp",
            "Content-Length: {CL}",
        ],
        SDP.as_bytes(),
    ));
    let r = valid_request(&b);
    assert_eq!(r.method, Method::Register);
    assert!(r.body.is_empty());
    assert_eq!(r.contacts().unwrap()[0].uri.host, host("host.example.com"));
}

#[test]
fn semiuri_semicolon_in_user_part() {
    let b = build(
        &[
            "OPTIONS sip:user;par=u%40example.net@example.com SIP/2.0",
            "To: sip:j_user@example.com",
            "From: sip:caller@example.org;tag=33242",
            "Max-Forwards: 3",
            "Call-ID: semiuri.0ha0isndaksdj",
            "CSeq: 8 OPTIONS",
            "Accept: application/sdp, application/pkcs7-mime,",
            "        multipart/mixed, multipart/signed,",
            "        message/sip, message/sipfrag",
            "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKkdjuw",
            "l: 0",
        ],
        b"",
    );
    let r = valid_request(&b);
    assert_eq!(r.uri.user.as_deref(), Some("user;par=u@example.net"));
    assert_eq!(r.uri.host, host("example.com"));
    assert!(r.uri.params.0.is_empty());
    assert_eq!(
        r.headers.get(&HeaderName::from_wire("accept")).unwrap(),
        "application/sdp, application/pkcs7-mime, multipart/mixed, multipart/signed, message/sip, message/sipfrag"
    );
}

#[test]
fn transports_varied_and_unknown() {
    let b = build(
        &[
            "OPTIONS sip:user@example.com SIP/2.0",
            "To: sip:user@example.com",
            "From: <sip:caller@example.com>;tag=323",
            "Max-Forwards: 70",
            "Call-ID:  transports.kijh4akdnaqjkwendsasfdj",
            "Accept: application/sdp",
            "CSeq: 60 OPTIONS",
            "Via: SIP/2.0/UDP t1.example.com;branch=z9hG4bKkdjuw",
            "Via: SIP/2.0/SCTP t2.example.com;branch=z9hG4bKklasjdhf",
            "Via: SIP/2.0/TLS t3.example.com;branch=z9hG4bK2980unddj",
            "Via: SIP/2.0/UNKNOWN t4.example.com;branch=z9hG4bKasd0f3en",
            "Via: SIP/2.0/TCP t5.example.com;branch=z9hG4bK0a9idfnee",
            "l: 0",
        ],
        b"",
    );
    let r = valid_request(&b);
    let t: Vec<String> = r
        .vias()
        .unwrap()
        .iter()
        .map(|v| v.transport.to_string())
        .collect();
    assert_eq!(t, ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]);
    assert_eq!(r.call_id().unwrap(), "transports.kijh4akdnaqjkwendsasfdj");
}

#[test]
fn mpart01_multipart_mime() {
    // The RFC's second part is a DER blob; any binary content with bare LFs and NULs does.
    let mut body = Vec::new();
    body.extend_from_slice(b"--7a9cbec02ceef655\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: binary\r\n\r\nHello\r\n--7a9cbec02ceef655\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n");
    let binary: Vec<u8> = (0u16..300).map(|i| (i * 7 % 256) as u8).collect();
    body.extend_from_slice(&binary);
    body.extend_from_slice(b"\r\n--7a9cbec02ceef655--\r\n");
    let b = build(
        &[
            "MESSAGE sip:kumiko@example.org SIP/2.0",
            "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-d87543-4dade06d0bdb11ee-1--d87543-;rport",
            "Max-Forwards: 70",
            "Route: <sip:127.0.0.1:5080>",
            "Identity: r5mwreLuyDRYBi/0TiPwEsY3rEVsk/G2WxhgTV1PF7hHuLIK0YWVKZhKv9Mj8UeXqkMVbnVq37CD+813gvYjcBUaZngQmXc9WNZSDNGCzA+fWl9MEUHWIZo1CeJebdY/XlgKeTa0Olvq0rt70Q5jiSfbqMJmQFteeivUhkMWYUA=",
            "Contact: <sip:fluffy@127.0.0.1:5070>",
            "To: <sip:kumiko@example.org>",
            "From: <sip:fluffy@example.com>;tag=2fb0dcc9",
            "Call-ID: 3d9485ad0c49859b@Zmx1ZmZ5LW1hYy0xNi5sb2NhbA..",
            "CSeq: 1 MESSAGE",
            "Content-Transfer-Encoding: binary",
            "Content-Type: multipart/mixed;boundary=7a9cbec02ceef655",
            "Date: Sat, 15 Oct 2005 04:44:56 GMT",
            "User-Agent: SIPimp.org/0.2.5 (curses)",
            "Content-Length: {CL}",
        ],
        &body,
    );
    let r = valid_request(&b);
    assert_eq!(r.method, Method::Message);
    assert_eq!(r.body, body);
    assert_eq!(r.routes().unwrap()[0].uri.port, Some(5080));
    assert!(r.via_top().unwrap().params.has("rport"));
    let ct = r.headers.get(&HeaderName::ContentType).unwrap();
    let parts = multipart::split(&r.body, ct, 16).unwrap();
    assert_eq!(parts.len(), 2);
    assert_eq!(&parts[0].body[..], b"Hello");
    assert_eq!(parts[1].content_type(), Some("application/octet-stream"));
    assert_eq!(&parts[1].body[..], &binary[..]);
}

#[test]
fn unreason_unusual_reason_phrase() {
    let b = build(
        &[
            "SIP/2.0 200 = 2**3 * 5**2 но сто девяносто девять - простое",
            "Via: SIP/2.0/UDP 192.0.2.198;branch=z9hG4bK1324923",
            "Call-ID: unreason.1234ksdfak3j2erwedfsASdf",
            "CSeq: 35 INVITE",
            "From: sip:user@example.com;tag=11141343",
            "To: sip:user@example.edu;tag=2229",
            "Content-Length: {CL}",
            "Content-Type: application/sdp",
            "Contact: <sip:user@host198.example.com>",
        ],
        SDP.as_bytes(),
    );
    let r = valid_response(&b);
    assert_eq!(r.status, 200);
    assert_eq!(r.reason, "= 2**3 * 5**2 но сто девяносто девять - простое");
    assert_eq!(r.body, SDP.as_bytes());
}

#[test]
fn noreason_empty_reason_phrase() {
    let b = build(
        &[
            "SIP/2.0 100 ",
            "Via: SIP/2.0/UDP 192.0.2.105;branch=z9hG4bK2398ndaoe",
            "Call-ID: noreason.asndj203insdf99223ndf",
            "CSeq: 35 INVITE",
            "From: <sip:user@example.com>;tag=39ansfi3",
            "To: <sip:user@example.edu>;tag=902jndnke3",
            "Content-Length: 0",
            "Contact: <sip:user@host105.example.com>",
        ],
        b"",
    );
    let r = valid_response(&b);
    assert_eq!(r.status, 100);
    assert_eq!(r.reason, "");
    // without the trailing SP too (tolerated)
    let b2 = String::from_utf8(b)
        .unwrap()
        .replacen("100 \r\n", "100\r\n", 1);
    assert_eq!(valid_response(b2.as_bytes()).reason, "");
}

// ----- RFC 4475 §3.1.2 invalid messages ------------------------------------------------------

#[test]
fn badinv01_extraneous_separators() {
    let b = build(
        &[
            "INVITE sip:user@example.com SIP/2.0",
            "To: sip:j.user@example.com",
            "From: sip:caller@example.net;tag=134161461246",
            "Max-Forwards: 7",
            "Call-ID: badinv01.0ha0isndaksdjasdf3234nas",
            "CSeq: 8 INVITE",
            "Via: SIP/2.0/UDP 192.0.2.15;;,;,,",
            "Contact: \"Joe\" <sip:joe@example.org>;;;;",
            "Content-Length: {CL}",
            "Content-Type: application/sdp",
        ],
        SDP.as_bytes(),
    );
    rejected_by_validate(&b, 400);
    let Message::Request(r) = parse(&b).unwrap() else {
        panic!()
    };
    assert!(r.vias().is_err());
    assert!(r.contacts().is_err());
}

fn sdp_invite(first: &str, extra: &[&str], cl: &str) -> Vec<u8> {
    let mut lines = vec![first];
    lines.extend_from_slice(extra);
    let cl = format!("Content-Length: {cl}");
    lines.push(&cl);
    build(&lines, SDP.as_bytes())
}

#[test]
fn clerr_content_length_larger_than_message() {
    let b = sdp_invite(
        "INVITE sip:user@example.com SIP/2.0",
        &[
            "Max-Forwards: 80",
            "To: sip:j.user@example.com",
            "From: sip:caller@example.net;tag=93942939o2",
            "Contact: <sip:caller@hungry.example.net>",
            "Call-ID: clerr.0ha0isndaksdjweiafasdk3",
            "CSeq: 8 INVITE",
            "Via: SIP/2.0/UDP host5.example.com;branch=z9hG4bK-39234-23523",
            "Content-Type: application/sdp",
        ],
        "9999",
    );
    assert!(matches!(parse(&b), Err(ParseError::Malformed(_))));
}

#[test]
fn ncl_negative_content_length() {
    let b = sdp_invite(
        "INVITE sip:user@example.com SIP/2.0",
        &[
            "Max-Forwards: 254",
            "To: sip:j.user@example.com",
            "From: sip:caller@example.net;tag=32394234",
            "Call-ID: ncl.0ha0isndaksdj2193423r542w35",
            "CSeq: 0 INVITE",
            "Via: SIP/2.0/UDP 192.0.2.53;branch=z9hG4bKkdjuw",
            "Contact: <sip:caller@example53.example.net>",
            "Content-Type: application/sdp",
        ],
        "-999",
    );
    assert!(parse(&b).is_err());
}

#[test]
fn scalar02_and_scalarlg_overlarge_values() {
    let b = build(
        &[
            "REGISTER sip:example.com SIP/2.0",
            "Via: SIP/2.0/TCP host129.example.com;branch=z9hG4bK342sdfoi3",
            "To: <sip:user@example.com>",
            "From: <sip:user@example.com>;tag=239232jh3",
            "CSeq: 36893488147419103232 REGISTER",
            "Call-ID: scalar02.23o0pd9vanlq3wnrlnewofjas9ui32",
            "Max-Forwards: 300",
            "Expires: 10000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
            "Contact: <sip:user@host129.example.com>",
            "  ;expires=280297596632815",
            "Content-Length: 0",
        ],
        b"",
    );
    rejected_by_validate(&b, 400);
    let Message::Request(r) = parse(&b).unwrap() else {
        panic!()
    };
    assert!(r.cseq().is_err());
    assert!(r.max_forwards().is_err());
    assert_eq!(r.expires().unwrap(), Some(u32::MAX));
    let b = build(
        &[
            "SIP/2.0 503 Service Unavailable",
            "Via: SIP/2.0/TCP host129.example.com;branch=z9hG4bKzzxdiwo34sw;received=192.0.2.129",
            "To: <sip:user@example.com>",
            "From: <sip:other@example.net>;tag=2easdjfejw",
            "CSeq: 9292394834772304023312 OPTIONS",
            "Call-ID: scalarlg.noase0of0234hn2qofoaf0232aewf2394r",
            "Retry-After: 949302838503028349304023988",
            "Warning: 1812 overture \"In Progress\"",
            "Content-Length: 0",
        ],
        b"",
    );
    let Message::Response(r) = parse(&b).unwrap() else {
        panic!()
    };
    assert!(r.cseq().is_err());
}

#[test]
fn quotbal_unterminated_quoted_string() {
    let b = sdp_invite(
        "INVITE sip:user@example.com SIP/2.0",
        &[
            "To: \"Mr. J. User <sip:j.user@example.com>",
            "From: sip:caller@example.net;tag=93334",
            "Max-Forwards: 10",
            "Call-ID: quotbal.aksdj",
            "Contact: <sip:caller@host59.example.net>",
            "CSeq: 8 INVITE",
            "Via: SIP/2.0/UDP 192.0.2.59:5050;branch=z9hG4bKkdjuw39234",
            "Content-Type: application/sdp",
        ],
        &SDP.len().to_string(),
    );
    rejected_by_validate(&b, 400);
}

const OK_HEADERS: [&str; 6] = [
    "To: sip:user@example.com",
    "From: sip:caller@example.net;tag=39291",
    "Max-Forwards: 23",
    "Call-ID: ltgtruri.1@192.0.2.5",
    "CSeq: 1 INVITE",
    "Via: SIP/2.0/UDP 192.0.2.5",
];

#[test]
fn request_line_errors() {
    // ltgtruri, lwsruri, lwsstart, trws, and a few more of our own
    for start in [
        "INVITE <sip:user@example.com> SIP/2.0",
        "INVITE sip:user@example.com; lr SIP/2.0",
        "INVITE  sip:user@example.com  SIP/2.0",
        "INVITE sip:user@example.com SIP/2.0  ",
        "INVITE sip:user@example.com SIP/2.0 ",
        "INVITE sip:<user@example.com> SIP/2.0",
        "INVITE sip:user@example.com> SIP/2.0",
        "INV ITE sip:user@example.com SIP/2.0",
        "INVITE sip:user@example.com",
        "INVITE",
        "INVITE\tsip:user@example.com\tSIP/2.0",
        "IN<VITE sip:user@example.com SIP/2.0",
        "INVITE sip:user@example.com HTTP/1.1",
    ] {
        let b = sdp_invite(start, &OK_HEADERS, &SDP.len().to_string());
        assert!(parse(&b).is_err(), "{start}");
    }
    // the version is case-insensitive
    let b = sdp_invite(
        "INVITE sip:user@example.com sip/2.0",
        &OK_HEADERS,
        &SDP.len().to_string(),
    );
    assert!(parse(&b).is_ok());
}

#[test]
fn escruri_escaped_headers_in_request_uri() {
    let b = sdp_invite(
        "INVITE sip:user@example.com?Route=%3Csip:example.com%3E SIP/2.0",
        &[
            "To: sip:user@example.com",
            "From: sip:caller@example.net;tag=341518",
            "Max-Forwards: 7",
            "Contact: <sip:caller@host39923.example.net>",
            "Call-ID: escruri.23940-asdfhj-aje3br-234q098w-fawerh2q-h4n5",
            "CSeq: 149209342 INVITE",
            "Via: SIP/2.0/UDP host-of-the-hour.example.com;branch=z9hG4bKkdjuw",
            "Content-Type: application/sdp",
        ],
        &SDP.len().to_string(),
    );
    rejected_by_validate(&b, 400);
    let Message::Request(r) = parse(&b).unwrap() else {
        panic!()
    };
    assert_eq!(r.uri.headers[0].1, "<sip:example.com>");
}

#[test]
fn baddate_non_gmt_date() {
    let mk = |date: &str| {
        let d = format!("Date: {date}");
        sdp_invite(
            "INVITE sip:user@example.com SIP/2.0",
            &[
                "To: sip:user@example.com",
                "From: sip:caller@example.net;tag=2234923",
                "Max-Forwards: 70",
                "Call-ID: baddate.239423mnsadf3j23lj42--sedfnm234",
                "CSeq: 1392934 INVITE",
                "Via: SIP/2.0/UDP host.example.com;branch=z9hG4bKkdjuw",
                &d,
                "Contact: <sip:caller@host5.example.net>",
                "Content-Type: application/sdp",
            ],
            &SDP.len().to_string(),
        )
    };
    rejected_by_validate(&mk("Fri, 01 Jan 2010 16:00:00 EST"), 400);
    valid_request(&mk("Fri, 01 Jan 2010 16:00:00 GMT"));
}

#[test]
fn regbadct_and_regescrt() {
    let mk = |contact: &str| {
        build(
            &[
                "REGISTER sip:example.com SIP/2.0",
                "To: sip:user@example.com",
                "From: sip:user@example.com;tag=998332",
                "Max-Forwards: 70",
                "Call-ID: regbadct.k345asrl3fdbv@10.0.0.1",
                "CSeq: 1 REGISTER",
                "Via: SIP/2.0/UDP 135.180.130.133:5060;branch=z9hG4bKkdjuw",
                contact,
                "l: 0",
            ],
            b"",
        )
    };
    rejected_by_validate(
        &mk("Contact: sip:user@example.com?Route=%3Csip:sip.example.com%3E"),
        400,
    );
    // regescrt (§3.1.1 era, valid): the same inside <>
    let r = valid_request(&mk(
        "M: <sip:user@example.com?Route=%3Csip:sip.example.com%3E>",
    ));
    assert_eq!(
        r.contacts().unwrap()[0].uri.headers[0],
        ("Route".into(), "<sip:sip.example.com>".into())
    );
}

#[test]
fn badaspec_and_baddn() {
    let b = build(
        &[
            "OPTIONS sip:user@example.org SIP/2.0",
            "Via: SIP/2.0/UDP host4.example.com:5060;branch=z9hG4bKkdju43234",
            "Max-Forwards: 70",
            "From: \"Bell, Alexander\" <sip:a.g.bell@example.com>;tag=433423",
            "To: \"Watson, Thomas\" < sip:t.watson@example.org >",
            "Call-ID: badaspec.sdf0234n2nds0a099u23h3hnnw009cdkne3",
            "Accept: application/sdp",
            "CSeq: 3923239 OPTIONS",
            "l: 0",
        ],
        b"",
    );
    rejected_by_validate(&b, 400);
    let Message::Request(r) = parse(&b).unwrap() else {
        panic!()
    };
    assert_eq!(
        r.from().unwrap().display.as_deref(),
        Some("Bell, Alexander")
    );
    assert!(r.to().is_err());
    let b = build(
        &[
            "OPTIONS sip:t.watson@example.org SIP/2.0",
            "Via:     SIP/2.0/UDP c.example.com:5060;branch=z9hG4bKkdjuw",
            "Max-Forwards:      70",
            "From:    Bell, Alexander <sip:a.g.bell@example.com>;tag=43",
            "To:      Watson, Thomas <sip:t.watson@example.org>",
            "Call-ID: baddn.31415@c.example.com",
            "Accept: application/sdp",
            "CSeq:    3923239 OPTIONS",
            "l: 0",
        ],
        b"",
    );
    rejected_by_validate(&b, 400);
}

#[test]
fn badvers_unknown_protocol_version() {
    let b = build(
        &[
            "OPTIONS sip:t.watson@example.org SIP/7.0",
            "Via:     SIP/7.0/UDP c.example.com;branch=z9hG4bKkdjuw",
            "Max-Forwards:     70",
            "From:    A. Bell <sip:a.g.bell@example.com>;tag=qweoiqpe",
            "To:      T. Watson <sip:t.watson@example.org>",
            "Call-ID: badvers.31417@c.example.com",
            "CSeq:    1 OPTIONS",
            "l: 0",
        ],
        b"",
    );
    let e = parse(&b).unwrap_err();
    assert_eq!(e, ParseError::UnsupportedVersion);
    assert_eq!(e.status(), 505);
    assert!(parse(b"SIP/3.0 200 OK\r\n\r\n").is_err());
}

#[test]
fn mismatch01_and_mismatch02() {
    let b = build(
        &[
            "OPTIONS sip:user@example.com SIP/2.0",
            "To: sip:j.user@example.com",
            "From: sip:caller@example.net;tag=34525",
            "Max-Forwards: 6",
            "Call-ID: mismatch01.dj0234sxdfl3",
            "CSeq: 8 INVITE",
            "Via: SIP/2.0/UDP host.example.com;branch=z9hG4bKkdjuw",
            "l: 0",
        ],
        b"",
    );
    rejected_by_validate(&b, 400);
    let body = "v=0\r\no=mhandley 29739 7272939 IN IP4 192.0.2.1\r\nc=IN IP4 192.0.2.1\r\nm=audio 49217 RTP/AVP 0 12\r\nm=video 3227 RTP/AVP 31\r\na=rtpmap:31 LPC\r\n";
    let b = build(
        &[
            "NEWMETHOD sip:user@example.com SIP/2.0",
            "To: sip:j.user@example.com",
            "From: sip:caller@example.net;tag=34525",
            "Max-Forwards: 6",
            "Call-ID: mismatch02.dj0234sxdfl3",
            "CSeq: 8 INVITE",
            "Contact: <sip:caller@host.example.net>",
            "Via: SIP/2.0/UDP host.example.net;branch=z9hG4bKkdjuw",
            "Content-Type: application/sdp",
            "l: {CL}",
        ],
        body.as_bytes(),
    );
    rejected_by_validate(&b, 400);
}

#[test]
fn bigcode_overlarge_status() {
    let b = build(
        &[
            "SIP/2.0 4294967301 better not break the receiver",
            "Via: SIP/2.0/UDP 192.0.2.105;branch=z9hG4bK2398ndaoe",
            "Call-ID: bigcode.asdof3uj203asdnf3429uasdhfas3ehjasdfas9i",
            "CSeq: 353494 INVITE",
            "From: <sip:user@example.com>;tag=39ansfi3",
            "To: <sip:user@example.edu>;tag=902jndnke3",
            "Content-Length: 0",
            "Contact: <sip:user@host105.example.com>",
        ],
        b"",
    );
    assert!(parse(&b).is_err());
    for line in [
        "SIP/2.0 099 Low",
        "SIP/2.0 700 High",
        "SIP/2.0 20 OK",
        "SIP/2.0 -20 OK",
        "SIP/2.0 2OO OK",
        "SIP/2.0  200 OK",
    ] {
        let b = build(&[line, "Content-Length: 0"], b"");
        assert!(parse(&b).is_err(), "{line}");
    }
}

// ----- RFC 4475 §3.3 (application-level semantics: the parts a parser owns) ---------------

#[test]
fn bcast_broadcast_via_parses() {
    let b = build(
        &[
            "SIP/2.0 200 OK",
            "Via: SIP/2.0/UDP 192.0.2.198;branch=z9hG4bK1324923",
            "Via: SIP/2.0/UDP 255.255.255.255;branch=z9hG4bK1saber23",
            "Call-ID: bcast.0384840201234ksdfak3j2erwedfsASdf",
            "CSeq: 35 INVITE",
            "From: sip:user@example.com;tag=11141343",
            "To: sip:user@example.edu;tag=2229",
            "Content-Length: {CL}",
            "Content-Type: application/sdp",
            "Contact: <sip:user@host28.example.com>",
        ],
        SDP.as_bytes(),
    );
    let r = valid_response(&b);
    // Dropping a response whose next Via is a broadcast address is the transport's job; the
    // parser must expose it.
    match r.vias().unwrap()[1].host {
        Host::V4(a) => assert!(a.is_broadcast()),
        ref h => panic!("{h:?}"),
    }
}

#[test]
fn bext01_unknown_extensions_parse() {
    let b = build(
        &[
            "OPTIONS sip:user@example.com SIP/2.0",
            "To: sip:j_user@example.com",
            "From: sip:caller@example.net;tag=242etr",
            "Max-Forwards: 6",
            "Call-ID: bext01.0ha0isndaksdj",
            "Require: nothingSupportsThis, nothingSupportsThisEither",
            "Proxy-Require: noProxiesSupportThis, norDoAnyProxiesSupportThis",
            "CSeq: 8 OPTIONS",
            "Via: SIP/2.0/TLS fold-and-staple.example.com;branch=z9hG4bKkdjuw",
            "Content-Length: 0",
        ],
        b"",
    );
    // 420 Bad Extension is the server's decision; the parser keeps the values.
    let r = valid_request(&b);
    assert_eq!(
        r.headers.get(&HeaderName::Require).unwrap(),
        "nothingSupportsThis, nothingSupportsThisEither"
    );
}

#[test]
fn invut_unknown_content_type_parses() {
    let body = "<audio>\r\n <pcmu port=\"443\"/>\r\n</audio>\r\n";
    let b = build(
        &[
            "INVITE sip:user@example.com SIP/2.0",
            "Contact: <sip:caller@host5.example.net>",
            "To: sip:j.user@example.com",
            "From: sip:caller@example.net;tag=8392034",
            "Max-Forwards: 70",
            "Call-ID: invut.0ha0isndaksdjadsfij34n23d",
            "CSeq: 235448 INVITE",
            "Via: SIP/2.0/UDP somehost.example.com;branch=z9hG4bKkdjuw",
            "Content-Type: application/unknownformat",
            "Content-Length: {CL}",
        ],
        body.as_bytes(),
    );
    let r = valid_request(&b);
    assert_eq!(r.content_type(), Some("application/unknownformat"));
    assert_eq!(r.body, body.as_bytes());
}

#[test]
fn unkscm_and_novelsc_request_uri_scheme_416() {
    for uri in [
        "nobodyKnowsThisScheme:totallyopaquecontent",
        "soap.beep://192.0.2.103:3002",
        "http://www.example.com/",
        "urn:service:sos",
    ] {
        let start = format!("OPTIONS {uri} SIP/2.0");
        let b = build(
            &[
                &start,
                "To: sip:user@example.com",
                "From: sip:caller@example.net;tag=384",
                "Max-Forwards: 3",
                "Call-ID: unkscm.nasdfasser0q239nwsdfasdkl34",
                "CSeq: 3923423 OPTIONS",
                "Via: SIP/2.0/TCP host9.example.com;branch=z9hG4bKkdjuw39234",
                "Content-Length: 0",
            ],
            b"",
        );
        let e = parse(&b).unwrap_err();
        assert_eq!(e, ParseError::UnsupportedUriScheme, "{uri}");
        assert_eq!(e.status(), 416);
        // the server can still answer: headers only, then a 416 built from them
        let h = Message::parse_headers(Bytes::copy_from_slice(&b), &Limits::default()).unwrap();
        let resp = Response::answering(&h, e.status(), "Unsupported URI Scheme", Some("x1"));
        assert_eq!(resp.status, 416);
        assert_eq!(
            resp.via_top().unwrap().branch().unwrap(),
            "z9hG4bKkdjuw39234"
        );
        assert_eq!(resp.to().unwrap().tag().unwrap(), "x1");
        assert_eq!(resp.cseq().unwrap().seq, 3923423);
        round_trip(&Message::Response(resp));
    }
}

#[test]
fn unksm2_unknown_schemes_in_headers_416() {
    let b = build(
        &[
            "REGISTER sip:example.com SIP/2.0",
            "To: isbn:2983792873",
            "From: <http://www.example.com>;tag=3234233",
            "Call-ID: unksm2.daksdj@hyphenated-host.example.com",
            "CSeq: 234902 REGISTER",
            "Max-Forwards: 70",
            "Via: SIP/2.0/UDP 192.0.2.21:5060;branch=z9hG4bKkdjuw",
            "Contact: <name:John_Smith>",
            "l: 0",
        ],
        b"",
    );
    rejected_by_validate(&b, 416);
}

#[test]
fn insuf_missing_headers() {
    let b = build(
        &[
            "INVITE sip:user@example.com SIP/2.0",
            "CSeq: 193942 INVITE",
            "Via: SIP/2.0/UDP 192.0.2.95;branch=z9hG4bKkdj.insuf",
            "Content-Type: application/sdp",
            "l: {CL}",
        ],
        SDP.as_bytes(),
    );
    rejected_by_validate(&b, 400);
    let Message::Request(r) = parse(&b).unwrap() else {
        panic!()
    };
    assert!(r.from().is_err() && r.to().is_err() && r.call_id().is_err());
}

#[test]
fn multi01_repeated_single_headers() {
    let b = build(
        &[
            "INVITE sip:user@company.com SIP/2.0",
            "Contact: <sip:caller@host25.example.net>",
            "Via: SIP/2.0/UDP 192.0.2.25;branch=z9hG4bKkdjuw",
            "Max-Forwards: 70",
            "CSeq: 5 INVITE",
            "Call-ID: multi01.98asdh@192.0.2.1",
            "CSeq: 59 INVITE",
            "Call-ID: multi01.98asdh@192.0.2.2",
            "From: sip:caller@example.com;tag=3413415",
            "To: sip:user@example.com",
            "To: sip:other@example.net",
            "From: sip:caller@example.net;tag=2923420123",
            "Content-Type: application/sdp",
            "l: {CL}",
            "Contact: <sip:caller@host36.example.net>",
            "Max-Forwards: 5",
        ],
        SDP.as_bytes(),
    );
    rejected_by_validate(&b, 400);
}

#[test]
fn mcl01_multiple_content_length() {
    let b = build(
        &[
            "OPTIONS sip:user@example.com SIP/2.0",
            "Via: SIP/2.0/UDP host5.example.net;branch=z9hG4bK293423",
            "To: sip:user@example.com",
            "From: sip:other@example.net;tag=3923942",
            "Call-ID: mcl01.fhn2323orihawfdoa3o4r52o3irsdf",
            "CSeq: 15932 OPTIONS",
            "Content-Length: 13",
            "Max-Forwards: 60",
            "Content-Length: 5",
            "Content-Type: text/plain",
        ],
        b"There's no way to know how many octets are supposed to be here.\r\n",
    );
    let e = parse(&b).unwrap_err();
    assert_eq!(e.status(), 400);
    assert!(strowger_sip::frame_len(&b, &Limits::default()).is_err());
}

#[test]
fn zeromf_max_forwards_zero_parses() {
    let b = build(
        &[
            "OPTIONS sip:user@example.com SIP/2.0",
            "To: sip:user@example.com",
            "From: sip:caller@example.net;tag=3ghsd41",
            "Call-ID: zeromf.jfasdlfnm2o2l43r5u0asdfas",
            "CSeq: 39234321 OPTIONS",
            "Via: SIP/2.0/UDP host1.example.com;branch=z9hG4bKkdjuw2349i",
            "Max-Forwards: 0",
            "Content-Length: 0",
        ],
        b"",
    );
    // 483 Too Many Hops (or answering OPTIONS) is the server's call.
    assert_eq!(valid_request(&b).max_forwards().unwrap(), Some(0));
}

#[test]
fn cparam_and_badbranch_and_regaut01_parse() {
    let b = build(
        &[
            "REGISTER sip:example.com SIP/2.0",
            "Via: SIP/2.0/UDP saturn.example.com:5060;branch=z9hG4bKkdjuw",
            "Max-Forwards: 70",
            "From: sip:watson@example.com;tag=DkfVgjkrtMwaerKKpe",
            "To: sip:watson@example.com",
            "Call-ID: cparam01.70710@saturn.example.com",
            "CSeq: 2 REGISTER",
            "Contact: sip:+19725552222@gw1.example.net;unknownparam",
            "Authorization: NoOneKnowsThisScheme opaque-data=here",
            "l: 0",
        ],
        b"",
    );
    let r = valid_request(&b);
    let c = &r.contacts().unwrap()[0];
    // addr-spec form: the parameter belongs to the Contact, not the URI
    assert!(c.params.has("unknownparam"));
    assert!(c.uri.params.0.is_empty());
    let b = build(
        &[
            "OPTIONS sip:user@example.com SIP/2.0",
            "To: sip:user@example.com",
            "From: sip:caller@example.org;tag=33242",
            "Max-Forwards: 3",
            "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK",
            "Accept: application/sdp",
            "Call-ID: badbranch.sadonfo23i420jv0as0derf3j3n",
            "CSeq: 8 OPTIONS",
            "l: 0",
        ],
        b"",
    );
    assert_eq!(
        valid_request(&b).via_top().unwrap().branch().unwrap(),
        "z9hG4bK"
    );
}

#[test]
fn contact_star_rules() {
    let mk = |contact: &str, expires: &str| {
        build(
            &[
                "REGISTER sip:example.com SIP/2.0",
                "Via: SIP/2.0/UDP saturn.example.com:5060;branch=z9hG4bKkdjuw",
                "Max-Forwards: 70",
                "From: sip:watson@example.com;tag=1",
                "To: sip:watson@example.com",
                "Call-ID: star@saturn.example.com",
                "CSeq: 2 REGISTER",
                contact,
                expires,
                "l: 0",
            ],
            b"",
        )
    };
    let r = valid_request(&mk("Contact: *", "Expires: 0"));
    assert!(r.contact_star());
    assert!(r.contacts().unwrap().is_empty());
    rejected_by_validate(&mk("Contact: *", "Expires: 10"), 400);
    rejected_by_validate(&mk("Contact: *, <sip:a@b>", "Expires: 0"), 400);
}

// ----- RFC 5118 (IPv6) -----------------------------------------------------------------------

fn v6_request(start: &str, extra: &[&str]) -> Vec<u8> {
    let mut lines = vec![
        start,
        "To: sip:user@example.com",
        "From: sip:user@example.com;tag=81x2",
        "Call-ID: SSG9559905523997077@hlau_4100",
        "Max-Forwards: 70",
    ];
    lines.extend_from_slice(extra);
    lines.push("Content-Length: 0");
    build(&lines, b"")
}

#[test]
fn rfc5118_ipv6_good() {
    let b = v6_request(
        "REGISTER sip:[2001:db8::10] SIP/2.0",
        &[
            "Via: SIP/2.0/UDP [2001:db8::9:1];branch=z9hG4bKas3-111",
            "Contact: \"Caller\" <sip:caller@[2001:db8::1]>",
            "CSeq: 98176 REGISTER",
        ],
    );
    let r = valid_request(&b);
    assert_eq!(r.uri.host, host("2001:db8::10"));
    assert_eq!(r.uri.port, None);
    assert_eq!(r.via_top().unwrap().host, host("2001:db8::9:1"));
    assert_eq!(r.via_top().unwrap().sent_by(), "[2001:db8::9:1]");
    assert_eq!(r.contacts().unwrap()[0].uri.host, host("2001:db8::1"));
}

#[test]
fn rfc5118_ipv6_bad_missing_brackets() {
    let b = v6_request(
        "REGISTER sip:2001:db8::10 SIP/2.0",
        &[
            "Via: SIP/2.0/UDP [2001:db8::9:1];branch=z9hG4bKas3-111",
            "Contact: \"Caller\" <sip:caller@[2001:db8::1]>",
            "CSeq: 98176 REGISTER",
        ],
    );
    assert!(parse(&b).is_err());
    // and in a Via or a Contact
    for (via, contact) in [
        (
            "Via: SIP/2.0/UDP 2001:db8::9:1;branch=z9hG4bKas3-111",
            "Contact: <sip:caller@[2001:db8::1]>",
        ),
        (
            "Via: SIP/2.0/UDP [2001:db8::9:1];branch=z9hG4bKas3-111",
            "Contact: <sip:caller@2001:db8::1>",
        ),
        (
            "Via: SIP/2.0/UDP [2001:db8::9:1;branch=z9hG4bKas3-111",
            "Contact: <sip:caller@[2001:db8::1>",
        ),
    ] {
        let b = v6_request(
            "REGISTER sip:[2001:db8::10] SIP/2.0",
            &[via, contact, "CSeq: 98176 REGISTER"],
        );
        rejected_by_validate(&b, 400);
    }
}

#[test]
fn rfc5118_port_ambiguous_and_unambiguous() {
    let extra = [
        "Via: SIP/2.0/UDP [2001:db8::9:1];branch=z9hG4bKas3-111",
        "Contact: \"Caller\" <sip:caller@[2001:db8::1]>",
        "CSeq: 98176 REGISTER",
    ];
    let r = valid_request(&v6_request(
        "REGISTER sip:[2001:db8::10:5070] SIP/2.0",
        &extra,
    ));
    assert_eq!(r.uri.host, host("2001:db8::10:5070"));
    assert_eq!(r.uri.port, None);
    let r = valid_request(&v6_request(
        "REGISTER sip:[2001:db8::10]:5070 SIP/2.0",
        &extra,
    ));
    assert_eq!(r.uri.host, host("2001:db8::10"));
    assert_eq!(r.uri.port, Some(5070));
}

#[test]
fn rfc5118_via_received_with_and_without_delimiters() {
    let r = valid_request(&v6_request(
        "BYE sip:[2001:db8::10] SIP/2.0",
        &[
            "Via: SIP/2.0/UDP [2001:db8::9:1];received=[2001:db8::9:255];branch=z9hG4bKas3-111",
            "CSeq: 321 BYE",
        ],
    ));
    assert_eq!(
        r.via_top().unwrap().params.value("received").unwrap(),
        "[2001:db8::9:255]"
    );
    let r = valid_request(&v6_request(
        "OPTIONS sip:[2001:db8::10] SIP/2.0",
        &[
            "Via: SIP/2.0/UDP [2001:db8::9:1];received=2001:db8::9:255;branch=z9hG4bKas3",
            "Contact: \"Caller\" <sip:caller@[2001:db8::9:1]>",
            "CSeq: 921 OPTIONS",
        ],
    ));
    let v = r.via_top().unwrap();
    assert_eq!(v.params.value("received").unwrap(), "2001:db8::9:255");
    assert_eq!(v.branch().unwrap(), "z9hG4bKas3");
}

#[test]
fn rfc5118_ipv6_in_sdp_and_mixed_vias() {
    let sdp = "v=0\r\no=assistant 971731711378798081 0 IN IP6 2001:db8::20\r\ns=Live video feed for today's meeting\r\nc=IN IP6 2001:db8::20\r\nt=3338481189 3370017201\r\nm=audio 6000 RTP/AVP 2\r\na=rtpmap:2 G726-32/8000\r\nm=video 6024 RTP/AVP 107\r\na=rtpmap:107 H263-1998/90000\r\n";
    let b = build(
        &[
            "INVITE sip:user@[2001:db8::10] SIP/2.0",
            "To: sip:user@[2001:db8::10]",
            "From: sip:user@example.com;tag=81x2",
            "Via: SIP/2.0/UDP [2001:db8::20];branch=z9hG4bKas3-111",
            "Call-ID: SSG9559905523997077@hlau_4100",
            "Contact: \"Caller\" <sip:caller@[2001:db8::20]>",
            "CSeq: 8612 INVITE",
            "Max-Forwards: 70",
            "Content-Type: application/sdp",
            "Content-Length: {CL}",
        ],
        sdp.as_bytes(),
    );
    let r = valid_request(&b);
    assert_eq!(r.to().unwrap().uri.host, host("2001:db8::10"));
    assert_eq!(r.body, sdp.as_bytes());
    let b = build(
        &[
            "BYE sip:user@host.example.net SIP/2.0",
            "Via: SIP/2.0/UDP [2001:db8::9:1]:6050;branch=z9hG4bKas3-111",
            "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKjhja8781hjuaij65144",
            "Via: SIP/2.0/TCP [2001:db8::9:255];branch=z9hG4bK451jj;received=192.0.2.200",
            "Call-ID: 997077@lau_4100",
            "Max-Forwards: 70",
            "CSeq: 89187 BYE",
            "To: sip:user@example.net;tag=9817--94",
            "From: sip:user@example.com;tag=81x2",
            "Content-Length: 0",
        ],
        b"",
    );
    let r = valid_request(&b);
    let v = r.vias().unwrap();
    assert_eq!(v.len(), 3);
    assert_eq!(
        (v[0].host.clone(), v[0].port),
        (host("2001:db8::9:1"), Some(6050))
    );
    assert_eq!(v[1].host, host("192.0.2.1"));
    assert_eq!(v[2].host, host("2001:db8::9:255"));
    assert_eq!(v[2].params.value("received").unwrap(), "192.0.2.200");
}

#[test]
fn rfc5118_ipv4_mapped_and_ipv4_in_ipv6() {
    let b = build(
        &[
            "INVITE sip:user@example.com SIP/2.0",
            "To: sip:user@example.com",
            "From: sip:user@east.example.com;tag=81x2",
            "Via: SIP/2.0/UDP [::ffff:192.0.2.10]:19823;branch=z9hG4bKbh19",
            "Via: SIP/2.0/UDP [::ffff:192.0.2.2];branch=z9hG4bKas3-111",
            "Call-ID: SSG9559905523997077@hlau_4100",
            "Contact: \"T. desk phone\" <sip:ted@[::ffff:192.0.2.2]>",
            "CSeq: 612 INVITE",
            "Max-Forwards: 70",
            "Content-Length: 0",
        ],
        b"",
    );
    let r = valid_request(&b);
    let v = r.via_top().unwrap();
    assert_eq!(v.host, host("::ffff:192.0.2.10"));
    assert_eq!(v.port, Some(19823));
    assert_eq!(r.contacts().unwrap()[0].uri.host, host("::ffff:192.0.2.2"));
    // §4.10: three colons (the RFC 3261 ABNF bug) read robustly, two colons correct
    for uri in [
        "sip:user@[2001:db8:::192.0.2.1]",
        "sip:user@[2001:db8::192.0.2.1]",
    ] {
        let start = format!("OPTIONS {uri} SIP/2.0");
        let to = format!("To: {uri}");
        let b = build(
            &[
                &start,
                &to,
                "From: sip:user@example.com;tag=810x2",
                "Via: SIP/2.0/UDP lab1.east.example.com;branch=z9hG4bKas3-111",
                "Call-ID: G9559905523997077@hlau_4100",
                "CSeq: 689 OPTIONS",
                "Max-Forwards: 70",
                "Content-Length: 0",
            ],
            b"",
        );
        let r = valid_request(&b);
        assert_eq!(r.uri.host, host("2001:db8::c000:201"));
    }
}

#[test]
fn ipv6_scope_zone_is_rejected_cleanly() {
    // RFC 6874 zone identifiers are not representable in `Host`: an error, never a panic.
    for uri in [
        "sip:[fe80::1%25eth0]",
        "sip:[fe80::1%eth0]:5060",
        "sip:[fe80::1]]",
        "sip:[]",
        "sip:[::1",
        "sip:[1::2::3]",
    ] {
        assert!(strowger_sip::Uri::parse(uri).is_err(), "{uri}");
    }
}
