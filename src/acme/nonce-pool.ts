/**
 * Replay-Nonce pool. Every ACME response carries a fresh nonce; keeping them
 * saves the HEAD newNonce round trip acme-client makes before each signed
 * request. A stale one costs one badNonce retry, which acme-client handles.
 */
export class NoncePool {
  private readonly nonces: string[] = [];
  constructor(private readonly capacity = 32) {}

  add(nonce: string | undefined): void {
    if (!nonce) return;
    this.nonces.push(nonce);
    if (this.nonces.length > this.capacity) this.nonces.shift();
  }

  /** The newest nonce (least likely to have expired), or undefined. */
  take(): string | undefined {
    return this.nonces.pop();
  }

  /** Drops every nonce, e.g. when the CA restarted and none of them is good any more. */
  clear(): void {
    this.nonces.length = 0;
  }

  get size(): number {
    return this.nonces.length;
  }
}
