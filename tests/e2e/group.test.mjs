// A group call: four participants in one room, each decoding the other three's video and
// receiving their audio, matched per participant through `tracksubscribed`.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  launchBrowser, connectedPeer, closePeer, joinAndPublish, participantId, participantsGauge, uid, withDiagnostics, SMALL_CAMERA,
} from './lib.mjs';

const N = 4;
let browser;
let peers = [];

before(async () => {
  browser = await launchBrowser();
});

after(async () => {
  await Promise.all(peers.map(closePeer));
  await browser?.close().catch(() => {});
});

test(`${N} participants in one room each receive the other ${N - 1}'s audio and video`, { timeout: 120_000 }, async () => {
  await withDiagnostics('group', () => peers, async () => {
    const room = uid('standup-');
    // Tokens grant exactly this room.
    peers = await Promise.all(Array.from({ length: N }, (_, i) => connectedPeer(browser, uid(`p${i}-`), { room })));
    // Join one after another so both paths are used: tracks present at join, and tracks
    // published later by others.
    for (const p of peers) await joinAndPublish(p, room, { cameraConstraints: SMALL_CAMERA });
    const pids = await Promise.all(peers.map(participantId));
    assert.equal(new Set(pids).size, N, `distinct participant ids: ${pids}`);

    // Everyone's room lists the other three, with their identities.
    for (const [i, p] of peers.entries()) {
      const r = await p.room();
      const others = Object.values(r.participants || {});
      assert.deepEqual(
        others.map((o) => o.identity).sort(),
        peers.filter((_, j) => j !== i).map((q) => q.identity).sort(),
        `${p.identity} sees the other participants`,
      );
    }

    await Promise.all(peers.map(async (p, i) => {
      const others = pids.filter((_, j) => j !== i);
      const subs = await p.waitSubscriptions((s) => others.includes(s.participantId), 2 * (N - 1), {
        timeout: 20_000, what: `tracks of ${N - 1} others`,
      });
      // Exactly one microphone and one camera from each other participant.
      for (const o of others) {
        const mine = subs.filter((s) => s.participantId === o).map((s) => `${s.kind}/${s.source}`).sort();
        assert.deepEqual(mine, ['audio/microphone', 'video/camera'], `${p.identity}: tracks of ${o}`);
      }
      const flow = await p.waitFlow(subs, { timeout: 25_000 });
      for (const f of flow.filter((f) => f.kind === 'video')) {
        assert.ok(f.stats.frameWidth >= 160, `${p.identity}: video of ${f.participantId} decodes at ${f.stats.frameWidth}px`);
      }
    }));
    assert.ok(await participantsGauge() >= N, 'participants gauge counts the room');
  });
});
