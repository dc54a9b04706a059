import { isMtpError, MtpError } from '../runtime/errors.ts';

/**
 * Errors raised by the pure protocol codecs. Each carries a stable `code` that metrics and logs use as the
 * failure reason; the message never contains key material or secrets.
 */
export type ProtocolErrorCode =
  | 'MTP_ERR_UNKNOWN_TRANSPORT'
  | 'MTP_ERR_DISABLED_TRANSPORT'
  | 'MTP_ERR_FRAME_TOO_LARGE'
  | 'MTP_ERR_FRAME_UNALIGNED'
  | 'MTP_ERR_FRAME_TOO_SMALL'
  | 'MTP_ERR_REPLAY'
  | 'MTP_ERR_TLS_BAD_HELLO'
  | 'MTP_ERR_TLS_BAD_DIGEST'
  | 'MTP_ERR_TLS_STALE_TIMESTAMP'
  | 'MTP_ERR_TLS_UNKNOWN_SNI'
  | 'MTP_ERR_TLS_NO_KEY_SHARE'
  | 'MTP_ERR_TLS_BAD_RECORD'
  | 'MTP_ERR_TLS_EXPECTED'
  | 'MTP_ERR_RPC_BAD_FRAME'
  | 'MTP_ERR_RPC_BAD_CRC'
  | 'MTP_ERR_RPC_BAD_SEQ'
  | 'MTP_ERR_RPC_BAD_MESSAGE'
  | 'MTP_ERR_RPC_HANDSHAKE';

export class ProtocolError extends MtpError<ProtocolErrorCode> {
  constructor(code: ProtocolErrorCode, message: string) {
    super('protocol', code, message);
    this.name = 'ProtocolError';
  }
}

export function isProtocolError(e: unknown): e is ProtocolError {
  return isMtpError(e) && e.layer === 'protocol';
}
