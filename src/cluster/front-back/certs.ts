/**
 * The certificates of a cluster: one CA, and one certificate per node signed by it (ECDSA P-256). Every node
 * trusts the CA only, and a link peer is anyone holding a certificate it signed; node certificates serve
 * both ends of a link (server and client authentication).
 */
import { webcrypto } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import './reflect-metadata.ts';
import * as x509 from '@peculiar/x509';
import { isNodeName } from './node-name.ts';

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;
/** The library's parameter types name the DOM's Crypto, which Node's webcrypto is. */
const crypto = webcrypto as never as Parameters<typeof x509.X509CertificateGenerator.create>[1] &
  webcrypto.Crypto;
const ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY_MS = 86_400_000;

export interface CertFiles {
  /** Files written, relative to the output folder. */
  files: string[];
}

async function keyPem(key: CryptoKey): Promise<string> {
  const der = await crypto.subtle.exportKey('pkcs8', key);
  return x509.PemConverter.encode(der, 'PRIVATE KEY');
}

function serial(): string {
  // Positive (first bit clear), 16 bytes.
  const b = Buffer.from(crypto.getRandomValues(new Uint8Array(16)));
  b[0] &= 0x7f;
  return b.toString('hex');
}

/**
 * Write `ca.crt`, `ca.key` and `<node>.crt`, `<node>.key` for every node into `dir` (created when missing;
 * files mode 0600). Valid for `days` days.
 */
export async function generateClusterCerts(dir: string, nodes: string[], days = 3650): Promise<CertFiles> {
  for (const n of nodes) if (!isNodeName(n)) throw new Error(`not a node name: ${JSON.stringify(n)}`);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const notBefore = new Date(Date.now() - DAY_MS);
  const notAfter = new Date(Date.now() + days * DAY_MS);
  const caKeys = (await crypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify'])) as CryptoKeyPair;
  const caName = 'CN=mtproxy cluster CA';
  const ca = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: serial(),
      name: caName,
      notBefore,
      notAfter,
      keys: caKeys,
      signingAlgorithm: ALGORITHM,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(caKeys.publicKey, false, crypto),
      ],
    },
    crypto,
  );
  const files: [string, string][] = [
    ['ca.crt', ca.toString('pem')],
    ['ca.key', await keyPem(caKeys.privateKey)],
  ];
  for (const node of nodes) {
    const keys = (await crypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify'])) as CryptoKeyPair;
    const cert = await x509.X509CertificateGenerator.create(
      {
        serialNumber: serial(),
        subject: `CN=${node}`,
        issuer: ca.subject,
        notBefore,
        notAfter,
        publicKey: keys.publicKey,
        signingKey: caKeys.privateKey,
        signingAlgorithm: ALGORITHM,
        extensions: [
          new x509.BasicConstraintsExtension(false, undefined, true),
          new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
          new x509.ExtendedKeyUsageExtension([
            x509.ExtendedKeyUsage.serverAuth,
            x509.ExtendedKeyUsage.clientAuth,
          ]),
          new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: node }]),
          await x509.AuthorityKeyIdentifierExtension.create(caKeys.publicKey, false, crypto),
        ],
      },
      crypto,
    );
    files.push([`${node}.crt`, cert.toString('pem')], [`${node}.key`, await keyPem(keys.privateKey)]);
  }
  for (const [name, text] of files) {
    await writeFile(path.join(dir, name), `${text.trim()}\n`, { mode: 0o600 });
  }
  return { files: files.map(([n]) => n) };
}
