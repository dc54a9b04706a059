/**
 * The CLI side of the admin API: finds the API from the same config file the proxy runs with.
 */
import { loopbackFor } from '../config/links.ts';
import { formatHostPort } from '../config/schema.ts';
import type { Config } from '../config/types.ts';
import { MtpError } from '../runtime/errors.ts';

export class AdminClientError extends MtpError {
  override name = 'AdminClientError';
  readonly status: number;
  constructor(message: string, status = 0) {
    super('admin', 'MTP_ERR_ADMIN_CLIENT', message);
    this.status = status;
  }
}

export interface AdminResponse<T = unknown> {
  status: number;
  body: T;
}

/** Base URL a local client should use; wildcard listen addresses are reached through loopback. */
function adminBaseUrl(host: string, port: number): string {
  return `http://${formatHostPort({ host: loopbackFor(host), port })}`;
}

/** An answer the caller cannot use, as an error with the API's `error` message (else the HTTP status). */
export function failedResponseError(res: AdminResponse): AdminClientError {
  const message =
    res.body && typeof res.body === 'object' && 'error' in res.body
      ? String((res.body as { error: unknown }).error)
      : `HTTP ${res.status}`;
  return new AdminClientError(message, res.status);
}

export class AdminClient {
  readonly baseUrl: string;
  readonly #token: string;
  readonly #timeoutMs: number;

  constructor(baseUrl: string, token: string, timeoutMs = 15_000) {
    this.baseUrl = baseUrl;
    this.#token = token;
    this.#timeoutMs = timeoutMs;
  }

  static fromConfig(config: Config): AdminClient {
    if (!config.admin.listen) {
      throw new AdminClientError('the admin API is off: set [admin] listen and token in the config file');
    }
    if (!config.admin.token) throw new AdminClientError('admin.token is not set in the config file');
    return new AdminClient(
      adminBaseUrl(config.admin.listen.host, config.admin.listen.port),
      config.admin.token,
    );
  }

  /** Sends one request; resolves with any HTTP status, rejects only when the API cannot be reached. */
  async request<T = unknown>(method: string, path: string, body?: unknown): Promise<AdminResponse<T>> {
    let res: Response;
    try {
      res = await fetch(new URL(path, this.baseUrl), {
        method,
        headers: {
          authorization: `Bearer ${this.#token}`,
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(this.#timeoutMs),
      });
    } catch (err) {
      const reason =
        err instanceof Error ? ((err.cause as Error | undefined)?.message ?? err.message) : String(err);
      throw new AdminClientError(`cannot reach the admin API at ${this.baseUrl}: ${reason}`);
    }
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = text === '' ? null : JSON.parse(text);
    } catch {
      // Not JSON: keep the text for the error message.
    }
    return { status: res.status, body: parsed as T };
  }

  /** Like request() but turns a non-2xx answer into an AdminClientError carrying the API's message. */
  async call<T = unknown>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await this.request<T>(method, path, body);
    if (res.status >= 200 && res.status < 300) return res.body;
    throw failedResponseError(res);
  }
}
