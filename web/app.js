// Strowger web app: built only on the public SDK in ./sdk/strowger.js.
import { StrowgerClient, StrowgerError } from './sdk/strowger.js';

// ------------------------------------------------------------------ helpers

const $ = (sel) => /** @type {HTMLElement} */ (document.querySelector(sel));

/**
 * Tiny DOM builder. Never sets innerHTML from data.
 * @param {string} tag @param {Record<string, any>} [props] @param {...(Node|string|null|undefined|false)} kids
 */
function h(tag, props = {}, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v == null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'style') el.setAttribute('style', v);
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k in el && typeof v !== 'string') /** @type {any} */ (el)[k] = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const kid of kids) if (kid != null && kid !== false) el.append(kid);
  return el;
}

function hueOf(s) {
  let x = 0;
  for (const c of String(s)) x = (x * 31 + c.codePointAt(0)) % 360;
  return x;
}
function initials(name) {
  const parts = String(name || '?').trim().split(/\s+/).filter(Boolean);
  const a = parts[0] ? [...parts[0]][0] : '?';
  const b = parts.length > 1 ? [...parts[parts.length - 1]][0] : '';
  return (a + b).toUpperCase();
}
function avatar(name, key) {
  return h('div', { class: 'avatar', style: `--hue:${hueOf(key || name)}`, 'aria-hidden': 'true' }, initials(name));
}

/** @param {string} token */
function decodeJwt(token) {
  try {
    const part = token.split('.')[1];
    const b64 = part.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(part.length / 4) * 4, '=');
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return null;
  }
}
function tokenExpired(token) {
  const c = decodeJwt(token);
  return !!(c && typeof c.exp === 'number' && c.exp * 1000 < Date.now());
}

function fmtDuration(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  const hh = Math.floor(s / 3600), mm = Math.floor((s % 3600) / 60), ss = s % 60;
  const p = (n) => String(n).padStart(2, '0');
  return hh ? `${hh}:${p(mm)}:${p(ss)}` : `${mm}:${p(ss)}`;
}

// ------------------------------------------------------------------ state

const K_TOKEN = 'strowger.token';
const K_ADMIN = 'strowger.adminToken';
const K_PREFS = 'strowger.prefs';

const client = new StrowgerClient();
/** @type {{mic?:string, cam?:string, out?:string, joinMic?:boolean, joinCam?:boolean, lastRoom?:string}} */
const prefs = (() => { try { return JSON.parse(localStorage.getItem(K_PREFS) || '{}') || {}; } catch { return {}; } })();
const savePrefs = () => { try { localStorage.setItem(K_PREFS, JSON.stringify(prefs)); } catch { /* private mode */ } };

/**
 * What the stage shows: a room or an accepted 1:1 call.
 * @type {null | {kind:'room'|'call', name:string, call?:any, startedAt:number, title:string}}
 */
let current = null;
/** Rejoin target after a lost session. */
let lostRoom = null;
/** calls we ended ourselves (so we do not tell the user "X hung up") */
const endedByMe = new Set();

// ------------------------------------------------------------------ toasts, banner, status

/**
 * @param {string} msg
 * @param {'info'|'ok'|'warn'|'error'} [kind]
 * @param {{timeout?:number, action?:{label:string, run:()=>void}}} [opts]
 */
function toast(msg, kind = 'info', opts = {}) {
  const box = $('#toasts');
  const close = () => el.remove();
  const el = h('div', { class: `toast ${kind}`, role: kind === 'error' ? 'alert' : 'status' },
    h('span', { class: 'msg' }, msg),
    opts.action ? h('button', { class: 'btn small', type: 'button', onclick: () => { close(); opts.action.run(); } }, opts.action.label) : null,
    h('button', { class: 'x', type: 'button', 'aria-label': 'Dismiss', onclick: close }, '×'));
  box.append(el);
  while (box.children.length > 4) box.firstElementChild.remove();
  const t = opts.timeout ?? (kind === 'error' ? 9000 : 5000);
  if (t > 0) setTimeout(close, t);
  return el;
}

/** @param {string|null} text @param {{bad?:boolean, action?:{label:string, run:()=>void}}} [opts] */
function banner(text, opts = {}) {
  const b = $('#netbanner');
  if (!text) { b.hidden = true; return; }
  $('#netbanner-text').textContent = text;
  b.classList.toggle('bad', !!opts.bad);
  const btn = /** @type {HTMLButtonElement} */ ($('#netbanner-action'));
  btn.hidden = !opts.action;
  btn.onclick = opts.action ? () => { banner(null); opts.action.run(); } : null;
  if (opts.action) btn.textContent = opts.action.label;
  b.hidden = false;
}

/** @param {'online'|'connecting'|'reconnecting'|'offline'|null} s */
function setStatus(s) {
  const el = $('#status');
  el.hidden = !s;
  el.className = `status ${s || ''}`;
  el.textContent = { online: 'Online', connecting: 'Connecting…', reconnecting: 'Reconnecting…', offline: 'Offline' }[s] || '';
}

function showView(name) {
  for (const v of ['signin', 'lobby', 'stage']) $('#' + v).hidden = v !== name;
}

// ------------------------------------------------------------------ human messages

function callEndMessage(reason, peerName, incoming) {
  const n = peerName || 'They';
  switch (reason) {
    case 'rejected': return incoming ? 'Call declined.' : `${n} declined the call.`;
    case 'busy': return `${n} is on another call.`;
    case 'no_answer': return incoming ? `Missed call from ${n}.` : `${n} didn't answer.`;
    case 'offline': return `${n} isn't online right now.`;
    case 'unknown_user': return `There's no one called “${peerName}”.`;
    case 'cancelled': return incoming ? `Missed call from ${n}.` : 'Call cancelled.';
    case 'hangup': return `${n} hung up.`;
    case 'answered_elsewhere': return 'Answered on another of your devices.';
    case 'disconnected': return `The call dropped: ${n === 'They' ? 'the other side' : n} lost their connection.`;
    case 'forbidden': return "Your account isn't allowed to make calls.";
    case 'rate_limited': return 'Too many calls at once. Wait a moment and try again.';
    case 'not_found': return 'That call no longer exists.';
    case 'timeout': return "The server didn't answer. Check your connection and try again.";
    case 'not_connected':
    case 'disconnected_client': return "You're offline.";
    default: return `The call ended (${reason}).`;
  }
}

