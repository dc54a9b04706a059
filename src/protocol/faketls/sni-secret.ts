/**
 * Per-SNI derived secrets (reference §3.7): each user gets a link for their own cover domain whose secret is
 * SHA-256(salt ‖ lowercase-hex(base secret) ‖ SNI as sent)[0,16). A user who shares or leaks a link exposes only
 * their own derived secret, never the listener's base secret.
 */
import { hash } from 'node:crypto';

export const DEFAULT_SNI_SALT = 'mtproto-proxy-per-sni-v1';

export function deriveSniSecret(salt: string, baseSecret: Buffer, sni: string | Buffer): Buffer {
  const sniBytes = typeof sni === 'string' ? Buffer.from(sni, 'latin1') : sni;
  const input = Buffer.concat([
    Buffer.from(salt, 'utf8'),
    Buffer.from(baseSecret.toString('hex'), 'latin1'),
    sniBytes,
  ]);
  return (hash('sha256', input, 'buffer') as Buffer).subarray(0, 16);
}
