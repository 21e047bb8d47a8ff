#!/usr/bin/env python3
"""Helpers of tests/sip/baresip.sh (python3 stdlib only).

  baresip_tool.py tone FILE.wav FREQ SECONDS         write a 8 kHz mono 16-bit sine (the aufile source)
  baresip_tool.py drive --alice HOST:PORT --bob HOST:PORT --dial URI [--hold 6]
        over baresip's ctrl_tcp (netstring JSON): wait until both are registered, alice dials,
        wait for CALL_ESTABLISHED on both, hold, alice hangs up, wait for CALL_CLOSED on both
  baresip_tool.py ports BASE                         first block b >= BASE (steps of 50) whose ports
        b, b+1, b+10, b+11, b+20, b+21 are free on 127.0.0.1 for UDP and TCP; prints b
  baresip_tool.py check DIR FREQ [--other FREQ]      the received audio (sndfile dump-*-dec.wav in
        DIR) carries the tone FREQ: Goertzel power at FREQ dominates the other tone and the
        neighbourhood, over at least 2 s of the recording
"""
import argparse
import glob
import json
import math
import os
import socket
import struct
import sys
import time
import wave


def tone(path, freq, secs, rate=8000):
    with wave.open(path, 'wb') as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        n = int(secs * rate)
        w.writeframes(b''.join(struct.pack('<h', int(12000 * math.sin(2 * math.pi * freq * i / rate)))
                               for i in range(n)))


class Ctrl:
    def __init__(self, name, addr, deadline):
        self.name = name
        host, port = addr.rsplit(':', 1)
        while True:
            try:
                self.s = socket.create_connection((host, int(port)), timeout=1)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit(f'{name}: ctrl_tcp {addr} not reachable')
                time.sleep(0.2)
        self.s.setblocking(False)
        self.buf = b''
        self.events = []
        self.n = 0

    def send(self, command, params=''):
        self.n += 1
        body = json.dumps({'command': command, 'params': params, 'token': f'{self.name}{self.n}'}).encode()
        self.s.sendall(b'%d:%s,' % (len(body), body))

    def poll(self):
        try:
            while True:
                chunk = self.s.recv(65536)
                if not chunk:
                    break
                self.buf += chunk
        except BlockingIOError:
            pass
        except OSError:
            pass
        while b':' in self.buf:
            ln, _, rest = self.buf.partition(b':')
            if not ln.isdigit() or len(rest) < int(ln) + 1:
                break
            msg, self.buf = rest[:int(ln)], rest[int(ln) + 1:]
            try:
                m = json.loads(msg)
            except ValueError:
                continue
            self.events.append(m)
            kind = m.get('type') or ('response' if m.get('response') else '?')
            print(f'  {self.name}: {kind} {str(m.get("param") or m.get("data") or "")[:100]}', flush=True)

    def seen(self, typ):
        return any(e.get('type') == typ for e in self.events)

    def response_has(self, text):
        return any(e.get('response') and text in str(e.get('data', '')) for e in self.events)


def wait_for(peers, cond, secs, what, quiet=False):
    deadline = time.monotonic() + secs
    while time.monotonic() < deadline:
        for p in peers:
            p.poll()
        if cond():
            return True
        time.sleep(0.05)
    if not quiet:
        print(f'  timed out after {secs}s waiting for {what}', flush=True)
    return False


def drive(a):
    t0 = time.monotonic()
    alice = Ctrl('alice', a.alice, t0 + 10)
    bob = Ctrl('bob', a.bob, t0 + 10)
    peers = [alice, bob]
    # registration: the REGISTER_OK event, or (if it came before we connected) reginfo saying OK
    if not wait_for(peers, lambda: alice.seen('REGISTER_OK') and bob.seen('REGISTER_OK'), 4, 'REGISTER_OK'):
        for p in peers:
            if not p.seen('REGISTER_OK'):
                p.send('reginfo')
        if not wait_for(peers, lambda: all(p.seen('REGISTER_OK') or p.response_has('OK') for p in peers), 6,
                        'registration (reginfo)'):
            print('FAIL registration', flush=True)
            return 1
    if any(p.seen('REGISTER_FAIL') for p in peers):
        print('FAIL registration refused', flush=True)
        return 1
    print('registered: alice, bob', flush=True)
    alice.send('dial', a.dial)
    if not wait_for(peers, lambda: alice.seen('CALL_ESTABLISHED') and bob.seen('CALL_ESTABLISHED'), 20,
                    'CALL_ESTABLISHED on both'):
        print('FAIL call not established', flush=True)
        alice.send('hangup')
        wait_for(peers, lambda: False, 1, 'hangup', quiet=True)
        return 1
    print(f'established; holding {a.hold}s', flush=True)
    wait_for(peers, lambda: alice.seen('CALL_CLOSED') or bob.seen('CALL_CLOSED'), a.hold, 'the hold time', quiet=True)
    if alice.seen('CALL_CLOSED') or bob.seen('CALL_CLOSED'):
        print('FAIL call closed early', flush=True)
        return 1
    alice.send('hangup')
    if not wait_for(peers, lambda: alice.seen('CALL_CLOSED') and bob.seen('CALL_CLOSED'), 10, 'CALL_CLOSED on both'):
        print('FAIL hangup did not reach bob', flush=True)
        return 1
    for p in peers:
        p.send('quit')
    wait_for(peers, lambda: False, 0.5, 'quit', quiet=True)
    print('call ok', flush=True)
    return 0


