//! Finding which session a datagram on the shared WebRTC port belongs to.
//!
//! All peers share one UDP port. A STUN binding request names the session in its USERNAME
//! attribute (`<server ufrag>:<client ufrag>`, RFC 8445 §7.2.2); once a session has answered a
//! check from an address, everything else (DTLS, SRTP, SRTCP) from that address is that session's.
//! This module only reads bytes; it never trusts them beyond bounds checks.

/// STUN magic cookie (RFC 5389 §6).
const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];
const ATTR_USERNAME: u16 = 0x0006;
/// A username longer than this is not one of ours (our ufrags are short).
const MAX_USERNAME: usize = 513;

/// True if the datagram looks like STUN (RFC 7983 demultiplexing: first byte 0..=3 and the cookie).
pub fn is_stun(buf: &[u8]) -> bool {
    buf.len() >= 20 && buf[0] < 4 && buf[4..8] == MAGIC_COOKIE
}

/// The local (server) ufrag named by a STUN request's USERNAME, if any.
pub fn stun_local_ufrag(buf: &[u8]) -> Option<&str> {
    if !is_stun(buf) {
        return None;
    }
    let msg_len = u16::from_be_bytes([buf[2], buf[3]]) as usize;
    let end = 20usize.checked_add(msg_len)?.min(buf.len());
    let mut pos = 20;
    while pos + 4 <= end {
        let typ = u16::from_be_bytes([buf[pos], buf[pos + 1]]);
        let len = u16::from_be_bytes([buf[pos + 2], buf[pos + 3]]) as usize;
        let start = pos + 4;
        let stop = start.checked_add(len)?;
        if stop > end {
            return None;
        }
        if typ == ATTR_USERNAME {
            if len > MAX_USERNAME {
                return None;
            }
            let user = std::str::from_utf8(&buf[start..stop]).ok()?;
            return user.split(':').next().filter(|s| !s.is_empty());
        }
        // Attributes are padded to 4 bytes.
        pos = start + len.div_ceil(4) * 4;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stun_with_username(user: &[u8]) -> Vec<u8> {
        let mut attrs = Vec::new();
        // A PRIORITY attribute first, so the parser has to skip one.
        attrs.extend_from_slice(&[0x00, 0x24, 0x00, 0x04, 1, 2, 3, 4]);
        attrs.extend_from_slice(&ATTR_USERNAME.to_be_bytes());
        attrs.extend_from_slice(&(user.len() as u16).to_be_bytes());
        attrs.extend_from_slice(user);
        while attrs.len() % 4 != 0 {
            attrs.push(0);
        }
        let mut m = vec![0x00, 0x01];
        m.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
        m.extend_from_slice(&MAGIC_COOKIE);
        m.extend_from_slice(&[7; 12]);
        m.extend_from_slice(&attrs);
        m
    }

    #[test]
    fn finds_local_ufrag() {
        let m = stun_with_username(b"srvUfrag:cliUfrag");
        assert_eq!(stun_local_ufrag(&m), Some("srvUfrag"));
    }

    #[test]
    fn rejects_garbage_without_panicking() {
        assert_eq!(stun_local_ufrag(&[]), None);
        assert_eq!(stun_local_ufrag(&[0u8; 19]), None);
        let mut m = stun_with_username(b"a:b");
        // Attribute length past the end.
        m[30] = 0xff;
        assert_eq!(stun_local_ufrag(&m), None);
        // DTLS record (first byte 22) is not STUN.
        let mut d = stun_with_username(b"a:b");
        d[0] = 22;
        assert!(!is_stun(&d));
        // Truncated at every length: never panics.
        let full = stun_with_username(b"someufrag:other");
        for n in 0..full.len() {
            let _ = stun_local_ufrag(&full[..n]);
        }
        // Empty ufrag is not a ufrag.
        assert_eq!(stun_local_ufrag(&stun_with_username(b":x")), None);
    }
}
