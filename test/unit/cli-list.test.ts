// `acmed list --json` pages through the admin API and writes one JSON array,
// pretty-printed, whatever the number of pages: here 2,500 rows in pages of
// 1,000 from a small server on a unix socket, compared byte for byte with
// the whole array stringified at once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { listCertificates } from '../../src/cli/list.js';

function row(i: number) {
  const host = `c${String(i).padStart(5, '0')}.example.com`;
  return {
    host, names: [host, `www.${host}`], status: 'valid', not_after: '2027-03-01T00:00:00.000Z', valid: true,
    backoff_until: null, key_types: ['ecc'], nested: { quote: 'a "b"\nc' },
  };
}

async function listed(count: number): Promise<{ text: string; rows: ReturnType<typeof row>[]; pages: number }> {
  const rows = Array.from({ length: count }, (_, i) => row(i));
  let pages = 0;
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://acmed');
    const limit = Number(url.searchParams.get('limit'));
    const after = url.searchParams.get('after');
    const start = after === null ? 0 : rows.findIndex((r) => r.host === after) + 1;
    const data = rows.slice(start, start + limit);
    const next = start + limit < rows.length ? data[data.length - 1].host : null;
    pages++;
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ data, next }));
  });
  const dir = await mkdtemp(join(tmpdir(), 'acmed-cli-list-'));
  const socket = join(dir, 'admin.sock');
  await new Promise<void>((resolve) => server.listen(socket, resolve));
  let text = '';
  const out = new Writable({ write(chunk, _enc, done) { text += String(chunk); done(); } });
  try {
    await listCertificates({ kind: 'socket', path: socket }, { json: true }, out);
  } finally {
    await new Promise((resolve) => server.close(resolve));
    await rm(dir, { recursive: true, force: true });
  }
  return { text, rows, pages };
}

test('several pages make one pretty-printed JSON array, exactly as the rows stringified at once', async () => {
  const { text, rows, pages } = await listed(2_500);
  assert.equal(pages, 3);
  assert.equal(text, `${JSON.stringify(rows, null, 2)}\n`);
});

test('no rows is an empty array; one row is an array of one', async () => {
  assert.equal((await listed(0)).text, '[]\n');
  const one = await listed(1);
  assert.equal(one.text, `${JSON.stringify(one.rows, null, 2)}\n`);
});
