/** Tests use the same client the CLI's ping and the benchmarks use. */
export {
  connectObfuscated,
  type ObfuscatedClientOptions,
  type ObfuscatedConnection,
  type ReceivedFrame,
  type StreamLayer,
} from '../../src/client/obfuscated-client.ts';
