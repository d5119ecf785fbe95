// A Consul stand-in for the storage tests (no Consul server can be installed
// here). It implements exactly the HTTP API the consul backend uses, as
// Consul's API docs describe it:
//   GET/PUT/DELETE /v1/kv/<key>  (?recurse, ?keys, ?separator, ?raw, ?cas, ?flags, ?acquire, ?release)
//   PUT /v1/txn                  (KV verbs; 200 committed / 409 rolled back with Errors)
//   PUT /v1/session/create | destroy/<id> | renew/<id>  (TTL 10s..24h, Behavior, LockDelay)
// and ACLs: with a token configured, a request without it gets 403
// "Permission denied", with another token 403 "ACL not found".
// expireSessions() plays the passing of every session's TTL without renewal.

import { randomUUID } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { KvStore, type KvOp } from './consul-kv.js';
import { parseGoDuration, type Request, sendJson, sendText, startHttpStandin, type StandinServer } from './http-server.js';

export interface ConsulStandinOptions {
  /** ACL token every request must carry; unset: ACLs off. */
  token?: string;
}

export interface ConsulStandin extends StandinServer {
  kv: KvStore;
  /** Sessions alive now. */
  sessionCount(): number;
  /** Every session's TTL runs out at once, as if their owners died. */
  expireSessions(): void;
}

interface Session {
  ID: string;
  Name: string;
  Behavior: 'release' | 'delete';
  LockDelayMs: number;
  TTL: string;
  CreateIndex: number;
  timer?: NodeJS.Timeout;
}

const MAX_VALUE = 512 * 1024;
const MAX_TXN_OPS = 128;

