// Checks of the test environment itself, without the Strowger server: Chromium in this
// namespace can make a loopback WebRTC call with its fake devices, getDisplayMedia works
// headless, and a `tc` limit on a peer connection's UDP port really slows it down. When these
// fail, the other files' failures say nothing about the server.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { launchBrowser, limitUdpPort, poll } from './lib.mjs';

let browser;
let server;
let page;

before(async () => {
  server = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end('<!doctype html><title>harness</title><body></body>');
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  browser = await launchBrowser();
  page = await browser.newPage();
  await page.goto(`http://127.0.0.1:${server.address().port}/`);
});

after(async () => {
  await browser?.close().catch(() => {});
  server?.close();
});

// Two peer connections in one page, connected to each other over 127.0.0.1.
async function loopbackCall(video) {
  await page.evaluate(async (kind) => {
    const stream =
      kind === 'screen'
        ? await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false })
        : await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
    const a = new RTCPeerConnection();
    const b = new RTCPeerConnection();
    a.onicecandidate = (e) => e.candidate && b.addIceCandidate(e.candidate);
    b.onicecandidate = (e) => e.candidate && a.addIceCandidate(e.candidate);
    for (const t of stream.getTracks()) a.addTrack(t, stream);
    await a.setLocalDescription();
    await b.setRemoteDescription(a.localDescription);
    await b.setLocalDescription();
    await a.setRemoteDescription(b.localDescription);
    window.pcs = { a, b, settings: stream.getVideoTracks()[0].getSettings() };
  }, video);
}

async function inbound() {
  return page.evaluate(async () => {
    const out = {};
    for (const r of (await window.pcs.b.getStats()).values()) {
      if (r.type === 'inbound-rtp') out[r.kind] = { framesDecoded: r.framesDecoded, packetsReceived: r.packetsReceived, bytesReceived: r.bytesReceived, frameWidth: r.frameWidth };
    }
    return out;
  });
}

test('fake camera and microphone flow over a loopback peer connection', async () => {
  await loopbackCall('camera');
  const s = await poll('video frames and audio packets', async () => {
    const s = await inbound();
    return s.video?.framesDecoded > 10 && s.audio?.packetsReceived > 20 && s;
  }, { timeout: 10_000 });
  assert.equal(s.video.frameWidth, 640);
});

test('a tc htb limit on the receiving UDP port throttles the stream', async () => {
  const port = await page.evaluate(async () => {
    const stats = await window.pcs.b.getStats();
    for (const r of stats.values()) if (r.type === 'transport' && r.selectedCandidatePairId) return stats.get(stats.get(r.selectedCandidatePairId).localCandidateId).port;
  });
  assert.ok(port > 0, 'selected candidate pair has a local port');
  const rate = async (ms) => {
    const a = (await inbound()).video.bytesReceived;
    await new Promise((r) => setTimeout(r, ms));
    return (((await inbound()).video.bytesReceived - a) * 8) / ms; // kbit/s
  };
  const lim = await limitUdpPort(port, 150);
  try {
    await new Promise((r) => setTimeout(r, 500));
    const limited = await rate(2000);
    assert.ok(limited < 250, `limited video rate ${limited.toFixed(0)} kbit/s should be under 250`);
  } finally {
    await lim.remove();
  }
  await page.evaluate(() => { window.pcs.a.close(); window.pcs.b.close(); });
});

test('getDisplayMedia works headless (fake screen) and its frames flow', async () => {
  await loopbackCall('screen');
  const settings = await page.evaluate(() => window.pcs.settings);
  assert.equal(settings.displaySurface, 'monitor');
  await poll('screen frames decoded', async () => (await inbound()).video?.framesDecoded > 10, { timeout: 10_000 });
  await page.evaluate(() => { window.pcs.a.close(); window.pcs.b.close(); });
});
