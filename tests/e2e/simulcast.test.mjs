// Simulcast: the publisher sends its camera in several layers; the server forwards to each
// subscriber the layer its downlink affords (a `tc` limit on that subscriber's UDP port) and the
// size it asked for (`setSubscription`).
//
// The SDK asks the camera for 1280x720 and Chromium's fake camera obliges, so the publisher
// sends three layers (320x180, 640x360, 1280x720). With E2E_SIMULCAST_SOURCE=file it captures a
// generated 1280x720 y4m clip instead (same layers, known content). Either way the low layer is
// at most 320 wide and the high one at least 640.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { rmSync } from 'node:fs';
import {
  launchBrowser, connectedPeer, closePeer, participantId, limitUdpPort, poll, statsFor, uid, withDiagnostics, writeY4m, RTC_PORT,
} from './lib.mjs';

const useFile = process.env.E2E_SIMULCAST_SOURCE === 'file';
const LIMIT_KBIT = Number(process.env.E2E_SIMULCAST_LIMIT_KBIT || 250);
const y4m = join(tmpdir(), `strowger-e2e-${process.pid}.y4m`);
let pubBrowser;
let subBrowser;
let pub;
let sub;
let cam; // the subscriber's view of the publisher's camera
let limit;
const peers = () => [pub, sub];

before(async () => {
  if (useFile) writeY4m(y4m, { width: 1280, height: 720, frames: 20, fps: 20 });
  // One browser per distinct sender: fake capture flags apply to the whole browser.
  pubBrowser = await launchBrowser({ args: useFile ? [`--use-file-for-fake-video-capture=${y4m}`] : [] });
  subBrowser = await launchBrowser();
});

after(async () => {
  await limit?.remove();
  await Promise.all(peers().map(closePeer));
  await pubBrowser?.close().catch(() => {});
  await subBrowser?.close().catch(() => {});
  if (useFile) rmSync(y4m, { force: true });
});

const wide = (s) => s.frameWidth >= 640;
const narrow = (s) => s.frameWidth > 0 && s.frameWidth <= 320;

test('the publisher sends at least two simulcast layers and an unlimited subscriber gets the high one', { timeout: 90_000 }, async () => {
  await withDiagnostics('simulcast-up', peers, async () => {
    const room = uid('sim-');
    pub = await connectedPeer(pubBrowser, uid('pub-'), { room });
    sub = await connectedPeer(subBrowser, uid('sub-'), { room });
    await pub.sdk('joinRoom', room);
    const local = await pub.sdk('publishCamera', { simulcast: true });
    assert.equal(local.simulcast, true);
    await sub.sdk('joinRoom', room);
    const pid = await participantId(pub);
    [cam] = await sub.waitSubscriptions((s) => s.participantId === pid && s.source === 'camera', 1, { what: 'camera' });
    await sub.waitFlow([cam]);

    // At least two layers are encoded and sent (framesEncoded growing on each rid).
    let layers = [];
    const before = new Map();
    await poll('publisher encoding and sending >= 2 simulcast layers', async () => {
      const out = (await pub.outbound()).filter((r) => r.kind === 'video');
      layers = out;
      const growing = out.filter((r) => {
        const b = before.get(r.rid);
        before.set(r.rid, r.framesEncoded);
        return b !== undefined && r.framesEncoded > b && r.packetsSent > 0;
      });
      return growing.length >= 2;
    }, { timeout: 20_000, interval: 500, describe: () => JSON.stringify(layers) });
    console.log(`# publisher layers: ${layers.map((l) => `${l.rid}=${l.frameWidth}x${l.frameHeight}${l.qualityLimitationReason !== 'none' ? ` (${l.qualityLimitationReason})` : ''}`).join(' ')}`);

    const s = await sub.waitTrackStats(cam, wide, { timeout: 30_000, what: 'the high layer (>= 640 wide)' });
    console.log(`# unlimited subscriber receives ${s.frameWidth}x${s.frameHeight}`);
  });
});

test(`a subscriber limited to ${LIMIT_KBIT} kbit/s gets the low layer, and the high one once the limit is lifted`, { timeout: 120_000 }, async () => {
  await withDiagnostics('simulcast-bwe', peers, async () => {
    assert.ok(cam, 'needs the first test');
    const pair = await sub.selectedPair('subscriberPc');
    assert.ok(pair?.local?.port, `subscriber connection has a selected candidate pair: ${JSON.stringify(pair)}`);
    assert.equal(pair.remote.port, RTC_PORT, `media comes from the server's RTC port: ${JSON.stringify(pair)}`);
    limit = await limitUdpPort(pair.local.port, LIMIT_KBIT);

    const t0 = Date.now();
    const low = await sub.waitTrackStats(cam, narrow, { timeout: 30_000, what: `the low layer (<= 320 wide) under ${LIMIT_KBIT} kbit/s` });
    console.log(`# limited: ${low.frameWidth}x${low.frameHeight} after ${Date.now() - t0} ms`);
    // Still moving, not frozen, on the low layer.
    await sub.waitFlow([cam], { timeout: 10_000, what: 'video under the limit' });
    const now = statsFor(await sub.inbound(), cam.mediaStreamTrackId);
    assert.ok(narrow(now), `still the low layer: ${JSON.stringify(now)}`);

    await limit.remove();
    limit = undefined;
    const t1 = Date.now();
    const high = await sub.waitTrackStats(cam, wide, { timeout: 45_000, what: 'the high layer again after lifting the limit' });
    console.log(`# unlimited again: ${high.frameWidth}x${high.frameHeight} after ${Date.now() - t1} ms`);
  });
});

test('setSubscription({maxWidth: 320}) selects the low layer, and a larger maxWidth the high one', { timeout: 60_000 }, async () => {
  await withDiagnostics('simulcast-setsub', peers, async () => {
    assert.ok(cam, 'needs the first test');
    await sub.sdk('setSubscription', cam.trackId, { maxWidth: 320, maxHeight: 240 });
    await sub.waitTrackStats(cam, narrow, { timeout: 10_000, what: 'the low layer after setSubscription maxWidth 320' });
    await sub.sdk('setSubscription', cam.trackId, { maxWidth: 1280, maxHeight: 720 });
    await sub.waitTrackStats(cam, wide, { timeout: 15_000, what: 'the high layer after setSubscription maxWidth 1280' });
  });
});
