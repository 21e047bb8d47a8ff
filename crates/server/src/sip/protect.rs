//! Flood and brute-force protection for SIP, the job Kamailio's `pike` and fail2ban do: a token
//! bucket of requests per source IP, and a ban for IPs that fail authentication repeatedly.
//! Sans-IO: the caller passes the time. Memory is bounded: at most `MAX_TRACKED` IPs are tracked,
//! the stalest dropped first.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// IPs tracked at once (buckets and failure counters).
const MAX_TRACKED: usize = 100_000;

/// Settings (from `[sip]`).
#[derive(Debug, Clone)]
pub struct ProtectConfig {
    /// Average requests per second per IP; 0 = no limit.
    pub rate_per_sec: u32,
    pub burst: u32,
    pub ban_after_failures: u32,
    pub ban_window: Duration,
    pub ban_for: Duration,
    pub trusted: Vec<IpAddr>,
}

/// What to do with a request from an IP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Accept,
    /// Over its rate: drop silently (answering a flood feeds it).
    RateLimited,
    /// Banned until the given time: drop silently.
    Banned,
}

#[derive(Debug)]
struct Entry {
    tokens: f64,
    refilled: Instant,
    failures: u32,
    window_start: Instant,
    banned_until: Option<Instant>,
    seen: Instant,
}

/// Per-IP state.
#[derive(Debug)]
pub struct Protect {
    cfg: ProtectConfig,
    ips: HashMap<IpAddr, Entry>,
    /// Counters for `/metrics`.
    pub rate_limited: u64,
    pub banned_drops: u64,
    pub bans: u64,
}

impl Protect {
    pub fn new(cfg: ProtectConfig) -> Self {
        Protect {
            cfg,
            ips: HashMap::new(),
            rate_limited: 0,
            banned_drops: 0,
            bans: 0,
        }
    }

    fn entry(&mut self, now: Instant, ip: IpAddr) -> &mut Entry {
        if !self.ips.contains_key(&ip) && self.ips.len() >= MAX_TRACKED {
            self.evict(now);
        }
        let burst = f64::from(self.cfg.burst.max(1));
        self.ips.entry(ip).or_insert(Entry {
            tokens: burst,
            refilled: now,
            failures: 0,
            window_start: now,
            banned_until: None,
            seen: now,
        })
    }

    /// Drops entries that are neither banned nor recently seen; if that frees nothing, the oldest
    /// tenth.
    fn evict(&mut self, now: Instant) {
        let idle = Duration::from_secs(60).max(self.cfg.ban_window);
        self.ips.retain(|_, e| {
            e.banned_until.is_some_and(|t| t > now) || now.duration_since(e.seen) < idle
        });
        if self.ips.len() >= MAX_TRACKED {
            let mut seen: Vec<Instant> = self.ips.values().map(|e| e.seen).collect();
            seen.sort_unstable();
            let cut = seen[seen.len() / 10];
            self.ips.retain(|_, e| e.seen > cut);
        }
    }

    fn trusted(&self, ip: IpAddr) -> bool {
        self.cfg.trusted.contains(&ip)
    }

    /// Called for every request received from `ip` (responses are not limited).
    pub fn check(&mut self, now: Instant, ip: IpAddr) -> Verdict {
        if self.trusted(ip) {
            return Verdict::Accept;
        }
        let rate = f64::from(self.cfg.rate_per_sec);
        let burst = f64::from(self.cfg.burst.max(1));
        let e = self.entry(now, ip);
        e.seen = now;
        if let Some(until) = e.banned_until {
            if now < until {
                self.banned_drops += 1;
                return Verdict::Banned;
            }
            e.banned_until = None;
            e.failures = 0;
        }
        if rate == 0.0 {
            return Verdict::Accept;
        }
        let dt = now.duration_since(e.refilled).as_secs_f64();
        e.tokens = (e.tokens + dt * rate).min(burst);
        e.refilled = now;
        if e.tokens >= 1.0 {
            e.tokens -= 1.0;
            Verdict::Accept
        } else {
            self.rate_limited += 1;
            Verdict::RateLimited
        }
    }

