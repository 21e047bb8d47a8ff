// Shared helpers of the end-to-end tests: headless Chromium peers (playwright-core) driving the
// Strowger browser SDK against the real server. run.sh starts the server and runs node inside a
// private network namespace, so everything here talks to 127.0.0.1 and `tc` acts on that
// namespace's `lo` only.
//
// Every wait is bounded: `poll` re-checks a condition until a deadline and fails with the last
// observed value, so a failure says what was seen, not just "timeout".
import { execFileSync, execFile } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync, openSync, writeSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

export const BASE = process.env.STROWGER_E2E_URL || 'http://127.0.0.1:8080';
export const RTC_PORT = Number(process.env.STROWGER_E2E_RTC_PORT || 7882);
export const OUT = process.env.STROWGER_E2E_OUT || new URL('./out', import.meta.url).pathname;
const BIN = process.env.STROWGER_BIN || new URL('../../target/release/strowger', import.meta.url).pathname;
export const API_KEY = process.env.STROWGER_API_KEY || 'e2e';
export const API_SECRET = process.env.STROWGER_API_SECRET || '';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Unique-ish suffix so identities and rooms of one run never collide with another test's. */
export function uid(prefix = '') {
  return prefix + randomBytes(3).toString('hex');
}

// ---------------------------------------------------------------------------------------------
// Polling with a deadline

/**
 * Calls `fn` every `interval` ms until it returns a truthy value (which is returned) or
 * `timeout` ms pass. The timeout error shows what `fn` returned or threw last, formatted by
 * `describe(last)` when given.
 */
export async function poll(what, fn, { timeout = 10_000, interval = 200, describe } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  let lastErr;
  for (;;) {
    try {
      last = await fn();
      lastErr = undefined;
      if (last) return last;
    } catch (e) {
      lastErr = e;
    }
    if (Date.now() >= deadline) break;
    await sleep(interval);
  }
  const seen = lastErr ? `error: ${lastErr.message}` : describe ? describe(last) : JSON.stringify(last);
  throw new Error(`timed out after ${timeout} ms waiting for ${what}; last seen: ${seen}`);
}

