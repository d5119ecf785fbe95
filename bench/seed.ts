// Fills a store with N synthetic certificates and their index records,
// through acmed's own storage backend and index record builder, as if acmed
// had issued them. Expiries spread over 10–89 days, so nothing is due.
import { readCertificateInfo } from '../src/certificate-info.js';
import { eachLimited } from '../src/renewal/each-limited.js';
import { recordFromCertificate } from '../src/renewal/index-record.js';
import { keys } from '../src/storage/keys.js';
import type { Storage } from '../src/storage/storage.js';
import { syntheticCa, type SyntheticCa } from './synthetic.js';

export const BENCH_DOMAIN = 'bench.example';
/** Renewal at 2/3 of a 90-day lifetime is day 60 after issuance; expiring in >= 31 days puts every renewal in the future. */
const expiresInDays = (i: number) => 31 + (i % 59);

export async function seedStore(storage: Storage, count: number, opts: { width?: number; from?: number } = {}): Promise<SyntheticCa> {
  const ca = await syntheticCa({ domain: BENCH_DOMAIN, expiresInDays });
  const from = opts.from ?? 0;
  const now = new Date();
  const indices = Array.from({ length: count }, (_, i) => from + i);
  await eachLimited(indices, opts.width ?? 32, async (i) => {
    const c = ca.certificate(i);
    await storage.putCertificate({ ...c, names: [c.name] });
    const record = recordFromCertificate(c.name, readCertificateInfo(c.cert), null, { renewThresholdDays: null }, now);
    await storage.set(keys.index(c.name), JSON.stringify(record));
  });
  return ca;
}
