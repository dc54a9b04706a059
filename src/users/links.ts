/** A user's links: for each listener it may use, every allowed protocol, and for fake-TLS every domain. */
import { linkHost, listenerLinks, type ProxyLink } from '../config/links.ts';
import type { Config, ListenerConfig } from '../config/types.ts';
import type { UserState } from './registry.ts';

export function userLinks(
  config: Config,
  user: UserState,
  portOf: (l: ListenerConfig) => number = (l) => l.port,
): ProxyLink[] {
  const own = user.config;
  return config.listeners
    .filter((l) => own.listeners === null || own.listeners.includes(l.name))
    .flatMap((l) =>
      listenerLinks(
        {
          ...l,
          secret: user.secret,
          extraSecrets: [],
          tlsDomains: own.tlsDomains.length > 0 ? own.tlsDomains : l.tlsDomains,
        },
        { host: linkHost(config, l), port: portOf(l) },
      ),
    );
}
