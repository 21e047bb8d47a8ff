// Type declarations for the Strowger browser SDK (strowger.js).

export type TrackSource = 'microphone' | 'camera' | 'screen';
export type TrackKind = 'audio' | 'video';

export interface Grants {
  room?: string;
  publish?: boolean;
  subscribe?: boolean;
  screenshare?: boolean;
  record?: boolean;
  admin?: boolean;
  call?: boolean;
}

export interface Welcome {
  type: 'welcome';
  sessionId: string;
  resumeKey: string;
  resumed: boolean;
  identity: string;
  name: string;
  grants: Grants;
  iceServers: RTCIceServer[];
}

export interface PresenceUser {
  identity: string;
  name: string;
  devices: number;
}

export interface Person {
  identity: string;
  name: string;
}

/** A track as described by the server (`TRACK` in docs/protocol.md). */
export interface TrackInfo {
  id: string;
  kind: TrackKind;
  source: TrackSource;
  muted: boolean;
  simulcast?: boolean;
}

export class StrowgerError extends Error {
  constructor(code: string, message?: string);
  /** Protocol error code (`room_full`, `forbidden`, `unauthorized`, ...), call-end reason
   * (`offline`, `busy`, `rejected`, `no_answer`, ...) or SDK code (`timeout`, `disconnected`,
   * `not_connected`, `out_of_order`, `cancelled`, `network`). */
  code: string;
}

export class LocalTrack {
  readonly source: TrackSource;
  readonly kind: TrackKind;
  /** Replaced by `switchDevice`. */
  readonly mediaStreamTrack: MediaStreamTrack;
  /** A stream holding only this track (local preview). */
  readonly stream: MediaStream;
  readonly transceiver: RTCRtpTransceiver;
  readonly simulcast: boolean;
  readonly muted: boolean;
  /** Server track id if the server announced it to us, else null. */
  readonly trackId: string | null;
  readonly mid: string | null;
  readonly deviceId: string | null;
}

export class RemoteTrack {
  readonly id: string;
  readonly kind: TrackKind;
  readonly source: TrackSource;
  readonly muted: boolean;
  readonly simulcast: boolean;
  /** Set once subscribed (`tracksubscribed`), null otherwise. */
  readonly mediaStreamTrack: MediaStreamTrack | null;
  /** A stream holding only this track, once subscribed. */
  readonly stream: MediaStream | null;
  readonly mid: string | null;
}

export class RemoteParticipant {
  readonly id: string;
  readonly identity: string;
  readonly name: string;
  readonly tracks: Map<string, RemoteTrack>;
}

export class Room {
  readonly name: string;
  /** Our own participant id. */
  readonly participantId: string;
  /** Everyone else in the room. */
  readonly participants: Map<string, RemoteParticipant>;
  /** Participant ids, loudest first (may include our own). */
  readonly activeSpeakers: string[];
}

export class Call {
  readonly id: string;
  readonly callId: string;
  readonly direction: 'outgoing' | 'incoming';
  readonly peer: Person;
  readonly video: boolean;
  readonly state: 'ringing' | 'accepted' | 'ended';
  /** `call:<callId>` once accepted. */
  readonly room: string | null;
  readonly endReason: string | null;
}

export type ConnectionState = 'idle' | 'connecting' | 'connected' | 'reconnecting' | 'closed';

