import { MtpError } from '../runtime/errors.ts';

/**
 * Why an upstream could not be opened or was lost: MTP_ERR_NO_DC, MTP_ERR_UPSTREAM_CONNECT,
 * MTP_ERR_UPSTREAM_TIMEOUT, MTP_ERR_NO_CONFIG, MTP_ERR_CLIENT_BACKLOG, ... (counted per DC and in
 * `handshakeFailures` as MTP_ERR_UPSTREAM).
 */
export class UpstreamError extends MtpError {
  constructor(code: string, message: string) {
    super('upstream', code, message);
    this.name = 'UpstreamError';
  }
}
