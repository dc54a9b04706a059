import { android } from './android.ts';
import type { FlightOracle } from './common.ts';
import { desktop } from './desktop.ts';
import { ios } from './ios.ts';

export { checkTls13Answer } from './tls13.ts';
export type { FlightOracle, Verdict } from './common.ts';

/** One oracle per official app. */
export const APP_ORACLES: readonly FlightOracle[] = [android, desktop, ios];