export interface StrowgerEventMap {
  presence: CustomEvent<{ users: PresenceUser[]; truncated: boolean }>;
  incomingcall: CustomEvent<{ callId: string; from: Person; video: boolean; call: Call }>;
  callringing: CustomEvent<{ callId: string; to: Person; call: Call }>;
  callaccepted: CustomEvent<{ callId: string; room: string; peer: Person; call: Call }>;
  callended: CustomEvent<{ callId: string; reason: string; call: Call }>;
  participantjoined: CustomEvent<{ participant: RemoteParticipant }>;
  participantleft: CustomEvent<{ participantId: string; participant: RemoteParticipant | null }>;
  trackpublished: CustomEvent<{ participantId: string; participant: RemoteParticipant; track: RemoteTrack }>;
  trackunpublished: CustomEvent<{ participantId: string; participant: RemoteParticipant; trackId: string; track: RemoteTrack | null }>;
  tracksubscribed: CustomEvent<{ participantId: string; participant: RemoteParticipant; track: RemoteTrack; mediaStreamTrack: MediaStreamTrack; stream: MediaStream }>;
  trackunsubscribed: CustomEvent<{ participantId: string; trackId: string; track: RemoteTrack | null }>;
  trackmuted: CustomEvent<{ participantId: string; participant: RemoteParticipant | null; trackId: string; muted: boolean; track: RemoteTrack | null }>;
  activespeakers: CustomEvent<{ speakers: string[] }>;
  roomclosed: CustomEvent<{ room: string; reason: string }>;
  roomleft: CustomEvent<{ room: string; reason: string }>;
  localtrackended: CustomEvent<{ source: TrackSource; track: LocalTrack }>;
  connectionstatechange: CustomEvent<{ pc: 'publisher' | 'subscriber'; state: RTCPeerConnectionState }>;
  reconnecting: CustomEvent<{ attempt: number }>;
  reconnected: CustomEvent<{ attempt: number; sessionId: string }>;
  /** reason: 'client' | 'session_lost' | 'network' | 'unauthorized' | 'rate_limited' | 'too_large'.
   * With 'session_lost' the client is still connected (`connected: true`) on a fresh session:
   * room and calls are gone and must be rejoined. */
  disconnected: CustomEvent<{ reason: string; connected: boolean }>;
  error: CustomEvent<{ code: string; message: string; id?: string | null }>;
}

export interface StrowgerClientOptions {
  /** Default: ws(s)://location.host/ws */
  url?: string;
  /** Resume the session after a network drop (default true). */
  reconnect?: boolean;
  /** Default 10000. */
  requestTimeoutMs?: number;
}

export class StrowgerClient extends EventTarget {
  constructor(opts?: StrowgerClientOptions);
  readonly url: string;
  reconnect: boolean;

  connect(token: string): Promise<Welcome>;
  disconnect(): void;

  readonly identity: string;
  readonly name: string;
  readonly sessionId: string;
  readonly grants: Grants;
  readonly presence: PresenceUser[];
  readonly state: ConnectionState;
  readonly connected: boolean;

  // 1:1 calls
  call(identity: string, opts?: { video?: boolean }): Promise<Call>;
  accept(callId: string): Promise<void>;
  reject(callId: string): void;
  cancel(callId: string): void;
  hangup(callId: string): void;
  readonly calls: Call[];

  // rooms
  joinRoom(name: string): Promise<Room>;
  leaveRoom(): Promise<void>;
  publishMicrophone(opts?: { deviceId?: string }): Promise<LocalTrack>;
  publishCamera(opts?: { deviceId?: string; simulcast?: boolean }): Promise<LocalTrack>;
  publishScreen(): Promise<LocalTrack>;
  unpublish(source: TrackSource): Promise<void>;
  setMuted(source: TrackSource, muted: boolean): Promise<void>;
  switchDevice(source: 'microphone' | 'camera', deviceId: string): Promise<LocalTrack>;
  setSubscription(trackId: string, opts: { maxWidth?: number; maxHeight?: number; paused?: boolean }): void;

  readonly publisherPc: RTCPeerConnection | null;
  readonly subscriberPc: RTCPeerConnection | null;
  readonly room: Room | null;
  readonly localTracks: Map<TrackSource, LocalTrack>;

  addEventListener<K extends keyof StrowgerEventMap>(type: K, listener: (ev: StrowgerEventMap[K]) => any, options?: boolean | AddEventListenerOptions): void;
  addEventListener(type: string, listener: EventListenerOrEventListenerObject | null, options?: boolean | AddEventListenerOptions): void;
  removeEventListener<K extends keyof StrowgerEventMap>(type: K, listener: (ev: StrowgerEventMap[K]) => any, options?: boolean | EventListenerOptions): void;
  removeEventListener(type: string, listener: EventListenerOrEventListenerObject | null, options?: boolean | EventListenerOptions): void;
}

export default StrowgerClient;
