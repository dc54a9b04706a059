/** How an address is written in messages, logs and the config: one form everywhere. */

/** "host:port", with an IPv6 host in brackets: the form the config's parseHostPort() reads. */
export function formatHostPort(a: { readonly host: string; readonly port: number }): string {
  return a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}