function roomErrorMessage(e, name) {
  const code = e && e.code;
  switch (code) {
    case 'room_full': return `Room “${name}” is full. Try again later or use another room.`;
    case 'forbidden': return `Your access pass doesn't allow joining “${name}”.`;
    case 'not_found': return `Room “${name}” doesn't exist.`;
    case 'rate_limited': return 'Too many attempts. Wait a few seconds and try again.';
    case 'unavailable': return 'The server is at capacity or restarting. Try again in a moment.';
    case 'timeout':
    case 'disconnected':
    case 'not_connected': return 'Lost contact with the server while joining. Check your connection.';
    case 'out_of_order': return 'You are already in a room. Leave it first.';
    default: return `Couldn't join “${name}”: ${(e && e.message) || e}`;
  }
}

/** @param {any} e @param {'microphone'|'camera'|'screen'} what */
function mediaErrorMessage(e, what) {
  const label = { microphone: 'microphone', camera: 'camera', screen: 'screen sharing' }[what];
  if (!navigator.mediaDevices) return 'Camera and microphone need a secure connection (https or localhost).';
  if (e instanceof StrowgerError) {
    if (e.code === 'forbidden') return what === 'screen' ? "Your access pass doesn't allow screen sharing." : `Your access pass doesn't allow sending ${label}.`;
    if (e.code === 'invalid_sdp') return `The server couldn't accept your ${label} (unsupported codec?).`;
    if (e.code === 'disconnected' || e.code === 'timeout') return `Couldn't start your ${label}: the connection to the server dropped.`;
    return `Couldn't start your ${label}: ${e.message}`;
  }
  switch (e && e.name) {
    case 'NotAllowedError':
    case 'PermissionDeniedError':
      if (what === 'screen') return 'Screen sharing was cancelled or blocked.';
      return `Access to your ${label} is blocked. Allow it in your browser's site settings (the icon next to the address), then try again.`;
    case 'NotFoundError':
    case 'DevicesNotFoundError':
      return `No ${label} found. Plug one in, or choose another in Devices.`;
    case 'OverconstrainedError':
      return `The selected ${label} isn't available any more. Choose another in Devices.`;
    case 'NotReadableError':
    case 'TrackStartError':
    case 'AbortError':
      return `Your ${label} is in use by another app or couldn't start.`;
    case 'SecurityError':
      return `The browser blocked ${label} on this page (it needs https).`;
    default:
      return `Couldn't start your ${label}: ${(e && e.message) || e}`;
  }
}

function errorEventMessage(code, message) {
  switch (code) {
    case 'ice_failed': return "Audio and video can't get through. A firewall may be blocking UDP traffic to the server.";
    case 'rate_limited': return "You're sending too fast. Slow down a little.";
    case 'unavailable': return 'The server is busy or shutting down.';
    case 'forbidden': return "That isn't allowed with your access pass.";
    case 'internal': return 'The server hit an internal error. Please try again.';
    default: return message || code;
  }
}

// ------------------------------------------------------------------ tones

const tones = (() => {
  /** @type {AudioContext|null} */
  let ctx = null;
  let timer = null;
  const ensure = () => {
    try {
      if (!ctx) ctx = new (window.AudioContext || /** @type {any} */ (window).webkitAudioContext)();
      if (ctx.state === 'suspended') ctx.resume().catch(() => {});
    } catch { ctx = null; }
    return ctx;
  };
  const burst = (freqs, at, dur) => {
    const g = ctx.createGain();
    g.gain.setValueAtTime(0, at);
    g.gain.linearRampToValueAtTime(0.06, at + 0.02);
    g.gain.setValueAtTime(0.06, at + dur - 0.03);
    g.gain.linearRampToValueAtTime(0, at + dur);
    g.connect(ctx.destination);
    for (const f of freqs) {
      const o = ctx.createOscillator();
      o.frequency.value = f;
      o.connect(g);
      o.start(at);
      o.stop(at + dur);
    }
  };
  const play = (kind) => {
    stop();
    if (!ensure()) return;
    const once = () => {
      if (!ctx || ctx.state !== 'running') return;
      const t = ctx.currentTime + 0.02;
      if (kind === 'incoming') { burst([440, 480], t, 0.4); burst([440, 480], t + 0.6, 0.4); } else { burst([440, 480], t, 1.0); }
    };
    once();
    timer = setInterval(once, kind === 'incoming' ? 3000 : 4000);
  };
  const stop = () => { clearInterval(timer); timer = null; };
  // unlock on the first user gesture so incoming rings are audible later
  window.addEventListener('pointerdown', ensure, { once: true });
  window.addEventListener('keydown', ensure, { once: true });
  return { play, stop };
})();

function updateRinging() {
  const incoming = document.querySelector('.callcard.incoming');
  const outgoing = document.querySelector('.callcard.outgoing.ringing');
  if (incoming) tones.play('incoming');
  else if (outgoing) tones.play('outgoing');
  else tones.stop();
  document.title = incoming ? `📞 ${incoming.dataset.name} is calling… · Strowger` : current ? `${current.title} · Strowger` : 'Strowger';
}

// ------------------------------------------------------------------ sign in

