// Process entry point of `mtproxy`; everything testable lives in cli.ts.
import { main } from './cli.ts';

process.exit(await main(process.argv.slice(2)));