/** `p` or an error after `ms`. */
export function within(ms, what, p) {
  let t;
  return Promise.race([
    p,
    new Promise((_, rej) => {
      t = setTimeout(() => rej(new Error(`${what} did not settle within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(t));
}

// ---------------------------------------------------------------------------------------------
// Tokens

/** A real token from `strowger token create` (same key and secret as the running server). */
export function mintToken({ identity, name = identity, room, ttl, publish = true, screenshare = true }) {
  const args = ['token', 'create', '--identity', identity, '--name', name];
  if (room !== undefined) args.push('--room', room);
  if (ttl !== undefined) args.push('--ttl', String(ttl));
  if (!publish) args.push('--no-publish');
  if (!screenshare) args.push('--no-screenshare');
  const out = execFileSync(BIN, args, {
    env: { ...process.env, STROWGER_API_KEY: API_KEY, STROWGER_API_SECRET: API_SECRET, STROWGER_LOG: 'error' },
    timeout: 10_000,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const token = out.trim().split(/\s+/).pop();
  if (!/^[\w-]+\.[\w-]+\.[\w-]*$/.test(token)) throw new Error(`token create printed no JWT: ${JSON.stringify(out)}`);
  return token;
}

const b64url = (x) => Buffer.from(typeof x === 'string' ? x : JSON.stringify(x)).toString('base64url');

/** An HS256 JWT with these claims, signed with `secret` (the server's by default). */
export function signToken(claims, secret = API_SECRET) {
  const head = b64url({ alg: 'HS256', typ: 'JWT' });
  const body = b64url(claims);
  const sig = createHmac('sha256', secret).update(`${head}.${body}`).digest('base64url');
  return `${head}.${body}.${sig}`;
}

export function decodeJwt(token) {
  const [h, p] = token.split('.');
  return { header: JSON.parse(Buffer.from(h, 'base64url')), payload: JSON.parse(Buffer.from(p, 'base64url')) };
}

// ---------------------------------------------------------------------------------------------
// Server side observations

export async function metricsText() {
  const res = await within(5_000, 'GET /metrics', fetch(`${BASE}/metrics`));
  if (res.status !== 200) throw new Error(`GET /metrics: ${res.status}`);
  return res.text();
}

/** Samples of /metrics as [{name, labels, value}] (comments skipped). */
export function parseMetrics(text) {
  const out = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)/);
    if (m) out.push({ name: m[1], labels: m[2] || '', value: Number(m[3]) });
  }
  return out;
}

/** Sum of the samples whose name matches `re`, or null when /metrics has none. */
export async function gauge(re) {
  const hits = parseMetrics(await metricsText()).filter((s) => re.test(s.name));
  return hits.length ? hits.reduce((a, s) => a + s.value, 0) : null;
}

/**
 * The current number of participants on the server: `strowger_participants`, or else the one
 * unlabelled gauge whose name ends in `participants`. Fails listing the metric names when there
 * is none (per-room gauges such as `strowger_room_participants{room=...}` are not totals).
 */
export async function participantsGauge() {
  const samples = parseMetrics(await metricsText());
  const exact = samples.find((s) => s.name === 'strowger_participants' && !s.labels);
  if (exact) return exact.value;
  const hits = samples.filter((s) => /participants$/.test(s.name) && !s.labels);
  if (hits.length !== 1) {
    const names = [...new Set(samples.map((s) => s.name))].join(', ');
    throw new Error(`no single participants total in /metrics; metric names: ${names}`);
  }
  return hits[0].value;
}

// ---------------------------------------------------------------------------------------------
// Traffic control on this namespace's lo (htb: rate limit one UDP destination port)

function sh(cmd, args) {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: 5_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')}: ${stderr || err.message}`));
      else resolve(stdout);
    });
  });
}

/**
 * Limits UDP packets sent to 127.0.0.1:`port` (server → that peer connection) to `kbit` kbit/s,
 * with a short queue so excess is dropped rather than delayed for seconds. Returns `remove()`.
 */
export async function limitUdpPort(port, kbit) {
  await sh('tc', ['qdisc', 'del', 'dev', 'lo', 'root']).catch(() => {});
  await sh('tc', ['qdisc', 'add', 'dev', 'lo', 'root', 'handle', '1:', 'htb', 'default', '10']);
  await sh('tc', ['class', 'add', 'dev', 'lo', 'parent', '1:', 'classid', '1:10', 'htb', 'rate', '10gbit', 'quantum', '200000']);
  await sh('tc', ['class', 'add', 'dev', 'lo', 'parent', '1:', 'classid', '1:20', 'htb', 'rate', `${kbit}kbit`, 'ceil', `${kbit}kbit`, 'quantum', '1514']);
  await sh('tc', ['qdisc', 'add', 'dev', 'lo', 'parent', '1:20', 'handle', '20:', 'pfifo', 'limit', '30']);
  await sh('tc', ['filter', 'add', 'dev', 'lo', 'parent', '1:', 'protocol', 'ip', 'prio', '1', 'u32',
    'match', 'ip', 'protocol', '17', '0xff', 'match', 'ip', 'dport', String(port), '0xffff', 'flowid', '1:20']);
  return {
    stats: () => sh('tc', ['-s', 'class', 'show', 'dev', 'lo']),
    remove: () => sh('tc', ['qdisc', 'del', 'dev', 'lo', 'root']).catch(() => {}),
  };
}

// ---------------------------------------------------------------------------------------------
// Browsers and peers

export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream',
  '--allow-loopback-in-peer-connection',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
  '--autoplay-policy=no-user-gesture-required',
];

/** One headless Chromium; `args` are added flags (e.g. `--use-file-for-fake-video-capture=`). */
export async function launchBrowser({ args = [] } = {}) {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: [...CHROMIUM_ARGS, ...args],
    timeout: 30_000,
  });
}

