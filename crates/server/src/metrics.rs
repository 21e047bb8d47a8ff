//! Prometheus metrics: counters and gauges kept in atomics by the tasks that own the facts,
//! written out in the text exposition format on `/metrics`.

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};

use crate::media::SfuStats;
use crate::relay::{RelayMetrics, DROP_LABELS};

#[derive(Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    /// Copies a count kept elsewhere (monotonic at its source).
    pub fn set(&self, v: u64) {
        self.0.store(v, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    pub fn set(&self, v: i64) {
        self.0.store(v, Ordering::Relaxed);
    }
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    pub fn dec(&self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Signalling error codes counted by label (a fixed set: docs/protocol.md, "Errors").
const ERROR_CODES: [&str; 14] = [
    "bad_request",
    "unknown_type",
    "too_large",
    "out_of_order",
    "invalid_sdp",
    "unauthorized",
    "forbidden",
    "room_full",
    "not_found",
    "rate_limited",
    "unavailable",
    "internal",
    "conflict",
    "timeout",
];

const CALL_END_REASONS: [&str; 9] = [
    "rejected",
    "busy",
    "cancelled",
    "no_answer",
    "hangup",
    "answered_elsewhere",
    "offline",
    "unknown_user",
    "disconnected",
];

#[derive(Default)]
pub struct Metrics {
    pub ws_connections: Gauge,
    pub sessions: Gauge,
    pub resumes: Counter,
    pub slow_clients: Counter,
    pub auth_failures: Counter,
    pub calls_started: Counter,
    pub rooms_created: Counter,
    errors: [Counter; ERROR_CODES.len()],
    call_ends: [Counter; CALL_END_REASONS.len()],
    /// Rooms, participants, tracks: written by the media task on every turn of its loop, so
    /// plain atomics rather than a lock.
    sfu_gauges: [AtomicUsize; 3],
    /// The RTP relay of SIP calls: atomics written by its session tasks.
    pub relay: std::sync::Arc<RelayMetrics>,
    /// SIP transports, registrar, calls: atomics written by the SIP task.
    pub sip: std::sync::Arc<crate::sip::stats::SipStats>,
}

impl Metrics {
    pub fn signal_error(&self, code: &str) {
        if let Some(i) = ERROR_CODES.iter().position(|c| *c == code) {
            self.errors[i].inc();
        }
    }

    pub fn call_ended(&self, reason: &str) {
        if let Some(i) = CALL_END_REASONS.iter().position(|c| *c == reason) {
            self.call_ends[i].inc();
        }
    }

    /// Latest rooms/participants/tracks, set by the media task after each turn of its loop.
    pub fn set_sfu_gauges(&self, g: (usize, usize, usize)) {
        self.sfu_gauges[0].store(g.0, Ordering::Relaxed);
        self.sfu_gauges[1].store(g.1, Ordering::Relaxed);
        self.sfu_gauges[2].store(g.2, Ordering::Relaxed);
    }

    /// The exposition text. `sfu` is a fresh snapshot from the media task when it answered.
    pub fn render(&self, sfu: Option<&SfuStats>) -> String {
        let mut o = String::with_capacity(4096);
        let gauge = |o: &mut String, name: &str, help: &str, v: i64| {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        };
        gauge(
            &mut o,
            "strowger_ws_connections",
            "Open signalling WebSockets.",
            self.ws_connections.get(),
        );
        gauge(
            &mut o,
            "strowger_sessions",
            "Signed-in sessions (including those waiting for resume).",
            self.sessions.get(),
        );
        let (rooms, parts, tracks) = match sfu {
            Some(s) => (s.rooms, s.participants, s.tracks),
            None => (
                self.sfu_gauges[0].load(Ordering::Relaxed),
                self.sfu_gauges[1].load(Ordering::Relaxed),
                self.sfu_gauges[2].load(Ordering::Relaxed),
            ),
        };
        gauge(&mut o, "strowger_rooms", "Open rooms.", rooms as i64);
        gauge(
            &mut o,
            "strowger_participants",
            "Participants in rooms.",
            parts as i64,
        );
        gauge(
            &mut o,
            "strowger_tracks",
            "Published tracks.",
            tracks as i64,
        );
        let counter = |o: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
        };
        counter(
            &mut o,
            "strowger_session_resumes_total",
            "Sessions resumed after a dropped connection.",
            self.resumes.get(),
        );
        counter(
            &mut o,
            "strowger_slow_clients_total",
            "Connections dropped because the client did not read.",
            self.slow_clients.get(),
        );
        counter(
            &mut o,
            "strowger_auth_failures_total",
            "Tokens refused.",
            self.auth_failures.get(),
        );
        counter(
            &mut o,
            "strowger_calls_total",
            "1:1 calls placed.",
            self.calls_started.get(),
        );
        counter(
            &mut o,
            "strowger_rooms_created_total",
            "Rooms created.",
            self.rooms_created.get(),
        );
        let _ = writeln!(o, "# HELP strowger_calls_ended_total 1:1 calls ended, by reason.\n# TYPE strowger_calls_ended_total counter");
        for (i, r) in CALL_END_REASONS.iter().enumerate() {
            let _ = writeln!(
                o,
                "strowger_calls_ended_total{{reason=\"{r}\"}} {}",
                self.call_ends[i].get()
            );
        }
        let _ = writeln!(o, "# HELP strowger_signal_errors_total Signalling errors sent, by code.\n# TYPE strowger_signal_errors_total counter");
        for (i, c) in ERROR_CODES.iter().enumerate() {
            let _ = writeln!(
                o,
                "strowger_signal_errors_total{{code=\"{c}\"}} {}",
                self.errors[i].get()
            );
        }
        self.render_relay(&mut o);
        self.sip.render(&mut o);
        if let Some(s) = sfu {
            let c = &s.counters;
            counter(
                &mut o,
                "strowger_rtc_rx_packets_total",
                "Datagrams received on the WebRTC port.",
                c.rx_packets,
            );
            counter(
                &mut o,
                "strowger_rtc_rx_bytes_total",
                "Bytes received on the WebRTC port.",
                c.rx_bytes,
            );
            counter(
                &mut o,
                "strowger_rtc_tx_packets_total",
                "Datagrams sent from the WebRTC port.",
                c.tx_packets,
            );
            counter(
                &mut o,
                "strowger_rtc_tx_bytes_total",
                "Bytes sent from the WebRTC port.",
                c.tx_bytes,
            );
            counter(
                &mut o,
                "strowger_rtc_rx_unmatched_total",
                "Datagrams that matched no session.",
                c.rx_unmatched,
            );
            counter(
                &mut o,
                "strowger_forwarded_frames_total",
                "Media frames forwarded to subscribers.",
                c.forwarded_frames,
            );
            counter(
                &mut o,
                "strowger_forwarded_bytes_total",
                "Media payload bytes forwarded to subscribers.",
                c.forwarded_bytes,
            );
            counter(
                &mut o,
                "strowger_keyframe_requests_total",
                "Keyframe requests sent to publishers.",
                c.keyframe_requests,
            );
            counter(
                &mut o,
                "strowger_layer_switches_total",
                "Simulcast layer switches.",
                c.layer_switches,
            );
            let _ = writeln!(o, "# HELP strowger_room_participants Participants per room (1:1 call rooms excluded).\n# TYPE strowger_room_participants gauge");
            let mut rooms = s.room_sizes.clone();
            rooms.sort();
            // 1:1 call rooms are short-lived and many: one series each would grow without end.
            for (name, n) in rooms.into_iter().filter(|(n, _)| !n.starts_with("call:")) {
                let _ = writeln!(
                    o,
                    "strowger_room_participants{{room=\"{}\"}} {n}",
                    escape_label(&name)
                );
            }
        }
        o
    }

    fn render_relay(&self, o: &mut String) {
        let r = &*self.relay;
        let load = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
        let _ = writeln!(
            o,
            "# HELP strowger_relay_sessions RTP relay sessions open (SIP calls).\n# TYPE strowger_relay_sessions gauge\nstrowger_relay_sessions {}",
            r.sessions.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            o,
            "# HELP strowger_relay_ports UDP ports held by the RTP relay.\n# TYPE strowger_relay_ports gauge\nstrowger_relay_ports {}",
            r.ports.load(Ordering::Relaxed)
        );
        let _ = writeln!(o, "# HELP strowger_relay_packets_total Datagrams relayed, by kind.\n# TYPE strowger_relay_packets_total counter");
        let _ = writeln!(o, "# HELP strowger_relay_bytes_total Bytes relayed, by kind.\n# TYPE strowger_relay_bytes_total counter");
        for (i, kind) in ["rtp", "rtcp"].iter().enumerate() {
            let _ = writeln!(
                o,
                "strowger_relay_packets_total{{kind=\"{kind}\"}} {}\nstrowger_relay_bytes_total{{kind=\"{kind}\"}} {}",
                load(&r.packets[i]),
                load(&r.bytes[i])
            );
        }
        let _ = writeln!(o, "# HELP strowger_relay_dropped_total Datagrams the relay dropped, by reason.\n# TYPE strowger_relay_dropped_total counter");
        for (i, reason) in DROP_LABELS.iter().enumerate() {
            let _ = writeln!(
                o,
                "strowger_relay_dropped_total{{reason=\"{reason}\"}} {}",
                load(&r.dropped[i])
            );
        }
        let counter = |o: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
        };
        counter(
            o,
            "strowger_relay_latches_total",
            "Relay flows latched to their first source.",
            load(&r.latches),
        );
        counter(
            o,
            "strowger_relay_relatches_total",
            "Relay flows moved to a new source (re-INVITE or a phone changing address).",
            load(&r.relatches),
        );
        counter(
            o,
            "strowger_relay_timeouts_total",
            "Relay sessions reported inactive (no RTP for the timeout).",
            load(&r.timeouts),
        );
        counter(
            o,
            "strowger_relay_refused_total",
            "Relay sessions refused (port range exhausted or max_sessions reached).",
            load(&r.refused),
        );
    }
}

/// Prometheus label values escape backslash, quote and newline.
fn escape_label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_rooms() {
        let m = Metrics::default();
        m.signal_error("room_full");
        m.call_ended("busy");
        let s = SfuStats {
            rooms: 1,
            participants: 2,
            tracks: 3,
            room_sizes: vec![("a\"b".into(), 2)],
            ..Default::default()
        };
        let t = m.render(Some(&s));
        assert!(t.contains("strowger_signal_errors_total{code=\"room_full\"} 1"));
        assert!(t.contains("strowger_calls_ended_total{reason=\"busy\"} 1"));
        assert!(t.contains("strowger_participants 2"));
        assert!(t.contains("strowger_room_participants{room=\"a\\\"b\"} 2"));
        m.relay.dropped[3].fetch_add(2, Ordering::Relaxed);
        let t = m.render(None);
        assert!(t.contains("strowger_relay_dropped_total{reason=\"unlatched_source\"} 2"));
        assert!(t.contains("strowger_relay_sessions 0"));
        assert!(t.contains("strowger_relay_packets_total{kind=\"rtcp\"} 0"));
    }
}
