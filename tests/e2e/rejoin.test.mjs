// Leaving and rejoining the same room: the others see the participant leave and come back, and
// decode the rejoined participant's new tracks.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launchBrowser, connectedPeer, closePeer, joinAndPublish, participantId, uid, withDiagnostics, SMALL_CAMERA } from './lib.mjs';

let browser;
let peers = [];

before(async () => {
  browser = await launchBrowser();
});

after(async () => {
  await Promise.all(peers.map(closePeer));
  await browser?.close().catch(() => {});
});

test('a participant who leaves and rejoins is seen leaving, joining, and decoded again', { timeout: 120_000 }, async () => {
  await withDiagnostics('rejoin', () => peers, async () => {
    const room = uid('daily-');
    const [a, b, c] = (peers = await Promise.all(['a-', 'b-', 'c-'].map((n) => connectedPeer(browser, uid(n), { room }))));
    for (const p of peers) await joinAndPublish(p, room, { cameraConstraints: SMALL_CAMERA });
    const cPid1 = await participantId(c);
    for (const o of [a, b]) {
      const subs = await o.waitSubscriptions((s) => s.participantId === cPid1, 2, { what: "c's tracks" });
      await o.waitFlow(subs);
    }

    await c.sdk('leaveRoom');
    for (const o of [a, b]) {
      await o.waitEvent('participantleft', (d) => d.participantId === cPid1, { timeout: 5_000 });
      const r = await o.room();
      assert.ok(!(cPid1 in (r.participants || {})), `${o.identity}'s room no longer lists c`);
    }

    const since = Date.now();
    await joinAndPublish(c, room, { cameraConstraints: SMALL_CAMERA });
    const cPid2 = await participantId(c);
    for (const o of [a, b]) {
      const joined = await o.waitEvent('participantjoined', (d) => d.participant.id === cPid2 && d.participant.identity === c.identity, {
        timeout: 5_000,
      });
      assert.equal(joined.participant.identity, c.identity);
      const subs = await o.waitSubscriptions((s) => s.participantId === cPid2, 2, { since, what: "rejoined c's tracks" });
      const flow = await o.waitFlow(subs, { what: 'media of the rejoined participant' });
      assert.ok(flow.find((f) => f.kind === 'video').stats.frameWidth > 0);
    }
    // c receives a and b again too.
    const [aPid, bPid] = await Promise.all([participantId(a), participantId(b)]);
    const back = await c.waitSubscriptions((s) => s.participantId === aPid || s.participantId === bPid, 4, { since, what: 'a and b after rejoin' });
    await c.waitFlow(back);
  });
});
