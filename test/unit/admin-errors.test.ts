// Every deliberate error carries its own HTTP mapping (AcmedError): the admin
// API answers each with the status, kind, extra fields and Retry-After the
// type says, and anything else with a 500.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { createAdminHandler, type AdminBackend } from '../../src/admin/api.js';
import { AcmeNetworkError, AcmeProblemError } from '../../src/acme/errors.js';
import { HostNotAllowedError } from '../../src/config/managed.js';
import { AccountUnavailableError } from '../../src/acme/errors.js';
import { BackedOffError, CertificateHeldError, ShuttingDownError } from '../../src/daemon/issuer.js';
import { InvalidHostnameError } from '../../src/hostname.js';
import { createLogger } from '../../src/log.js';
import { CaUnavailableError } from '../../src/renewal/ca-backoff.js';
import { StorageTimeoutError } from '../../src/storage/errors.js';
import { LockLostError, LockTimeoutError } from '../../src/storage/lock.js';

const inAMinute = () => new Date(Date.now() + 60_000).toISOString();

const cases: { error: () => unknown; status: number; kind?: string; retryAfter?: boolean; field?: string }[] = [
  { error: () => new InvalidHostnameError('../x', 'bad'), status: 400 },
  { error: () => new HostNotAllowedError('evil.example.net'), status: 403 },
  { error: () => new BackedOffError('a.example.com', { failures: 2, until: inAMinute(), lastError: 'nope' } as never), status: 409, kind: 'backoff', retryAfter: true, field: 'backoff_until' },
  { error: () => new LockTimeoutError('held elsewhere'), status: 409, kind: 'locked' },
  { error: () => new LockLostError('taken over'), status: 409, kind: 'locked' },
  { error: () => new AcmeProblemError({ type: 'urn:ietf:params:acme:error:rateLimited', detail: 'slow down' }, 429, 'u', 30_000), status: 429, kind: 'rateLimited', retryAfter: true, field: 'problem' },
  { error: () => new AcmeProblemError({ type: 'urn:ietf:params:acme:error:unauthorized', detail: 'no' }, 403, 'u'), status: 502, kind: 'unauthorized', field: 'problem' },
  { error: () => new AccountUnavailableError(new AcmeNetworkError('down')), status: 502, kind: 'network' },
  { error: () => new CaUnavailableError({ up: false, failures: 3, until: inAMinute(), lastError: 'x', since: inAMinute() } as never), status: 503, kind: 'ca_unavailable', retryAfter: true, field: 'ca' },
  { error: () => new ShuttingDownError(), status: 503, kind: 'shutting_down' },
  { error: () => new CertificateHeldError('a.example.com', new Error('EROFS')), status: 503, kind: 'store' },
  { error: () => new StorageTimeoutError('redis: get timed out'), status: 503, kind: 'store' },
  { error: () => Object.assign(new Error('disk full'), { code: 'ENOSPC' }), status: 503, kind: 'store' },
  { error: () => new TypeError('a bug'), status: 500 },
];

test('each typed error is answered with its own status, kind, fields and Retry-After', async () => {
  let next: () => unknown = () => undefined;
  const backend = { issue: async () => { throw next(); } } as Partial<AdminBackend> as AdminBackend;
  const handler = createAdminHandler(backend, createLogger('fatal'));
  const server = http.createServer((req, res) => handler(req, res, 'test'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/acme`;
  try {
    for (const c of cases) {
      next = c.error;
      const resp = await fetch(url, { method: 'POST', body: JSON.stringify({ host: 'a.example.com' }), headers: { 'content-type': 'application/json' } });
      const body = await resp.json() as Record<string, unknown>;
      const name = (c.error() as Error).constructor.name;
      assert.equal(resp.status, c.status, `${name}: ${JSON.stringify(body)}`);
      assert.equal(typeof body.message, 'string', name);
      if (c.kind) assert.equal(body.kind, c.kind, name);
      if (c.field) assert.ok(c.field in body, `${name} has ${c.field}`);
      assert.equal(resp.headers.has('retry-after'), c.retryAfter ?? false, `${name} Retry-After`);
      if (c.retryAfter) assert.ok(Number(resp.headers.get('retry-after')) >= 1, name);
    }
  } finally {
    server.close();
  }
});
