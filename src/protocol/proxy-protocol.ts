/**
 * PROXY protocol headers (HAProxy spec, versions 1 and 2) that tell a fronting target who the real client
 * is. Pure encoder; only TCP over IPv4/IPv6 is produced, other cases become UNKNOWN / LOCAL.
 */
import net from 'node:net';
import ipaddr from 'ipaddr.js';
import { unmapIpv4 } from '../runtime/sockets.ts';

export interface ProxiedConnection {
  sourceAddress: string;
  sourcePort: number;
  destinationAddress: string;
  destinationPort: number;
}

const V2_SIGNATURE = Buffer.from('0d0a0d0a000d0a515549540a', 'hex');

type Families = { family: 4 | 6; source: string; destination: string } | null;

/** Both ends as one family: IPv4 when both are (possibly mapped) IPv4, else IPv6 with IPv4 mapped. */
function sameFamily(c: ProxiedConnection): Families {
  const s = unmapIpv4(c.sourceAddress);
  const d = unmapIpv4(c.destinationAddress);
  const fs = net.isIP(s);
  const fd = net.isIP(d);
  if (fs === 0 || fd === 0) return null;
  if (fs === 4 && fd === 4) return { family: 4, source: s, destination: d };
  return {
    family: 6,
    source: fs === 4 ? `::ffff:${s}` : s,
    destination: fd === 4 ? `::ffff:${d}` : d,
  };
}

function validPort(p: number): boolean {
  return Number.isInteger(p) && p >= 0 && p <= 65535;
}

export function encodeProxyV1(c: ProxiedConnection | null): Buffer {
  const f = c && validPort(c.sourcePort) && validPort(c.destinationPort) ? sameFamily(c) : null;
  if (!f || !c) return Buffer.from('PROXY UNKNOWN\r\n', 'latin1');
  const proto = f.family === 4 ? 'TCP4' : 'TCP6';
  return Buffer.from(
    `PROXY ${proto} ${f.source} ${f.destination} ${c.sourcePort} ${c.destinationPort}\r\n`,
    'latin1',
  );
}

function addressBytes(address: string): Buffer {
  return Buffer.from(ipaddr.parse(address.split('%')[0]).toByteArray());
}

export function encodeProxyV2(c: ProxiedConnection | null): Buffer {
  const f = c && validPort(c.sourcePort) && validPort(c.destinationPort) ? sameFamily(c) : null;
  if (!f || !c) {
    // LOCAL command, AF_UNSPEC: the receiver uses the real connection's addresses.
    return Buffer.concat([V2_SIGNATURE, Buffer.from([0x20, 0x00, 0x00, 0x00])]);
  }
  const addressLength = f.family === 4 ? 12 : 36;
  const head = Buffer.from([0x21, f.family === 4 ? 0x11 : 0x21, 0, addressLength]);
  const body = Buffer.alloc(addressLength);
  if (f.family === 4) {
    addressBytes(f.source).copy(body, 0);
    addressBytes(f.destination).copy(body, 4);
    body.writeUInt16BE(c.sourcePort, 8);
    body.writeUInt16BE(c.destinationPort, 10);
  } else {
    addressBytes(f.source).copy(body, 0);
    addressBytes(f.destination).copy(body, 16);
    body.writeUInt16BE(c.sourcePort, 32);
    body.writeUInt16BE(c.destinationPort, 34);
  }
  return Buffer.concat([V2_SIGNATURE, head, body]);
}

export function encodeProxyHeader(version: 'v1' | 'v2', c: ProxiedConnection | null): Buffer {
  return version === 'v1' ? encodeProxyV1(c) : encodeProxyV2(c);
}
