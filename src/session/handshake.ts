/**
 * A client's handshake as values: what its first bytes are, which secret (and user) opens its fake-TLS hello
 * or its obfuscated2 header, whether its transport is allowed, and what the admission says. No socket I/O and
 * no stage: the session (client-session.ts) acts on these outcomes, owns the stages and waits for the
 * answers that are asynchronous. A wrong secret is an outcome, never an exception.
 */
import type { ListenerConfig } from '../config/types.ts';
import {
  type ClientHandshake,
  startsLikeHttp,
  type TransportTag,
  tryClientHeader,
} from '../protocol/obfuscated2.ts';
import { admitUser } from '../users/admission.ts';
import { findHeaderSecret } from '../users/match.ts';
import { type BoundSession, NO_SECRETS, type UserRegistry, type UserState } from '../users/registry.ts';
import { type TlsHandshakeOutcome, tryFakeTlsHandshake } from './fake-tls-handshake.ts';
import type { PolicyDecision, SessionEnv } from './types.ts';

/** The client's address, read only when a step needs it (a syscall on first use): the socket itself. */
export interface Peer {
  readonly remoteAddress?: string | undefined;
}

/**
 * What the first bytes are: a TLS ClientHello on a listener that allows fake-TLS, an obfuscated2 header, not
 * enough to tell yet, or no client of ours (a listener for fake-TLS only, an HTTP request).
 */
export type HelloOutcome = 'need-more' | 'tls' | 'obfuscated2' | 'tls-expected' | 'http';

export function allowsTls(listener: ListenerConfig): boolean {
  return listener.allowedProtocols.includes('tls');
}

function looksLikeTlsHello(buf: Buffer): boolean {
  return buf.length >= 3 && buf[0] === 0x16 && buf[1] === 0x03 && buf[2] === 0x01;
}

export function classifyHello(buffered: Buffer, listener: ListenerConfig): HelloOutcome {
  if (allowsTls(listener) && buffered[0] === 0x16) {
    if (buffered.length < 3) return 'need-more';
    if (looksLikeTlsHello(buffered)) return 'tls';
  }
  const l = listener.allowedProtocols;
  if (!l.includes('classic') && !l.includes('secure')) return 'tls-expected';
  // A short HTTP request is refused (or fronted) at once instead of waiting for 64 bytes until the deadline.
  if (startsLikeHttp(buffered)) return 'http';
  return 'obfuscated2';
}

/** The fake-TLS handshake over the listener's and its users' secrets, the address's last one tried first. */
export function fakeTlsHandshake(
  buffered: Buffer,
  listener: ListenerConfig,
  users: UserRegistry | undefined,
  peer: Peer,
  now: number,
): TlsHandshakeOutcome {
  if (users === undefined) return tryFakeTlsHandshake(buffered, listener, now);
  // The listener as the handshake sees it: its cover domains and the users' own.
  const l = users.tlsListener(listener);
  if (users.size === 0) return tryFakeTlsHandshake(buffered, listener, now);
  const ip = peer.remoteAddress ?? '';
  // Tried for one user or one domain, the listener only needs those cover domains (not every user's).
  const hinted = users.hintUserFor(ip, listener);
  let sni: string | null | undefined;
  if (hinted !== null) {
    const quick = tryFakeTlsHandshake(buffered, hinted.tlsView(listener), now, [hinted.secret]);
    if (quick.kind !== 'fail') return quick;
    sni = quick.sni;
  }
  // A hello naming a user's own cover domain: that domain's owners first (no scan over every user).
  const owners = users.ownDomains(listener);
  if (owners.size > 0) {
    if (sni === undefined) {
      const parsed = tryFakeTlsHandshake(buffered, listener, now, NO_SECRETS);
      if (parsed.kind !== 'fail') return parsed;
      sni = parsed.sni;
    }
    const mine = sni ? owners.get(sni) : undefined;
    if (mine !== undefined) {
      const found = tryFakeTlsHandshake(buffered, mine.view, now, mine.secrets);
      if (found.kind === 'ok') {
        const user = users.bySecret(found.base);
        if (user !== null) users.noteMatch(ip, user);
        return found;
      }
    }
  }
  const outcome = tryFakeTlsHandshake(buffered, l, now, users.secretsFor(l));
  if (outcome.kind === 'ok') {
    const user = users.bySecret(outcome.base);
    if (user !== null) users.noteMatch(ip, user);
  }
  return outcome;
}

export type HeaderOutcome =
  | {
      readonly kind: 'ok';
      readonly hs: ClientHandshake;
      /** The user whose secret opened the header (null: a listener secret, or decided by fake-TLS). */
      readonly user: UserState | null;
    }
  | { readonly kind: 'fail'; readonly code: 'MTP_ERR_UNKNOWN_TRANSPORT' };

const UNKNOWN_HEADER: HeaderOutcome = { kind: 'fail', code: 'MTP_ERR_UNKNOWN_TRANSPORT' };

/**
 * Open the 64-byte obfuscated2 header: with `tlsSecret` alone when fake-TLS settled the secret, else with the
 * users' secrets (found cheaply, the address's last one first) or the listener's.
 */
export function identifyHeader(
  header: Buffer,
  listener: ListenerConfig,
  users: UserRegistry | undefined,
  peer: Peer,
  tlsSecret: Buffer | null,
): HeaderOutcome {
  let user: UserState | null = null;
  let secret = tlsSecret;
  if (users && secret === null && users.size > 0) {
    const ip = peer.remoteAddress ?? '';
    const found = findHeaderSecret(header, users.secretsFor(listener), users.hintFor(ip, listener));
    if (found !== null) {
      user = users.bySecret(found);
      if (user !== null) users.noteMatch(ip, user);
      secret = found;
    }
  }
  if (secret !== null) {
    const hs = tryClientHeader(header, secret);
    return hs === null ? UNKNOWN_HEADER : { kind: 'ok', hs, user };
  }
  let hs = tryClientHeader(header, listener.secret);
  for (let i = 0; hs === null && i < listener.extraSecrets.length; i++) {
    hs = tryClientHeader(header, listener.extraSecrets[i]);
  }
  return hs === null ? UNKNOWN_HEADER : { kind: 'ok', hs, user };
}

function familyOf(transport: TransportTag): 'classic' | 'secure' {
  return transport === 'padded' ? 'secure' : 'classic';
}

/**
 * Whether the listener takes the header's transport. TLS clients speak padded intermediate; the classic
 * framings inside TLS only where classic is allowed. Outside TLS the transport's family must be allowed.
 */
export function transportAllowed(
  transport: TransportTag,
  listener: ListenerConfig,
  insideTls: boolean,
): boolean {
  if (insideTls) return transport === 'padded' || listener.allowedProtocols.includes('classic');
  return listener.allowedProtocols.includes(familyOf(transport));
}

/** The policy's decision, then the user's limits when a user's secret opened the session. */
export function admission(
  env: SessionEnv,
  listener: ListenerConfig,
  peer: Peer,
  user: UserState | null,
  tlsDomain: string | null,
  session: BoundSession,
): PolicyDecision | Promise<PolicyDecision> {
  const decision = env.policy.admit({
    listener: listener.name,
    // Looked up only if a rule needs it (a syscall per session otherwise).
    get remoteAddress() {
      return peer.remoteAddress ?? '';
    },
    tlsDomain,
  });
  const users = env.users;
  if (user === null || users === undefined) return decision;
  return admitUser(decision, users, user, listener.name, peer.remoteAddress ?? '', session);
}
