import type http from 'node:http';

/**
 * One JSON answer, never cached. The admin API indents its answers for people reading them with curl; the
 * console's scripts get them compact.
 */
export function sendJson(
  res: http.ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
  indent = 2,
): void {
  const text = `${JSON.stringify(body, null, indent)}\n`;
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
    ...headers,
  });
  res.end(text);
}