function readHashToken() {
  const m = /(?:^|[#&])token=([^&]+)/.exec(location.hash);
  return m ? decodeURIComponent(m[1]) : null;
}

function showSignin(error) {
  const admin = sessionStorage.getItem(K_ADMIN);
  const useName = !!admin && !tokenExpired(admin);
  $('#name-form').hidden = !useName;
  $('#token-form').hidden = useName;
  const err = $('#signin-error');
  err.hidden = !error;
  err.textContent = error || '';
  $('#me').hidden = true;
  $('#signout').hidden = !useName && !sessionStorage.getItem(K_TOKEN);
  setStatus(null);
  showView('signin');
  (useName ? $('#name-input') : $('#token-input')).focus();
}

function slug(name) {
  const s = name.normalize('NFKD').replace(/[\u0300-\u036f]/g, '').toLowerCase()
    .replace(/[^a-z0-9._-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 40);
  return s || 'user';
}

async function mintToken(name) {
  const admin = sessionStorage.getItem(K_ADMIN);
  const rand = Array.from(crypto.getRandomValues(new Uint8Array(3)), (b) => b.toString(16).padStart(2, '0')).join('');
  const body = {
    identity: `${slug(name)}-${rand}`,
    name,
    grants: { room: '*', publish: true, subscribe: true, screenshare: true, call: true },
  };
  let res;
  try {
    res = await fetch('/api/v1/tokens', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${admin}` },
      body: JSON.stringify(body),
    });
  } catch {
    throw new Error("Can't reach the server. Check your connection and try again.");
  }
  if (res.status === 401 || res.status === 403) {
    sessionStorage.removeItem(K_ADMIN);
    throw new Error('This invite link is no longer valid. Ask for a new one, or paste an access token.');
  }
  if (!res.ok) throw new Error(`The server couldn't create your pass (HTTP ${res.status}). Try again.`);
  const data = await res.json().catch(() => ({}));
  if (!data || typeof data.token !== 'string') throw new Error('The server sent an unexpected reply.');
  return data.token;
}

async function signIn(token) {
  setStatus('connecting');
  showView('signin');
  $('#name-form').hidden = true;
  $('#token-form').hidden = true;
  const err = $('#signin-error');
  err.hidden = false;
  err.textContent = '';
  err.classList.remove('form-error');
  err.textContent = 'Connecting…';
  try {
    const w = await client.connect(token);
    err.classList.add('form-error');
    sessionStorage.setItem(K_TOKEN, token);
    banner(null);
    $('#me').textContent = w.name || w.identity;
    $('#me').title = w.identity;
    $('#me').hidden = false;
    $('#signout').hidden = false;
    setStatus('online');
    applyGrants();
    renderPeople();
    if (!current) showView('lobby');
    $('#room-input').focus();
  } catch (e) {
    err.classList.add('form-error');
    const code = e instanceof StrowgerError ? e.code : 'network';
    if (code === 'unauthorized') {
      sessionStorage.removeItem(K_TOKEN);
      showSignin(tokenExpired(token) ? 'Your access pass has expired. Sign in again.' : "This access token isn't valid.");
    } else if (code === 'unavailable') {
      showSignin('The server is full or restarting. Try again in a moment.');
      fillTokenForm(token);
    } else {
      showSignin("Can't reach the Strowger server. Check your connection and try again.");
      fillTokenForm(token);
    }
  }
}

function fillTokenForm(token) {
  if ($('#token-form').hidden) return;
  /** @type {HTMLTextAreaElement} */ ($('#token-input')).value = token;
}

$('#name-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const input = /** @type {HTMLInputElement} */ ($('#name-input'));
  const name = input.value.trim();
  if (!name) return;
  const btn = /** @type {HTMLButtonElement} */ (ev.target.querySelector('button'));
  btn.disabled = true;
  try {
    const token = await mintToken(name);
    sessionStorage.setItem(K_TOKEN, token);
    await signIn(token);
  } catch (e) {
    showSignin(e.message);
  } finally {
    btn.disabled = false;
  }
});

$('#token-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const token = /** @type {HTMLTextAreaElement} */ ($('#token-input')).value.trim().replace(/^Bearer\s+/i, '');
  if (!token) return;
  const claims = decodeJwt(token);
  if (!claims) { showSignin("That doesn't look like an access token (it should have three parts separated by dots)."); return; }
  if (claims.grants && claims.grants.admin) {
    sessionStorage.setItem(K_ADMIN, token);
    showSignin();
    return;
  }
  await signIn(token);
});

$('#signout').addEventListener('click', () => {
  sessionStorage.removeItem(K_TOKEN);
  sessionStorage.removeItem(K_ADMIN);
  client.disconnect();
  resetStage();
  clearCallCards();
  banner(null);
  /** @type {HTMLTextAreaElement} */ ($('#token-input')).value = '';
  showSignin();
});

function applyGrants() {
  const g = client.grants;
  const canRoom = !!g.room;
  $('#join-form').querySelectorAll('input,button').forEach((el) => { /** @type {any} */ (el).disabled = !canRoom; });
  const note = $('#join-note');
  if (!canRoom) { note.hidden = false; note.textContent = "Your access pass doesn't include rooms; you can still make 1:1 calls."; }
  else if (g.room !== '*') { note.hidden = false; note.textContent = `Your access pass is for room “${g.room}”.`; /** @type {HTMLInputElement} */ ($('#room-input')).value = g.room; }
  else if (g.publish === false) { note.hidden = false; note.textContent = 'Your access pass lets you watch and listen, not send.'; }
  else note.hidden = true;
}

// ------------------------------------------------------------------ presence

function renderPeople() {
  const me = client.identity;
  const all = client.presence;
  const others = all.filter((u) => u.identity !== me).sort((a, b) => (a.name || a.identity).localeCompare(b.name || b.identity));
  const filterEl = /** @type {HTMLInputElement} */ ($('#people-filter'));
  filterEl.hidden = others.length <= 8;
  const q = filterEl.hidden ? '' : filterEl.value.trim().toLowerCase();
  const shown = q ? others.filter((u) => `${u.name} ${u.identity}`.toLowerCase().includes(q)) : others;
  $('#people-count').textContent = String(others.length);
  const list = $('#people');
  list.replaceChildren();
  const canCall = client.grants.call !== false;
  const busy = !!current && current.kind === 'call';
  for (const u of shown) {
    const ringing = !!document.querySelector(`.callcard.outgoing[data-identity="${CSS.escape(u.identity)}"]`);
    list.append(h('li', { class: 'person' },
      avatar(u.name || u.identity, u.identity),
      h('div', { class: 'who' }, h('b', {}, u.name || u.identity),
        h('span', {}, u.identity + (u.devices > 1 ? ` · ${u.devices} devices` : ''))),
      canCall ? h('div', { class: 'actions' },
        h('button', { class: 'btn small', type: 'button', disabled: busy || ringing, title: `Audio call ${u.name}`, onclick: () => startCall(u, false) }, 'Audio'),
        h('button', { class: 'btn small primary', type: 'button', disabled: busy || ringing, title: `Video call ${u.name}`, onclick: () => startCall(u, true) }, 'Video')) : null));
  }
  const empty = $('#people-empty');
  empty.hidden = shown.length > 0;
  empty.textContent = others.length ? 'No one matches.' : 'Nobody else is online right now.';
}
$('#people-filter').addEventListener('input', renderPeople);
client.addEventListener('presence', renderPeople);

// ------------------------------------------------------------------ call cards

function callCard(kind, key, peer, video, statusText, buttons) {
  const el = h('div', { class: `callcard ${kind}`, dataset: { key, identity: peer.identity, name: peer.name || peer.identity } },
    avatar(peer.name || peer.identity, peer.identity),
    h('div', { class: 'who' }, h('b', {}, peer.name || peer.identity), h('span', { class: 'st' }, statusText)),
    h('div', { class: 'actions' }, ...buttons));
  $('#calls').append(el);
  return el;
}
function findCard(key) { return /** @type {HTMLElement|null} */ (document.querySelector(`.callcard[data-key="${CSS.escape(key)}"]`)); }
function removeCard(key) { const c = findCard(key); if (c) c.remove(); updateRinging(); renderPeople(); }
function clearCallCards() { $('#calls').replaceChildren(); updateRinging(); }

async function startCall(user, video) {
  if (current && current.kind === 'call') { toast('Hang up the current call first.', 'warn'); return; }
  const tmpKey = `out-${Math.random().toString(36).slice(2)}`;
  const cancelBtn = h('button', { class: 'btn danger small', type: 'button', disabled: true }, 'Cancel');
  const card = callCard('outgoing', tmpKey, user, video, `${video ? 'Video' : 'Audio'} call · connecting…`, [cancelBtn]);
  renderPeople();
  try {
    const call = await client.call(user.identity, { video });
    if (call.state !== 'ringing') { card.remove(); return; }
    card.dataset.key = call.callId;
    card.classList.add('ringing');
    card.querySelector('.st').textContent = `${video ? 'Video' : 'Audio'} call · ringing…`;
    cancelBtn.disabled = false;
    cancelBtn.onclick = () => { endedByMe.add(call.callId); client.cancel(call.callId); };
    updateRinging();
  } catch (e) {
    card.remove();
    renderPeople();
    const code = e instanceof StrowgerError ? e.code : 'internal';
    toast(callEndMessage(code, user.name || user.identity, false), code === 'forbidden' ? 'error' : 'warn');
  }
}

client.addEventListener('incomingcall', (ev) => {
  const { callId, from, video } = ev.detail;
  const acceptBtn = h('button', { class: 'btn ok small', type: 'button' }, video ? 'Accept video' : 'Accept');
  const rejectBtn = h('button', { class: 'btn danger small', type: 'button' }, 'Decline');
  callCard('incoming', callId, from, video, `Incoming ${video ? 'video' : 'audio'} call`, [acceptBtn, rejectBtn]);
  acceptBtn.onclick = async () => {
    acceptBtn.disabled = rejectBtn.disabled = true;
    try {
      if (current) await leaveStage(true);
      await client.accept(callId);
    } catch (e) {
      removeCard(callId);
      const code = e instanceof StrowgerError ? e.code : 'internal';
      toast(callEndMessage(code, from.name, true), 'warn');
    }
  };
  rejectBtn.onclick = () => { endedByMe.add(callId); client.reject(callId); removeCard(callId); };
  updateRinging();
  if (document.hidden && 'Notification' in window && Notification.permission === 'granted') {
    try { new Notification(`${from.name || from.identity} is calling`, { body: video ? 'Video call' : 'Audio call', tag: callId }); } catch { /* ignore */ }
  }
});

client.addEventListener('callaccepted', (ev) => {
  const { callId, room, peer, call } = ev.detail;
  removeCard(callId);
  enterCall({ callId, room, peer, video: call ? call.video : true });
});

client.addEventListener('callended', (ev) => {
  const { callId, reason, call } = ev.detail;
  const card = findCard(callId);
  const mine = endedByMe.delete(callId);
  const peerName = call && call.peer ? (call.peer.name || call.peer.identity) : '';
  const incoming = call ? call.direction === 'incoming' : !!(card && card.classList.contains('incoming'));
  if (card) removeCard(callId);
  const wasCurrent = current && current.kind === 'call' && current.call.callId === callId;
  if (wasCurrent) resetStage();
  if (mine) return;
  if (!card && !wasCurrent) return;
  if (reason === 'hangup' && wasCurrent) toast(`${peerName || 'The other side'} hung up.`, 'info');
  else toast(callEndMessage(reason, peerName, incoming), reason === 'answered_elsewhere' ? 'info' : 'warn');
});

// ------------------------------------------------------------------ stage (room / call)

/** key -> tile record */
/** @type {Map<string, {el:HTMLElement, video:HTMLVideoElement, nameEl:HTMLElement, trackId:string|null, lastSize:string}>} */
const tiles = new Map();
/** trackId -> audio element */
/** @type {Map<string, HTMLAudioElement>} */
const audios = new Map();
let stageTimer = null;

const resizeObs = new ResizeObserver((entries) => {
  for (const e of entries) {
    const key = /** @type {HTMLElement} */ (e.target).dataset.key;
    const t = tiles.get(key);
    if (t) requestSubscription(t);
  }
});

function requestSubscription(t) {
  if (!t.trackId) return;
  const dpr = Math.min(window.devicePixelRatio || 1, 2);
  const w = Math.ceil(t.el.clientWidth * dpr), hgt = Math.ceil(t.el.clientHeight * dpr);
  if (!w || !hgt) return;
  const size = `${t.trackId}:${Math.round(w / 40)}x${Math.round(hgt / 40)}`;
  if (size === t.lastSize) return;
  t.lastSize = size;
  clearTimeout(/** @type {any} */ (t).subTimer);
  /** @type {any} */ (t).subTimer = setTimeout(() => {
    if (t.trackId && client.room) client.setSubscription(t.trackId, { maxWidth: w, maxHeight: hgt, paused: false });
  }, 250);
}

/**
 * @param {string} key
 * @param {{name:string, avatarKey:string, screen?:boolean, local?:boolean}} o
 */
function ensureTile(key, o) {
  let t = tiles.get(key);
  if (t) {
    if (t.nameEl.textContent !== o.name) t.nameEl.textContent = o.name;
    return t;
  }
  const video = /** @type {HTMLVideoElement} */ (h('video', { autoplay: true, playsInline: true, muted: true }));
  video.muted = true;
  const nameEl = h('span', { class: 'nm' }, o.name);
  const el = h('div', { class: `tile video-off${o.screen ? ' screen' : ''}${o.local ? ' local' : ''}`, dataset: { key } },
    video,
    avatar(o.name, o.avatarKey),
    h('div', { class: 'label' }, h('span', { class: 'mic-off', title: 'Muted' }), nameEl));
  t = { el, video, nameEl, trackId: null, lastSize: '' };
  tiles.set(key, t);
  (o.screen ? $('#focus') : $('#grid')).append(el);
  if (!o.local) resizeObs.observe(el);
  updatePresenting();
  layoutGrid();
  return t;
}

function removeTile(key) {
  const t = tiles.get(key);
  if (!t) return;
  resizeObs.unobserve(t.el);
  t.video.srcObject = null;
  t.el.remove();
  tiles.delete(key);
  updatePresenting();
  layoutGrid();
}

/** @param {HTMLVideoElement} video @param {MediaStream|null} stream */
function attach(video, stream) {
  if (video.srcObject === stream) return;
  video.srcObject = stream;
  if (stream) video.play().catch(() => {});
}

const watched = new WeakSet();
/** Re-render when a remote track starts or stops flowing. @param {MediaStreamTrack} mst @param {string} pid */
function watchTrack(mst, pid) {
  if (watched.has(mst)) return;
  watched.add(mst);
  const again = () => { const p = client.room && client.room.participants.get(pid); if (p) refreshParticipant(p); };
  mst.addEventListener('mute', again);
  mst.addEventListener('unmute', again);
}

function refreshParticipant(p) {
  const tracks = [...p.tracks.values()];
  const t = ensureTile(p.id, { name: p.name || p.identity, avatarKey: p.identity });
  const cam = tracks.find((x) => x.source === 'camera' && x.kind === 'video' && x.mediaStreamTrack);
  const mic = tracks.find((x) => x.source === 'microphone' || x.kind === 'audio');
  if (cam) watchTrack(cam.mediaStreamTrack, p.id);
  attach(t.video, cam ? cam.stream : null);
  const camLive = !!cam && !cam.muted && !cam.mediaStreamTrack.muted;
  t.el.classList.toggle('video-off', !camLive);
  t.el.classList.toggle('audio-muted', !mic || mic.muted);
  if ((cam ? cam.id : null) !== t.trackId) { t.trackId = cam ? cam.id : null; t.lastSize = ''; requestSubscription(t); }

  const scr = tracks.find((x) => x.source === 'screen' && x.kind === 'video' && x.mediaStreamTrack);
  const skey = `${p.id}:screen`;
  if (scr) {
    const st = ensureTile(skey, { name: `${p.name || p.identity} (screen)`, avatarKey: p.identity, screen: true });
    attach(st.video, scr.stream);
    st.el.classList.toggle('video-off', !!scr.muted);
    if (st.trackId !== scr.id) { st.trackId = scr.id; st.lastSize = ''; requestSubscription(st); }
  } else removeTile(skey);

  // audio: one <audio> element per subscribed audio track
  const live = new Set();
  for (const a of tracks) {
    if (a.kind !== 'audio' || !a.mediaStreamTrack) continue;
    live.add(a.id);
    let el = audios.get(a.id);
    if (!el) {
      el = /** @type {HTMLAudioElement} */ (h('audio', { autoplay: true, dataset: { pid: p.id } }));
      audios.set(a.id, el);
      $('#audio-sink').append(el);
      applySink(el);
    }
    if (el.srcObject !== a.stream) {
      el.srcObject = a.stream;
      el.play().catch(() => {
        toast('Your browser blocked sound from this call.', 'warn', { timeout: 0, action: { label: 'Enable sound', run: () => { for (const x of audios.values()) x.play().catch(() => {}); } } });
      });
    }
  }
  for (const [id, el] of audios) {
    if (el.dataset.pid === p.id && !live.has(id)) { el.srcObject = null; el.remove(); audios.delete(id); }
  }
}

function removeParticipant(pid) {
  removeTile(pid);
  removeTile(`${pid}:screen`);
  for (const [id, el] of audios) if (el.dataset.pid === pid) { el.srcObject = null; el.remove(); audios.delete(id); }
  updateStageSub();
}

function refreshLocal() {
  if (!current) return;
  const local = client.localTracks;
  const t = ensureTile('local', { name: 'You', avatarKey: client.identity, local: true });
  t.el.classList.add('mirror');
  const cam = local.get('camera');
  attach(t.video, cam ? cam.stream : null);
  t.el.classList.toggle('video-off', !cam || cam.muted);
  const mic = local.get('microphone');
  t.el.classList.toggle('audio-muted', !mic || mic.muted);
  const scr = local.get('screen');
  if (scr) {
    const st = ensureTile('local:screen', { name: 'Your screen', avatarKey: client.identity, screen: true, local: true });
    attach(st.video, scr.stream);
    st.el.classList.remove('video-off');
  } else removeTile('local:screen');
  updateControls();
}

function updatePresenting() {
  const presenting = $('#focus').children.length > 0;
  $('#focus').hidden = !presenting;
  $('#stage-body').classList.toggle('presenting', presenting);
}

/** Pick the column count that gives the biggest 16:9 tiles. */
function layoutGrid() {
  const grid = $('#grid');
  const n = grid.children.length;
  if (!n || $('#stage-body').classList.contains('presenting')) {
    grid.style.removeProperty('--cols');
    grid.style.removeProperty('--row-h');
    grid.style.removeProperty('grid-template-columns');
    return;
  }
  const W = grid.clientWidth, H = grid.clientHeight, gap = 12;
  if (!W || !H) return;
  let best = { cols: 1, w: 0, h: 0 };
  for (let cols = 1; cols <= n; cols++) {
    const rows = Math.ceil(n / cols);
    const cw = (W - gap * (cols - 1)) / cols;
    const ch = (H - gap * (rows - 1)) / rows;
    const w = Math.min(cw, ch * 16 / 9);
    if (w > best.w) best = { cols, w, h: w * 9 / 16 };
  }
  grid.style.gridTemplateColumns = `repeat(${best.cols}, ${Math.floor(best.w)}px)`;
  grid.style.setProperty('--row-h', `${Math.floor(best.h)}px`);
  grid.style.justifyContent = 'center';
}
window.addEventListener('resize', layoutGrid);
new ResizeObserver(layoutGrid).observe($('#grid'));

function updateStageSub() {
  const room = client.room;
  const n = room ? room.participants.size + 1 : 1;
  const sub = $('#stage-sub');
  if (!current) { sub.textContent = ''; return; }
  if (!room) { sub.textContent = 'Connecting…'; return; }
  if (current.kind === 'call') sub.textContent = room.participants.size ? '' : 'Waiting for the other side…';
  else sub.textContent = `${n} ${n === 1 ? 'person' : 'people'}${n === 1 ? ' · waiting for others' : ''}`;
}

function startStage(kind, name, title, call) {
  current = { kind, name, call, startedAt: Date.now(), title };
  $('#stage-title').textContent = title;
  $('#btn-leave').querySelector('.lbl').textContent = kind === 'call' ? 'Hang up' : 'Leave';
  $('#btn-leave').title = kind === 'call' ? 'Hang up' : 'Leave room';
  showView('stage');
  updateStageSub();
  clearInterval(stageTimer);
  const timerEl = $('#stage-timer');
  timerEl.textContent = '';
  stageTimer = setInterval(() => { if (current && client.room) timerEl.textContent = fmtDuration(Date.now() - current.startedAt); }, 1000);
  refreshLocal();
  renderPeople();
  updateRinging();
}

function resetStage() {
  current = null;
  clearInterval(stageTimer);
  for (const key of [...tiles.keys()]) removeTile(key);
  for (const el of audios.values()) { el.srcObject = null; el.remove(); }
  audios.clear();
  $('#stage-timer').textContent = '';
  if ($('#signin').hidden) showView('lobby');
  renderPeople();
  updateRinging();
}

/** Leave the room or hang up the call. @param {boolean} [quiet] */
async function leaveStage(quiet) {
  const c = current;
  if (!c) return;
  if (c.kind === 'call' && c.call) {
    endedByMe.add(c.call.callId);
    client.hangup(c.call.callId); // the SDK also leaves the call's room
  }
  await client.leaveRoom();
  resetStage();
  if (!quiet && c.kind === 'call') toast('Call ended.', 'info');
}

async function enterRoom(name, { mic, cam }) {
  if (current) return;
  startStage('room', name, name);
  try {
    const room = await client.joinRoom(name);
    prefs.lastRoom = name; savePrefs();
    for (const p of room.participants.values()) refreshParticipant(p);
    updateStageSub();
  } catch (e) {
    if (current && current.name === name) resetStage();
    if (!(e instanceof StrowgerError && e.code === 'cancelled')) toast(roomErrorMessage(e, name), 'error');
    return;
  }
  await publishDefaults(mic, cam);
}

async function enterCall({ callId, room, peer, video }) {
  if (current && current.kind === 'call' && current.call.callId === callId) return;
  if (current) await leaveStage(true);
  startStage('call', room, `Call with ${peer.name || peer.identity}`, { callId, peer, video });
  try {
    const r = await client.joinRoom(room);
    for (const p of r.participants.values()) refreshParticipant(p);
    updateStageSub();
  } catch (e) {
    if (current && current.name === room) {
      endedByMe.add(callId);
      client.hangup(callId);
      resetStage();
    }
    if (!(e instanceof StrowgerError && e.code === 'cancelled')) toast(`Couldn't connect the call: ${roomErrorMessage(e, room)}`, 'error');
    return;
  }
  await publishDefaults(true, video);
}

async function publishDefaults(mic, cam) {
  if (client.grants.publish === false) {
    toast("You're in listen-only mode: your access pass doesn't allow sending audio or video.", 'info');
    updateControls();
    return;
  }
  if (mic) await startMic();
  if (cam && current) await startCam();
  refreshLocal();
}

async function withDeviceFallback(pref, fn) {
  try {
    return await fn(pref);
  } catch (e) {
    if (pref && e && (e.name === 'OverconstrainedError' || e.name === 'NotFoundError')) return fn(undefined);
    throw e;
  }
}

async function startMic() {
  try {
    await withDeviceFallback(prefs.mic, (deviceId) => client.publishMicrophone({ deviceId }));
  } catch (e) {
    if (!(e instanceof StrowgerError && e.code === 'cancelled')) toast(mediaErrorMessage(e, 'microphone'), 'error');
  }
  refreshLocal();
}

async function startCam() {
  try {
    await withDeviceFallback(prefs.cam, (deviceId) => client.publishCamera({ deviceId, simulcast: true }));
  } catch (e) {
    if (!(e instanceof StrowgerError && e.code === 'cancelled')) toast(mediaErrorMessage(e, 'camera'), 'error');
  }
  refreshLocal();
}

// ------------------------------------------------------------------ room events

const onRoomChange = (ev) => {
  const room = client.room;
  if (!room || !current) return;
  const pid = ev.detail.participantId || (ev.detail.participant && ev.detail.participant.id);
  const p = room.participants.get(pid);
  if (p) refreshParticipant(p);
  updateStageSub();
};
for (const type of ['participantjoined', 'trackpublished', 'trackunpublished', 'tracksubscribed', 'trackunsubscribed', 'trackmuted']) {
  client.addEventListener(type, onRoomChange);
}
client.addEventListener('participantjoined', (ev) => {
  if (current && current.kind === 'room') toast(`${ev.detail.participant.name} joined.`, 'info', { timeout: 3000 });
});
client.addEventListener('participantleft', (ev) => {
  removeParticipant(ev.detail.participantId);
  const p = ev.detail.participant;
  if (p && current && current.kind === 'room') toast(`${p.name} left.`, 'info', { timeout: 3000 });
});
client.addEventListener('activespeakers', (ev) => {
  const speakers = new Set(ev.detail.speakers);
  const me = client.room ? client.room.participantId : null;
  for (const [key, t] of tiles) {
    if (key.includes(':screen')) continue;
    const pid = key === 'local' ? me : key;
    t.el.classList.toggle('speaking', !!pid && speakers.has(pid));
  }
});
client.addEventListener('roomclosed', (ev) => {
  toast(`The room was closed${ev.detail.reason ? ` (${ev.detail.reason})` : ''}.`, 'warn');
});
client.addEventListener('roomleft', (ev) => {
  if (!current) return;
  if (ev.detail.reason === 'left') return; // we did it; leaveStage handles the view
  const wasRoom = current.kind === 'room' ? current.name : null;
  resetStage();
  if (ev.detail.reason === 'session_lost' && wasRoom) lostRoom = wasRoom;
});
client.addEventListener('localtrackended', (ev) => {
  const src = ev.detail.source;
  if (src === 'screen') toast('Screen sharing stopped.', 'info', { timeout: 3000 });
  else toast(`Your ${src} stopped (unplugged or taken by another app).`, 'warn');
  setTimeout(refreshLocal, 0);
});
client.addEventListener('error', (ev) => {
  const { code, message } = ev.detail;
  if (code === 'out_of_order' || code === 'not_found') { console.warn('strowger:', code, message); return; }
  toast(errorEventMessage(code, message), 'error');
});

// ------------------------------------------------------------------ connection events

client.addEventListener('reconnecting', (ev) => {
  setStatus('reconnecting');
  if (ev.detail.attempt === 0) banner('Network connection lost. Reconnecting…');
});
client.addEventListener('reconnected', () => {
  setStatus('online');
  banner(null);
  toast('Reconnected.', 'ok', { timeout: 2500 });
});
client.addEventListener('disconnected', (ev) => {
  const { reason } = ev.detail;
  if (reason === 'client') return;
  const hadCall = current && current.kind === 'call';
  if (reason === 'session_lost') {
    setStatus('online');
    const room = lostRoom || (current && current.kind === 'room' ? current.name : null);
    resetStage();
    lostRoom = null;
    banner(hadCall ? 'You were offline too long and the call ended.'
      : room ? `You were offline too long and left “${room}”.`
        : 'You were offline for a while; your session was restarted.', {
      bad: true,
      action: room ? { label: 'Rejoin', run: () => enterRoom(room, { mic: prefs.joinMic !== false, cam: prefs.joinCam !== false }) } : undefined,
    });
    return;
  }
  resetStage();
  clearCallCards();
  if (reason === 'unauthorized') {
    sessionStorage.removeItem(K_TOKEN);
    banner(null);
    showSignin('Your access pass has expired or was revoked. Sign in again.');
    return;
  }
  setStatus('offline');
  const token = sessionStorage.getItem(K_TOKEN);
  banner(reason === 'network' ? "You're offline: can't reach the server." : `Disconnected (${reason}).`, {
    bad: true,
    action: token ? { label: 'Reconnect', run: () => signIn(token) } : undefined,
  });
});
window.addEventListener('online', () => {
  const token = sessionStorage.getItem(K_TOKEN);
  if (client.state === 'closed' && token && !$('#netbanner').hidden) { banner(null); signIn(token); }
});

// ------------------------------------------------------------------ controls

function updateControls() {
  const local = client.localTracks;
  const canPub = client.grants.publish !== false && !!client.room;
  const mic = local.get('microphone');
  const cam = local.get('camera');
  const scr = local.get('screen');
  const set = (id, on, label, title) => {
    const b = /** @type {HTMLButtonElement} */ ($(id));
    b.classList.toggle('on', on === true);
    b.classList.toggle('off', on === false);
    b.setAttribute('aria-pressed', String(on === true));
    b.querySelector('.lbl').textContent = label;
    b.title = title;
    b.disabled = !canPub;
  };
  set('#btn-mic', !!mic && !mic.muted ? null : false, mic && !mic.muted ? 'Mute' : 'Unmute', mic && !mic.muted ? 'Mute microphone' : 'Turn microphone on');
  set('#btn-cam', cam ? null : false, cam ? 'Stop video' : 'Start video', cam ? 'Turn camera off' : 'Turn camera on');
  set('#btn-screen', scr ? true : null, scr ? 'Stop share' : 'Share', scr ? 'Stop sharing your screen' : 'Share your screen');
  const canShare = !!(navigator.mediaDevices && navigator.mediaDevices.getDisplayMedia) && client.grants.screenshare !== false;
  $('#btn-screen').hidden = !canShare;
}

let busyCtl = false;
async function guarded(fn) {
  if (busyCtl) return;
  busyCtl = true;
  try { await fn(); } finally { busyCtl = false; updateControls(); }
}

$('#btn-mic').addEventListener('click', () => guarded(async () => {
  const mic = client.localTracks.get('microphone');
  if (!mic) { await startMic(); return; }
  await client.setMuted('microphone', !mic.muted);
  refreshLocal();
}));
$('#btn-cam').addEventListener('click', () => guarded(async () => {
  if (client.localTracks.get('camera')) {
    await client.unpublish('camera').catch((e) => toast(mediaErrorMessage(e, 'camera'), 'error'));
    refreshLocal();
  } else {
    await startCam();
  }
}));
$('#btn-screen').addEventListener('click', () => guarded(async () => {
  if (client.localTracks.get('screen')) {
    await client.unpublish('screen').catch(() => {});
  } else {
    try { await client.publishScreen(); } catch (e) {
      if (!(e && e.name === 'NotAllowedError')) toast(mediaErrorMessage(e, 'screen'), 'error');
    }
  }
  refreshLocal();
}));
$('#btn-leave').addEventListener('click', () => leaveStage(false));
$('#btn-devices').addEventListener('click', openDevices);
$('#lobby-devices').addEventListener('click', openDevices);

// ------------------------------------------------------------------ devices

const canPickOutput = typeof HTMLMediaElement !== 'undefined' && 'setSinkId' in HTMLMediaElement.prototype;

function applySink(el) {
  if (canPickOutput && prefs.out) /** @type {any} */ (el).setSinkId(prefs.out).catch(() => {});
}

async function fillDevices() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.enumerateDevices) return;
  const devs = await navigator.mediaDevices.enumerateDevices().catch(() => []);
  const local = client.localTracks;
  const fill = (sel, kind, currentId, fallbackLabel) => {
    const el = /** @type {HTMLSelectElement} */ ($(sel));
    const list = devs.filter((d) => d.kind === kind);
    el.replaceChildren(...list.map((d, i) => h('option', { value: d.deviceId }, d.label || `${fallbackLabel} ${i + 1}`)));
    if (!list.length) el.append(h('option', { value: '' }, `No ${fallbackLabel.toLowerCase()} found`));
    el.disabled = !list.length;
    if (currentId && list.some((d) => d.deviceId === currentId)) el.value = currentId;
    return list;
  };
  const mic = local.get('microphone');
  const cam = local.get('camera');
  fill('#dev-mic', 'audioinput', (mic && mic.deviceId) || prefs.mic, 'Microphone');
  fill('#dev-cam', 'videoinput', (cam && cam.deviceId) || prefs.cam, 'Camera');
  const outs = fill('#dev-out', 'audiooutput', prefs.out, 'Speaker');
  const showOut = canPickOutput && outs.length > 0;
  $('#dev-out').hidden = !showOut;
  $('#dev-out-label').hidden = !showOut;
  $('#dev-note').hidden = devs.some((d) => d.label);
}

async function openDevices() {
  await fillDevices();
  /** @type {HTMLDialogElement} */ ($('#devices')).showModal();
}
navigator.mediaDevices && navigator.mediaDevices.addEventListener && navigator.mediaDevices.addEventListener('devicechange', () => {
  if (/** @type {HTMLDialogElement} */ ($('#devices')).open) fillDevices();
});

$('#dev-mic').addEventListener('change', async (ev) => {
  const id = /** @type {HTMLSelectElement} */ (ev.target).value;
  prefs.mic = id; savePrefs();
  if (client.localTracks.get('microphone')) {
    try { await client.switchDevice('microphone', id); } catch (e) { toast(mediaErrorMessage(e, 'microphone'), 'error'); }
    refreshLocal();
  }
});
$('#dev-cam').addEventListener('change', async (ev) => {
  const id = /** @type {HTMLSelectElement} */ (ev.target).value;
  prefs.cam = id; savePrefs();
  if (client.localTracks.get('camera')) {
    try { await client.switchDevice('camera', id); } catch (e) { toast(mediaErrorMessage(e, 'camera'), 'error'); }
    refreshLocal();
  }
});
$('#dev-out').addEventListener('change', (ev) => {
  prefs.out = /** @type {HTMLSelectElement} */ (ev.target).value; savePrefs();
  for (const el of audios.values()) applySink(el);
});

// ------------------------------------------------------------------ join form

const joinMic = /** @type {HTMLInputElement} */ ($('#join-mic'));
const joinCam = /** @type {HTMLInputElement} */ ($('#join-cam'));
joinMic.checked = prefs.joinMic !== false;
joinCam.checked = prefs.joinCam !== false;
joinMic.addEventListener('change', () => { prefs.joinMic = joinMic.checked; savePrefs(); });
joinCam.addEventListener('change', () => { prefs.joinCam = joinCam.checked; savePrefs(); });
if (prefs.lastRoom) /** @type {HTMLInputElement} */ ($('#room-input')).value = prefs.lastRoom;

$('#join-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const name = /** @type {HTMLInputElement} */ ($('#room-input')).value.trim();
  if (!name) return;
  if (name.startsWith('call:')) { toast('Room names starting with “call:” are reserved for 1:1 calls.', 'warn'); return; }
  if (!client.connected) { toast("You're offline. Wait for the connection to come back.", 'warn'); return; }
  enterRoom(name, { mic: joinMic.checked, cam: joinCam.checked });
});

