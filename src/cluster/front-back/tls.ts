/** The certificate material of a link end (PEM), read from the `[cluster]` paths. */
import type { ClusterConfig } from '../../config/types.ts';
import { MtpError } from '../../runtime/errors.ts';
import { readSettingFile } from '../setting-file.ts';

export interface LinkCredentials {
  cert: Buffer;
  key: Buffer;
  ca: Buffer;
}

export function readCredentials(cluster: ClusterConfig): LinkCredentials {
  const read = (what: 'cert' | 'key' | 'ca'): Buffer => {
    const file = cluster[what];
    if (file === null)
      throw new MtpError('config', 'MTP_ERR_CONFIG', `cluster.${what}: expected a file path (required)`);
    return readSettingFile(what, file);
  };
  return { cert: read('cert'), key: read('key'), ca: read('ca') };
}
