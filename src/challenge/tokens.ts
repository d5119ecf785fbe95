/**
 * The http-01 token store. Tokens live in this process while its order runs;
 * on a shared store they are also published to storage, so any instance
 * behind the same name can answer the CA's validation request.
 */
import { EventEmitter } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { keys } from '../storage/keys.js';
import type { Storage } from '../storage/storage.js';
import type { ChallengePublisher } from './publisher.js';

/** RFC 8555 tokens are base64url; anything else is never looked up. */
const TOKEN = /^[A-Za-z0-9_-]{16,256}$/;
/** A published token outlives any sane order, then expires by itself. */
const SHARED_TOKEN_TTL_MS = 15 * 60_000;

export function isValidToken(token: string): boolean {
  return TOKEN.test(token);
}

export class ChallengeTokens implements ChallengePublisher {
  private readonly local = new Map<string, string>();
  /** Emits 'fetched' (token) when this instance serves a token to a validator. */
  private readonly fetches = new EventEmitter().setMaxListeners(0); // one listener per running order, however many run
  /** Lookups answered and missed, for metrics. */
  readonly stats = { hits: 0, misses: 0 };

  constructor(private readonly storage?: Storage) {}

  async publish(token: string, keyAuthorization: string): Promise<void> {
    if (!isValidToken(token)) throw new Error('the CA sent a challenge token that is not base64url');
    this.local.set(token, keyAuthorization);
    if (this.storage?.shared) await this.storage.set(keys.challenge(token), keyAuthorization, { ttlMs: SHARED_TOKEN_TTL_MS });
  }

  async withdraw(token: string): Promise<void> {
    this.local.delete(token);
    if (this.storage?.shared) await this.storage.delete(keys.challenge(token));
  }

  async lookup(token: string): Promise<string | undefined> {
    const found = await this.find(token);
    if (found === undefined) this.stats.misses++;
    else this.stats.hits++;
    return found;
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