def free(port):
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        s = socket.socket(socket.AF_INET, kind)
        try:
            s.bind(('127.0.0.1', port))
        except OSError:
            return False
        finally:
            s.close()
    return True


def ports(base):
    for b in range(base, base + 2000, 50):
        if all(free(b + o) for o in (0, 1, 10, 11, 20, 21)):
            print(b)
            return 0
    print('no free port block', file=sys.stderr)
    return 1


def goertzel(samples, rate, freq):
    k = 2 * math.cos(2 * math.pi * freq / rate)
    s1 = s2 = 0.0
    for x in samples:
        s1, s2 = x + k * s1 - s2, s1
    return s1 * s1 + s2 * s2 - k * s1 * s2


def check(a):
    files = sorted(glob.glob(os.path.join(a.dir, '*dec*.wav')))
    if not files:
        print(f'FAIL no received-audio recording (dump-*-dec.wav) in {a.dir}: {os.listdir(a.dir)}')
        return 1
    path = max(files, key=os.path.getsize)
    with wave.open(path, 'rb') as w:
        rate, ch, width, n = w.getframerate(), w.getnchannels(), w.getsampwidth(), w.getnframes()
        raw = w.readframes(n)
    if width != 2:
        print(f'FAIL {path}: {8 * width}-bit samples not supported')
        return 1
    samples = struct.unpack('<%dh' % (len(raw) // 2), raw)[::ch]
    block = rate // 5   # 200 ms
    good = 0
    total = 0
    for i in range(0, len(samples) - block, block):
        b = samples[i:i + block]
        energy = sum(x * x for x in b) / len(b)
        total += 1
        if energy < 1e4:   # silence (rms below 100)
            continue
        p = goertzel(b, rate, a.freq)
        others = [goertzel(b, rate, f) for f in (a.other, a.freq * 0.7, a.freq * 1.4)]
        # a pure tone: the Goertzel power of one 200 ms block is about (A*N/2)^2
        if p > 20 * max(others) and p > 0.25 * energy * len(b) * len(b) / 2 * 0.5:
            good += 1
    secs = good * block / rate
    print(f'{os.path.basename(path)}: {n / rate:.1f}s at {rate} Hz, {secs:.1f}s carry {a.freq:g} Hz '
          f'({good}/{total} blocks of 200 ms)')
    if secs < a.min_secs:
        print(f'FAIL less than {a.min_secs}s of received {a.freq:g} Hz tone')
        return 1
    return 0


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest='cmd', required=True)
    t = sub.add_parser('tone')
    t.add_argument('file')
    t.add_argument('freq', type=float)
    t.add_argument('secs', type=float)
    d = sub.add_parser('drive')
    d.add_argument('--alice', required=True)
    d.add_argument('--bob', required=True)
    d.add_argument('--dial', required=True)
    d.add_argument('--hold', type=float, default=6)
    pp = sub.add_parser('ports')
    pp.add_argument('base', type=int)
    c = sub.add_parser('check')
    c.add_argument('dir')
    c.add_argument('freq', type=float)
    c.add_argument('--other', type=float, default=0)
    c.add_argument('--min-secs', type=float, default=2.0)
    a = ap.parse_args()
    if a.cmd == 'tone':
        tone(a.file, a.freq, a.secs)
        return 0
    if a.cmd == 'drive':
        return drive(a)
    if a.cmd == 'ports':
        return ports(a.base)
    if a.other == 0:
        a.other = a.freq * 2.3
    return check(a)


if __name__ == '__main__':
    sys.exit(main())
