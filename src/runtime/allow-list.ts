/**
 * Address allow lists (CIDRs or single addresses) as a net.BlockList: compiled by the config check and by
 * the endpoint that applies them.
 */
import net from 'node:net';
import ipaddr from 'ipaddr.js';

/** Compile an allow list; throws RangeError naming the first bad entry. */
export function compileAllowList(allow: readonly string[]): net.BlockList | null {
  if (allow.length === 0) return null;
  const list = new net.BlockList();
  for (const entry of allow) {
    const text = entry.trim();
    try {
      // ipaddr.js would also take shorthand like "10"; operators mean full addresses.
      if (net.isIP(text.split('/')[0]) === 0) throw new RangeError('not an address');
      // BlockList matches IPv4 rules against ::ffff:a.b.c.d peers of dual-stack sockets too.
      if (text.includes('/')) {
        const [addr, bits] = ipaddr.parseCIDR(text);
        list.addSubnet(addr.toString(), bits, addr.kind());
      } else {
        const addr = ipaddr.parse(text);
        list.addAddress(addr.toString(), addr.kind());
      }
    } catch {
      throw new RangeError(`metrics.allow: expected an IP address or CIDR, got "${entry}"`);
    }
  }
  return list;
}
