//! SIP counters and gauges for `/metrics`, kept in atomics by the tasks that own the facts.

use std::fmt::Write;

use crate::metrics::{Counter, Gauge};

/// Every SIP counter. Names in `render` are the Prometheus names.
#[derive(Default)]
pub struct SipStats {
    pub received: Counter,
    pub sent: Counter,
    pub recv_dropped: Counter,
    pub send_dropped: Counter,
    pub too_large: Counter,
    pub parse_errors: Counter,
    pub stream_errors: Counter,
    pub connections: Gauge,
    pub conn_refused: Counter,
    pub rate_limited: Counter,
    pub banned_drops: Counter,
    pub bans: Counter,
    pub banned_ips: Gauge,
    pub auth_challenges: Counter,
    pub auth_failures: Counter,
    pub registrations: Counter,
    pub registration_failures: Counter,
    pub bindings: Gauge,
    pub calls_started: Counter,
    pub calls_answered: Counter,
    pub calls_failed: Counter,
    pub calls_active: Gauge,
    pub loops_detected: Counter,
    pub unknown_methods: Counter,
    pub transactions: Gauge,
    pub overload_refused: Counter,
}

impl SipStats {
    /// Appends the Prometheus text.
    pub fn render(&self, o: &mut String) {
        let counters: [(&str, &str, &Counter); 21] = [
            (
                "strowger_sip_messages_received_total",
                "SIP messages received.",
                &self.received,
            ),
            (
                "strowger_sip_messages_sent_total",
                "SIP messages sent.",
                &self.sent,
            ),
            (
                "strowger_sip_receive_dropped_total",
                "SIP messages dropped because the SIP task was behind.",
                &self.recv_dropped,
            ),
            (
                "strowger_sip_send_dropped_total",
                "SIP messages that could not be sent.",
                &self.send_dropped,
            ),
            (
                "strowger_sip_too_large_total",
                "SIP datagrams over sip.max_message_bytes.",
                &self.too_large,
            ),
            (
                "strowger_sip_parse_errors_total",
                "SIP messages that did not parse.",
                &self.parse_errors,
            ),
            (
                "strowger_sip_stream_errors_total",
                "SIP stream connections closed for bad framing.",
                &self.stream_errors,
            ),
            (
                "strowger_sip_connections_refused_total",
                "SIP connections refused at sip.max_connections.",
                &self.conn_refused,
            ),
            (
                "strowger_sip_rate_limited_total",
                "SIP requests dropped by the per-IP rate limit.",
                &self.rate_limited,
            ),
            (
                "strowger_sip_banned_drops_total",
                "SIP requests dropped from banned IPs.",
                &self.banned_drops,
            ),
            (
                "strowger_sip_bans_total",
                "IPs banned after repeated authentication failures.",
                &self.bans,
            ),
            (
                "strowger_sip_auth_challenges_total",
                "Digest challenges sent.",
                &self.auth_challenges,
            ),
            (
                "strowger_sip_auth_failures_total",
                "Failed digest authentications.",
                &self.auth_failures,
            ),
            (
                "strowger_sip_registrations_total",
                "Successful REGISTERs.",
                &self.registrations,
            ),
            (
                "strowger_sip_registration_failures_total",
                "REGISTERs refused after authentication (423, 400, 500).",
                &self.registration_failures,
            ),
            (
                "strowger_sip_calls_started_total",
                "INVITEs accepted for routing.",
                &self.calls_started,
            ),
            (
                "strowger_sip_calls_answered_total",
                "Calls answered.",
                &self.calls_answered,
            ),
            (
                "strowger_sip_calls_failed_total",
                "Calls that ended without an answer.",
                &self.calls_failed,
            ),
            (
                "strowger_sip_loops_detected_total",
                "Requests refused with 483 (Max-Forwards exhausted or a loop).",
                &self.loops_detected,
            ),
            (
                "strowger_sip_unknown_methods_total",
                "Requests refused with 501.",
                &self.unknown_methods,
            ),
            (
                "strowger_sip_overload_refused_total",
                "Requests answered 503 because sip.max_transactions was reached.",
                &self.overload_refused,
            ),
        ];
        for (name, help, c) in counters {
            let _ = writeln!(
                o,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                c.get()
            );
        }
        let gauges: [(&str, &str, &Gauge); 5] = [
            (
                "strowger_sip_connections",
                "Open SIP stream connections.",
                &self.connections,
            ),
            (
                "strowger_sip_banned_ips",
                "IPs banned now.",
                &self.banned_ips,
            ),
            (
                "strowger_sip_bindings",
                "Registered contacts.",
                &self.bindings,
            ),
            (
                "strowger_sip_calls_active",
                "SIP calls in progress.",
                &self.calls_active,
            ),
            (
                "strowger_sip_transactions",
                "SIP transactions in progress.",
                &self.transactions,
            ),
        ];
        for (name, help, g) in gauges {
            let _ = writeln!(
                o,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {}",
                g.get()
            );
        }
    }
}
