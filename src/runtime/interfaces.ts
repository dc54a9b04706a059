/**
 * This machine's interface addresses, read once and refreshed rarely in the background, never on a client's
 * path, and never throwing. `os.networkInterfaces()` needs a netlink socket, which a sandbox may forbid
 * (systemd's RestrictAddressFamilies without AF_NETLINK): then the addresses come from /proc/net, and when
 * that fails too the last list read (or an empty one) stays.
 */
import { readFileSync } from 'node:fs';
import os from 'node:os';

export interface InterfaceAddress {
  name: string;
  address: string;
  family: 'IPv4' | 'IPv6';
  internal: boolean;
}

const REFRESH_MS = 5 * 60_000;

let current: InterfaceAddress[] | null = null;
let refresh: NodeJS.Timeout | null = null;

function fromNode(): InterfaceAddress[] {
  const all: InterfaceAddress[] = [];
  for (const [name, list] of Object.entries(os.networkInterfaces())) {
    for (const a of list ?? [])
      all.push({ name, address: a.address, family: a.family, internal: a.internal });
  }
  return all;
}

/** IPv4 addresses of this host: the `/32 host LOCAL` leaves of the kernel's routing trie. */
function ipv4FromProc(): InterfaceAddress[] {
  const found = new Set<string>();
  let last = '';
  for (const line of readFileSync('/proc/net/fib_trie', 'utf8').split('\n')) {
    const leaf = /\|-- (\d+\.\d+\.\d+\.\d+)/.exec(line);
    if (leaf) last = leaf[1];
    else if (last && /\/32 host LOCAL/.test(line)) found.add(last);
  }
  return [...found].map((address) => ({
    name: address.startsWith('127.') ? 'lo' : '',
    address,
    family: 'IPv4' as const,
    internal: address.startsWith('127.'),
  }));
}

/** IPv6 addresses: one line per address in /proc/net/if_inet6 (32 hex digits ... interface name). */
function ipv6FromProc(): InterfaceAddress[] {
  const all: InterfaceAddress[] = [];
  for (const line of readFileSync('/proc/net/if_inet6', 'utf8').split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 6 || !/^[0-9a-f]{32}$/.test(f[0])) continue;
    const groups = f[0].match(/.{4}/g)!.map((g) => Number.parseInt(g, 16).toString(16));
    const name = f[5];
    const address = groups.join(':').replace(/(^|:)0(:0)+(:|$)/, '::');
    all.push({ name, address, family: 'IPv6', internal: name === 'lo' });
  }
  return all;
}

function fromProc(): InterfaceAddress[] {
  const all: InterfaceAddress[] = [];
  for (const read of [ipv4FromProc, ipv6FromProc]) {
    try {
      all.push(...read());
    } catch {
      // Not Linux, or /proc hidden: what the other source gave is all we know.
    }
  }
  return all;
}

/** Read the addresses now (also what the background refresh runs). Never throws. */
export function refreshInterfaces(): InterfaceAddress[] {
  let next: InterfaceAddress[];
  try {
    next = fromNode();
  } catch {
    next = fromProc();
  }
  if (next.length > 0 || current === null) current = next;
  return current;
}

/** The addresses as last read; the first call reads them and starts the (unref'd) refresh. */
export function interfaceAddresses(): readonly InterfaceAddress[] {
  if (current === null) refreshInterfaces();
  if (refresh === null) {
    refresh = setInterval(refreshInterfaces, REFRESH_MS);
    refresh.unref();
  }
  return current!;
}