// ------------------------------------------------------------------ boot

window.addEventListener('pagehide', () => { if (client.state !== 'closed' && client.state !== 'idle') client.disconnect(); });
window.addEventListener('keydown', (ev) => {
  if (!current || ev.target instanceof HTMLInputElement || ev.target instanceof HTMLTextAreaElement) return;
  if ((ev.ctrlKey || ev.metaKey) && ev.key.toLowerCase() === 'd') { ev.preventDefault(); $('#btn-mic').click(); }
  if ((ev.ctrlKey || ev.metaKey) && ev.key.toLowerCase() === 'e') { ev.preventDefault(); $('#btn-cam').click(); }
});

function boot() {
  if (!('WebSocket' in window) || !('RTCPeerConnection' in window)) {
    showSignin('This browser does not support WebRTC. Use a recent Chrome, Firefox, Safari or Edge.');
    return;
  }
  const hashToken = readHashToken();
  if (hashToken) {
    history.replaceState(null, '', location.pathname + location.search); // keep tokens out of the address bar
    const claims = decodeJwt(hashToken);
    if (claims && claims.grants && claims.grants.admin) {
      sessionStorage.setItem(K_ADMIN, hashToken);
      sessionStorage.removeItem(K_TOKEN);
    } else {
      sessionStorage.setItem(K_TOKEN, hashToken);
    }
  }
  const token = sessionStorage.getItem(K_TOKEN);
  if (token && !tokenExpired(token)) { signIn(token); return; }
  if (token) { sessionStorage.removeItem(K_TOKEN); showSignin('Your access pass has expired. Sign in again.'); return; }
  showSignin();
}

boot();

// For debugging from the console.
/** @type {any} */ (window).strowger = client;
