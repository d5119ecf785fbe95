/**
 * `acmed issue <host>`: one synchronous order. On a terminal the daemon
 * streams the job's steps (NDJSON) and each is shown as it starts, with the
 * time since the job started, on stderr; stdout gets the result either way.
 */
import { createInterface } from 'node:readline';
import type { IssueResult } from '../admin/wire.js';
import { adminRequest, adminStream, expectOk } from './admin-client.js';
import type { AdminTarget } from './admin-target.js';
import { CliError } from './errors.js';
import { formatOutcome } from './format.js';

export interface IssueFlags {
  force?: boolean;
  json?: boolean;
}

export async function issueCertificate(target: AdminTarget, host: string, flags: IssueFlags, stderr: NodeJS.WriteStream = process.stderr): Promise<void> {
  const body = { host, force: flags.force ?? false };
  const data = stderr.isTTY && !flags.json
    ? await withProgress(target, body, (line) => stderr.write(`${line}\n`))
    : expectOk(await adminRequest<{ data: IssueResult }>(target, 'POST', '/acme', body)).data;
  process.stdout.write(`${flags.json ? JSON.stringify(data, null, 2) : formatOutcome(data)}\n`);
}

/** Reads the step lines until the final one, which carries the plain answer's status, message and data. */
export async function withProgress(target: AdminTarget, body: unknown, show: (line: string) => void): Promise<IssueResult> {
  const res = await adminStream(target, 'POST', '/acme', body, 'application/x-ndjson');
  if (!String(res.headers['content-type']).includes('ndjson')) {
    // An error before the stream began (bad host, not allowed): a plain JSON answer.
    const text = await collect(res);
    let message = `admin API answered HTTP ${res.statusCode}`;
    try {
      message = (JSON.parse(text) as { message?: string }).message ?? message;
    } catch { /* keep the status line */ }
    throw new CliError(message);
  }
  for await (const line of createInterface({ input: res, crlfDelay: Infinity })) {
    if (line.trim() === '') continue;
    const event = JSON.parse(line) as { step?: string; elapsed_ms?: number; status?: number; message?: string; data?: IssueResult };
    if (event.step !== undefined) {
      show(`  ${((event.elapsed_ms ?? 0) / 1000).toFixed(1).padStart(5)}s  ${event.step}`);
      continue;
    }
    if (event.status !== undefined && event.status >= 200 && event.status < 300 && event.data) return event.data;
    throw new CliError(event.message ?? `admin API answered ${event.status}`);
  }
  throw new CliError('the daemon closed the connection before answering (did it stop?)');
}

async function collect(stream: AsyncIterable<Buffer>): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8');
}