/**
 * In-page bootstrap: imports the SDK, creates `window.c`, and records every SDK event into
 * `window.__ev` as plain JSON (tracks and streams replaced by their ids). Tracks from
 * `tracksubscribed` are kept in `window.__subs` and video ones attached to muted <video>
 * elements, as an application would.
 */
async function bootstrap(page) {
  await page.evaluate(async () => {
    const m = await import('/sdk/strowger.js');
    window.__sdk = m;
    const plain = (x, depth = 0) => {
      if (x === null || x === undefined) return x;
      if (typeof MediaStreamTrack !== 'undefined' && x instanceof MediaStreamTrack) return { mediaStreamTrackId: x.id, kind: x.kind };
      if (typeof MediaStream !== 'undefined' && x instanceof MediaStream) return { mediaStreamId: x.id };
      if (typeof RTCPeerConnection !== 'undefined' && x instanceof RTCPeerConnection) return '[RTCPeerConnection]';
      if (typeof x === 'function') return undefined;
      if (typeof x !== 'object') return x;
      if (depth > 6) return '[deep]';
      if (x instanceof Map) return Object.fromEntries([...x].map(([k, v]) => [k, plain(v, depth + 1)]));
      if (Array.isArray(x)) return x.map((v) => plain(v, depth + 1));
      if (x instanceof Error) return { name: x.name, code: x.code, message: x.message };
      const o = {};
      for (const k of Object.keys(x)) o[k] = plain(x[k], depth + 1);
      return o;
    };
    window.__plain = plain;
    window.__bounded = (p, ms, what) => {
      let t;
      return Promise.race([
        p,
        new Promise((_, rej) => {
          t = setTimeout(() => rej(Object.assign(new Error(`${what} did not settle within ${ms} ms`), { code: 'e2e_timeout' })), ms);
        }),
      ]).finally(() => clearTimeout(t));
    };
    window.__ev = [];
    window.__subs = [];
    const c = new m.StrowgerClient();
    window.c = c;
    const names = ['incomingcall', 'callringing', 'callaccepted', 'callended', 'participantjoined', 'participantleft',
      'trackpublished', 'trackunpublished', 'tracksubscribed', 'trackunsubscribed', 'trackmuted', 'activespeakers',
      'presence', 'roomclosed', 'reconnecting', 'reconnected', 'disconnected', 'error'];
    for (const name of names) {
      c.addEventListener(name, (e) => {
        const d = e.detail;
        window.__ev.push({ type: name, t: Date.now(), detail: plain(d) });
        if (name === 'tracksubscribed' && d && d.mediaStreamTrack) {
          const mst = d.mediaStreamTrack;
          window.__subs.push({
            participantId: d.participantId,
            trackId: d.track && d.track.id,
            kind: (d.track && d.track.kind) || mst.kind,
            source: d.track && d.track.source,
            mediaStreamTrackId: mst.id,
            t: Date.now(),
          });
          if (mst.kind === 'video') {
            const v = document.createElement('video');
            v.muted = true;
            v.autoplay = true;
            v.playsInline = true;
            v.dataset.track = mst.id;
            v.srcObject = d.stream instanceof MediaStream ? d.stream : new MediaStream([mst]);
            document.body.appendChild(v);
            v.play().catch(() => {});
          }
        }
      });
    }
  });
}

export class Peer {
  constructor(page, identity, name, log) {
    this.page = page;
    this.identity = identity;
    this.name = name;
    this.log = log;
    this.welcome = undefined;
  }

