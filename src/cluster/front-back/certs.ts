/**
 * The certificates of a cluster: one CA, and one certificate per node signed by it (ECDSA P-256). Every node
 * trusts the CA only, and a link peer is anyone holding a certificate it signed; node certificates serve
 * both ends of a link (server and client authentication).
 */
import { webcrypto } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
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
  /** The folder had the fleet's CA (ca.crt and ca.key): it signed the new certificates and was kept. */
  reusedCa: boolean;
}

/** `ca.crt` and `ca.key` of an earlier run in `dir`, or null when either is missing. */
async function readCa(dir: string): Promise<{ ca: x509.X509Certificate; signingKey: CryptoKey } | null> {
  let certPem: string;
  let keyText: string;
  try {
    [certPem, keyText] = await Promise.all([
      readFile(path.join(dir, 'ca.crt'), 'utf8'),
      readFile(path.join(dir, 'ca.key'), 'utf8'),
    ]);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  const ca = new x509.X509Certificate(certPem);
  const der = x509.PemConverter.decode(keyText)[0];
  const signingKey = await crypto.subtle.importKey('pkcs8', der, ALGORITHM, false, ['sign']);
  return { ca, signingKey };
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
 * files mode 0600). Valid for `days` days. When `dir` already holds `ca.crt` and `ca.key`, that CA signs the
 * nodes' certificates and is left as it is (adding a node to a running fleet).
 */
export async function generateClusterCerts(dir: string, nodes: string[], days = 3650): Promise<CertFiles> {
  for (const n of nodes) if (!isNodeName(n)) throw new Error(`not a node name: ${JSON.stringify(n)}`);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const notBefore = new Date(Date.now() - DAY_MS);
  const notAfter = new Date(Date.now() + days * DAY_MS);
  const existing = await readCa(dir);
  let ca: x509.X509Certificate;
  let caSigningKey: CryptoKey;
  let caPublicKey: CryptoKey;
  const files: [string, string][] = [];
  if (existing !== null) {
    // The fleet's CA is there: sign the new nodes with it, so the nodes it already has keep trusting them.
    ({ ca, signingKey: caSigningKey } = existing);
    caPublicKey = await ca.publicKey.export(ALGORITHM, ['verify'], crypto);
  } else {
    const caKeys = (await crypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify'])) as CryptoKeyPair;
    ca = await x509.X509CertificateGenerator.createSelfSigned(
      {
        serialNumber: serial(),
        name: 'CN=mtproxy cluster CA',
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
    caSigningKey = caKeys.privateKey;
    caPublicKey = caKeys.publicKey;
    files.push(['ca.crt', ca.toString('pem')], ['ca.key', await keyPem(caKeys.privateKey)]);
  }
  // A node's certificate never outlives the CA that signed it.
  const nodeNotAfter = ca.notAfter < notAfter ? ca.notAfter : notAfter;
  for (const node of nodes) {
    const keys = (await crypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify'])) as CryptoKeyPair;
    const cert = await x509.X509CertificateGenerator.create(
      {
        serialNumber: serial(),
        subject: `CN=${node}`,
        issuer: ca.subject,
        notBefore,
        notAfter: nodeNotAfter,
        publicKey: keys.publicKey,
        signingKey: caSigningKey,
        signingAlgorithm: ALGORITHM,
        extensions: [
          new x509.BasicConstraintsExtension(false, undefined, true),
          new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
          new x509.ExtendedKeyUsageExtension([
            x509.ExtendedKeyUsage.serverAuth,
            x509.ExtendedKeyUsage.clientAuth,
          ]),
          new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: node }]),
          await x509.AuthorityKeyIdentifierExtension.create(caPublicKey, false, crypto),
        ],
      },
      crypto,
    );
    files.push([`${node}.crt`, cert.toString('pem')], [`${node}.key`, await keyPem(keys.privateKey)]);
  }
  for (const [name, text] of files) {
    await writeFile(path.join(dir, name), `${text.trim()}\n`, { mode: 0o600 });
  }
  return { files: files.map(([n]) => n), reusedCa: existing !== null };
}
