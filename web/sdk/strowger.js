// Strowger browser SDK.
//
// One WebSocket for signalling (docs/protocol.md), two RTCPeerConnections per room:
// `publisher` (we offer, send-only) and `subscriber` (the server offers, receive-only).
// No dependencies, no build step: import it as an ES module.

/**
 * @typedef {Object} Grants
 * @property {string} [room] room name or "*"
 * @property {boolean} [publish]
 * @property {boolean} [subscribe]
 * @property {boolean} [screenshare]
 * @property {boolean} [record]
 * @property {boolean} [admin]
 * @property {boolean} [call]
 */

/**
 * @typedef {Object} Welcome
 * @property {string} sessionId
 * @property {string} resumeKey
 * @property {boolean} resumed
 * @property {string} identity
 * @property {string} name
 * @property {Grants} grants
 * @property {RTCIceServer[]} iceServers
 */

/**
 * @typedef {Object} PresenceUser
 * @property {string} identity
 * @property {string} name
 * @property {number} devices
 */

/**
 * @typedef {'microphone'|'camera'|'screen'} TrackSource
 */

/**
 * @typedef {Object} TrackInfo  A track as described by the server (`TRACK` in the protocol).
 * @property {string} id
 * @property {'audio'|'video'} kind
 * @property {TrackSource} source
 * @property {boolean} muted
 * @property {boolean} [simulcast]
 */

const DEFAULT_REQUEST_TIMEOUT_MS = 10_000;
const RECONNECT_WINDOW_MS = 20_000;
const RECONNECT_DELAYS_MS = [250, 500, 1000, 2000, 3000, 4000];
const SILENCE_LIMIT_MS = 45_000;
const WS_OPEN_TIMEOUT_MS = 5_000;

/** Error carrying a machine-readable `code` (protocol error codes, call-end reasons, or SDK codes). */
export class StrowgerError extends Error {
  /**
   * @param {string} code e.g. 'room_full', 'forbidden', 'offline', 'timeout', 'disconnected'
   * @param {string} [message]
   */
  constructor(code, message) {
    super(message || code);
    this.name = 'StrowgerError';
    /** @type {string} */
    this.code = code;
  }
}

/** A track this client publishes. */
export class LocalTrack {
  /**
   * @param {TrackSource} source
   * @param {MediaStreamTrack} mediaStreamTrack
   * @param {RTCRtpTransceiver} transceiver
   * @param {boolean} simulcast
   */
  constructor(source, mediaStreamTrack, transceiver, simulcast) {
    /** @type {TrackSource} */
    this.source = source;
    /** @type {'audio'|'video'} */
    this.kind = /** @type {'audio'|'video'} */ (mediaStreamTrack.kind);
    /** @type {MediaStreamTrack} */
    this.mediaStreamTrack = mediaStreamTrack;
    /** A MediaStream holding only this track, handy for a local preview element. */
    this.stream = new MediaStream([mediaStreamTrack]);
    /** @type {RTCRtpTransceiver} */
    this.transceiver = transceiver;
    /** @type {boolean} */
    this.simulcast = simulcast;
    /** @type {boolean} */
    this.muted = false;
    /** Server track id, when the server has told us (via `track_published` for ourselves). @type {string|null} */
    this.trackId = null;
  }
  /** The m-line id of this track on the publisher connection (null before the first offer). */
  get mid() { return this.transceiver.mid; }
  /** Device id the track was captured from, when known. */
  get deviceId() {
    try { return this.mediaStreamTrack.getSettings().deviceId || null; } catch { return null; }
  }
}

/** A track published by another participant. */
export class RemoteTrack {
  /** @param {TrackInfo} info */
  constructor(info) {
    /** @type {string} */
    this.id = info.id;
    /** @type {'audio'|'video'} */
    this.kind = info.kind;
    /** @type {TrackSource} */
    this.source = info.source;
    /** @type {boolean} */
    this.muted = !!info.muted;
    /** @type {boolean} */
    this.simulcast = !!info.simulcast;
    /** Set once the subscriber connection delivers it (`tracksubscribed`). @type {MediaStreamTrack|null} */
    this.mediaStreamTrack = null;
    /** A MediaStream holding only this track, once subscribed. @type {MediaStream|null} */
    this.stream = null;
    /** Subscriber m-line carrying this track. @type {string|null} */
    this.mid = null;
  }
}

/** Another participant of the current room. */
export class RemoteParticipant {
  /** @param {{id:string, identity:string, name?:string, tracks?:TrackInfo[]}} info */
  constructor(info) {
    /** @type {string} */
    this.id = info.id;
    /** @type {string} */
    this.identity = info.identity;
    /** @type {string} */
    this.name = info.name || info.identity;
    /** @type {Map<string, RemoteTrack>} */
    this.tracks = new Map();
    for (const t of info.tracks || []) this.tracks.set(t.id, new RemoteTrack(t));
  }
}

/** The room this client is in. */
export class Room {
  /** @param {string} name @param {string} participantId */
  constructor(name, participantId) {
    /** @type {string} */
    this.name = name;
    /** Our own participant id. @type {string} */
    this.participantId = participantId;
    /** Everyone else in the room. @type {Map<string, RemoteParticipant>} */
    this.participants = new Map();
    /** Participant ids, loudest first (may include our own id). @type {string[]} */
    this.activeSpeakers = [];
  }
}

/** A 1:1 call, incoming or outgoing. */
export class Call {
  /**
   * @param {string} callId
   * @param {'outgoing'|'incoming'} direction
   * @param {{identity:string, name:string}} peer
   * @param {boolean} video
   */
  constructor(callId, direction, peer, video) {
    /** @type {string} */
    this.id = callId;
    /** @type {string} */
    this.callId = callId;
    /** @type {'outgoing'|'incoming'} */
    this.direction = direction;
    /** The other side. @type {{identity:string, name:string}} */
    this.peer = peer;
    /** @type {boolean} */
    this.video = video;
    /** @type {'ringing'|'accepted'|'ended'} */
    this.state = 'ringing';
    /** `call:<callId>` once accepted. @type {string|null} */
    this.room = null;
    /** Why it ended. @type {string|null} */
    this.endReason = null;
  }
}