  /**
   * Calls `window.c[method](...args)` in the page, bounded by `ms`. Returns
   * `{ok:true, value}` or `{ok:false, code, name, message}` (StrowgerError.code survives).
   */
  async try(method, args = [], ms = 15_000) {
    return this.page.evaluate(
      async ([method, args, ms]) => {
        try {
          if (typeof window.c[method] !== 'function') throw Object.assign(new Error(`SDK has no method ${method}`), { code: 'e2e_no_method' });
          const v = await window.__bounded(Promise.resolve(window.c[method](...args)), ms, `${method}()`);
          return { ok: true, value: window.__plain(v) };
        } catch (e) {
          return { ok: false, code: e && e.code, name: e && e.name, message: String((e && e.message) || e) };
        }
      },
      [method, args, ms],
    );
  }

  /** Like `try` but throws with the SDK's error code on failure. */
  async sdk(method, ...args) {
    const r = await this.try(method, args);
    if (!r.ok) throw new Error(`${this.identity}: ${method}(${args.map((a) => JSON.stringify(a)).join(', ')}) failed: [${r.code}] ${r.message}`);
    return r.value;
  }

  async connect(token) {
    this.welcome = await this.sdk('connect', token);
    return this.welcome;
  }

  /** Every recorded SDK event of `type` (all when omitted), oldest first. */
  async events(type) {
    const ev = await this.page.evaluate(() => window.__ev);
    return type ? ev.filter((e) => e.type === type) : ev;
  }

  /** Waits for an event of `type` whose detail satisfies `pred`; returns its detail. */
  async waitEvent(type, pred = () => true, { timeout = 10_000 } = {}) {
    let seen = [];
    const hit = await poll(
      `${this.identity}: event ${type}`,
      async () => {
        seen = await this.events();
        const e = seen.find((e) => e.type === type && pred(e.detail));
        return e && { detail: e.detail };
      },
      { timeout, interval: 100, describe: () => `events so far: ${summariseEvents(seen)}` },
    );
    return hit.detail;
  }

  /** Asserts no event of `type` matching `pred` is recorded (now). */
  async noEvent(type, pred = () => true) {
    const ev = (await this.events(type)).filter((e) => pred(e.detail));
    if (ev.length) throw new Error(`${this.identity}: unexpected ${type}: ${JSON.stringify(ev.map((e) => e.detail))}`);
  }

  /** Tracks received so far (from `tracksubscribed`). */
  async subscriptions() {
    return this.page.evaluate(() => window.__subs);
  }

  /**
   * Waits until `count` tracks matching `pred` were subscribed (at or after `since`, a
   * Date.now() value); returns them.
   */
  async waitSubscriptions(pred, count, { timeout = 15_000, what = 'tracks', since = 0 } = {}) {
    let subs = [];
    await poll(
      `${this.identity}: ${count} subscribed ${what}`,
      async () => {
        subs = (await this.subscriptions()).filter((s) => s.t >= since && pred(s));
        return subs.length >= count;
      },
      { timeout, describe: () => `${subs.length} matching; all subscriptions: ${JSON.stringify(subs)}` },
    );
    return subs;
  }

  /** The SDK's `room` as plain JSON (participants and their tracks as objects by id). */
  async room() {
    return this.page.evaluate(() => window.__plain(window.c.room));
  }

  /**
   * inbound-rtp stats of the subscriber connection (or `pc` = 'publisherPc'), one object per
   * stream: {kind, trackIdentifier, mid, ssrc, packetsReceived, packetsLost, bytesReceived,
   * framesDecoded, framesReceived, frameWidth, frameHeight, framesPerSecond}.
   */
  async inbound(pc = 'subscriberPc') {
    return this.page.evaluate(async (pc) => {
      const conn = window.c[pc];
      if (!conn) return [];
      const stats = await conn.getStats();
      const out = [];
      for (const r of stats.values()) {
        if (r.type !== 'inbound-rtp') continue;
        out.push({
          kind: r.kind, trackIdentifier: r.trackIdentifier, mid: r.mid, ssrc: r.ssrc,
          packetsReceived: r.packetsReceived || 0, packetsLost: r.packetsLost || 0, bytesReceived: r.bytesReceived || 0,
          framesDecoded: r.framesDecoded || 0, framesReceived: r.framesReceived || 0, keyFramesDecoded: r.keyFramesDecoded || 0,
          frameWidth: r.frameWidth || 0, frameHeight: r.frameHeight || 0, framesPerSecond: r.framesPerSecond || 0,
          nackCount: r.nackCount || 0, pliCount: r.pliCount || 0, firCount: r.firCount || 0,
          lastPacketReceivedTimestamp: r.lastPacketReceivedTimestamp || 0,
        });
      }
      return out;
    }, pc);
  }

