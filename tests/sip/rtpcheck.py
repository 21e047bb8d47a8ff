#!/usr/bin/env python3
"""Proves where RTP went in one SIPp call, from a loopback capture (python3 stdlib only).

    rtpcheck.py --pcap rtp.pcap --caller-msg caller.msg --callee-msg callee.msg \
                --caller-port 16300 --callee-port 16200 [--expect relay|direct] [--min 50]

--caller-msg / --callee-msg are SIPp -trace_msg logs (-message_file). The media address the caller
was told to use is the c=/m= of the first 200 OK to an INVITE it received; the one the callee was
told is the c=/m= of the first INVITE it received. With --expect relay (a B2BUA with an RTP
relay, the default) it checks:
  * the answer given to the caller does not point at the callee's media port, nor the offer given
    to the callee at the caller's (the server rewrote both SDPs);
  * caller -> answer address, and answer address -> caller (the echo comes back from the same
    port the SDP named: symmetric RTP);
  * offer address -> callee, and callee -> offer address (the callee, -rtp_echo, echoes);
  * no packet goes directly between the two SIPp media ports;
  * most payloads the caller sent come back to it (the echo went through the relay unchanged).
With --expect direct (a proxy such as Kamailio: media is end to end) it checks that the caller's
RTP reaches the callee's port directly and the echo comes back.
Exit status 0 when every check passes; one line per check is printed.
"""
import argparse
import re
import struct
import sys


def read_pcap(path):
    """Yields (src_ip, src_port, dst_ip, dst_port, payload) for IPv4 UDP packets."""
    with open(path, 'rb') as f:
        data = f.read()
    if len(data) < 24:
        return
    magic = data[:4]
    if magic in (b'\xd4\xc3\xb2\xa1', b'\x4d\x3c\xb2\xa1'):
        e = '<'
    elif magic in (b'\xa1\xb2\xc3\xd4', b'\xa1\xb2\x3c\x4d'):
        e = '>'
    else:
        raise SystemExit(f'{path}: not a pcap file (pcapng is not supported: use tcpdump -w)')
    linktype = struct.unpack(e + 'I', data[20:24])[0]
    off = 24
    while off + 16 <= len(data):
        _, _, incl, _ = struct.unpack(e + 'IIII', data[off:off + 16])
        pkt = data[off + 16:off + 16 + incl]
        off += 16 + incl
        if linktype == 1:       # Ethernet (Linux lo)
            if len(pkt) < 14 or pkt[12:14] != b'\x08\x00':
                continue
            ip = pkt[14:]
        elif linktype == 113:   # Linux cooked
            if len(pkt) < 16 or pkt[14:16] != b'\x08\x00':
                continue
            ip = pkt[16:]
        elif linktype == 276:   # Linux cooked v2
            if len(pkt) < 20 or pkt[0:2] != b'\x08\x00':
                continue
            ip = pkt[20:]
        elif linktype in (0, 108):  # BSD null / loop
            ip = pkt[4:]
        elif linktype in (101, 228):  # raw IPv4
            ip = pkt
        else:
            raise SystemExit(f'unsupported pcap link type {linktype}')
        if len(ip) < 20 or ip[0] >> 4 != 4 or ip[9] != 17:
            continue
        ihl = (ip[0] & 15) * 4
        udp = ip[ihl:]
        if len(udp) < 8:
            continue
        sport, dport = struct.unpack('>HH', udp[:4])
        src = '.'.join(str(b) for b in ip[12:16])
        dst = '.'.join(str(b) for b in ip[16:20])
        yield src, sport, dst, dport, udp[8:]


def sip_messages(path, received_only=True):
    """SIPp -trace_msg log -> list of received SIP message texts."""
    try:
        text = open(path, encoding='latin-1').read()
    except OSError as e:
        print(f'  FAIL cannot read {path}: {e}')
        return []
    parts = re.split(r'\n-{20,}[^\n]*\n', '\n' + text)
    out = []
    for p in parts:
        m = re.match(r'\s*(UDP|TCP|TLS|SCTP) message (received|sent)[^\n]*\n', p)
        if not m:
            continue
        if received_only and m.group(2) != 'received':
            continue
        out.append(p[m.end():].lstrip('\r\n'))
    return out


