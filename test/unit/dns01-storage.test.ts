// The dns-01 solver on every storage backend, against a real BIND 9: records
// are written and removed, and what a crashed run left is found in the store
// and removed by the next start, while a live peer's records stay.
import { test, describe, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { hostname } from 'node:os';
import { once } from 'node:events';
import { startBind, type BindHandle } from '../harness/bind.js';
import { fixtures, type BackendFixture } from './storage-contract-fixtures.js';
import { Dns01Solver } from '../../src/challenge/dns01.js';
import { Rfc2136Provider } from '../../src/challenge/dns-rfc2136.js';
import { parseServer } from '../../src/challenge/dns-transport.js';
import { keys } from '../../src/storage/keys.js';
import { createLogger } from '../../src/log.js';
import type { Storage } from '../../src/storage/storage.js';

const log = createLogger('silent');
let bind: BindHandle;
let provider: Rfc2136Provider;

/** A pid that existed and is gone: what a SIGKILLed predecessor leaves in its owner token. */
async function deadPid(): Promise<number> {
  const child = spawn('true');
  await once(child, 'exit');
  return child.pid!;
}

before(async () => {
  bind = await startBind({ zones: [{ name: 'example.com' }] });
  provider = await Rfc2136Provider.create({
    server: bind.address, tsig_key_name: bind.keyName, tsig_algorithm: 'hmac-sha256', tsig_secret_file: bind.keyFilePath,
  });
});

after(async () => {
  await bind?.stop();
});

function solver(storage: Storage, owner?: string): Dns01Solver {
  return new Dns01Solver({ provider, storage, log, resolvers: [parseServer(bind.address)], propagationTimeoutMs: 5_000, owner });
}

const answer = (name: string, value: string, token: string) => ({ identifier: name, wildcard: false, token, keyAuthorization: value });

for (const factory of fixtures) {
  describe(`dns-01 on ${factory.name} storage (${factory.target})`, () => {
    let fixture: BackendFixture;
    before(async () => {
      fixture = await factory.start();
    });
    afterEach(() => fixture.closeOpened());
    after(() => fixture.close());

    test('present, propagation, cleanUp: the record and its ledger entry come and go', async () => {
      const store = (await fixture.space()).open();
      const name = `${factory.name}-ok.example.com`;
      const dns = solver(store);
      const a = answer(name, `value-${factory.name}`, 'token-ok-aaaaaaaaaaaa');
      await dns.present(a);
      assert.deepEqual(await bind.txt(`_acme-challenge.${name}`), [a.keyAuthorization]);
      assert.equal((await store.list(keys.dnsRecordPrefix)).length, 1);
      assert.ok((await dns.ready([a])) >= 0);
      await dns.cleanUp(a);
      assert.deepEqual(await bind.txt(`_acme-challenge.${name}`), []);
      assert.deepEqual(await store.list(keys.dnsRecordPrefix), []);
    });

    test('a crashed run\'s records are removed by the next start; a live peer\'s stay', async () => {
      const space = await fixture.space();
      const name = `${factory.name}-crash.example.com`;
      const crashed = solver(space.open(), `${hostname()}/${await deadPid()}/0123456789abcdef`);
      await crashed.present(answer(name, 'left-by-crash', 'token-crash-aaaaaaaaa'));
      // A peer on this host, alive (the BIND process stands in for its pid), mid-order.
      const peer = solver(space.open(), `${hostname()}/${bind.pid}/fedcba9876543210`);
      await peer.present(answer(name, 'peer-in-flight', 'token-peer-aaaaaaaaaa'));
      assert.deepEqual((await bind.txt(`_acme-challenge.${name}`)).sort(), ['left-by-crash', 'peer-in-flight']);

      const restarted = solver(space.open());
      assert.equal(await restarted.cleanLeftovers(), 1);
      assert.deepEqual(await bind.txt(`_acme-challenge.${name}`), ['peer-in-flight']);
      assert.equal((await space.open().list(keys.dnsRecordPrefix)).length, 1, 'the peer\'s entry stays');
      assert.equal(await restarted.cleanLeftovers(), 0, 'nothing left the second time');
    });
  });
}
