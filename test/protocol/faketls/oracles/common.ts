/**
 * What an app's fake-TLS code decides about the proxy's answer. Each oracle in this folder re-states, from
 * the app's public source, the checks that app applies to the server's first flight and to the records
 * after it; the code here is written for the tests, not taken from the apps.
 */
import { createHmac } from 'node:crypto';

export type Verdict = { ok: true; flightLength: number } | { ok: false; reason: string };

export interface FlightOracle {
  app: string;
  /** Where the facts come from (repository and file). */
  source: string;
  /**
   * Judge the bytes the app receives: `chunks` as they come out of the socket (one read each), `after` the
   * records that follow the flight (what the relay sends later).
   */
  judge(chunks: Buffer[], clientRandom: Buffer, secret: Buffer, after?: Buffer): Verdict;
}

/** HMAC-SHA256(secret, client random ‖ bytes with their 32 bytes at offset 11 zeroed) against those bytes. */
export function digestMatches(bytes: Buffer, clientRandom: Buffer, secret: Buffer): boolean {
  if (bytes.length < 43) return false;
  const zeroed = Buffer.from(bytes);
  zeroed.fill(0, 11, 43);
  const want = createHmac('sha256', secret).update(clientRandom).update(zeroed).digest();
  return want.equals(bytes.subarray(11, 43));
}

export const SERVER_HELLO_PREFIX = Buffer.from('160303', 'hex');
/** ChangeCipherSpec record, then the header of the first application-data record (without its length). */
export const CCS_THEN_APP_DATA = Buffer.from('140303000101170303', 'hex');
export const APP_DATA_HEADER = Buffer.from('170303', 'hex');
