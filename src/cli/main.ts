// Process entry point of `mtproxy`; everything testable lives in cli.ts. The compile cache is enabled before
// the CLI is loaded, so that it covers (and on a warm cache, skips type-stripping for) every other module.
import { enableCompileCache } from '../runtime/compile-cache.ts';

enableCompileCache();
const { main } = await import('./cli.ts');
process.exit(await main(process.argv.slice(2)));
