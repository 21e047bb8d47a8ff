#!/usr/bin/env python3
"""Sends the malformed SIP corpus (tests/sip/malformed/*.txt) to a server over UDP and TCP and
checks each answer (python3 stdlib only).

    send-malformed.py --target 127.0.0.1:5060 [--transport udp,tcp] [--dir malformed] [-v]

File names: NN-description[.noend][.lf].EXPECT.txt, EXPECT being '+'-joined alternatives:
  a status code (501), a class (4xx), `drop` (no answer; over TCP also: connection closed without
  an answer), `resp` (any answer), `any` (anything, the message must only not kill the server).
A 2xx is never accepted unless the expectation says so (`resp`, `any`, 200, 2xx).
File content: the headers, then optionally a blank line and a body. Lines are sent with CRLF (LF
only with `.lf`), the header block ends with an empty line (not with `.noend`). Placeholders:
{host} {local} {transport} {branch} {tag} {callid} {len} (body length) {pad:N} (N x 'a')
{bin:N} (N pseudo-random bytes) {vias:N} (N extra Via lines) {nul} (a NUL byte).
Exit status 0 when every message got an accepted outcome and the server still answers OPTIONS.
"""
import argparse
import glob
import os
import random
import re
import socket
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def build(path, host, local, transport, n):
    name = os.path.basename(path)
    flags = name.split('.')[1:-2]
    text = open(path, encoding='utf-8').read().rstrip('\n')
    head, _, body = text.partition('\n\n')
    rnd = random.Random(n)
    token = f'mal{n}x{os.getpid()}'

    def expand(s):
        def rep(m):
            k, _, arg = m.group(1).partition(':')
            if k == 'host':
                return host
            if k == 'local':
                return local
            if k == 'transport':
                return transport.upper()
            if k == 'branch':
                return 'z9hG4bK' + token
            if k in ('tag', 'callid'):
                return k + token
            if k == 'pad':
                return 'a' * int(arg)
            if k == 'nul':
                return '\x00'
            if k == 'vias':
                return ''.join(f'Via: SIP/2.0/{transport.upper()} 127.0.0.1:{9000 + i};branch=z9hG4bKv{i}\n'
                               for i in range(int(arg)))
            if k == 'bin':
                return ''.join(chr(rnd.randrange(256)) for _ in range(int(arg)))
            if k == 'len':
                return '{len}'
            return m.group(0)
        return re.sub(r'\{([a-z]+(?::[0-9]+)?)\}', rep, s)

    head, body = expand(head), expand(body)
    eol = '\n' if 'lf' in flags else '\r\n'
    body_b = body.replace('\n', eol).encode('latin-1')
    head = head.replace('{len}', str(len(body_b)))
    msg = head.replace('\n', eol).encode('latin-1')
    if 'noend' not in flags:
        msg += (eol + eol).encode()
    elif not head:
        msg = b''
    if not head and not body:
        msg = b'\r\n\r\n'
    return msg + body_b


def status_of(data):
    m = re.match(rb'SIP/2\.0 ([0-9]{3}) ', data)
    return int(m.group(1)) if m else None


def accepted(expect, status):
    """expect: list of alternatives; status: int, None (dropped) or 'junk' (answer that is not a status line)."""
    for e in expect:
        if e == 'any':
            return True
        if e == 'drop' and status is None:
            return True
        if status is None or status == 'junk':
            continue
        if e == 'resp':
            return True
        if re.fullmatch(r'[1-6]xx', e) and status // 100 == int(e[0]):
            return True
        if e.isdigit() and status == int(e):
            return True
    return False


def exchange_udp(target, msg, wait):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(('127.0.0.1', 0))
    local = '%s:%d' % s.getsockname()
    return s, local


def run_udp(s, target, msg, wait):
    try:
        s.sendto(msg[:65000], target)   # a UDP datagram holds at most 65507 bytes
    except OSError as e:
        return f'send error {e}'
    deadline = time.monotonic() + wait
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        s.settimeout(left)
        try:
            data, _ = s.recvfrom(70000)
        except socket.timeout:
            return None
        st = status_of(data)
        if st is None:
            return 'junk'
        if st >= 200 or st < 100:
            return st
        # provisional (100 Trying): keep waiting for the final answer


