//! The sans-IO SFU core of Strowger: rooms, participants and media forwarding on top of str0m.
//!
//! # Run loop
//! The core owns no socket, no thread and no clock. Its shell feeds it:
//! - datagrams from the one shared WebRTC UDP port ([`Sfu::handle_receive`]),
//! - the passing of time ([`Sfu::handle_timeout`]),
//! - signalling commands (join, offers, answers, subscriptions, leave),
//!
//! and after each of these drains [`Sfu::poll_output`] until it returns [`Output::Timeout`]:
//! datagrams to send and events for the signalling layer come out in order.
//!
//! # Shape
//! Each participant has two str0m [`Rtc`]s, like LiveKit's two peer connections: a *publisher*
//! (the client offers, we receive its tracks) and a *subscriber* (we offer, we send everyone
//! else's tracks). Offers therefore never collide. Media from a publisher becomes work on a queue;
//! fan-out happens from that queue, never while another participant's `Rtc` is borrowed.
//!
//! The forwarder never decodes: it forwards frames (str0m depacketizes and repacketizes, and
//! handles NACK/RTX and TWCC), picks one simulcast layer per subscriber ([`layer`]), forwards and
//! throttles keyframe requests, and finds the active speakers from the audio-level header
//! extension ([`speaker`]).
//!
//! # Panics
//! Nothing that comes from the network panics this crate. A participant whose `Rtc` fails is
//! removed, with an event saying why; the rest of the room goes on.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod demux;
pub mod layer;
pub mod speaker;

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::bwe::{Bitrate, BweKind};
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::media::{Direction, KeyframeRequestKind, MediaData, MediaKind, MediaTime, Mid, Rid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Rtc};

use layer::{choose_layer, layer_index, FrameVerdict, LayerInfo, LayerQuery, LayerSwitch};
use speaker::SpeakerDetector;

/// Limits and behaviour of the SFU.
#[derive(Debug, Clone)]
pub struct SfuConfig {
    /// Addresses advertised as host candidates (the public address(es) of the shared UDP port).
    pub candidates: Vec<SocketAddr>,
    /// Participants in all rooms together.
    pub max_participants: usize,
    /// Rooms at once.
    pub max_rooms: usize,
    /// Defaults for rooms created on join.
    pub default_room: RoomOptions,
    /// Rooms are created by the first join (else only through [`Sfu::create_room`]).
    pub auto_create_rooms: bool,
    /// Published tracks per participant.
    pub max_tracks_per_participant: usize,
    /// m-lines accepted in one publisher offer.
    pub max_mlines_per_offer: usize,
    /// Smallest interval between two keyframe requests sent for one layer of one track.
    pub keyframe_request_interval: Duration,
    /// Initial bandwidth estimate of a subscriber connection, before TWCC has measured anything.
    pub initial_estimate_bps: u64,
    /// How often speakers are announced at most.
    pub speaker_interval: Duration,
    /// A participant whose media connection stays disconnected (no ICE consent from the client)
    /// this long is removed.
    pub media_timeout: Duration,
}

impl Default for SfuConfig {
    fn default() -> Self {
        SfuConfig {
            candidates: Vec::new(),
            max_participants: 2000,
            max_rooms: 1000,
            default_room: RoomOptions::default(),
            auto_create_rooms: true,
            max_tracks_per_participant: 6,
            max_mlines_per_offer: 8,
            keyframe_request_interval: Duration::from_millis(500),
            initial_estimate_bps: 600_000,
            speaker_interval: Duration::from_millis(250),
            media_timeout: Duration::from_secs(30),
        }
    }
}

/// Per-room settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomOptions {
    /// Participants at most.
    pub max_participants: usize,
    /// A room empty for this long is closed.
    pub empty_timeout: Duration,
}

impl Default for RoomOptions {
    fn default() -> Self {
        RoomOptions {
            max_participants: 50,
            empty_timeout: Duration::from_secs(300),
        }
    }
}

/// Defines a process-unique id shown to clients as `<prefix><n>` (and parsed back).
macro_rules! wire_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub u64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "{}"), self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = ();
            fn from_str(s: &str) -> Result<Self, ()> {
                s.strip_prefix($prefix)
                    .and_then(|n| n.parse().ok())
                    .map($name)
                    .ok_or(())
            }
        }
    };
}

wire_id!(
    /// A participant, unique for the life of the process.
    ParticipantId,
    "p_"
);
wire_id!(
    /// A published track, unique for the life of the process.
    TrackId,
    "t_"
);

/// What a track carries, as its publisher labelled it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// A microphone.
    Microphone,
    /// A camera.
    Camera,
    /// A shared screen or window (video).
    Screen,
    /// The audio of a shared tab or screen.
    ScreenAudio,
}

impl Source {
    /// The protocol name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Source::Microphone => "microphone",
            Source::Camera => "camera",
            Source::Screen => "screen",
            Source::ScreenAudio => "screen_audio",
        }
    }

    /// Parses a protocol name.
    pub fn parse(s: &str) -> Option<Source> {
        Some(match s {
            "microphone" => Source::Microphone,
            "camera" => Source::Camera,
            "screen" => Source::Screen,
            "screen_audio" => Source::ScreenAudio,
            _ => return None,
        })
    }

    fn kind(&self) -> MediaKind {
        match self {
            Source::Microphone | Source::ScreenAudio => MediaKind::Audio,
            Source::Camera | Source::Screen => MediaKind::Video,
        }
    }
}

/// Who a participant is and what it may do (from its token).
#[derive(Debug, Clone)]
pub struct ParticipantInfo {
    /// The user's identity.
    pub identity: String,
    /// Display name.
    pub name: String,
    /// May publish tracks.
    pub can_publish: bool,
    /// May receive others' tracks.
    pub can_subscribe: bool,
    /// May publish a screenshare.
    pub can_screenshare: bool,
}

/// The label a publisher gives one m-line of its offer.
#[derive(Debug, Clone)]
pub struct TrackLabel {
    /// The m-line's mid.
    pub mid: String,
    /// What it carries.
    pub source: Source,
    /// Capture width in pixels, when the client knows it (sizes the simulcast layers).
    pub width: Option<u32>,
}

/// A track as announced to clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackSummary {
    /// Its id.
    pub id: TrackId,
    /// Audio or video.
    pub kind: MediaKind,
    /// What it carries.
    pub source: Source,
    /// Muted by its publisher.
    pub muted: bool,
    /// Published with simulcast layers.
    pub simulcast: bool,
}

/// A participant as announced to clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParticipantSummary {
    /// Its id.
    pub id: ParticipantId,
    /// The user's identity.
    pub identity: String,
    /// Display name.
    pub name: String,
    /// Its published tracks.
    pub tracks: Vec<TrackSummary>,
}

/// One m-line of a subscriber offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferedTrack {
    /// The m-line's mid.
    pub mid: String,
    /// The track it carries.
    pub track: TrackId,
    /// Who publishes it.
    pub participant: ParticipantId,
    /// Audio or video.
    pub kind: MediaKind,
    /// What it carries.
    pub source: Source,
}

/// Something a participant's client must be told.
#[derive(Debug, Clone, PartialEq)]
pub enum Notice {
    /// Someone joined the room.
    ParticipantJoined(ParticipantSummary),
    /// Someone left the room.
    ParticipantLeft(ParticipantId),
    /// A track was published.
    TrackPublished(ParticipantId, TrackSummary),
    /// A track was unpublished.
    TrackUnpublished(ParticipantId, TrackId),
    /// A track was muted or unmuted.
    TrackMuted(ParticipantId, TrackId, bool),
    /// The speakers, loudest first.
    ActiveSpeakers(Vec<ParticipantId>),
    /// A new offer for the subscriber connection: answer with [`Sfu::subscribe_answer`].
    SubscribeOffer {
        /// The SDP.
        sdp: String,
        /// The active receive m-lines.
        tracks: Vec<OfferedTrack>,
    },
    /// The room was closed (deleted through the API).
    RoomClosed(String),
}

