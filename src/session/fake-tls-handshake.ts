/**
 * Fake-TLS handshake for one connection (reference §3.2–§3.9), called by the client session with what it
 * has buffered so far. Pure apart from randomness: no sockets, no replay state (the session checks
 * `replayKey` itself and fronts a replay).
 *
 * Every failure fronts the connection (a prober must see the cover site answer, whatever it sent), except
 * a hello for a domain this listener does not serve, which gets the listener's `unknownSni` action.
 * A hello is judged only by its record framing, its 32-byte session id, its digest and its timestamp; a
 * hello without server_name is served like one naming the listener's no-SNI domain.
 */
import type { ListenerConfig } from '../config/types.ts';
import { certRecordSizeFor, coverProfile } from '../cover/profiles.ts';
import { normaliseDomain, servesDomain } from '../cover/domains.ts';
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
import { ja4 } from '../protocol/faketls/ja4.ts';
import { serverKeyShare } from '../protocol/faketls/key-share.ts';
import { deriveSniSecret } from '../protocol/faketls/sni-secret.ts';

export type TlsHandshakeOutcome =
  | { kind: 'need-more' }
  | {
      kind: 'ok';
      secret: Buffer;
      /** The accepted secret the hello matched (before per-SNI derivation): it names the user. */
      base: Buffer;
      /** The domain the hello counts as (normalised SNI, or the no-SNI domain); null: no SNI, no domain. */
      tlsDomain: string | null;
      serverHello: Buffer;
      consumed: number;
      replayKey: Buffer;
      /** JA4 of the hello. */
      fingerprint: string;
    }
  /**
   * `sni`: the hello's server name (normalised) when it parsed (the fronting target in `sni` mode);
   * `fingerprint`: its JA4 when it parsed.
   */
  | {
      kind: 'fail';
      code: string;
      action: 'front' | 'reject' | 'drop';
      reply?: Buffer;
      sni?: string | null;
      fingerprint?: string;
    };

/**
 * The domain a hello without server_name counts as (policies, metrics, unknown_sni, the cover profile):
 * the listener's `no_sni_domain`, else its first cover domain; null when it has neither.
 */
export function noSniDomain(listener: ListenerConfig): string | null {
  const d = listener.noSniDomain ?? listener.tlsDomains[0] ?? null;
  return d === null ? null : normaliseDomain(d);
}

function front(code: string, sni: string | null, fingerprint?: string): TlsHandshakeOutcome {
  return { kind: 'fail', code, action: 'front', sni, fingerprint };
}

function unknownSni(listener: ListenerConfig, sni: string | null, fingerprint: string): TlsHandshakeOutcome {
  const action = listener.unknownSni;
  const code = 'MTP_ERR_TLS_UNKNOWN_SNI';
  if (action === 'reject')
    return { kind: 'fail', code, action, reply: Buffer.from(ALERT_UNRECOGNIZED_NAME), sni, fingerprint };
  return { kind: 'fail', code, action, sni, fingerprint };
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
 * count (reference §3.7): the base secret never goes into an ee link, so it must not open one either. A hello
 * without SNI has nothing to derive from: it can only match one of the listener's own (non-per-SNI) secrets.
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
  if (salt === null || hello.sni === null) {
    for (const secret of bases) {
      const unixTime = verifyHelloDigest(zeroed, hello.random, secret);
      if (unixTime !== null) return { secret, base: secret, unixTime, perSni: false };
    }
    return null;
  }
  for (const base of bases) {
    // Derived from the name as sent (the link carries it so): "Alice.example.com." is another secret.
    const secret = deriveSniSecret(salt, base, hello.sni);
    const unixTime = verifyHelloDigest(zeroed, hello.random, secret);
    if (unixTime !== null) return { secret, base, unixTime, perSni: true };
  }
  return null;
}

/** Telegram clients always send a 32-byte legacy session id (and we echo it). */
const SESSION_ID_LENGTH = 32;

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
  // Counted for every hello that parses, probes included: before any secret is tried.
  const fingerprint = ja4(hello);
  // The SNI normalised once: every lookup below (served domains, cover profile, policies) uses this form,
  // so "Example.COM." and "example.com" get the same answer.
  const sni = hello.sni === null ? null : normaliseDomain(hello.sni);
  if (hello.sessionId.length !== SESSION_ID_LENGTH) return front('MTP_ERR_TLS_BAD_HELLO', sni, fingerprint);
  const domain = sni ?? noSniDomain(listener);

  const match = matchSecret(listener, record, hello, accepted);
  if (domain !== null && !servesDomain(listener, domain) && !match?.perSni)
    return unknownSni(listener, sni, fingerprint);
  if (match === null) return front('MTP_ERR_TLS_BAD_DIGEST', sni, fingerprint);

  const skewMs = listener.tlsTimeSkewMs;
  if (skewMs > 0 && Math.abs(match.unixTime * 1000 - nowMs) > skewMs)
    return front('MTP_ERR_TLS_STALE_TIMESTAMP', sni, fingerprint);

  if (hello.keyShares === null) return front('MTP_ERR_TLS_NO_KEY_SHARE', sni, fingerprint);
  const profileDomain = domain ?? '';
  const profile = coverProfile(profileDomain);
  // Unknown cover site: answer PQ when offered, as most large sites do by now; a cover known to answer
  // classic gets the classic group, as it would.
  let share = selectKeyShare(hello.keyShares, profile.selectsPq !== false);
  if (share === null) return front('MTP_ERR_TLS_NO_KEY_SHARE', sni, fingerprint);
  let keyShare: Buffer | number | null = serverKeyShare(share.group, share.key);
  if (keyShare === null) {
    // A hybrid share we cannot encapsulate to: the classic entry, as a server that cannot use it would.
    share = selectKeyShare(hello.keyShares, false);
    if (share === null) return front('MTP_ERR_TLS_NO_KEY_SHARE', sni, fingerprint);
    keyShare = serverKeyShare(share.group, share.key) ?? serverKeyShareLength(share.group, share.key.length);
  }

  const serverHello = buildServerHello({
    secret: match.secret,
    clientRandom: hello.random,
    sessionId: hello.sessionId,
    cipherSuite: chooseCipherSuite(hello.cipherSuites, profile.cipherSuite),
    keyShareGroup: share.group,
    keyShare,
    appData: fakeCertificateLength(certRecordSizeFor(listener, profileDomain)),
    // Most TLS 1.3 servers (OpenSSL, BoringSSL, Go) put supported_versions first.
    versionsFirst: profile.versionsFirst ?? true,
  });
  return {
    kind: 'ok',
    secret: match.secret,
    base: match.base,
    tlsDomain: domain,
    serverHello,
    consumed,
    replayKey: Buffer.from(hello.random),
    fingerprint,
  };
}
