/**
 * The http-01 token store. Tokens live in this process while its order runs
 * and are also written to storage: on a shared store so any instance behind
 * the same name can answer the CA's validation request, on a local one so a
 * daemon restarted in the middle of an order (a crash, a SIGKILL) still
 * answers the CA's validation and the order can be resumed, not lost. A
 * failed write to storage never fails the order: this instance still
 * answers.
 */
import { EventEmitter } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { keys } from '../storage/keys.js';
import type { Logger } from '../log.js';
import type { Storage } from '../storage/storage.js';
import type { ChallengePublisher } from './publisher.js';
import type { ChallengeAnswer, ChallengeSolver } from './solver.js';

/** RFC 8555 tokens are base64url; anything else is never looked up. */
const TOKEN = /^[A-Za-z0-9_-]{16,256}$/;
/** A published token outlives any sane order, then expires by itself. */
const SHARED_TOKEN_TTL_MS = 15 * 60_000;

export function isValidToken(token: string): boolean {
  return TOKEN.test(token);
}

/** The http-01 solver: an order's answers are tokens this store serves on port 80. */
export class ChallengeTokens implements ChallengePublisher, ChallengeSolver {
  readonly type = 'http-01';
  private readonly local = new Map<string, string>();
  /** Emits 'fetched' (token) when this instance serves a token to a validator. */
  private readonly fetches = new EventEmitter().setMaxListeners(0); // one listener per running order, however many run
  /** Lookups answered and missed, for metrics. */
  readonly stats = { hits: 0, misses: 0 };

  constructor(private readonly storage?: Storage, private readonly log?: Logger) {}

  async publish(token: string, keyAuthorization: string): Promise<void> {
    if (!isValidToken(token)) throw new Error('the CA sent a challenge token that is not base64url');
    this.local.set(token, keyAuthorization);
    await this.storage?.set(keys.challenge(token), keyAuthorization, { ttlMs: SHARED_TOKEN_TTL_MS }).catch((err: Error) => {
      this.log?.warn({ err: err.message, shared: this.storage?.shared }, 'challenge token kept in this process only: the store did not take it');
    });
  }

  present(answer: ChallengeAnswer): Promise<void> {
    return this.publish(answer.token, answer.keyAuthorization);
  }

  cleanUp(answer: ChallengeAnswer): Promise<void> {
    return this.withdraw(answer.token);
  }

  async withdraw(token: string): Promise<void> {
    this.local.delete(token);
    await this.storage?.delete(keys.challenge(token)).catch(() => {}); // expires by itself
  }

  /**
   * Loads the tokens an earlier run of this daemon published and did not
   * withdraw (it was killed mid-order), so the CA's validation of a resumed
   * order is answered. Only for a store of this instance's own: a shared one
   * is read on every lookup anyway.
   */
  async restore(): Promise<number> {
    if (!this.storage || this.storage.shared) return 0;
    let restored = 0;
    for (const key of await this.storage.list(keys.challengePrefix)) {
      const token = key.slice(keys.challengePrefix.length);
      const value = isValidToken(token) ? await this.storage.get(key) : null;
      if (value === null || this.local.has(token)) continue;
      this.local.set(token, value);
      restored++;
      // Forgotten with its stored copy, unless a resumed order takes it over first.
      setTimeout(() => {
        if (this.local.get(token) === value) this.local.delete(token);
      }, SHARED_TOKEN_TTL_MS).unref();
    }
    return restored;
  }

  async lookup(token: string): Promise<string | undefined> {
    const found = await this.find(token);
    if (found === undefined) this.stats.misses++;
    else this.stats.hits++;
    return found;
  }

  /**
   * lookup() without a promise, for the http-01 server's hot path: the key
   * authorization (a hit) or undefined (a miss), counted like lookup(); or
   * null, counting nothing, when only the shared store can tell: then the
   * caller awaits lookup().
   */
  lookupLocal(token: string): string | undefined | null {
    // Only valid tokens are ever stored here, so a hit needs no validation.
    const local = this.local.get(token);
    if (local !== undefined) {
      this.stats.hits++;
      this.fetches.emit('fetched', token);
      return local;
    }
    if (this.storage?.shared && isValidToken(token)) return null;
    this.stats.misses++;
    return undefined;
  }

  private async find(token: string): Promise<string | undefined> {
    if (!isValidToken(token)) return undefined;
    const local = this.local.get(token);
    if (local !== undefined) this.fetches.emit('fetched', token);
    if (local !== undefined || !this.storage?.shared) return local;
    return (await this.storage.get(keys.challenge(token))) ?? undefined;
  }

  /**
   * Resolves when every token has been fetched here at least once, or after
   * timeoutMs. Seeing the CA's validation request lets the order be polled
   * right after it instead of on a blind timer; on a shared store another
   * instance may answer, and then the timer decides.
   */
  async waitForFetches(tokens: string[], timeoutMs: number): Promise<void> {
    const pending = new Set(tokens.filter((t) => this.local.has(t)));
    if (pending.size === 0) return sleep(timeoutMs);
    const ac = new AbortController();
    const onFetch = (token: string) => {
      pending.delete(token);
      if (pending.size === 0) ac.abort();
    };
    this.fetches.on('fetched', onFetch);
    try {
      await sleep(timeoutMs, undefined, { signal: ac.signal }).catch(() => {});
    } finally {
      this.fetches.off('fetched', onFetch);
    }
  }

  get size(): number {
    return this.local.size;
  }
}