  /** outbound-rtp stats of the publisher connection (per simulcast layer: rid, frameWidth, ...). */
  async outbound() {
    return this.page.evaluate(async () => {
      const conn = window.c.publisherPc;
      if (!conn) return [];
      const stats = await conn.getStats();
      const out = [];
      for (const r of stats.values()) {
        if (r.type !== 'outbound-rtp') continue;
        out.push({
          kind: r.kind, rid: r.rid, mid: r.mid, ssrc: r.ssrc, active: r.active, packetsSent: r.packetsSent || 0,
          bytesSent: r.bytesSent || 0, framesEncoded: r.framesEncoded || 0, frameWidth: r.frameWidth || 0,
          frameHeight: r.frameHeight || 0, qualityLimitationReason: r.qualityLimitationReason,
          targetBitrate: r.targetBitrate, scalabilityMode: r.scalabilityMode,
        });
      }
      return out;
    });
  }

  /** Local and remote address of the selected candidate pair of `pc`. */
  async selectedPair(pc = 'subscriberPc') {
    return this.page.evaluate(async (pc) => {
      const conn = window.c[pc];
      if (!conn) return null;
      const stats = await conn.getStats();
      let pairId;
      for (const r of stats.values()) if (r.type === 'transport' && r.selectedCandidatePairId) pairId = r.selectedCandidatePairId;
      let pair = pairId && stats.get(pairId);
      if (!pair) for (const r of stats.values()) if (r.type === 'candidate-pair' && r.nominated && r.state === 'succeeded') pair = r;
      if (!pair) return null;
      const l = stats.get(pair.localCandidateId);
      const rm = stats.get(pair.remoteCandidateId);
      return {
        local: l && { address: l.address, port: l.port, protocol: l.protocol, type: l.candidateType },
        remote: rm && { address: rm.address, port: rm.port, protocol: rm.protocol, type: rm.candidateType },
        availableOutgoingBitrate: pair.availableOutgoingBitrate,
        currentRoundTripTime: pair.currentRoundTripTime,
      };
    }, pc);
  }

  /**
   * Waits until media flows on each of `tracks` (subscriptions from `waitSubscriptions`): for
   * video, framesDecoded > 0 and grown by `minFrames` since first seen > 0; for audio,
   * packetsReceived grown by `minPackets`. Returns the last inbound stats per track.
   */
  async waitFlow(tracks, { timeout = 15_000, minFrames = 5, minPackets = 20, what = 'media' } = {}) {
    const first = new Map();
    let last = [];
    let missing = [];
    await poll(
      `${this.identity}: ${what} flowing on ${tracks.length} tracks`,
      async () => {
        last = await this.inbound();
        missing = [];
        for (const t of tracks) {
          const s = statsFor(last, t.mediaStreamTrackId);
          const v = s ? (t.kind === 'video' ? s.framesDecoded : s.packetsReceived) : 0;
          if (!first.has(t.mediaStreamTrackId) && v > 0) first.set(t.mediaStreamTrackId, v);
          const need = t.kind === 'video' ? minFrames : minPackets;
          const base = first.get(t.mediaStreamTrackId);
          if (!(v > 0 && base !== undefined && v - base >= need)) missing.push({ ...t, stats: s || null });
        }
        return missing.length === 0;
      },
      {
        timeout,
        interval: 250,
        describe: () => `not flowing: ${JSON.stringify(missing)}; inbound-rtp: ${JSON.stringify(last)}`,
      },
    );
    return tracks.map((t) => ({ ...t, stats: statsFor(last, t.mediaStreamTrackId) }));
  }

