// 1:1 calls: ringing, accept, media both ways, hang-up; reject, cancel and offline paths.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  launchBrowser, connectedPeer, closePeer, joinAndPublish, participantId, participantsGauge,
  poll, uid, withDiagnostics,
} from './lib.mjs';

let browser;
let alice;
let bob;
const peers = () => [alice, bob];

before(async () => {
  browser = await launchBrowser();
  // Their tokens grant only the room 'lobby': a call's room `call:<id>` needs no grant.
  alice = await connectedPeer(browser, uid('alice-'), { name: 'Alice', room: 'lobby' });
  bob = await connectedPeer(browser, uid('bob-'), { name: 'Bob', room: 'lobby' });
});

after(async () => {
  await Promise.all(peers().map(closePeer));
  await browser?.close().catch(() => {});
});

/** alice calls bob and bob sees it ring; returns the call id. */
async function ring(video) {
  const call = await alice.sdk('call', bob.identity, { video });
  assert.ok(call.callId, `call() resolved with a callId: ${JSON.stringify(call)}`);
  const inc = await bob.waitEvent('incomingcall', (d) => d.callId === call.callId, { timeout: 5_000 });
  assert.equal(inc.from.identity, alice.identity);
  assert.equal(inc.from.name, 'Alice');
  assert.equal(inc.video, video);
  return call.callId;
}

test('a 1:1 video call rings, is accepted, carries media both ways and hangs up cleanly', { timeout: 90_000 }, async () => {
  await withDiagnostics('call-accept', peers, async () => {
    // Earlier files' sessions may still be ending (resume window): start from an empty server.
    await poll('no participants on the server before the call', async () => (await participantsGauge()) === 0, { timeout: 30_000, interval: 500 });

    const callId = await ring(true);
    await bob.sdk('accept', callId);
    const [a, b] = await Promise.all([
      alice.waitEvent('callaccepted', (d) => d.callId === callId, { timeout: 5_000 }),
      bob.waitEvent('callaccepted', (d) => d.callId === callId, { timeout: 5_000 }),
    ]);
    assert.equal(a.room, `call:${callId}`);
    assert.equal(b.room, a.room);
    assert.equal(a.peer.identity, bob.identity);
    assert.equal(b.peer.identity, alice.identity);

    await Promise.all([joinAndPublish(alice, a.room), joinAndPublish(bob, b.room)]);
    const [alicePid, bobPid] = await Promise.all([participantId(alice), participantId(bob)]);
    assert.ok(alicePid && bobPid && alicePid !== bobPid, `participant ids ${alicePid} ${bobPid}`);

    // Each side subscribes to the other's microphone and camera and decodes them.
    const [atBob, atAlice] = await Promise.all([
      bob.waitSubscriptions((s) => s.participantId === alicePid, 2, { what: "alice's tracks" }),
      alice.waitSubscriptions((s) => s.participantId === bobPid, 2, { what: "bob's tracks" }),
    ]);
    for (const subs of [atBob, atAlice]) {
      assert.deepEqual(subs.map((s) => `${s.kind}/${s.source}`).sort(), ['audio/microphone', 'video/camera']);
    }
    const [flowBob, flowAlice] = await Promise.all([bob.waitFlow(atBob), alice.waitFlow(atAlice)]);
    for (const f of [...flowBob, ...flowAlice].filter((f) => f.kind === 'video')) {
      assert.ok(f.stats.frameWidth > 0, `decoded video has a size: ${JSON.stringify(f.stats)}`);
    }
    await poll('participants gauge at 2 during the call', async () => (await participantsGauge()) === 2, { timeout: 5_000 });

    // Hang-up: bob is told, both leave the call's room, the server holds no participant.
    await alice.sdk('hangup', callId);
    const ended = await bob.waitEvent('callended', (d) => d.callId === callId, { timeout: 5_000 });
    assert.equal(ended.reason, 'hangup');
    await poll('participants gauge back to 0 after hang-up', async () => (await participantsGauge()) === 0, { timeout: 5_000 });
    await poll('both SDKs left the call room', async () => {
      const rooms = await Promise.all([alice.room(), bob.room()]);
      return rooms.every((r) => r == null);
    }, { timeout: 5_000 });
  });
});

test('a rejected call ends for the caller with reason rejected', { timeout: 30_000 }, async () => {
  await withDiagnostics('call-reject', peers, async () => {
    const callId = await ring(false);
    await bob.sdk('reject', callId);
    const ended = await alice.waitEvent('callended', (d) => d.callId === callId, { timeout: 5_000 });
    assert.equal(ended.reason, 'rejected');
    await alice.noEvent('callaccepted', (d) => d.callId === callId);
  });
});

test('a cancelled call stops ringing at the callee with reason cancelled', { timeout: 30_000 }, async () => {
  await withDiagnostics('call-cancel', peers, async () => {
    const callId = await ring(true);
    await alice.sdk('cancel', callId);
    const ended = await bob.waitEvent('callended', (d) => d.callId === callId, { timeout: 5_000 });
    assert.equal(ended.reason, 'cancelled');
  });
});

test('a call to a user with no device online ends at once with offline', { timeout: 30_000 }, async () => {
  await withDiagnostics('call-offline', peers, async () => {
    // carol signs in, then signs out (WebSocket close 1000: her session ends at once), so she
    // is known but has no device online. Her page stays open until then, or closing it could
    // cut the socket before the close frame is out (then the server waits for a resume).
    const carol = await connectedPeer(browser, uid('carol-'), { room: 'lobby' });
    const carolId = carol.identity;
    await carol.sdk('disconnect');
    const t0 = Date.now();
    let rang = 0;
    const r = await poll(`call to ${carolId} ending offline`, async () => {
      const r = await alice.try('call', [carolId, { video: false }], 5_000);
      // While the server still counts carol as online, the call rings: give up and retry.
      if (r.ok) {
        rang++;
        await alice.sdk('cancel', r.value.callId);
      }
      return !r.ok && r;
    }, { timeout: 5_000, interval: 250 }).finally(() => closePeer(carol));
    assert.equal(r.code, 'offline', `call() rejected with ${JSON.stringify(r)}`);
    const ended = await alice.waitEvent('callended', (d) => d.reason === 'offline', { timeout: 2_000 });
    assert.ok(ended, 'callended{offline} emitted');
    // A never-seen identity is offline as well (or unknown_user, both end the call at once).
    const r2 = await alice.try('call', [uid('nobody-'), { video: false }], 5_000);
    assert.ok(!r2.ok && ['offline', 'unknown_user'].includes(r2.code), `call to a never-seen user: ${JSON.stringify(r2)}`);
    assert.ok(rang <= 1, `carol still rang ${rang} times over ${Date.now() - t0} ms after her disconnect`);
  });
});