function defaultUrl() {
  if (typeof location === 'undefined') return 'ws://127.0.0.1/ws';
  return (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws';
}

/** @param {any} v @returns {{identity:string,name:string}} */
function asPerson(v) {
  if (v && typeof v === 'object') return { identity: String(v.identity || ''), name: String(v.name || v.identity || '') };
  return { identity: String(v || ''), name: String(v || '') };
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Strowger client. Emits `CustomEvent`s (payload in `event.detail`):
 * `presence`, `incomingcall`, `callringing`, `callaccepted`, `callended`, `participantjoined`,
 * `participantleft`, `trackpublished`, `trackunpublished`, `tracksubscribed`, `trackunsubscribed`,
 * `trackmuted`, `activespeakers`, `roomclosed`, `roomleft`, `localtrackended`, `reconnecting`,
 * `reconnected`, `disconnected`, `error`.
 */
export class StrowgerClient extends EventTarget {
  /**
   * @param {{url?: string, reconnect?: boolean, requestTimeoutMs?: number}} [opts]
   */
  constructor(opts = {}) {
    super();
    this.url = opts.url || defaultUrl();
    this.reconnect = opts.reconnect !== false;
    this._requestTimeoutMs = opts.requestTimeoutMs || DEFAULT_REQUEST_TIMEOUT_MS;

    /** @type {WebSocket|null} */ this._ws = null;
    this._token = '';
    /** @type {Welcome|null} */ this._welcome = null;
    this._state = 'idle'; // idle | connecting | connected | reconnecting | closed
    this._nextId = 1;
    /** @type {Map<string, {resolve:Function, reject:Function, timer:any, type:string, meta?:any}>} */
    this._pending = new Map();
    /** ids whose errors we do not care about (fire-and-forget with id) */
    this._ignoredIds = new Set();
    /** frames to send once the socket (re)opens */
    /** @type {object[]} */ this._outbox = [];
    this._lastRx = 0;
    this._watchdog = null;

    /** @type {PresenceUser[]} */ this._presence = [];
    /** @type {Map<string, Call>} */ this._calls = new Map();
    /** call ids that ended recently (late `call_ended` duplicates are ignored) */
    /** @type {Set<string>} */ this._endedIds = new Set();

    /** @type {Room|null} */ this._room = null;
    /** @type {Promise<Room>|null} */ this._joining = null;
    this._joiningName = '';
    /** @type {RTCPeerConnection|null} */ this._pubPc = null;
    /** @type {RTCPeerConnection|null} */ this._subPc = null;
    /** @type {Map<TrackSource, LocalTrack>} */ this._local = new Map();
    this._pubChain = Promise.resolve();
    /** @type {Promise<void>|null} */ this._negQueued = null;
    this._needsRenegotiation = false;
    this._subChain = Promise.resolve();
    /** subscriber mid -> {trackId, participantId, kind, source} */
    /** @type {Map<string, {trackId:string, participantId:string, kind:string, source:string}>} */
    this._midMap = new Map();
    /** `${mid}|${trackId}` already announced with `tracksubscribed` */
    this._announced = new Set();
    /** room events that arrived before `joined` was processed */
    this._roomGeneration = 0;
  }

  // ---------------------------------------------------------------- public getters

  /** Our identity (token `sub`), '' before `connect`. */
  get identity() { return this._welcome ? this._welcome.identity : ''; }
  /** Our display name. */
  get name() { return this._welcome ? this._welcome.name : ''; }
  /** Current session id, '' before `connect`. */
  get sessionId() { return this._welcome ? this._welcome.sessionId : ''; }
  /** Grants from the token as the server sees them. @type {Grants} */
  get grants() { return (this._welcome && this._welcome.grants) || {}; }
  /** Who is online (as last told by the server). */
  get presence() { return this._presence.slice(); }
  /** 'idle' | 'connecting' | 'connected' | 'reconnecting' | 'closed' */
  get state() { return this._state; }
  get connected() { return this._state === 'connected'; }
  get publisherPc() { return this._pubPc; }
  get subscriberPc() { return this._subPc; }
  get room() { return this._room; }
  /** Our published tracks by source. @type {Map<TrackSource, LocalTrack>} */
  get localTracks() { return new Map(this._local); }
  /** Calls that are ringing or accepted. @type {Call[]} */
  get calls() { return [...this._calls.values()].filter((c) => c.state !== 'ended'); }

  // ---------------------------------------------------------------- connection

  /**
   * Connect and sign in. Resolves with the server's `welcome`.
   * @param {string} token JWT
   * @returns {Promise<Welcome>}
   */
  async connect(token) {
    if (this._state === 'connected' || this._state === 'connecting' || this._state === 'reconnecting') {
      throw new StrowgerError('out_of_order', 'already connected');
    }
    this._token = token;
    this._state = 'connecting';
    try {
      const welcome = await this._openSession(null);
      this._welcome = welcome;
      this._state = 'connected';
      this._flushOutbox();
      return welcome;
    } catch (e) {
      this._state = 'closed';
      this._teardownSocket();
      throw e;
    }
  }

  /** Leave any room, close the socket and stop reconnecting. Emits `disconnected{reason:'client'}`. */
  disconnect() {
    if (this._state === 'idle' || this._state === 'closed') return;
    const send = (m) => { try { this._sendRaw(m); } catch { /* not connected */ } };
    if (this._room) send({ type: 'leave' });
    for (const c of this._calls.values()) {
      if (c.state === 'ringing') send({ type: c.direction === 'outgoing' ? 'cancel' : 'reject', callId: c.callId });
      else if (c.state === 'accepted') send({ type: 'hangup', callId: c.callId });
    }
    this._finish('client');
  }

  /**
   * Opens a socket, sends hello and waits for welcome.
   * @param {{sessionId:string, resumeKey:string}|null} resume
   * @param {number} [timeoutMs] give up on this attempt after this long
   * @returns {Promise<Welcome>}
   */
  _openSession(resume, timeoutMs = WS_OPEN_TIMEOUT_MS + this._requestTimeoutMs) {
    return new Promise((resolve, reject) => {
      let ws;
      try { ws = new WebSocket(this.url); } catch (e) { reject(new StrowgerError('network', String(e && e.message || e))); return; }
      this._ws = ws;
      let settled = false;
      const fail = (err) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        try { ws.close(); } catch { /* ignore */ }
        if (this._ws === ws) this._ws = null;
        reject(err);
      };
      const timer = setTimeout(() => fail(new StrowgerError('timeout', 'no welcome from server')), timeoutMs);
      ws.onopen = () => {
        const hello = { type: 'hello', token: this._token };
        if (resume) hello.resume = resume;
        ws.send(JSON.stringify(hello));
      };
      ws.onerror = () => { /* onclose follows */ };
      ws.onclose = (ev) => {
        if (!settled) {
          const code = ev.code === 4401 ? 'unauthorized' : 'network';
          fail(new StrowgerError(code, ev.reason || `connection closed (${ev.code})`));
          return;
        }
        this._onSocketClosed(ws, ev);
      };
      ws.onmessage = (ev) => {
        let msg;
        try { msg = JSON.parse(ev.data); } catch { return; }
        if (!msg || typeof msg !== 'object') return;
        this._lastRx = Date.now();
        if (!settled) {
          if (msg.type === 'welcome') {
            settled = true;
            clearTimeout(timer);
            this._welcome = msg;
            this._startWatchdog();
            resolve(msg);
            return;
          }
          if (msg.type === 'error') {
            fail(new StrowgerError(msg.code || 'internal', msg.message));
            return;
          }
          if (msg.type === 'ping') { ws.send(JSON.stringify({ type: 'pong' })); return; }
          return;
        }
        this._onMessage(msg);
      };
    });
  }

  _startWatchdog() {
    clearInterval(this._watchdog);
    this._lastRx = Date.now();
    this._watchdog = setInterval(() => {
      const ws = this._ws;
      if (!ws || ws.readyState !== WebSocket.OPEN) return;
      const silent = Date.now() - this._lastRx;
      if (silent > SILENCE_LIMIT_MS) {
        // The socket is dead but the browser may take minutes to notice; treat it as lost now.
        this._onSocketClosed(ws, { code: 1006, reason: 'silent' });
      } else if (silent > SILENCE_LIMIT_MS / 3) {
        try { ws.send(JSON.stringify({ type: 'ping' })); } catch { /* ignore */ }
      }
    }, 5000);
  }

  _teardownSocket() {
    clearInterval(this._watchdog);
    this._watchdog = null;
    const ws = this._ws;
    this._ws = null;
    if (ws) {
      ws.onopen = ws.onclose = ws.onmessage = ws.onerror = null;
      try { ws.close(1000); } catch { /* ignore */ }
    }
  }

  /** @param {WebSocket} ws @param {{code:number, reason:string}} ev */
  _onSocketClosed(ws, ev) {
    if (ws !== this._ws) return;
    this._teardownSocket();
    this._failInFlight(new StrowgerError('disconnected', 'connection lost'));
    if (this._state !== 'connected') return;
    if (ev.code === 4401) { this._finish('unauthorized'); return; }
    if (!this.reconnect || ev.code === 1008 || ev.code === 1009) {
      this._finish(ev.code === 1008 ? 'rate_limited' : ev.code === 1009 ? 'too_large' : 'network');
      return;
    }
    this._reconnectLoop();
  }

  async _reconnectLoop() {
    this._state = 'reconnecting';
    const started = Date.now();
    let attempt = 0;
    this._emit('reconnecting', { attempt: 0 });
    while (this._state === 'reconnecting') {
      const delay = RECONNECT_DELAYS_MS[Math.min(attempt, RECONNECT_DELAYS_MS.length - 1)];
      const left = RECONNECT_WINDOW_MS - (Date.now() - started);
      if (left <= 0) break;
      await sleep(Math.min(delay, left));
      if (this._state !== 'reconnecting') return;
      attempt++;
      const prev = this._welcome;
      try {
        const budget = Math.max(3000, RECONNECT_WINDOW_MS - (Date.now() - started));
        const welcome = await this._openSession(prev ? { sessionId: prev.sessionId, resumeKey: prev.resumeKey } : null, Math.min(budget, WS_OPEN_TIMEOUT_MS + 3000));
        if (this._state !== 'reconnecting') { this._teardownSocket(); return; }
        this._state = 'connected';
        if (welcome.resumed) {
          this._flushOutbox();
          this._emit('reconnected', { attempt, sessionId: welcome.sessionId });
          if (this._needsRenegotiation && this._pubPc) this._negotiate().catch(() => {});
        } else {
          this._outbox = [];
          this._dropSessionState('session_lost');
          this._emit('disconnected', { reason: 'session_lost', connected: true });
        }
        return;
      } catch (e) {
        if (e instanceof StrowgerError && (e.code === 'unauthorized' || e.code === 'forbidden')) {
          this._finish('unauthorized');
          return;
        }
        this._emit('reconnecting', { attempt });
      }
    }
    if (this._state === 'reconnecting') this._finish('network');
  }

  /** Final shutdown: closes everything and emits `disconnected`. @param {string} reason */
  _finish(reason) {
    const wasOpen = this._state !== 'closed' && this._state !== 'idle';
    this._state = 'closed';
    this._flushOutboxBestEffort();
    this._teardownSocket();
    this._failInFlight(new StrowgerError('disconnected', reason), true);
    this._dropSessionState(reason);
    this._presence = [];
    if (wasOpen) this._emit('disconnected', { reason, connected: false });
  }

  /** Forget room and calls (the server-side session is gone). @param {string} reason */
  _dropSessionState(reason) {
    this._roomGeneration++;
    if (this._room || this._pubPc || this._subPc) this._closeRoom(reason);
    for (const c of [...this._calls.values()]) {
      if (c.state !== 'ended') this._endCall(c, reason === 'client' ? 'hangup' : 'disconnected');
    }
    this._calls.clear();
  }

  /** @param {StrowgerError} err @param {boolean} [all] also requests still queued for sending */
  _failInFlight(err, all = false) {
    if (all) this._outbox = [];
    for (const [id, p] of this._pending) {
      if (!p.sent && !all) continue;
      clearTimeout(p.timer);
      this._pending.delete(id);
      p.reject(err);
    }
    this._ignoredIds.clear();
  }

  // ---------------------------------------------------------------- sending

  /** @param {object} msg */
  _sendRaw(msg) {
    const ws = this._ws;
    if (ws && ws.readyState === WebSocket.OPEN && this._state === 'connected') {
      ws.send(JSON.stringify(msg));
      return true;
    }
    if (this._state === 'reconnecting' || this._state === 'connecting') {
      this._outbox.push(msg);
      return false;
    }
    throw new StrowgerError('not_connected', 'not connected');
  }

  _flushOutbox() {
    const q = this._outbox;
    this._outbox = [];
    for (const m of q) {
      this._sendRaw(m);
      if (m.id != null && this._pending.has(String(m.id))) this._pending.get(String(m.id)).sent = true;
    }
  }

  _flushOutboxBestEffort() {
    const ws = this._ws;
    if (ws && ws.readyState === WebSocket.OPEN) {
      for (const m of this._outbox) { try { ws.send(JSON.stringify(m)); } catch { /* ignore */ } }
    }
  }

  /**
   * Sends a request with an `id` and waits for the reply of `replyType` (or an `error`) with that id.
   * @param {object} msg
   * @param {string|null} replyType null = no reply expected besides a possible error
   * @param {any} [meta]
   * @returns {Promise<any>}
   */
  _request(msg, replyType, meta) {
    const id = String(this._nextId++);
    return new Promise((resolve, reject) => {
      const entry = {
        resolve, reject, type: replyType, meta, sent: false,
        timer: setTimeout(() => {
          this._pending.delete(id);
          this._outbox = this._outbox.filter((m) => m.id !== id);
          reject(new StrowgerError('timeout', `no reply to ${msg.type}`));
        }, this._requestTimeoutMs),
      };
      this._pending.set(id, entry);
      try {
        entry.sent = this._sendRaw({ ...msg, id });
      } catch (e) {
        clearTimeout(entry.timer);
        this._pending.delete(id);
        reject(e);
      }
    });
  }

  /** Fire-and-forget with an id whose errors are swallowed. @param {object} msg */
  _sendQuiet(msg) {
    const id = 'q' + this._nextId++;
    this._ignoredIds.add(id);
    setTimeout(() => this._ignoredIds.delete(id), 30_000);
    try { this._sendRaw({ ...msg, id }); } catch { /* not connected: nothing to tell the server */ }
  }

  /** @param {string} type @param {any} [detail] */
  _emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  // ---------------------------------------------------------------- incoming

  /** @param {any} msg */
  _onMessage(msg) {
    const id = msg.id != null ? String(msg.id) : null;
    switch (msg.type) {
      case 'ping': try { this._sendRaw({ type: 'pong' }); } catch { /* ignore */ } return;
      case 'pong': return;
      case 'error': return this._onError(msg, id);
      case 'presence':
        this._presence = Array.isArray(msg.users) ? msg.users : [];
        this._emit('presence', { users: this.presence, truncated: !!msg.truncated });
        return;
      case 'call_ringing': return this._onCallRinging(msg, id);
      case 'incoming_call': return this._onIncomingCall(msg);
      case 'call_accepted': return this._onCallAccepted(msg, id);
      case 'call_ended': return this._onCallEnded(msg, id);
      case 'joined': return this._resolvePending(id, 'joined', msg);
      case 'publish_answer': return this._resolvePending(id, 'publish_answer', msg);
      case 'subscribe_offer': return this._onSubscribeOffer(msg);
      case 'participant_joined': return this._onParticipantJoined(msg);
      case 'participant_left': return this._onParticipantLeft(msg);
      case 'track_published': return this._onTrackPublished(msg);
      case 'track_unpublished': return this._onTrackUnpublished(msg);
      case 'track_muted': return this._onTrackMuted(msg);
      case 'active_speakers': return this._onActiveSpeakers(msg);
      case 'room_closed': return this._onRoomClosed(msg);
      case 'room_state': return this._onRoomState(msg);
      case 'left':
        // A reply to our own leave, or the server removed us (room closed, media failed).
        if (this._resolvePending(id, 'left', msg)) return;
        if (this._room && msg.reason !== 'left') {
          this._emit('roomleft', { room: msg.room, reason: msg.reason });
          this._closeRoom(msg.reason || 'left');
        }
        return;
      case 'welcome': return; // only valid as the first reply
      default:
        if (id) this._resolvePending(id, msg.type, msg);
    }
  }

  _resolvePending(id, type, msg) {
    if (id == null) return false;
    const p = this._pending.get(id);
    if (!p) return false;
    if (p.type && p.type !== type) return false;
    clearTimeout(p.timer);
    this._pending.delete(id);
    p.resolve(msg);
    return true;
  }

  _onError(msg, id) {
    const err = new StrowgerError(msg.code || 'internal', msg.message || msg.code);
    if (id != null) {
      if (this._ignoredIds.has(id)) { this._ignoredIds.delete(id); return; }
      const p = this._pending.get(id);
      if (p) {
        clearTimeout(p.timer);
        this._pending.delete(id);
        p.reject(err);
        return;
      }
    }
    this._emit('error', { code: err.code, message: err.message, id });
  }

  // ---------------------------------------------------------------- 1:1 calls

  /**
   * Ring `identity` on all their devices. Resolves once they are ringing.
   * Rejects with a StrowgerError whose code is the call-end reason (`offline`, `busy`,
   * `unknown_user`, ...) or a protocol error code (`forbidden`, `rate_limited`, ...).
   * @param {string} identity
   * @param {{video?: boolean}} [opts]
   * @returns {Promise<Call>}
   */
  call(identity, opts = {}) {
    const video = !!opts.video;
    return this._request({ type: 'call', to: identity, video }, 'call_ringing', { to: identity, video });
  }

  _findPendingCall(msg, id) {
    if (id != null && this._pending.has(id)) {
      const p = this._pending.get(id);
      if (p.type === 'call_ringing') return [id, p];
    }
    if (msg.callId && (this._calls.has(msg.callId) || this._endedIds.has(String(msg.callId)))) return null;
    // Fallback when the server does not echo the id: oldest pending call to that identity.
    const to = msg.to != null ? asPerson(msg.to).identity : null;
    for (const [pid, p] of this._pending) {
      if (p.type !== 'call_ringing' || !p.sent) continue;
      if (to == null || p.meta.to === to) return [pid, p];
    }
    return null;
  }

  _onCallRinging(msg, id) {
    const found = this._findPendingCall(msg, id);
    let call = this._calls.get(msg.callId);
    if (!call) {
      const meta = found ? found[1].meta : { to: asPerson(msg.to).identity, video: false };
      const person = msg.to != null ? asPerson(msg.to) : { identity: meta.to, name: meta.to };
      if (!person.identity) person.identity = meta.to;
      if (!person.name) person.name = person.identity;
      call = new Call(String(msg.callId), 'outgoing', person, !!meta.video);
      this._calls.set(call.callId, call);
    }
    this._emit('callringing', { callId: call.callId, to: call.peer, call });
    if (found) {
      clearTimeout(found[1].timer);
      this._pending.delete(found[0]);
      found[1].resolve(call);
    }
  }

  _onIncomingCall(msg) {
    const call = new Call(String(msg.callId), 'incoming', asPerson(msg.from), !!msg.video);
    this._calls.set(call.callId, call);
    this._emit('incomingcall', { callId: call.callId, from: call.peer, video: call.video, call });
  }

  _onCallAccepted(msg, id) {
    if (!this._calls.has(msg.callId) && this._endedIds.has(String(msg.callId))) {
      // We cancelled or rejected while the other side accepted: end it for them too.
      this._sendQuiet({ type: 'hangup', callId: msg.callId });
      return;
    }
    let call = this._calls.get(msg.callId);
    const peer = msg.peer ? asPerson(msg.peer) : call ? call.peer : { identity: '', name: '' };
    if (!call) {
      call = new Call(String(msg.callId), 'incoming', peer, false);
      this._calls.set(call.callId, call);
    }
    call.state = 'accepted';
    call.room = msg.room || `call:${call.callId}`;
    if (msg.peer) call.peer = peer;
    // Resolve accept() — matched by id, or by callId if the server did not echo the id.
    if (!this._resolvePending(id, 'call_accepted', msg)) {
      for (const [pid, p] of this._pending) {
        if (p.type === 'call_accepted' && p.meta && p.meta.callId === call.callId) {
          this._resolvePending(pid, 'call_accepted', msg);
          break;
        }
      }
    }
    this._emit('callaccepted', { callId: call.callId, room: call.room, peer: call.peer, call });
  }

  _onCallEnded(msg, id) {
    const reason = msg.reason || 'hangup';
    let call = this._calls.get(msg.callId);
    if (!call) {
      // A call that ends before it rang (offline, unknown_user, busy...).
      const found = this._findPendingCall(msg, id);
      if (found) {
        clearTimeout(found[1].timer);
        this._pending.delete(found[0]);
        found[1].reject(new StrowgerError(reason, `call ended: ${reason}`));
        call = new Call(String(msg.callId || ''), 'outgoing', { identity: found[1].meta.to, name: found[1].meta.to }, !!found[1].meta.video);
        call.state = 'ended';
        call.endReason = reason;
        this._emit('callended', { callId: call.callId, reason, call });
      }
      return;
    }
    // A pending accept() for this call loses (e.g. answered_elsewhere).
    for (const [pid, p] of this._pending) {
      if (p.type === 'call_accepted' && p.meta && p.meta.callId === call.callId) {
        clearTimeout(p.timer);
        this._pending.delete(pid);
        p.reject(new StrowgerError(reason, `call ended: ${reason}`));
      }
    }
    this._endCall(call, reason);
  }

  /** @param {Call} call @param {string} reason */
  _endCall(call, reason) {
    if (call.state === 'ended') return;
    const wasAccepted = call.state === 'accepted';
    call.state = 'ended';
    call.endReason = reason;
    this._calls.delete(call.callId);
    this._endedIds.add(call.callId);
    if (this._endedIds.size > 200) this._endedIds.delete(this._endedIds.values().next().value);
    this._emit('callended', { callId: call.callId, reason, call });
    if (wasAccepted && this._room && this._room.name === call.room) {
      this.leaveRoom().catch(() => {});
    }
  }

  /**
   * Accept an incoming call. Resolves on `call_accepted`; then join `call:<callId>`
   * (see the `callaccepted` event's `room`) with `joinRoom`.
   * @param {string} callId
   * @returns {Promise<void>}
   */
  async accept(callId) {
    const call = this._calls.get(callId);
    if (call && call.state === 'accepted') return;
    if (call && call.direction !== 'incoming') throw new StrowgerError('out_of_order', 'cannot accept an outgoing call');
    await this._request({ type: 'accept', callId }, 'call_accepted', { callId });
  }

  /** Decline an incoming call. @param {string} callId */
  reject(callId) {
    this._sendQuiet({ type: 'reject', callId });
    const call = this._calls.get(callId);
    if (call) this._endCall(call, 'rejected');
  }

  /** Give up on an outgoing call before it is answered. @param {string} callId */
  cancel(callId) {
    this._sendQuiet({ type: 'cancel', callId });
    const call = this._calls.get(callId);
    if (call) this._endCall(call, 'cancelled');
  }

  /** End an accepted call (also leaves its room). @param {string} callId */
  hangup(callId) {
    this._sendQuiet({ type: 'hangup', callId });
    const call = this._calls.get(callId);
    if (call) this._endCall(call, 'hangup');
  }

  // ---------------------------------------------------------------- rooms

  /**
   * Join a room (or an accepted call's `call:<callId>` room). Opens the publisher and
   * subscriber peer connections. Calling it again for the room we are in (or joining)
   * returns the same Room.
   * @param {string} name
   * @returns {Promise<Room>}
   */
  async joinRoom(name) {
    if (this._room && this._room.name === name) return this._room;
    if (this._joining && this._joiningName === name) return this._joining;
    if (this._room || this._joining) throw new StrowgerError('out_of_order', 'already in a room; leave it first');
    if (this._state !== 'connected') throw new StrowgerError('not_connected', 'not connected');
    this._joiningName = name;
    this._joining = this._doJoin(name);
    try {
      return await this._joining;
    } finally {
      this._joining = null;
      this._joiningName = '';
    }
  }

  /** @param {string} name */
  async _doJoin(name) {
    const gen = ++this._roomGeneration;
    this._createPeerConnections();
    let msg;
    try {
      msg = await this._request({ type: 'join', room: name }, 'joined');
    } catch (e) {
      if (gen === this._roomGeneration) this._closePeerConnections();
      throw e;
    }
    if (gen !== this._roomGeneration) {
      this._sendQuiet({ type: 'leave' });
      throw new StrowgerError('cancelled', 'left before the join completed');
    }
    const room = new Room(msg.room || name, msg.participantId);
    for (const p of msg.participants || []) {
      if (p.id === room.participantId) continue;
      room.participants.set(p.id, new RemoteParticipant(p));
    }
    this._room = room;
    // Tracks the subscriber connection already delivered before `joined` was handled.
    this._sweepSubscriptions();
    return room;
  }

  _pcConfig() {
    const ice = (this._welcome && Array.isArray(this._welcome.iceServers)) ? this._welcome.iceServers : [];
    return { iceServers: ice, bundlePolicy: 'max-bundle', rtcpMuxPolicy: 'require' };
  }

  _createPeerConnections() {
    this._closePeerConnections();
    const pub = new RTCPeerConnection(this._pcConfig());
    const sub = new RTCPeerConnection(this._pcConfig());
    this._pubPc = pub;
    this._subPc = sub;
    this._pubChain = Promise.resolve();
    this._negQueued = null;
    this._needsRenegotiation = false;
    this._subChain = Promise.resolve();
    this._midMap = new Map();
    this._announced = new Set();
    sub.ontrack = (ev) => this._onSubscriberTrack(ev);
    const watchState = (pc, which) => {
      pc.onconnectionstatechange = () => {
        if (pc !== this._pubPc && pc !== this._subPc) return;
        this._emit('connectionstatechange', { pc: which, state: pc.connectionState });
        if (pc.connectionState === 'failed') {
          this._emit('error', { code: 'ice_failed', message: `${which} connection failed (media path blocked?)` });
        }
      };
    };
    watchState(pub, 'publisher');
    watchState(sub, 'subscriber');
  }

  _closePeerConnections() {
    for (const t of this._local.values()) { try { t.mediaStreamTrack.stop(); } catch { /* ignore */ } }
    this._local.clear();
    for (const pc of [this._pubPc, this._subPc]) {
      if (!pc) continue;
      pc.ontrack = null;
      pc.onconnectionstatechange = null;
      try { pc.close(); } catch { /* ignore */ }
    }
    this._pubPc = null;
    this._subPc = null;
    this._midMap = new Map();
    this._announced = new Set();
    this._negQueued = null;
  }

  /** Leave the room: sends `leave`, closes both peer connections, stops local capture. */
  async leaveRoom() {
    this._roomGeneration++;
    const room = this._room;
    if (!room && !this._pubPc && !this._subPc) return;
    if (room) this._sendQuiet({ type: 'leave' });
    this._closeRoom('left');
    // Leaving a 1:1 call's room ends the call.
    for (const c of [...this._calls.values()]) {
      if (c.state === 'accepted' && room && c.room === room.name) this.hangup(c.callId);
    }
  }

  /** @param {string} reason */
  _closeRoom(reason) {
    const room = this._room;
    this._room = null;
    this._closePeerConnections();
    if (room) this._emit('roomleft', { room: room.name, reason });
  }

  _onParticipantJoined(msg) {
    const room = this._room;
    if (!room || !msg.participant || msg.participant.id === room.participantId) return;
    const p = new RemoteParticipant(msg.participant);
    room.participants.set(p.id, p);
    this._emit('participantjoined', { participant: p });
    this._sweepSubscriptions();
  }

  /** After a resume: the room as the server sees it now. */
  _onRoomState(msg) {
    const room = this._room;
    if (!room || !Array.isArray(msg.participants)) return;
    const now = new Set(msg.participants.map((p) => p.id));
    for (const id of [...room.participants.keys()]) {
      if (!now.has(id)) this._onParticipantLeft({ participantId: id });
    }
    for (const p of msg.participants) {
      if (!room.participants.has(p.id)) {
        this._onParticipantJoined({ participant: p });
      } else {
        for (const t of p.tracks || []) this._onTrackPublished({ participantId: p.id, track: t });
      }
    }
  }

  _onParticipantLeft(msg) {
    const room = this._room;
    if (!room) return;
    const p = room.participants.get(msg.participantId);
    room.participants.delete(msg.participantId);
    room.activeSpeakers = room.activeSpeakers.filter((s) => s !== msg.participantId);
    this._emit('participantleft', { participantId: msg.participantId, participant: p || null });
  }

  _onTrackPublished(msg) {
    const room = this._room;
    if (!room || !msg.track) return;
    if (msg.participantId === room.participantId) {
      const local = this._local.get(msg.track.source);
      if (local) local.trackId = msg.track.id;
      return;
    }
    const p = room.participants.get(msg.participantId);
    if (!p) return;
    let t = p.tracks.get(msg.track.id);
    if (!t) { t = new RemoteTrack(msg.track); p.tracks.set(t.id, t); }
    this._emit('trackpublished', { participantId: p.id, participant: p, track: t });
    this._sweepSubscriptions();
  }

  _onTrackUnpublished(msg) {
    const room = this._room;
    if (!room) return;
    const p = room.participants.get(msg.participantId);
    if (!p) return;
    const t = p.tracks.get(msg.trackId) || null;
    p.tracks.delete(msg.trackId);
    this._emit('trackunpublished', { participantId: p.id, participant: p, trackId: msg.trackId, track: t });
  }

  _onTrackMuted(msg) {
    const room = this._room;
    if (!room) return;
    const p = room.participants.get(msg.participantId);
    const t = p && p.tracks.get(msg.trackId);
    if (t) t.muted = !!msg.muted;
    this._emit('trackmuted', { participantId: msg.participantId, participant: p || null, trackId: msg.trackId, muted: !!msg.muted, track: t || null });
  }

  _onActiveSpeakers(msg) {
    const speakers = Array.isArray(msg.speakers) ? msg.speakers : [];
    if (this._room) this._room.activeSpeakers = speakers;
    this._emit('activespeakers', { speakers });
  }

  _onRoomClosed(msg) {
    if (!this._room) return;
    this._emit('roomclosed', { room: msg.room, reason: msg.reason });
    this._closeRoom(msg.reason || 'closed');
  }

  // ---------------------------------------------------------------- subscriber PC

  _onSubscribeOffer(msg) {
    this._subChain = this._subChain
      .then(() => this._answerSubscribeOffer(msg))
      .catch((e) => this._emit('error', { code: e.code || 'invalid_sdp', message: `subscribe: ${e.message || e}` }));
  }

  async _answerSubscribeOffer(msg) {
    const pc = this._subPc;
    if (!pc) return;
    const tracks = Array.isArray(msg.tracks) ? msg.tracks : [];
    const next = new Map();
    for (const t of tracks) {
      next.set(String(t.mid), { trackId: t.trackId, participantId: t.participantId, kind: t.kind, source: t.source });
    }
    // m-lines that went away or now carry another track
    for (const [mid, old] of this._midMap) {
      const now = next.get(mid);
      if (!now || now.trackId !== old.trackId) this._unsubscribed(mid, old);
    }
    this._midMap = next;
    await pc.setRemoteDescription({ type: 'offer', sdp: msg.sdp });
    const answer = await pc.createAnswer();
    await pc.setLocalDescription(answer);
    if (pc !== this._subPc) return;
    this._sendRaw({ type: 'subscribe_answer', sdp: pc.localDescription.sdp });
    // m-lines reused without a new `track` event
    this._sweepSubscriptions();
  }

  /** @param {RTCTrackEvent} ev */
  _onSubscriberTrack(ev) {
    const mid = ev.transceiver && ev.transceiver.mid;
    if (mid == null) return;
    this._announce(String(mid), ev.track);
  }

  _sweepSubscriptions() {
    const pc = this._subPc;
    if (!pc) return;
    for (const tr of pc.getTransceivers()) {
      if (tr.mid == null || !this._midMap.has(tr.mid)) continue;
      if (tr.currentDirection === 'inactive' || tr.currentDirection === 'stopped') continue;
      this._announce(tr.mid, tr.receiver.track);
    }
  }

  /** @param {string} mid @param {MediaStreamTrack} mst */
  _announce(mid, mst) {
    const m = this._midMap.get(mid);
    const room = this._room;
    if (!m || !room) return; // not mapped yet: the sweep after the answer / `joined` retries
    const key = `${mid}|${m.trackId}`;
    if (this._announced.has(key)) return;
    const p = room.participants.get(m.participantId);
    if (!p) return; // participant not known yet: retried on trackpublished / next offer
    let t = p.tracks.get(m.trackId);
    if (!t) {
      t = new RemoteTrack({ id: m.trackId, kind: /** @type {any} */ (m.kind || mst.kind), source: /** @type {any} */ (m.source || (mst.kind === 'audio' ? 'microphone' : 'camera')), muted: false });
      p.tracks.set(t.id, t);
    }
    this._announced.add(key);
    t.mediaStreamTrack = mst;
    t.stream = new MediaStream([mst]);
    t.mid = mid;
    this._emit('tracksubscribed', { participantId: p.id, participant: p, track: t, mediaStreamTrack: mst, stream: t.stream });
  }

  _unsubscribed(mid, old) {
    const key = `${mid}|${old.trackId}`;
    if (!this._announced.delete(key)) return;
    const room = this._room;
    const p = room && room.participants.get(old.participantId);
    const t = p && p.tracks.get(old.trackId);
    if (t) { t.mediaStreamTrack = null; t.stream = null; t.mid = null; }
    this._emit('trackunsubscribed', { participantId: old.participantId, trackId: old.trackId, track: t || null });
  }

  /**
   * Ask the server for at most this size of a remote video track (simulcast layer choice), or pause it.
   * @param {string} trackId
   * @param {{maxWidth?: number, maxHeight?: number, paused?: boolean}} opts
   */
  setSubscription(trackId, opts = {}) {
    const msg = { type: 'set_subscription', trackId };
    if (opts.maxWidth != null) msg.maxWidth = Math.round(opts.maxWidth);
    if (opts.maxHeight != null) msg.maxHeight = Math.round(opts.maxHeight);
    if (opts.paused != null) msg.paused = !!opts.paused;
    this._sendQuiet(msg);
  }

  // ---------------------------------------------------------------- publisher PC

  /** Queue one publish negotiation (offers are strictly sequential). @returns {Promise<void>} */
  _negotiate() {
    if (this._negQueued) return this._negQueued;
    const pc = this._pubPc;
    const run = this._pubChain.catch(() => {}).then(() => {
      if (this._negQueued === run) this._negQueued = null;
      if (pc !== this._pubPc) throw new StrowgerError('cancelled', 'left the room');
      return this._negotiateOnce(pc);
    });
    this._negQueued = run;
    this._pubChain = run;
    return run;
  }

  /** @param {RTCPeerConnection} pc */
  async _negotiateOnce(pc) {
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    const tracks = [];
    for (const lt of this._local.values()) {
      const tr = lt.transceiver;
      if (tr.mid == null || tr.stopped || tr.currentDirection === 'stopped') continue;
      const label = { mid: tr.mid, source: lt.source };
      // The capture size lets the server size simulcast layers for set_subscription.
      const settings = lt.mediaStreamTrack && lt.mediaStreamTrack.getSettings ? lt.mediaStreamTrack.getSettings() : {};
      if (settings.width) label.width = settings.width;
      if (settings.height) label.height = settings.height;
      tracks.push(label);
    }
    let reply;
    try {
      reply = await this._request({ type: 'publish_offer', sdp: pc.localDescription.sdp, tracks }, 'publish_answer');
    } catch (e) {
      // No rollback: Chrome mis-handles a rolled-back then stopped transceiver ("Transceiver type
      // does not match media description type"). The next offer is simply created from
      // `have-local-offer`, which JSEP allows.
      if (e instanceof StrowgerError && (e.code === 'disconnected' || e.code === 'timeout')) this._needsRenegotiation = true;
      throw e;
    }
    if (pc !== this._pubPc) return;
    // The answer names our own tracks by mid: learn their ids.
    if (Array.isArray(reply.tracks)) {
      for (const t of reply.tracks) {
        for (const lt of this._local.values()) {
          if (lt.transceiver && lt.transceiver.mid === String(t.mid)) lt.trackId = t.id;
        }
      }
    }
    await pc.setRemoteDescription({ type: 'answer', sdp: reply.sdp });
    this._needsRenegotiation = false;
  }

  /** @param {TrackSource} source @param {MediaStreamTrack} track @param {boolean} simulcast */
  async _publish(source, track, simulcast) {
    const pc = this._pubPc;
    if (!this._room || !pc) { track.stop(); throw new StrowgerError('out_of_order', 'join a room first'); }
    if (this._local.has(source)) { track.stop(); throw new StrowgerError('out_of_order', `${source} already published`); }
    /** @type {RTCRtpTransceiverInit} */
    const init = { direction: 'sendonly', streams: [] };
    if (simulcast) {
      init.sendEncodings = [
        { rid: 'q', scaleResolutionDownBy: 4, maxBitrate: 150_000 },
        { rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 500_000 },
        { rid: 'f', scaleResolutionDownBy: 1, maxBitrate: 1_500_000 },
      ];
    }
    const transceiver = pc.addTransceiver(track, init);
    const local = new LocalTrack(source, track, transceiver, simulcast);
    this._local.set(source, local);
    track.addEventListener('ended', () => {
      // The user stopped sharing from the browser UI, or the device went away.
      if (this._local.get(source) === local) {
        this._emit('localtrackended', { source, track: local });
        this.unpublish(source).catch(() => {});
      }
    });
    try {
      await this._negotiate();
    } catch (e) {
      if (this._local.get(source) === local) {
        this._local.delete(source);
        try { transceiver.stop(); } catch { /* ignore */ }
      }
      track.stop();
      throw e;
    }
    return local;
  }

  /**
   * @param {'audio'|'video'} kind
   * @param {string|undefined} deviceId
   * @param {MediaTrackConstraints} [extra]
   */
  async _capture(kind, deviceId, extra = {}) {
    const c = { ...extra };
    if (deviceId) c.deviceId = { exact: deviceId };
    const stream = await navigator.mediaDevices.getUserMedia(kind === 'audio' ? { audio: Object.keys(c).length ? c : true } : { video: c });
    return kind === 'audio' ? stream.getAudioTracks()[0] : stream.getVideoTracks()[0];
  }

  /**
   * Capture and publish the microphone. getUserMedia errors (NotAllowedError, NotFoundError...)
   * are passed through unchanged.
   * @param {{deviceId?: string}} [opts]
   * @returns {Promise<LocalTrack>}
   */
  async publishMicrophone(opts = {}) {
    this._assertCanPublish('microphone');
    const track = await this._capture('audio', opts.deviceId, { echoCancellation: true, noiseSuppression: true, autoGainControl: true });
    return this._publish('microphone', track, false);
  }

  /**
   * Capture and publish the camera, with simulcast (rids q/h/f) unless `simulcast:false`.
   * @param {{deviceId?: string, simulcast?: boolean}} [opts]
   * @returns {Promise<LocalTrack>}
   */
  async publishCamera(opts = {}) {
    this._assertCanPublish('camera');
    const track = await this._capture('video', opts.deviceId, { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 30 } });
    return this._publish('camera', track, opts.simulcast !== false);
  }

  /**
   * Share a screen or window (getDisplayMedia). Stopping it from the browser UI unpublishes it.
   * @returns {Promise<LocalTrack>}
   */
  async publishScreen() {
    this._assertCanPublish('screen');
    const stream = await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: { ideal: 15 } }, audio: false });
    const track = stream.getVideoTracks()[0];
    for (const extra of stream.getAudioTracks()) extra.stop();
    try { track.contentHint = 'detail'; } catch { /* ignore */ }
    return this._publish('screen', track, false);
  }

  /** @param {TrackSource} source */
  _assertCanPublish(source) {
    if (!this._room || !this._pubPc) throw new StrowgerError('out_of_order', 'join a room first');
    if (this._local.has(source)) throw new StrowgerError('out_of_order', `${source} already published`);
  }

  /**
   * Stop publishing a source (stops its transceiver and renegotiates).
   * @param {TrackSource} source
   * @returns {Promise<void>}
   */
  async unpublish(source) {
    const local = this._local.get(source);
    if (!local) return;
    this._local.delete(source);
    try { local.mediaStreamTrack.stop(); } catch { /* ignore */ }
    try { local.transceiver.stop(); } catch { /* ignore */ }
    if (this._pubPc) await this._negotiate();
  }

  /**
   * Mute or unmute a published source: disables the track locally and tells the room.
   * @param {TrackSource} source
   * @param {boolean} muted
   * @returns {Promise<void>}
   */
  async setMuted(source, muted) {
    const local = this._local.get(source);
    if (!local) throw new StrowgerError('not_found', `${source} is not published`);
    local.mediaStreamTrack.enabled = !muted;
    local.muted = !!muted;
    this._sendQuiet({ type: 'mute', source, muted: !!muted });
  }

  /**
   * Switch a published microphone or camera to another device without renegotiating
   * (replaces the sender's track). Keeps the mute state.
   * @param {'microphone'|'camera'} source
   * @param {string} deviceId
   * @returns {Promise<LocalTrack>}
   */
  async switchDevice(source, deviceId) {
    const local = this._local.get(source);
    if (!local) throw new StrowgerError('not_found', `${source} is not published`);
    const old = local.mediaStreamTrack;
    // Some devices cannot be opened twice: release the old one first for cameras.
    if (source === 'camera') old.stop();
    let track;
    try {
      track = source === 'camera'
        ? await this._capture('video', deviceId, { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 30 } })
        : await this._capture('audio', deviceId, { echoCancellation: true, noiseSuppression: true, autoGainControl: true });
    } catch (e) {
      if (source === 'camera') {
        // Try to get the previous camera back so we are not left with a dead track.
        try {
          const back = await this._capture('video', old.getSettings().deviceId);
          await this._replaceLocal(local, back);
        } catch { /* ignore */ }
      }
      throw e;
    }
    if (this._local.get(source) !== local) { track.stop(); throw new StrowgerError('cancelled', `${source} was unpublished`); }
    await this._replaceLocal(local, track);
    old.stop();
    return local;
  }

  /** @param {LocalTrack} local @param {MediaStreamTrack} track */
  async _replaceLocal(local, track) {
    track.enabled = !local.muted;
    await local.transceiver.sender.replaceTrack(track);
    local.mediaStreamTrack = track;
    local.stream = new MediaStream([track]);
    const source = local.source;
    track.addEventListener('ended', () => {
      if (this._local.get(source) === local && local.mediaStreamTrack === track) {
        this._emit('localtrackended', { source, track: local });
        this.unpublish(source).catch(() => {});
      }
    });
  }
}

export default StrowgerClient;
