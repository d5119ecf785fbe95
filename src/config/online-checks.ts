/**
 * `acmed check-config --online`: what only the CAs can tell. Fetches every
 * CA's directory (trusting `ca_bundle` as the daemon does) and reports, at
 * the key's position, every `profile` the first CA does not list, so a typo
 * is found at deploy time, not by a failed order at 3 a.m. A fallback CA
 * that does not list a profile is a warning: orders for those certificates
 * skip it.
 */
import https from 'node:https';
import { rootCertificates } from 'node:tls';
import { readFile } from 'node:fs/promises';
import { caDirectories } from './ca-list.js';
import { positionsIn, type ConfigProblem } from './load.js';
import { requestedProfiles } from './order-settings.js';
import type { Config } from './schema.js';

export interface OnlineFindings {
  problems: ConfigProblem[];
  warnings: ConfigProblem[];
}

export async function onlineProblems(config: Config, text: string, file: string): Promise<OnlineFindings> {
  const wanted = requestedProfiles(config);
  const positionOf = positionsIn(text, file);
  const cas = caDirectories(config);
  const trusted = config.ca_bundle ? [...rootCertificates, await readFile(config.ca_bundle, 'utf8')] : undefined;
  const findings: OnlineFindings = { problems: [], warnings: [] };
  await Promise.all(cas.map(async (url, i) => {
    const key = typeof config.api_uri === 'string' ? ['api_uri'] : ['api_uri', i];
    let directory: { meta?: { profiles?: Record<string, unknown> } };
    try {
      directory = await fetchDirectory(url, trusted);
    } catch (err) {
      findings.problems.push({ ...positionOf(key), message: `api_uri: cannot read the directory of ${url}: ${(err as Error).message}` });
      return;
    }
    const offered = Object.keys(directory.meta?.profiles ?? {});
    for (const w of wanted.filter((w) => !offered.includes(w.profile))) {
      const message = `${w.path.join('.')}: the CA at ${url} offers no profile ${JSON.stringify(w.profile)} (it lists: ${offered.length > 0 ? offered.join(', ') : 'none'})`;
      if (i === 0) findings.problems.push({ ...positionOf(w.path), message });
      else findings.warnings.push({ ...positionOf(w.path), message: `${message}; orders for these certificates skip this fallback CA` });
    }
  }));
  return findings;
}

async function fetchDirectory(url: string, ca: string[] | undefined): Promise<{ meta?: { profiles?: Record<string, unknown> } }> {
  return new Promise((resolve, reject) => {
    const req = https.get(url, { ca, timeout: 10_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (c: string) => { body += c; });
      res.on('end', () => {
        if (res.statusCode !== 200) return reject(new Error(`HTTP ${res.statusCode}`));
        try {
          resolve(JSON.parse(body) as { meta?: { profiles?: Record<string, unknown> } });
        } catch {
          reject(new Error('the answer is not JSON'));
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error('no answer within 10 s')));
    req.on('error', reject);
  });
}