def sdp_addr(msg):
    c = re.search(r'^c=IN IP4 ([0-9.]+)', msg, re.M)
    m = re.search(r'^m=audio ([0-9]+) ', msg, re.M)
    if not c or not m:
        return None
    return c.group(1), int(m.group(1))


def first(msgs, pred):
    for m in msgs:
        if pred(m):
            a = sdp_addr(m)
            if a:
                return a
    return None


def is_rtp(payload):
    return len(payload) >= 12 and payload[0] >> 6 == 2


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--pcap', required=True)
    ap.add_argument('--caller-msg', required=True)
    ap.add_argument('--callee-msg', required=True)
    ap.add_argument('--caller-port', type=int, required=True)
    ap.add_argument('--callee-port', type=int, required=True)
    ap.add_argument('--ip', default='127.0.0.1', help='the SIPp media IP (-mi)')
    ap.add_argument('--expect', choices=('relay', 'direct'), default='relay')
    ap.add_argument('--min', type=int, default=50, help='packets needed per leg and direction')
    a = ap.parse_args()

    ok = True

    def check(cond, what):
        nonlocal ok
        print(('  ok   ' if cond else '  FAIL ') + what)
        ok = ok and bool(cond)

    answer = first(sip_messages(a.caller_msg),
                   lambda m: m.startswith('SIP/2.0 200') and re.search(r'^(CSeq|CSEQ|cseq):\s*\d+\s+INVITE', m, re.M | re.I))
    offer = first(sip_messages(a.callee_msg),
                  lambda m: m.startswith('INVITE '))
    check(answer is not None, f'caller received a 200 OK with an SDP answer: {answer}')
    check(offer is not None, f'callee received an INVITE with an SDP offer: {offer}')
    if answer is None or offer is None:
        return 1
    caller = (a.ip, a.caller_port)
    callee = (a.ip, a.callee_port)
    flows = {}
    sent_payloads = set()
    back_payloads = set()
    for src, sp, dst, dp, pl in read_pcap(a.pcap):
        if not is_rtp(pl):
            continue
        key = ((src, sp), (dst, dp))
        flows[key] = flows.get(key, 0) + 1
        if (src, sp) == caller:
            sent_payloads.add(pl[12:])
        if (dst, dp) == caller:
            back_payloads.add(pl[12:])
    for (s, d), n in sorted(flows.items(), key=lambda kv: -kv[1])[:12]:
        print(f'  flow {s[0]}:{s[1]} -> {d[0]}:{d[1]}: {n} RTP packets')

    def n(s, d):
        return flows.get((s, d), 0)

    if a.expect == 'relay':
        check(answer != callee, f'answer to the caller {answer} is not the callee media {callee}')
        check(offer != caller, f'offer to the callee {offer} is not the caller media {caller}')
        check(n(caller, answer) >= a.min, f'caller -> relay {answer}: {n(caller, answer)} packets')
        check(n(offer, callee) >= a.min, f'relay {offer} -> callee: {n(offer, callee)} packets')
        check(n(callee, offer) >= a.min, f'callee (echo) -> relay {offer}: {n(callee, offer)} packets')
        check(n(answer, caller) >= a.min, f'relay {answer} -> caller: {n(answer, caller)} packets')
        direct = n(caller, callee) + n(callee, caller)
        check(direct == 0, f'no RTP directly between caller and callee ({direct} packets)')
    else:
        check(answer == callee, f'answer to the caller {answer} is the callee media {callee}')
        check(n(caller, callee) >= a.min, f'caller -> callee direct: {n(caller, callee)} packets')
        check(n(callee, caller) >= a.min, f'callee (echo) -> caller direct: {n(callee, caller)} packets')
    common = len(sent_payloads & back_payloads)
    frac = common / len(sent_payloads) if sent_payloads else 0.0
    check(frac >= 0.5, f'caller payloads that came back (echoed): {common}/{len(sent_payloads)} ({frac:.0%})')
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