def run_tcp(target, msg, wait, local_holder):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(wait)
    try:
        s.connect(target)
    except OSError as e:
        return f'connect error {e}'
    local_holder.append('%s:%d' % s.getsockname())
    try:
        s.sendall(msg)
    except OSError:
        s.close()
        return None  # the server closed the connection on us: a drop
    buf = b''
    deadline = time.monotonic() + wait
    try:
        while time.monotonic() < deadline:
            s.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            buf += chunk
            while b'\r\n\r\n' in buf:
                head, _, buf = buf.partition(b'\r\n\r\n')
                st = status_of(head.lstrip(b'\r\n'))
                if st is None:
                    if head.strip():
                        return 'junk'
                    continue
                if st >= 200 or st < 100:
                    return st
    except OSError:
        pass
    finally:
        s.close()
    return None


def options_ok(target, transport):
    """A well-formed OPTIONS still gets an answer."""
    msg_path = os.path.join(HERE, 'malformed', '00-control-options.resp.txt')
    for attempt in range(3):
        if transport == 'udp':
            s, local = exchange_udp(target, b'', 0)
            st = run_udp(s, target, build(msg_path, target[0] + ':' + str(target[1]), local, 'udp', 9000 + attempt), 2.0)
            s.close()
        else:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(('127.0.0.1', 0))
            local = '%s:%d' % s.getsockname()
            s.close()
            st = run_tcp(target, build(msg_path, target[0] + ':' + str(target[1]), '127.0.0.1:1', 'tcp', 9100 + attempt), 2.0, [])
        if isinstance(st, int):
            return st
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--target', default='127.0.0.1:5060')
    ap.add_argument('--transport', default='udp,tcp')
    ap.add_argument('--dir', default=os.path.join(HERE, 'malformed'))
    ap.add_argument('--wait', type=float, default=1.0, help='seconds to wait for an answer')
    ap.add_argument('-v', '--verbose', action='store_true')
    a = ap.parse_args()
    host, port = a.target.rsplit(':', 1)
    if not (host.startswith('127.') or host == 'localhost'):
        sys.exit('refusing a non-loopback target')
    target = (host, int(port))
    files = sorted(glob.glob(os.path.join(a.dir, '*.txt')))
    if not files:
        sys.exit(f'no corpus in {a.dir}')
    bad = 0
    n = 0
    for transport in a.transport.split(','):
        for path in files:
            n += 1
            name = os.path.basename(path)
            expect = name.split('.')[-2].split('+')
            if transport == 'udp':
                s, local = exchange_udp(target, b'', 0)
                msg = build(path, a.target, local, transport, n)
                st = run_udp(s, target, msg, a.wait)
                s.close()
            else:
                # the Via names the connection's own address; responses come back on the connection
                msg = build(path, a.target, '127.0.0.1:5999', transport, n)
                st = run_tcp(target, msg, a.wait, [])
            if isinstance(st, str) and st != 'junk':
                print(f'FAIL  {transport} {name}: {st}')
                bad += 1
                if st.startswith('connect error'):
                    print(f'FAIL  {transport}: cannot connect, skipping the rest of the corpus on {transport}')
                    break
                continue
            ok = accepted(expect, st)
            shown = 'dropped' if st is None else ('non-SIP answer' if st == 'junk' else str(st))
            if not ok:
                bad += 1
                print(f'FAIL  {transport} {name}: got {shown}, expected {"|".join(expect)}')
            elif a.verbose:
                print(f'ok    {transport} {name}: {shown}')
        alive = options_ok(target, transport)
        if alive is None:
            bad += 1
            print(f'FAIL  {transport}: the server no longer answers OPTIONS after the corpus')
        elif a.verbose:
            print(f'ok    {transport}: OPTIONS after the corpus -> {alive}')
    print(f'malformed: {n} messages sent ({len(files)} files x {len(a.transport.split(","))} transports), {bad} failures')
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main())