  /** Polls the inbound-rtp of one received track until `pred(stats)`; returns those stats. */
  async waitTrackStats(track, pred, { timeout = 20_000, what = 'condition' } = {}) {
    let s;
    const history = [];
    await poll(
      `${this.identity}: ${what} on track ${track.trackId}`,
      async () => {
        s = statsFor(await this.inbound(), track.mediaStreamTrackId);
        if (s) history.push(`${s.frameWidth}x${s.frameHeight}/${s.framesDecoded}f`);
        if (history.length > 12) history.shift();
        return s && pred(s);
      },
      { timeout, interval: 250, describe: () => `stats ${JSON.stringify(s)}; recent size/frames: ${history.join(' ')}` },
    );
    return s;
  }
}

/**
 * The inbound-rtp of one received track (by MediaStreamTrack id = `trackIdentifier`). When an
 * m-line was reused (a new SSRC for the same receiver track), counters are summed over its
 * streams and sizes come from the one that received a packet last.
 */
export function statsFor(inbound, mediaStreamTrackId) {
  const rs = inbound.filter((r) => r.trackIdentifier === mediaStreamTrackId);
  if (rs.length === 0) return undefined;
  if (rs.length === 1) return rs[0];
  const latest = rs.reduce((a, b) => (b.lastPacketReceivedTimestamp > a.lastPacketReceivedTimestamp ? b : a));
  const sum = (k) => rs.reduce((a, r) => a + (r[k] || 0), 0);
  return {
    ...latest,
    streams: rs.length,
    packetsReceived: sum('packetsReceived'),
    bytesReceived: sum('bytesReceived'),
    framesDecoded: sum('framesDecoded'),
    framesReceived: sum('framesReceived'),
  };
}

function summariseEvents(ev) {
  if (!ev.length) return '(none)';
  return ev
    .slice(-15)
    .map((e) => `${e.type}${e.detail ? ' ' + JSON.stringify(e.detail).slice(0, 160) : ''}`)
    .join(' | ');
}

/**
 * Opens a page in `browser` on the server's origin, loads the SDK and records its events.
 * With `token` given, also connects. Console output and page errors go to the peer's log.
 */
