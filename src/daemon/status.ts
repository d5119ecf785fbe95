/** Builds the certificate status rows the admin API and CLI show. */
import { readCertificateInfo } from '../acme/certificate-info.js';
import type { CertificateStatus } from '../admin/api.js';
import type { CertificateBundle, Storage } from '../storage/storage.js';
import type { ManagedCertificate } from './managed.js';

export function statusOf(
  name: string,
  bundle: CertificateBundle | null,
  opts: { storage: Storage; managed?: ManagedCertificate; running: boolean; now: number },
): CertificateStatus {
  const base = {
    host: name,
    location: opts.storage.location(name),
    managed: opts.managed !== undefined,
  };
  if (!bundle) {
    return {
      ...base, names: opts.managed?.names ?? [name], status: opts.running ? 'renewing' : 'missing',
      not_before: null, not_after: null, valid: false, serial_number: null, issuer_cn: null,
    };
  }
  const info = readCertificateInfo(bundle.cert);
  const valid = info.notBefore.getTime() <= opts.now && opts.now < info.notAfter.getTime();
  return {
    ...base,
    names: info.names,
    status: opts.running ? 'renewing' : valid ? 'valid' : 'expired',
    not_before: info.notBefore.toISOString(),
    not_after: info.notAfter.toISOString(),
    valid,
    serial_number: info.serialHex,
    issuer_cn: /CN=([^\n]+)/.exec(info.issuer)?.[1] ?? null,
  };
}