    /// An authentication from `ip` failed (wrong password, unknown user). Returns true when this
    /// failure bans the IP.
    pub fn auth_failed(&mut self, now: Instant, ip: IpAddr) -> bool {
        if self.trusted(ip) || self.cfg.ban_after_failures == 0 {
            return false;
        }
        let (window, ban_for, after) = (
            self.cfg.ban_window,
            self.cfg.ban_for,
            self.cfg.ban_after_failures,
        );
        let e = self.entry(now, ip);
        e.seen = now;
        if now.duration_since(e.window_start) > window {
            e.window_start = now;
            e.failures = 0;
        }
        e.failures += 1;
        if e.failures >= after && e.banned_until.is_none() {
            e.banned_until = Some(now + ban_for);
            self.bans += 1;
            return true;
        }
        false
    }

    /// IPs banned right now.
    pub fn banned_count(&self, now: Instant) -> usize {
        self.ips
            .values()
            .filter(|e| e.banned_until.is_some_and(|t| t > now))
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> ProtectConfig {
        ProtectConfig {
            rate_per_sec: 10,
            burst: 20,
            ban_after_failures: 3,
            ban_window: Duration::from_secs(60),
            ban_for: Duration::from_secs(600),
            trusted: vec!["10.0.0.9".parse().unwrap()],
        }
    }

    #[test]
    fn rate_limit_allows_burst_then_average() {
        let mut p = Protect::new(cfg());
        let t0 = Instant::now();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let ok = (0..50)
            .filter(|_| p.check(t0, ip) == Verdict::Accept)
            .count();
        assert_eq!(ok, 20, "the burst");
        // One second later: ten more tokens.
        let t1 = t0 + Duration::from_secs(1);
        let ok = (0..50)
            .filter(|_| p.check(t1, ip) == Verdict::Accept)
            .count();
        assert_eq!(ok, 10);
        assert_eq!(p.rate_limited, 70);
        // Another IP is not affected.
        assert_eq!(p.check(t1, "192.0.2.2".parse().unwrap()), Verdict::Accept);
    }

    #[test]
    fn repeated_auth_failures_ban_then_expire() {
        let mut p = Protect::new(cfg());
        let t0 = Instant::now();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        assert!(!p.auth_failed(t0, ip));
        assert!(!p.auth_failed(t0, ip));
        assert!(p.auth_failed(t0, ip), "third failure bans");
        assert_eq!(p.check(t0, ip), Verdict::Banned);
        assert_eq!(p.banned_count(t0), 1);
        let later = t0 + Duration::from_secs(601);
        assert_eq!(p.check(later, ip), Verdict::Accept);
        assert_eq!(p.bans, 1);
    }

    #[test]
    fn failures_outside_the_window_do_not_add_up() {
        let mut p = Protect::new(cfg());
        let t0 = Instant::now();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        p.auth_failed(t0, ip);
        p.auth_failed(t0, ip);
        assert!(!p.auth_failed(t0 + Duration::from_secs(61), ip));
        assert_eq!(p.check(t0 + Duration::from_secs(61), ip), Verdict::Accept);
    }

    #[test]
    fn trusted_ips_are_never_limited_or_banned() {
        let mut p = Protect::new(cfg());
        let t0 = Instant::now();
        let ip: IpAddr = "10.0.0.9".parse().unwrap();
        for _ in 0..100 {
            assert_eq!(p.check(t0, ip), Verdict::Accept);
            assert!(!p.auth_failed(t0, ip));
        }
    }

    #[test]
    fn memory_is_bounded() {
        let mut p = Protect::new(cfg());
        let t0 = Instant::now();
        for i in 0..(MAX_TRACKED as u32 + 5000) {
            let ip = IpAddr::from(i.to_be_bytes());
            p.check(t0 + Duration::from_micros(u64::from(i)), ip);
        }
        assert!(p.ips.len() <= MAX_TRACKED);
    }
}
