/**
 * One CaBackoff per CA (api_uri may list several), so a CA that is down
 * holds back only the orders that would go to it: the others fall back to
 * the next CA. Taken together they answer what a single CA used to: acmed
 * cannot order at all only while every listed CA is backed off, and then
 * the earliest of their waits is when it tries again.
 */
import { EventEmitter } from 'node:events';
import { CaBackoff, CaUnavailableError, type CaBackoffOptions, type CaState } from './ca-backoff.js';

export interface ListedCaState extends CaState {
  url: string;
}

export class CaBackoffs extends EventEmitter<{ down: [string, CaState]; up: [string, CaState] }> {
  private readonly byUrl = new Map<string, CaBackoff>();

  /** listed: the CAs of the config now, in fallback order (read each time, so a reload applies). */
  constructor(private readonly listed: () => string[], private readonly opts: CaBackoffOptions = {}) {
    super();
  }

  /** The backoff of one CA, made on first use. */
  of(url: string): CaBackoff {
    let backoff = this.byUrl.get(url);
    if (!backoff) {
      backoff = new CaBackoff(this.opts);
      backoff.on('down', (state) => this.emit('down', url, state));
      backoff.on('up', (state) => this.emit('up', url, state));
      this.byUrl.set(url, backoff);
    }
    return backoff;
  }

  /** Every listed CA with its state, in fallback order. */
  states(): ListedCaState[] {
    return this.listed().map((url) => ({ url, ...this.of(url).state() }));
  }

  /** True while no listed CA may be asked: every one is backed off. */
  get backedOff(): boolean {
    return this.listed().every((url) => this.of(url).backedOff);
  }

  /**
   * The CAs taken together: up while any listed CA is; when all are down,
   * the one whose backoff ends first (so its `until` is when acmed orders again).
   */
  state(): CaState {
    const states = this.states();
    const { url: _url, ...chosen } = states.find((s) => s.up)
      ?? states.reduce((a, b) => (Date.parse(b.until ?? '') < Date.parse(a.until ?? '') ? b : a));
    return chosen;
  }

  /** What an order gets when every CA it could go to was skipped for its backoff. */
  unavailable(): CaUnavailableError {
    return new CaUnavailableError(this.state());
  }
}