/// Why a participant left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaveReason {
    /// It asked to.
    Left,
    /// Its media connection failed or closed.
    MediaFailed,
    /// The room was closed.
    RoomClosed,
}

/// What the SFU tells its shell.
#[derive(Debug)]
pub enum SfuEvent {
    /// A message for one participant's client.
    Notify(ParticipantId, Notice),
    /// A participant is gone without having called [`Sfu::leave`].
    Removed(ParticipantId, LeaveReason),
    /// A room was created (on join or through the API).
    RoomCreated(String),
    /// A room was closed (empty timeout or API).
    RoomClosed(String),
}

/// Output of [`Sfu::poll_output`].
#[derive(Debug)]
pub enum Output {
    /// A datagram to send from the shared port.
    Transmit(str0m::net::Transmit),
    /// An event for the signalling layer.
    Event(SfuEvent),
    /// Nothing more now; call [`Sfu::handle_timeout`] at this instant at the latest.
    Timeout(Instant),
}

/// Why a command was refused. Each maps to one signalling error code ([`SfuError::code`]).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum SfuError {
    /// The room is full.
    #[error("room '{0}' is full ({1} participants)")]
    RoomFull(String, usize),
    /// No such room, and rooms are not created on join.
    #[error("room '{0}' does not exist")]
    NoSuchRoom(String),
    /// The room already exists.
    #[error("room '{0}' already exists")]
    RoomExists(String),
    /// No such participant.
    #[error("participant is not in a room")]
    NoSuchParticipant,
    /// No such track.
    #[error("no such track")]
    NoSuchTrack,
    /// A server-wide limit is reached.
    #[error("server limit reached: {0}")]
    Limit(&'static str),
    /// Not granted by the token.
    #[error("not allowed: {0}")]
    Forbidden(&'static str),
    /// Invalid SDP or a negotiation str0m refused.
    #[error("invalid SDP: {0}")]
    InvalidSdp(String),
    /// Valid, but not now.
    #[error("out of order: {0}")]
    OutOfOrder(&'static str),
    /// A bad argument.
    #[error("bad request: {0}")]
    BadRequest(String),
}

impl SfuError {
    /// The signalling error code (docs/protocol.md, "Errors").
    pub fn code(&self) -> &'static str {
        match self {
            SfuError::RoomFull(..) => "room_full",
            SfuError::NoSuchRoom(_) | SfuError::NoSuchParticipant | SfuError::NoSuchTrack => {
                "not_found"
            }
            SfuError::RoomExists(_) => "conflict",
            SfuError::Limit(_) => "unavailable",
            SfuError::Forbidden(_) => "forbidden",
            SfuError::InvalidSdp(_) => "invalid_sdp",
            SfuError::OutOfOrder(_) => "out_of_order",
            SfuError::BadRequest(_) => "bad_request",
        }
    }
}

/// Counters for `/metrics`, monotonic since start.
#[derive(Debug, Default, Clone)]
pub struct Counters {
    /// Datagrams received on the shared port.
    pub rx_packets: u64,
    /// Bytes received on the shared port.
    pub rx_bytes: u64,
    /// Datagrams sent from the shared port.
    pub tx_packets: u64,
    /// Bytes sent from the shared port.
    pub tx_bytes: u64,
    /// Datagrams that matched no session.
    pub rx_unmatched: u64,
    /// Media frames written to subscribers.
    pub forwarded_frames: u64,
    /// Media payload bytes written to subscribers.
    pub forwarded_bytes: u64,
    /// Keyframe requests sent to publishers.
    pub keyframe_requests: u64,
    /// Simulcast layer switches completed.
    pub layer_switches: u64,
}

/// A room's state, for the API and metrics.
#[derive(Debug, Clone)]
pub struct RoomSnapshot {
    /// Its name.
    pub name: String,
    /// Its options.
    pub options: RoomOptions,
    /// Who is in it.
    pub participants: Vec<ParticipantSummary>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Role {
    Publisher,
    Subscriber,
}

type ConnKey = (ParticipantId, Role);

struct Conn {
    rtc: Rtc,
    /// Since when ICE has been disconnected (the client stopped its consent checks).
    disconnected_since: Option<Instant>,
    timeout: Option<Instant>,
    ufrag: String,
    addrs: VecDeque<SocketAddr>,
}

/// Most addresses remembered per connection (ICE may try a few).
const MAX_ADDRS_PER_CONN: usize = 4;

struct Room {
    options: RoomOptions,
    participants: BTreeSet<ParticipantId>,
    speakers: SpeakerDetector<ParticipantId>,
    empty_since: Option<Instant>,
}

/// Bits counted per layer, per second window.
#[derive(Debug, Default, Clone, Copy)]
struct LayerMeter {
    last_seen: Option<Instant>,
    window_start: Option<Instant>,
    window_bytes: u64,
    bitrate_bps: u64,
}

impl LayerMeter {
    fn on_bytes(&mut self, n: usize, now: Instant) {
        self.last_seen = Some(now);
        let start = *self.window_start.get_or_insert(now);
        self.window_bytes += n as u64;
        let el = now.saturating_duration_since(start);
        if el >= Duration::from_millis(1000) {
            let bps = self.window_bytes * 8 * 1000 / el.as_millis().max(1) as u64;
            // Smooth so one big keyframe does not swing the choice.
            self.bitrate_bps = if self.bitrate_bps == 0 {
                bps
            } else {
                (self.bitrate_bps * 3 + bps) / 4
            };
            self.window_start = Some(now);
            self.window_bytes = 0;
        }
    }

    fn active(&self, now: Instant) -> bool {
        self.last_seen
            .is_some_and(|t| now.saturating_duration_since(t) < Duration::from_secs(2))
    }
}

struct Track {
    owner: ParticipantId,
    mid: Mid,
    kind: MediaKind,
    source: Source,
    muted: bool,
    simulcast: bool,
    width: Option<u32>,
    /// Per simulcast layer (index 0..3), or index 0 alone without simulcast.
    layers: [LayerMeter; 3],
    last_keyframe_request: [Option<Instant>; 3],
}

impl Track {
    fn summary(&self, id: TrackId) -> TrackSummary {
        TrackSummary {
            id,
            kind: self.kind,
            source: self.source,
            muted: self.muted,
            simulcast: self.simulcast,
        }
    }

    fn layer_infos(&self, now: Instant) -> [LayerInfo; 3] {
        let mut out = [LayerInfo::default(); 3];
        for (i, m) in self.layers.iter().enumerate() {
            out[i] = LayerInfo {
                active: m.active(now),
                bitrate_bps: m.bitrate_bps,
                // rids q, h, f are scaled down 4, 2 and 1 times.
                width: self.width.map(|w| w >> (2 - i)).unwrap_or(0),
            };
        }
        out
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OutState {
    ToOpen,
    Negotiating(Mid),
    Open(Mid),
    ToStop(Mid),
    NegotiatingStop(Mid),
}

impl OutState {
    fn mid(&self) -> Option<Mid> {
        match *self {
            OutState::ToOpen => None,
            OutState::Negotiating(m)
            | OutState::Open(m)
            | OutState::ToStop(m)
            | OutState::NegotiatingStop(m) => Some(m),
        }
    }
}

/// Keeps an outgoing stream's media time continuous when the source layer changes.
#[derive(Debug, Default, Clone, Copy)]
struct TimeRewrite {
    offset: i64,
    last_out: Option<(u64, Instant)>,
}

impl TimeRewrite {
    fn map(&mut self, t: MediaTime, network_time: Instant, switched: bool) -> MediaTime {
        let hz = i64::from(t.denom());
        let input = t.numer() as i64;
        if switched {
            if let Some((last, at)) = self.last_out {
                let gap = network_time.saturating_duration_since(at);
                let ticks = (gap.as_micros() as i64 * hz / 1_000_000).max(1);
                self.offset = last as i64 + ticks - input;
            }
        }
        let out = (input + self.offset).max(0) as u64;
        self.last_out = Some((out, network_time));
        MediaTime::new(out, t.frequency())
    }
}

struct TrackOut {
    track: TrackId,
    state: OutState,
    switch: LayerSwitch,
    max_width: u32,
    paused: bool,
    time: TimeRewrite,
}

struct Participant {
    room: String,
    info: ParticipantInfo,
    publisher: Conn,
    subscriber: Conn,
    tracks: Vec<TrackId>,
    labels: HashMap<String, TrackLabel>,
    outs: Vec<TrackOut>,
    sub_pending: Option<SdpPendingOffer>,
    sub_negotiate: bool,
    /// The last subscriber offer sent, to send again after a reconnect.
    last_offer: Option<Notice>,
    estimate_bps: u64,
    /// The bitrate TWCC was last told to probe towards.
    desired_bps: u64,
}

enum Work {
    Event(ConnKey, Event),
}

/// The SFU: every room and participant of one node (or one shard of it).
pub struct Sfu {
    cfg: SfuConfig,
    rooms: HashMap<String, Room>,
    parts: HashMap<ParticipantId, Participant>,
    tracks: HashMap<TrackId, Track>,
    by_ufrag: HashMap<String, ConnKey>,
    by_addr: HashMap<SocketAddr, ConnKey>,
    timers: BTreeSet<(Instant, ConnKey)>,
    work: VecDeque<Work>,
    out: VecDeque<Output>,
    next_id: u64,
    next_tick: Option<Instant>,
    counters: Counters,
    /// One DTLS certificate for every connection (its fingerprint is in each SDP). Generating one
    /// per connection costs a key generation per join, which a burst of joins would pay on the
    /// media path.
    dtls_cert: Option<str0m::config::DtlsCert>,
    /// The latest time the caller gave us.
    last_now: Option<Instant>,
    /// Participants whose subscriber connection may need a new offer.
    to_negotiate: BTreeSet<ParticipantId>,
}

/// How often rooms are looked after (speakers, layer choice, empty timeouts).
const TICK: Duration = Duration::from_millis(100);

impl Sfu {
    /// A new, empty SFU.
    pub fn new(cfg: SfuConfig) -> Self {
        Sfu {
            cfg,
            rooms: HashMap::new(),
            parts: HashMap::new(),
            tracks: HashMap::new(),
            by_ufrag: HashMap::new(),
            by_addr: HashMap::new(),
            timers: BTreeSet::new(),
            work: VecDeque::new(),
            out: VecDeque::new(),
            next_id: 1,
            next_tick: None,
            counters: Counters::default(),
            last_now: None,
            to_negotiate: BTreeSet::new(),
            dtls_cert: str0m::crypto::from_feature_flags()
                .dtls_provider
                .generate_certificate(),
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &SfuConfig {
        &self.cfg
    }

    /// Counters since start.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Rooms, participants and tracks now.
    pub fn gauges(&self) -> (usize, usize, usize) {
        (self.rooms.len(), self.parts.len(), self.tracks.len())
    }

    /// Participants per room, for metrics.
    pub fn room_sizes(&self) -> Vec<(String, usize)> {
        self.rooms
            .iter()
            .map(|(n, r)| (n.clone(), r.participants.len()))
            .collect()
    }

    fn next_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    // ------------------------------------------------------------------ rooms

    /// Creates a room (REST API). Fails if it exists or the room limit is reached.
    pub fn create_room(
        &mut self,
        now: Instant,
        name: &str,
        options: RoomOptions,
    ) -> Result<(), SfuError> {
        validate_room_name(name)?;
        if self.rooms.contains_key(name) {
            return Err(SfuError::RoomExists(name.to_string()));
        }
        if options.max_participants == 0 {
            return Err(SfuError::BadRequest(
                "max_participants must be at least 1".into(),
            ));
        }
        self.insert_room(now, name, options)
    }

    fn insert_room(
        &mut self,
        now: Instant,
        name: &str,
        options: RoomOptions,
    ) -> Result<(), SfuError> {
        if self.rooms.len() >= self.cfg.max_rooms {
            return Err(SfuError::Limit("rooms"));
        }
        self.rooms.insert(
            name.to_string(),
            Room {
                options,
                participants: BTreeSet::new(),
                speakers: SpeakerDetector::new(self.cfg.speaker_interval),
                empty_since: Some(now),
            },
        );
        self.out
            .push_back(Output::Event(SfuEvent::RoomCreated(name.to_string())));
        self.arm_tick(now);
        Ok(())
    }

    /// Closes a room: its participants are removed ([`SfuEvent::Removed`] with
    /// [`LeaveReason::RoomClosed`]).
    pub fn close_room(&mut self, now: Instant, name: &str) -> Result<(), SfuError> {
        let room = self
            .rooms
            .get(name)
            .ok_or_else(|| SfuError::NoSuchRoom(name.to_string()))?;
        let members: Vec<ParticipantId> = room.participants.iter().copied().collect();
        for p in members {
            self.notify(p, Notice::RoomClosed(name.to_string()));
            self.remove_participant(now, p);
            self.out
                .push_back(Output::Event(SfuEvent::Removed(p, LeaveReason::RoomClosed)));
        }
        self.rooms.remove(name);
        self.out
            .push_back(Output::Event(SfuEvent::RoomClosed(name.to_string())));
        self.flush(now);
        Ok(())
    }

    /// One room's state.
    pub fn room(&self, name: &str) -> Option<RoomSnapshot> {
        let r = self.rooms.get(name)?;
        Some(RoomSnapshot {
            name: name.to_string(),
            options: r.options.clone(),
            participants: r
                .participants
                .iter()
                .filter_map(|p| self.summary(*p))
                .collect(),
        })
    }

    /// All rooms' names, sorted.
    pub fn room_names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.rooms.keys().cloned().collect();
        v.sort();
        v
    }

    fn summary(&self, id: ParticipantId) -> Option<ParticipantSummary> {
        let p = self.parts.get(&id)?;
        Some(ParticipantSummary {
            id,
            identity: p.info.identity.clone(),
            name: p.info.name.clone(),
            tracks: p
                .tracks
                .iter()
                .filter_map(|t| self.tracks.get(t).map(|tr| tr.summary(*t)))
                .collect(),
        })
    }

    // ------------------------------------------------------------ participants

    /// Adds a participant to a room (created on demand if allowed). Returns its id and the
    /// others already there.
    pub fn join(
        &mut self,
        now: Instant,
        room: &str,
        info: ParticipantInfo,
    ) -> Result<(ParticipantId, Vec<ParticipantSummary>), SfuError> {
        validate_room_name(room)?;
        if self.parts.len() >= self.cfg.max_participants {
            return Err(SfuError::Limit("participants"));
        }
        if !self.rooms.contains_key(room) {
            if !self.cfg.auto_create_rooms {
                return Err(SfuError::NoSuchRoom(room.to_string()));
            }
            self.insert_room(now, room, self.cfg.default_room.clone())?;
        }
        // Unwrap: inserted just above if it was missing.
        let r = self.rooms.get(room).expect("room exists");
        if r.participants.len() >= r.options.max_participants {
            return Err(SfuError::RoomFull(
                room.to_string(),
                r.options.max_participants,
            ));
        }
        let others: Vec<ParticipantId> = r.participants.iter().copied().collect();

        let id = ParticipantId(self.next_id());
        let publisher = self.new_conn(now, false);
        let subscriber = self.new_conn(now, true);
        self.by_ufrag
            .insert(publisher.ufrag.clone(), (id, Role::Publisher));
        self.by_ufrag
            .insert(subscriber.ufrag.clone(), (id, Role::Subscriber));
        let can_subscribe = info.can_subscribe;
        self.parts.insert(
            id,
            Participant {
                room: room.to_string(),
                info,
                publisher,
                subscriber,
                tracks: Vec::new(),
                labels: HashMap::new(),
                outs: Vec::new(),
                sub_pending: None,
                sub_negotiate: false,
                last_offer: None,
                estimate_bps: self.cfg.initial_estimate_bps,
                desired_bps: 0,
            },
        );
        let r = self.rooms.get_mut(room).expect("room exists");
        r.participants.insert(id);
        r.empty_since = None;

        // Subscribe the newcomer to everything already published.
        if can_subscribe {
            let existing: Vec<TrackId> = others
                .iter()
                .filter_map(|o| self.parts.get(o))
                .flat_map(|p| p.tracks.iter().copied())
                .collect();
            let p = self.parts.get_mut(&id).expect("just inserted");
            for t in existing {
                p.outs.push(new_track_out(t));
            }
            p.sub_negotiate = !p.outs.is_empty();
            self.to_negotiate.insert(id);
        }
        let me = self.summary(id).expect("just inserted");
        let snapshot: Vec<ParticipantSummary> =
            others.iter().filter_map(|o| self.summary(*o)).collect();
        for o in &others {
            self.notify(*o, Notice::ParticipantJoined(me.clone()));
        }
        self.drain(now, (id, Role::Publisher));
        self.drain(now, (id, Role::Subscriber));
        self.flush(now);
        Ok((id, snapshot))
    }

    fn new_conn(&mut self, now: Instant, subscriber: bool) -> Conn {
        let mut b = Rtc::builder()
            .set_ice_lite(true)
            .enable_bwe(subscriber.then(|| Bitrate::bps(self.cfg.initial_estimate_bps)));
        if let Some(cert) = &self.dtls_cert {
            b = b.set_dtls_cert(cert.clone());
        }
        let mut rtc = b.build(now);
        for addr in &self.cfg.candidates {
            match Candidate::host(*addr, "udp") {
                Ok(c) => {
                    rtc.add_local_candidate(c);
                }
                Err(e) => tracing::warn!(%addr, error = ?e, "unusable candidate address"),
            }
        }
        let ufrag = rtc.direct_api().local_ice_credentials().ufrag;
        Conn {
            rtc,
            disconnected_since: None,
            timeout: None,
            ufrag,
            addrs: VecDeque::new(),
        }
    }

    /// Removes a participant that asked to leave. Others are told.
    pub fn leave(&mut self, now: Instant, id: ParticipantId) -> Result<(), SfuError> {
        if !self.parts.contains_key(&id) {
            return Err(SfuError::NoSuchParticipant);
        }
        self.remove_participant(now, id);
        self.flush(now);
        Ok(())
    }

    fn remove_participant(&mut self, now: Instant, id: ParticipantId) {
        let Some(mut p) = self.parts.remove(&id) else {
            return;
        };
        for conn in [&mut p.publisher, &mut p.subscriber] {
            conn.rtc.disconnect();
            self.by_ufrag.remove(&conn.ufrag);
            for a in conn.addrs.drain(..) {
                self.by_addr.remove(&a);
            }
            if let Some(t) = conn.timeout {
                // Both roles may be armed; remove whichever matches.
                self.timers.remove(&(t, (id, Role::Publisher)));
                self.timers.remove(&(t, (id, Role::Subscriber)));
            }
        }
        for t in &p.tracks {
            self.unpublish_track(*t, &p.room);
        }
        if let Some(r) = self.rooms.get_mut(&p.room) {
            r.participants.remove(&id);
            r.speakers.remove(id);
            if r.participants.is_empty() {
                r.empty_since = Some(now);
            }
            let others: Vec<ParticipantId> = r.participants.iter().copied().collect();
            for o in others {
                self.notify(o, Notice::ParticipantLeft(id));
            }
        }
    }

    /// Removes a track of `room`: its subscribers stop their m-line.
    fn unpublish_track(&mut self, t: TrackId, room: &str) {
        let Some(track) = self.tracks.remove(&t) else {
            return;
        };
        if let Some(p) = self.parts.get_mut(&track.owner) {
            p.tracks.retain(|x| *x != t);
        }
        let members: Vec<ParticipantId> = self
            .rooms
            .get(room)
            .map(|r| r.participants.iter().copied().collect())
            .unwrap_or_default();
        for m in members {
            if m == track.owner {
                continue;
            }
            if let Some(p) = self.parts.get_mut(&m) {
                let mut changed = false;
                p.outs.retain_mut(|o| {
                    if o.track != t {
                        return true;
                    }
                    changed = true;
                    match o.state {
                        OutState::ToOpen => false,
                        OutState::Negotiating(mid) | OutState::Open(mid) => {
                            o.state = OutState::ToStop(mid);
                            true
                        }
                        _ => true,
                    }
                });
                if changed {
                    p.sub_negotiate = true;
                    self.to_negotiate.insert(m);
                }
            }
            self.notify(m, Notice::TrackUnpublished(track.owner, t));
        }
    }

    // ------------------------------------------------------------- publishing

    /// A publisher offer: returns the SDP answer and the participant's published tracks by mid.
    /// `labels` say what each m-line carries.
    pub fn publish_offer(
        &mut self,
        now: Instant,
        id: ParticipantId,
        sdp: &str,
        labels: Vec<TrackLabel>,
    ) -> Result<(String, Vec<(String, TrackSummary)>), SfuError> {
        let max_mlines = self.cfg.max_mlines_per_offer;
        let max_tracks = self.cfg.max_tracks_per_participant;
        let p = self.parts.get_mut(&id).ok_or(SfuError::NoSuchParticipant)?;
        if !p.info.can_publish {
            return Err(SfuError::Forbidden("publish"));
        }
        let mlines = sdp.lines().filter(|l| l.starts_with("m=")).count();
        if mlines > max_mlines {
            return Err(SfuError::InvalidSdp(format!(
                "{mlines} m-lines, at most {max_mlines} allowed"
            )));
        }
        if labels
            .iter()
            .any(|l| matches!(l.source, Source::Screen | Source::ScreenAudio))
            && !p.info.can_screenshare
        {
            return Err(SfuError::Forbidden("screenshare"));
        }
        let offer =
            SdpOffer::from_sdp_string(sdp).map_err(|e| SfuError::InvalidSdp(e.to_string()))?;
        for l in labels {
            if l.mid.len() > 32 {
                return Err(SfuError::BadRequest("mid too long".into()));
            }
            p.labels.insert(l.mid.clone(), l);
        }
        if p.labels.len() > max_mlines {
            p.labels.clear();
            return Err(SfuError::BadRequest("too many track labels".into()));
        }
        let _ = max_tracks; // enforced when MediaAdded arrives.
        let answer = match p.publisher.rtc.sdp_api().accept_offer(offer) {
            Ok(a) => a,
            Err(e) => return Err(SfuError::InvalidSdp(e.to_string())),
        };
        let ufrag = p.publisher.rtc.direct_api().local_ice_credentials().ufrag;
        if ufrag != p.publisher.ufrag {
            self.by_ufrag.remove(&p.publisher.ufrag);
            p.publisher.ufrag = ufrag.clone();
            self.by_ufrag.insert(ufrag, (id, Role::Publisher));
        }
        // Register the offered tracks now (str0m announces MediaAdded only once SRTP is up), so
        // the answer can name them and subscribers can negotiate while ICE/DTLS completes.
        let offered: Vec<(Mid, MediaKind, Direction, bool)> = sdp
            .lines()
            .filter_map(|l| l.trim_end().strip_prefix("a=mid:"))
            .filter_map(|m| {
                let p = self.parts.get(&id)?;
                let media = p.publisher.rtc.media(Mid::from(m))?;
                let simulcast =
                    matches!(media.rids_rx(), str0m::media::Rids::Specific(v) if v.len() > 1);
                Some((media.mid(), media.kind(), media.direction(), simulcast))
            })
            .collect();
        for (mid, kind, dir, simulcast) in offered {
            self.add_track(now, id, mid, kind, dir, simulcast);
        }
        self.drain(now, (id, Role::Publisher));
        self.process(now);
        self.reap_stopped_tracks(id);
        self.flush(now);
        Ok((answer.to_sdp_string(), self.own_tracks(id)))
    }

    /// A participant's published tracks with their mids.
    fn own_tracks(&self, id: ParticipantId) -> Vec<(String, TrackSummary)> {
        let Some(p) = self.parts.get(&id) else {
            return Vec::new();
        };
        p.tracks
            .iter()
            .filter_map(|t| {
                let tr = self.tracks.get(t)?;
                Some((tr.mid.to_string(), tr.summary(*t)))
            })
            .collect()
    }

    /// After a client reconnected: the room as it is now (others, and the subscriber offer still
    /// waiting for an answer, sent again).
    pub fn resync(&mut self, id: ParticipantId) -> Result<Vec<ParticipantSummary>, SfuError> {
        let p = self.parts.get(&id).ok_or(SfuError::NoSuchParticipant)?;
        let room = self.rooms.get(&p.room).ok_or(SfuError::NoSuchParticipant)?;
        let others: Vec<ParticipantSummary> = room
            .participants
            .iter()
            .filter(|o| **o != id)
            .filter_map(|o| self.summary(*o))
            .collect();
        if let Some(offer) = p.last_offer.clone() {
            if p.sub_pending.is_some() {
                self.notify(id, offer);
            }
        }
        Ok(others)
    }

    /// Tracks whose m-line the publisher stopped (or set to not send) are unpublished.
    fn reap_stopped_tracks(&mut self, id: ParticipantId) {
        let Some(p) = self.parts.get(&id) else {
            return;
        };
        let gone: Vec<TrackId> = p
            .tracks
            .iter()
            .copied()
            .filter(|t| {
                let Some(track) = self.tracks.get(t) else {
                    return true;
                };
                match p.publisher.rtc.media(track.mid) {
                    Some(m) => !m.direction().is_receiving(),
                    None => true,
                }
            })
            .collect();
        let room = p.room.clone();
        for t in gone {
            self.unpublish_track(t, &room);
        }
    }

    /// Marks a published source muted or not.
    pub fn set_muted(
        &mut self,
        id: ParticipantId,
        source: Source,
        muted: bool,
    ) -> Result<(), SfuError> {
        let p = self.parts.get(&id).ok_or(SfuError::NoSuchParticipant)?;
        let room = p.room.clone();
        let tid = p
            .tracks
            .iter()
            .copied()
            .find(|t| self.tracks.get(t).is_some_and(|tr| tr.source == source))
            .ok_or(SfuError::NoSuchTrack)?;
        let tr = self.tracks.get_mut(&tid).expect("found above");
        if tr.muted == muted {
            return Ok(());
        }
        tr.muted = muted;
        let members: Vec<ParticipantId> = self
            .rooms
            .get(&room)
            .map(|r| r.participants.iter().copied().collect())
            .unwrap_or_default();
        for m in members {
            if m != id {
                self.notify(m, Notice::TrackMuted(id, tid, muted));
            }
        }
        Ok(())
    }

    // ------------------------------------------------------------ subscribing

    /// The client's answer to the last [`Notice::SubscribeOffer`].
    pub fn subscribe_answer(
        &mut self,
        now: Instant,
        id: ParticipantId,
        sdp: &str,
    ) -> Result<(), SfuError> {
        let p = self.parts.get_mut(&id).ok_or(SfuError::NoSuchParticipant)?;
        let Some(pending) = p.sub_pending.take() else {
            return Err(SfuError::OutOfOrder("no subscribe offer is pending"));
        };
        let answer = match SdpAnswer::from_sdp_string(sdp) {
            Ok(a) => a,
            Err(e) => {
                p.sub_pending = Some(pending);
                return Err(SfuError::InvalidSdp(e.to_string()));
            }
        };
        if let Err(e) = p.subscriber.rtc.sdp_api().accept_answer(pending, answer) {
            // The pending offer is consumed; offer again from the current state.
            for o in &mut p.outs {
                match o.state {
                    OutState::Negotiating(_) => o.state = OutState::ToOpen,
                    OutState::NegotiatingStop(m) => o.state = OutState::ToStop(m),
                    _ => {}
                }
            }
            p.sub_negotiate = true;
            self.to_negotiate.insert(id);
            self.drain(now, (id, Role::Subscriber));
            self.flush(now);
            return Err(SfuError::InvalidSdp(e.to_string()));
        }
        for o in &mut p.outs {
            if let OutState::Negotiating(m) = o.state {
                o.state = OutState::Open(m);
            }
        }
        p.outs
            .retain(|o| !matches!(o.state, OutState::NegotiatingStop(_)));
        // Changes queued while this offer was in flight go out now.
        self.to_negotiate.insert(id);
        // New video m-lines need a keyframe from their source.
        self.drain(now, (id, Role::Subscriber));
        self.allocate(now, id);
        self.flush(now);
        Ok(())
    }

    /// The largest size a subscriber wants for a track, or a pause.
    pub fn set_subscription(
        &mut self,
        now: Instant,
        id: ParticipantId,
        track: TrackId,
        max_width: Option<u32>,
        paused: bool,
    ) -> Result<(), SfuError> {
        let p = self.parts.get_mut(&id).ok_or(SfuError::NoSuchParticipant)?;
        let o = p
            .outs
            .iter_mut()
            .find(|o| o.track == track)
            .ok_or(SfuError::NoSuchTrack)?;
        o.max_width = max_width.unwrap_or(u32::MAX).max(1);
        o.paused = paused;
        self.allocate(now, id);
        self.flush(now);
        Ok(())
    }

    /// Sends the next subscriber offer if something changed and none is in flight.
    fn negotiate(&mut self, now: Instant, id: ParticipantId) {
        let Some(p) = self.parts.get_mut(&id) else {
            return;
        };
        if !p.sub_negotiate || p.sub_pending.is_some() {
            return;
        }
        p.sub_negotiate = false;
        let mut api = p.subscriber.rtc.sdp_api();
        for o in &mut p.outs {
            match o.state {
                OutState::ToOpen => {
                    let Some(t) = self.tracks.get(&o.track) else {
                        continue;
                    };
                    let mid = api.add_media(
                        t.kind,
                        Direction::SendOnly,
                        Some(t.owner.to_string()),
                        Some(o.track.to_string()),
                        None,
                    );
                    o.state = OutState::Negotiating(mid);
                }
                OutState::ToStop(mid) => {
                    api.stop_media(mid);
                    o.state = OutState::NegotiatingStop(mid);
                }
                _ => {}
            }
        }
        if !api.has_changes() {
            return;
        }
        let Some((offer, pending)) = api.apply() else {
            return;
        };
        p.sub_pending = Some(pending);
        let tracks: Vec<OfferedTrack> = p
            .outs
            .iter()
            .filter_map(|o| {
                let mid = match o.state {
                    OutState::Negotiating(m) | OutState::Open(m) => m,
                    _ => return None,
                };
                let t = self.tracks.get(&o.track)?;
                Some(OfferedTrack {
                    mid: mid.to_string(),
                    track: o.track,
                    participant: t.owner,
                    kind: t.kind,
                    source: t.source,
                })
            })
            .collect();
        let notice = Notice::SubscribeOffer {
            sdp: offer.to_sdp_string(),
            tracks,
        };
        p.last_offer = Some(notice.clone());
        self.notify(id, notice);
        self.drain(now, (id, Role::Subscriber));
    }

    // ---------------------------------------------------------------- network

    /// A datagram arrived on the shared port.
    pub fn handle_receive(
        &mut self,
        now: Instant,
        source: SocketAddr,
        destination: SocketAddr,
        buf: &[u8],
    ) {
        self.last_now = Some(now);
        self.counters.rx_packets += 1;
        self.counters.rx_bytes += buf.len() as u64;
        let stun_key = demux::stun_local_ufrag(buf).and_then(|u| self.by_ufrag.get(u).copied());
        let key = stun_key.or_else(|| self.by_addr.get(&source).copied());
        let Some(key) = key else {
            self.counters.rx_unmatched += 1;
            return;
        };
        let Ok(contents) = buf.try_into() else {
            self.counters.rx_unmatched += 1;
            return;
        };
        let input = Input::Receive(
            now,
            Receive {
                proto: Protocol::Udp,
                source,
                destination,
                contents,
            },
        );
        let Some(conn) = self.conn_mut(key) else {
            return;
        };
        if let Err(e) = conn.rtc.handle_input(input) {
            tracing::debug!(participant = %key.0, role = ?key.1, error = %e, "input refused");
        }
        let before = self.out.len();
        self.drain(now, key);
        // A STUN check names its session in clear text: the address is only learnt once str0m
        // has verified the check (MESSAGE-INTEGRITY) and answered it, so a forged check can
        // neither steal nor evict a participant's address.
        if stun_key.is_some() {
            let answered = self
                .out
                .iter()
                .skip(before)
                .any(|o| matches!(o, Output::Transmit(t) if t.destination == source));
            if answered {
                self.remember_addr(key, source);
            }
        }
        self.process(now);
        self.flush(now);
    }

    fn remember_addr(&mut self, key: ConnKey, addr: SocketAddr) {
        if self.by_addr.get(&addr) == Some(&key) {
            return;
        }
        let Some(conn) = self.conn_mut(key) else {
            return;
        };
        conn.addrs.push_back(addr);
        let evicted = if conn.addrs.len() > MAX_ADDRS_PER_CONN {
            conn.addrs.pop_front()
        } else {
            None
        };
        if let Some(old) = evicted {
            if self.by_addr.get(&old) == Some(&key) {
                self.by_addr.remove(&old);
            }
        }
        // An address moving between sessions (a reused port) belongs to the newest.
        if let Some(prev) = self.by_addr.insert(addr, key) {
            if prev != key {
                if let Some(c) = self.conn_mut(prev) {
                    c.addrs.retain(|a| *a != addr);
                }
            }
        }
    }

    /// Time passed: drive every connection whose timer is due, and the rooms.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.last_now = Some(now);
        // Each due connection runs once per call: a connection may re-arm at `now` itself
        // (str0m's delay-based BWE does with a zero RTT), and looping until no timer is due would
        // then never end.
        let mut due = Vec::new();
        while let Some(&(t, key)) = self.timers.first() {
            if t > now {
                break;
            }
            self.timers.remove(&(t, key));
            due.push(key);
        }
        for key in due {
            if let Some(conn) = self.conn_mut(key) {
                conn.timeout = None;
                if let Err(e) = conn.rtc.handle_input(Input::Timeout(now)) {
                    tracing::debug!(participant = %key.0, error = %e, "timeout refused");
                }
                self.drain(now, key);
            }
        }
        if self.next_tick.is_some_and(|t| t <= now) {
            self.next_tick = None;
            self.tick(now);
        }
        self.process(now);
        self.flush(now);
    }

    /// The next output: datagrams and events first, then the next deadline.
    pub fn poll_output(&mut self) -> Output {
        if let Some(o) = self.out.pop_front() {
            if let Output::Transmit(t) = &o {
                self.counters.tx_packets += 1;
                self.counters.tx_bytes += t.contents.len() as u64;
            }
            return o;
        }
        let conn_t = self.timers.first().map(|(t, _)| *t);
        let t = match (conn_t, self.next_tick) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) => a,
            (None, Some(b)) => b,
            // Nothing to do: come back in a while (on the caller's clock, not ours).
            (None, None) => self.last_now.unwrap_or_else(Instant::now) + Duration::from_secs(1),
        };
        Output::Timeout(t)
    }

    fn conn_mut(&mut self, (id, role): ConnKey) -> Option<&mut Conn> {
        let p = self.parts.get_mut(&id)?;
        Some(match role {
            Role::Publisher => &mut p.publisher,
            Role::Subscriber => &mut p.subscriber,
        })
    }

    /// Polls one connection until it has nothing more: transmits go out, events to the queue.
    fn drain(&mut self, now: Instant, key: ConnKey) {
        let Some(p) = self.parts.get_mut(&key.0) else {
            return;
        };
        let conn = match key.1 {
            Role::Publisher => &mut p.publisher,
            Role::Subscriber => &mut p.subscriber,
        };
        // Bounded: str0m returns Timeout once it has nothing; the bound guards against a bug.
        for _ in 0..100_000 {
            match conn.rtc.poll_output() {
                Ok(str0m::Output::Transmit(t)) => self.out.push_back(Output::Transmit(t)),
                Ok(str0m::Output::Event(e)) => self.work.push_back(Work::Event(key, e)),
                Ok(str0m::Output::Timeout(t)) => {
                    // At most one wake-up per millisecond per connection: str0m's delay-based
                    // BWE asks for `now + rtt`, which on loopback is a few microseconds away.
                    let t = t.max(now + Duration::from_millis(1));
                    if conn.timeout != Some(t) {
                        if let Some(old) = conn.timeout.take() {
                            self.timers.remove(&(old, key));
                        }
                        conn.timeout = Some(t);
                        self.timers.insert((t, key));
                    }
                    break;
                }
                Err(e) => {
                    tracing::warn!(participant = %key.0, role = ?key.1, error = %e, "media connection failed");
                    conn.rtc.disconnect();
                    break;
                }
            }
        }
        if !conn.rtc.is_alive() {
            self.work.push_back(Work::Event(
                key,
                Event::IceConnectionStateChange(IceConnectionState::Disconnected),
            ));
        }
    }

    /// Handles queued events until none is left.
    fn process(&mut self, now: Instant) {
        // Each event may queue more (a write drains another connection); media fan-out never
        // creates new media events, so this ends.
        while let Some(Work::Event(key, ev)) = self.work.pop_front() {
            self.handle_event(now, key, ev);
        }
    }

    fn handle_event(&mut self, now: Instant, key: ConnKey, ev: Event) {
        let (id, role) = key;
        match ev {
            Event::IceConnectionStateChange(s) => {
                tracing::debug!(participant = %id, ?role, state = ?s, "ice state");
                if let Some(c) = self.conn_mut(key) {
                    match s {
                        IceConnectionState::Disconnected => {
                            c.disconnected_since.get_or_insert(now);
                        }
                        _ => c.disconnected_since = None,
                    }
                }
                let dead = self
                    .conn_mut(key)
                    .map(|c| !c.rtc.is_alive())
                    .unwrap_or(false);
                if dead && self.parts.contains_key(&id) {
                    tracing::info!(participant = %id, ?role, "media connection closed; removing participant");
                    self.remove_participant(now, id);
                    self.out.push_back(Output::Event(SfuEvent::Removed(
                        id,
                        LeaveReason::MediaFailed,
                    )));
                }
            }
            Event::Connected => {
                tracing::info!(participant = %id, ?role, "media connected");
                if role == Role::Subscriber {
                    self.request_keyframes_for(now, id);
                }
            }
            Event::MediaAdded(m) if role == Role::Publisher => self.on_media_added(now, id, m),
            Event::MediaData(d) if role == Role::Publisher => self.on_media_data(now, id, d),
            Event::MediaChanged(_) if role == Role::Publisher => self.reap_stopped_tracks(id),
            Event::KeyframeRequest(r) if role == Role::Subscriber => {
                self.on_subscriber_keyframe_request(now, id, r.mid)
            }
            Event::EgressBitrateEstimate(BweKind::Twcc { estimate, .. })
                if role == Role::Subscriber =>
            {
                if let Some(p) = self.parts.get_mut(&id) {
                    p.estimate_bps = estimate.as_u64();
                }
            }
            _ => {}
        }
    }

    fn on_media_added(&mut self, now: Instant, id: ParticipantId, m: str0m::media::MediaAdded) {
        let simulcast = m.simulcast.as_ref().is_some_and(|s| s.recv.len() > 1);
        self.add_track(now, id, m.mid, m.kind, m.direction, simulcast);
    }

    /// Registers a published m-line as a track (once), announces it and subscribes the room.
    fn add_track(
        &mut self,
        now: Instant,
        id: ParticipantId,
        mid: Mid,
        kind: MediaKind,
        direction: Direction,
        simulcast: bool,
    ) {
        if !direction.is_receiving() {
            return;
        }
        let known = self.parts.get(&id).is_some_and(|p| {
            p.tracks
                .iter()
                .any(|t| self.tracks.get(t).is_some_and(|tr| tr.mid == mid))
        });
        if known {
            return;
        }
        let max_tracks = self.cfg.max_tracks_per_participant;
        let track_id = TrackId(self.next_id());
        let Some(p) = self.parts.get_mut(&id) else {
            return;
        };
        if p.tracks.len() >= max_tracks {
            tracing::warn!(participant = %id, "track limit reached; m-line ignored");
            return;
        }
        let label = p.labels.remove(&mid.to_string());
        let default = if kind == MediaKind::Audio {
            Source::Microphone
        } else {
            Source::Camera
        };
        let mut source = label.as_ref().map(|l| l.source).unwrap_or(default);
        if source.kind() != kind {
            source = match (source, kind) {
                (Source::Screen, MediaKind::Audio) => Source::ScreenAudio,
                _ => default,
            };
        }
        let track = Track {
            owner: id,
            mid,
            kind,
            source,
            muted: false,
            simulcast,
            width: label.and_then(|l| l.width),
            layers: [LayerMeter::default(); 3],
            last_keyframe_request: [None; 3],
        };
        let summary = track.summary(track_id);
        p.tracks.push(track_id);
        let room = p.room.clone();
        self.tracks.insert(track_id, track);
        tracing::info!(participant = %id, track = %track_id, source = source.as_str(), simulcast, "track published");
        let members: Vec<ParticipantId> = self
            .rooms
            .get(&room)
            .map(|r| r.participants.iter().copied().collect())
            .unwrap_or_default();
        for mem in members {
            if mem == id {
                continue;
            }
            self.notify(mem, Notice::TrackPublished(id, summary.clone()));
            if let Some(o) = self.parts.get_mut(&mem) {
                if o.info.can_subscribe {
                    o.outs.push(new_track_out(track_id));
                    o.sub_negotiate = true;
                    self.to_negotiate.insert(mem);
                }
            }
        }
        let _ = now;
    }

    fn on_media_data(&mut self, now: Instant, id: ParticipantId, d: MediaData) {
        let Some(p) = self.parts.get(&id) else {
            return;
        };
        let Some(tid) = p
            .tracks
            .iter()
            .copied()
            .find(|t| self.tracks.get(t).is_some_and(|tr| tr.mid == d.mid))
        else {
            return;
        };
        let room = p.room.clone();
        let layer = match &d.rid {
            Some(r) => match layer_index(r) {
                Some(i) => i,
                None => return,
            },
            None => 0,
        };
        let track = self.tracks.get_mut(&tid).expect("found above");
        track.layers[layer].on_bytes(d.data.len(), now);
        let kind = track.kind;
        let simulcast = d.rid.is_some();
        if kind == MediaKind::Audio {
            if let (Some(level), Some(r)) = (d.ext_vals.audio_level, self.rooms.get_mut(&room)) {
                if !self.tracks.get(&tid).is_some_and(|t| t.muted) {
                    r.speakers.on_level(id, level, now);
                }
            }
        }
        if !d.contiguous && kind == MediaKind::Video {
            self.request_keyframe(now, tid, d.rid);
        }
        let keyframe = kind == MediaKind::Video && d.is_keyframe();
        let members: Vec<ParticipantId> = self
            .rooms
            .get(&room)
            .map(|r| r.participants.iter().copied().collect())
            .unwrap_or_default();
        for m in members {
            if m == id {
                continue;
            }
            self.forward_to(now, m, tid, layer, simulcast, keyframe, &d);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn forward_to(
        &mut self,
        now: Instant,
        sub: ParticipantId,
        tid: TrackId,
        layer: usize,
        simulcast: bool,
        keyframe: bool,
        d: &MediaData,
    ) {
        let Some(p) = self.parts.get_mut(&sub) else {
            return;
        };
        let Some(o) = p.outs.iter_mut().find(|o| o.track == tid) else {
            return;
        };
        let OutState::Open(mid) = o.state else {
            return;
        };
        if o.paused {
            return;
        }
        let switched = if simulcast {
            match o.switch.on_frame(layer, keyframe) {
                FrameVerdict::Drop => return,
                FrameVerdict::Forward => false,
                FrameVerdict::ForwardSwitched => {
                    self.counters.layer_switches += 1;
                    true
                }
            }
        } else {
            false
        };
        let time = o.time.map(d.time, d.network_time, switched);
        let Some(writer) = p.subscriber.rtc.writer(mid) else {
            return;
        };
        let Some(pt) = writer.match_params(d.params) else {
            return;
        };
        match writer.write(pt, d.network_time, time, d.data.clone()) {
            Ok(()) => {
                self.counters.forwarded_frames += 1;
                self.counters.forwarded_bytes += d.data.len() as u64;
            }
            Err(e) => tracing::debug!(participant = %sub, error = %e, "write refused"),
        }
        // str0m requires draining after every mutation.
        self.drain(now, (sub, Role::Subscriber));
    }

    /// Asks a publisher for a keyframe of one layer, at most once per interval.
    fn request_keyframe(&mut self, now: Instant, tid: TrackId, rid: Option<Rid>) {
        let interval = self.cfg.keyframe_request_interval;
        let Some(t) = self.tracks.get_mut(&tid) else {
            return;
        };
        if t.kind != MediaKind::Video {
            return;
        }
        let li = rid.as_ref().and_then(layer_index).unwrap_or(0);
        if t.last_keyframe_request[li]
            .is_some_and(|last| now.saturating_duration_since(last) < interval)
        {
            return;
        }
        t.last_keyframe_request[li] = Some(now);
        let (owner, mid) = (t.owner, t.mid);
        let Some(p) = self.parts.get_mut(&owner) else {
            return;
        };
        let Some(mut w) = p.publisher.rtc.writer(mid) else {
            return;
        };
        match w.request_keyframe(rid, KeyframeRequestKind::Pli) {
            Ok(()) => self.counters.keyframe_requests += 1,
            Err(e) => tracing::debug!(track = %tid, error = %e, "keyframe request refused"),
        }
        self.drain(now, (owner, Role::Publisher));
    }

    fn on_subscriber_keyframe_request(&mut self, now: Instant, id: ParticipantId, mid: Mid) {
        let Some(p) = self.parts.get(&id) else {
            return;
        };
        let Some(o) = p.outs.iter().find(|o| o.state.mid() == Some(mid)) else {
            return;
        };
        let tid = o.track;
        let simulcast = self.tracks.get(&tid).is_some_and(|t| t.simulcast);
        let layer = o.switch.target.or(o.switch.current);
        let rid = if simulcast {
            layer.map(|l| Rid::from(layer::LAYER_RIDS[l]))
        } else {
            None
        };
        self.request_keyframe(now, tid, rid);
    }

    fn request_keyframes_for(&mut self, now: Instant, id: ParticipantId) {
        let Some(p) = self.parts.get(&id) else {
            return;
        };
        let wanted: Vec<(TrackId, Option<Rid>)> = p
            .outs
            .iter()
            .map(|o| {
                let l = o.switch.target.or(o.switch.current);
                let simulcast = self.tracks.get(&o.track).is_some_and(|t| t.simulcast);
                (
                    o.track,
                    l.filter(|_| simulcast)
                        .map(|l| Rid::from(layer::LAYER_RIDS[l])),
                )
            })
            .collect();
        for (t, rid) in wanted {
            self.request_keyframe(now, t, rid);
        }
    }

    // ------------------------------------------------------------ housekeeping

    fn arm_tick(&mut self, now: Instant) {
        if self.next_tick.is_none() {
            self.next_tick = Some(now + TICK);
        }
    }

    fn tick(&mut self, now: Instant) {
        // Speakers.
        let mut announce = Vec::new();
        let mut expired = Vec::new();
        for (name, r) in self.rooms.iter_mut() {
            if let Some(list) = r.speakers.poll(now) {
                announce.push((r.participants.iter().copied().collect::<Vec<_>>(), list));
            }
            if r.participants.is_empty()
                && r.empty_since
                    .is_some_and(|t| now.saturating_duration_since(t) >= r.options.empty_timeout)
            {
                expired.push(name.clone());
            }
        }
        for (members, list) in announce {
            for m in members {
                self.notify(m, Notice::ActiveSpeakers(list.clone()));
            }
        }
        for name in expired {
            tracing::info!(room = %name, "room empty too long; closed");
            self.rooms.remove(&name);
            self.out
                .push_back(Output::Event(SfuEvent::RoomClosed(name)));
        }
        // Participants whose client went away without a word.
        let timeout = self.cfg.media_timeout;
        let silent: Vec<ParticipantId> = self
            .parts
            .iter()
            .filter(|(_, p)| {
                [&p.publisher, &p.subscriber].iter().any(|c| {
                    c.disconnected_since
                        .is_some_and(|t| now.saturating_duration_since(t) >= timeout)
                })
            })
            .map(|(id, _)| *id)
            .collect();
        for id in silent {
            tracing::info!(participant = %id, "media connection lost; removing participant");
            self.remove_participant(now, id);
            self.out.push_back(Output::Event(SfuEvent::Removed(
                id,
                LeaveReason::MediaFailed,
            )));
        }
        // Layer choice for every subscriber.
        let ids: Vec<ParticipantId> = self.parts.keys().copied().collect();
        for id in ids {
            self.allocate(now, id);
        }
        if !self.rooms.is_empty() {
            self.next_tick = Some(now + TICK);
        }
    }

    /// Chooses a simulcast layer for each of a subscriber's video tracks from its bandwidth
    /// estimate and the sizes it asked for; asks publishers for keyframes to switch.
    fn allocate(&mut self, now: Instant, id: ParticipantId) {
        let Some(p) = self.parts.get(&id) else {
            return;
        };
        // Audio first: ~40 kbit/s per track with overhead.
        let mut audio = 0u64;
        let mut videos: Vec<(usize, TrackId, bool)> = Vec::new();
        for (i, o) in p.outs.iter().enumerate() {
            let Some(t) = self.tracks.get(&o.track) else {
                continue;
            };
            if !matches!(o.state, OutState::Open(_)) || o.paused {
                continue;
            }
            match t.kind {
                MediaKind::Audio => audio += 40_000,
                MediaKind::Video => videos.push((i, o.track, t.source == Source::Screen)),
            }
        }
        let budget_total = (p.estimate_bps * 9 / 10).saturating_sub(audio);
        // Screenshare weighs twice a camera.
        let weights: u64 = videos.iter().map(|v| if v.2 { 2 } else { 1 }).sum();
        let mut wanted: Vec<(TrackId, Option<Rid>)> = Vec::new();
        let mut desired_bps = audio;
        let p = self.parts.get_mut(&id).expect("checked above");
        for (i, tid, screen) in videos {
            let Some(t) = self.tracks.get(&tid) else {
                continue;
            };
            let o = &mut p.outs[i];
            if !t.simulcast {
                if o.switch.current.is_none() {
                    o.switch.current = Some(0);
                }
                desired_bps += t.layers[0].bitrate_bps.max(300_000);
                continue;
            }
            let share = budget_total * if screen { 2 } else { 1 } / weights.max(1);
            let infos = t.layer_infos(now);
            let current = o.switch.current;
            // Moving up needs 20 % headroom, so a layer that only just fits does not flap.
            let mut adj = infos;
            for (li, info) in adj.iter_mut().enumerate() {
                if current.is_some_and(|c| li > c) {
                    info.bitrate_bps = info.bitrate_bps * 6 / 5;
                }
            }
            let choice = choose_layer(
                &adj,
                LayerQuery {
                    max_width: o.max_width,
                    budget_bps: share,
                    prefer_resolution: screen,
                },
            );
            // What we would like to send if the network allowed: the best layer for the size.
            if let Some(best) = choose_layer(
                &infos,
                LayerQuery {
                    max_width: o.max_width,
                    budget_bps: u64::MAX,
                    prefer_resolution: screen,
                },
            ) {
                desired_bps += infos[best].bitrate_bps;
            }
            if o.switch.set_target(choice) {
                wanted.push((tid, choice.map(|l| Rid::from(layer::LAYER_RIDS[l]))));
            } else if o.switch.waiting() {
                // Still waiting: the throttle decides whether to ask again.
                let rid = o.switch.target.map(|l| Rid::from(layer::LAYER_RIDS[l]));
                wanted.push((tid, rid));
            }
        }
        // Let TWCC probe up to what we would send with no limit.
        // Only when it changed: this runs every tick for every participant, and each call is a
        // mutation that must be followed by a drain.
        let desired_bps = desired_bps.max(300_000);
        if p.desired_bps != desired_bps {
            p.desired_bps = desired_bps;
            p.subscriber
                .rtc
                .bwe()
                .set_bitrate(Bitrate::bps(0), Bitrate::bps(desired_bps));
            self.drain(now, (id, Role::Subscriber));
        }
        for (t, rid) in wanted {
            self.request_keyframe(now, t, rid);
        }
    }

    fn notify(&mut self, to: ParticipantId, n: Notice) {
        self.out.push_back(Output::Event(SfuEvent::Notify(to, n)));
    }

    /// After a command: send pending subscriber offers.
    fn flush(&mut self, now: Instant) {
        self.process(now);
        // Only participants marked as changed: scanning every participant here would cost
        // O(participants) per received packet.
        let ids = std::mem::take(&mut self.to_negotiate);
        for id in ids {
            self.negotiate(now, id);
        }
        self.process(now);
        if !self.rooms.is_empty() {
            self.arm_tick(now);
        }
    }
}

fn new_track_out(track: TrackId) -> TrackOut {
    TrackOut {
        track,
        state: OutState::ToOpen,
        switch: LayerSwitch::default(),
        max_width: u32::MAX,
        paused: false,
        time: TimeRewrite::default(),
    }
}

/// Room names: 1–128 characters of letters, digits and `-_.:@`.
pub fn validate_room_name(name: &str) -> Result<(), SfuError> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:@".contains(c));
    if ok {
        Ok(())
    } else {
        Err(SfuError::BadRequest(
            "room name must be 1-128 characters of letters, digits and -_.:@".into(),
        ))
    }
}

#[doc(hidden)]
pub use str0m;

#[allow(dead_code)]
fn _assert_arc(_: Arc<[u8]>) {}
