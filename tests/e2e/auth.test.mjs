// Bad tokens are refused: `connect` rejects with `unauthorized` (or `joinRoom` with
// `forbidden` for a room the token does not grant), a raw WebSocket gets `error` then a close,
// and no session comes into being (no presence, no session count).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  BASE, launchBrowser, newPeer, connectedPeer, closePeer, mintToken, signToken, decodeJwt, gauge, uid, withDiagnostics,
} from './lib.mjs';

let browser;
let observer; // a signed-in user whose presence list must never show the intruders
let probe; // a page used for raw WebSocket attempts and refused connects
const intruder = uid('mallory-');
const peers = () => [observer, probe];

/** A valid token's payload for `intruder`, to be altered and re-signed. */
function payload(extra = {}) {
  return { ...decodeJwt(mintToken({ identity: intruder, room: 'vault' })).payload, ...extra };
}

before(async () => {
  browser = await launchBrowser();
  observer = await connectedPeer(browser, uid('observer-'), { room: 'lobby' });
  probe = await newPeer(browser, { identity: intruder });
});

after(async () => {
  await Promise.all(peers().map(closePeer));
  await browser?.close().catch(() => {});
});

/** connect() with `token` on a fresh client in the probe page: {ok, code, message}. */
async function tryConnect(token) {
  return probe.page.evaluate(async (token) => {
    const c = new window.__sdk.StrowgerClient({ reconnect: false });
    try {
      await window.__bounded(c.connect(token), 10_000, 'connect');
      c.disconnect();
      return { ok: true };
    } catch (e) {
      return { ok: false, code: e.code, message: String(e.message || e) };
    }
  }, token);
}

/** A raw WebSocket: sends `hello` with `token`, records every frame and the close. */
async function rawHello(token) {
  return probe.page.evaluate(async ([url, token]) => {
    return new Promise((resolve) => {
      const frames = [];
      const ws = new WebSocket(url);
      const timer = setTimeout(() => { resolve({ frames, close: null, note: 'no close within 10 s' }); ws.close(); }, 10_000);
      ws.onopen = () => ws.send(JSON.stringify({ type: 'hello', token }));
      ws.onmessage = (e) => frames.push(JSON.parse(e.data));
      ws.onclose = (e) => { clearTimeout(timer); resolve({ frames, close: { code: e.code, reason: e.reason } }); };
    });
  }, [BASE.replace(/^http/, 'ws') + '/ws', token]);
}

const now = () => Math.floor(Date.now() / 1000);

const badTokens = {
  garbage: () => 'this-is-not-a-jwt',
  'forged signature': () => signToken(payload(), 'another-secret-that-is-at-least-32-characters-long'),
  expired: () => signToken(payload({ iat: now() - 7200, nbf: now() - 7200, exp: now() - 3600 })),
  'not yet valid': () => signToken(payload({ nbf: now() + 3600, exp: now() + 7200 })),
  'alg none': () => {
    const h = Buffer.from(JSON.stringify({ alg: 'none', typ: 'JWT' })).toString('base64url');
    return `${h}.${Buffer.from(JSON.stringify(payload())).toString('base64url')}.`;
  },
  'tampered payload': () => {
    const [h, , s] = mintToken({ identity: intruder, room: 'vault' }).split('.');
    return `${h}.${Buffer.from(JSON.stringify(payload({ grants: { ...payload().grants, admin: true } }))).toString('base64url')}.${s}`;
  },
};

test('control: a token re-signed with the server secret is accepted', { timeout: 30_000 }, async () => {
  // Shows the forging below changes only what each case says it changes.
  const r = await tryConnect(signToken(payload({ sub: uid('control-') })));
  assert.deepEqual(r, { ok: true });
});

for (const [name, make] of Object.entries(badTokens)) {
  test(`token refused with unauthorized: ${name}`, { timeout: 30_000 }, async () => {
    await withDiagnostics(`auth-${name}`, peers, async () => {
      const token = make();
      const r = await tryConnect(token);
      assert.equal(r.ok, false, 'connect must reject');
      assert.equal(r.code, 'unauthorized', `connect rejected with ${JSON.stringify(r)}`);

      const raw = await rawHello(token);
      assert.ok(raw.frames.length >= 1, `an error frame before the close: ${JSON.stringify(raw)}`);
      assert.equal(raw.frames[0].type, 'error', JSON.stringify(raw.frames));
      assert.equal(raw.frames[0].code, 'unauthorized', JSON.stringify(raw.frames));
      assert.ok(!raw.frames.some((f) => f.type === 'welcome' || f.type === 'presence'), `no session frames: ${JSON.stringify(raw.frames)}`);
      assert.ok(raw.close, `the server closes the socket: ${JSON.stringify(raw)}`);
      assert.equal(raw.close.code, 4401, `close code: ${JSON.stringify(raw.close)}`);
    });
  });
}

test('no session exists for the refused intruder', { timeout: 30_000 }, async () => {
  await withDiagnostics('auth-nosession', peers, async () => {
    const sessionsBefore = await gauge(/sessions$/);
    for (const make of Object.values(badTokens)) await rawHello(make());
    const presence = await observer.page.evaluate(() => window.c.presence);
    assert.ok(Array.isArray(presence), 'the SDK keeps the presence list');
    assert.ok(!presence.some((u) => u.identity === intruder), `presence lists the intruder: ${JSON.stringify(presence)}`);
    const shown = (await observer.events('presence')).filter((e) => (e.detail.users || []).some((u) => u.identity === intruder));
    assert.deepEqual(shown, [], 'no presence event ever showed the intruder');
    const sessionsAfter = await gauge(/sessions$/);
    if (sessionsBefore !== null) assert.equal(sessionsAfter, sessionsBefore, 'sessions gauge unchanged by refused hellos');
  });
});

test('joining a room the token does not grant is forbidden', { timeout: 30_000 }, async () => {
  await withDiagnostics('auth-room', peers, async () => {
    // Granted another room.
    const other = await connectedPeer(browser, uid('eve-'), { room: 'other-room' });
    try {
      const r = await other.try('joinRoom', ['standup'], 10_000);
      assert.equal(r.ok, false, 'joinRoom must reject');
      assert.equal(r.code, 'forbidden', JSON.stringify(r));
      // The granted room still works for the same session.
      const ok = await other.try('joinRoom', ['other-room'], 10_000);
      assert.equal(ok.ok, true, `granted room: ${JSON.stringify(ok)}`);
    } finally {
      await closePeer(other);
    }

    // No room grant at all (a token for calls only).
    const p = payload();
    const grants = { ...p.grants };
    delete grants.room;
    const noRoom = await newPeer(browser, { identity: intruder + '-noroom', token: signToken({ ...p, sub: intruder + '-noroom', grants }) });
    try {
      const r = await noRoom.try('joinRoom', ['standup'], 10_000);
      assert.equal(r.ok, false, 'joinRoom must reject');
      assert.equal(r.code, 'forbidden', JSON.stringify(r));
    } finally {
      await closePeer(noRoom);
    }
  });
});

test('a token without the publish grant may join but not publish', { timeout: 30_000 }, async () => {
  await withDiagnostics('auth-publish', peers, async () => {
    const room = uid('webinar-');
    const viewer = await connectedPeer(browser, uid('viewer-'), { room, publish: false });
    try {
      await viewer.sdk('joinRoom', room);
      const r = await viewer.try('publishMicrophone', [], 10_000);
      assert.equal(r.ok, false, 'publishMicrophone must reject');
      assert.equal(r.code, 'forbidden', JSON.stringify(r));
    } finally {
      await closePeer(viewer);
    }
  });
});
