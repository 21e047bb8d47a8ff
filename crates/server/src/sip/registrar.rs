//! The location service (RFC 3261 §10.3): address of record → contacts, with expiry, q-values and
//! the Call-ID/CSeq ordering rule. Sans-IO: the caller passes the time; nothing here touches the
//! network or the store.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use strowger_sip::{Host, Uri};

use super::transport::Transport;

/// Where a binding's requests go: the Contact as registered, and the flow it came from (sending
/// to the source address over the same connection is what makes NATed phones reachable).
#[derive(Debug, Clone)]
pub struct Binding {
    pub contact: Uri,
    /// The Contact as received (written back in 200 responses and for forking).
    pub contact_text: String,
    pub q: f32,
    pub expires_at: Instant,
    pub call_id: String,
    pub cseq: u32,
    pub source: SocketAddr,
    pub transport: Transport,
    pub user_agent: String,
    /// `+sip.instance` (RFC 5626), if given.
    pub instance: Option<String>,
    /// Path (RFC 3327): the proxies between us and the phone, as Route values for requests to it.
    pub path: Vec<String>,
    pub registered_at: Instant,
}

impl Binding {
    /// Seconds left.
    pub fn expires_in(&self, now: Instant) -> u64 {
        self.expires_at.saturating_duration_since(now).as_secs()
    }
}

/// One contact of a REGISTER, already parsed and with its expiry resolved by the caller.
#[derive(Debug, Clone)]
pub struct ContactUpdate {
    pub contact: Uri,
    pub contact_text: String,
    pub q: f32,
    /// 0 removes the binding.
    pub expires: u32,
    pub instance: Option<String>,
}

/// The flow a REGISTER arrived on.
#[derive(Debug, Clone)]
pub struct Flow {
    pub source: SocketAddr,
    pub transport: Transport,
    pub user_agent: String,
    /// Path header values of the REGISTER (RFC 3327), in order.
    pub path: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    /// Same Call-ID with a CSeq not above the stored one (§10.3 step 7): 500.
    #[error("out-of-order REGISTER (CSeq not above the stored one for this Call-ID)")]
    OutOfOrder,
}

/// The contacts of every address of record (keyed by user name, lower-cased).
#[derive(Debug, Default)]
pub struct Location {
    aors: HashMap<String, Vec<Binding>>,
    max_per_aor: usize,
}

/// A key for URI equality good enough for bindings (RFC 3261 §19.1.4, simplified): scheme, user,
/// host (case-insensitive), port and transport.
fn uri_key(u: &Uri) -> String {
    let host = match &u.host {
        Host::Domain(d) => d.to_ascii_lowercase(),
        h => h.to_string(),
    };
    format!(
        "{:?}:{}@{}:{}:{}",
        u.scheme,
        u.user.as_deref().unwrap_or(""),
        host,
        u.port.unwrap_or(0),
        u.params
            .value("transport")
            .map(|t| t.to_ascii_lowercase())
            .unwrap_or_default()
    )
}

impl Location {
    pub fn new(max_per_aor: usize) -> Self {
        Location {
            aors: HashMap::new(),
            max_per_aor: max_per_aor.max(1),
        }
    }

    /// Applies a REGISTER's contacts to `aor`. `star` is `Contact: *` (remove all; the caller
    /// checks that Expires is 0). Returns the bindings now current.
    // The inputs are the REGISTER's own fields; a struct for them would only rename them.
    #[allow(clippy::too_many_arguments)]
    pub fn register(
        &mut self,
        now: Instant,
        aor: &str,
        call_id: &str,
        cseq: u32,
        star: bool,
        updates: Vec<ContactUpdate>,
        flow: &Flow,
    ) -> Result<Vec<Binding>, RegisterError> {
        let list = self.aors.entry(aor.to_ascii_lowercase()).or_default();
        list.retain(|b| b.expires_at > now);
        if star {
            if list.iter().any(|b| b.call_id == call_id && cseq <= b.cseq) {
                return Err(RegisterError::OutOfOrder);
            }
            list.clear();
        }
        // Check ordering for every contact first, so a rejected REGISTER changes nothing.
        for u in &updates {
            let k = uri_key(&u.contact);
            if list
                .iter()
                .any(|b| uri_key(&b.contact) == k && b.call_id == call_id && cseq <= b.cseq)
            {
                return Err(RegisterError::OutOfOrder);
            }
        }
        for u in updates {
            let k = uri_key(&u.contact);
            // RFC 5626: the same instance re-registering with a new Contact replaces its binding.
            let pos = list.iter().position(|b| {
                uri_key(&b.contact) == k || (u.instance.is_some() && b.instance == u.instance)
            });
            if u.expires == 0 {
                if let Some(i) = pos {
                    list.remove(i);
                }
                continue;
            }
            let b = Binding {
                contact: u.contact,
                contact_text: u.contact_text,
                q: u.q,
                expires_at: now + Duration::from_secs(u64::from(u.expires)),
                call_id: call_id.to_string(),
                cseq,
                source: flow.source,
                transport: flow.transport,
                user_agent: flow.user_agent.clone(),
                instance: u.instance,
                path: flow.path.clone(),
                registered_at: now,
            };
            match pos {
                Some(i) => {
                    let first = list[i].registered_at;
                    list[i] = b;
                    list[i].registered_at = first;
                }
                None => {
                    if list.len() >= self.max_per_aor {
                        // Full: the binding closest to expiry makes room (a phone that changed
                        // address leaves its stale binding behind).
                        if let Some(i) = list
                            .iter()
                            .enumerate()
                            .min_by_key(|(_, b)| b.expires_at)
                            .map(|(i, _)| i)
                        {
                            list.remove(i);
                        }
                    }
                    list.push(b);
                }
            }
        }
        let out = list.clone();
        if list.is_empty() {
            self.aors.remove(&aor.to_ascii_lowercase());
        }
        Ok(out)
    }

