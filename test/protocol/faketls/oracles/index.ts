import { android } from './android.ts';
import type { FlightOracle } from './common.ts';
import { desktop } from './desktop.ts';
import { desktopFork } from './desktop-fork.ts';
import { ios } from './ios.ts';

export { checkTls13Answer } from './tls13.ts';
export type { FlightOracle, Verdict } from './common.ts';

/** One oracle per official app, and the Desktop fork that hashes every record it has read. */
export const APP_ORACLES: readonly FlightOracle[] = [android, desktop, ios, desktopFork];