export async function startConsulStandin(opts: ConsulStandinOptions = {}): Promise<ConsulStandin> {
  const sessions = new Map<string, Session>();
  const kv = new KvStore((id) => sessions.has(id));

  const invalidate = (id: string) => {
    const session = sessions.get(id);
    if (!session) return;
    clearTimeout(session.timer);
    sessions.delete(id);
    kv.invalidateSession(id, session.Behavior, session.LockDelayMs);
  };
  const armTtl = (session: Session) => {
    clearTimeout(session.timer);
    if (!session.TTL) return;
    session.timer = setTimeout(() => invalidate(session.ID), parseGoDuration(session.TTL));
    session.timer.unref();
  };
  const info = (s: Session) => ({
    ID: s.ID, Name: s.Name, Node: 'standin', LockDelay: s.LockDelayMs * 1e6, Behavior: s.Behavior, TTL: s.TTL,
    NodeChecks: ['serfHealth'], ServiceChecks: null, CreateIndex: s.CreateIndex, ModifyIndex: s.CreateIndex,
  });
  const indexHeader = () => ({ 'X-Consul-Index': String(kv.index) });

  const aclDenied = (req: Request): string | null => {
    if (!opts.token) return null;
    const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    const given = (req.headers['x-consul-token'] as string | undefined) ?? bearer ?? req.url.searchParams.get('token');
    if (given === opts.token) return null;
    return given ? 'ACL not found' : 'Permission denied: anonymous token lacks permission';
  };

  const handleKv = (req: Request, res: ServerResponse, key: string) => {
    const q = req.url.searchParams;
    if (req.method === 'GET') {
      if (q.has('keys')) {
        const separator = q.get('separator') ?? '';
        const keys = new Set<string>();
        for (const entry of kv.withPrefix(key)) {
          const cut = separator ? entry.Key.indexOf(separator, key.length) : -1;
          keys.add(cut === -1 ? entry.Key : entry.Key.slice(0, cut + separator.length));
        }
        return keys.size ? sendJson(res, 200, [...keys], indexHeader()) : sendText(res, 404, '');
      }
      const found = q.has('recurse') ? kv.withPrefix(key) : [kv.entries.get(key)].filter((e) => e !== undefined);
      if (found.length === 0) return sendText(res, 404, '');
      if (q.has('raw') && !q.has('recurse')) return sendText(res, 200, Buffer.from(found[0].Value ?? '', 'base64').toString());
      return sendJson(res, 200, found, indexHeader());
    }
    if (req.method === 'PUT') {
      if (req.body.length > MAX_VALUE) return sendText(res, 413, `Request body(${req.body.length} bytes) too large, max size: ${MAX_VALUE} bytes.`);
      const op: KvOp = { Verb: 'set', Key: key, Value: req.body.toString('base64'), Flags: Number(q.get('flags') ?? 0) };
      // Consul's precedence: release over acquire over cas.
      if (q.has('release')) Object.assign(op, { Verb: 'unlock', Session: q.get('release') });
      else if (q.has('acquire')) Object.assign(op, { Verb: 'lock', Session: q.get('acquire') });
      else if (q.has('cas')) Object.assign(op, { Verb: 'cas', Index: Number(q.get('cas')) });
      const outcome = kv.single(op);
      if (!outcome.ok && outcome.invalid) return sendText(res, 500, outcome.what);
      return sendJson(res, 200, outcome.ok, indexHeader());
    }
    if (req.method === 'DELETE') {
      const op: KvOp = q.has('recurse') ? { Verb: 'delete-tree', Key: key }
        : q.has('cas') ? { Verb: 'delete-cas', Key: key, Index: Number(q.get('cas')) }
        : { Verb: 'delete', Key: key };
      return sendJson(res, 200, kv.single(op).ok, indexHeader());
    }
    return sendText(res, 405, `method ${req.method} not allowed`);
  };

  const handleTxn = (req: Request, res: ServerResponse) => {
    let ops: { KV?: KvOp }[];
    try {
      ops = JSON.parse(req.body.toString() || 'null');
    } catch (err) {
      return sendText(res, 400, `Failed to parse body: ${(err as Error).message}`);
    }
    if (!Array.isArray(ops)) return sendText(res, 400, 'Failed to parse body: expected a list of operations');
    if (ops.length > MAX_TXN_OPS) return sendText(res, 413, `Transaction contains too many operations (${ops.length} > ${MAX_TXN_OPS})`);
    if (ops.some((op) => !op.KV)) return sendText(res, 400, 'this stand-in supports KV operations only');
    const outcome = kv.transact(ops.map((op) => op.KV as KvOp));
    const results = outcome.results?.map((entry) => ({ KV: entry })) ?? null;
    return sendJson(res, outcome.errors ? 409 : 200, { Results: results, Errors: outcome.errors }, indexHeader());
  };

  const handleSession = (req: Request, res: ServerResponse, action: string, id: string) => {
    if (req.method !== 'PUT') return sendText(res, 405, `method ${req.method} not allowed`);
    if (action === 'create') {
      const body = req.body.length ? JSON.parse(req.body.toString()) : {};
      const ttl: string = body.TTL ?? '';
      const ttlMs = ttl ? parseGoDuration(ttl) : 0;
      if (ttl && !(ttlMs >= 10_000 && ttlMs <= 86_400_000)) return sendText(res, 400, `Invalid Session TTL '${ttl}', must be between [10s=24h0m0s]`);
      const behavior = body.Behavior ?? 'release';
      if (behavior !== 'release' && behavior !== 'delete') return sendText(res, 400, `Invalid Behavior setting '${behavior}'`);
      const lockDelay = body.LockDelay ?? '15s';
      // A bare number below 1000 means seconds, otherwise nanoseconds (Consul's rule).
      const lockDelayMs = typeof lockDelay === 'number' ? (lockDelay < 1000 ? lockDelay * 1000 : lockDelay / 1e6) : parseGoDuration(lockDelay);
      if (Number.isNaN(lockDelayMs) || lockDelayMs < 0) return sendText(res, 400, `Request decode failed: invalid LockDelay '${lockDelay}'`);
      const session: Session = { ID: randomUUID(), Name: body.Name ?? '', Behavior: behavior, LockDelayMs: lockDelayMs, TTL: ttl, CreateIndex: ++kv.index };
      sessions.set(session.ID, session);
      armTtl(session);
      return sendJson(res, 200, { ID: session.ID });
    }
    if (action === 'destroy') {
      invalidate(id);
      return sendJson(res, 200, true);
    }
    if (action === 'renew') {
      const session = sessions.get(id);
      if (!session) return sendText(res, 404, `Session id '${id}' not found`);
      armTtl(session);
      return sendJson(res, 200, [info(session)]);
    }
    return sendText(res, 404, '404 page not found');
  };

  const server = await startHttpStandin((req, res) => {
    const denied = aclDenied(req);
    if (denied) return sendText(res, 403, denied);
    const path = decodeURIComponent(req.url.pathname);
    if (path.startsWith('/v1/kv/')) return handleKv(req, res, path.slice('/v1/kv/'.length));
    if (path === '/v1/txn') return req.method === 'PUT' ? handleTxn(req, res) : sendText(res, 405, `method ${req.method} not allowed`);
    const session = /^\/v1\/session\/(create|destroy|renew)(?:\/([^/]+))?$/.exec(path);
    if (session) return handleSession(req, res, session[1], session[2] ?? '');
    return sendText(res, 404, '404 page not found');
  });

  const closeServer = server.close.bind(server);
  return Object.assign(server, {
    kv,
    sessionCount: () => sessions.size,
    expireSessions: () => {
      for (const id of [...sessions.keys()]) invalidate(id);
    },
    close: async () => {
      for (const session of sessions.values()) clearTimeout(session.timer);
      await closeServer();
    },
  });
}