export async function newPeer(browser, { identity, name = identity, token, context } = {}) {
  const ctx = context || (await browser.newContext());
  const page = await ctx.newPage();
  const log = [];
  const stamp = () => new Date().toISOString().slice(11, 23);
  page.on('console', (m) => log.push(`${stamp()} console.${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => log.push(`${stamp()} pageerror: ${e.message}`));
  page.on('crash', () => log.push(`${stamp()} page crashed`));
  page.setDefaultTimeout(20_000);
  await page.goto(`${BASE}/`, { timeout: 15_000 });
  await bootstrap(page);
  const peer = new Peer(page, identity, name, log);
  if (token) await peer.connect(token);
  return peer;
}

/** Connects a peer with a minted token (room grant `room`, default '*'). */
export async function connectedPeer(browser, identity, { room = '*', ...opts } = {}) {
  const token = mintToken({ identity, name: opts.name || identity, room, ...opts });
  return newPeer(browser, { identity, name: opts.name, token });
}

/** A camera size light enough for several encoders and decoders on two cores. */
export const SMALL_CAMERA = { width: 640, height: 360, frameRate: 15 };

/**
 * Joins `room` and publishes microphone and camera; returns the joined room. The SDK captures
 * the camera at 1280x720 (the fake camera obliges); `cameraConstraints` (e.g. SMALL_CAMERA)
 * are applied to the published track afterwards, as an application could.
 */
export async function joinAndPublish(peer, room, { camera = true, microphone = true, simulcast = false, cameraConstraints } = {}) {
  const joined = await peer.sdk('joinRoom', room);
  if (microphone) await peer.sdk('publishMicrophone');
  if (camera) {
    await peer.sdk('publishCamera', { simulcast });
    if (cameraConstraints) {
      await peer.page.evaluate((c) => window.c.localTracks.get('camera').mediaStreamTrack.applyConstraints(c), cameraConstraints);
    }
  }
  return joined;
}

/** The participant id a peer has in its room. */
export async function participantId(peer) {
  return peer.page.evaluate(() => window.c.room && window.c.room.participantId);
}

/**
 * Writes the browser logs and recorded events of `peers` to OUT/<label>-<identity>.log and
 * prints where; use from a test's failure path (see `withDiagnostics`).
 */
export async function dumpPeers(label, peers) {
  mkdirSync(OUT, { recursive: true });
  for (const p of peers) {
    if (!p) continue;
    let events = [];
    let inbound = [];
    try {
      events = await within(3_000, 'events', p.events());
      inbound = await within(3_000, 'stats', p.inbound());
    } catch {}
    const file = join(OUT, `${label}-${p.identity}.log`.replace(/[^\w.-]+/g, '_'));
    writeFileSync(file, [...p.log, '--- events ---', ...events.map((e) => JSON.stringify(e)), '--- inbound-rtp ---', JSON.stringify(inbound, null, 1)].join('\n') + '\n');
    process.stderr.write(`  diagnostics: ${file}\n`);
  }
}

/** Runs `fn`; on failure dumps the peers' logs (peers read lazily) and rethrows. */
export async function withDiagnostics(label, peers, fn) {
  try {
    return await fn();
  } catch (e) {
    await dumpPeers(label, typeof peers === 'function' ? peers() : peers).catch(() => {});
    throw e;
  }
}

/** Leaves the room (if any) and closes the page, bounded; errors ignored (cleanup). */
export async function closePeer(peer) {
  if (!peer) return;
  try {
    await within(5_000, 'leave', peer.page.evaluate(async () => {
      try {
        if (window.c && window.c.room) await window.__bounded(Promise.resolve(window.c.leaveRoom()), 3000, 'leaveRoom');
      } catch {}
      try {
        if (window.c && window.c.connected) {
          window.c.disconnect();
          // Nothing observable tells that the close frame left; give it a moment before the page
          // goes, so the server ends the session now instead of holding it for a resume.
          await new Promise((r) => setTimeout(r, 100));
        }
      } catch {}
    }));
  } catch {}
  await within(5_000, 'page close', peer.page.context().close()).catch(() => {});
}

/**
 * A 1280x720 4:2:0 y4m clip (moving bars, 20 fps, `frames` frames, looped by Chromium) for
 * `--use-file-for-fake-video-capture`: large enough for three simulcast layers.
 */
export function writeY4m(path, { width = 1280, height = 720, frames = 20, fps = 20 } = {}) {
  const fd = openSync(path, 'w');
  try {
    writeSync(fd, `YUV4MPEG2 W${width} H${height} F${fps}:1 Ip A1:1 C420jpeg\n`);
    const ySize = width * height;
    const cSize = (width / 2) * (height / 2);
    const frame = Buffer.alloc(6 + ySize + 2 * cSize);
    for (let f = 0; f < frames; f++) {
      frame.write('FRAME\n', 0, 'latin1');
      const shift = Math.floor((f * width) / frames);
      // Luma: vertical bars moving right, plus a horizontal gradient so the encoder has detail.
      const row = Buffer.alloc(width);
      for (let x = 0; x < width; x++) row[x] = (((x + shift) >> 6) & 1 ? 200 : 60) + ((x * 7) & 31);
      for (let y = 0; y < height; y++) {
        row.copy(frame, 6 + y * width);
        frame[6 + y * width + ((y * 3 + f * 11) % width)] = 255; // a moving diagonal of detail
      }
      frame.fill(90 + f * 3, 6 + ySize, 6 + ySize + cSize);
      frame.fill(160 - f * 2, 6 + ySize + cSize);
      writeSync(fd, frame);
    }
  } finally {
    closeSync(fd);
  }
}
