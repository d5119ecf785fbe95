// Zone, CNAME and propagation lookups against a real BIND 9.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startBind, type BindHandle } from '../harness/bind.js';
import { authoritativeServers, findZone, followCname, txtValues } from '../../src/challenge/dns-lookup.js';
import { PropagationTimeoutError, waitForPropagation } from '../../src/challenge/dns-propagation.js';
import { parseServer, type DnsServer } from '../../src/challenge/dns-transport.js';

let bind: BindHandle;
let server: DnsServer;

before(async () => {
  bind = await startBind({
    zones: [
      { name: 'example.com', records: ['_acme-challenge.www IN CNAME www.validation.example.org.', 'loop-a IN CNAME loop-b', 'loop-b IN CNAME loop-a', 'sub IN NS ns1', '_acme-challenge.odd IN CNAME bad\\032name.example.org.'] },
      { name: 'example.org', records: ['www.validation IN TXT "there"'] },
      { name: 'deep.example.com' },
    ],
  });
  server = parseServer(bind.address);
});

after(async () => {
  await bind?.stop();
});

test('findZone: the SOA owner for an apex, a missing name and a name in a child zone', async () => {
  assert.equal(await findZone('example.com', server), 'example.com');
  assert.equal(await findZone('_acme-challenge.a.example.com', server), 'example.com');
  assert.equal(await findZone('_acme-challenge.x.deep.example.com', server), 'deep.example.com');
  assert.equal(await findZone('www.validation.example.org', server), 'example.org');
  await assert.rejects(findZone('_acme-challenge.example.net', server), /no zone found for _acme-challenge\.example\.net: DNS server 127\.0\.0\.1:\d+ knows only the root zone above it/);
});

test('followCname: the end of the chain, the name itself when no alias; a loop and an unusable target refused', async () => {
  assert.equal(await followCname('_acme-challenge.www.example.com', server), 'www.validation.example.org');
  assert.equal(await followCname('_acme-challenge.plain.example.com', server), '_acme-challenge.plain.example.com');
  await assert.rejects(followCname('loop-a.example.com', server), /the CNAME chain from loop-a\.example\.com loops at loop-a\.example\.com/);
  await assert.rejects(followCname('_acme-challenge.odd.example.com', server), /the CNAME at _acme-challenge\.odd\.example\.com points to "bad name\.example\.org", which is not a usable DNS name/);
});

test('authoritativeServers: the NS hosts\' addresses on port 53', async () => {
  assert.deepEqual(await authoritativeServers('example.com', server), [{ host: '127.0.0.1', port: 53 }]);
});

test('waitForPropagation: resolves once every server shows the value; times out naming what is missing where', async () => {
  assert.deepEqual(await txtValues('www.validation.example.org', server), ['there']);
  const waited = await waitForPropagation([{ fqdn: 'www.validation.example.org', value: 'there', servers: [server] }], { timeoutMs: 2_000, recursion: false });
  assert.ok(waited < 1_000);
  const started = Date.now();
  await assert.rejects(
    waitForPropagation([{ fqdn: 'www.validation.example.org', value: 'not-yet', servers: [server] }], { timeoutMs: 1_000, recursion: false }),
    (err: Error) => {
      assert.ok(err instanceof PropagationTimeoutError);
      assert.match(err.message, new RegExp(`^DNS records not visible after \\d+ s \\(dns\\.propagation_timeout_seconds\\): www\\.validation\\.example\\.org at ${bind.address.replace(/\./g, '\\.')}: value not there yet$`));
      return true;
    },
  );
  assert.ok(Date.now() - started < 2_500, 'bounded by the timeout');
});