    /// The live bindings of `aor`, highest q first.
    pub fn lookup(&self, now: Instant, aor: &str) -> Vec<Binding> {
        let mut v: Vec<Binding> = self
            .aors
            .get(&aor.to_ascii_lowercase())
            .map(|l| l.iter().filter(|b| b.expires_at > now).cloned().collect())
            .unwrap_or_default();
        v.sort_by(|a, b| b.q.partial_cmp(&a.q).unwrap_or(std::cmp::Ordering::Equal));
        v
    }

    /// Removes expired bindings; returns how many.
    pub fn expire(&mut self, now: Instant) -> usize {
        let mut n = 0;
        self.aors.retain(|_, l| {
            let before = l.len();
            l.retain(|b| b.expires_at > now);
            n += before - l.len();
            !l.is_empty()
        });
        n
    }

    /// Total live bindings.
    pub fn bindings(&self) -> usize {
        self.aors.values().map(Vec::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upd(uri: &str, expires: u32, q: f32) -> ContactUpdate {
        ContactUpdate {
            contact: Uri::parse(uri).unwrap(),
            contact_text: format!("<{uri}>"),
            q,
            expires,
            instance: None,
        }
    }

    fn flow() -> Flow {
        Flow {
            source: "192.0.2.1:5060".parse().unwrap(),
            transport: Transport::Udp,
            user_agent: "test".into(),
            path: Vec::new(),
        }
    }

    #[test]
    fn register_refresh_expire_and_order() {
        let mut l = Location::new(10);
        let t0 = Instant::now();
        let b = l
            .register(
                t0,
                "Alice",
                "c1",
                1,
                false,
                vec![upd("sip:alice@192.0.2.1:5060", 60, 0.5)],
                &flow(),
            )
            .unwrap();
        assert_eq!(b.len(), 1);
        // A second device with a higher q comes first in lookups.
        l.register(
            t0,
            "alice",
            "c2",
            1,
            false,
            vec![upd("sip:alice@192.0.2.2", 60, 1.0)],
            &flow(),
        )
        .unwrap();
        let found = l.lookup(t0, "ALICE");
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].contact.host.to_string(), "192.0.2.2");
        // Same Call-ID, CSeq not above: 500, nothing changed.
        assert!(matches!(
            l.register(
                t0,
                "alice",
                "c1",
                1,
                false,
                vec![upd("sip:alice@192.0.2.1:5060", 0, 1.0)],
                &flow()
            ),
            Err(RegisterError::OutOfOrder)
        ));
        assert_eq!(l.lookup(t0, "alice").len(), 2);
        // Un-register one contact.
        l.register(
            t0,
            "alice",
            "c1",
            2,
            false,
            vec![upd("sip:alice@192.0.2.1:5060", 0, 1.0)],
            &flow(),
        )
        .unwrap();
        assert_eq!(l.lookup(t0, "alice").len(), 1);
        // Expiry.
        let later = t0 + Duration::from_secs(61);
        assert!(l.lookup(later, "alice").is_empty());
        assert_eq!(l.expire(later), 1);
        assert_eq!(l.bindings(), 0);
    }

    #[test]
    fn star_removes_all_and_limit_evicts_oldest() {
        let mut l = Location::new(2);
        let t0 = Instant::now();
        l.register(
            t0,
            "bob",
            "c",
            1,
            false,
            vec![upd("sip:bob@192.0.2.1", 30, 1.0)],
            &flow(),
        )
        .unwrap();
        l.register(
            t0,
            "bob",
            "c",
            2,
            false,
            vec![upd("sip:bob@192.0.2.2", 60, 1.0)],
            &flow(),
        )
        .unwrap();
        l.register(
            t0,
            "bob",
            "c",
            3,
            false,
            vec![upd("sip:bob@192.0.2.3", 90, 1.0)],
            &flow(),
        )
        .unwrap();
        let hosts: Vec<String> = l
            .lookup(t0, "bob")
            .iter()
            .map(|b| b.contact.host.to_string())
            .collect();
        assert_eq!(hosts.len(), 2);
        assert!(
            !hosts.contains(&"192.0.2.1".to_string()),
            "the binding closest to expiry made room"
        );
        l.register(t0, "bob", "other", 1, true, vec![], &flow())
            .unwrap();
        assert!(l.lookup(t0, "bob").is_empty());
    }

    #[test]
    fn same_instance_replaces_its_binding() {
        let mut l = Location::new(10);
        let t0 = Instant::now();
        let mut a = upd("sip:carol@192.0.2.1", 60, 1.0);
        a.instance = Some("<urn:uuid:1>".into());
        l.register(t0, "carol", "c", 1, false, vec![a], &flow())
            .unwrap();
        let mut b = upd("sip:carol@198.51.100.7:4000", 60, 1.0);
        b.instance = Some("<urn:uuid:1>".into());
        l.register(t0, "carol", "c", 2, false, vec![b], &flow())
            .unwrap();
        let v = l.lookup(t0, "carol");
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].contact.port, Some(4000));
    }
}
