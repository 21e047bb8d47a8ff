// Screen sharing. Headless Chromium 156 grants getDisplayMedia with
// --use-fake-ui-for-media-stream (auto-accepts the picker) plus
// --use-fake-device-for-media-stream (a fake 1280x720 30 fps "monitor" source); both flags are
// needed, --auto-select-desktop-capture-source is not. See 0-environment.test.mjs.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launchBrowser, connectedPeer, closePeer, joinAndPublish, participantId, uid, withDiagnostics } from './lib.mjs';

let browser;
let peers = [];

before(async () => {
  browser = await launchBrowser();
});

after(async () => {
  await Promise.all(peers.map(closePeer));
  await browser?.close().catch(() => {});
});

test('a shared screen reaches the others as a `screen` track and decodes', { timeout: 90_000 }, async () => {
  await withDiagnostics('screenshare', () => peers, async () => {
    const room = uid('review-');
    const [presenter, v1, v2] = (peers = await Promise.all(
      ['presenter-', 'viewer1-', 'viewer2-'].map((n) => connectedPeer(browser, uid(n), { room })),
    ));
    await joinAndPublish(presenter, room, { microphone: true, camera: false });
    for (const v of [v1, v2]) await v.sdk('joinRoom', room);
    const local = await presenter.sdk('publishScreen');
    assert.equal(local.source, 'screen');
    const pid = await participantId(presenter);

    for (const v of [v1, v2]) {
      const pub = await v.waitEvent('trackpublished', (d) => d.participantId === pid && d.track.source === 'screen', { timeout: 10_000 });
      assert.equal(pub.track.kind, 'video');
      const [screen] = await v.waitSubscriptions((s) => s.participantId === pid && s.source === 'screen', 1, { what: 'screen track' });
      assert.equal(screen.kind, 'video');
      const [f] = await v.waitFlow([screen], { timeout: 20_000, what: 'screen frames' });
      assert.ok(f.stats.frameWidth >= 320, `screen decodes at a useful size: ${JSON.stringify(f.stats)}`);
    }
  });
});

test('a token without the screenshare grant cannot share a screen', { timeout: 30_000 }, async () => {
  await withDiagnostics('screenshare-forbidden', () => peers, async () => {
    const room = uid('review-');
    const p = await connectedPeer(browser, uid('noscreen-'), { room, screenshare: false });
    peers.push(p);
    await p.sdk('joinRoom', room);
    const r = await p.try('publishScreen', [], 10_000);
    assert.equal(r.ok, false, 'publishScreen must fail');
    assert.equal(r.code, 'forbidden', JSON.stringify(r));
  });
});
