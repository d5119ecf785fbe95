/**
 * `acmed check-config --online`: what only the CA can tell. Fetches its
 * directory (trusting `ca_bundle` as the daemon does) and reports, at the
 * key's position, every `profile` the directory does not list, so a typo
 * is found at deploy time, not by a failed order at 3 a.m.
 */
import https from 'node:https';
import { rootCertificates } from 'node:tls';
import { readFile } from 'node:fs/promises';
import { positionsIn, type ConfigProblem } from './load.js';
import { requestedProfiles } from './order-settings.js';
import type { Config } from './schema.js';

export async function onlineProblems(config: Config, text: string, file: string): Promise<ConfigProblem[]> {
  const wanted = requestedProfiles(config);
  const positionOf = positionsIn(text, file);
  let directory: { meta?: { profiles?: Record<string, unknown> } };
  try {
    directory = await fetchDirectory(config);
  } catch (err) {
    return [{ ...positionOf(['api_uri']), message: `api_uri: cannot read the CA's directory: ${(err as Error).message}` }];
  }
  const offered = Object.keys(directory.meta?.profiles ?? {});
  return wanted.filter((w) => !offered.includes(w.profile)).map((w) => ({
    ...positionOf(w.path),
    message: `${w.path.join('.')}: the CA at ${config.api_uri} offers no profile ${JSON.stringify(w.profile)} (it lists: ${offered.length > 0 ? offered.join(', ') : 'none'})`,
  }));
}

async function fetchDirectory(config: Config): Promise<{ meta?: { profiles?: Record<string, unknown> } }> {
  const ca = config.ca_bundle ? [...rootCertificates, await readFile(config.ca_bundle, 'utf8')] : undefined;
  return new Promise((resolve, reject) => {
    const req = https.get(config.api_uri, { ca, timeout: 10_000 }, (res) => {
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
