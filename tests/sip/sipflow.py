#!/usr/bin/env python3
"""Checks that a SIPp -trace_msg log contains an expected message flow, in order (stdlib only).

    sipflow.py LOG '<INVITE' '>180' '>200' '<ACK' '<BYE' '>200'

Items: `<X` a message received, `>X` a message sent; X is a request method (INVITE) or a status
code (200); `<X/TEXT` also needs TEXT in that message (e.g. `<INVITE/a=sendonly`). The items must appear in this order (other messages, e.g. REGISTERs, 100 Trying or
retransmissions, may come between). SIPp's exit status does not count failures of out-of-call
scenarios (-oocsf), so run.sh checks the callee's side of each call with this.
Exit status 0 when the flow is found; else the flow actually seen is printed.
"""
import re
import sys


def flow(path):
    text = open(path, encoding='latin-1').read()
    out = []
    parts = re.split(r'(?:UDP|TCP|TLS|SCTP) message (sent|received)[^\n]*\n', text)
    for i in range(1, len(parts) - 1, 2):
        d = '>' if parts[i] == 'sent' else '<'
        body = parts[i + 1].lstrip('\r\n')
        first = body.split('\n', 1)[0].strip()
        r = re.match(r'SIP/2\.0 (\d{3})', first)
        if r:
            out.append((d + r.group(1), body))
        elif first:
            out.append((d + first.split(' ', 1)[0], body))
    return out


def main():
    if len(sys.argv) < 3:
        print(__doc__)
        return 2
    try:
        seen = flow(sys.argv[1])
    except OSError as e:
        print(f'cannot read {sys.argv[1]}: {e}')
        return 1
    want = sys.argv[2:]
    i = 0
    for item, body in seen:
        if i < len(want):
            key, _, needle = want[i].partition('/')
            if item == key and needle in body:
                i += 1
    if i == len(want):
        return 0
    print(f'expected {" ".join(want)}; missing from {want[i]} on; seen: {" ".join(k for k, _ in seen)}'[:600])
    return 1


if __name__ == '__main__':
    sys.exit(main())
