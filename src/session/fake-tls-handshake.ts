/**
 * Fake-TLS handshake for one connection (reference §3.2–§3.9), called by the client session with what it
 * has buffered so far. Pure apart from randomness: no sockets, no replay state (the session checks
 * `replayKey` itself and fronts a replay).
 *
 * Every failure fronts the connection (a prober must see the cover site answer, whatever it sent), except
 * a hello for a domain this listener does not serve, which gets the listener's `unknownSni` action.
 */
import type { ListenerConfig } from '../config/types.ts';
import { certRecordSizeFor, coverProfile } from '../faketls/cert-probe.ts';
import { isProtocolError } from '../protocol/errors.ts';
import {
  assembleClientHello,
  type ClientHello,
  parseClientHello,
  selectKeyShare,
  verifyHelloDigest,
  zeroedHello,
} from '../protocol/faketls/client-hello.ts';
import { ALERT_UNRECOGNIZED_NAME } from '../protocol/faketls/records.ts';
import {
  buildServerHello,
  chooseCipherSuite,
  fakeCertificateLength,
  serverKeyShareLength,
} from '../protocol/faketls/server-hello.ts';
import { deriveSniSecret } from '../protocol/faketls/sni-secret.ts';

export type TlsHandshakeOutcome =
  | { kind: 'need-more' }
  | {
      kind: 'ok';
      secret: Buffer;
      /** The accepted secret the hello matched (before per-SNI derivation): it names the user. */
      base: Buffer;
      tlsDomain: string;
      serverHello: Buffer;
      consumed: number;
      replayKey: Buffer;
    }
  /** `sni`: the hello's server name when it parsed (the fronting target in `sni` mode). */
  | { kind: 'fail'; code: string; action: 'front' | 'reject' | 'drop'; reply?: Buffer; sni?: string | null };

/** Normalised form for comparing host names: lowercase, no trailing dot. */
export function normaliseDomain(name: string): string {
  const lower = name.toLowerCase();
  return lower.endsWith('.') ? lower.slice(0, -1) : lower;
}

/** Whether the listener serves this SNI as a cover domain (no list = any). */
export function servesDomain(listener: ListenerConfig, sni: string): boolean {
  if (listener.tlsDomains.length === 0) return true;
  const n = normaliseDomain(sni);
  for (const d of listener.tlsDomains) if (normaliseDomain(d) === n) return true;
  return false;
}

function front(code: string, sni: string | null): TlsHandshakeOutcome {
  return { kind: 'fail', code, action: 'front', sni };
}

function unknownSni(listener: ListenerConfig, sni: string): TlsHandshakeOutcome {
  const action = listener.unknownSni;
  const code = 'MTP_ERR_TLS_UNKNOWN_SNI';
  if (action === 'reject')
    return { kind: 'fail', code, action, reply: Buffer.from(ALERT_UNRECOGNIZED_NAME), sni };
  return { kind: 'fail', code, action, sni };
}

interface DigestMatch {
  secret: Buffer;
  base: Buffer;
  unixTime: number;
  /** Matched a per-SNI secret: the SNI is the user's own cover domain. */
  perSni: boolean;
}

/**
 * The secret this hello was signed with. With a per-SNI salt only secrets derived for the hello's own SNI
 * count (reference §3.7): the base secret never goes into an ee link, so it must not open one either.
 */
function matchSecret(
  listener: ListenerConfig,
  record: Buffer,
  hello: ClientHello,
  accepted: readonly Buffer[] | undefined,
): DigestMatch | null {
  const zeroed = zeroedHello(record);
  const bases =
    accepted ??
    (listener.extraSecrets.length === 0 ? [listener.secret] : [listener.secret, ...listener.extraSecrets]);
  const salt = listener.perSniSalt;
  if (salt === null) {
    for (const secret of bases) {
      const unixTime = verifyHelloDigest(zeroed, hello.random, secret);
      if (unixTime !== null) return { secret, base: secret, unixTime, perSni: false };
    }
    return null;
  }
  if (hello.sni === null) return null;
  for (const base of bases) {
    const secret = deriveSniSecret(salt, base, hello.sni);
    const unixTime = verifyHelloDigest(zeroed, hello.random, secret);
    if (unixTime !== null) return { secret, base, unixTime, perSni: true };
  }
  return null;
}

export function tryFakeTlsHandshake(
  buffered: Buffer,
  listener: ListenerConfig,
  nowMs: number,
  /** Every secret the listener accepts (its own and its users'); default: the listener's own. */
  accepted?: readonly Buffer[],
): TlsHandshakeOutcome {
  let record: Buffer;
  let consumed: number;
  let hello: ClientHello;
  try {
    const assembled = assembleClientHello(buffered);
    if (assembled.kind === 'need-more') return assembled;
    record = assembled.record;
    consumed = assembled.consumed;
    hello = parseClientHello(record);
  } catch (e) {
    return front(isProtocolError(e) ? e.code : 'MTP_ERR_TLS_BAD_HELLO', null);
  }

  const match = matchSecret(listener, record, hello, accepted);
  if (hello.sni !== null && !servesDomain(listener, hello.sni) && !match?.perSni)
    return unknownSni(listener, hello.sni);
  if (match === null) return front('MTP_ERR_TLS_BAD_DIGEST', hello.sni);
  if (hello.sni === null) return front('MTP_ERR_TLS_NO_SNI', hello.sni);

  const skewMs = listener.tlsTimeSkewMs;
  if (skewMs > 0 && Math.abs(match.unixTime * 1000 - nowMs) > skewMs)
    return front('MTP_ERR_TLS_STALE_TIMESTAMP', hello.sni);

  if (hello.keyShares === null) return front('MTP_ERR_TLS_NO_KEY_SHARE', hello.sni);
  const profile = coverProfile(hello.sni);
  // Unknown cover site: answer PQ when offered, as most large sites do by now.
  const share = selectKeyShare(hello.keyShares, profile.selectsPq !== false);
  if (share === null) return front('MTP_ERR_TLS_NO_KEY_SHARE', hello.sni);

  const serverHello = buildServerHello({
    secret: match.secret,
    clientRandom: hello.random,
    sessionId: hello.sessionId,
    cipherSuite: chooseCipherSuite(hello.cipherSuites, profile.cipherSuite),
    keyShareGroup: share.group,
    // Random filler written straight into the flight.
    keyShare: serverKeyShareLength(share.group, share.key.length),
    appData: fakeCertificateLength(certRecordSizeFor(listener, hello.sni)),
    // Most TLS 1.3 servers (OpenSSL, BoringSSL, Go) put supported_versions first.
    versionsFirst: profile.versionsFirst ?? true,
  });
  return {
    kind: 'ok',
    secret: match.secret,
    base: match.base,
    tlsDomain: normaliseDomain(hello.sni),
    serverHello,
    consumed,
    replayKey: Buffer.from(hello.random),
  };
}
